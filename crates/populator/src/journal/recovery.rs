//! Folding the journal's records into what is left to do ([`Recovery`]), and compaction: the
//! shortest list of records that folds to the same [`Recovery`], which is all a journal needs to
//! keep between runs. A journal that only grew stopped copies once it hit its size cap; compacted
//! at every run's start and end it stays as small as what is actually outstanding.

use std::collections::BTreeMap;

use super::entry::{CleanupStep, JournalEntry, JournalRecord, Outcome};

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
    /// Mappings a volume had before an outstanding copy mapped it (by volume name): never remove
    /// these.
    pub original_mappings: BTreeMap<String, Vec<String>>,
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

    pub(crate) fn fold(records: &[JournalRecord]) -> Self {
        let mut recovery = Self::default();
        // Oldest first while folding; reversed at the end.
        let mut outstanding: Vec<CleanupStep> = Vec::new();
        for record in records {
            if recovery.previous_run.as_deref() != Some(record.run.as_str()) {
                recovery.previous_run = Some(record.run.clone());
                recovery.previous_outcome = None;
            }
            let undo = match &record.entry {
                JournalEntry::ChangeMade { undo } => Some(undo.clone()),
                JournalEntry::CleanupDone { step } => {
                    if let Some(position) = outstanding.iter().rposition(|s| s == step) {
                        outstanding.remove(position);
                    }
                    // Cleaning a task aborts it first: a cleaned clone no longer runs.
                    if let CleanupStep::CleanTask { task_id, .. } = step
                        && let Some(clone) = recovery.last_clone.as_mut().filter(|c| {
                            c.outcome.is_none() && c.task_id.as_deref() == Some(task_id)
                        })
                    {
                        clone.outcome = Some(Outcome::Aborted);
                    }
                    None
                }
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
                JournalEntry::RunFinished { outcome } => {
                    recovery.previous_outcome = Some(*outcome);
                    None
                }
            };
            if let Some(step) = undo.filter(|s| !outstanding.contains(s)) {
                outstanding.push(step);
            }
        }
        for step in &outstanding {
            if let CleanupStep::RestoreMappings { volume, groups } = step {
                recovery.original_mappings.insert(
                    volume.name.clone(),
                    groups.iter().map(|g| g.name.clone()).collect(),
                );
            }
        }
        outstanding.reverse();
        recovery.outstanding = outstanding;
        recovery
    }
}

/// The records that still matter, in their original order and with their original run ids, times
/// and numbers: those that introduced a step still outstanding, those of the clone that may still
/// run, the end of the last run, and the last record (which names the last run). The rest — changes
/// undone since, finished clones, earlier runs' ends — no longer changes the fold, so dropping it
/// leaves the same outstanding steps in the same order, the same clone in flight, the same last run
/// and outcome, and the same original mappings.
pub(crate) fn compact(records: &[JournalRecord]) -> Vec<JournalRecord> {
    let Some(last) = records.len().checked_sub(1) else {
        return Vec::new();
    };
    // Which record introduced each outstanding step, replaying the fold's bookkeeping.
    let mut introduced: Vec<(CleanupStep, usize)> = Vec::new();
    let mut clone_records: Vec<usize> = Vec::new();
    let mut clone_running = false;
    let mut last_run_end: Option<usize> = None;
    for (index, record) in records.iter().enumerate() {
        if record.run != records[last].run {
            last_run_end = None;
        }
        let derived = match &record.entry {
            JournalEntry::ChangeMade { undo } => Some(undo.clone()),
            JournalEntry::CleanupDone { step } => {
                if let Some(position) = introduced.iter().rposition(|(s, _)| s == step) {
                    introduced.remove(position);
                }
                if matches!(step, CleanupStep::CleanTask { .. }) {
                    clone_running = false;
                }
                None
            }
            JournalEntry::CloneRequested { host, task_id, .. } => {
                clone_records = vec![index];
                clone_running = true;
                task_id.as_ref().map(|task_id| CleanupStep::CleanTask {
                    host: host.clone(),
                    task_id: task_id.clone(),
                })
            }
            JournalEntry::CloneStarted { host, task_id } => {
                if !clone_running {
                    clone_records.clear();
                }
                clone_records.push(index);
                clone_running = true;
                Some(CleanupStep::CleanTask {
                    host: host.clone(),
                    task_id: task_id.clone(),
                })
            }
            JournalEntry::CloneFinished { .. } => {
                clone_running = false;
                None
            }
            JournalEntry::RunFinished { .. } => {
                if record.run == records[last].run {
                    last_run_end = Some(index);
                }
                None
            }
        };
        if let Some(step) = derived.filter(|s| !introduced.iter().any(|(o, _)| o == s)) {
            introduced.push((step, index));
        }
    }
    let mut keep: Vec<usize> = introduced.into_iter().map(|(_, index)| index).collect();
    if clone_running {
        keep.extend(clone_records);
    }
    keep.extend(last_run_end);
    keep.push(last);
    keep.sort_unstable();
    keep.dedup();
    keep.into_iter()
        .map(|index| records[index].clone())
        .collect()
}
