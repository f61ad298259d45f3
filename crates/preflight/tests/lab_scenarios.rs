//! Preflight against the lab: one scenario per condition a migration would otherwise discover
//! late, each giving the expected failure with the expected remedy, and an all-green scenario.

use crate::support;

use base64::Engine as _;
use co_lab::faults::FaultRule;
use co_lab::rig::Rig;
use co_lab::scenario::{
    AdvancedOptionValue, ArraySpec, Scenario, SnapshotSpec, VaaiCloneSpec, VaaiStatusSpec,
    VendorSpec,
};
use co_preflight::{CopyPath, Outcome, Report};
use support::{DISK, HOST, LabRun, assert_fails, ready_scenario, the_one};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_site_passes_every_check_and_predicts_xcopy() {
    let run = LabRun::start(ready_scenario()).await;
    let report = run.preflight(&[], run.options()).await;
    let table = report.to_table();
    assert!(report.ready, "{table}");
    assert_eq!(report.failures().count(), 0, "{table}");
    for (id, subject) in [
        ("vsphere.login", run.lab.vcenter_url.as_str()),
        ("vsphere.privileges", "vCenter"),
        ("vsphere.privileges", HOST),
        ("vsphere.privileges", "ds1"),
        ("host.hardware-accelerated-move", HOST),
        ("host.hardware-accelerated-init", HOST),
        ("host.max-hw-transfer-size", HOST),
        ("host.max-lun", HOST),
        ("host.vib", HOST),
        ("disk.found", DISK),
        ("disk.snapshots", DISK),
        ("disk.same-array", DISK),
    ] {
        assert_eq!(
            the_one(&report, id, subject).outcome,
            Outcome::Pass,
            "{table}"
        );
    }
    let storage = format!("ontap {}", run.lab.arrays[0].url);
    assert_eq!(
        the_one(&report, "storage.login", &storage).outcome,
        Outcome::Pass
    );
    assert_eq!(
        the_one(&report, "storage.api-version", &storage).outcome,
        Outcome::Pass
    );
    assert_eq!(
        the_one(&report, "storage.initiators", HOST).outcome,
        Outcome::Pass
    );
    let ds1_lun = run.datastore_lun("ds1");
    assert_eq!(
        the_one(&report, "host.vaai-clone", &format!("{ds1_lun} on {HOST}")).outcome,
        Outcome::Pass,
        "{table}"
    );
    assert_eq!(report.disks.len(), 1);
    assert_eq!(report.disks[0].path, CopyPath::Xcopy, "{table}");
    assert!(!report.writes);
}

