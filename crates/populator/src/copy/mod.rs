//! The copy state machine: one disk into one volume, then a complete cleanup, whatever happens.
//! [`CopyEngine::run`] reads top to bottom; each phase lives in its own file and works on the
//! run's context ([`Run`]: the job, the journal, the cancellation token, the phase clock and the
//! report), and phases are entered in one place ([`Run::enter`]):
//!
//! recover ([`recover`]: undo what an earlier, crashed run left) → resolve and plan ([`resolve`]:
//! VM, disk, array volume; array copy or XCOPY) → map and discover ([`map`]: initiator group,
//! mapping, rescan under the host lease, verify the device is the volume) → clone ([`clone`]: VIB
//! or SSH, progress streamed) or array copy ([`array_copy`]) → cleanup ([`finish`]).
//!
//! Every external change is journaled before it is made (see [`crate::journal`]), so cleanup — at
//! the end of this run or at the start of the next — is "undo what the journal lists", one path
//! for success, failure, SIGTERM and crash recovery alike.

mod array_copy;
mod clone;
mod finish;
mod map;
mod recover;
mod resolve;

use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use co_api::{CloneMethod, DatastorePath};
use co_esxi::PollSchedule;
use co_storage::{PersistentVolumeRef, StorageApi};
use co_vsphere::Client;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cleanup::Undo;
use crate::discover::DiscoverySchedule;
use crate::error::CopyError;
use crate::executors::{CopyJournal, ExecutorFactory};
use crate::journal::JournalEntry;
use crate::lease::HostLease;
use crate::metrics::{CloneMethodLabel, PopulatorMetrics, StorageProtocolLabel};
use crate::plan::CopyPath;

/// A phase of the copy, as logged and exported in the phase metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Recover,
    Resolve,
    Plan,
    Map,
    /// Entered once the host lease is held: rescans run only in this phase.
    Discover,
    Verify,
    Clone,
    ArrayCopy,
    Cleanup,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Recover => "recover",
            Phase::Resolve => "resolve",
            Phase::Plan => "plan",
            Phase::Map => "map",
            Phase::Discover => "discover",
            Phase::Verify => "verify",
            Phase::Clone => "clone",
            Phase::ArrayCopy => "array-copy",
            Phase::Cleanup => "cleanup",
        }
    }
}

/// Sees every phase change (tests use it to stop a run in a given phase).
pub type PhaseObserver = Arc<dyn Fn(Phase) + Send + Sync>;

/// What to copy where.
#[derive(Debug, Clone)]
pub struct CopyJob {
    pub vmdk: DatastorePath,
    /// VM id, name or inventory path; found from the disk when absent.
    pub vm_id: Option<String>,
    pub pv: PersistentVolumeRef,
    pub clone_method: CloneMethod,
    pub migration_host: Option<String>,
    pub disable_vvol_method: bool,
    pub disable_rdm_method: bool,
    /// `storage_vendor` metric label (`ontap`, …).
    pub storage_vendor: String,
}

/// Deadlines and cadences.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub discovery: DiscoverySchedule,
    pub poll: PollSchedule,
    /// Budget of the cleanup at the end of a run (inside the pod's termination grace period).
    pub cleanup_budget: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            discovery: DiscoverySchedule::default(),
            poll: PollSchedule::default(),
            cleanup_budget: Duration::from_secs(25),
        }
    }
}

/// The connected peers a copy works with.
pub struct CopyEngine {
    pub vsphere: Client,
    pub storage: Arc<dyn StorageApi>,
    pub executors: ExecutorFactory,
    /// Host lease around discovery; `None` without Kubernetes.
    pub lease: Option<HostLease>,
    pub metrics: PopulatorMetrics,
    pub timing: Timing,
    pub observer: Option<PhaseObserver>,
}

/// What a run reports for the completion metric, filled as far as the run got.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyReport {
    pub clone_method: CloneMethodLabel,
    pub storage_protocol: StorageProtocolLabel,
    pub xcopy_used: bool,
    pub provisioned_bytes: u64,
    pub allocated_bytes: u64,
    /// Time spent in each phase, in order.
    pub phases: Vec<(Phase, Duration)>,
}

/// The end of a run.
#[derive(Debug)]
pub struct CopyOutcome {
    pub result: Result<(), CopyError>,
    pub report: CopyReport,
    /// Deadline of the host hygiene still to run ([`CopyEngine::finish_host_hygiene`]); `None`
    /// when the cleanup was withheld (nothing of this run's to undo).
    pub host_hygiene_by: Option<Instant>,
}

