//! The `StorageApi` trait every vendor plugin implements, the optional array-side copy
//! capability (`ArrayCopy`) for vVol and RDM disks, and the read-only readiness answer
//! (`ArrayReadiness`) `copy-offload preflight` asks every plugin for.
//!
//! Contract for implementors, relied on by the populator's journal:
//! - **Idempotent.** Every mutating call may be repeated after a crash or a lost reply: mapping an
//!   already mapped volume returns the existing LUN id, unmapping an absent mapping succeeds,
//!   ensuring an existing group adds only missing initiators, releasing a deleted group reports
//!   [`GroupRelease::AlreadyGone`].
//! - **Cancellable.** Dropping a returned future abandons the call; at most the in-flight request
//!   reaches the array, and the idempotent calls above let a later run finish or undo it.
//! - **Only its own objects.** A plugin never deletes or unmaps array objects it does not own and
//!   never touches mappings other than the ones it is asked about.
//!
//! The trait is object-safe (`async_trait`) because the populator picks the vendor at run time
//! from `--storage-vendor-product` and holds an `Arc<dyn StorageApi>`; one boxed future per call
//! costs nothing next to an HTTPS round trip to the array.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::model::{
    ArrayInfo, EsxiHostRef, GroupRef, GroupRelease, Initiator, InitiatorGroup, Mapping,
    PersistentVolumeRef, Volume,
};
use crate::naa::DeviceName;

/// One storage array, as the copy engine needs it.
#[async_trait]
pub trait StorageApi: Send + Sync {
    /// Vendor, product, model and version, for the `storage_array_info` metric.
    async fn array_info(&self) -> Result<ArrayInfo, StorageError>;

    /// The array volume that backs `pv`, with the device name ESXi will show for it.
    async fn resolve_volume(&self, pv: &PersistentVolumeRef) -> Result<Volume, StorageError>;

    /// Makes sure the array has an object (initiator group, host, host set, ...) that contains
    /// the host's initiators, creating or completing it where the vendor allows.
    async fn ensure_initiator_group(
        &self,
        host: &EsxiHostRef,
    ) -> Result<InitiatorGroup, StorageError>;

    /// Exposes `volume` to `group`. Already mapped: returns the existing mapping.
    async fn map(&self, volume: &Volume, group: &InitiatorGroup) -> Result<Mapping, StorageError>;

    /// Removes the mapping of `volume` to `group`. Not mapped: succeeds.
    async fn unmap(&self, volume: &Volume, group: &InitiatorGroup) -> Result<(), StorageError>;

    /// The array objects `volume` is mapped to now (before the copy: usually the worker node that
    /// attached the prime PVC). The populator journals this list for [`StorageApi::restore`].
    async fn current_mappings(&self, volume: &Volume) -> Result<Vec<GroupRef>, StorageError>;

    /// Makes sure `volume` is mapped to each of `groups` again (idempotent). Objects named like
    /// copy-offload's own (`xcopy-...`) are skipped: they are leftovers of an earlier run, never
    /// an original mapping to restore.
    async fn restore(&self, volume: &Volume, groups: &[GroupRef]) -> Result<(), StorageError>;

    /// Deletes the objects of `group` that copy-offload owns, if nothing is mapped to them any more.
    async fn release_group(&self, group: &InitiatorGroup) -> Result<GroupRelease, StorageError>;

    /// The array-side copy capability for vVol/RDM disks, if this array has one.
    fn array_copy(&self) -> Option<&dyn ArrayCopy> {
        None
    }

    /// Ends the plugin's session on the array, once, when the run is over (arrays count open
    /// sessions against a limit; upstream plugins never ended theirs). Arrays authenticated per
    /// request have nothing to end.
    async fn close(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// True when ESXi initiators must be reported as PowerFlex SDC GUIDs (adapters driven by
    /// `scini`) instead of their SCSI ids.
    fn requires_sdc(&self) -> bool {
        false
    }

    /// What a read-only look at the array says about copying for `hosts`: nothing is created or
    /// changed. The default answers from [`StorageApi::array_info`] (so the credentials and the
    /// API work for every vendor) and leaves the initiators unchecked and the vendor's
    /// prerequisites empty; a vendor that can read them answers more.
    async fn readiness(&self, hosts: &[EsxiHostRef]) -> Result<ArrayReadiness, StorageError> {
        Ok(ArrayReadiness::unchecked(self.array_info().await?, hosts))
    }

    /// Whether the SAN device `device` (the LUN under a source datastore, or an RDM's LUN) is a
    /// volume of this very array, not merely of the same vendor: `Some(true)` or `Some(false)`
    /// when the plugin can tell with reads (a volume lookup, or an array id the device name
    /// encodes), `None` when it cannot. Nothing is created or changed.
    async fn holds_device(&self, device: &DeviceName) -> Result<Option<bool>, StorageError> {
        let _ = device;
        Ok(None)
    }
}

/// The array's answer to a pre-migration check ([`StorageApi::readiness`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayReadiness {
    /// Identity and API version; that the array answered proves the credentials.
    pub info: ArrayInfo,
    /// Per host, which of its initiators the array knows.
    pub initiators: Vec<HostInitiators>,
    /// The vendor's own prerequisites for offloaded copies, each checked.
    pub prerequisites: Vec<VendorPrerequisite>,
}

