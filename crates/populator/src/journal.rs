//! The copy's journal: an append-only, write-ahead record of every change the copy makes outside
//! the process (array mappings, ESXi devices, clone tasks), so a re-run after a crash, an evicted
//! pod or a controller restart can see what is left to undo and whether a clone may still be
//! running — and never starts a second clone onto the same LUN (upstream #2236).
//!
//! Protocol for the copy state machine: record an entry **before** making the change it describes
//! (so a crash between the two leaves a record of a change that may not exist: every cleanup step
//! must treat "already gone" as done), and record [`JournalEntry::CleanupDone`] after undoing one.
//! [`Journal::load`] folds the records of all earlier runs into a [`Recovery`] view.
//!
//! Two stores keep the serialized journal (a JSON document):
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

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

/// Annotation holding the journal in cluster mode.
pub const JOURNAL_ANNOTATION: &str = "copy-offload.konveyor.io/journal";
/// Version of the journal document format this build writes and understands.
pub const FORMAT_VERSION: u32 = 1;
/// Largest journal we write: annotations share a 256 KiB budget per object.
pub const MAX_JOURNAL_BYTES: usize = 128 * 1024;
/// Field manager recorded for our annotation writes.
const FIELD_MANAGER: &str = "copy-offload-populator";
/// Attempts at a conditional annotation write when other fields of the object keep changing.
const MAX_CONFLICT_RETRIES: u32 = 8;

/// One change to the outside world (recorded before it is made) or one undo (recorded after).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum JournalEntry {
    /// The initiator group for the host exists; `created` says whether this run created it.
    GroupEnsured { group: String, created: bool },
    /// The groups the volume was mapped to before we touched it; cleanup must leave these.
    OriginalMappings { volume: String, groups: Vec<String> },
    /// The volume is being mapped to `group` (undone by unmapping unless the mapping pre-existed).
    VolumeMapped {
        volume: String,
        group: String,
        lun: Option<String>,
    },
    /// The device `naa` is (about to be) visible on `host` (undone by detaching it).
    DeviceDiscovered { host: String, naa: String },
    /// A clone onto `device` is about to be started on `host`. `task_id` is the id the populator
    /// chose for it (wrapper 1.1.0 and later), so the task can be aborted and cleaned even if the
    /// run dies before the host answers; `None` (older wrappers, older journals) means the id is
    /// known only from [`JournalEntry::CloneStarted`].
    CloneRequested {
        host: String,
        device: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task_id: Option<String>,
    },
    /// The clone task `task_id` runs on `host` (undone by cleaning the task).
    CloneStarted { host: String, task_id: String },
    /// The clone task ended.
    CloneFinished { task_id: String, outcome: Outcome },
    /// Any other external change, with the step that undoes it.
    ChangeMade { undo: CleanupStep },
    /// `step` was undone (or found already undone).
    CleanupDone { step: CleanupStep },
    /// The run ended: nothing after this belongs to it.
    RunFinished { outcome: Outcome },
    /// Free-form information for people reading the journal; not interpreted.
    Note {
        name: String,
        #[serde(default)]
        detail: serde_json::Value,
    },
}

/// How a clone or a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Succeeded,
    Failed,
    Aborted,
}

/// A step that undoes one recorded change. Steps compare by value: a `CleanupDone` cancels the
/// outstanding step equal to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "step",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum CleanupStep {
    UnmapVolume {
        volume: String,
        group: String,
    },
    RemoveDevice {
        host: String,
        naa: String,
    },
    CleanTask {
        host: String,
        task_id: String,
    },
    /// A step the state machine defines itself; `detail` identifies what to undo.
    Custom {
        name: String,
        #[serde(default)]
        detail: serde_json::Value,
    },
}

/// One journal line: when and by which run an entry was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalRecord {
    pub seq: u64,
    pub run: String,
    /// RFC 3339 UTC timestamp (for people; ordering is by `seq`).
    pub at: String,
    #[serde(flatten)]
    pub entry: JournalEntry,
}

#[derive(Debug, Serialize, Deserialize)]
struct JournalDocument {
    version: u32,
    records: Vec<JournalRecord>,
}

