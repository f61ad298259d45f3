//! The journal's vocabulary (format version 2): what a run records before it changes the world
//! ([`JournalEntry::ChangeMade`] with the [`CleanupStep`] that reverts it), what it undid, and the
//! life of a clone task. Every value is typed over the storage crate's own types, so recovery
//! needs nothing but the journal to undo a change.

use co_storage::{ArrayCopySession, EsxiHostRef, GroupRef, InitiatorGroup, Volume};
use serde::{Deserialize, Serialize};

/// Version of the journal document format this build writes (it reads this and version 1).
pub const FORMAT_VERSION: u32 = 2;
/// Largest journal we write: annotations share a 256 KiB budget per object.
pub const MAX_JOURNAL_BYTES: usize = 128 * 1024;

/// One change to the outside world (recorded before it is made) or one undo (recorded after).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum JournalEntry {
    /// A change is about to be made; `undo` reverts it.
    ChangeMade { undo: CleanupStep },
    /// `step` was undone (or found already undone).
    CleanupDone { step: CleanupStep },
    /// A clone onto `device` is about to be started on `host`. `task_id` is the id the populator
    /// chose for it (wrapper 1.1.0 and later), so the task can be aborted and cleaned even if the
    /// run dies before the host answers; `None` (older wrappers) means the id is known only from
    /// [`JournalEntry::CloneStarted`].
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
    /// The run ended: nothing after this belongs to it.
    RunFinished { outcome: Outcome },
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
    /// A clone task on `host`: aborted if it still runs, then cleaned with its RDM descriptor.
    CleanTask { host: String, task_id: String },
    /// The target device as `host` sees it: set off and detached.
    RemoveDevice { host: String, naa: String },
    /// The copy's mapping of the volume to the host's group: removed.
    UnmapVolume {
        volume: Volume,
        group: InitiatorGroup,
    },
    /// The mappings the volume had before the copy: made sure they exist again.
    RestoreMappings {
        volume: Volume,
        groups: Vec<GroupRef>,
    },
    /// The initiator group ensured for `host` (`group` is `None` until the array answered):
    /// released, i.e. deleted if copy-offload owns it and nothing is mapped to it any more.
    ReleaseGroup {
        host: EsxiHostRef,
        group: Option<InitiatorGroup>,
    },
    /// An array-side copy's objects (snapshot, pair, FlashCopy mapping): stopped and removed.
    EndArrayCopy { session: ArrayCopySession },
    /// Host hygiene once the volume is unmapped: a rescan of `adapters` drops the dead paths.
    RescanDelete { host: String, adapters: Vec<String> },
    /// A change an older journal recorded without what is needed to undo it automatically: a
    /// person must, and cleanup says so.
    ManualUndo { what: String },
}

impl CleanupStep {
    /// Whether this step only tidies the host's view of a volume that is already unmapped (the
    /// rescan-delete): it never affects the volume or the array, and failing it only leaves a dead
    /// path entry until the host's next rescan, so a run reports completion before it.
    pub fn is_host_hygiene(&self) -> bool {
        matches!(self, Self::RescanDelete { .. })
    }
}

impl std::fmt::Display for CleanupStep {
    /// A short description for logs, errors and the run's report.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CleanTask { host, task_id } => write!(f, "clean clone task {task_id} on {host}"),
            Self::RemoveDevice { host, naa } => write!(f, "detach device {naa} from {host}"),
            Self::UnmapVolume { volume, group } => {
                let targets: Vec<&str> = group.targets.iter().map(|t| t.name.as_str()).collect();
                write!(f, "unmap {} from {}", volume.name, targets.join(", "))
            }
            Self::RestoreMappings { volume, groups } => {
                let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
                if names.is_empty() {
                    write!(f, "restore the mappings of {} (it had none)", volume.name)
                } else {
                    write!(f, "restore {} mapped to {}", volume.name, names.join(", "))
                }
            }
            Self::ReleaseGroup { host, group } => match group {
                Some(group) => {
                    let owned: Vec<&str> = group.owned.iter().map(|g| g.name.as_str()).collect();
                    if owned.is_empty() {
                        write!(
                            f,
                            "release the initiator group of {} (none ours)",
                            host.host_id
                        )
                    } else {
                        write!(f, "release initiator group {}", owned.join(", "))
                    }
                }
                None => write!(f, "release the initiator group of {}", host.host_id),
            },
            Self::EndArrayCopy { session } => write!(
                f,
                "end array copy {} onto {}",
                session.name, session.target.name
            ),
            Self::RescanDelete { host, adapters } => {
                write!(
                    f,
                    "rescan {} on {host} to drop dead paths",
                    adapters.join(", ")
                )
            }
            Self::ManualUndo { what } => write!(f, "undo by hand: {what}"),
        }
    }
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
