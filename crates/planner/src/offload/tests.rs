use super::*;

use co_api::forklift::{
    CsiVolumeImportConfig, DestinationStorage, OffloadPlugin, PlanSpec, PlanVm, ProviderSpec,
    SourceDatastore, StorageMapSpec,
};
use k8s_openapi::api::core::v1::ObjectReference;

use crate::inventory::DiskBackingKind;

const OFFLOADED_DS: &str = "datastore-1";
const VDDK_DS: &str = "datastore-2";
const CSI_DS: &str = "datastore-3";
const NAA: &str = "naa.600a098038314648593f517773636a6b";

fn bytes_map(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        uid: Some(format!("{name}-uid")),
        ..ObjectMeta::default()
    }
}

fn disk(key: i32, datastore: &str) -> DiskInventory {
    DiskInventory {
        key,
        file: format!("[{datastore}-name] vm-1/vm-1_{key}.vmdk"),
        datastore_id: datastore.into(),
        datastore_name: format!("{datastore}-name"),
        capacity_bytes: 10 << 30,
        backing: DiskBackingKind::Vmdk,
        naa: Some(NAA.into()),
    }
}

fn vm(id: &str, disks: Vec<DiskInventory>) -> VmInventory {
    VmInventory {
        id: id.into(),
        name: format!("{id}-name"),
        host: "host-7".into(),
        disks,
    }
}

fn pair(datastore: &str, plugin: Option<OffloadPlugin>) -> StoragePair {
    StoragePair {
        source: SourceDatastore {
            id: Some(datastore.into()),
            name: None,
        },
        destination: DestinationStorage {
            storage_class: "ontap-san".into(),
            access_mode: None,
            volume_mode: None,
        },
        offload_plugin: plugin,
    }
}

fn xcopy(vendor: &str, hosts: &[&str]) -> Option<OffloadPlugin> {
    Some(OffloadPlugin {
        vsphere_xcopy_config: Some(VSphereXcopyPluginConfig {
            secret_ref: "ontap-creds".into(),
            storage_vendor_product: vendor.into(),
            dedicated_migration_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        }),
        csi_volume_import: None,
    })
}

/// A plan of one VM with two disks on an offloaded datastore, an ssh Provider with its keys.
fn inputs() -> PlanInputs {
    let source = ObjectReference {
        namespace: Some("mtv".into()),
        name: Some("vcenter".into()),
        ..ObjectReference::default()
    };
    PlanInputs {
        plan: Plan {
            metadata: meta("mtv", "my-plan"),
            spec: PlanSpec {
                target_namespace: Some("vms".into()),
                vms: vec![PlanVm {
                    id: Some("vm-1".into()),
                    name: None,
                }],
                ..PlanSpec::default()
            },
        },
        storage_map: Some(StorageMap {
            metadata: meta("mtv", "copy-offload"),
            spec: StorageMapSpec {
                provider: co_api::forklift::ProviderPair {
                    source: Some(source),
                    destination: None,
                },
                map: vec![
                    pair(OFFLOADED_DS, xcopy("ontap", &[])),
                    pair(VDDK_DS, None),
                    pair(
                        CSI_DS,
                        Some(OffloadPlugin {
                            vsphere_xcopy_config: None,
                            csi_volume_import: Some(CsiVolumeImportConfig::default()),
                        }),
                    ),
                ],
            },
        }),
        provider: Provider {
            metadata: meta("mtv", "vcenter"),
            spec: ProviderSpec {
                provider_type: Some("vsphere".into()),
                url: Some("https://vcenter.example.com/sdk".into()),
                secret: Some(ObjectReference {
                    name: Some("vcenter-creds".into()),
                    ..ObjectReference::default()
                }),
                settings: BTreeMap::from([("esxiCloneMethod".into(), "ssh".into())]),
            },
        },
        provider_secret: bytes_map(&[
            ("user", "administrator@vsphere.local"),
            ("password", "vc-pass"),
            ("insecureSkipVerify", "true"),
            ("url", "https://vcenter.example.com/sdk"),
        ]),
        storage_secrets: BTreeMap::from([(
            "ontap-creds".to_owned(),
            bytes_map(&[
                ("management_address", "ontap.example.com"),
                ("username", "vsadmin"),
                ("password", "array-pass"),
            ]),
        )]),
        ssh_keys: Some(SshKeyPair {
            private_key: b"-----BEGIN RSA PRIVATE KEY-----\n".to_vec(),
            public_key: b"ssh-rsa AAAA test".to_vec(),
        }),
        inventory: vec![vm(
            "vm-1",
            vec![disk(2000, OFFLOADED_DS), disk(2001, OFFLOADED_DS)],
        )],
        host_loads: HostLoads::new(),
        migration_uid: None,
    }
}

