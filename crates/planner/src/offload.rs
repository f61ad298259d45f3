//! Offload planning: from a Plan, its StorageMap, its source Provider with the secrets they name,
//! the VMs' inventory and the ESXi hosts' current loads, the objects that copy each offloaded disk
//! — per disk a Block PVC, the `VSphereXcopyVolumePopulator` its `dataSourceRef` names, and the
//! Secret the populator pod reads as its environment. No I/O: [`crate::gather`] reads the inputs,
//! the Plan reconcile and `copy-offload plan --dry-run` use the result.
//!
//! What differs from Forklift's controller, on purpose:
//! - `dedicatedMigrationHosts` are chosen least-loaded (ties by name), each planned disk counting
//!   on its host, instead of at random per disk;
//! - the vCenter credentials (`GOVMOMI_*`) come from the provider Secret even when the storage
//!   Secret carries Trident-style `username`/`password` keys, which would otherwise shadow them;
//! - object names are derived from the plan, VM and disk key only, so planning twice gives the
//!   same names and a re-run finds the objects it created.

use std::collections::BTreeMap;

use base64::Engine as _;
use co_api::contract::flags;
use co_api::forklift::{StoragePair, VSphereXcopyPluginConfig};
use co_api::{
    CloneMethod, Plan, Provider, StorageMap, StorageVendorProduct, VSphereXcopyVolumePopulator,
    VSphereXcopyVolumePopulatorSpec,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret, TypedObjectReference,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use crate::conditions::{Condition, category};
use crate::inventory::{DiskInventory, HostLoads, VmInventory};
use crate::ssh_keys;
use crate::storage_map;

/// Label: the Migration's UID (only when a Migration is known).
pub const MIGRATION_LABEL: &str = "migration";
/// Label: the Plan's UID.
pub const PLAN_LABEL: &str = "plan";
/// Label: the disk's device key within its VM.
pub const VMDK_KEY_LABEL: &str = "vmdkKey";
/// Label: the VM's managed object id.
pub const VM_ID_LABEL: &str = "vmID";
/// Label: the ESXi host the VM runs on.
pub const SOURCE_HOST_LABEL: &str = "sourceHost";
/// Label: the NAA of the LUN the disk lives on, so a CSI driver can place the new volume on the
/// same array.
pub const AFFINITY_NAA_LABEL: &str = "volume.csi.k8s.io/affinity-source-naa";
/// Annotation: the disk's backing file (what Forklift tracks the disk by).
pub const DISK_SOURCE_ANNOTATION: &str = "forklift.konveyor.io/disk-source";
/// Annotation: the same path, marking the PVC as copied by offload.
pub const COPY_OFFLOAD_ANNOTATION: &str = "copy-offload";
/// Annotation: the Secret the disk's copy reads.
pub const IMPORT_SECRET_ANNOTATION: &str = "cdi.kubevirt.io/storage.import.secretName";
/// The critical Plan condition for a plan mixing VDDK and offloaded disks.
pub const MIXED_USAGE_CONDITION: &str = "VDDKAndOffloadMixedUsage";
/// The access mode of the PVCs when the mapping gives none (Forklift's default for offload).
pub const DEFAULT_ACCESS_MODE: &str = "ReadWriteMany";

/// Provider Secret keys, as Forklift's provider Secrets hold them.
const PROVIDER_USER_KEY: &str = "user";
const PROVIDER_PASSWORD_KEY: &str = "password";
const PROVIDER_INSECURE_KEY: &str = "insecureSkipVerify";
/// The Provider Secret keys that may hold vCenter's CA (PEM), preferred first.
pub const PROVIDER_CA_KEYS: &[&str] = &["cacert", "ca.crt"];

/// Longest object name that is also a valid label value and DNS-1123 label.
const NAME_MAX: usize = 63;
/// Hex characters of the name digest.
const NAME_DIGEST_LEN: usize = 8;

/// Everything planning needs, read by [`crate::gather::gather`] (or built by a test).
#[derive(Clone, Debug)]
pub struct PlanInputs {
    /// The Plan.
    pub plan: Plan,
    /// The StorageMap the Plan names; `None` when it names none or it does not exist.
    pub storage_map: Option<StorageMap>,
    /// The Plan's source Provider.
    pub provider: Provider,
    /// The data of the Provider's Secret (`user`, `password`, `insecureSkipVerify`, `cacert`).
    pub provider_secret: BTreeMap<String, ByteString>,
    /// The data of each storage Secret an offloaded mapping names, by Secret name (all in the
    /// namespace [`storage_secret_namespace`] gives); a Secret absent here does not exist.
    pub storage_secrets: BTreeMap<String, BTreeMap<String, ByteString>>,
    /// The Provider's SSH key pair, when both key Secrets exist.
    pub ssh_keys: Option<SshKeyPair>,
    /// The Plan's VMs as vCenter describes them.
    pub inventory: Vec<VmInventory>,
    /// Copies already running per migration host.
    pub host_loads: HostLoads,
    /// The UID of the Migration running the plan, when there is one (labels the objects).
    pub migration_uid: Option<String>,
}

/// The Provider's SSH key pair as its Secrets hold it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SshKeyPair {
    /// `private-key` of `offload-ssh-keys-<provider>-private` (PEM).
    pub private_key: Vec<u8>,
    /// `public-key` of `offload-ssh-keys-<provider>-public` (authorized_keys line).
    pub public_key: Vec<u8>,
}

