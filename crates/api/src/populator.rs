//! The `VSphereXcopyVolumePopulator` custom resource (`forklift.konveyor.io/v1beta1`): one per
//! disk to copy, referenced by the target PVC's `dataSourceRef`.
//!
//! Two dialects reach us and both are accepted:
//! - upstream Forklift's: `vmId`, `vmdkPath`, `secretName`, `storageVendorProduct`, `migrationHost`;
//! - the seed documentation's: `secretRef`, `targetPVC`, `vmdkPath`, `storageVendorProduct`, with
//!   `vmId` absent (the VM is found from the disk path later).
//!
//! Serde aliases cannot express this in a CRD schema (the API server would prune the alias), so
//! every field of both dialects is declared, optional where one dialect lacks it, and
//! [`VSphereXcopyVolumePopulatorSpec::normalized`] resolves them into one [`NormalizedSpec`].
//!
//! Compared with upstream's CRD this one adds printer columns, schema validation of the vendor
//! name, and typed progress next to upstream's string status fields, which are kept for the
//! Forklift controller. Like upstream's it has no status subresource (see [`crate::populator_crd`]):
//! Forklift's controller writes status with a plain Update, which a subresource would drop.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::datastore_path::{DatastorePath, DatastorePathError};
use crate::vendor::{StorageVendorProduct, UnknownVendor};

/// The API group of every Forklift resource this crate models.
pub const GROUP: &str = "forklift.konveyor.io";
/// The API version of every Forklift resource this crate models.
pub const VERSION: &str = "v1beta1";

/// Where and how to copy one VMware disk into the PVC that references this resource.
// The lint mistakes the repeated `type_ = "string"` of separate printcolumns for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "forklift.konveyor.io",
    version = "v1beta1",
    kind = "VSphereXcopyVolumePopulator",
    plural = "vspherexcopyvolumepopulators",
    singular = "vspherexcopyvolumepopulator",
    shortname = "vxvp",
    shortname = "vxvps",
    namespaced,
    status = "VSphereXcopyVolumePopulatorStatus",
    doc = "Copies a VMware vSphere disk into the PVC whose dataSourceRef names this resource, by having the storage array do the copy (vmkfstools clone with SCSI XCOPY, or an array-side copy).",
    printcolumn(
        name = "Vendor",
        type_ = "string",
        json_path = ".spec.storageVendorProduct"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Progress",
        type_ = "string",
        json_path = ".status.progress",
        description = "Percent of the disk copied"
    ),
    printcolumn(
        name = "XCOPY",
        type_ = "string",
        json_path = ".status.xcopyUsed",
        description = "Whether the array offloaded the copy (SCSI XCOPY)"
    ),
    printcolumn(
        name = "Method",
        type_ = "string",
        json_path = ".status.cloneMethod",
        priority = 1
    ),
    printcolumn(
        name = "Disk",
        type_ = "string",
        json_path = ".spec.vmdkPath",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VSphereXcopyVolumePopulatorSpec {
    /// vSphere id (managed object reference, e.g. vm-123) or name of the VM owning the disk. Optional: when absent the VM is found from vmdkPath.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_id: Option<String>,
    /// Datastore path of the disk descriptor, e.g. "[datastore1] vm-1/vm-1.vmdk". Nested folders and files at the datastore root are allowed.
    pub vmdk_path: String,
    /// Secret (in this namespace) holding the vSphere and storage credentials; its keys become the populator's environment. Upstream field; secretRef is the same thing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Same as secretName (field name used by the original documentation). Set one of the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<String>,
    /// Storage product holding both the source datastore and the target volume.
    #[schemars(schema_with = "storage_vendor_product_schema")]
    pub storage_vendor_product: String,
    /// ESXi host (managed object id, e.g. host-123) that runs the clone. Empty means the host running the VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_host: Option<String>,
    /// Name of the PVC to populate (field of the original documentation). When set it must be the PVC whose dataSourceRef names this resource.
    #[serde(default, rename = "targetPVC", skip_serializing_if = "Option::is_none")]
    pub target_pvc: Option<String>,
}

/// The field is a string on the wire, so an unknown vendor written under an older CRD still
/// deserializes and can be reported in status; the schema restricts new writes to the nine names.
fn storage_vendor_product_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    <StorageVendorProduct as JsonSchema>::json_schema(generator)
}

