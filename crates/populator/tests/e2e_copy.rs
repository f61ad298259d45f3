//! The copy engine end to end against the lab: VMDK via XCOPY with the VIB and the SSH executor,
//! bytes verified, and the array, host and datastore left exactly as found (RDM and vVol disks,
//! per vendor: `e2e_vendors.rs`).

use crate::e2e_support;

use co_populator::ExitCode;
use co_populator::run_with;
use e2e_support::{LabRig, MIB};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vmdk_through_the_vib_is_copied_byte_for_byte_and_cleaned_up() {
    let rig = LabRig::start().await;
    rig.target_volume("trident_pvc_vib", 128 * MIB);
    let config = rig.config(&rig.args("trident_pvc_vib"));
    let summary = run_with(config, rig.options("vib")).await;
    assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);
    rig.assert_copied("trident_pvc_vib");
    rig.assert_clean("trident_pvc_vib");
    let report = summary.report.unwrap();
    assert!(report.xcopy_used, "same-array clone is offloaded");
    assert_eq!(report.provisioned_bytes, 64 * MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vmdk_through_the_ssh_wrapper_is_copied_byte_for_byte_and_cleaned_up() {
    let rig = LabRig::start().await;
    rig.target_volume("trident_pvc_ssh", 64 * MIB);
    let mut args = rig.args("trident_pvc_ssh");
    let mut options = rig.options("ssh");
    rig.use_ssh(&mut args, &mut options);
    let summary = run_with(rig.config(&args), options).await;
    assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);
    rig.assert_copied("trident_pvc_ssh");
    rig.assert_clean("trident_pvc_ssh");
    // The wrapper stays on the datastore root for the next copy, verified by hash before each use.
    assert!(
        rig.lab
            .datastore_dir("ds1")
            .join(co_esxi::assets::SSH_WRAPPER_FILE_NAME)
            .exists()
    );
}

/// A host set up for Forklift's populator keeps its key line (`DS=<ds>;CMD=<op>` routed to
/// `secure-vmkfstools-wrapper` on the datastore): the populator detects it, places its own shell
/// wrapper under that name, and copies through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vmdk_through_forklifts_key_line_is_copied_byte_for_byte_and_cleaned_up() {
    let rig = LabRig::start().await;
    rig.target_volume("trident_pvc_forklift", 64 * MIB);
    let mut args = rig.args("trident_pvc_forklift");
    let mut options = rig.options("forklift");
    rig.use_ssh_with_line(&mut args, &mut options, co_esxi::forklift_key_line);
    let summary = run_with(rig.config(&args), options).await;
    assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);
    rig.assert_copied("trident_pvc_forklift");
    rig.assert_clean("trident_pvc_forklift");
    let placed = rig
        .lab
        .datastore_dir("ds1")
        .join(co_esxi::assets::SSH_SHELL_WRAPPER_FILE_NAME);
    assert_eq!(
        std::fs::read_to_string(placed).unwrap(),
        co_esxi::assets::SSH_SHELL_WRAPPER
    );
}

/// The SSH session is opened while the array maps the volume: a host that refuses the key fails
/// the run with the SSH error (not as a cancellation of the mapping it stopped), nothing is
/// written and everything mapped meanwhile is undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_key_the_host_refuses_fails_the_run_with_that_error_and_undoes_the_mapping() {
    let rig = LabRig::start().await;
    rig.target_volume("trident_pvc_nokey", 64 * MIB);
    let mut args = rig.args("trident_pvc_nokey");
    let mut options = rig.options("nokey");
    rig.use_ssh(&mut args, &mut options);
    rig.lab.hosts[0].sim.set_authorized_keys(Vec::new());
    let summary = run_with(rig.config(&args), options).await;
    assert_ne!(summary.exit_code, ExitCode::Success);
    assert_ne!(summary.exit_code, ExitCode::Cancelled);
    let message = summary.error.expect("the SSH refusal").to_string();
    assert!(message.contains("SSH"), "{message}");
    rig.assert_untouched("trident_pvc_nokey");
    rig.assert_clean("trident_pvc_nokey");
}