impl std::fmt::Debug for SshKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshKeyPair").finish_non_exhaustive()
    }
}

/// What planning concluded.
#[derive(Clone, Debug)]
pub enum PlanOutcome {
    /// No disk of the plan is on a datastore mapped with `vsphereXcopyConfig`: nothing to create.
    NothingToPlan,
    /// Some disks would be offloaded and others copied with VDDK: refused (see
    /// [`mixed_usage_condition`]).
    MixedUsage(MixedUsage),
    /// The objects to create.
    Planned(OffloadPlan),
}

/// The objects for every offloaded disk of a plan, in plan VM order then disk order.
#[derive(Clone, Debug, Default)]
pub struct OffloadPlan {
    /// Namespace of every object (the plan's target namespace).
    pub namespace: String,
    /// One entry per offloaded disk.
    pub disks: Vec<PlannedDisk>,
    /// Disks not planned and why (unmapped datastore, CSI volume import), for the record.
    pub skipped: Vec<SkippedDisk>,
}

/// The three objects that copy one disk. All three carry the same name.
#[derive(Clone, Debug)]
pub struct PlannedDisk {
    /// The VM's managed object id.
    pub vm_id: String,
    /// The VM's name.
    pub vm_name: String,
    /// The disk's device key.
    pub disk_key: i32,
    /// The disk's backing file.
    pub disk_file: String,
    /// The Secret the populator pod reads (owner: the PVC, see [`PlannedDisk::set_owner`]).
    pub secret: Secret,
    /// The Block PVC to populate.
    pub pvc: PersistentVolumeClaim,
    /// The populator resource the PVC's `dataSourceRef` names.
    pub populator: VSphereXcopyVolumePopulator,
}

impl PlannedDisk {
    /// Makes the created PVC (name and `uid`) the controlling owner of the Secret and the
    /// populator resource, so deleting the PVC removes them; call once the PVC exists.
    pub fn set_owner(&mut self, pvc_uid: &str) {
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "PersistentVolumeClaim".into(),
            name: self.pvc.name_any(),
            uid: pvc_uid.to_owned(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        self.secret.metadata.owner_references = Some(vec![owner.clone()]);
        self.populator.metadata.owner_references = Some(vec![owner]);
    }
}

/// A disk left out of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedDisk {
    /// The VM's name.
    pub vm_name: String,
    /// The disk's backing file.
    pub disk_file: String,
    /// Why it is not planned.
    pub reason: String,
}

