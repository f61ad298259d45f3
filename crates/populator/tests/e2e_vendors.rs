//! Every storage vendor with a plugin, end to end in the lab through the one rig: the lab's array
//! speaks that vendor's REST API, the target is the volume that vendor's CSI driver would have made
//! for the PVC, and the copy runs through VIB and through SSH. The bytes arrive, and the array and
//! the hosts are left as found. RDM disks go through the array's own copy where it has one.

mod e2e_support;

use co_lab::scenario::{Scenario, VendorSpec};
use co_populator::exit::ExitCode;
use co_populator::journal::CleanupStep;
use co_populator::run::run_with;
use e2e_support::{LabRig, MIB};

const VENDORS: [VendorSpec; 4] = [
    VendorSpec::Ontap,
    VendorSpec::PureFlashArray,
    VendorSpec::PowerStore,
    VendorSpec::Vantara,
];

fn scenario(vendor: VendorSpec) -> Scenario {
    let mut scenario = Scenario::default_embedded();
    scenario.arrays[0].vendor = vendor;
    scenario
}

async fn copy_with(vendor: VendorSpec, ssh: bool) {
    let rig = LabRig::start_with(scenario(vendor)).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_copies_a_vmdk_through_vib_and_ssh() {
    for vendor in VENDORS {
        copy_with(vendor, false).await;
        copy_with(vendor, true).await;
    }
}

/// Pure copies an RDM disk on the array itself: the copy session is journaled before it starts
/// and ended at cleanup, and the bytes are the RDM volume's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pure_copies_an_rdm_disk_on_the_array() {
    let mut scenario = scenario(VendorSpec::PureFlashArray);
    let array = scenario.arrays[0].name.clone();
    scenario.vms[0].disks[0].rdm_array = Some(array.clone());
    let rig = LabRig::start_with(scenario).await;
    rig.target_volume("pvc_rdm", 64 * MIB);
    let summary = run_with(rig.config(&rig.args("pvc_rdm")), rig.options("pvc_rdm")).await;
    assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);
    assert!(
        summary
            .cleanup
            .iter()
            .any(|step| matches!(step, CleanupStep::EndArrayCopy { .. })),
        "the array copy session was journaled and ended: {:?}",
        summary.cleanup
    );
    let source = rig.lab.san.volume(&array, "rdm-vm-1-0").unwrap();
    let bytes = std::fs::read(source.backing_path).unwrap();
    rig.assert_copied_from(&bytes[..(64 * MIB) as usize], "pvc_rdm");
    let left = rig.rig().leftovers(&[&rig.target("pvc_rdm")]);
    assert!(left.is_empty(), "left behind: {left:?}");
}
