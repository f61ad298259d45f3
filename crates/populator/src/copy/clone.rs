//! The XCOPY path: find the ESXi host, connect the clone method while the array maps the volume
//! and the host discovers it (neither waits for the other; whichever fails first stops the other
//! before anything more is changed), then clone with `vmkfstools` onto the verified device,
//! streaming progress into the metrics.

use std::sync::Mutex;
use std::time::Duration;

use co_api::CloneMethod;
use co_esxi::{CloneExecutor, CloneTask};
use co_vsphere::ManagedObjectReference;
use tokio::time::Instant;
use tracing::info;

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
        let log = ProgressLog::new(source.disk.provisioned_bytes);
        let result = CloneTask::new(&journaled)
            .with_schedule(engine.timing.poll)
            .run(
                &self.job.vmdk.esxi_path(),
                &source.volume.naa.esxi_device_path(),
                self.cancel,
                move |progress| {
                    log.observe(progress.percent);
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

/// Clone progress as log lines, for wherever the run is read (a pod log, a file): a line each 10 %
/// or each 30 s, never more than one per 2 s, with the bytes done, the rate and the time left.
struct ProgressLog {
    started: Instant,
    provisioned_bytes: u64,
    last: Mutex<Option<(Instant, u8)>>,
}

impl ProgressLog {
    const STEP_PERCENT: u8 = 10;
    const AT_LEAST_EVERY: Duration = Duration::from_secs(30);
    const AT_MOST_EVERY: Duration = Duration::from_secs(2);

    fn new(provisioned_bytes: u64) -> Self {
        Self {
            started: Instant::now(),
            provisioned_bytes,
            last: Mutex::new(None),
        }
    }

    fn observe(&self, percent: u8) {
        if let Some(line) = self.line_at(percent, Instant::now()) {
            info!(
                percent,
                copied_bytes = line.copied_bytes,
                provisioned_bytes = self.provisioned_bytes,
                rate_mib_s = line.rate_mib_s,
                eta_s = line.eta_s,
                "clone progress"
            );
        }
    }

    /// The line to log for `percent` at `now`, if one is due.
    fn line_at(&self, percent: u8, now: Instant) -> Option<ProgressLine> {
        let Ok(mut last) = self.last.lock() else {
            return None;
        };
        let due = match *last {
            None => percent > 0,
            Some((at, logged)) => {
                let since = now.duration_since(at);
                since >= Self::AT_MOST_EVERY
                    && (percent >= logged.saturating_add(Self::STEP_PERCENT)
                        || since >= Self::AT_LEAST_EVERY
                        || (percent == 100 && logged < 100))
            }
        };
        if !due {
            return None;
        }
        *last = Some((now, percent));
        let elapsed = now.duration_since(self.started).as_secs_f64().max(0.001);
        let copied_bytes = self.provisioned_bytes / 100 * u64::from(percent);
        let rate = copied_bytes as f64 / elapsed;
        let eta_s = (rate > 0.0 && percent < 100)
            .then(|| ((self.provisioned_bytes - copied_bytes) as f64 / rate).round() as u64);
        Some(ProgressLine {
            copied_bytes,
            rate_mib_s: (rate / (1024.0 * 1024.0) * 10.0).round() / 10.0,
            eta_s,
        })
    }
}

#[derive(Debug, PartialEq)]
struct ProgressLine {
    copied_bytes: u64,
    rate_mib_s: f64,
    eta_s: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 10 %, at least every 30 s, never more than once per 2 s, and the end always.
    #[test]
    fn progress_is_logged_at_a_bounded_cadence() {
        let log = ProgressLog::new(100 * 1024 * 1024);
        let start = log.started;
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(log.line_at(0, at(1)), None, "nothing done yet");
        let first = log.line_at(1, at(1)).unwrap();
        assert_eq!(first.copied_bytes, 1024 * 1024);
        assert_eq!(first.eta_s, Some(99));
        assert_eq!(log.line_at(5, at(2)), None, "less than 10 % more");
        assert_eq!(log.line_at(30, at(2)), None, "too soon after the last line");
        assert!(log.line_at(30, at(4)).is_some(), "10 % more, 2 s later");
        assert_eq!(log.line_at(31, at(20)), None);
        assert!(log.line_at(31, at(34)).is_some(), "30 s without a line");
        assert!(log.line_at(100, at(36)).unwrap().eta_s.is_none(), "the end");
        assert_eq!(log.line_at(100, at(60)), None, "the end once");
    }
}
