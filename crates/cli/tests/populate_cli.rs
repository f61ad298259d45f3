//! `copy-offload populate` as the populator controller runs it: flags in `--name=value` form, the
//! rest from the migration Secret's env; validation before any network call, every problem listed,
//! exit code 2; `--version` always answers; secrets never printed.

use std::net::TcpListener;

use assert_cmd::cargo::cargo_bin_cmd;
use predicates::prelude::*;

/// A `populate` command with a clean environment, so the host's env cannot leak in.
fn populate() -> assert_cmd::Command {
    let mut cmd = cargo_bin_cmd!("copy-offload");
    cmd.env_clear()
        .env("COPY_OFFLOAD_LOG_FORMAT", "text")
        .env("RUST_LOG", "info")
        .arg("populate");
    cmd
}

/// The args the populator controller builds plus the two the machinery
/// appends, in the same `--name=value` form.
const CONTROLLER_ARGS: &[&str] = &[
    "--source-vm-id=vm-42",
    "--source-vmdk=[iscsi ds] vms/vm 42/vm 42.vmdk",
    "--target-namespace=migrated",
    "--cr-name=plan-vm-42-disk-0",
    "--cr-namespace=migrated",
    "--owner-name=plan-vm-42-disk-0",
    "--secret-name=plan-vm-42-secret-0",
    "--storage-vendor-product=ontap",
    "--migration-host=host-7",
    "--pvc-size=10737418240",
    "--owner-uid=3f1c2a8e-5b7d-4c1e-9f0a-6d2b8e4c7a15",
];

const STORAGE_PASSWORD: &str = "st0rage-Pa55!";
const VSPHERE_PASSWORD: &str = "vc-Pa55-w0rd#";
const STORAGE_TOKEN: &str = "tok-9f8e7d6c5b4a";
const SSH_PRIVATE_KEY: &str = "LS0tLS1CRUdJTiBPUEVOU1NIIFBSSVZBVEUgS0VZLS0tLS0K";

/// The migration Secret as Forklift's `mergeSecrets` fills it, including keys
/// this program does not read.
fn with_secret_env(cmd: &mut assert_cmd::Command) -> &mut assert_cmd::Command {
    // Loopback ports nothing listens on: a run that gets past validation fails fast, offline.
    cmd.arg("--http-endpoint=127.0.0.1:0")
        .env("STORAGE_HOSTNAME", "127.0.0.1:9")
        .env("STORAGE_USERNAME", "admin")
        .env("STORAGE_PASSWORD", STORAGE_PASSWORD)
        .env("STORAGE_SKIP_SSL_VERIFICATION", "false")
        .env("GOVMOMI_HOSTNAME", "127.0.0.1:9")
        .env("GOVMOMI_USERNAME", "administrator@vsphere.local")
        .env("GOVMOMI_PASSWORD", VSPHERE_PASSWORD)
        .env("GOVMOMI_INSECURE", "true")
        .env("ESXI_CLONE_METHOD", "vib")
        .env("HOST_LEASE_NAMESPACE", "openshift-mtv")
        .env("HOST_LEASE_DURATION_SECONDS", "10")
        .env("SSH_PRIVATE_KEY", SSH_PRIVATE_KEY)
        .env("SSH_PUBLIC_KEY", "c3NoLXJzYSBBQUFB")
        .env("accessKeyId", "administrator@vsphere.local")
        .env("secretKey", VSPHERE_PASSWORD)
        .env("user", "administrator@vsphere.local")
        .env("password", VSPHERE_PASSWORD)
        .env("insecureSkipVerify", "true")
        .env("STORAGE_TOKEN", "")
}