fn planned(inputs: &PlanInputs) -> OffloadPlan {
    match plan_offload(inputs) {
        Ok(PlanOutcome::Planned(plan)) => plan,
        other => panic!("expected a plan, got {other:?}"),
    }
}

fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .map(|value| String::from_utf8_lossy(&value.0).into_owned())
}

#[test]
fn per_disk_secret_merges_provider_and_storage_keys_with_aliases() {
    let plan = planned(&inputs());
    let secret = &plan.disks[0].secret;
    let text = |key| secret_text(secret, key);
    assert_eq!(
        text("GOVMOMI_HOSTNAME").as_deref(),
        Some("vcenter.example.com")
    );
    assert_eq!(
        text("GOVMOMI_USERNAME").as_deref(),
        Some("administrator@vsphere.local")
    );
    assert_eq!(
        text("GOVMOMI_PASSWORD").as_deref(),
        Some("vc-pass"),
        "the storage Secret's Trident-style password must not shadow vCenter's"
    );
    assert_eq!(text("GOVMOMI_INSECURE").as_deref(), Some("true"));
    assert_eq!(
        text("STORAGE_HOSTNAME").as_deref(),
        Some("ontap.example.com")
    );
    assert_eq!(text("STORAGE_USERNAME").as_deref(), Some("vsadmin"));
    assert_eq!(text("STORAGE_PASSWORD").as_deref(), Some("array-pass"));
    assert_eq!(text("ESXI_CLONE_METHOD").as_deref(), Some("ssh"));
    let engine = base64::engine::general_purpose::STANDARD;
    assert_eq!(
        engine.decode(text("SSH_PRIVATE_KEY").unwrap()).unwrap(),
        b"-----BEGIN RSA PRIVATE KEY-----\n"
    );
    assert_eq!(
        engine.decode(text("SSH_PUBLIC_KEY").unwrap()).unwrap(),
        b"ssh-rsa AAAA test"
    );
    assert_eq!(secret.metadata.namespace.as_deref(), Some("vms"));
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
}

#[test]
fn vcenters_ca_reaches_the_populator_as_cacert_from_either_key() {
    for key in ["cacert", "ca.crt"] {
        let mut inputs = inputs();
        inputs.provider_secret.insert(
            key.into(),
            ByteString(b"-----BEGIN CERTIFICATE-----".to_vec()),
        );
        let plan = planned(&inputs);
        assert_eq!(
            secret_text(&plan.disks[0].secret, "cacert").as_deref(),
            Some("-----BEGIN CERTIFICATE-----"),
            "from {key}"
        );
    }
}

#[test]
fn explicit_storage_keys_win_over_their_aliases() {
    let mut inputs = inputs();
    inputs
        .storage_secrets
        .get_mut("ontap-creds")
        .unwrap()
        .insert("STORAGE_HOSTNAME".into(), ByteString(b"10.0.0.5".to_vec()));
    let plan = planned(&inputs);
    assert_eq!(
        secret_text(&plan.disks[0].secret, "STORAGE_HOSTNAME").as_deref(),
        Some("10.0.0.5")
    );
}

#[test]
fn vib_without_keys_plans_without_ssh_variables_and_a_port_is_kept() {
    let mut inputs = inputs();
    inputs.provider.spec.settings.clear();
    inputs.provider.spec.url = Some("https://127.0.0.1:8989/sdk".into());
    inputs.ssh_keys = None;
    let plan = planned(&inputs);
    let secret = &plan.disks[0].secret;
    assert_eq!(secret_text(secret, "SSH_PRIVATE_KEY"), None);
    assert_eq!(secret_text(secret, "ESXI_CLONE_METHOD"), None);
    assert_eq!(
        secret_text(secret, "GOVMOMI_HOSTNAME").as_deref(),
        Some("127.0.0.1:8989")
    );
}

