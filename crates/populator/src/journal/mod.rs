//! The copy's journal: a write-ahead record of every change the copy makes outside the process
//! (array mappings, initiator groups, array-side copy sessions, ESXi devices, clone tasks), so a
//! re-run after a crash, an evicted pod or a controller restart can see what is left to undo and
//! whether a clone may still be running — and never starts a second clone onto the same LUN.
//!
//! Protocol for the copy state machine: record an entry **before** making the change it describes
//! (so a crash between the two leaves a record of a change that may not exist: every cleanup step
//! must treat "already gone" as done), and record [`JournalEntry::CleanupDone`] after undoing one.
//! [`Journal::load`] folds the records of all earlier runs into a [`Recovery`] view.
//!
//! The journal stays small: it is compacted when a run starts and when it ends to the records that
//! still matter (see [`recovery`]); a run that leaves nothing to undo leaves one record saying how
//! it ended. The vocabulary is typed ([`entry`], format version 2); journals of version 1 are read
//! and converted ([`v1`]).
//!
//! Two stores keep the serialized journal (a JSON document), see [`store`]:
//! - [`FileJournalStore`] for Kubernetes-less mode: each write goes to a temporary file in the same
//!   directory which is fsynced and renamed over the journal, then the directory is fsynced, so a
//!   crash leaves either the old or the new journal, never a torn one (at worst an ignored
//!   `.<name>.*.tmp` file next to it).
//! - [`KubeJournalStore`] in cluster mode: the annotation [`JOURNAL_ANNOTATION`] on the
//!   `VSphereXcopyVolumePopulator` CR of the copy (or on the target PVC when there is no CR). The
//!   CR is preferred: it belongs to the migration and is deleted with it, it already carries the
//!   copy's status, and the user's PVC stays free of our bookkeeping after the migration. Writes are
//!   merge patches carrying the `resourceVersion` read before, i.e. optimistic concurrency; a
//!   conflict caused by someone else's change to the object (e.g. the controller writing status) is
//!   retried, a conflict on the journal itself means a second writer and is an error.
//!   When the pod may not patch the CR or PVC (Forklift grants its populator pods only reads of
//!   PVCs and the Lease API), the same annotation lives on a Lease of the copy's own
//!   ([`journal_lease_name`], one per target volume handle) in that namespace, created on first
//!   write; a journal found there is always used, so a copy's journal never moves between stores.
//!
//! The journal is input from outside the process (anyone who may edit the CR or PVC can change
//! the annotation): every value that reaches a host or an array is checked when it is loaded.

mod entry;
mod error;
mod recovery;
mod store;
mod v1;

use serde::{Deserialize, Serialize};
use tracing::{debug, info};

pub use co_api::contract::names::JOURNAL_ANNOTATION;
pub use entry::{
    CleanupStep, FORMAT_VERSION, JournalEntry, JournalRecord, MAX_JOURNAL_BYTES, Outcome,
};
pub use error::JournalError;
pub use recovery::{CloneRecord, Recovery};
pub use store::{
    FileJournalStore, JOURNAL_LEASE_PREFIX, JournalBackend, JournalStore, KubeJournalStore,
    journal_lease_name,
};

#[derive(Debug, Serialize, Deserialize)]
struct JournalDocument {
    version: u32,
    records: Vec<JournalRecord>,
}

/// The journal of one run, appending to what earlier runs left (compacted).
pub struct Journal<S> {
    store: S,
    run_id: String,
    records: Vec<JournalRecord>,
    /// The document as stored: the precondition of the next write.
    stored: Option<String>,
    /// Steps this run undid, in order (the run's report of its cleanup).
    undone: Vec<CleanupStep>,
    /// The run recorded its end: every later write (the host hygiene after the report) compacts.
    finished: bool,
}

impl<S: JournalStore> Journal<S> {
    /// Reads the journal (empty if none), checks every value in it, and starts a new run on it.
    pub async fn load(store: S) -> Result<(Self, Recovery), JournalError> {
        let stored = store.read().await?;
        let records = match stored.as_deref() {
            None => Vec::new(),
            Some(text) => parse_document(text, &store.location())?,
        };
        let journal = Self {
            store,
            run_id: uuid::Uuid::new_v4().to_string(),
            records: recovery::compact(&records),
            stored,
            undone: Vec::new(),
            finished: false,
        };
        let recovery = journal.recovery();
        info!(
            journal = %journal.store.location(),
            run = %journal.run_id,
            previous_run = ?recovery.previous_run,
            outstanding = recovery.outstanding.len(),
            clone_may_be_running = recovery.clone_may_be_running().is_some(),
            "copy journal loaded"
        );
        Ok((journal, recovery))
    }

    /// This run's id (a UUID), stamped on every record it writes.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The records as they stand (earlier runs' compacted, then this run's).
    pub fn records(&self) -> &[JournalRecord] {
        &self.records
    }

    /// The steps this run undid, oldest first.
    pub fn undone_by_this_run(&self) -> &[CleanupStep] {
        &self.undone
    }

    /// The recovery view over every record so far, this run's included.
    pub fn recovery(&self) -> Recovery {
        Recovery::fold(&self.records)
    }

    /// Appends `entry` and makes it durable before returning. On error nothing was recorded and
    /// the change the entry describes must not be made.
    pub async fn record(&mut self, entry: JournalEntry) -> Result<(), JournalError> {
        self.record_all(vec![entry]).await
    }

