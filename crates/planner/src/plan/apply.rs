//! Writing one planned disk into the cluster: its Secret, its Block PVC and its
//! `VSphereXcopyVolumePopulator`, with server-side apply under the field manager
//! [`FIELD_MANAGER`], in that order.
//!
//! The order and the deterministic names make a crash harmless: a re-run applies the same three
//! objects again, and applying an object that is already as planned changes nothing. The Secret
//! and the CR are owned by the PVC (so deleting the PVC removes them); the PVC's uid is read from
//! the applied PVC, and on a re-run from the existing one, so the Secret never loses its owner
//! once it had one (the Secret is applied first, ownerless, only when the PVC does not exist yet).
//!
//! A disk whose CR exists keeps the CR's `migrationHost`, whatever planning chose this time.
//!
//! An object of the same name that another manager created (Forklift's controller, a user) is
//! never modified: nothing of that disk is written and the clash is returned for the Plan's
//! conditions. Apply is never forced, so a field of ours that someone else took over since is a
//! clash too: that object is left as it is and the disk's later objects are not written.

use co_api::VSphereXcopyVolumePopulator;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, TypedLocalObjectReference};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::offload::PlannedDisk;

/// The field manager of every object the planner applies; an existing object without it in
/// `managedFields` belongs to someone else.
pub const FIELD_MANAGER: &str = "copy-offload-planner";

/// What applying one disk's objects did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskApplied {
    /// All three objects are as planned.
    Applied,
    /// These objects (`Kind namespace/name: why`) are someone else's, or have a field someone else
    /// took over. An object found existing and foreign stops the disk before anything is written;
    /// a field found taken over while applying stops it at that object, leaving it as it is.
    Clash(Vec<String>),
}

/// Why a disk's objects could not be applied (the API server refused or could not be reached).
#[derive(Debug, thiserror::Error)]
#[error("applying {what}: {source}")]
pub struct ApplyError {
    /// `Kind namespace/name`.
    pub what: String,
    /// The API error.
    #[source]
    pub source: kube::Error,
}

/// Applies `planned`'s Secret, PVC and CR in its namespace (see the module comment).
pub async fn apply_disk(client: &Client, planned: &PlannedDisk) -> Result<DiskApplied, ApplyError> {
    let mut disk = planned.clone();
    portable_data_source(&mut disk.pvc);
    let namespace = disk.pvc.metadata.namespace.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let populators: Api<VSphereXcopyVolumePopulator> = Api::namespaced(client.clone(), &namespace);

    let secret = Target::new(&secrets, "Secret", &namespace, &disk.secret);
    let pvc = Target::new(&pvcs, "PersistentVolumeClaim", &namespace, &disk.pvc);
    let populator = Target::new(
        &populators,
        "VSphereXcopyVolumePopulator",
        &namespace,
        &disk.populator,
    );
    let existing_secret = secret.existing().await?;
    let existing_pvc = pvc.existing().await?;
    let existing_populator = populator.existing().await?;
    let clashes: Vec<String> = [
        secret.foreign(existing_secret.as_ref()),
        pvc.foreign(existing_pvc.as_ref()),
        populator.foreign(existing_populator.as_ref()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !clashes.is_empty() {
        return Ok(DiskApplied::Clash(clashes));
    }

    // A disk's migration host, once chosen, stays: its copy may already run there, and planning
    // again (its own CRs now counting as load) could pick another.
    if let Some(host) = existing_populator.and_then(|cr| cr.spec.migration_host) {
        disk.populator.spec.migration_host = Some(host);
    }
    let existing_pvc_uid = existing_pvc.and_then(|pvc| pvc.metadata.uid);
    if let Some(uid) = &existing_pvc_uid {
        disk.set_owner(uid);
    }
    if let Err(clash) = secret.apply(&disk.secret).await? {
        return Ok(DiskApplied::Clash(vec![clash]));
    }
    let applied_pvc = match pvc.apply(&disk.pvc).await? {
        Ok(applied) => applied,
        Err(clash) => return Ok(DiskApplied::Clash(vec![clash])),
    };
    if existing_pvc_uid.is_none() {
        // An applied object always comes back with its uid.
        disk.set_owner(applied_pvc.metadata.uid.as_deref().unwrap_or_default());
        if let Err(clash) = secret.apply(&disk.secret).await? {
            return Ok(DiskApplied::Clash(vec![clash]));
        }
    }
    if let Err(clash) = populator.apply(&disk.populator).await? {
        return Ok(DiskApplied::Clash(vec![clash]));
    }
    Ok(DiskApplied::Applied)
}

/// Moves the populator reference from `dataSourceRef` (as Forklift writes it) to `dataSource`.
/// API servers before 1.24 (the 1.20 test server among them) reject `dataSourceRef` under
/// server-side apply, while servers from 1.24 on copy `dataSource` into `dataSourceRef`: written
/// this way the PVC is the same everywhere, and copy-offload's controller reads either field.
fn portable_data_source(pvc: &mut PersistentVolumeClaim) {
    let Some(spec) = pvc.spec.as_mut() else {
        return;
    };
    if let Some(reference) = spec.data_source_ref.take() {
        spec.data_source = Some(TypedLocalObjectReference {
            api_group: reference.api_group,
            kind: reference.kind,
            name: reference.name,
        });
    }
}

/// One object to apply, with the name it is reported by.
struct Target<'a, K> {
    api: &'a Api<K>,
    name: String,
    what: String,
}

impl<'a, K> Target<'a, K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    fn new(api: &'a Api<K>, kind: &str, namespace: &str, object: &K) -> Self {
        let name = object.meta().name.clone().unwrap_or_default();
        Self {
            api,
            what: format!("{kind} {namespace}/{name}"),
            name,
        }
    }

    async fn existing(&self) -> Result<Option<K>, ApplyError> {
        self.api
            .get_opt(&self.name)
            .await
            .map_err(|source| ApplyError {
                what: self.what.clone(),
                source,
            })
    }

    /// Why `existing` is not ours to change, if it is not.
    fn foreign(&self, existing: Option<&K>) -> Option<String> {
        let existing = existing?;
        let managers: Vec<&str> = existing
            .meta()
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|entry| entry.manager.as_deref())
            .collect();
        if managers.contains(&FIELD_MANAGER) {
            return None;
        }
        let by = if managers.is_empty() {
            "an unknown writer".to_owned()
        } else {
            managers.join(", ")
        };
        Some(format!("{}: exists, created by {by}", self.what))
    }

    /// Applies `object`; `Ok(Err(clash))` when another manager owns a field of it.
    async fn apply(&self, object: &K) -> Result<Result<K, String>, ApplyError> {
        let params = PatchParams::apply(FIELD_MANAGER);
        match self
            .api
            .patch(&self.name, &params, &Patch::Apply(object))
            .await
        {
            Ok(applied) => Ok(Ok(applied)),
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(Err(format!(
                "{}: fields of it are managed by someone else ({})",
                self.what, status.message
            ))),
            Err(source) => Err(ApplyError {
                what: self.what.clone(),
                source,
            }),
        }
    }
}
