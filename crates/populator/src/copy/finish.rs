//! Cleanup and the run's end: undo every journaled change but the host hygiene (withheld when an
//! earlier run's unnamed clone may still write), fold cleanup failures into the result, journal
//! how the run ended, and close the phase clock into the report. The host hygiene (the
//! rescan-delete) follows the completion report ([`host_hygiene`]).

use tokio::time::Instant;
use tracing::{info, warn};

use super::{CopyEngine, CopyJob, CopyOutcome, Run};
use crate::error::{CleanupFailures, CopyError};
use crate::executors::CopyJournal;
use crate::journal::{JournalEntry, Outcome};

impl Run<'_> {
    pub(super) async fn finish(self, result: Result<(), CopyError>) -> CopyOutcome {
        let budget = self.engine.timing.cleanup_budget;
        let (failures, host_hygiene_by) =
            if matches!(result, Err(CopyError::UnnamedCloneRunning { .. })) {
                // Everything outstanding is the earlier run's and must stay until its clone ended:
                // unmapping the LUN under a writing clone is not a cleanup. This run changed nothing.
                info!("cleanup skipped: the earlier run's changes stay until its clone has ended");
                (Vec::new(), None)
            } else {
                let deadline = Instant::now() + budget;
                (
                    self.undo.release(self.journal, budget).await,
                    Some(deadline),
                )
            };
        let result = match (result, failures.is_empty()) {
            (Ok(()), true) => Ok(()),
            (Ok(()), false) => Err(CopyError::Recovery(CleanupFailures(failures))),
            (Err(error), _) => Err(error),
        };
        let outcome = match &result {
            Ok(()) => Outcome::Succeeded,
            Err(CopyError::Cancelled) => Outcome::Aborted,
            Err(_) => Outcome::Failed,
        };
        if let Err(error) = self.record(JournalEntry::RunFinished { outcome }).await {
            warn!(%error, "could not journal the end of the run");
        }
        let mut report = self
            .report
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut clock = self
            .clock
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((phase, since)) = clock.current.take() {
            clock.done.push((phase, since.elapsed()));
        }
        report.phases = clock.done;
        match &result {
            Ok(()) => info!(phases = ?report.phases, "copy finished"),
            Err(error) => warn!(%error, phases = ?report.phases, "copy failed"),
        }
        CopyOutcome {
            result,
            report,
            host_hygiene_by,
        }
    }
}

impl CopyEngine {
    /// Runs the host hygiene [`CopyEngine::run`] leaves outstanding (the rescan-delete) by
    /// `deadline` ([`CopyOutcome::host_hygiene_by`]). Its failures are logged, never change the
    /// outcome: the volume is released already and a dead path entry goes with the host's next
    /// rescan.
    pub async fn finish_host_hygiene(
        &self,
        job: &CopyJob,
        journal: &CopyJournal,
        deadline: Instant,
    ) {
        let started = Instant::now();
        let failures = CleanupFailures(self.undo(job).host_hygiene(journal, deadline).await);
        let duration_ms = started.elapsed().as_millis() as u64;
        if failures.0.is_empty() {
            info!(duration_ms, "host cleanup after completion done");
        } else {
            warn!(duration_ms, %failures, "host cleanup after completion incomplete; the journal keeps it");
        }
    }
}