/// The disks of a plan that would be copied with VDDK while others are offloaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixedUsage {
    /// The disks on datastores mapped without an offload plugin.
    pub vddk_disks: Vec<DiskAtFault>,
}

/// One disk that prevents a plan from being offloaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskAtFault {
    /// The VM's name.
    pub vm_name: String,
    /// The VM's managed object id.
    pub vm_id: String,
    /// The disk's backing file.
    pub disk_file: String,
    /// The datastore's name.
    pub datastore_name: String,
    /// The datastore's managed object id.
    pub datastore_id: String,
}

/// Why a plan cannot be planned; each names what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The Plan names no StorageMap, or the one it names does not exist.
    #[error(
        "plan {plan}: {}; create the StorageMap or set spec.map.storage to an existing one",
        match .named { Some(name) => format!("StorageMap {name} does not exist"), None => "spec.map.storage names no StorageMap".to_owned() }
    )]
    StorageMapMissing {
        /// `namespace/name` of the plan.
        plan: String,
        /// `namespace/name` of the StorageMap it names, if any.
        named: Option<String>,
    },
    /// The Plan has no target namespace.
    #[error("plan {plan}: spec.targetNamespace is empty; set the namespace the VMs migrate to")]
    TargetNamespaceMissing {
        /// `namespace/name` of the plan.
        plan: String,
    },
    /// A VM of the plan is not in vCenter's inventory.
    #[error(
        "plan {plan}: VM {vm} is not in vCenter's inventory; correct spec.vms or check that the VM \
         still exists"
    )]
    VmNotInInventory {
        /// `namespace/name` of the plan.
        plan: String,
        /// The VM as the plan names it.
        vm: String,
    },
    /// The Provider's URL is missing or has no host.
    #[error(
        "provider {provider}: spec.url {url:?} names no vCenter host; set it to e.g. \
         https://vcenter.example.com/sdk"
    )]
    ProviderUrl {
        /// `namespace/name` of the provider.
        provider: String,
        /// The URL given.
        url: String,
    },
    /// The Provider's Secret lacks the vCenter user or password.
    #[error(
        "provider {provider}: its Secret {secret} lacks {missing}; add the vCenter credentials"
    )]
    ProviderSecretIncomplete {
        /// `namespace/name` of the provider.
        provider: String,
        /// The Secret's name.
        secret: String,
        /// The keys missing.
        missing: String,
    },
    /// The Provider's `esxiCloneMethod` is neither `vib` nor `ssh`.
    #[error("provider {provider}: settings.esxiCloneMethod: {source}")]
    CloneMethod {
        /// `namespace/name` of the provider.
        provider: String,
        /// The parse error.
        source: co_api::UnknownCloneMethod,
    },
    /// `esxiCloneMethod: ssh` but the Provider's key Secrets do not exist.
    #[error(
        "provider {provider} uses esxiCloneMethod ssh but its SSH key Secrets {namespace}/{private} \
         (key private-key) and {namespace}/{public} (key public-key) do not both exist; let the \
         planner's Provider controller create them (feature_copy_offload on) or create them with \
         your own key pair"
    )]
    SshKeysMissing {
        /// `namespace/name` of the provider.
        provider: String,
        /// The Provider's namespace.
        namespace: String,
        /// Name of the private key Secret.
        private: String,
        /// Name of the public key Secret.
        public: String,
    },
    /// An offloaded mapping names a storage product that is not one of the nine.
    #[error(
        "StorageMap {map}, datastore {datastore}: storageVendorProduct {given:?} is not one of {}",
        StorageVendorProduct::valid_names()
    )]
    UnknownVendor {
        /// `namespace/name` of the map.
        map: String,
        /// The mapping's source datastore.
        datastore: String,
        /// The name given.
        given: String,
    },
    /// An offloaded mapping's storage Secret does not exist.
    #[error(
        "StorageMap {map}, datastore {datastore}: storage Secret {namespace}/{secret:?} does not \
         exist; create it or correct offloadPlugin.vsphereXcopyConfig.secretRef"
    )]
    StorageSecretMissing {
        /// `namespace/name` of the map.
        map: String,
        /// The mapping's source datastore.
        datastore: String,
        /// Namespace looked in.
        namespace: String,
        /// The name given.
        secret: String,
    },
    /// An offloaded mapping's storage Secret lacks what the vendor needs.
    #[error("StorageMap {map}, datastore {datastore}: storage Secret {secret}: {}", .problems.join("; "))]
    StorageSecretIncomplete {
        /// `namespace/name` of the map.
        map: String,
        /// The mapping's source datastore.
        datastore: String,
        /// The Secret's name.
        secret: String,
        /// `KEY: what is wrong`, one per key.
        problems: Vec<String>,
    },
}