/// What earlier runs left behind, folded from every record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovery {
    /// Run id of the last run that wrote to the journal.
    pub previous_run: Option<String>,
    /// How the last run ended, if it recorded that (a crashed run did not).
    pub previous_outcome: Option<Outcome>,
    /// Changes not yet undone, newest first (the order to undo them in).
    pub outstanding: Vec<CleanupStep>,
    /// The most recent clone, if any was requested.
    pub last_clone: Option<CloneRecord>,
    /// Pre-existing mappings per volume: never remove these.
    pub original_mappings: BTreeMap<String, Vec<String>>,
    /// Initiator groups some run created (upstream reuses them; deleting is the caller's choice).
    pub created_groups: Vec<String>,
}

/// What the journal knows about a clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneRecord {
    pub host: String,
    pub device: Option<String>,
    /// Unknown when the run died between requesting the clone and learning its task id.
    pub task_id: Option<String>,
    pub outcome: Option<Outcome>,
}

impl Recovery {
    /// The clone that may still be running on ESXi: it was requested and no end was recorded.
    /// A re-run must abort and clean it before starting a new clone onto the same device.
    pub fn clone_may_be_running(&self) -> Option<&CloneRecord> {
        self.last_clone.as_ref().filter(|c| c.outcome.is_none())
    }

    /// Nothing to undo and no clone in flight.
    pub fn is_clean(&self) -> bool {
        self.outstanding.is_empty() && self.clone_may_be_running().is_none()
    }

    fn fold(records: &[JournalRecord]) -> Self {
        let mut recovery = Self::default();
        let mut outstanding: Vec<CleanupStep> = Vec::new();
        for record in records {
            if recovery.previous_run.as_deref() != Some(record.run.as_str()) {
                recovery.previous_run = Some(record.run.clone());
                recovery.previous_outcome = None;
            }
            let undo = match &record.entry {
                JournalEntry::GroupEnsured { group, created } => {
                    if *created && !recovery.created_groups.contains(group) {
                        recovery.created_groups.push(group.clone());
                    }
                    None
                }
                JournalEntry::OriginalMappings { volume, groups } => {
                    recovery
                        .original_mappings
                        .insert(volume.clone(), groups.clone());
                    None
                }
                JournalEntry::VolumeMapped { volume, group, .. } => {
                    let pre_existing = recovery
                        .original_mappings
                        .get(volume)
                        .is_some_and(|g| g.contains(group));
                    (!pre_existing).then(|| CleanupStep::UnmapVolume {
                        volume: volume.clone(),
                        group: group.clone(),
                    })
                }
                JournalEntry::DeviceDiscovered { host, naa } => Some(CleanupStep::RemoveDevice {
                    host: host.clone(),
                    naa: naa.clone(),
                }),
                JournalEntry::CloneRequested {
                    host,
                    device,
                    task_id,
                } => {
                    recovery.last_clone = Some(CloneRecord {
                        host: host.clone(),
                        device: Some(device.clone()),
                        task_id: task_id.clone(),
                        outcome: None,
                    });
                    // A named clone may be running from the moment it is requested: undo it as
                    // a started one ("unknown to the host" then means it never started).
                    task_id.as_ref().map(|task_id| CleanupStep::CleanTask {
                        host: host.clone(),
                        task_id: task_id.clone(),
                    })
                }
                JournalEntry::CloneStarted { host, task_id } => {
                    match recovery.last_clone.as_mut().filter(|c| {
                        c.outcome.is_none()
                            && c.host == *host
                            && c.task_id.as_ref().is_none_or(|id| id == task_id)
                    }) {
                        Some(clone) => clone.task_id = Some(task_id.clone()),
                        None => {
                            recovery.last_clone = Some(CloneRecord {
                                host: host.clone(),
                                device: None,
                                task_id: Some(task_id.clone()),
                                outcome: None,
                            })
                        }
                    }
                    Some(CleanupStep::CleanTask {
                        host: host.clone(),
                        task_id: task_id.clone(),
                    })
                }
                JournalEntry::CloneFinished { task_id, outcome } => {
                    if let Some(clone) = recovery
                        .last_clone
                        .as_mut()
                        .filter(|c| c.task_id.as_deref() == Some(task_id))
                    {
                        clone.outcome = Some(*outcome);
                    }
                    None
                }
                JournalEntry::ChangeMade { undo } => Some(undo.clone()),
                JournalEntry::CleanupDone { step } => {
                    if let Some(position) = outstanding.iter().rposition(|s| s == step) {
                        outstanding.remove(position);
                    }
                    None
                }
                JournalEntry::RunFinished { outcome } => {
                    recovery.previous_outcome = Some(*outcome);
                    None
                }
                JournalEntry::Note { .. } => None,
            };
            if let Some(step) = undo.filter(|s| !outstanding.contains(s)) {
                outstanding.push(step);
            }
        }
        outstanding.reverse();
        recovery.outstanding = outstanding;
        recovery
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot read or write the copy journal {location}")]
    Io {
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the Kubernetes API refused access to the copy journal {location}; check that the populator may get and patch that object"
    )]
    Kube {
        location: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "{location} does not exist; the copy journal needs it (was it deleted while the copy ran?)"
    )]
    Missing { location: String },
    #[error(
        "the copy journal {location} is unreadable ({reason}); it may have been edited by hand. Inspect it, undo what it \
         lists on the array and ESXi host, then delete it to start over"
    )]
    Corrupt { location: String, reason: String },
    #[error(
        "the copy journal {location} has format version {found}, newer than this build understands ({FORMAT_VERSION}); run a newer copy-offload"
    )]
    UnsupportedVersion { location: String, found: u32 },
    #[error(
        "another process changed the copy journal {location} while this run was using it; two populators must not work on \
         the same disk, stop one of them"
    )]
    ConcurrentWriter { location: String },
    #[error(
        "the copy journal {location} would grow beyond {MAX_JOURNAL_BYTES} bytes; the run records far more changes than a copy makes"
    )]
    TooLarge { location: String },
}

