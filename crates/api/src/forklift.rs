//! Read-only views of the Forklift resources copy-offload consults: `StorageMap` (which datastore
//! pairs are offloaded, with which vendor and secret), `Provider` (the ESXi clone method) and
//! `Plan` (which storage map, target namespace and VMs).
//!
//! Forklift owns these CRDs, so they are typed with `kube::CustomResource` for `Api<T>` access but
//! with `schema = "disabled"`: we never generate or install them, and [`crate::crds_yaml`] leaves
//! them out. Only the fields we read are modelled; everything else is ignored on read. Because of
//! that, never `replace` one of these objects with these types (fields we do not model would be
//! dropped); change them with patches if ever needed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use crate::clone_method::{CloneMethod, UnknownCloneMethod};
use crate::vendor::{StorageVendorProduct, UnknownVendor};

/// Provider setting key holding the clone method (`vib` or `ssh`).
pub const ESXI_CLONE_METHOD_SETTING: &str = "esxiCloneMethod";

/// `StorageMap.spec`: which source datastores map to which storage classes, and how to copy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "forklift.konveyor.io",
    version = "v1beta1",
    kind = "StorageMap",
    plural = "storagemaps",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct StorageMapSpec {
    /// Source and destination providers.
    #[serde(default)]
    pub provider: ProviderPair,
    /// One entry per source datastore.
    #[serde(default)]
    pub map: Vec<StoragePair>,
}

/// A source/destination provider pair (`spec.provider` of maps and plans).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderPair {
    /// The VMware provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ObjectReference>,
    /// The Kubernetes (host) provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<ObjectReference>,
}

/// One `StorageMap` entry: a source datastore, its destination, and the offload configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoragePair {
    /// The source datastore (by vSphere id, e.g. `datastore-18601`, or name).
    #[serde(default)]
    pub source: SourceDatastore,
    /// Where disks of that datastore go.
    #[serde(default)]
    pub destination: DestinationStorage,
    /// How the copy is offloaded, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offload_plugin: Option<OffloadPlugin>,
}

/// A reference to a source datastore in the provider inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceDatastore {
    /// Inventory id, e.g. `datastore-18601`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Datastore name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The destination of a storage pair.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationStorage {
    /// Storage class of the target PVCs.
    #[serde(default)]
    pub storage_class: String,
    /// Access mode of the target PVCs (Forklift defaults to `ReadWriteMany` for offload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<String>,
    /// Volume mode of the target PVCs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mode: Option<String>,
}

/// `offloadPlugin` of a storage pair.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OffloadPlugin {
    /// Copy with vmkfstools/XCOPY or an array-side copy (this project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsphere_xcopy_config: Option<VSphereXcopyPluginConfig>,
    /// Import existing CSI volumes instead of copying (Forklift feature; read so mixed plans can
    /// be recognised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csi_volume_import: Option<CsiVolumeImportConfig>,
}

/// `offloadPlugin.vsphereXcopyConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VSphereXcopyPluginConfig {
    /// Secret with the storage credentials, in the source provider's namespace.
    #[serde(default)]
    pub secret_ref: String,
    /// Storage product, one of the nine names. Kept as text so a map written for a newer
    /// version still loads and the unknown name can be reported.
    #[serde(default)]
    pub storage_vendor_product: String,
    /// ESXi hosts (managed object ids) reserved for running clones; empty means the VM's host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dedicated_migration_hosts: Vec<String>,
}

impl VSphereXcopyPluginConfig {
    /// The storage product, or why the configured name is not one.
    pub fn vendor(&self) -> Result<StorageVendorProduct, UnknownVendor> {
        self.storage_vendor_product.trim().parse()
    }
}

/// `offloadPlugin.csiVolumeImport`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CsiVolumeImportConfig {
    /// Secret with the storage credentials.
    #[serde(default)]
    pub secret_ref: String,
    /// Storage product.
    #[serde(default)]
    pub storage_vendor_product: String,
}

/// `Provider.spec`: the fields copy-offload reads from a vSphere provider.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "forklift.konveyor.io",
    version = "v1beta1",
    kind = "Provider",
    plural = "providers",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    /// Provider type, e.g. `vsphere`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
    /// SDK endpoint URL, e.g. `https://vcenter.example.com/sdk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The Secret with the provider credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectReference>,
    /// Free-form settings (`esxiCloneMethod`, `sdkEndpoint`, `vddkInitImage`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
}

impl ProviderSpec {
    /// The clone method from `settings.esxiCloneMethod`: absent or empty means VIB.
    pub fn esxi_clone_method(&self) -> Result<CloneMethod, UnknownCloneMethod> {
        self.settings
            .get(ESXI_CLONE_METHOD_SETTING)
            .map_or(Ok(CloneMethod::default()), |value| {
                CloneMethod::from_setting(value)
            })
    }
}

/// `Plan.spec`: the fields copy-offload reads from a migration plan.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "forklift.konveyor.io",
    version = "v1beta1",
    kind = "Plan",
    plural = "plans",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct PlanSpec {
    /// Source and destination providers.
    #[serde(default)]
    pub provider: ProviderPair,
    /// The network and storage maps.
    #[serde(default)]
    pub map: PlanMaps,
    /// Namespace of the migrated VMs and their PVCs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    /// Warm migration (precopies while the VM runs).
    #[serde(default)]
    pub warm: bool,
    /// The VMs to migrate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vms: Vec<PlanVm>,
}

/// `Plan.spec.map`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanMaps {
    /// The StorageMap whose offload plugins decide which disks are offloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<ObjectReference>,
    /// The NetworkMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<ObjectReference>,
}

/// A VM listed in a plan (by inventory id or name).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanVm {
    /// Inventory id, e.g. `vm-123`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// VM name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}