/// A spec resolved from either dialect and validated: what the copy engine works with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormalizedSpec {
    /// VM id or name, when the resource names one.
    pub vm_id: Option<String>,
    /// The source disk descriptor.
    pub vmdk_path: DatastorePath,
    /// The Secret with the credentials (from `secretName` or `secretRef`).
    pub secret_name: String,
    /// The storage product.
    pub vendor: StorageVendorProduct,
    /// The ESXi host to run the clone on, when one is pinned.
    pub migration_host: Option<String>,
    /// The PVC named in `targetPVC`, when given.
    pub target_pvc: Option<String>,
}

/// One thing wrong with a spec. Messages name the field and say what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecProblem {
    #[error(
        "spec.secretName (or spec.secretRef) is missing; name the Secret holding the vSphere and storage credentials"
    )]
    MissingSecret,
    #[error(
        "spec.secretName ({secret_name:?}) and spec.secretRef ({secret_ref:?}) name different Secrets; set only one of them"
    )]
    ConflictingSecret {
        secret_name: String,
        secret_ref: String,
    },
    #[error("spec.vmdkPath: {0}")]
    InvalidVmdkPath(#[source] DatastorePathError),
    #[error("spec.storageVendorProduct: {0}")]
    UnknownVendor(#[source] UnknownVendor),
}

/// Every problem found in a spec, reported together so one edit can fix them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid VSphereXcopyVolumePopulator spec: {}", join_problems(.problems))]
pub struct SpecError {
    /// The problems, in field order.
    pub problems: Vec<SpecProblem>,
}

fn join_problems(problems: &[SpecProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Treats empty and whitespace-only strings as absent: Go writers emit `""` for unset fields.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl VSphereXcopyVolumePopulatorSpec {
    /// Resolves the two dialects into one validated spec, or reports every problem at once.
    pub fn normalized(&self) -> Result<NormalizedSpec, SpecError> {
        let mut problems = Vec::new();

        let secret_name = match (present(&self.secret_name), present(&self.secret_ref)) {
            (Some(name), Some(reference)) if name != reference => {
                problems.push(SpecProblem::ConflictingSecret {
                    secret_name: name.to_owned(),
                    secret_ref: reference.to_owned(),
                });
                None
            }
            (Some(name), _) | (None, Some(name)) => Some(name.to_owned()),
            (None, None) => {
                problems.push(SpecProblem::MissingSecret);
                None
            }
        };
        let vmdk_path = DatastorePath::parse(&self.vmdk_path)
            .map_err(|e| problems.push(SpecProblem::InvalidVmdkPath(e)))
            .ok();
        let vendor = self
            .storage_vendor_product
            .trim()
            .parse::<StorageVendorProduct>()
            .map_err(|e| problems.push(SpecProblem::UnknownVendor(e)))
            .ok();

        match (secret_name, vmdk_path, vendor) {
            (Some(secret_name), Some(vmdk_path), Some(vendor)) if problems.is_empty() => {
                Ok(NormalizedSpec {
                    vm_id: present(&self.vm_id).map(str::to_owned),
                    vmdk_path,
                    secret_name,
                    vendor,
                    migration_host: present(&self.migration_host).map(str::to_owned),
                    target_pvc: present(&self.target_pvc).map(str::to_owned),
                })
            }
            _ => Err(SpecError { problems }),
        }
    }
}

/// Phase of the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CopyPhase {
    /// Waiting for the populator pod to start (or for a free slot on the ESXi host).
    Pending,
    /// Finding the VM, the disk and its type, and the target volume.
    Resolving,
    /// Mapping the target volume to the ESXi host on the array.
    Mapping,
    /// Rescanning the ESXi host until the target device appears.
    Discovering,
    /// Proving the device ESXi sees is the target volume before writing to it.
    Verifying,
    /// The clone is running.
    Cloning,
    /// Undoing the mapping and removing temporary files.
    CleaningUp,
    /// The disk was copied and the PVC can be bound.
    Succeeded,
    /// The copy failed; see the conditions for why and what to do.
    Failed,
    /// A phase written by a newer version; kept so such objects still load.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

impl CopyPhase {
    /// Whether the copy has ended (successfully or not).
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

// The string fields are upstream's: the Forklift controller copies them into its migration
// tasks, so they keep upstream's formats. The typed fields after them are ours.
/// Progress and outcome of the copy. The string fields keep the formats of the upstream Forklift populator; phase, percent, byte counts and conditions are typed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VSphereXcopyVolumePopulatorStatus {
    /// Percent copied, as an integer string (upstream format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Whether the array offloaded the copy with SCSI XCOPY (upstream format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xcopy_used: Option<String>,
    /// Version of the vmkfstools-wrapper on the ESXi host (VIB method).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vib_version: Option<String>,
    /// Duration of the copy in seconds, set on completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_duration_seconds: Option<String>,
    /// "success" or "failure", set on completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Storage product used for the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_vendor: Option<String>,
    /// How the copy ran: vib, ssh, vvol or rdm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_method: Option<String>,
    /// SAN protocol between the ESXi host and the array: iscsi, fc or n/a.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_protocol: Option<String>,
    /// Provisioned size of the source disk in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_bytes: Option<String>,
    /// Bytes the source disk occupies on its datastore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_bytes: Option<String>,

    /// Current phase of the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<CopyPhase>,
    /// Percent copied (0-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<i32>,
    /// Bytes copied so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub copied_bytes: Option<i64>,
    /// Bytes to copy in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub total_bytes: Option<i64>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard Kubernetes conditions; a failed copy says here what failed and what to do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// The schema of `[]metav1.Condition` as Kubernetes publishes it, as a map-list keyed by `type`
/// so server-side apply merges conditions one by one. Written out because k8s-openapi's own
/// schemas are behind a feature that would rebuild it for the whole workspace.
fn conditions_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": { "type": "string", "description": "Type of condition in CamelCase." },
                "status": { "type": "string", "enum": ["True", "False", "Unknown"] },
                "observedGeneration": { "type": "integer", "format": "int64", "minimum": 0 },
                "lastTransitionTime": { "type": "string", "format": "date-time" },
                "reason": { "type": "string", "description": "Machine-readable reason in CamelCase." },
                "message": { "type": "string", "description": "Human-readable details: what happened and what to do." }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VSphereXcopyVolumePopulatorSpec {
        VSphereXcopyVolumePopulatorSpec {
            vmdk_path: "[ds] vm/vm.vmdk".into(),
            storage_vendor_product: "ontap".into(),
            ..Default::default()
        }
    }

    #[test]
    fn same_secret_in_both_dialects_is_not_a_conflict() {
        let spec = VSphereXcopyVolumePopulatorSpec {
            secret_name: Some("creds".into()),
            secret_ref: Some("creds".into()),
            ..spec()
        };
        assert_eq!(spec.normalized().unwrap().secret_name, "creds");
    }

    #[test]
    fn empty_strings_count_as_absent() {
        let spec = VSphereXcopyVolumePopulatorSpec {
            secret_name: Some(String::new()),
            secret_ref: Some("creds".into()),
            vm_id: Some(" ".into()),
            migration_host: Some(String::new()),
            ..spec()
        };
        let normalized = spec.normalized().unwrap();
        assert_eq!(normalized.secret_name, "creds");
        assert_eq!(normalized.vm_id, None);
        assert_eq!(normalized.migration_host, None);
    }

    #[test]
    fn unknown_phase_still_deserializes() {
        let phase: CopyPhase = serde_json::from_str("\"Teleporting\"").unwrap();
        assert_eq!(phase, CopyPhase::Unknown);
        assert!(!phase.is_terminal());
    }
}