/// Where a journal document lives: a compare-and-swap register of text.
pub trait JournalStore: Send + Sync {
    /// Human-readable location, used in errors and logs.
    fn location(&self) -> String;

    /// The stored document, or `None` if nothing was ever written.
    fn read(&self) -> impl Future<Output = Result<Option<String>, JournalError>> + Send;

    /// Replaces the document with `new` if it still is `expected` (`None`: nothing stored);
    /// otherwise fails with [`JournalError::ConcurrentWriter`]. Durable when it returns.
    fn replace(
        &self,
        expected: Option<&str>,
        new: &str,
    ) -> impl Future<Output = Result<(), JournalError>> + Send;
}

/// The journal of one run, appending to what earlier runs wrote.
pub struct Journal<S> {
    store: S,
    run_id: String,
    records: Vec<JournalRecord>,
    stored: Option<String>,
}

impl<S: JournalStore> Journal<S> {
    /// Reads the journal (empty if none) and starts a new run on it.
    pub async fn load(store: S) -> Result<(Self, Recovery), JournalError> {
        let stored = store.read().await?;
        let records = match stored.as_deref() {
            None => Vec::new(),
            Some(text) => parse_document(text, &store.location())?,
        };
        let journal = Self {
            store,
            run_id: uuid::Uuid::new_v4().to_string(),
            records,
            stored,
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

    pub fn records(&self) -> &[JournalRecord] {
        &self.records
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
    /// them are recorded, or on error none is.
    pub async fn record_all(&mut self, entries: Vec<JournalEntry>) -> Result<(), JournalError> {
        let before = self.records.len();
        for entry in entries {
            let seq = self.records.last().map_or(0, |r| r.seq + 1);
            self.records.push(JournalRecord {
                seq,
                run: self.run_id.clone(),
                at: jiff::Timestamp::now().to_string(),
                entry,
            });
        }
        let result = self.persist().await;
        match &result {
            Ok(()) => {
                for record in &self.records[before..] {
                    debug!(seq = record.seq, entry = ?record.entry, "journal entry recorded");
                }
            }
            Err(_) => self.records.truncate(before),
        }
        result
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
    let corrupt = |e: serde_json::Error| JournalError::Corrupt {
        location: location.to_owned(),
        reason: e.to_string(),
    };
    let header: Header = serde_json::from_str(text).map_err(corrupt)?;
    if header.version > FORMAT_VERSION {
        return Err(JournalError::UnsupportedVersion {
            location: location.to_owned(),
            found: header.version,
        });
    }
    let document: JournalDocument = serde_json::from_str(text).map_err(corrupt)?;
    Ok(document.records)
}

/// The journal as a local file (Kubernetes-less mode). One process per file: the compare step
/// and the rename are not atomic across processes.
#[derive(Debug, Clone)]
pub struct FileJournalStore {
    path: PathBuf,
}

impl FileJournalStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            location: self.location(),
            source,
        }
    }

    fn replace_blocking(&self, expected: Option<&str>, new: &str) -> Result<(), JournalError> {
        let current = match std::fs::read_to_string(&self.path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.io_error(e)),
        };
        if current.as_deref() != expected {
            return Err(JournalError::ConcurrentWriter {
                location: self.location(),
            });
        }
        let directory = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&directory).map_err(|e| self.io_error(e))?;
        let mut temporary = tempfile::Builder::new()
            .prefix(&format!(".{}.", self.file_name()))
            .suffix(".tmp")
            .tempfile_in(&directory)
            .map_err(|e| self.io_error(e))?;
        temporary
            .write_all(new.as_bytes())
            .map_err(|e| self.io_error(e))?;
        temporary
            .as_file()
            .sync_all()
            .map_err(|e| self.io_error(e))?;
        temporary
            .persist(&self.path)
            .map_err(|e| self.io_error(e.error))?;
        // The rename is durable only once the directory entry is.
        std::fs::File::open(&directory)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io_error(e))
    }

    fn file_name(&self) -> String {
        self.path.file_name().map_or_else(
            || "journal".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}

impl JournalStore for FileJournalStore {
    fn location(&self) -> String {
        format!("file {}", self.path.display())
    }

    async fn read(&self) -> Result<Option<String>, JournalError> {
        match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_error(e)),
        }
    }

    async fn replace(&self, expected: Option<&str>, new: &str) -> Result<(), JournalError> {
        let (store, expected, new) = (self.clone(), expected.map(str::to_owned), new.to_owned());
        tokio::task::spawn_blocking(move || store.replace_blocking(expected.as_deref(), &new))
            .await
            .map_err(|e| self.io_error(std::io::Error::other(e)))?
    }
}

