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

use co_storage::StorageApi;
use co_vsphere::{Client, ManagedObjectReference};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::discover::{HostStorage, rescan_all};
use crate::error::CleanupFailure;
use crate::error::CopyError;
use crate::executors::{CopyJournal, ExecutorFactory, abort_and_clean};
use crate::journal::{CleanupStep, JournalEntry};
use crate::lease::{HostId, HostLease};

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
    pub async fn outstanding(
        &self,
        journal: &CopyJournal,
        budget: Duration,
    ) -> Vec<CleanupFailure> {
        let deadline = Instant::now() + budget;
        let mut failures = self
            .undo_until(journal, deadline, |step| !step.is_host_hygiene())
            .await;
        failures.extend(self.host_hygiene(journal, deadline).await);
        failures
    }

    /// Undoes every outstanding step except host hygiene (see [`CleanupStep::is_host_hygiene`]): after it,
    /// the volume is back with its owners and the array holds nothing of the copy's.
    pub async fn release(&self, journal: &CopyJournal, budget: Duration) -> Vec<CleanupFailure> {
        let deadline = Instant::now() + budget;
        self.undo_until(journal, deadline, |step| !step.is_host_hygiene())
            .await
    }

    /// Undoes the outstanding host-hygiene steps by `deadline`.
    pub async fn host_hygiene(
        &self,
        journal: &CopyJournal,
        deadline: Instant,
    ) -> Vec<CleanupFailure> {
        self.undo_until(journal, deadline, CleanupStep::is_host_hygiene)
            .await
    }

    async fn undo_until(
        &self,
        journal: &CopyJournal,
        deadline: Instant,
        selected: impl Fn(&CleanupStep) -> bool,
    ) -> Vec<CleanupFailure> {
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
                warn!(%step, %error, "cleanup step failed; it stays in the journal");
                failures.push(CleanupFailure { step, error });
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
            .map_err(CopyError::Journal)
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
            CleanupStep::UnmapVolume { volume, group } => self
                .storage
                .unmap(volume, group)
                .await
                .map_err(CopyError::storage(
                    "unmapping the volume from the host's group",
                )),
            CleanupStep::RestoreMappings { volume, groups } => self
                .storage
                .restore(volume, groups)
                .await
                .map_err(CopyError::storage(
                    "restoring the volume's original mappings",
                )),
            CleanupStep::ReleaseGroup { host, group } => {
                let group = match group {
                    Some(group) => group.clone(),
                    // The run died before the array answered: learn what exists now.
                    None => self
                        .storage
                        .ensure_initiator_group(host)
                        .await
                        .map_err(CopyError::storage("looking up the host's initiator group"))?,
                };
                let release = self
                    .storage
                    .release_group(&group)
                    .await
                    .map_err(CopyError::storage("releasing the host's initiator group"))?;
                info!(host = %host.host_id, ?release, "initiator group released");
                Ok(())
            }
            CleanupStep::EndArrayCopy { session } => {
                let array = self.storage.array_copy().ok_or_else(|| {
                    CopyError::Refused(format!(
                        "the journal lists the array copy session {} but this array has no array-side \
                         copy; remove it on the array by hand",
                        session.name
                    ))
                })?;
                array
                    .end(session)
                    .await
                    .map_err(CopyError::storage("ending the array-side copy session"))
            }
            CleanupStep::RescanDelete { host, adapters } => {
                let host_storage = HostStorage::new(self.vsphere.clone(), host_ref(host));
                let rescan = |_: CancellationToken| rescan_all(&host_storage, adapters, "delete");
                // Rescans are what the host lease rations, this one as much as discovery's.
                let rescanned = match self.lease {
                    Some(lease) => {
                        let host_id = HostId::from_managed_object(host)?;
                        lease
                            .with_slot(&host_id, &CancellationToken::new(), rescan)
                            .await?
                    }
                    None => rescan(CancellationToken::new()).await,
                };
                // A failed rescan-delete leaves a dead path entry, not data at risk: warn only.
                if let Err(error) = rescanned {
                    warn!(%error, "rescan after unmapping failed; the host shows a dead path until its next rescan");
                }
                Ok(())
            }
            CleanupStep::ManualUndo { what } => Err(CopyError::Refused(format!(
                "an older version journaled a change it cannot undo automatically; {what}, then \
                 remove the journal"
            ))),
        }
    }
}