    /// Appends `entries` in order with one durable write (one fsync, or one API request): all of
    /// them are recorded, or on error none is. Recording the end of the run, and anything after
    /// it, compacts the journal.
    pub async fn record_all(&mut self, entries: Vec<JournalEntry>) -> Result<(), JournalError> {
        let before = self.records.clone();
        let ends_run = entries
            .iter()
            .any(|e| matches!(e, JournalEntry::RunFinished { .. }));
        let undone: Vec<CleanupStep> = entries
            .iter()
            .filter_map(|e| match e {
                JournalEntry::CleanupDone { step } => Some(step.clone()),
                _ => None,
            })
            .collect();
        let at = jiff::Timestamp::now().to_string();
        for entry in entries {
            let seq = self.records.last().map_or(0, |r| r.seq + 1);
            debug!(seq, entry = ?entry, "journal entry");
            self.records.push(JournalRecord {
                seq,
                run: self.run_id.clone(),
                at: at.clone(),
                entry,
            });
        }
        if ends_run || self.finished {
            self.records = recovery::compact(&self.records);
        }
        match self.persist().await {
            Ok(()) => {
                self.undone.extend(undone);
                self.finished |= ends_run;
                Ok(())
            }
            Err(error) => {
                self.records = before;
                Err(error)
            }
        }
    }

    async fn persist(&mut self) -> Result<(), JournalError> {
        let document = JournalDocument {
            version: FORMAT_VERSION,
            records: self.records.clone(),
        };
        let text = serde_json::to_string(&document).map_err(|e| JournalError::Corrupt {
            location: self.store.location(),
            reason: format!("cannot serialize: {e}"),
        })?;
        if text.len() > MAX_JOURNAL_BYTES {
            return Err(JournalError::TooLarge {
                location: self.store.location(),
                outstanding: self.recovery().outstanding.len(),
            });
        }
        self.store.replace(self.stored.as_deref(), &text).await?;
        self.stored = Some(text);
        Ok(())
    }
}

fn parse_document(text: &str, location: &str) -> Result<Vec<JournalRecord>, JournalError> {
    #[derive(Deserialize)]
    struct Header {
        version: u32,
    }
    let corrupt = |reason: String| JournalError::Corrupt {
        location: location.to_owned(),
        reason,
    };
    let header: Header = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    let records = match header.version {
        1 => serde_json::from_str::<v1::Document>(text)
            .map_err(|e| corrupt(e.to_string()))?
            .into_records()
            .map_err(corrupt)?,
        FORMAT_VERSION => {
            serde_json::from_str::<JournalDocument>(text)
                .map_err(|e| corrupt(e.to_string()))?
                .records
        }
        found if found > FORMAT_VERSION => {
            return Err(JournalError::UnsupportedVersion {
                location: location.to_owned(),
                found,
            });
        }
        other => return Err(corrupt(format!("unknown format version {other}"))),
    };
    for record in &records {
        check_values(&record.entry)
            .map_err(|reason| corrupt(format!("record {}: {reason}", record.seq)))?;
    }
    Ok(records)
}

/// Checks the values a record would send to a host or an array: the journal can be edited by
/// anyone who may edit the CR or PVC, and its values reach root commands on ESXi hosts.
fn check_values(entry: &JournalEntry) -> Result<(), String> {
    let steps: Vec<&CleanupStep> = match entry {
        JournalEntry::ChangeMade { undo } => vec![undo],
        JournalEntry::CleanupDone { step } => vec![step],
        JournalEntry::CloneRequested {
            host,
            device,
            task_id,
        } => {
            check_host(host)?;
            check_token("device", device.rsplit('/').next().unwrap_or(device))?;
            if let Some(task_id) = task_id {
                check_task_id(task_id)?;
            }
            vec![]
        }
        JournalEntry::CloneStarted { host, task_id } => {
            check_host(host)?;
            check_task_id(task_id)?;
            vec![]
        }
        JournalEntry::CloneFinished { task_id, .. } => {
            check_task_id(task_id)?;
            vec![]
        }
        JournalEntry::RunFinished { .. } => vec![],
    };
    for step in steps {
        match step {
            CleanupStep::CleanTask { host, task_id } => {
                check_host(host)?;
                check_task_id(task_id)?;
            }
            CleanupStep::RemoveDevice { host, naa } => {
                check_host(host)?;
                check_token("device", naa)?;
            }
            CleanupStep::RescanDelete { host, adapters } => {
                check_host(host)?;
                for adapter in adapters {
                    check_token("adapter", adapter)?;
                }
            }
            CleanupStep::UnmapVolume { .. }
            | CleanupStep::RestoreMappings { .. }
            | CleanupStep::ReleaseGroup { .. }
            | CleanupStep::EndArrayCopy { .. }
            | CleanupStep::ManualUndo { .. } => {}
        }
    }
    Ok(())
}

/// A managed-object reference as the journal writes hosts: `HostSystem:host-12`.
fn check_host(host: &str) -> Result<(), String> {
    let (kind, value) = host
        .split_once(':')
        .ok_or_else(|| format!("host {host:?} is not a managed-object reference"))?;
    if kind != "HostSystem" {
        return Err(format!("host {host:?} is not a HostSystem"));
    }
    check_token("host", value)
}

/// A clone task id: the one form the wrappers accept (the ESXi crate's rule).
fn check_task_id(task_id: &str) -> Result<(), String> {
    co_esxi::TaskId::parse(task_id)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Device and adapter names: short, and only letters, digits, `.`, `_`, `-`, `:`.
fn check_token(what: &str, value: &str) -> Result<(), String> {
    let fine = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if fine {
        Ok(())
    } else {
        Err(format!(
            "{what} {value:?} is not a name copy-offload writes (letters, digits, '.', '_', '-', ':'; at most 128)"
        ))
    }
}

#[cfg(test)]
mod tests;
