//! The manifests users already have must load: the seed documentation's PVC + CR (with
//! `secretRef`/`targetPVC` and no `vmId`), the CR upstream Forklift creates, and the seed's
//! StorageMap, Provider and Plan examples.

use co_api::forklift::{Plan, Provider, StorageMap};
use co_api::{
    CloneMethod, CopyPhase, SpecProblem, StorageVendorProduct, VSphereXcopyVolumePopulator,
    VSphereXcopyVolumePopulatorSpec,
};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde::Deserialize;

/// The PVC and CR exactly as the seed documentation shows them.
const SEED_PVC_AND_CR: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: my-pvc
  namespace: default
spec:
  resources:
    requests:
      storage: 100000Mi
  dataSourceRef:
    apiGroup: forklift.konveyor.io
    kind: VSphereXcopyVolumePopulator
    name: vm-1-xcopy-1
  storageClassName: sc-1  
  volumeMode: Block
  volumeName: pvc-6dff02f2-de63-40ab-a534-3bd5a7b47f82
---
apiVersion: forklift.konveyor.io/v1beta1
kind: VSphereXcopyVolumePopulator
metadata:
  name: vm-1-xcopy-1 
  namespace: default
spec:
  secretRef: vantara-secret 
  storageVendorProduct: vantara
  targetPVC: my-pvc 
  vmdkPath: '[my-vsphere-ds] vm-1/vm-1.vmdk'
"#;

/// A CR as upstream Forklift's builder creates it (with status as its controller writes it).
const UPSTREAM_CR: &str = r#"
apiVersion: forklift.konveyor.io/v1beta1
kind: VSphereXcopyVolumePopulator
metadata:
  name: plan-vm-7-disk-0
  namespace: target-ns
  labels:
    migration: 6b0c5a4e-1c9f-4d5b-9a0e-2f1d3c4b5a69
    vmID: vm-7
    vmdkKey: "2000"
spec:
  vmId: vm-7
  vmdkPath: "[iscsi ds] folder/vm 7/vm 7.vmdk"
  secretName: plan-vm-7-secret-0
  storageVendorProduct: pureFlashArray
  migrationHost: host-12
status:
  progress: "42"
  xcopyUsed: "1"
  vibVersion: 0.4.0
  storageVendor: pureFlashArray
"#;

fn documents(yaml: &str) -> Vec<serde_yaml::Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
        .collect()
}

#[test]
fn seed_pvc_and_cr_parse_and_normalize() {
    let docs = documents(SEED_PVC_AND_CR);
    assert_eq!(docs.len(), 2);

    let pvc: PersistentVolumeClaim = serde_yaml::from_value(docs[0].clone()).unwrap();
    let source = pvc
        .spec
        .as_ref()
        .and_then(|s| s.data_source_ref.clone())
        .unwrap();
    assert_eq!(source.api_group.as_deref(), Some("forklift.konveyor.io"));
    assert_eq!(source.kind, "VSphereXcopyVolumePopulator");

    let cr: VSphereXcopyVolumePopulator = serde_yaml::from_value(docs[1].clone()).unwrap();
    assert_eq!(
        cr.metadata.name.as_deref().map(str::trim),
        Some(source.name.as_str())
    );
    let spec = cr.spec.normalized().unwrap();
    assert_eq!(
        spec.vm_id, None,
        "the seed dialect has no vmId; it is found from the disk"
    );
    assert_eq!(spec.secret_name, "vantara-secret");
    assert_eq!(spec.vendor, StorageVendorProduct::Vantara);
    assert_eq!(spec.target_pvc.as_deref(), pvc.metadata.name.as_deref());
    assert_eq!(spec.vmdk_path.datastore(), "my-vsphere-ds");
    assert_eq!(
        spec.vmdk_path.esxi_path(),
        "/vmfs/volumes/my-vsphere-ds/vm-1/vm-1.vmdk"
    );
}

