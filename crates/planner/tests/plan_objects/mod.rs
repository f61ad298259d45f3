//! The objects of a plan against the lab, shared by the planner's and the CLI's cluster tests:
//! a lab scenario with every kind of disk, the populator CRD, and the Provider, Secrets,
//! StorageMap and Plan a Forklift user creates for it (in a test's scratch namespace).

use co_api::{CopyPhase, Plan, VSphereXcopyVolumePopulator, VSphereXcopyVolumePopulatorStatus};
use co_lab::lab::RunningLab;
use co_lab::scenario::{DatastoreKind, DatastoreSpec, DiskSpec, Scenario, VmSpec};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::support::Scratch;

pub const MIB: u64 = 1024 * 1024;

/// The default lab plus a VM `vm-2` with a flat disk, an RDM and a vVol on `ds1` (VMFS on the
/// ONTAP array) and a flat disk on `ds2` (NFS).
pub fn scenario() -> Scenario {
    let mut scenario = Scenario::default_embedded();
    scenario.datastores.push(DatastoreSpec {
        name: "ds2".into(),
        kind: DatastoreKind::Nfs,
        array: None,
        capacity_gib: 16,
    });
    let disk = |datastore: &str, size_mib: u64| DiskSpec {
        datastore: datastore.into(),
        size_mib,
        rdm_array: None,
        vvol: false,
    };
    scenario.vms.push(VmSpec {
        name: "vm-2".into(),
        host: "esxi-1.lab.local".into(),
        disks: vec![
            disk("ds1", 64),
            DiskSpec {
                rdm_array: Some("ontap1".into()),
                ..disk("ds1", 32)
            },
            DiskSpec {
                vvol: true,
                ..disk("ds1", 16)
            },
            disk("ds2", 8),
        ],
    });
    scenario
}

/// Installs copy-offload's populator CRD (unless present) and waits until it is served.
pub async fn ensure_populator_crd(client: &Client) {
    co_testpeers::install_crd(client, &co_api::populator_crd())
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
}

pub async fn create_secret(scratch: &Scratch, name: &str, data: serde_json::Value) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": scratch.namespace },
        "stringData": data,
    }))
    .expect("a valid Secret");
    Api::<Secret>::namespaced(scratch.client.clone(), &scratch.namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|error| panic!("creating Secret {name}: {error}"));
}

pub async fn create_forklift(scratch: &Scratch, kind: &str, name: &str, spec: serde_json::Value) {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "forklift.konveyor.io/v1beta1",
        "kind": kind,
        "metadata": { "name": name, "namespace": scratch.namespace },
        "spec": spec,
    }))
    .expect("a valid object");
    scratch
        .forklift(kind)
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|error| panic!("creating {kind} {name}: {error}"));
}

/// The Provider `vcenter` (vCenter of the lab) with `settings`, its Secret `vcenter-creds` and the
/// storage Secret `ontap-creds` (Trident-style keys).
pub async fn create_lab_provider(scratch: &Scratch, lab: &RunningLab, settings: serde_json::Value) {
    create_vcenter_provider(scratch, lab, settings).await;
    let array = &lab.arrays[0];
    create_secret(
        scratch,
        "ontap-creds",
        json!({
            "management_address": array.url,
            "username": array.username,
            "password": array.password,
        }),
    )
    .await;
}

/// The vSphere Provider `vcenter` for the lab's vCenter with `settings`, and its Secret
/// `vcenter-creds` with the keys Forklift keeps there.
pub async fn create_vcenter_provider(
    scratch: &Scratch,
    lab: &RunningLab,
    settings: serde_json::Value,
) {
    create_secret(
        scratch,
        "vcenter-creds",
        json!({
            "user": lab.username,
            "password": lab.password,
            "insecureSkipVerify": "true",
            "url": lab.vcenter_url,
        }),
    )
    .await;
    create_forklift(
        scratch,
        "Provider",
        "vcenter",
        json!({
            "type": "vsphere",
            "url": lab.vcenter_url,
            "secret": { "name": "vcenter-creds", "namespace": scratch.namespace },
            "settings": settings,
        }),
    )
    .await;
}

/// The Provider (vCenter of the lab), its Secret, the storage Secret, the StorageMap (ds1
/// offloaded to ONTAP, ds2 copied with VDDK) and the Plan of `vms`.
pub async fn create_plan_objects(
    scratch: &Scratch,
    lab: &RunningLab,
    vms: serde_json::Value,
) -> Plan {
    let namespace = &scratch.namespace;
    create_lab_provider(scratch, lab, json!({})).await;
    create_forklift(
        scratch,
        "StorageMap",
        "copy-offload",
        json!({
            "provider": { "source": { "name": "vcenter", "namespace": namespace } },
            "map": [
                {
                    "source": { "name": "ds1" },
                    "destination": { "storageClass": "ontap-san" },
                    "offloadPlugin": { "vsphereXcopyConfig": {
                        "secretRef": "ontap-creds",
                        "storageVendorProduct": "ontap",
                    }},
                },
                {
                    "source": { "name": "ds2" },
                    "destination": { "storageClass": "nfs" },
                },
            ],
        }),
    )
    .await;
    create_plan(scratch, "my-plan", vms).await;
    Api::<Plan>::namespaced(scratch.client.clone(), namespace)
        .get("my-plan")
        .await
        .expect("the Plan reads back")
}

/// The Plan `name` of `vms` over the Provider `vcenter` and the StorageMap `copy-offload`,
/// targeting the scratch namespace (not opted in).
pub async fn create_plan(scratch: &Scratch, name: &str, vms: serde_json::Value) {
    let namespace = &scratch.namespace;
    create_forklift(
        scratch,
        "Plan",
        name,
        json!({
            "provider": { "source": { "name": "vcenter", "namespace": namespace } },
            "map": { "storage": { "name": "copy-offload", "namespace": namespace } },
            "targetNamespace": namespace,
            "vms": vms,
        }),
    )
    .await;
}

pub async fn create_populator(scratch: &Scratch, name: &str, host: &str, phase: Option<CopyPhase>) {
    let mut populator = VSphereXcopyVolumePopulator::new(
        name,
        co_api::VSphereXcopyVolumePopulatorSpec {
            vmdk_path: "[ds1] vm-1/vm-1.vmdk".into(),
            secret_name: Some("ontap-creds".into()),
            storage_vendor_product: "ontap".into(),
            migration_host: Some(host.into()),
            ..Default::default()
        },
    );
    populator.status = phase.map(|phase| VSphereXcopyVolumePopulatorStatus {
        phase: Some(phase),
        ..Default::default()
    });
    Api::<VSphereXcopyVolumePopulator>::namespaced(scratch.client.clone(), &scratch.namespace)
        .create(&PostParams::default(), &populator)
        .await
        .unwrap_or_else(|error| panic!("creating populator {name}: {error}"));
}