impl PlanError {
    /// The exit code for `copy-offload plan`: every planning error is an input to correct.
    pub fn exit_code(&self) -> co_api::contract::ExitCode {
        co_api::contract::ExitCode::Permanent
    }
}

/// Where the storage Secrets of `map` live (the source provider's namespace, else the map's).
pub fn storage_secret_namespace(map: &StorageMap) -> String {
    storage_map::secret_namespace(map)
}

/// The names of the storage Secrets the offloaded mappings of `map` reference, for reading.
pub fn storage_secret_names(map: &StorageMap) -> Vec<String> {
    let mut names: Vec<String> = map
        .spec
        .map
        .iter()
        .filter_map(storage_map::offloaded)
        .map(|config| config.secret_ref.trim().to_owned())
        .filter(|name| storage_map::is_object_name(name))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether any mapping of `map` has `offloadPlugin.vsphereXcopyConfig` (else there is nothing
/// to plan, and no need to ask vCenter about the plan's VMs).
pub fn has_offloaded_mapping(map: &StorageMap) -> bool {
    map.spec
        .map
        .iter()
        .any(|pair| storage_map::offloaded(pair).is_some())
}

fn qualified(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// How one disk would be copied.
enum DiskRoute<'a> {
    Offload(&'a StoragePair, &'a VSphereXcopyPluginConfig),
    Vddk,
    Skip(&'static str),
}

fn route<'a>(map: &'a StorageMap, disk: &DiskInventory) -> DiskRoute<'a> {
    let pair = map.spec.map.iter().find(|pair| {
        pair.source.id.as_deref() == Some(disk.datastore_id.as_str())
            || pair.source.name.as_deref() == Some(disk.datastore_name.as_str())
    });
    let Some(pair) = pair else {
        return DiskRoute::Skip("its datastore is not in the StorageMap");
    };
    match &pair.offload_plugin {
        Some(plugin) => match &plugin.vsphere_xcopy_config {
            Some(config) => DiskRoute::Offload(pair, config),
            None if plugin.csi_volume_import.is_some() => {
                DiskRoute::Skip("its datastore is mapped with csiVolumeImport")
            }
            None => DiskRoute::Vddk,
        },
        None => DiskRoute::Vddk,
    }
}

fn find_vm<'a>(
    inventory: &'a [VmInventory],
    wanted: &co_api::forklift::PlanVm,
) -> Option<&'a VmInventory> {
    match (&wanted.id, &wanted.name) {
        (Some(id), _) if !id.is_empty() => inventory.iter().find(|vm| &vm.id == id),
        (_, Some(name)) => inventory.iter().find(|vm| &vm.name == name),
        _ => None,
    }
}