#[test]
fn upstream_cr_parses_and_normalizes() {
    let cr: VSphereXcopyVolumePopulator = serde_yaml::from_str(UPSTREAM_CR).unwrap();
    let spec = cr.spec.normalized().unwrap();
    assert_eq!(spec.vm_id.as_deref(), Some("vm-7"));
    assert_eq!(spec.secret_name, "plan-vm-7-secret-0");
    assert_eq!(spec.vendor, StorageVendorProduct::PureFlashArray);
    assert_eq!(spec.migration_host.as_deref(), Some("host-12"));
    assert_eq!(spec.vmdk_path.folder(), Some("folder/vm 7"));
    let status = cr.status.unwrap();
    assert_eq!(status.progress.as_deref(), Some("42"));
    assert_eq!(status.xcopy_used.as_deref(), Some("1"));
    assert_eq!(status.phase, None);
}

#[test]
fn serialization_uses_the_wire_names_and_omits_unset_fields() {
    let spec = VSphereXcopyVolumePopulatorSpec {
        vmdk_path: "[ds] vm/vm.vmdk".into(),
        storage_vendor_product: "ontap".into(),
        secret_ref: Some("creds".into()),
        target_pvc: Some("pvc-1".into()),
        ..Default::default()
    };
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "vmdkPath": "[ds] vm/vm.vmdk",
            "storageVendorProduct": "ontap",
            "secretRef": "creds",
            "targetPVC": "pvc-1",
        })
    );
    let phase = serde_json::to_value(CopyPhase::CleaningUp).unwrap();
    assert_eq!(phase, serde_json::json!("CleaningUp"));
}

#[test]
fn normalization_reports_every_problem_at_once() {
    let spec = VSphereXcopyVolumePopulatorSpec {
        vmdk_path: "[ds] vm/vm.txt".into(),
        storage_vendor_product: "netapp".into(),
        secret_name: Some("a".into()),
        secret_ref: Some("b".into()),
        ..Default::default()
    };
    let err = spec.normalized().unwrap_err();
    assert_eq!(err.problems.len(), 3, "{err}");
    assert!(matches!(
        err.problems[0],
        SpecProblem::ConflictingSecret { .. }
    ));
    assert!(matches!(err.problems[1], SpecProblem::InvalidVmdkPath(_)));
    assert!(matches!(err.problems[2], SpecProblem::UnknownVendor(_)));
    let message = err.to_string();
    assert!(
        message.contains("spec.secretName (\"a\") and spec.secretRef (\"b\")"),
        "{message}"
    );
    assert!(
        message.contains("pureFlashArray"),
        "the vendor problem lists the valid names: {message}"
    );

    let missing = VSphereXcopyVolumePopulatorSpec {
        vmdk_path: "[ds] vm/vm.vmdk".into(),
        storage_vendor_product: "ontap".into(),
        ..Default::default()
    };
    assert_eq!(
        missing.normalized().unwrap_err().problems,
        vec![SpecProblem::MissingSecret]
    );
}

#[test]
fn seed_storage_map_parses() {
    let yaml = r#"
apiVersion: forklift.konveyor.io/v1beta1
kind: StorageMap
metadata:
  name: copy-offload
  namespace: openshift-mtv
spec:
  map:
  - destination:
      storageClass: YOUR_STORAGE_CLASS  #1)
    offloadPlugin:
      vsphereXcopyConfig:
        secretRef: SECRET_WITH_ONTAP_CREDS #2)
        storageVendorProduct: ontap #3)
    source:
      id: DATASTORE_ID #4) eg datastore-18601
  provider:
    destination:
      apiVersion: forklift.konveyor.io/v1beta1
      kind: Provider
      name: host
      namespace: openshift-mtv
      uid: YOUR_HOST_PROVIDER_ID #5)
    source:
      apiVersion: forklift.konveyor.io/v1beta1
      kind: Provider
      name: YOUR_VSPHERE_PROVIDER_NAME #6)
      namespace: openshift-mtv
      uid: YOUR_VSPHERE_PROVIDER_ID  #7)
"#;
    let map: StorageMap = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(map.spec.map.len(), 1);
    let pair = &map.spec.map[0];
    assert_eq!(pair.source.id.as_deref(), Some("DATASTORE_ID"));
    assert_eq!(pair.destination.storage_class, "YOUR_STORAGE_CLASS");
    let xcopy = pair
        .offload_plugin
        .as_ref()
        .and_then(|p| p.vsphere_xcopy_config.as_ref())
        .unwrap();
    assert_eq!(xcopy.secret_ref, "SECRET_WITH_ONTAP_CREDS");
    assert_eq!(xcopy.vendor(), Ok(StorageVendorProduct::Ontap));
    assert!(xcopy.dedicated_migration_hosts.is_empty());
    let source = map.spec.provider.source.as_ref().unwrap();
    assert_eq!(source.name.as_deref(), Some("YOUR_VSPHERE_PROVIDER_NAME"));
}

