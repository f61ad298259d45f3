//! `copy-offload preflight` as a user runs it: the migration Secret's environment, a VM, `-o json`
//! parsed back; exit 0 on a ready lab, 3 with the failing check and its remedy otherwise.

use assert_cmd::cargo::cargo_bin_cmd;
use co_lab::lab::{Lab, RunningLab};
use co_lab::rig::{Rig, facade};
use co_lab::scenario::{AdvancedOptionValue, Scenario};

async fn start(scenario: Scenario) -> (RunningLab, tempfile::TempDir) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::start(scenario, dir.path()).await.unwrap();
    (lab, dir)
}

/// Runs `copy-offload preflight --vm vm-1 -o json` with the Secret's variables for `lab`; returns
/// the exit code and the parsed report.
async fn preflight_json(lab: &RunningLab) -> (i32, serde_json::Value) {
    let (code, report, _) = preflight_json_with(lab, &[]).await;
    (code, report)
}

/// [`preflight_json`] with more arguments; also returns stderr.
async fn preflight_json_with(
    lab: &RunningLab,
    extra: &[String],
) -> (i32, serde_json::Value, String) {
    let array = &lab.arrays[0];
    let facade = facade(array.vendor);
    let mut cmd = cargo_bin_cmd!("copy-offload");
    cmd.env_clear()
        .env("STORAGE_VENDOR", facade.product())
        .env("STORAGE_HOSTNAME", &array.url)
        .env("STORAGE_USERNAME", &array.username)
        .env("STORAGE_PASSWORD", &array.password)
        .env("STORAGE_SKIP_SSL_VERIFICATION", "true")
        .env("GOVMOMI_HOSTNAME", &lab.vcenter_url)
        .env("GOVMOMI_USERNAME", &lab.username)
        .env("GOVMOMI_PASSWORD", &lab.password)
        .env("GOVMOMI_INSECURE", "true")
        .args(["preflight", "--vm", "vm-1", "-o", "json"])
        .args(
            facade
                .vendor_flags(array)
                .iter()
                .map(|(flag, value)| flag.with_value(value)),
        )
        .args(extra);
    // The lab answers on this runtime's workers while the binary runs.
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (
        output.status.code().unwrap_or(-1),
        report,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn checks<'a>(report: &'a serde_json::Value, id: &str) -> Vec<&'a serde_json::Value> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_lab_exits_0_with_every_check_passing_or_warning() {
    let mut scenario = Scenario::default_embedded();
    scenario.hosts[0].advanced_options.insert(
        "DataMover.MaxHWTransferSize".into(),
        AdvancedOptionValue::Long(16384),
    );
    let (lab, _dir) = start(scenario).await;
    let (code, report) = preflight_json(&lab).await;
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ready"], true);
    assert_eq!(report["writes"], false);
    let outcomes: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["outcome"].as_str().unwrap())
        .collect();
    assert!(!outcomes.contains(&"fail"), "{report:#}");
    assert!(
        outcomes.iter().filter(|o| **o == "pass").count() >= 12,
        "{report:#}"
    );
    assert_eq!(report["disks"][0]["disk"], "[ds1] vm-1/vm-1.vmdk");
    assert_eq!(report["disks"][0]["path"], "xcopy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_the_vib_exits_3_with_the_failing_check_and_its_remedy() {
    let mut scenario = Scenario::default_embedded();
    scenario.hosts[0].vib_installed = false;
    let (lab, _dir) = start(scenario).await;
    let (code, report) = preflight_json(&lab).await;
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(report["ready"], false);
    let vib = checks(&report, "host.vib");
    assert_eq!(vib.len(), 1, "{report:#}");
    assert_eq!(vib[0]["subject"], "esxi-1.lab.local");
    assert_eq!(vib[0]["outcome"], "fail");
    assert!(
        vib[0]["remedy"]
            .as_str()
            .unwrap()
            .contains("copy-offload vib install --hosts esxi-1.lab.local"),
        "{report:#}"
    );
}

#[test]
fn argument_problems_are_reported_as_preflight_arguments() {
    let output = cargo_bin_cmd!("copy-offload")
        .env_clear()
        .env("STORAGE_VENDOR", "ontap")
        .args(["preflight", "--vm", "vm-1", "--disk", "no-brackets.vmdk"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("problems with the preflight arguments:"),
        "{stderr}"
    );
    assert!(!stderr.contains("populate arguments"), "{stderr}");
    // Both kinds in the one list: preflight's own flag and a shared setting.
    assert!(stderr.contains("--disk"), "{stderr}");
    assert!(stderr.contains("GOVMOMI_HOSTNAME"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_says_it_writes_copies_onto_the_throw_away_volume_and_cleans_up() {
    let mut scenario = Scenario::default_embedded();
    scenario.hosts[0].advanced_options.insert(
        "DataMover.MaxHWTransferSize".into(),
        AdvancedOptionValue::Long(16384),
    );
    let (lab, _dir) = start(scenario).await;
    let rig = Rig::new(&lab);
    // A volume name of this test's own: the probe's journal is named after the volume handle.
    let volume = rig.target_volume("probe-cli", 64 * 1024 * 1024).unwrap();
    let mut extra = vec![
        "--probe".to_owned(),
        "--probe-disk=[ds1] vm-1/vm-1.vmdk".to_owned(),
        format!("--target-volume-handle={}", volume.volume_handle),
    ];
    extra.extend(
        volume
            .attributes
            .iter()
            .map(|(k, v)| format!("--target-volume-attribute={k}={v}")),
    );
    let (code, report, stderr) = preflight_json_with(&lab, &extra).await;
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert!(stderr.contains("preflight --probe WRITES"), "{stderr}");
    assert_eq!(report["writes"], true);
    for id in ["probe.map", "probe.rescan", "probe.clone", "probe.cleanup"] {
        let found = checks(&report, id);
        assert_eq!(found.len(), 1, "{id}: {report:#}");
        assert_eq!(found[0]["outcome"], "pass", "{id}: {report:#}");
    }
    let left = rig.leftovers(&[&volume]);
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn probe_without_a_disk_to_copy_is_an_argument_error() {
    let output = cargo_bin_cmd!("copy-offload")
        .env_clear()
        .args(["preflight", "--vm", "vm-1", "--probe"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--probe-disk: missing"), "{stderr}");
}