/// Plans the objects for every offloaded disk of `inputs.plan`.
pub fn plan_offload(inputs: &PlanInputs) -> Result<PlanOutcome, PlanError> {
    let plan = &inputs.plan;
    let plan_name = qualified(&plan.metadata);
    let Some(map) = &inputs.storage_map else {
        return Err(PlanError::StorageMapMissing {
            plan: plan_name,
            named: plan.spec.map.storage.as_ref().map(|reference| {
                format!(
                    "{}/{}",
                    reference
                        .namespace
                        .as_deref()
                        .unwrap_or(plan.metadata.namespace.as_deref().unwrap_or_default()),
                    reference.name.as_deref().unwrap_or_default()
                )
            }),
        });
    };

    if !has_offloaded_mapping(map) {
        return Ok(PlanOutcome::NothingToPlan);
    }

    let mut offloaded = Vec::new();
    let mut vddk_disks = Vec::new();
    let mut skipped = Vec::new();
    for wanted in &plan.spec.vms {
        let vm = find_vm(&inputs.inventory, wanted).ok_or_else(|| PlanError::VmNotInInventory {
            plan: plan_name.clone(),
            vm: wanted
                .id
                .clone()
                .filter(|id| !id.is_empty())
                .or_else(|| wanted.name.clone())
                .unwrap_or_else(|| "(unnamed)".to_owned()),
        })?;
        for disk in &vm.disks {
            match route(map, disk) {
                DiskRoute::Offload(pair, config) => offloaded.push((vm, disk, pair, config)),
                DiskRoute::Vddk => vddk_disks.push(DiskAtFault {
                    vm_name: vm.name.clone(),
                    vm_id: vm.id.clone(),
                    disk_file: disk.file.clone(),
                    datastore_name: disk.datastore_name.clone(),
                    datastore_id: disk.datastore_id.clone(),
                }),
                DiskRoute::Skip(reason) => skipped.push(SkippedDisk {
                    vm_name: vm.name.clone(),
                    disk_file: disk.file.clone(),
                    reason: reason.to_owned(),
                }),
            }
        }
    }
    if offloaded.is_empty() {
        return Ok(PlanOutcome::NothingToPlan);
    }
    if !vddk_disks.is_empty() {
        return Ok(PlanOutcome::MixedUsage(MixedUsage { vddk_disks }));
    }

    let namespace = plan
        .spec
        .target_namespace
        .clone()
        .filter(|namespace| !namespace.trim().is_empty())
        .ok_or_else(|| PlanError::TargetNamespaceMissing {
            plan: plan_name.clone(),
        })?;
    let provider_data = provider_data(inputs)?;
    let mut loads = inputs.host_loads.clone();
    let mut disks = Vec::with_capacity(offloaded.len());
    for (vm, disk, pair, config) in offloaded {
        let map_name = qualified(&map.metadata);
        let datastore = storage_map::datastore_of(pair);
        let vendor = config
            .vendor()
            .map_err(|unknown| PlanError::UnknownVendor {
                map: map_name.clone(),
                datastore: datastore.clone(),
                given: unknown.given,
            })?;
        let secret_ref = config.secret_ref.trim();
        let storage_data = inputs
            .storage_secrets
            .get(secret_ref)
            .filter(|_| storage_map::is_object_name(secret_ref))
            .ok_or_else(|| PlanError::StorageSecretMissing {
                map: map_name.clone(),
                datastore: datastore.clone(),
                namespace: storage_secret_namespace(map),
                secret: secret_ref.to_owned(),
            })?;
        let problems = storage_map::check_secret(vendor, storage_data);
        if !problems.is_empty() {
            return Err(PlanError::StorageSecretIncomplete {
                map: map_name,
                datastore,
                secret: secret_ref.to_owned(),
                problems,
            });
        }
        let migration_host = least_loaded(&config.dedicated_migration_hosts, &mut loads);
        let parts = DiskParts {
            plan,
            namespace: &namespace,
            migration_uid: inputs.migration_uid.as_deref(),
            vm,
            disk,
            vendor,
            migration_host,
        };
        disks.push(parts.build(pair, &provider_data, storage_data));
    }
    Ok(PlanOutcome::Planned(OffloadPlan {
        namespace,
        disks,
        skipped,
    }))
}

/// The keys every per-disk Secret gets from the provider: its Secret's data, the `GOVMOMI_*`
/// variables, the clone method and the SSH keys.
struct ProviderData {
    /// The provider Secret's data as is (Forklift's VM migration Secret is a copy of it).
    base: BTreeMap<String, ByteString>,
    /// Set after the storage Secret's keys, so those cannot shadow them.
    overrides: BTreeMap<String, ByteString>,
}