/// The journal as an annotation on a Kubernetes object (cluster mode).
#[derive(Clone)]
pub struct KubeJournalStore {
    api: Api<DynamicObject>,
    kind: String,
    namespace: String,
    name: String,
    /// `resourceVersion` of the object as last read or written: the precondition of the next write.
    resource_version: Arc<Mutex<Option<String>>>,
}

impl KubeJournalStore {
    /// The journal on the copy's `VSphereXcopyVolumePopulator` CR (the preferred place).
    pub fn on_populator_cr(client: Client, namespace: &str, name: &str) -> Self {
        let resource = ApiResource::erase::<co_api::VSphereXcopyVolumePopulator>(&());
        Self::on_object(client, &resource, namespace, name)
    }

    /// The journal on the target PVC, for copies started without a CR.
    pub fn on_pvc(client: Client, namespace: &str, name: &str) -> Self {
        let resource = ApiResource::erase::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(&());
        Self::on_object(client, &resource, namespace, name)
    }

    /// The journal on any namespaced object.
    pub fn on_object(client: Client, resource: &ApiResource, namespace: &str, name: &str) -> Self {
        Self {
            api: Api::namespaced_with(client, namespace, resource),
            kind: resource.kind.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            resource_version: Arc::new(Mutex::new(None)),
        }
    }

    fn kube_error(&self, source: kube::Error) -> JournalError {
        match &source {
            kube::Error::Api(status) if status.is_not_found() => JournalError::Missing {
                location: self.location(),
            },
            _ => JournalError::Kube {
                location: self.location(),
                source,
            },
        }
    }

    fn remember(&self, object: &DynamicObject) {
        *self
            .resource_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = object.metadata.resource_version.clone();
    }

