//! The subcommand surface of `copy-offload`, and the checked-in CRDs matching `copy-offload crd`.

use std::path::PathBuf;

use assert_cmd::cargo::cargo_bin_cmd;
use predicates::prelude::*;

fn copy_offload() -> assert_cmd::Command {
    let mut cmd = cargo_bin_cmd!("copy-offload");
    cmd.env_clear();
    cmd
}

#[test]
fn preflight_without_a_vm_or_disk_is_a_usage_error() {
    copy_offload()
        .args(["preflight"])
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("--vm <VM>"));
}

#[test]
fn the_controller_without_an_image_names_the_variables_and_exits_2() {
    copy_offload()
        .args(["controller", "--http-endpoint=127.0.0.1:0"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(
            "VSPHERE_XCOPY_VOLUME_POPULATOR_IMAGE (or Forklift's VSPHERE_COPY_OFFLOAD_POPULATOR_IMAGE",
        ));
}

#[test]
fn the_planner_alone_needs_no_image_and_a_missing_cluster_is_retryable() {
    copy_offload()
        .args(["controller", "--run=planner"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .assert()
        .code(4)
        .stderr(predicate::str::contains("the planner stopped"))
        .stderr(predicate::str::contains("VSPHERE_XCOPY_VOLUME_POPULATOR_IMAGE").not());
}

#[test]
fn controller_help_documents_every_setting_with_its_variable() {
    let output = copy_offload()
        .args(["controller", "--help"])
        .assert()
        .code(0)
        .get_output()
        .clone();
    let help = String::from_utf8(output.stdout).unwrap();
    for env in [
        "VSPHERE_XCOPY_VOLUME_POPULATOR_IMAGE",
        "VSPHERE_COPY_OFFLOAD_POPULATOR_IMAGE",
        "MAX_POPULATOR_INFLIGHT",
        "POPULATOR_MAX_ATTEMPTS",
        "POPULATOR_RETRY_BACKOFF_SECONDS",
        "RETAIN_POPULATOR_PODS",
        "POPULATOR_CONTAINER_REQUESTS_CPU",
        "POPULATOR_CONTAINER_REQUESTS_MEMORY",
        "POPULATOR_CONTAINER_LIMITS_CPU",
        "POPULATOR_CONTAINER_LIMITS_MEMORY",
        "POPULATOR_SCRAPE_INTERVAL_SECONDS",
        "POPULATOR_SCRAPE_TIMEOUT_SECONDS",
        "CONTROLLER_HTTP_ENDPOINT",
        "WATCH_NAMESPACE",
        "FORKLIFT_NAMESPACE",
        "FORKLIFT_CONTROLLER_NAME",
        "COPY_OFFLOAD_CONTROLLERS",
    ] {
        assert!(help.contains(env), "{env} missing from:\n{help}");
    }
}

#[test]
fn every_subcommand_is_listed_in_help() {
    let output = copy_offload()
        .arg("--help")
        .assert()
        .code(0)
        .get_output()
        .clone();
    let help = String::from_utf8(output.stdout).unwrap();
    for name in ["populate", "controller", "lab", "preflight", "vib", "crd"] {
        assert!(
            help.contains(&format!("  {name} ")),
            "{name} missing from:\n{help}"
        );
    }
}

#[test]
fn crd_output_is_byte_identical_to_the_checked_in_file() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(co_api::CRDS_FILE);
    let checked_in =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let output = copy_offload()
        .arg("crd")
        .assert()
        .code(0)
        .get_output()
        .clone();
    assert!(
        output.stdout == checked_in,
        "{} is out of date with the CRD types; regenerate it from the repository root with:\n  \
         cargo run -p copy-offload -- crd > {}",
        co_api::CRDS_FILE,
        co_api::CRDS_FILE,
    );
}
