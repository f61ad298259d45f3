//! Disks whose VM and folder names carry what vSphere allows — apostrophes, spaces, brackets,
//! non-ASCII letters, U+00A0 and U+3000 spaces — copy end to end through both clone methods in
//! the lab, byte for byte, and leave their folders as found.

use crate::e2e_support;

use co_lab::scenario::{DiskSpec, Scenario, VmSpec};
use co_populator::ExitCode;
use co_populator::run_with;
use e2e_support::{LabRig, MIB};

const VMS: [&str; 4] = [
    "Bob's VM",
    "[web] (prod) {1}",
    "仮想マシン Müller Café",
    "no\u{a0}break\u{3000}vm",
];

async fn rig() -> LabRig {
    let mut scenario = Scenario::default_embedded();
    let host = scenario.vms[0].host.clone();
    for name in VMS {
        scenario.vms.push(VmSpec {
            name: name.to_owned(),
            host: host.clone(),
            disks: vec![DiskSpec {
                datastore: "ds1".into(),
                size_mib: 4,
                rdm_array: None,
                vvol: false,
            }],
        });
    }
    LabRig::start_with(scenario).await
}

async fn copies_every_name_through(method: &str) {
    let rig = rig().await;
    for (index, vm) in VMS.iter().enumerate() {
        let flexvol = format!("trident_pvc_{method}_{index}");
        rig.target_volume(&flexvol, 8 * MIB);
        let mut args = rig.args(&flexvol);
        args.source_vmdk = Some(format!("[ds1] {vm}/{vm}.vmdk"));
        let mut options = rig.options(&flexvol);
        if method == "ssh" {
            rig.use_ssh(&mut args, &mut options);
        }
        let summary = run_with(rig.config(&args), options).await;
        assert_eq!(
            summary.exit_code,
            ExitCode::Success,
            "{method} {vm:?}: {:?}",
            summary.error
        );
        let source = std::fs::read(
            rig.lab
                .datastore_dir("ds1")
                .join(vm)
                .join(format!("{vm}-flat.vmdk")),
        )
        .unwrap();
        assert_eq!(source.len() as u64, 4 * MIB);
        rig.assert_copied_from(&source, &flexvol);
        assert_eq!(
            rig.vm_files(vm),
            [format!("{vm}-flat.vmdk"), format!("{vm}.vmdk")],
            "{method} {vm:?}: files left in the VM folder"
        );
        assert!(
            rig.lab.hosts[0].sim.task_ids().is_empty(),
            "{method} {vm:?}: clone task left"
        );
    }
    let host = &rig.lab.hosts[0].sim;
    let sources: Vec<String> = host
        .wrapper_commands()
        .into_iter()
        .filter_map(|command| match command {
            co_esxi::protocol::WrapperCommand::Clone { source_vmdk, .. } => Some(source_vmdk),
            _ => None,
        })
        .collect();
    let expected: Vec<String> = VMS
        .iter()
        .map(|vm| format!("/vmfs/volumes/ds1/{vm}/{vm}.vmdk"))
        .collect();
    assert_eq!(sources, expected, "{method}: the host received other paths");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_disk_names_copy_through_the_vib() {
    copies_every_name_through("vib").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_disk_names_copy_through_the_ssh_wrapper() {
    copies_every_name_through("ssh").await;
}
