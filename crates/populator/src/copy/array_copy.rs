//! Array copy: the array copies a vVol or RDM disk into the target volume itself. The session's
//! objects are named before they exist, so the journal lists them first and cleanup ends them.

use co_storage::{ArrayCopySource, Volume};

use super::Run;
use crate::error::CopyError;
use crate::journal::{CleanupStep, JournalEntry};

impl Run<'_> {
    pub(super) async fn array_copy(
        &self,
        source: &ArrayCopySource,
        volume: &Volume,
    ) -> Result<(), CopyError> {
        let engine = self.engine;
        let array = engine
            .storage
            .array_copy()
            .ok_or_else(|| CopyError::Refused("the array lost its copy capability".into()))?;
        engine
            .metrics
            .set_xcopy_used(&self.job.storage_vendor, self.clone_method_label(), false);
        let session = array.session(source, volume);
        self.record(JournalEntry::ChangeMade {
            undo: CleanupStep::EndArrayCopy {
                session: session.clone(),
            },
        })
        .await?;
        let metrics = engine.metrics.clone();
        let progress = move |percent: u8| metrics.set_progress(percent);
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(CopyError::Cancelled),
            copied = array.copy(&session, &progress) => copied.map_err(CopyError::storage("array-side copy")),
        }
    }
}
