//! Cleanup: undo every change the journal lists as outstanding, newest first — the clone task
//! (aborted if still running, then cleaned with its RDM descriptor), the device (off, detached),
//! the mapping to the host's group, the original mappings (restored), the initiator group
//! (released if copy-offload owns it and nothing uses it) and, last, the rescan-delete on the used
//! adapters — host hygiene, which at the end of a run follows the completion report and overlaps
//! the controller's final scrape (see `run.rs`).
//!
//! The same code serves the end of every run (success, failure, SIGTERM) and the start of a
//! re-run after a crash, so leftovers are undone by one tested path. Each undone step is journaled
//! as done; a step that fails stays outstanding for the next run and is reported, never swallowed.
//! Every undo treats "already gone" as done, because the journal records a change before making it.

use std::time::Duration;

use co_storage::{EsxiHostRef, GroupRef, InitiatorGroup, StorageApi, Volume};
use co_vsphere::{Client, ManagedObjectReference};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::discover::{HostStorage, rescan_all};
use crate::error::CopyError;
use crate::executors::{CopyJournal, ExecutorFactory, abort_and_clean};
use crate::journal::{CleanupStep, JournalEntry};
use crate::lease::{HostId, HostLease};

/// Names of the array and host steps this crate defines as [`CleanupStep::Custom`].
pub mod step {
    pub const RELEASE_GROUP: &str = "releaseGroup";
    pub const RESTORE_MAPPINGS: &str = "restoreMappings";
    pub const RESCAN_DELETE: &str = "rescanDelete";
    pub const UNMAP_VOLUME: &str = "unmapVolume";
}

/// `releaseGroup`: the group ensured for a host (or, before the array answered, the host).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseGroup {
    pub host: EsxiHostRef,
    pub group: Option<InitiatorGroup>,
}

/// `restoreMappings`: the mappings the volume had before the copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreMappings {
    pub volume: Volume,
    pub groups: Vec<GroupRef>,
}

/// `rescanDelete`: adapters to rescan (delete) once the volume is unmapped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RescanDelete {
    pub host: String,
    pub adapters: Vec<String>,
}

/// `unmapVolume`: the copy's mapping of the volume to the host's group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnmapVolume {
    pub volume: Volume,
    pub group: InitiatorGroup,
}

/// A custom cleanup step carrying `detail`.
pub fn custom_step(name: &str, detail: &impl Serialize) -> CleanupStep {
    CleanupStep::Custom {
        name: name.to_owned(),
        detail: serde_json::to_value(detail)
            .unwrap_or_else(|e| json!({ "unserializable": e.to_string() })),
    }
}

/// The host a journal entry names (`HostSystem:host-12`).
pub fn host_ref(journaled: &str) -> ManagedObjectReference {
    match journaled.split_once(':') {
        Some((kind, value)) => ManagedObjectReference::new(kind, value),
        None => ManagedObjectReference::new("HostSystem", journaled),
    }
}

/// What cleanup needs to reach the array and the hosts.
pub struct Undo<'a> {
    pub vsphere: &'a Client,
    pub storage: &'a dyn StorageApi,
    pub executors: &'a ExecutorFactory,
    /// The host lease: the rescan-delete is a rescan, so it takes a slot like discovery does.
    pub lease: Option<&'a HostLease>,
    /// Datastore of the source disk (the SSH key line routes by datastore).
    pub datastore: &'a str,
}

