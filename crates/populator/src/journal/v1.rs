//! Reading journals of format version 1 (copy-offload 0.1 before the typed vocabulary), so a
//! journal an older populator left is still undone after an upgrade. Version 1 recorded array
//! steps as `custom` steps (a name and a JSON detail); their details were the storage crate's
//! types then as now, so each converts to its typed step. Entries version 1 defined but never
//! wrote in production convert to what they meant; any that cannot be undone automatically become
//! [`CleanupStep::ManualUndo`], which cleanup reports to a person instead of guessing.

use co_storage::{EsxiHostRef, GroupRef, InitiatorGroup, Volume};
use serde::Deserialize;

use super::entry::{CleanupStep, JournalEntry, JournalRecord, Outcome};

#[derive(Debug, Deserialize)]
pub(super) struct Document {
    records: Vec<Record>,
}

#[derive(Debug, Deserialize)]
struct Record {
    seq: u64,
    run: String,
    at: String,
    #[serde(flatten)]
    entry: Entry,
}

#[derive(Debug, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
enum Entry {
    // Facts without an undo of their own: their fields are not needed.
    GroupEnsured {},
    OriginalMappings {},
    VolumeMapped {
        volume: String,
        group: String,
    },
    DeviceDiscovered {
        host: String,
        naa: String,
    },
    CloneRequested {
        host: String,
        device: String,
        #[serde(default)]
        task_id: Option<String>,
    },
    CloneStarted {
        host: String,
        task_id: String,
    },
    CloneFinished {
        task_id: String,
        outcome: Outcome,
    },
    ChangeMade {
        undo: Step,
    },
    CleanupDone {
        step: Step,
    },
    RunFinished {
        outcome: Outcome,
    },
    Note {},
}

#[derive(Debug, Deserialize)]
#[serde(
    tag = "step",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
enum Step {
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
    Custom {
        name: String,
        #[serde(default)]
        detail: serde_json::Value,
    },
}

#[derive(Deserialize)]
struct ReleaseGroup {
    host: EsxiHostRef,
    group: Option<InitiatorGroup>,
}

#[derive(Deserialize)]
struct RestoreMappings {
    volume: Volume,
    groups: Vec<GroupRef>,
}

#[derive(Deserialize)]
struct RescanDelete {
    host: String,
    adapters: Vec<String>,
}

#[derive(Deserialize)]
struct UnmapVolume {
    volume: Volume,
    group: InitiatorGroup,
}

impl Document {
    /// The records in the current vocabulary; `None` entries (notes, facts without an undo) drop.
    pub(super) fn into_records(self) -> Result<Vec<JournalRecord>, String> {
        let mut records = Vec::new();
        for record in self.records {
            if let Some(entry) = record.entry.convert()? {
                records.push(JournalRecord {
                    seq: record.seq,
                    run: record.run,
                    at: record.at,
                    entry,
                });
            }
        }
        Ok(records)
    }
}

impl Entry {
    fn convert(self) -> Result<Option<JournalEntry>, String> {
        Ok(Some(match self {
            Entry::GroupEnsured {} | Entry::OriginalMappings {} | Entry::Note {} => {
                return Ok(None);
            }
            Entry::VolumeMapped { volume, group } => JournalEntry::ChangeMade {
                undo: CleanupStep::ManualUndo {
                    what: format!("unmap volume {volume} from {group} on the array"),
                },
            },
            Entry::DeviceDiscovered { host, naa } => JournalEntry::ChangeMade {
                undo: CleanupStep::RemoveDevice { host, naa },
            },
            Entry::CloneRequested {
                host,
                device,
                task_id,
            } => JournalEntry::CloneRequested {
                host,
                device,
                task_id,
            },
            Entry::CloneStarted { host, task_id } => JournalEntry::CloneStarted { host, task_id },
            Entry::CloneFinished { task_id, outcome } => {
                JournalEntry::CloneFinished { task_id, outcome }
            }
            Entry::ChangeMade { undo } => JournalEntry::ChangeMade {
                undo: undo.convert()?,
            },
            Entry::CleanupDone { step } => JournalEntry::CleanupDone {
                step: step.convert()?,
            },
            Entry::RunFinished { outcome } => JournalEntry::RunFinished { outcome },
        }))
    }
}

impl Step {
    fn convert(self) -> Result<CleanupStep, String> {
        fn detail<T: for<'de> Deserialize<'de>>(
            name: &str,
            detail: serde_json::Value,
        ) -> Result<T, String> {
            serde_json::from_value(detail)
                .map_err(|e| format!("version 1 step {name:?} is unreadable: {e}"))
        }
        Ok(match self {
            Step::UnmapVolume { volume, group } => CleanupStep::ManualUndo {
                what: format!("unmap volume {volume} from {group} on the array"),
            },
            Step::RemoveDevice { host, naa } => CleanupStep::RemoveDevice { host, naa },
            Step::CleanTask { host, task_id } => CleanupStep::CleanTask { host, task_id },
            Step::Custom {
                name,
                detail: value,
            } => match name.as_str() {
                "releaseGroup" => {
                    let d: ReleaseGroup = detail(&name, value)?;
                    CleanupStep::ReleaseGroup {
                        host: d.host,
                        group: d.group,
                    }
                }
                "restoreMappings" => {
                    let d: RestoreMappings = detail(&name, value)?;
                    CleanupStep::RestoreMappings {
                        volume: d.volume,
                        groups: d.groups,
                    }
                }
                "rescanDelete" => {
                    let d: RescanDelete = detail(&name, value)?;
                    CleanupStep::RescanDelete {
                        host: d.host,
                        adapters: d.adapters,
                    }
                }
                "unmapVolume" => {
                    let d: UnmapVolume = detail(&name, value)?;
                    CleanupStep::UnmapVolume {
                        volume: d.volume,
                        group: d.group,
                    }
                }
                other => CleanupStep::ManualUndo {
                    what: format!("a step {other:?} recorded by an older version: {value}"),
                },
            },
        })
    }
}