impl ArrayReadiness {
    /// The answer of an array that said who it is and nothing more: initiators not listed, no
    /// prerequisites read.
    pub fn unchecked(info: ArrayInfo, hosts: &[EsxiHostRef]) -> ArrayReadiness {
        ArrayReadiness {
            info,
            initiators: hosts
                .iter()
                .map(|host| HostInitiators {
                    host_id: host.host_id.clone(),
                    known: None,
                    unknown: Vec::new(),
                })
                .collect(),
            prerequisites: Vec::new(),
        }
    }
}

/// Which initiators of one ESXi host the array knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInitiators {
    /// The host as [`EsxiHostRef::host_id`] names it.
    pub host_id: String,
    /// The host's initiators registered on the array; `None` when this plugin cannot tell without
    /// creating objects.
    pub known: Option<Vec<Initiator>>,
    /// The host's initiators this vendor maps through (its transport: FC and iSCSI ports, the
    /// PowerFlex SDC) that the array does not know. Initiators of another transport are in
    /// neither list.
    #[serde(default)]
    pub unknown: Vec<Initiator>,
}

impl HostInitiators {
    /// [`HostInitiators::sort`] for each of `hosts`.
    pub fn sort_each(
        hosts: &[EsxiHostRef],
        usable: impl Fn(&Initiator) -> bool,
        registered: impl Fn(&Initiator) -> bool,
    ) -> Vec<HostInitiators> {
        hosts
            .iter()
            .map(|host| HostInitiators::sort(host, &usable, &registered))
            .collect()
    }

    /// Sorts `host`'s initiators that `usable` admits into known (`registered` says the array
    /// holds it) and unknown.
    pub fn sort(
        host: &EsxiHostRef,
        usable: impl Fn(&Initiator) -> bool,
        registered: impl Fn(&Initiator) -> bool,
    ) -> HostInitiators {
        let (known, unknown): (Vec<Initiator>, Vec<Initiator>) = host
            .initiators
            .iter()
            .filter(|i| usable(i))
            .cloned()
            .partition(|i| registered(i));
        HostInitiators {
            host_id: host.host_id.clone(),
            known: Some(known),
            unknown,
        }
    }
}

/// One vendor prerequisite (a host-mode option, a protection setting), as the array reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendorPrerequisite {
    /// Short name, e.g. `host mode option 54`.
    pub name: String,
    pub satisfied: bool,
    /// What the array reported.
    pub detail: String,
    /// What an administrator does to satisfy it.
    pub remedy: String,
}

/// The source of an array-side copy: a disk that is itself an array volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ArrayCopySource {
    /// A vVol disk: the backing's `backingObjectId`.
    VVol { vvol_id: String },
    /// A raw device mapping: the RDM backing's `deviceName` (`vml.`/`naa.`) and `lunUuid`.
    Rdm {
        device_name: String,
        lun_uuid: String,
    },
}

/// Receives copy progress in percent (0..=100, never decreasing).
pub type ProgressSink<'a> = &'a (dyn Fn(u8) + Send + Sync);

/// The array objects one array-side copy creates (a snapshot, a copy pair, a FlashCopy mapping),
/// named before they exist so the populator can journal them first: a run that dies at any point
/// leaves a record from which [`ArrayCopy::end`] finds and removes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayCopySession {
    pub source: ArrayCopySource,
    pub target: Volume,
    /// The vendor's name for the copy's objects, derived from the target only (so a re-run
    /// derives the same name): e.g. `xcopy-copy-<target id>`.
    pub name: String,
}

/// Array-side copy of a vVol or RDM disk into the target volume.
///
/// The populator journals [`ArrayCopy::session`] before calling [`ArrayCopy::copy`], and calls
/// [`ArrayCopy::end`] at cleanup, after success, failure, cancellation or a crash alike.
#[async_trait]
pub trait ArrayCopy: Send + Sync {
    /// Whether this array can copy from `source` (some vendors do RDM only).
    fn supports(&self, source: &ArrayCopySource) -> bool;

    /// The session a copy of `source` onto `target` will create. Pure: no request is sent. Every
    /// vendor names its objects `xcopy-copy-<target id>`; one needing another name overrides this.
    fn session(&self, source: &ArrayCopySource, target: &Volume) -> ArrayCopySession {
        ArrayCopySession {
            source: source.clone(),
            target: target.clone(),
            name: format!("xcopy-copy-{}", target.id),
        }
    }

    /// Runs the copy `session` describes. Returns only once the array reports the data fully
    /// copied (not merely "started", as several upstream plugins did), reporting progress on the
    /// way. Idempotent: a session that already exists (an earlier run's) is adopted, not doubled.
    async fn copy(
        &self,
        session: &ArrayCopySession,
        progress: ProgressSink<'_>,
    ) -> Result<(), StorageError>;

    /// Stops the session if it still runs and removes every object it created (split and delete a
    /// pair, delete a mapping or snapshot); the target volume keeps its data. Idempotent: objects
    /// already gone are fine.
    async fn end(&self, session: &ArrayCopySession) -> Result<(), StorageError>;
}