impl Undo<'_> {
    /// Undoes every outstanding step within `budget`. Returns the steps that could not be undone,
    /// with why; they stay outstanding in the journal.
    pub async fn outstanding(&self, journal: &CopyJournal, budget: Duration) -> Vec<String> {
        let deadline = Instant::now() + budget;
        let mut failures = self
            .undo_until(journal, deadline, |step| !is_host_hygiene(step))
            .await;
        failures.extend(self.host_hygiene(journal, deadline).await);
        failures
    }

    /// Undoes every outstanding step except host hygiene (see [`is_host_hygiene`]): after it,
    /// the volume is back with its owners and the array holds nothing of the copy's.
    pub async fn release(&self, journal: &CopyJournal, budget: Duration) -> Vec<String> {
        let deadline = Instant::now() + budget;
        self.undo_until(journal, deadline, |step| !is_host_hygiene(step))
            .await
    }

    /// Undoes the outstanding host-hygiene steps by `deadline`.
    pub async fn host_hygiene(&self, journal: &CopyJournal, deadline: Instant) -> Vec<String> {
        self.undo_until(journal, deadline, is_host_hygiene).await
    }

    async fn undo_until(
        &self,
        journal: &CopyJournal,
        deadline: Instant,
        selected: impl Fn(&CleanupStep) -> bool,
    ) -> Vec<String> {
        let steps: Vec<CleanupStep> = journal
            .lock()
            .await
            .recovery()
            .outstanding
            .into_iter()
            .filter(|step| selected(step))
            .collect();
        if steps.is_empty() {
            return Vec::new();
        }
        info!(
            steps = steps.len(),
            "cleanup started: undoing recorded changes"
        );
        let mut failures = Vec::new();
        for step in steps {
            if let Err(error) = self.step(journal, &step, deadline).await {
                warn!(step = %describe(&step), %error, "cleanup step failed; it stays in the journal");
                failures.push(format!("{}: {error}", describe(&step)));
            }
        }
        info!(failed = failures.len(), "cleanup finished");
        failures
    }

    /// Undoes one step before `deadline` and journals it as done; on error it stays outstanding.
    pub async fn step(
        &self,
        journal: &CopyJournal,
        step: &CleanupStep,
        deadline: Instant,
    ) -> Result<(), CopyError> {
        let budget = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout_at(deadline, self.undo(step, deadline))
            .await
            .map_err(|_| {
                CopyError::Refused(format!(
                    "not finished by the cleanup deadline ({} s were left for it)",
                    budget.as_secs()
                ))
            })??;
        let done = JournalEntry::CleanupDone { step: step.clone() };
        journal
            .lock()
            .await
            .record(done)
            .await
            .map_err(|error| CopyError::Refused(format!("undone, but not journaled: {error}")))
    }

    async fn undo(&self, step: &CleanupStep, deadline: Instant) -> Result<(), CopyError> {
        match step {
            CleanupStep::CleanTask { host, task_id } => {
                let host_ref = host_ref(host);
                let executor = self.executors.connect(&host_ref, self.datastore).await?;
                let wait = deadline.saturating_duration_since(Instant::now()) / 2;
                abort_and_clean(executor.as_ref(), task_id, wait)
                    .await
                    .map_err(CopyError::esxi(host, "cleaning the clone task"))
            }
            CleanupStep::RemoveDevice { host, naa } => {
                HostStorage::new(self.vsphere.clone(), host_ref(host))
                    .detach(naa, deadline)
                    .await
            }
            CleanupStep::UnmapVolume { volume, group } => Err(CopyError::Refused(format!(
                "the journal asks to unmap {volume} from {group} without the array objects; unmap it by hand"
            ))),
            CleanupStep::Custom { name, detail } => self.undo_custom(name, detail).await,
        }
    }

    async fn undo_custom(&self, name: &str, detail: &serde_json::Value) -> Result<(), CopyError> {
        fn parse<T: for<'de> Deserialize<'de>>(
            name: &str,
            detail: &serde_json::Value,
        ) -> Result<T, CopyError> {
            serde_json::from_value(detail.clone()).map_err(|e| {
                CopyError::Refused(format!(
                    "the journal's {name} step is unreadable ({e}); undo it by hand"
                ))
            })
        }
        match name {
            step::UNMAP_VOLUME => {
                let d: UnmapVolume = parse(name, detail)?;
                self.storage
                    .unmap(&d.volume, &d.group)
                    .await
                    .map_err(CopyError::storage(
                        "unmapping the volume from the host's group",
                    ))
            }
            step::RESCAN_DELETE => {
                let d: RescanDelete = parse(name, detail)?;
                let host = HostStorage::new(self.vsphere.clone(), host_ref(&d.host));
                let rescan = |_: CancellationToken| rescan_all(&host, &d.adapters, "delete");
                // Rescans are what the host lease rations (upstream left this one unguarded, W11).
                let rescanned = match self.lease {
                    Some(lease) => {
                        let host_id = HostId::from_managed_object(&d.host)?;
                        lease
                            .with_slot(&host_id, &CancellationToken::new(), rescan)
                            .await?
                    }
                    None => rescan(CancellationToken::new()).await,
                };
                // Upstream only warns here: a failed rescan-delete leaves a dead path entry, not data at risk.
                if let Err(error) = rescanned {
                    warn!(%error, "rescan after unmapping failed; the host shows a dead path until its next rescan");
                }
                Ok(())
            }
            step::RESTORE_MAPPINGS => {
                let d: RestoreMappings = parse(name, detail)?;
                self.storage
                    .restore(&d.volume, &d.groups)
                    .await
                    .map_err(CopyError::storage(
                        "restoring the volume's original mappings",
                    ))
            }
            step::RELEASE_GROUP => {
                let d: ReleaseGroup = parse(name, detail)?;
                let group = match d.group {
                    Some(group) => group,
                    // The run died before the array answered: learn what exists now.
                    None => self
                        .storage
                        .ensure_initiator_group(&d.host)
                        .await
                        .map_err(CopyError::storage("looking up the host's initiator group"))?,
                };
                let release = self
                    .storage
                    .release_group(&group)
                    .await
                    .map_err(CopyError::storage("releasing the host's initiator group"))?;
                info!(host = %d.host.host_id, ?release, "initiator group released");
                Ok(())
            }
            other => Err(CopyError::Refused(format!(
                "the journal lists a cleanup step {other:?} this version does not know; undo it by hand"
            ))),
        }
    }
}

/// Whether `step` only tidies the host's view of a volume that is already unmapped (the
/// rescan-delete): it never affects the volume or the array, and failing it only leaves a dead
/// path entry until the host's next rescan, so a run reports completion before it.
pub fn is_host_hygiene(step: &CleanupStep) -> bool {
    matches!(step, CleanupStep::Custom { name, .. } if name == step::RESCAN_DELETE)
}

/// A short description of a step for logs and errors.
pub fn describe(step: &CleanupStep) -> String {
    match step {
        CleanupStep::CleanTask { host, task_id } => format!("clean task {task_id} on {host}"),
        CleanupStep::RemoveDevice { host, naa } => format!("remove device {naa} from {host}"),
        CleanupStep::UnmapVolume { volume, group } => format!("unmap {volume} from {group}"),
        CleanupStep::Custom { name, .. } => name.clone(),
    }
}