#[test]
fn pvc_is_block_sized_to_the_disk_with_the_mappings_class() {
    let plan = planned(&inputs());
    assert_eq!(plan.namespace, "vms");
    assert_eq!(plan.disks.len(), 2);
    let disk = &plan.disks[0];
    let spec = disk.pvc.spec.as_ref().unwrap();
    assert_eq!(spec.volume_mode.as_deref(), Some("Block"));
    assert_eq!(spec.storage_class_name.as_deref(), Some("ontap-san"));
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteMany".to_owned()]));
    let requests = spec.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert_eq!(requests["storage"], Quantity((10u64 << 30).to_string()));
    let source = spec.data_source_ref.as_ref().unwrap();
    assert_eq!(source.api_group.as_deref(), Some("forklift.konveyor.io"));
    assert_eq!(source.kind, "VSphereXcopyVolumePopulator");
    assert_eq!(source.name, disk.populator.name_any());
    assert_eq!(disk.pvc.name_any(), disk.populator.name_any());
    assert_eq!(disk.secret.name_any(), disk.pvc.name_any());

    let mut inputs = inputs();
    inputs.storage_map.as_mut().unwrap().spec.map[0]
        .destination
        .access_mode = Some("ReadWriteOnce".into());
    let plan = planned(&inputs);
    assert_eq!(
        plan.disks[0].pvc.spec.as_ref().unwrap().access_modes,
        Some(vec!["ReadWriteOnce".to_owned()])
    );
}

#[test]
fn labels_and_annotations_are_forklifts_with_the_naa_affinity() {
    let mut inputs = inputs();
    inputs.migration_uid = Some("migration-uid".into());
    let plan = planned(&inputs);
    let disk = &plan.disks[1];
    let labels = disk.pvc.labels();
    assert_eq!(labels["migration"], "migration-uid");
    assert_eq!(labels["plan"], "my-plan-uid");
    assert_eq!(labels["vmdkKey"], "2001");
    assert_eq!(labels["vmID"], "vm-1");
    assert_eq!(labels["sourceHost"], "host-7");
    assert_eq!(labels["volume.csi.k8s.io/affinity-source-naa"], NAA);
    assert_eq!(disk.populator.labels(), labels);
    assert_eq!(disk.secret.labels(), labels);
    let annotations = disk.pvc.annotations();
    let file = "[datastore-1-name] vm-1/vm-1_2001.vmdk";
    assert_eq!(annotations["forklift.konveyor.io/disk-source"], file);
    assert_eq!(annotations["copy-offload"], file);
    assert_eq!(
        annotations["cdi.kubevirt.io/storage.import.secretName"],
        disk.secret.name_any()
    );

    // A vVol has no NAA: no affinity label rather than an invalid one.
    let mut inputs = self::inputs();
    inputs.inventory[0].disks[0].naa = None;
    let labels = planned(&inputs).disks[0].pvc.labels().clone();
    assert!(!labels.contains_key(AFFINITY_NAA_LABEL), "{labels:?}");
    assert!(!labels.contains_key(MIGRATION_LABEL), "{labels:?}");
}

#[test]
fn warm_plans_track_the_base_disk_not_the_snapshot_delta() {
    assert_eq!(
        base_volume_path("[ds] vm/vm-000002.vmdk", true),
        "[ds] vm/vm.vmdk"
    );
    assert_eq!(
        base_volume_path("[ds] vm/vm-000002.vmdk", false),
        "[ds] vm/vm-000002.vmdk"
    );
    assert_eq!(
        base_volume_path("[ds] vm/vm-web.vmdk", true),
        "[ds] vm/vm-web.vmdk"
    );
}

