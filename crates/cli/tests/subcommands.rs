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
fn unbuilt_subcommands_say_so_and_fail() {
    let cases: [&[&str]; 2] = [&["controller"], &["preflight"]];
    for args in cases {
        copy_offload()
            .args(args)
            .assert()
            .code(1)
            .stdout(predicate::str::is_empty())
            .stderr(predicate::str::contains("not built yet"));
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