/// Completion is reported once the volume is released (device detached, unmapped, the worker's
/// mapping intact, the copy's group gone); the host's rescan-delete follows it — in a pod it
/// overlaps the wait for the controller's last scrape — and still ends before the run does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_is_reported_once_the_volume_is_released_and_the_rescan_delete_follows() {
    let rig = LabRig::start().await;
    rig.target_volume("trident_pvc_order", 64 * MIB);
    rig.lab.faults.record_calls();
    let summary = run_with(
        rig.config(&rig.args("trident_pvc_order")),
        rig.options("order"),
    )
    .await;
    assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);
    let reported = summary.completion_reported_at;
    let calls = rig.lab.faults.take_calls();
    let sites: Vec<&str> = calls.iter().map(|c| c.site.as_str()).collect();
    let rescans: Vec<_> = calls
        .iter()
        .filter(|c| c.site == "esxcli:storage core adapter rescan")
        .collect();
    assert_eq!(rescans.len(), 2, "discovery and rescan-delete: {sites:?}");
    assert!(rescans[0].at < reported, "{sites:?}");
    assert!(
        rescans[1].at >= reported,
        "the rescan-delete starts after the completion report: {sites:?}"
    );
    for released in [
        "esxcli:storage core device detached remove",
        "DELETE /api/protocols/san/lun-maps/",
        "DELETE /api/protocols/san/igroups/",
    ] {
        let call = calls
            .iter()
            .find(|c| c.site.contains(released))
            .unwrap_or_else(|| panic!("no {released} call: {sites:?}"));
        assert!(
            call.at < reported,
            "{released} happens before the completion report"
        );
    }
    assert_eq!(
        sites.last(),
        Some(&"soap:Logout"),
        "the session ends after the rescan-delete"
    );
    rig.assert_copied("trident_pvc_order");
    rig.assert_clean("trident_pvc_order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_smaller_than_the_disk_is_refused_before_any_change() {
    let rig = LabRig::start().await;
    rig.target_volume("trident_pvc_small", 32 * MIB);
    let summary = run_with(
        rig.config(&rig.args("trident_pvc_small")),
        rig.options("small"),
    )
    .await;
    assert_eq!(summary.exit_code, ExitCode::Permanent);
    let message = summary.error.unwrap().to_string();
    assert!(message.contains("at least as large"), "{message}");
    rig.assert_untouched("trident_pvc_small");
    rig.assert_clean("trident_pvc_small");
}

/// While the copy waits for its device, the array exposes a different volume to the host's group
/// instead of the target (the lab stands in for a mis-mapping array): the copy only ever accepts
/// the device it resolved, so it refuses, and neither volume is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_volume_mapped_to_the_host_is_refused_before_any_write() {
    use co_lab::arrays::ontap::trident_lun_path;
    let rig = LabRig::start().await;
    let (target, decoy) = ("trident_pvc_target", "trident_pvc_decoy");
    rig.target_volume(target, 64 * MIB);
    rig.target_volume(decoy, 64 * MIB);
    let mut options = rig.options("decoy");
    options.timing.discovery.timeout = std::time::Duration::from_secs(2);
    let san = rig.lab.san.clone();
    options.observer = Some(std::sync::Arc::new(move |phase| {
        if phase == co_populator::Phase::Discover {
            let group = san
                .groups(e2e_support::ARRAY)
                .into_iter()
                .find(|g| g.name.starts_with("xcopy-"))
                .unwrap()
                .name;
            san.unmap(e2e_support::ARRAY, &trident_lun_path(target), &group)
                .unwrap();
            san.map(e2e_support::ARRAY, &trident_lun_path(decoy), &group)
                .unwrap();
        }
    }));
    let summary = run_with(rig.config(&rig.args(target)), options).await;
    let error = summary.error.expect("refused");
    assert!(
        matches!(error, co_populator::CopyError::DeviceNotVisible { .. }),
        "{error}"
    );
    rig.assert_untouched(target);
    rig.assert_untouched(decoy);
    assert!(
        rig.lab.hosts.iter().all(|h| h.sim.task_ids().is_empty()),
        "no clone started"
    );
    // The copy undid its own changes; the decoy mapping is the "array's" doing.
    let group = rig
        .lab
        .san
        .groups(e2e_support::ARRAY)
        .into_iter()
        .find(|g| g.name.starts_with("xcopy-"))
        .expect("group kept: still in use by the decoy mapping")
        .name;
    rig.lab
        .san
        .unmap(e2e_support::ARRAY, &trident_lun_path(decoy), &group)
        .unwrap();
    rig.lab
        .san
        .delete_group(e2e_support::ARRAY, &group)
        .unwrap();
    rig.assert_clean(target);
}

