//! Recover: undo what earlier runs left, before anything new is started — never a second clone
//! onto a LUN an old clone may still write to: its task is aborted and cleaned first.

use tokio::time::Instant;
use tracing::{info, warn};

use super::Run;
use crate::error::{CleanupFailures, CopyError};
use crate::journal::{CleanupStep, CloneRecord};

impl Run<'_> {
    pub(super) async fn recover(&self) -> Result<(), CopyError> {
        let recovery = self.journal.lock().await.recovery();
        if recovery.is_clean() {
            return Ok(());
        }
        if let Some(clone) = recovery.clone_may_be_running()
            && clone.task_id.is_none()
        {
            warn!(
                host = %clone.host,
                device = ?clone.device,
                "an earlier run died between starting a clone and learning its task id (wrapper \
                 older than 1.1.0); its device is detached first, which the host refuses while the \
                 clone still writes, and only then is anything else undone"
            );
            self.detach_under_unnamed_clone(clone).await?;
        }
        info!(
            previous_run = ?recovery.previous_run,
            outstanding = recovery.outstanding.len(),
            "undoing what an earlier run left"
        );
        let failures = self
            .undo
            .outstanding(self.journal, self.engine.timing.cleanup_budget)
            .await;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(CopyError::Recovery(CleanupFailures(failures)))
        }
    }

    /// Detaches the device of an earlier run's clone whose task id was never learned, before any
    /// other undo: the host refuses while the clone holds the device, and that refusal is the
    /// only sign the clone still runs. Until then nothing is undone (no unmapping under a writer)
    /// and nothing new is started.
    async fn detach_under_unnamed_clone(&self, clone: &CloneRecord) -> Result<(), CopyError> {
        let Some(device) = &clone.device else {
            return Ok(());
        };
        // The request names the device path the clone wrote to; the discovery, its bare id.
        let naa = device.rsplit('/').next().unwrap_or(device);
        let step = CleanupStep::RemoveDevice {
            host: clone.host.clone(),
            naa: naa.to_owned(),
        };
        if !self
            .journal
            .lock()
            .await
            .recovery()
            .outstanding
            .contains(&step)
        {
            return Ok(());
        }
        let deadline = Instant::now() + self.engine.timing.cleanup_budget;
        self.undo
            .step(self.journal, &step, deadline)
            .await
            .map_err(|error| CopyError::UnnamedCloneRunning {
                host: clone.host.clone(),
                device: naa.to_owned(),
                reason: error.to_string(),
            })
    }
}