    async fn fetch(&self) -> Result<Option<String>, JournalError> {
        let object = self
            .api
            .get(&self.name)
            .await
            .map_err(|e| self.kube_error(e))?;
        self.remember(&object);
        Ok(object
            .metadata
            .annotations
            .and_then(|mut a| a.remove(JOURNAL_ANNOTATION)))
    }
}

impl JournalStore for KubeJournalStore {
    fn location(&self) -> String {
        format!(
            "annotation {JOURNAL_ANNOTATION} on {} {}/{}",
            self.kind, self.namespace, self.name
        )
    }

    async fn read(&self) -> Result<Option<String>, JournalError> {
        self.fetch().await
    }

    async fn replace(&self, expected: Option<&str>, new: &str) -> Result<(), JournalError> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let version = self
                .resource_version
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let version = match version {
                Some(v) => v,
                None => {
                    if self.fetch().await?.as_deref() != expected {
                        return Err(JournalError::ConcurrentWriter {
                            location: self.location(),
                        });
                    }
                    continue;
                }
            };
            let patch = serde_json::json!({
                "metadata": { "resourceVersion": version, "annotations": { JOURNAL_ANNOTATION: new } }
            });
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            match self
                .api
                .patch(&self.name, &params, &Patch::Merge(&patch))
                .await
            {
                Ok(object) => {
                    self.remember(&object);
                    return Ok(());
                }
                Err(kube::Error::Api(status)) if status.is_conflict() => {
                    // Someone changed the object since we read it; fine unless it was the journal.
                    if self.fetch().await?.as_deref() != expected {
                        return Err(JournalError::ConcurrentWriter {
                            location: self.location(),
                        });
                    }
                }
                Err(error) => return Err(self.kube_error(error)),
            }
        }
        Err(JournalError::ConcurrentWriter {
            location: self.location(),
        })
    }
}

/// Either store, for callers that choose at run time.
#[derive(Clone)]
pub enum JournalBackend {
    File(FileJournalStore),
    Kube(Box<KubeJournalStore>),
}

impl JournalStore for JournalBackend {
    fn location(&self) -> String {
        match self {
            Self::File(store) => store.location(),
            Self::Kube(store) => store.location(),
        }
    }

    async fn read(&self) -> Result<Option<String>, JournalError> {
        match self {
            Self::File(store) => store.read().await,
            Self::Kube(store) => store.read().await,
        }
    }