#[test]
fn dedicated_migration_hosts_and_unknown_vendor_are_read() {
    let yaml = r#"
apiVersion: forklift.konveyor.io/v1beta1
kind: StorageMap
metadata: {name: m, namespace: ns}
spec:
  map:
  - source: {name: ds1}
    destination: {storageClass: sc, accessMode: ReadWriteOnce, volumeMode: Block}
    offloadPlugin:
      vsphereXcopyConfig:
        secretRef: s
        storageVendorProduct: acme
        dedicatedMigrationHosts: [host-1, host-2]
"#;
    let map: StorageMap = serde_yaml::from_str(yaml).unwrap();
    let xcopy = map.spec.map[0]
        .offload_plugin
        .clone()
        .unwrap()
        .vsphere_xcopy_config
        .unwrap();
    assert_eq!(xcopy.dedicated_migration_hosts, ["host-1", "host-2"]);
    assert_eq!(xcopy.vendor().unwrap_err().given, "acme");
}

#[test]
fn seed_provider_parses_and_gives_the_clone_method() {
    let yaml = r#"
apiVersion: forklift.konveyor.io/v1beta1
kind: Provider
metadata:
  name: my-vsphere-provider
  namespace: openshift-mtv
spec:
  type: vsphere
  url: https://vcenter.example.com
  secret:
    name: vsphere-credentials
    namespace: openshift-mtv
  settings:
    esxiCloneMethod: "vib"  # or "ssh". The default is "vib"
"#;
    let provider: Provider = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(provider.spec.provider_type.as_deref(), Some("vsphere"));
    assert_eq!(
        provider.spec.url.as_deref(),
        Some("https://vcenter.example.com")
    );
    assert_eq!(
        provider
            .spec
            .secret
            .as_ref()
            .and_then(|s| s.name.as_deref()),
        Some("vsphere-credentials")
    );
    assert_eq!(provider.spec.esxi_clone_method(), Ok(CloneMethod::Vib));

    let mut spec = provider.spec.clone();
    spec.settings.insert("esxiCloneMethod".into(), "SSH".into());
    assert_eq!(spec.esxi_clone_method(), Ok(CloneMethod::Ssh));
    spec.settings.remove("esxiCloneMethod");
    assert_eq!(spec.esxi_clone_method(), Ok(CloneMethod::Vib));
    spec.settings.insert("esxiCloneMethod".into(), "scp".into());
    assert!(spec.esxi_clone_method().is_err());
}

#[test]
fn seed_plan_parses() {
    let yaml = r#"
apiVersion: forklift.konveyor.io/v1beta1
kind: Plan
metadata:
  name: my-plan
spec:
  map:
    storage:
      apiVersion: forklift.konveyor.io/v1beta1
      kind: StorageMap
      name: copy-offload  # <-- This points to the StorageMap configured previously
      namespace: openshift-mtv
"#;
    let plan: Plan = serde_yaml::from_str(yaml).unwrap();
    let storage = plan.spec.map.storage.as_ref().unwrap();
    assert_eq!(storage.kind.as_deref(), Some("StorageMap"));
    assert_eq!(storage.name.as_deref(), Some("copy-offload"));
    assert!(!plan.spec.warm);
    assert!(plan.spec.vms.is_empty());
}