fn bytes(text: impl Into<String>) -> ByteString {
    ByteString(text.into().into_bytes())
}

fn provider_data(inputs: &PlanInputs) -> Result<ProviderData, PlanError> {
    let provider = &inputs.provider;
    let provider_name = qualified(&provider.metadata);
    let url = provider.spec.url.clone().unwrap_or_default();
    let hostname = vcenter_authority(&url).ok_or_else(|| PlanError::ProviderUrl {
        provider: provider_name.clone(),
        url: url.clone(),
    })?;
    let data = &inputs.provider_secret;
    let present = |key: &str| {
        data.get(key)
            .filter(|value| !String::from_utf8_lossy(&value.0).trim().is_empty())
    };
    let missing: Vec<&str> = [PROVIDER_USER_KEY, PROVIDER_PASSWORD_KEY]
        .into_iter()
        .filter(|key| present(key).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(PlanError::ProviderSecretIncomplete {
            provider: provider_name,
            secret: provider
                .spec
                .secret
                .as_ref()
                .and_then(|secret| secret.name.clone())
                .unwrap_or_default(),
            missing: missing.join(" and "),
        });
    }
    let method = provider
        .spec
        .esxi_clone_method()
        .map_err(|source| PlanError::CloneMethod {
            provider: provider_name.clone(),
            source,
        })?;

    let mut overrides = BTreeMap::new();
    overrides.insert(
        flags::VSPHERE_HOSTNAME.env_name().to_owned(),
        bytes(hostname),
    );
    for (variable, keys) in [
        (flags::VSPHERE_USERNAME, &[PROVIDER_USER_KEY][..]),
        (flags::VSPHERE_PASSWORD, &[PROVIDER_PASSWORD_KEY]),
        (flags::VSPHERE_INSECURE, &[PROVIDER_INSECURE_KEY]),
        (flags::VSPHERE_CA_CERT, PROVIDER_CA_KEYS),
    ] {
        if let Some(value) = keys.iter().find_map(|key| data.get(*key)) {
            overrides.insert(variable.env_name().to_owned(), value.clone());
        }
    }
    if provider
        .spec
        .settings
        .contains_key(co_api::forklift::ESXI_CLONE_METHOD_SETTING)
    {
        overrides.insert(
            flags::ESXI_CLONE_METHOD.env_name().to_owned(),
            bytes(method.as_str()),
        );
    }
    match &inputs.ssh_keys {
        Some(keys) => {
            // The populator reads both variables base64-encoded, as Forklift passes them.
            let engine = base64::engine::general_purpose::STANDARD;
            overrides.insert(
                flags::SSH_PRIVATE_KEY.env_name().to_owned(),
                bytes(engine.encode(&keys.private_key)),
            );
            overrides.insert(
                flags::SSH_PUBLIC_KEY.env_name().to_owned(),
                bytes(engine.encode(&keys.public_key)),
            );
        }
        None if method == CloneMethod::Ssh => {
            let name = provider.name_any();
            return Err(PlanError::SshKeysMissing {
                provider: provider_name,
                namespace: provider.namespace().unwrap_or_default(),
                private: ssh_keys::private_secret_name(&name),
                public: ssh_keys::public_secret_name(&name),
            });
        }
        None => {}
    }
    Ok(ProviderData {
        base: data.clone(),
        overrides,
    })
}