/// The PV names a volume that the verification step must reject: the device is checked against
/// the array's size for it, and a device too small for the disk is never written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_smaller_than_the_disk_is_never_mapped() {
    let rig = LabRig::start().await;
    rig.target_volume("trident_pvc_tiny", 16 * MIB);
    let before = rig.lab.san.mappings(e2e_support::ARRAY);
    let summary = run_with(
        rig.config(&rig.args("trident_pvc_tiny")),
        rig.options("tiny"),
    )
    .await;
    assert_eq!(summary.exit_code, ExitCode::Permanent);
    assert_eq!(
        rig.lab.san.mappings(e2e_support::ARRAY),
        before,
        "array left as found"
    );
}

/// A failure while the clone runs (the host's esxcli stops answering a poll) still aborts the
/// clone on the host and undoes every change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_during_the_clone_aborts_it_and_cleans_up() {
    let rig = LabRig::start().await;
    rig.target_volume("trident_pvc_fail", 64 * MIB);
    rig.lab.faults.add(co_lab::faults::FaultRule {
        site: "esxcli:vmkfstools taskGet".into(),
        latency_ms: 0,
        error: Some("hostd is restarting".into()),
        times: None,
    });
    let summary = run_with(
        rig.config(&rig.args("trident_pvc_fail")),
        rig.options("fail"),
    )
    .await;
    let error = summary.error.expect("the copy fails");
    assert_ne!(summary.exit_code, ExitCode::Success, "{error}");
    assert!(error.to_string().contains("hostd is restarting"), "{error}");
    rig.assert_clean("trident_pvc_fail");
}

/// The host still lists the target's device as `dead timeout` from an earlier, interrupted copy
/// (upstream's restarted pods hit this): it is removed and rediscovered, then the copy succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_device_from_an_earlier_run_is_replaced() {
    use co_lab::RescanKind;
    use co_lab::arrays::ontap::trident_lun_path;
    let rig = LabRig::start().await;
    let flexvol = "trident_pvc_stale";
    rig.target_volume(flexvol, 64 * MIB);
    let host = &rig.lab.hosts[0].sim;
    let lun = trident_lun_path(flexvol);
    rig.lab
        .san
        .create_group(
            e2e_support::ARRAY,
            co_lab::san::GroupSpec {
                name: "earlier-run".into(),
                initiators: host.initiators(),
                protocol: Some("iscsi".into()),
                os_type: Some("vmware".into()),
            },
        )
        .unwrap();
    rig.lab
        .san
        .map(e2e_support::ARRAY, &lun, "earlier-run")
        .unwrap();
    host.rescan(RescanKind::All);
    rig.lab
        .san
        .unmap(e2e_support::ARRAY, &lun, "earlier-run")
        .unwrap();
    rig.lab
        .san
        .delete_group(e2e_support::ARRAY, "earlier-run")
        .unwrap();
    host.rescan(RescanKind::All);
    let naa = rig.lab.san.volume(e2e_support::ARRAY, &lun).unwrap().naa;
    assert_eq!(host.device(&naa).unwrap().state.as_str(), "dead timeout");

    let summary = run_with(rig.config(&rig.args(flexvol)), rig.options("stale")).await;
    assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);
    rig.assert_copied(flexvol);
    rig.assert_clean(flexvol);
}

/// `--migration-host` moves the clone to another host; that host lacks the VIB, so the copy fails
/// with the fix in the message, after undoing the mapping it made for that host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_host_without_the_vib_fails_with_guidance_and_cleans_up() {
    let rig = LabRig::start().await;
    rig.target_volume("trident_pvc_migration", 64 * MIB);
    let mut args = rig.args("trident_pvc_migration");
    args.migration_host = Some(rig.lab.hosts[1].name.clone());
    let summary = run_with(rig.config(&args), rig.options("migration")).await;
    let error = summary.error.expect("fails without the VIB");
    assert_eq!(summary.exit_code, ExitCode::Permanent, "{error}");
    assert!(
        error.to_string().contains(&rig.lab.hosts[1].moid),
        "{error}"
    );
    assert!(error.to_string().to_lowercase().contains("vib"), "{error}");
    rig.assert_untouched("trident_pvc_migration");
    rig.assert_clean("trident_pvc_migration");
}