fn with_vaai_clone(status: VaaiStatusSpec) -> Scenario {
    let mut scenario = ready_scenario();
    scenario.vaai_clone.push(VaaiCloneSpec {
        datastore: "ds1".into(),
        status,
    });
    scenario
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_lun_without_vaai_clone_fails_and_predicts_a_host_copy() {
    let run = LabRun::start(with_vaai_clone(VaaiStatusSpec::Unsupported)).await;
    let report = run.preflight(&[], run.options()).await;
    let lun = run.datastore_lun("ds1");
    let subject = format!("{lun} on {HOST}");
    assert_fails(&report, "host.vaai-clone", &subject, "claimrule");
    let check = the_one(&report, "host.vaai-clone", &subject);
    assert!(
        check.remedy.contains(&format!(
            "esxcli storage core device vaai status get -d {lun}"
        )),
        "{}",
        check.remedy
    );
    assert!(check.message.contains("unsupported"), "{}", check.message);
    assert_eq!(report.disks[0].path, CopyPath::HostCopy);
    assert!(
        report.disks[0].reason.contains("VAAI clone unsupported"),
        "{}",
        report.disks[0].reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_lun_with_unknown_vaai_clone_warns_and_stays_ready() {
    let run = LabRun::start(with_vaai_clone(VaaiStatusSpec::Unknown)).await;
    let report = run.preflight(&[], run.options()).await;
    let subject = format!("{} on {HOST}", run.datastore_lun("ds1"));
    let check = the_one(&report, "host.vaai-clone", &subject);
    assert_eq!(check.outcome, Outcome::Warn, "{}", report.to_table());
    assert!(report.ready, "{}", report.to_table());
    assert_eq!(report.disks[0].path, CopyPath::Xcopy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_advanced_settings_fails_on_the_host_with_the_privilege_to_add() {
    let mut scenario = ready_scenario();
    scenario.vcenter.missing_privileges = vec!["Host.Config.AdvancedConfig".into()];
    let run = LabRun::start(scenario).await;
    let report = run.preflight(&[], run.options()).await;
    assert_fails(
        &report,
        "vsphere.privileges",
        HOST,
        "Host › Configuration › Advanced settings",
    );
    let check = the_one(&report, "vsphere.privileges", HOST);
    assert!(
        check.message.contains("Host.Config.AdvancedConfig"),
        "{}",
        check.message
    );
    assert!(
        !check.remedy.contains("Query patch"),
        "only the missing one: {}",
        check.remedy
    );
    assert_eq!(
        the_one(&report, "vsphere.privileges", "ds1").outcome,
        Outcome::Pass
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_the_vib_fails_with_the_install_command() {
    let mut scenario = ready_scenario();
    scenario.hosts[0].vib_installed = false;
    let run = LabRun::start(scenario).await;
    let report = run.preflight(&[], run.options()).await;
    assert_fails(
        &report,
        "host.vib",
        HOST,
        &format!("copy-offload vib install --hosts {HOST}"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardware_accelerated_move_off_fails_and_predicts_a_host_copy() {
    let mut scenario = ready_scenario();
    scenario.hosts[0].advanced_options.insert(
        "/DataMover/HardwareAcceleratedMove".into(),
        AdvancedOptionValue::Long(0),
    );
    let run = LabRun::start(scenario).await;
    let report = run.preflight(&[], run.options()).await;
    assert_fails(
        &report,
        "host.hardware-accelerated-move",
        HOST,
        "esxcli system settings advanced set --option /DataMover/HardwareAcceleratedMove --int-value 1",
    );
    assert_eq!(report.disks[0].path, CopyPath::HostCopy);
    assert!(
        report.disks[0]
            .reason
            .contains("HardwareAcceleratedMove is off")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_max_lun_below_the_next_free_id_fails_with_the_setting_to_restore() {
    let mut scenario = ready_scenario();
    scenario.hosts[0]
        .advanced_options
        .insert("Disk.MaxLUN".into(), AdvancedOptionValue::Long(1));
    let run = LabRun::start(scenario).await;
    let report = run.preflight(&[], run.options()).await;
    assert_fails(
        &report,
        "host.max-lun",
        HOST,
        "esxcli system settings advanced set --option /Disk/MaxLUN --int-value 1024",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_fails_and_predicts_a_host_copy() {
    let mut scenario = ready_scenario();
    scenario.snapshots.push(SnapshotSpec {
        vm: "vm-1".into(),
        name: "before-upgrade".into(),
    });
    let run = LabRun::start(scenario).await;
    let report = run.preflight(&[], run.options()).await;
    assert_fails(
        &report,
        "disk.snapshots",
        DISK,
        "Delete or consolidate the snapshots of VM vm-1",
    );
    assert!(
        the_one(&report, "disk.snapshots", DISK)
            .message
            .contains("before-upgrade")
    );
    assert_eq!(report.disks[0].path, CopyPath::HostCopy);
}

/// Preflight for a copy to the lab's first array (ontap1) of a VM whose datastore lives on a
/// second array, `name`, of `vendor`.
async fn datastore_on_a_second_array(vendor: VendorSpec, name: &str) -> (LabRun, Report) {
    let mut scenario = ready_scenario();
    scenario.arrays.push(ArraySpec {
        name: name.into(),
        vendor,
        svm: "svm0".into(),
        username: "admin".into(),
        password: "lab-Passw0rd".into(),
    });
    scenario.datastores[0].array = Some(name.into());
    let run = LabRun::start(scenario).await;
    let report = run.preflight(&[], run.options()).await;
    assert_fails(
        &report,
        "disk.same-array",
        DISK,
        "Map this VM to a storage class on the array that holds datastore ds1",
    );
    assert_eq!(report.disks[0].path, CopyPath::HostCopy);
    (run, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_datastore_on_another_array_fails_the_same_array_check() {
    let (_run, report) = datastore_on_a_second_array(VendorSpec::PureFlashArray, "pure1").await;
    let check = the_one(&report, "disk.same-array", DISK);
    assert!(
        check.message.contains("vendor id 24a937"),
        "{}",
        check.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_datastore_on_another_array_of_the_same_vendor_fails_the_same_array_check() {
    // Both clusters' LUN names carry NetApp's vendor id: only the array can tell its own.
    let (run, report) = datastore_on_a_second_array(VendorSpec::Ontap, "ontap2").await;
    let check = the_one(&report, "disk.same-array", DISK);
    assert!(
        check.message.contains(&format!(
            "is not a volume of the array at {}",
            run.lab.arrays[0].url
        )),
        "{}",
        check.message
    );
    assert!(check.message.contains("00a098"), "{}", check.message);
}

/// An ed25519 key pair made by `ssh-keygen`, as Forklift's provider controller makes one.
fn client_key() -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ed25519", "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen is missing: run `scripts/peers.sh install` (apt-get install -y openssh-client)");
    assert!(status.success());
    (
        std::fs::read_to_string(&path).unwrap(),
        std::fs::read_to_string(path.with_extension("pub"))
            .unwrap()
            .trim()
            .to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_method_fails_until_the_restricted_key_is_installed() {
    let run = LabRun::start(ready_scenario()).await;
    let (private_pem, public_key) = client_key();
    let b64 = base64::engine::general_purpose::STANDARD;
    let ssh = [
        "--esxi-clone-method=ssh".to_owned(),
        format!("--ssh-private-key={}", b64.encode(&private_pem)),
        format!("--ssh-public-key={}", b64.encode(&public_key)),
    ];
    let host = &run.lab.hosts[0];
    let mut options = run.options();
    options.ssh_host_key = Some(co_esxi::ssh::HostKeyPolicy::Pinned(
        russh::keys::PublicKey::from_openssh(&host.ssh_host_key).unwrap(),
    ));

    host.sim.set_authorized_keys(Vec::new());
    let report = run.preflight(&ssh, options.clone()).await;
    let key_line = co_esxi::restricted_key_line("ds1", &public_key);
    assert_fails(&report, "host.ssh-key", HOST, &key_line);
    assert_eq!(
        report.checks_with_id("host.vib").count(),
        0,
        "the SSH method only"
    );

    host.sim.set_authorized_keys(vec![key_line]);
    let report = run.preflight(&ssh, options).await;
    assert_eq!(
        the_one(&report, "host.ssh-key", HOST).outcome,
        Outcome::Pass,
        "{}",
        report.to_table()
    );
    // Preflight writes nothing, so the wrapper is only placed by the first copy.
    assert_ne!(
        the_one(&report, "host.ssh-wrapper", HOST).outcome,
        Outcome::Fail
    );
    assert!(report.ready, "{}", report.to_table());
}

const PROBE_STEPS: [&str; 6] = [
    "probe.prepare",
    "probe.map",
    "probe.rescan",
    "probe.verify",
    "probe.clone",
    "probe.cleanup",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_clones_a_small_disk_onto_the_throw_away_volume_and_leaves_nothing_behind() {
    let run = LabRun::start(ready_scenario()).await;
    let volume = run.throw_away_volume();
    let report = run.probe(&volume).await;
    let table = report.to_table();
    for id in PROBE_STEPS {
        assert_eq!(the_one(&report, id, DISK).outcome, Outcome::Pass, "{table}");
    }
    assert!(
        the_one(&report, "probe.clone", DISK)
            .message
            .contains("XCOPY used"),
        "{table}"
    );
    assert!(report.ready && report.writes, "{table}");
    assert!(table.contains("The probe wrote"), "{table}");
    let source = std::fs::read(run.lab.datastore_dir("ds1").join("vm-1/vm-1-flat.vmdk")).unwrap();
    let target = std::fs::read(&volume.backing_path).unwrap();
    assert!(
        target.starts_with(&source),
        "the volume holds the disk's bytes"
    );
    let left = Rig::new(&run.lab).leftovers(&[&volume]);
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_whose_clone_fails_says_so_and_still_cleans_up() {
    let run = LabRun::start(ready_scenario()).await;
    let volume = run.throw_away_volume();
    run.lab.faults.add(FaultRule {
        site: "esxcli:vmkfstools taskGet".into(),
        latency_ms: 0,
        error: Some("hostd is restarting".into()),
        times: None,
    });
    let report = run.probe(&volume).await;
    let table = report.to_table();
    let clone = the_one(&report, "probe.clone", DISK);
    assert_eq!(clone.outcome, Outcome::Fail, "{table}");
    assert!(clone.message.contains("hostd is restarting"), "{table}");
    assert_eq!(
        the_one(&report, "probe.verify", DISK).outcome,
        Outcome::Pass,
        "the steps before it passed: {table}"
    );
    assert_eq!(
        the_one(&report, "probe.cleanup", DISK).outcome,
        Outcome::Pass,
        "{table}"
    );
    assert!(!report.ready, "{table}");
    let left = Rig::new(&run.lab).leftovers(&[&volume]);
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_onto_a_volume_the_array_does_not_have_fails_before_mapping_anything() {
    let run = LabRun::start(ready_scenario()).await;
    let mut volume = run.throw_away_volume();
    let before = run.lab.san.mappings(&volume.array);
    volume.volume_handle = format!("{}-gone", volume.volume_handle);
    volume.attributes.clear();
    let report = run.probe(&volume).await;
    let table = report.to_table();
    assert_eq!(
        the_one(&report, "probe.prepare", DISK).outcome,
        Outcome::Fail,
        "{table}"
    );
    assert_eq!(report.checks_with_id("probe.map").count(), 0, "{table}");
    assert_eq!(run.lab.san.mappings(&volume.array), before, "{table}");
}

/// The LUN the preflight fails for an unsupported VAAI clone is the one the probe's copy then
/// proves slow: the clone completes, as a host copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_from_a_lun_without_vaai_clone_warns_of_a_host_copy() {
    let run = LabRun::start(with_vaai_clone(VaaiStatusSpec::Unsupported)).await;
    let volume = run.throw_away_volume();
    let report = run.probe(&volume).await;
    let table = report.to_table();
    let clone = the_one(&report, "probe.clone", DISK);
    assert_eq!(clone.outcome, Outcome::Warn, "{table}");
    assert!(clone.message.contains("XCOPY not used"), "{table}");
    assert_eq!(
        the_one(&report, "probe.cleanup", DISK).outcome,
        Outcome::Pass,
        "{table}"
    );
    let left = Rig::new(&run.lab).leftovers(&[&volume]);
    assert!(left.is_empty(), "left behind: {left:?}");
}