/// `host[:port]` of a Provider URL (`https://vcenter.example.com/sdk` → `vcenter.example.com`),
/// what the populator takes as `GOVMOMI_HOSTNAME`.
fn vcenter_authority(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    let host = parsed.host_str().filter(|host| !host.is_empty())?;
    Some(match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// The least-loaded of `hosts` (ties broken by name), counted as one busier; `None` (the VM's
/// own host) when the mapping dedicates none.
fn least_loaded(hosts: &[String], loads: &mut HostLoads) -> Option<String> {
    let chosen = hosts
        .iter()
        .map(|host| host.trim())
        .filter(|host| !host.is_empty())
        .min_by(|a, b| {
            let load = |host: &str| loads.get(host).copied().unwrap_or(0);
            load(a).cmp(&load(b)).then_with(|| a.cmp(b))
        })?
        .to_owned();
    *loads.entry(chosen.clone()).or_default() += 1;
    Some(chosen)
}

/// The name of the PVC, populator and Secret of one disk: readable (`<plan>-<vm>-<key>`, cut to
/// fit) and made unique by 8 hex characters of a digest over the plan's namespace and name, the
/// VM id and the disk key; a DNS-1123 label of at most 63 characters.
pub fn disk_object_name(
    plan_namespace: &str,
    plan_name: &str,
    vm_id: &str,
    disk_key: i32,
) -> String {
    let digest = hex::encode(Sha256::digest(
        format!("{plan_namespace}/{plan_name}/{vm_id}/{disk_key}").as_bytes(),
    ));
    let readable: String = format!("{plan_name}-{vm_id}-{disk_key}")
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut readable = readable.trim_matches('-').to_owned();
    readable.truncate(NAME_MAX - NAME_DIGEST_LEN - 1);
    let readable = readable.trim_end_matches('-');
    let digest = &digest[..NAME_DIGEST_LEN];
    if readable.is_empty() {
        format!("disk-{digest}")
    } else {
        format!("{readable}-{digest}")
    }
}

/// Whether `value` is a valid label value.
fn is_label_value(value: &str) -> bool {
    value.len() <= NAME_MAX
        && (value.is_empty()
            || (value.starts_with(|c: char| c.is_ascii_alphanumeric())
                && value.ends_with(|c: char| c.is_ascii_alphanumeric())
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))))
}

/// The backing file a disk is tracked by: for a warm plan the base disk, without the
/// `-NNNNNN` suffix a snapshot's delta disk carries.
fn base_volume_path(file: &str, warm: bool) -> String {
    if !warm {
        return file.to_owned();
    }
    if let Some(stem) = file.strip_suffix(".vmdk")
        && let Some((base, suffix)) = stem.rsplit_once('-')
        && suffix.len() == 6
        && suffix.chars().all(|c| c.is_ascii_digit())
    {
        return format!("{base}.vmdk");
    }
    file.to_owned()
}

struct DiskParts<'a> {
    plan: &'a Plan,
    namespace: &'a str,
    migration_uid: Option<&'a str>,
    vm: &'a VmInventory,
    disk: &'a DiskInventory,
    vendor: StorageVendorProduct,
    migration_host: Option<String>,
}