    async fn replace(&self, expected: Option<&str>, new: &str) -> Result<(), JournalError> {
        match self {
            Self::File(store) => store.replace(expected, new).await,
            Self::Kube(store) => store.replace(expected, new).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(entries: Vec<(&str, JournalEntry)>) -> Vec<JournalRecord> {
        entries
            .into_iter()
            .enumerate()
            .map(|(seq, (run, entry))| JournalRecord {
                seq: seq as u64,
                run: run.into(),
                at: String::new(),
                entry,
            })
            .collect()
    }

    fn mapped(volume: &str, group: &str) -> JournalEntry {
        JournalEntry::VolumeMapped {
            volume: volume.into(),
            group: group.into(),
            lun: None,
        }
    }

    #[test]
    fn outstanding_steps_are_undone_newest_first_and_cancelled_by_cleanup() {
        let recovery = Recovery::fold(&records(vec![
            (
                "r1",
                JournalEntry::OriginalMappings {
                    volume: "v".into(),
                    groups: vec![],
                },
            ),
            ("r1", mapped("v", "xcopy-h")),
            (
                "r1",
                JournalEntry::DeviceDiscovered {
                    host: "h".into(),
                    naa: "naa.1".into(),
                },
            ),
            (
                "r1",
                JournalEntry::CloneRequested {
                    host: "h".into(),
                    device: "naa.1".into(),
                    task_id: None,
                },
            ),
            (
                "r1",
                JournalEntry::CloneStarted {
                    host: "h".into(),
                    task_id: "t1".into(),
                },
            ),
            (
                "r1",
                JournalEntry::CleanupDone {
                    step: CleanupStep::RemoveDevice {
                        host: "h".into(),
                        naa: "naa.1".into(),
                    },
                },
            ),
        ]));
        assert_eq!(recovery.previous_run.as_deref(), Some("r1"));
        assert_eq!(
            recovery.outstanding,
            vec![
                CleanupStep::CleanTask {
                    host: "h".into(),
                    task_id: "t1".into()
                },
                CleanupStep::UnmapVolume {
                    volume: "v".into(),
                    group: "xcopy-h".into()
                },
            ]
        );
        let running = recovery.clone_may_be_running().unwrap();
        assert_eq!(running.task_id.as_deref(), Some("t1"));
        assert_eq!(running.device.as_deref(), Some("naa.1"));
        assert!(!recovery.is_clean());
    }

    #[test]
    fn pre_existing_mapping_is_never_undone() {
        let recovery = Recovery::fold(&records(vec![
            (
                "r1",
                JournalEntry::OriginalMappings {
                    volume: "v".into(),
                    groups: vec!["xcopy-h".into()],
                },
            ),
            ("r1", mapped("v", "xcopy-h")),
        ]));
        assert!(recovery.outstanding.is_empty());
        assert_eq!(recovery.original_mappings["v"], vec!["xcopy-h".to_owned()]);
    }

    #[test]
    fn clone_requested_without_task_id_may_still_be_running() {
        let recovery = Recovery::fold(&records(vec![(
            "r1",
            JournalEntry::CloneRequested {
                host: "h".into(),
                device: "naa.2".into(),
                task_id: None,
            },
        )]));
        let clone = recovery.clone_may_be_running().unwrap();
        assert_eq!(clone.task_id, None);
        assert!(!recovery.is_clean());
    }

    #[test]
    fn finished_clone_and_cleaned_run_is_clean() {
        let task = CleanupStep::CleanTask {
            host: "h".into(),
            task_id: "t".into(),
        };
        let recovery = Recovery::fold(&records(vec![
            (
                "r1",
                JournalEntry::CloneStarted {
                    host: "h".into(),
                    task_id: "t".into(),
                },
            ),
            (
                "r1",
                JournalEntry::CloneFinished {
                    task_id: "t".into(),
                    outcome: Outcome::Succeeded,
                },
            ),
            ("r1", JournalEntry::CleanupDone { step: task }),
            (
                "r1",
                JournalEntry::RunFinished {
                    outcome: Outcome::Succeeded,
                },
            ),
        ]));
        assert!(recovery.is_clean());
        assert_eq!(recovery.previous_outcome, Some(Outcome::Succeeded));
        assert_eq!(
            recovery.last_clone.unwrap().outcome,
            Some(Outcome::Succeeded)
        );
    }

    #[test]
    fn a_later_run_without_a_finish_resets_the_previous_outcome() {
        let recovery = Recovery::fold(&records(vec![
            (
                "r1",
                JournalEntry::RunFinished {
                    outcome: Outcome::Failed,
                },
            ),
            (
                "r2",
                JournalEntry::GroupEnsured {
                    group: "xcopy-h".into(),
                    created: true,
                },
            ),
        ]));
        assert_eq!(recovery.previous_run.as_deref(), Some("r2"));
        assert_eq!(recovery.previous_outcome, None);
        assert_eq!(recovery.created_groups, vec!["xcopy-h".to_owned()]);
    }

    #[test]
    fn custom_changes_round_trip_through_json() {
        let step = CleanupStep::Custom {
            name: "rdmDescriptor".into(),
            detail: serde_json::json!({"path": "[ds] vm/x.vmdk"}),
        };
        let record = JournalRecord {
            seq: 3,
            run: "r".into(),
            at: "t".into(),
            entry: JournalEntry::ChangeMade { undo: step.clone() },
        };
        let text = serde_json::to_string(&record).unwrap();
        assert!(text.contains(r#""kind":"changeMade""#), "{text}");
        assert!(text.contains(r#""step":"custom""#), "{text}");
        let back: JournalRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, record);
        let recovery = Recovery::fold(&[back]);
        assert_eq!(recovery.outstanding, vec![step]);
    }

    /// The JSON of a requested clone is a contract with journals already written: a journal from
    /// the previous version (no `taskId`) still loads, and one without an id is written as before.
    #[test]
    fn clone_requested_json_reads_old_journals_and_carries_the_chosen_id() {
        let old = r#"{"seq":4,"run":"r","at":"t","kind":"cloneRequested","host":"HostSystem:host-10","device":"naa.1"}"#;
        let record: JournalRecord = serde_json::from_str(old).unwrap();
        assert_eq!(
            record.entry,
            JournalEntry::CloneRequested {
                host: "HostSystem:host-10".into(),
                device: "naa.1".into(),
                task_id: None,
            }
        );
        assert_eq!(serde_json::to_string(&record).unwrap(), old);

        let named = JournalRecord {
            entry: JournalEntry::CloneRequested {
                host: "HostSystem:host-10".into(),
                device: "naa.1".into(),
                task_id: Some("5d0f3c9e-2b7a-4c61-9e8d-0a1b2c3d4e5f".into()),
            },
            ..record
        };
        let text = serde_json::to_string(&named).unwrap();
        assert_eq!(
            text,
            r#"{"seq":4,"run":"r","at":"t","kind":"cloneRequested","host":"HostSystem:host-10","device":"naa.1","taskId":"5d0f3c9e-2b7a-4c61-9e8d-0a1b2c3d4e5f"}"#
        );
        assert_eq!(serde_json::from_str::<JournalRecord>(&text).unwrap(), named);
    }

    /// Killed between journaling the request and the host's answer: the task has a name, so the
    /// re-run aborts and cleans it like a started one, before anything else is undone.
    #[test]
    fn a_named_clone_request_is_undone_like_a_started_task() {
        let task = CleanupStep::CleanTask {
            host: "h".into(),
            task_id: "t1".into(),
        };
        let requested = (
            "r1",
            JournalEntry::CloneRequested {
                host: "h".into(),
                device: "naa.1".into(),
                task_id: Some("t1".into()),
            },
        );
        let discovered = (
            "r1",
            JournalEntry::DeviceDiscovered {
                host: "h".into(),
                naa: "naa.1".into(),
            },
        );
        let recovery = Recovery::fold(&records(vec![discovered.clone(), requested.clone()]));
        assert_eq!(
            recovery.outstanding,
            vec![
                task.clone(),
                CleanupStep::RemoveDevice {
                    host: "h".into(),
                    naa: "naa.1".into()
                }
            ]
        );
        let clone = recovery.clone_may_be_running().unwrap();
        assert_eq!(clone.task_id.as_deref(), Some("t1"));
        assert_eq!(clone.device.as_deref(), Some("naa.1"));

        // The host's answer names the same task: still one step, one clone record.
        let started = (
            "r1",
            JournalEntry::CloneStarted {
                host: "h".into(),
                task_id: "t1".into(),
            },
        );
        let recovery = Recovery::fold(&records(vec![
            discovered.clone(),
            requested.clone(),
            started.clone(),
        ]));
        assert_eq!(recovery.outstanding.len(), 2);
        assert_eq!(recovery.outstanding[0], task);
        assert_eq!(
            recovery.clone_may_be_running().unwrap().device.as_deref(),
            Some("naa.1")
        );

        let recovery = Recovery::fold(&records(vec![
            discovered,
            requested,
            started,
            ("r1", JournalEntry::CleanupDone { step: task }),
            (
                "r1",
                JournalEntry::CloneFinished {
                    task_id: "t1".into(),
                    outcome: Outcome::Aborted,
                },
            ),
        ]));
        assert_eq!(recovery.outstanding.len(), 1);
        assert!(recovery.clone_may_be_running().is_none());
    }

    #[test]
    fn newer_format_is_refused_not_misread() {
        let err = parse_document(r#"{"version": 99, "records": []}"#, "file x").unwrap_err();
        assert!(
            matches!(err, JournalError::UnsupportedVersion { found: 99, .. }),
            "{err}"
        );
        let err = parse_document(
            r#"{"version": 1, "records": [{"seq":0,"run":"r","at":"","kind":"launchMissiles"}]}"#,
            "file x",
        )
        .unwrap_err();
        assert!(matches!(err, JournalError::Corrupt { .. }), "{err}");
    }
}
