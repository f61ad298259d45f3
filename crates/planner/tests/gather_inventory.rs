//! Reading a plan's inputs against the real kube-apiserver peer and the lab's vCenter: the
//! inventory of a lab VM (disks, datastore ids and names, capacities, backing kinds, NAA), the
//! Secrets the plan's objects name, and the load of a migration host.

use crate::plan_objects;
use crate::support;

use co_api::{CopyPhase, Plan};
use co_lab::lab::Lab;
use co_planner::gather::{GatherError, gather};
use co_planner::inventory::{DiskBackingKind, DiskInventory};
use co_planner::offload::{PlanOutcome, plan_offload};
use kube::Api;
use plan_objects::{
    MIB, create_forklift, create_plan_objects, create_populator, ensure_populator_crd, scenario,
};
use serde_json::json;
use support::Scratch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inventory_of_a_lab_vm_has_its_disks_datastores_sizes_kinds_and_naa() {
    let scratch = Scratch::new("gather").await;
    ensure_populator_crd(&scratch.client).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let lab = Lab::start(scenario(), dir.path())
        .await
        .expect("the lab starts");
    let plan = create_plan_objects(
        &scratch,
        &lab,
        json!([{ "name": "vm-2" }, { "id": "vm-404" }]),
    )
    .await;
    // Loads are counted cluster-wide, so the host name is this test's own.
    let host = format!("host-{}", scratch.namespace);
    create_populator(&scratch, "running", &host, None).await;
    create_populator(&scratch, "copying", &host, Some(CopyPhase::Cloning)).await;
    create_populator(&scratch, "done", &host, Some(CopyPhase::Succeeded)).await;
    create_populator(&scratch, "failed", &host, Some(CopyPhase::Failed)).await;

    let inputs = gather(&scratch.client, &plan)
        .await
        .expect("the inputs read");

    assert_eq!(
        inputs.inventory.len(),
        1,
        "vm-404 does not exist in vCenter"
    );
    let vm = &inputs.inventory[0];
    assert_eq!(vm.name, "vm-2");
    assert!(vm.id.starts_with("vm-"), "{}", vm.id);
    assert!(vm.host.starts_with("host-"), "{}", vm.host);
    let ds1_naa = lab
        .san
        .volume("ontap1", "ds-ds1")
        .expect("the ds1 LUN")
        .naa
        .to_ascii_lowercase();
    let rdm_naa = lab
        .san
        .volume("ontap1", "rdm-vm-2-1")
        .expect("the RDM LUN")
        .naa
        .to_ascii_lowercase();
    assert_ne!(ds1_naa, rdm_naa);
    let ds1_id = vm.disks[0].datastore_id.clone();
    let ds2_id = vm.disks[3].datastore_id.clone();
    assert!(ds1_id.starts_with("datastore-"), "{ds1_id}");
    assert!(
        ds2_id.starts_with("datastore-") && ds2_id != ds1_id,
        "{ds2_id}"
    );
    let disk = |key, file: &str, ds: (&str, &str), mib, backing, naa: Option<&str>| DiskInventory {
        key,
        file: file.into(),
        datastore_id: ds.0.into(),
        datastore_name: ds.1.into(),
        capacity_bytes: mib * MIB,
        backing,
        naa: naa.map(str::to_owned),
    };
    let ds1 = (ds1_id.as_str(), "ds1");
    assert_eq!(
        vm.disks,
        vec![
            disk(
                2000,
                "[ds1] vm-2/vm-2.vmdk",
                ds1,
                64,
                DiskBackingKind::Vmdk,
                Some(&ds1_naa)
            ),
            disk(
                2001,
                "[ds1] vm-2/vm-2_1.vmdk",
                ds1,
                32,
                DiskBackingKind::Rdm,
                Some(&rdm_naa)
            ),
            disk(
                2002,
                "[ds1] vm-2/vm-2_2.vmdk",
                ds1,
                16,
                DiskBackingKind::Vvol,
                None
            ),
            disk(
                2003,
                "[ds2] vm-2/vm-2_3.vmdk",
                (&ds2_id, "ds2"),
                8,
                DiskBackingKind::Vmdk,
                None
            ),
        ]
    );

    assert_eq!(
        inputs.host_loads.get(&host),
        Some(&2),
        "two copies have not ended"
    );
    assert!(inputs.storage_secrets.contains_key("ontap-creds"));
    assert_eq!(
        inputs.provider_secret.get("user").map(|v| v.0.as_slice()),
        Some(lab.username.as_bytes())
    );
    assert!(inputs.storage_map.is_some());
    assert!(inputs.ssh_keys.is_none(), "no key Secrets were created");

    // Planning these inputs: vm-404 is named, then without it the NFS disk makes a mixed plan.
    let error = plan_offload(&inputs).expect_err("vm-404 is missing");
    assert!(error.to_string().contains("VM vm-404"), "{error}");
    let mut inputs = inputs;
    inputs.plan.spec.vms.truncate(1);
    let Ok(PlanOutcome::MixedUsage(mixed)) = plan_offload(&inputs) else {
        panic!("expected the mixed-usage refusal");
    };
    assert_eq!(mixed.vddk_disks.len(), 1);
    assert_eq!(mixed.vddk_disks[0].disk_file, "[ds2] vm-2/vm-2_3.vmdk");

    drop(lab);
    scratch.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_provider_is_named() {
    let scratch = Scratch::new("gather-noprov").await;
    create_forklift(
        &scratch,
        "Plan",
        "orphan",
        json!({
            "provider": { "source": { "name": "gone", "namespace": scratch.namespace } },
            "targetNamespace": scratch.namespace,
        }),
    )
    .await;
    let plan = Api::<Plan>::namespaced(scratch.client.clone(), &scratch.namespace)
        .get("orphan")
        .await
        .expect("the Plan reads back");
    let error = gather(&scratch.client, &plan)
        .await
        .expect_err("no Provider");
    assert!(matches!(error, GatherError::NotFound { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "Provider {ns}/gone (spec.provider.source of plan {ns}/orphan) does not exist; create \
             it or correct the plan's spec.provider.source",
            ns = scratch.namespace
        )
    );
    assert_eq!(error.exit_code(), co_api::contract::ExitCode::Permanent);
    scratch.finish().await;
}
