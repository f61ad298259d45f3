//! The XCOPY path: find the ESXi host, connect the clone method while the array maps the volume
//! and the host discovers it (neither waits for the other; whichever fails first stops the other
//! before anything more is changed), then clone with `vmkfstools` onto the verified device,
//! streaming progress into the metrics.

use co_api::CloneMethod;
use co_esxi::{CloneExecutor, CloneTask};
use co_vsphere::ManagedObjectReference;

use super::map::HostTarget;
use super::resolve::Source;
use super::{Phase, Run};
use crate::discover::HostStorage;
use crate::error::CopyError;
use crate::executors::JournaledExecutor;
use crate::journal::{JournalEntry, Outcome};
use crate::lease::HostId;

impl Run<'_> {
    pub(super) async fn xcopy(
        &self,
        method: CloneMethod,
        source: &Source,
    ) -> Result<(), CopyError> {
        let engine = self.engine;
        let host = match &self.job.migration_host {
            Some(id) => engine.vsphere.find_host(id).await,
            None => engine.vsphere.vm_host(&source.vm).await,
        }
        .map_err(CopyError::vsphere("finding the ESXi host"))?;
        let host_key = host.to_string();
        let target = HostTarget {
            id: HostId::from_managed_object(&host_key)?,
            storage: HostStorage::new(engine.vsphere.clone(), host.clone()),
            host,
        };

        let abandon = self.cancel.child_token();
        let executor = async {
            let connected = tokio::select! {
                biased;
                () = abandon.cancelled() => Err(CopyError::Cancelled),
                connected = self.connect_executor(&target.host, method) => connected,
            };
            if connected.is_err() {
                abandon.cancel();
            }
            connected
        };
        let mapped_and_verified = async {
            let mapped = self.map_and_discover(&target, source, &abandon).await;
            if mapped.is_err() {
                abandon.cancel();
            }
            mapped
        };
        let (executor, verified) = tokio::join!(executor, mapped_and_verified);
        // The first real failure explains the run; the other side only saw the abandon signal.
        let executor = match (executor, verified) {
            (Ok(executor), Ok(())) => executor,
            (Err(error), Err(CopyError::Cancelled)) | (Err(CopyError::Cancelled), Err(error)) => {
                return Err(if self.cancel.is_cancelled() {
                    CopyError::Cancelled
                } else {
                    error
                });
            }
            (Err(error), _) | (_, Err(error)) => return Err(error),
        };

        self.step(Phase::Clone)?;
        let journaled = JournaledExecutor::new(executor.as_ref(), self.journal, &host_key);
        let metrics = engine.metrics.clone();
        let vendor = self.job.storage_vendor.clone();
        let label = self.clone_method_label();
        let result = CloneTask::new(&journaled)
            .with_schedule(engine.timing.poll)
            .run(
                &self.job.vmdk.esxi_path(),
                &source.volume.naa.esxi_device_path(),
                self.cancel,
                move |progress| {
                    metrics.set_progress(progress.percent);
                    if let Some(used) = progress.xcopy_used {
                        metrics.set_xcopy_used(&vendor, label, used);
                    }
                },
            )
            .await;
        if let Some(task_id) = journaled.task_id() {
            let outcome = match &result {
                Ok(_) => Outcome::Succeeded,
                Err(co_esxi::EsxiError::Cancelled { .. }) => Outcome::Aborted,
                Err(_) => Outcome::Failed,
            };
            self.record(JournalEntry::CloneFinished { task_id, outcome })
                .await?;
        }
        let outcome = result.map_err(CopyError::esxi(&host_key, "clone"))?;
        self.report(|report| report.xcopy_used = outcome.xcopy_used.unwrap_or(false));
        engine.metrics.set_progress(100);
        Ok(())
    }

    /// The clone method's executor on `host`, with the VIB version published (advisory, as
    /// upstream: an older wrapper still clones).
    async fn connect_executor(
        &self,
        host: &ManagedObjectReference,
        method: CloneMethod,
    ) -> Result<Box<dyn CloneExecutor>, CopyError> {
        let engine = self.engine;
        let executor = engine
            .executors
            .connect(host, self.job.vmdk.datastore())
            .await?;
        if method == CloneMethod::Vib {
            let version = executor.version().await.ok();
            engine.metrics.set_vib_version(version.as_deref());
        }
        Ok(executor)
    }
}