#[test]
fn no_arguments_exit_2_and_list_every_missing_value() {
    let output = populate().assert().code(2).get_output().clone();
    let stderr = String::from_utf8(output.stderr).unwrap();
    let expected = [
        "--source-vmdk (env: none): missing; expected a datastore path like \"[datastore1] vm-1/vm-1.vmdk\"",
        "--owner-name (env: none): missing",
        "--owner-uid (env: none): missing",
        "--target-namespace (env: none): missing",
        "--storage-vendor-product (env: STORAGE_VENDOR): missing",
        "--storage-hostname (env: STORAGE_HOSTNAME): missing",
        "--storage-token (env: STORAGE_TOKEN) or --storage-username (env: STORAGE_USERNAME) and --storage-password (env: STORAGE_PASSWORD): missing",
        "--vsphere-hostname (env: GOVMOMI_HOSTNAME): missing",
        "--vsphere-username (env: GOVMOMI_USERNAME): missing",
        "--vsphere-password (env: GOVMOMI_PASSWORD): missing",
    ];
    for line in expected {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
    assert!(
        stderr.starts_with("10 problems with the populate arguments:\n"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("--source-vm-id"),
        "the VM id is optional:\n{stderr}"
    );
    assert!(output.stdout.is_empty());
}

/// An environment value that is not UTF-8 is named, with the other problems, exit 2.
#[test]
fn a_non_utf8_environment_value_is_named() {
    use std::os::unix::ffi::OsStringExt as _;
    let output = populate()
        .env(
            "STORAGE_HOSTNAME",
            std::ffi::OsString::from_vec(vec![0xff, 0xfe]),
        )
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("--storage-hostname (env: STORAGE_HOSTNAME): is not valid UTF-8"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--source-vmdk (env: none): missing"),
        "{stderr}"
    );
}

/// An unknown flag is one more problem in the list, not the only one reported.
#[test]
fn unknown_flags_are_listed_with_every_other_problem() {
    let output = populate()
        .args(["--no-such-flag", "x", "--also-wrong=1"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("12 problems with the populate arguments:\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--no-such-flag: is not a flag of copy-offload populate"),
        "{stderr}"
    );
    assert!(stderr.contains("--also-wrong: is not a flag"), "{stderr}");
    assert!(
        stderr.contains("--source-vmdk (env: none): missing"),
        "{stderr}"
    );
}

/// Logs read from a file carry no colour codes, and the configuration line names what the run
/// will do without the CA certificate's text (only its fingerprint).
#[test]
fn logs_off_a_terminal_are_plain_and_name_certificates_by_fingerprint() {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUJ9Yq2Y5s0wAAAAAAAAAAAAAAAAAwCgYIKoZIzj0EAwIw\n-----END CERTIFICATE-----\n";
    let output = with_secret_env(&mut populate())
        .args(CONTROLLER_ARGS)
        .args(["--target-volume-handle=h", "--storage-hostname=127.0.0.1:1"])
        .env("cacert", pem)
        .assert()
        .get_output()
        .clone();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains('\u{1b}'), "ANSI escapes in:\n{stderr}");
    let configured = stderr
        .lines()
        .find(|l| l.contains("arguments validated"))
        .unwrap_or_else(|| panic!("no configuration line in:\n{stderr}"));
    assert!(!configured.contains("BEGIN CERTIFICATE"), "{configured}");
    assert!(!configured.contains("MIIB"), "{configured}");
}

#[test]
fn bad_vendor_names_the_nine_valid_ones() {
    let mut cmd = populate();
    with_secret_env(&mut cmd);
    cmd.args(CONTROLLER_ARGS)
        .arg("--storage-vendor-product=netapp");
    cmd.assert().code(2).stderr(predicate::str::contains(
        "--storage-vendor-product (env: STORAGE_VENDOR): \"netapp\" is not a supported storage vendor product; \
         expected one of: vantara, ontap, primera3par, pureFlashArray, powerflex, powermax, powerstore, \
         infinibox, flashsystem",
    ));
}

#[test]
fn the_controllers_arguments_and_secret_env_are_accepted() {
    let mut cmd = populate();
    with_secret_env(&mut cmd);
    cmd.args(CONTROLLER_ARGS);
    // Everything validates; the copy then fails for lack of a cluster, which is not exit code 2.
    cmd.assert()
        .code(predicate::in_iter([3, 4]))
        .stderr(predicate::str::contains("problems with the populate arguments").not())
        .stderr(predicate::str::contains("arguments validated"));
}

#[test]
fn migration_host_and_vm_id_are_optional() {
    let mut cmd = populate();
    with_secret_env(&mut cmd);
    cmd.args(
        CONTROLLER_ARGS
            .iter()
            .filter(|a| !a.starts_with("--migration-host") && !a.starts_with("--source-vm-id")),
    );
    cmd.assert()
        .code(predicate::in_iter([3, 4]))
        .stderr(predicate::str::contains("arguments validated"));
}

#[test]
fn flag_wins_over_env() {
    let mut cmd = populate();
    with_secret_env(&mut cmd);
    cmd.env("STORAGE_VENDOR", "bogus").args(CONTROLLER_ARGS);
    cmd.assert()
        .code(predicate::in_iter([3, 4]))
        .stderr(predicate::str::contains("storage_vendor=\"ontap\""))
        .stderr(predicate::str::contains("bogus").not());
}

#[test]
fn env_is_used_when_the_flag_is_absent() {
    let mut cmd = populate();
    with_secret_env(&mut cmd);
    cmd.env("STORAGE_VENDOR", "powerstore").args(
        CONTROLLER_ARGS
            .iter()
            .filter(|a| !a.starts_with("--storage-vendor-product")),
    );
    cmd.assert()
        .code(predicate::in_iter([3, 4]))
        .stderr(predicate::str::contains("storage_vendor=\"powerstore\""));
}

#[test]
fn invalid_clone_method_is_rejected() {
    let mut cmd = populate();
    with_secret_env(&mut cmd);
    cmd.env("ESXI_CLONE_METHOD", "shh").args(CONTROLLER_ARGS);
    cmd.assert().code(2).stderr(predicate::str::contains(
        "--esxi-clone-method (env: ESXI_CLONE_METHOD): \"shh\" is not a clone method; expected \"vib\" (the default) or \"ssh\"",
    ));
}

#[test]
fn malformed_vmdk_path_is_rejected_with_the_expected_shape() {
    let mut cmd = populate();
    with_secret_env(&mut cmd);
    cmd.args(CONTROLLER_ARGS).arg("--source-vmdk=ds/vm/vm.vmdk");
    cmd.assert().code(2).stderr(predicate::str::contains(
        "--source-vmdk (env: none): \"ds/vm/vm.vmdk\" is not valid: the path must start with \"[\"; expected a datastore path like \"[datastore1] vm-1/vm-1.vmdk\"",
    ));
}

#[test]
fn secrets_are_never_printed() {
    // Failing validation, with every secret set and a malformed SSH key.
    let mut cmd = populate();
    with_secret_env(&mut cmd);
    cmd.env("STORAGE_TOKEN", STORAGE_TOKEN)
        .env("ESXI_CLONE_METHOD", "ssh")
        .env("SSH_PRIVATE_KEY", format!("!{STORAGE_PASSWORD}"))
        .args(CONTROLLER_ARGS)
        .arg("--storage-vendor-product=netapp");
    let failed = cmd.assert().code(2).get_output().clone();

    // Passing validation, which logs the resolved configuration.
    let mut cmd = populate();
    with_secret_env(&mut cmd);
    cmd.env("STORAGE_TOKEN", STORAGE_TOKEN)
        .args(CONTROLLER_ARGS);
    let validated = cmd
        .assert()
        .code(predicate::in_iter([3, 4]))
        .get_output()
        .clone();
    let validated_stderr = String::from_utf8_lossy(&validated.stderr).into_owned();
    assert!(
        validated_stderr.contains("arguments validated"),
        "{validated_stderr}"
    );

    for output in [failed, validated] {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        for secret in [
            STORAGE_PASSWORD,
            VSPHERE_PASSWORD,
            STORAGE_TOKEN,
            SSH_PRIVATE_KEY,
        ] {
            assert!(
                !text.contains(secret),
                "secret {secret:?} printed in:\n{text}"
            );
        }
    }
}

#[test]
fn help_does_not_show_secret_env_values() {
    let mut cmd = populate();
    with_secret_env(&mut cmd);
    let output = cmd.arg("--help").assert().code(0).get_output().clone();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("[env: STORAGE_PASSWORD]"), "{help}");
    assert!(!help.contains(STORAGE_PASSWORD) && !help.contains(VSPHERE_PASSWORD));
}

/// A listener standing in for vCenter and the array: if anything connected, `accept` finds it.
struct Tripwire(TcpListener);

impl Tripwire {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Self(listener)
    }

    fn addr(&self) -> String {
        self.0.local_addr().unwrap().to_string()
    }

    fn assert_untouched(&self) {
        match self.0.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((_, peer)) => panic!("something connected from {peer}"),
            Err(e) => panic!("accept failed: {e}"),
        }
    }
}