#[test]
fn populator_names_the_disk_secret_vendor_and_vm() {
    let plan = planned(&inputs());
    let disk = &plan.disks[0];
    let normalized = disk.populator.spec.normalized().expect("a valid spec");
    assert_eq!(normalized.vm_id.as_deref(), Some("vm-1"));
    assert_eq!(
        normalized.vmdk_path.to_string(),
        "[datastore-1-name] vm-1/vm-1_2000.vmdk"
    );
    assert_eq!(normalized.secret_name, disk.secret.name_any());
    assert_eq!(normalized.vendor, StorageVendorProduct::Ontap);
    assert_eq!(
        normalized.migration_host, None,
        "no dedicated hosts: the VM's own"
    );
    assert_eq!(disk.populator.metadata.namespace.as_deref(), Some("vms"));
    assert_eq!(disk.populator.metadata.owner_references, None);
}

#[test]
fn set_owner_makes_the_pvc_control_the_secret_and_the_populator() {
    let mut disk = planned(&inputs()).disks.remove(0);
    disk.set_owner("pvc-uid-1");
    for owners in [
        &disk.secret.metadata.owner_references,
        &disk.populator.metadata.owner_references,
    ] {
        let owner = &owners.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "PersistentVolumeClaim");
        assert_eq!(owner.uid, "pvc-uid-1");
        assert_eq!(owner.name, disk.pvc.name_any());
        assert_eq!(owner.controller, Some(true));
    }
}