impl DiskParts<'_> {
    fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        if let Some(uid) = self.migration_uid {
            labels.insert(MIGRATION_LABEL.to_owned(), uid.to_owned());
        }
        labels.insert(
            PLAN_LABEL.to_owned(),
            self.plan.metadata.uid.clone().unwrap_or_default(),
        );
        labels.insert(VMDK_KEY_LABEL.to_owned(), self.disk.key.to_string());
        labels.insert(VM_ID_LABEL.to_owned(), self.vm.id.clone());
        if is_label_value(&self.vm.host) && !self.vm.host.is_empty() {
            labels.insert(SOURCE_HOST_LABEL.to_owned(), self.vm.host.clone());
        }
        if let Some(naa) = self.disk.naa.as_deref().filter(|naa| is_label_value(naa)) {
            labels.insert(AFFINITY_NAA_LABEL.to_owned(), naa.to_owned());
        }
        labels.insert(
            ssh_keys::MANAGED_BY_LABEL.to_owned(),
            ssh_keys::MANAGED_BY.to_owned(),
        );
        labels
    }

    fn meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(self.namespace.to_owned()),
            labels: Some(self.labels()),
            ..ObjectMeta::default()
        }
    }

    fn build(
        self,
        pair: &StoragePair,
        provider: &ProviderData,
        storage: &BTreeMap<String, ByteString>,
    ) -> PlannedDisk {
        let name = disk_object_name(
            self.plan.metadata.namespace.as_deref().unwrap_or_default(),
            &self.plan.name_any(),
            &self.vm.id,
            self.disk.key,
        );

        let mut data = provider.base.clone();
        data.extend(storage.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (variable, alias) in co_api::secret::STORAGE_KEY_ALIASES {
            if !data.contains_key(variable)
                && let Some(value) = storage.get(alias)
            {
                data.insert(variable.to_owned(), value.clone());
            }
        }
        data.extend(provider.overrides.clone());
        let secret = Secret {
            metadata: self.meta(&name),
            data: Some(data),
            type_: Some("Opaque".into()),
            ..Secret::default()
        };

        let disk_source = base_volume_path(&self.disk.file, self.plan.spec.warm);
        let mut pvc_meta = self.meta(&name);
        pvc_meta.annotations = Some(BTreeMap::from([
            (DISK_SOURCE_ANNOTATION.to_owned(), disk_source.clone()),
            (COPY_OFFLOAD_ANNOTATION.to_owned(), disk_source),
            (IMPORT_SECRET_ANNOTATION.to_owned(), name.clone()),
        ]));
        let access_mode = pair
            .destination
            .access_mode
            .clone()
            .filter(|mode| !mode.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ACCESS_MODE.to_owned());
        let pvc = PersistentVolumeClaim {
            metadata: pvc_meta,
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec![access_mode]),
                storage_class_name: Some(pair.destination.storage_class.clone())
                    .filter(|class| !class.is_empty()),
                volume_mode: Some("Block".into()),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_owned(),
                        Quantity(self.disk.capacity_bytes.to_string()),
                    )])),
                    ..VolumeResourceRequirements::default()
                }),
                data_source_ref: Some(TypedObjectReference {
                    api_group: Some(co_api::GROUP.into()),
                    kind: "VSphereXcopyVolumePopulator".into(),
                    name: name.clone(),
                    namespace: None,
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        };

        let populator = VSphereXcopyVolumePopulator {
            metadata: self.meta(&name),
            spec: VSphereXcopyVolumePopulatorSpec {
                vm_id: Some(self.vm.id.clone()),
                vmdk_path: self.disk.file.clone(),
                secret_name: Some(name.clone()),
                storage_vendor_product: self.vendor.as_str().to_owned(),
                migration_host: self.migration_host,
                ..VSphereXcopyVolumePopulatorSpec::default()
            },
            status: None,
        };

        PlannedDisk {
            vm_id: self.vm.id.clone(),
            vm_name: self.vm.name.clone(),
            disk_key: self.disk.key,
            disk_file: self.disk.file.clone(),
            secret,
            pvc,
            populator,
        }
    }
}

/// The critical Plan condition for a refused mixed plan: the seed's explanation, and one item
/// per disk that would need VDDK (VM, disk file, datastore).
pub fn mixed_usage_condition(mixed: &MixedUsage) -> Condition {
    let items: Vec<String> = mixed
        .vddk_disks
        .iter()
        .map(|disk| {
            format!(
                "VM {} ({}): disk {} on datastore {} ({}) has no offload plugin",
                disk.vm_name, disk.vm_id, disk.disk_file, disk.datastore_name, disk.datastore_id
            )
        })
        .collect();
    Condition {
        type_: MIXED_USAGE_CONDITION.into(),
        category: category::CRITICAL,
        reason: "NotSupported".into(),
        message: format!(
            "A migration plan cannot mix VDDK mappings with copy-offload mappings: disks are copied \
             either through CDI volumes (VDDK) or through volume populators (copy offload), so all \
             storage pairs of the plan's disks must either include copy-offload details (secret + \
             product) or none of them must. {} of this plan would be copied with VDDK: add \
             offloadPlugin.vsphereXcopyConfig to their datastores' mappings, or move their VMs to \
             a plan without copy offload.",
            if items.len() == 1 {
                "1 disk".to_owned()
            } else {
                format!("{} disks", items.len())
            }
        ),
        items,
    }
}

#[cfg(test)]
mod tests;