#[test]
fn version_answers_with_garbage_arguments_and_no_network() {
    let tripwire = Tripwire::new();
    let addr = tripwire.addr();
    let expected = format!(
        "copy-offload {}\nvmkfstools-wrapper {}\n",
        env!("CARGO_PKG_VERSION"),
        co_esxi::assets::WRAPPER_VERSION
    );
    populate()
        .env("STORAGE_HOSTNAME", format!("https://{addr}"))
        .env("GOVMOMI_HOSTNAME", &addr)
        .args([
            "--no-such-flag",
            "--storage-vendor-product=netapp",
            "--version",
            "positional",
        ])
        .assert()
        .code(0)
        .stdout(expected.clone());
    populate()
        .arg("-version=true")
        .assert()
        .code(0)
        .stdout(expected.clone());
    cargo_bin_cmd!("copy-offload")
        .env_clear()
        .arg("--version")
        .assert()
        .code(0)
        .stdout(expected);
    tripwire.assert_untouched();
}

#[test]
fn validation_failures_happen_before_any_network_call() {
    let tripwire = Tripwire::new();
    let addr = tripwire.addr();
    let mut cmd = populate();
    with_secret_env(&mut cmd);
    cmd.env("STORAGE_HOSTNAME", format!("https://{addr}"))
        .env("GOVMOMI_HOSTNAME", &addr)
        .args(CONTROLLER_ARGS)
        .arg("--source-vmdk=[ds] ../escape.vmdk");
    cmd.assert().code(2);
    tripwire.assert_untouched();
}

#[test]
fn clap_usage_errors_exit_2() {
    populate().arg("--no-such-flag=1").assert().code(2);
    populate().arg("--storage-password").assert().code(2);
}
