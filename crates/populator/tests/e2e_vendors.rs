//! Every storage vendor with a plugin, end to end in the lab through the one rig: the lab's array
//! speaks that vendor's REST API, the target is the volume that vendor's CSI driver would have made
//! for the PVC, and the copy runs through VIB and through SSH. The bytes arrive, and the array and
//! the hosts are left as found. RDM and vVol disks go through the array's own copy where the
//! vendor has one, and through XCOPY otherwise; the test records which (the README's vendor table).

use crate::e2e_support;

use co_lab::scenario::VendorSpec;
use co_populator::ExitCode;
use co_populator::Phase;
use co_populator::journal::CleanupStep;
use co_populator::{RunSummary, run_with};
use co_testpeers::vendor_matrix::{Cell, record};
use e2e_support::{LabRig, MIB, VENDORS, scenario_for};

async fn copy_a_vmdk(vendor: VendorSpec, ssh: bool) {
    let rig = LabRig::start_with(scenario_for(vendor)).await;
    let name = if ssh { "pvc_ssh" } else { "pvc_vib" };
    rig.target_volume(name, 64 * MIB);
    let mut args = rig.args(name);
    let mut options = rig.options(name);
    if ssh {
        rig.use_ssh(&mut args, &mut options);
    }
    let summary = run_with(rig.config(&args), options).await;
    assert_eq!(
        summary.exit_code,
        ExitCode::Success,
        "{vendor:?} ssh={ssh}: {:?}",
        summary.error
    );
    rig.assert_copied(name);
    rig.assert_clean(name);
    let report = summary.report.as_ref().expect("a successful run reports");
    assert_eq!(
        report.xcopy_used,
        !copies_through_the_host(vendor),
        "{vendor:?} ssh={ssh}: whether the clone was offloaded (XCOPY)"
    );
    let product = rig.rig().facade().product();
    record(product, if ssh { Cell::VmdkSsh } else { Cell::VmdkVib });
}

/// Whether ESXi copies onto this vendor's volumes itself: PowerFlex volumes are reached through
/// the host's SDC, which offloads no clone, so the report must say `xcopyUsed` false.
fn copies_through_the_host(vendor: VendorSpec) -> bool {
    vendor == VendorSpec::PowerFlex
}

/// How the run copied: by the array itself (journaled as a copy session and ended at cleanup),
/// by XCOPY on the host, or (PowerFlex) by the host without XCOPY.
fn copied_how(summary: &RunSummary, vendor: VendorSpec) -> &'static str {
    let report = summary.report.as_ref().expect("a successful run reports");
    let phases: Vec<Phase> = report.phases.iter().map(|(phase, _)| *phase).collect();
    if phases.contains(&Phase::ArrayCopy) {
        assert!(
            summary
                .cleanup
                .iter()
                .any(|step| matches!(step, CleanupStep::EndArrayCopy { .. })),
            "{vendor:?}: the array copy session was journaled and ended: {:?}",
            summary.cleanup
        );
        "array copy"
    } else if copies_through_the_host(vendor) {
        assert!(
            phases.contains(&Phase::Clone) && !report.xcopy_used,
            "{vendor:?}: not a host copy without XCOPY: {phases:?}, xcopy_used {}",
            report.xcopy_used
        );
        "host copy"
    } else {
        assert!(
            phases.contains(&Phase::Clone) && report.xcopy_used,
            "{vendor:?}: neither an array copy nor an XCOPY clone: {phases:?}"
        );
        "XCOPY"
    }
}

async fn copy_an_rdm_disk(vendor: VendorSpec) {
    let mut scenario = scenario_for(vendor);
    let array = scenario.arrays[0].name.clone();
    scenario.vms[0].disks[0].rdm_array = Some(array.clone());
    // The PVC has the disk's capacity, as the planner sizes it (an array copy may need equal sizes).
    let size = scenario.vms[0].disks[0].size_mib * MIB;
    let rig = LabRig::start_with(scenario).await;
    rig.target_volume("pvc_rdm", size);
    let files_before = rig.vm_files("vm-1");
    let summary = run_with(rig.config(&rig.args("pvc_rdm")), rig.options("pvc_rdm")).await;
    assert_eq!(
        summary.exit_code,
        ExitCode::Success,
        "{vendor:?}: {:?}",
        summary.error
    );
    let how = copied_how(&summary, vendor);
    let source = rig.lab.san.volume(&array, "rdm-vm-1-0").unwrap();
    let bytes = std::fs::read(source.backing_path).unwrap();
    rig.assert_copied_from(&bytes, "pvc_rdm");
    let left = rig.rig().leftovers(&[&rig.target("pvc_rdm")]);
    assert!(left.is_empty(), "{vendor:?}: left behind: {left:?}");
    assert_eq!(rig.vm_files("vm-1"), files_before, "no RDM descriptor left");
    record(rig.rig().facade().product(), Cell::Rdm(how));
}

async fn copy_a_vvol_disk(vendor: VendorSpec) {
    let mut scenario = scenario_for(vendor);
    scenario.vms[0].disks[0].vvol = true;
    let rig = LabRig::start_with(scenario).await;
    rig.target_volume("pvc_vvol", 64 * MIB);
    let summary = run_with(rig.config(&rig.args("pvc_vvol")), rig.options("pvc_vvol")).await;
    assert_eq!(
        summary.exit_code,
        ExitCode::Success,
        "{vendor:?}: {:?}",
        summary.error
    );
    let how = copied_how(&summary, vendor);
    rig.assert_copied("pvc_vvol");
    rig.assert_clean("pvc_vvol");
    record(rig.rig().facade().product(), Cell::Vvol(how));
}

/// One test per vendor and kind of disk, so the vendors run side by side.
macro_rules! every_kind_of_disk {
    ($($module:ident => $vendor:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn copies_a_vmdk_through_the_vib() {
                copy_a_vmdk($vendor, false).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn copies_a_vmdk_through_ssh() {
                copy_a_vmdk($vendor, true).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn copies_an_rdm_disk() {
                copy_an_rdm_disk($vendor).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn copies_a_vvol_disk() {
                copy_a_vvol_disk($vendor).await;
            }
        }
    )*};
}

every_kind_of_disk! {
    ontap => VendorSpec::Ontap,
    pure_flash_array => VendorSpec::PureFlashArray,
    powerstore => VendorSpec::PowerStore,
    flashsystem => VendorSpec::FlashSystem,
    powermax => VendorSpec::PowerMax,
    infinibox => VendorSpec::InfiniBox,
    primera3par => VendorSpec::Primera3Par,
    vantara => VendorSpec::Vantara,
    powerflex => VendorSpec::PowerFlex,
}

#[test]
fn every_vendor_of_the_end_to_end_list_is_copied_here() {
    let source = include_str!("e2e_vendors.rs");
    for vendor in VENDORS {
        assert!(
            source.contains(&format!("=> VendorSpec::{vendor:?},")),
            "add `{vendor:?}` to every_kind_of_disk!"
        );
    }
}