/// The default lab plus an NFS datastore `nfs1` holding a 64 MiB disk of VM `vm-nfs` on `host`.
fn nfs_scenario(host: Option<co_lab::scenario::HostSpec>) -> co_lab::scenario::Scenario {
    use co_lab::scenario::{DatastoreKind, DatastoreSpec, DiskSpec, Scenario, VmSpec};
    let mut scenario = Scenario::default_embedded();
    scenario.datastores.push(DatastoreSpec {
        name: "nfs1".into(),
        kind: DatastoreKind::Nfs,
        array: None,
        capacity_gib: 16,
    });
    let vm_host = match host {
        Some(spec) => {
            let name = spec.name.clone();
            scenario.hosts.push(spec);
            name
        }
        None => scenario.hosts[0].name.clone(),
    };
    scenario.vms.push(VmSpec {
        name: "vm-nfs".into(),
        host: vm_host,
        disks: vec![DiskSpec {
            datastore: "nfs1".into(),
            size_mib: 64,
            rdm_array: None,
            vvol: false,
        }],
    });
    scenario
}

fn nfs_args(rig: &LabRig, flexvol: &str) -> co_populator::PopulateArgs {
    let mut args = rig.args(flexvol);
    args.source_vmdk = Some("[nfs1] vm-nfs/vm-nfs.vmdk".into());
    args.source_vm_id = Some("vm-nfs".into());
    args
}

fn nfs_vm_files(rig: &LabRig) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(rig.lab.datastore_dir("nfs1").join("vm-nfs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

/// A VMDK on an NFS datastore (no SAN device, so no active paths to choose adapters by) is
/// cloned through the host's SAN adapter onto the target LUN: a host copy, as vmkfstools does
/// between NFS and a SAN LUN, with the bytes verified and nothing left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vmdk_on_an_nfs_datastore_is_host_copied_through_the_vib() {
    let rig = LabRig::start_with(nfs_scenario(None)).await;
    rig.target_volume("trident_pvc_nfs", 64 * MIB);
    let files_before = nfs_vm_files(&rig);
    let summary = run_with(
        rig.config(&nfs_args(&rig, "trident_pvc_nfs")),
        rig.options("nfs"),
    )
    .await;
    assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);
    let source = std::fs::read(
        rig.lab
            .datastore_dir("nfs1")
            .join("vm-nfs/vm-nfs-flat.vmdk"),
    )
    .unwrap();
    assert_eq!(source.len() as u64, 64 * MIB);
    rig.assert_copied_from(&source, "trident_pvc_nfs");
    rig.assert_clean("trident_pvc_nfs");
    assert_eq!(nfs_vm_files(&rig), files_before, "no RDM descriptor left");
    let report = summary.report.unwrap();
    assert!(!report.xcopy_used, "NFS to a SAN LUN is a host copy");
    assert_eq!(
        (report.clone_method, report.storage_protocol),
        (
            co_populator::metrics::CloneMethodLabel::Vib,
            co_populator::metrics::StorageProtocolLabel::Iscsi
        ),
        "mapped through the host's iSCSI adapter"
    );
    assert_eq!(report.provisioned_bytes, 64 * MIB);
}

/// A host that reaches no SAN (an NFS-only host) cannot be given the target LUN: the run fails
/// permanently, naming the host and the datastore, before anything is created on the array.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nfs_source_on_a_host_without_san_adapters_fails_permanently_and_changes_nothing() {
    let host = co_lab::scenario::Scenario::from_yaml(
        "arrays: []\nhosts: [{name: esxi-nfs.lab.local, adapter: local, vib_installed: true}]\ndatastores: []\n",
    )
    .unwrap()
    .hosts
    .remove(0);
    let rig = LabRig::start_with(nfs_scenario(Some(host))).await;
    rig.target_volume("trident_pvc_nosan", 64 * MIB);
    let mappings_before = rig.lab.san.mappings(e2e_support::ARRAY);
    let summary = run_with(
        rig.config(&nfs_args(&rig, "trident_pvc_nosan")),
        rig.options("nosan"),
    )
    .await;
    assert_eq!(
        summary.exit_code,
        ExitCode::Permanent,
        "{:?}",
        summary.error
    );
    let error = summary.error.expect("no SAN adapter");
    assert!(
        matches!(
            &error,
            co_populator::CopyError::Vsphere { source, .. }
                if matches!(**source, co_vsphere::Error::NoSanAdapter { .. })
        ),
        "{error}"
    );
    let message = error.to_string();
    for named in ["esxi-nfs.lab.local", "\"nfs1\"", "vmhba0 (vmw_ahci)"] {
        assert!(message.contains(named), "{named} missing: {message}");
    }
    rig.assert_untouched("trident_pvc_nosan");
    rig.assert_clean("trident_pvc_nosan");
    assert_eq!(rig.lab.san.mappings(e2e_support::ARRAY), mappings_before);
    assert_eq!(nfs_vm_files(&rig), ["vm-nfs-flat.vmdk", "vm-nfs.vmdk"]);
}