struct PhaseClock {
    current: Option<(Phase, Instant)>,
    done: Vec<(Phase, Duration)>,
}

/// One run of the copy: what every phase reads, and what they report.
struct Run<'a> {
    engine: &'a CopyEngine,
    job: &'a CopyJob,
    journal: &'a CopyJournal,
    cancel: &'a CancellationToken,
    undo: Undo<'a>,
    clock: SyncMutex<PhaseClock>,
    report: SyncMutex<CopyReport>,
}

impl CopyEngine {
    /// Copies `job`, then undoes every journaled change but the host hygiene, which the caller
    /// runs after reporting completion ([`CopyEngine::finish_host_hygiene`]). Cancelling
    /// `cancel` aborts the clone and still runs the full cleanup (with its own budget).
    pub async fn run(
        &self,
        job: &CopyJob,
        journal: &CopyJournal,
        cancel: &CancellationToken,
    ) -> CopyOutcome {
        let run = Run::new(self, job, journal, cancel);
        run.enter(Phase::Recover);
        let mut result = run.recover().await;
        if result.is_ok() {
            result = run.copy().await;
        }
        run.enter(Phase::Cleanup);
        run.finish(result).await
    }

    /// What cleanup needs to undo this engine's changes for `job`.
    fn undo<'a>(&'a self, job: &'a CopyJob) -> Undo<'a> {
        Undo {
            vsphere: &self.vsphere,
            storage: self.storage.as_ref(),
            executors: &self.executors,
            lease: self.lease.as_ref(),
            datastore: job.vmdk.datastore(),
        }
    }
}

impl<'a> Run<'a> {
    fn new(
        engine: &'a CopyEngine,
        job: &'a CopyJob,
        journal: &'a CopyJournal,
        cancel: &'a CancellationToken,
    ) -> Self {
        Run {
            engine,
            job,
            journal,
            cancel,
            undo: engine.undo(job),
            clock: SyncMutex::new(PhaseClock {
                current: None,
                done: Vec::new(),
            }),
            report: SyncMutex::new(CopyReport {
                clone_method: CloneMethodLabel::from(job.clone_method),
                storage_protocol: StorageProtocolLabel::Unknown,
                xcopy_used: false,
                provisioned_bytes: 0,
                allocated_bytes: 0,
                phases: Vec::new(),
            }),
        }
    }

    /// The copy after recovery: resolve, plan, then one of the two paths.
    async fn copy(&self) -> Result<(), CopyError> {
        self.step(Phase::Resolve)?;
        let source = self.resolve().await?;
        self.step(Phase::Plan)?;
        match self.plan(&source) {
            CopyPath::ArrayCopy(array_source) => {
                self.step(Phase::ArrayCopy)?;
                self.array_copy(&array_source, &source.volume).await
            }
            CopyPath::Xcopy(method) => {
                self.step(Phase::Map)?;
                self.xcopy(method, &source).await
            }
        }
    }

    /// Enters `phase` unless the run was cancelled.
    fn step(&self, phase: Phase) -> Result<(), CopyError> {
        if self.cancel.is_cancelled() {
            return Err(CopyError::Cancelled);
        }
        self.enter(phase);
        Ok(())
    }

    /// The one place phases are entered: timed, logged, exported, observed.
    fn enter(&self, phase: Phase) {
        if let Ok(mut clock) = self.clock.lock() {
            let now = Instant::now();
            if let Some((previous, since)) = clock.current.replace((phase, now)) {
                let took = now - since;
                info!(
                    phase = previous.as_str(),
                    duration_ms = took.as_millis() as u64,
                    "phase done"
                );
                clock.done.push((previous, took));
            }
        }
        info!(phase = phase.as_str(), "phase started");
        self.engine.metrics.set_phase(phase.as_str());
        if let Some(observer) = &self.engine.observer {
            observer(phase);
        }
    }

    /// Updates the report (a poisoned lock only loses report details, never the copy).
    fn report(&self, update: impl FnOnce(&mut CopyReport)) {
        if let Ok(mut report) = self.report.lock() {
            update(&mut report);
        }
    }

    fn clone_method_label(&self) -> CloneMethodLabel {
        self.report
            .lock()
            .map_or(CloneMethodLabel::from(self.job.clone_method), |r| {
                r.clone_method
            })
    }

    async fn record(&self, entry: JournalEntry) -> Result<(), CopyError> {
        self.journal
            .lock()
            .await
            .record(entry)
            .await
            .map_err(CopyError::from)
    }
}