fn is_dns_label(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[test]
fn names_are_stable_unique_and_valid_even_for_long_names() {
    let short = disk_object_name("mtv", "my-plan", "vm-1", 2000);
    assert!(short.starts_with("my-plan-vm-1-2000-"), "{short}");
    assert_eq!(short, disk_object_name("mtv", "my-plan", "vm-1", 2000));
    assert_ne!(short, disk_object_name("mtv", "my-plan", "vm-1", 2001));
    assert_ne!(short, disk_object_name("other", "my-plan", "vm-1", 2000));
    assert!(is_dns_label(&short), "{short}");

    let long_plan = "a-migration-plan-with-a-very-long-name-that-goes-on-and-on-and-on";
    let long = disk_object_name("mtv", long_plan, "vm-123456", 2000);
    let other = disk_object_name("mtv", long_plan, "vm-123456", 2001);
    assert!(is_dns_label(&long), "{long}");
    assert!(is_dns_label(&other), "{other}");
    assert_ne!(long, other, "the cut part differs only in the digest");
    assert_eq!(long.len(), 63);

    let odd = disk_object_name("mtv", "My_Plan.", "VM 1", -1);
    assert!(is_dns_label(&odd), "{odd}");
    assert!(is_dns_label(&disk_object_name("mtv", "--", "", 0)));
}

#[test]
fn dedicated_hosts_are_chosen_least_loaded_and_a_plan_spreads_its_disks() {
    let mut inputs = inputs();
    inputs.storage_map.as_mut().unwrap().spec.map[0] = pair(
        OFFLOADED_DS,
        xcopy("ontap", &["host-c", "host-a", "host-b"]),
    );
    inputs.inventory[0].disks.push(disk(2002, OFFLOADED_DS));
    inputs.inventory[0].disks.push(disk(2003, OFFLOADED_DS));
    inputs.host_loads = HostLoads::from([("host-a".to_owned(), 2)]);
    let hosts: Vec<Option<String>> = planned(&inputs)
        .disks
        .iter()
        .map(|disk| disk.populator.spec.migration_host.clone())
        .collect();
    let host = |name: &str| Some(name.to_owned());
    // b and c tie at 0 (b first by name), then c; b and c tie at 1 (b); then c is alone at 1
    // while a and b carry 2.
    assert_eq!(
        hosts,
        vec![
            host("host-b"),
            host("host-c"),
            host("host-b"),
            host("host-c")
        ]
    );
}

#[test]
fn mixed_offload_and_vddk_disks_are_refused_with_the_disks_listed() {
    let mut inputs = inputs();
    inputs.inventory[0].disks.push(disk(2002, VDDK_DS));
    inputs.plan.spec.vms.push(PlanVm {
        id: None,
        name: Some("vm-2-name".into()),
    });
    inputs.inventory.push(vm("vm-2", vec![disk(2000, VDDK_DS)]));
    let Ok(PlanOutcome::MixedUsage(mixed)) = plan_offload(&inputs) else {
        panic!("expected the mixed-usage refusal");
    };
    assert_eq!(
        mixed
            .vddk_disks
            .iter()
            .map(|d| (
                d.vm_name.as_str(),
                d.disk_file.as_str(),
                d.datastore_id.as_str()
            ))
            .collect::<Vec<_>>(),
        vec![
            (
                "vm-1-name",
                "[datastore-2-name] vm-1/vm-1_2002.vmdk",
                VDDK_DS
            ),
            (
                "vm-2-name",
                "[datastore-2-name] vm-1/vm-1_2000.vmdk",
                VDDK_DS
            ),
        ]
    );
    let condition = mixed_usage_condition(&mixed);
    assert_eq!(condition.type_, "VDDKAndOffloadMixedUsage");
    assert_eq!(condition.category, "Critical");
    assert_eq!(condition.reason, "NotSupported");
    assert!(
        condition
            .message
            .contains("cannot mix VDDK mappings with copy-offload mappings"),
        "{}",
        condition.message
    );
    assert!(
        condition.message.contains("2 disks"),
        "{}",
        condition.message
    );
    assert_eq!(
        condition.items[0],
        "VM vm-1-name (vm-1): disk [datastore-2-name] vm-1/vm-1_2002.vmdk on datastore \
         datastore-2-name (datastore-2) has no offload plugin"
    );
}

#[test]
fn unmapped_and_csi_import_disks_are_skipped_not_mixed() {
    let mut inputs = inputs();
    inputs.inventory[0].disks.push(disk(2002, CSI_DS));
    inputs.inventory[0]
        .disks
        .push(disk(2003, "datastore-unmapped"));
    let plan = planned(&inputs);
    assert_eq!(plan.disks.len(), 2);
    assert_eq!(
        plan.skipped
            .iter()
            .map(|s| s.reason.as_str())
            .collect::<Vec<_>>(),
        vec![
            "its datastore is mapped with csiVolumeImport",
            "its datastore is not in the StorageMap"
        ]
    );
}

#[test]
fn a_plan_without_offloaded_disks_has_nothing_to_plan() {
    let mut inputs = inputs();
    inputs.inventory[0].disks = vec![disk(2000, VDDK_DS), disk(2001, VDDK_DS)];
    assert!(matches!(
        plan_offload(&inputs),
        Ok(PlanOutcome::NothingToPlan)
    ));
}

#[test]
fn a_map_without_offload_needs_no_inventory() {
    let mut inputs = inputs();
    inputs.storage_map.as_mut().unwrap().spec.map.remove(0);
    inputs.inventory.clear();
    assert!(matches!(
        plan_offload(&inputs),
        Ok(PlanOutcome::NothingToPlan)
    ));
}

#[test]
fn a_vm_is_found_by_name_and_datastores_by_name() {
    let mut inputs = inputs();
    inputs.plan.spec.vms = vec![PlanVm {
        id: None,
        name: Some("vm-1-name".into()),
    }];
    inputs.storage_map.as_mut().unwrap().spec.map[0].source = SourceDatastore {
        id: None,
        name: Some("datastore-1-name".into()),
    };
    assert_eq!(planned(&inputs).disks.len(), 2);
}

fn error_of(inputs: &PlanInputs) -> String {
    match plan_offload(inputs) {
        Err(error) => {
            assert_eq!(error.exit_code(), co_api::contract::ExitCode::Permanent);
            error.to_string()
        }
        Ok(outcome) => panic!("expected an error, got {outcome:?}"),
    }
}

#[test]
fn a_missing_storage_map_is_named() {
    let mut inputs = inputs();
    inputs.storage_map = None;
    assert_eq!(
        error_of(&inputs),
        "plan mtv/my-plan: spec.map.storage names no StorageMap; create the StorageMap or set \
         spec.map.storage to an existing one"
    );
    inputs.plan.spec.map.storage = Some(ObjectReference {
        name: Some("gone".into()),
        ..ObjectReference::default()
    });
    assert!(
        error_of(&inputs).contains("StorageMap mtv/gone does not exist"),
        "{}",
        error_of(&inputs)
    );
}

#[test]
fn a_missing_or_incomplete_storage_secret_is_named() {
    let mut inputs = inputs();
    inputs.storage_secrets.clear();
    assert_eq!(
        error_of(&inputs),
        "StorageMap mtv/copy-offload, datastore datastore-1: storage Secret mtv/\"ontap-creds\" \
         does not exist; create it or correct offloadPlugin.vsphereXcopyConfig.secretRef"
    );
    inputs
        .storage_secrets
        .insert("ontap-creds".into(), bytes_map(&[("username", "vsadmin")]));
    let error = error_of(&inputs);
    assert!(
        error.contains(
            "storage Secret ontap-creds: STORAGE_HOSTNAME (or management_address): missing"
        ),
        "{error}"
    );
}

#[test]
fn a_vm_missing_from_the_inventory_is_named() {
    let mut inputs = inputs();
    inputs.inventory.clear();
    assert_eq!(
        error_of(&inputs),
        "plan mtv/my-plan: VM vm-1 is not in vCenter's inventory; correct spec.vms or check that \
         the VM still exists"
    );
}

#[test]
fn an_unknown_vendor_is_named() {
    let mut inputs = inputs();
    inputs.storage_map.as_mut().unwrap().spec.map[0] = pair(OFFLOADED_DS, xcopy("netapp", &[]));
    let error = error_of(&inputs);
    assert!(
        error.starts_with(
            "StorageMap mtv/copy-offload, datastore datastore-1: storageVendorProduct \"netapp\" \
             is not one of vantara, ontap"
        ),
        "{error}"
    );
}

#[test]
fn ssh_without_keys_names_the_secrets_to_create() {
    let mut inputs = inputs();
    inputs.ssh_keys = None;
    let error = error_of(&inputs);
    assert!(
        error.contains("mtv/offload-ssh-keys-vcenter-private (key private-key)"),
        "{error}"
    );
    assert!(
        error.contains("mtv/offload-ssh-keys-vcenter-public"),
        "{error}"
    );
}

#[test]
fn provider_problems_are_named() {
    let mut inputs = inputs();
    inputs.provider.spec.url = None;
    assert!(error_of(&inputs).contains("spec.url \"\" names no vCenter host"));
    let mut inputs = self::inputs();
    inputs.provider_secret.remove("password");
    assert_eq!(
        error_of(&inputs),
        "provider mtv/vcenter: its Secret vcenter-creds lacks password; add the vCenter credentials"
    );
    let mut inputs = self::inputs();
    inputs
        .provider
        .spec
        .settings
        .insert("esxiCloneMethod".into(), "shh".into());
    assert!(error_of(&inputs).contains("\"shh\" is not a clone method"));
    let mut inputs = self::inputs();
    inputs.plan.spec.target_namespace = None;
    assert!(error_of(&inputs).contains("spec.targetNamespace is empty"));
}

/// The Secret is what the populator pod gets as its environment: `copy-offload populate`'s own
/// validation must accept it as is (every key that is one of its variables, passed as the flag
/// of that variable, plus the vendor the populator controller passes from the resource).
#[test]
fn the_populator_accepts_the_planned_secret_as_its_environment() {
    use clap::Parser as _;
    let keys = ssh_keys::generate("test").expect("a key pair");
    let mut inputs = inputs();
    inputs.ssh_keys = Some(SshKeyPair {
        private_key: keys.private_pem.expose().as_bytes().to_vec(),
        public_key: keys.public_openssh.into_bytes(),
    });
    let disk = planned(&inputs).disks.remove(0);
    let mut argv = vec![
        "populate".to_owned(),
        flags::STORAGE_VENDOR_PRODUCT.with_value(&disk.populator.spec.storage_vendor_product),
    ];
    let mut unknown = Vec::new();
    for (key, value) in disk.secret.data.as_ref().unwrap() {
        match flags::by_env(key) {
            Some(flag) => argv.push(flag.with_value(&String::from_utf8_lossy(&value.0))),
            None => unknown.push(key.as_str()),
        }
    }
    assert_eq!(
        unknown,
        vec![
            "insecureSkipVerify",
            "management_address",
            "password",
            "url",
            "user",
            "username"
        ],
        "keys the populator does not read (Forklift's provider and Trident keys)"
    );
    let args = co_populator::PopulateArgs::try_parse_from(&argv).expect("flags parse");
    let config = args
        .validate_environment()
        .unwrap_or_else(|problems| panic!("the populator rejects the Secret: {problems}"));
    assert_eq!(config.esxi.clone_method, CloneMethod::Ssh);
}
