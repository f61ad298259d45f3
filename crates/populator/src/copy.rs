//! The copy state machine: one disk into one volume, then a complete cleanup, whatever happens.
//!
//! Phases: recover (undo what an earlier, crashed run left) → resolve (VM, disk, array volume) →
//! plan (array copy or XCOPY) → map (initiator group, mapping) → discover (rescan under the host
//! lease) → verify (the device is the volume) → clone (VIB or SSH, progress streamed) → cleanup.
//! Every external change is journaled before it is made (see [`crate::journal`]), so cleanup — at
//! the end of this run or at the start of the next — is "undo what the journal lists", one path
//! for success, failure, SIGTERM and crash recovery alike.

use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use co_api::{CloneMethod, DatastorePath};
use co_esxi::{CloneExecutor, CloneTask, PollSchedule};
use co_storage::{
    ArrayCopySource, EsxiHostRef, Initiator, PersistentVolumeRef, StorageApi, Volume,
};
use co_vsphere::inventory::SourceDisk as VsphereDisk;
use co_vsphere::{Client, ManagedObjectReference};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cleanup::Undo;
use crate::discover::{DiscoverySchedule, HostStorage, discover_device};
use crate::error::{CleanupFailures, CopyError};
use crate::executors::{CopyJournal, ExecutorFactory, JournaledExecutor};
use crate::journal::{CleanupStep, CloneRecord, JournalEntry, Outcome};
use crate::lease::{HostId, HostLease};
use crate::metrics::{CloneMethodLabel, PopulatorMetrics, StorageProtocolLabel};
use crate::plan::{CopyPath, PlanInput, check_capacity, choose_path};
use crate::verify::{Expected, verify_device};

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
        let clock = SyncMutex::new(PhaseClock {
            current: None,
            done: Vec::new(),
        });
        let mut report = CopyReport {
            clone_method: match job.clone_method {
                CloneMethod::Vib => CloneMethodLabel::Vib,
                CloneMethod::Ssh => CloneMethodLabel::Ssh,
            },
            storage_protocol: StorageProtocolLabel::Unknown,
            xcopy_used: false,
            provisioned_bytes: 0,
            allocated_bytes: 0,
            phases: Vec::new(),
        };
        let undo = self.undo(job);

        self.enter(&clock, Phase::Recover);
        let mut result = self.recover(&undo, journal).await;
        if result.is_ok() {
            result = self
                .forward(job, journal, cancel, &clock, &mut report)
                .await;
        }
        self.enter(&clock, Phase::Cleanup);
        let (failures, host_hygiene_by) =
            if matches!(result, Err(CopyError::UnnamedCloneRunning { .. })) {
                // Everything outstanding is the earlier run's and must stay until its clone ended:
                // unmapping the LUN under a writing clone is not a cleanup. This run changed nothing.
                info!("cleanup skipped: the earlier run's changes stay until its clone has ended");
                (Vec::new(), None)
            } else {
                let deadline = Instant::now() + self.timing.cleanup_budget;
                let failures = undo.release(journal, self.timing.cleanup_budget).await;
                (failures, Some(deadline))
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
        if let Err(error) = journal
            .lock()
            .await
            .record(JournalEntry::RunFinished { outcome })
            .await
        {
            warn!(%error, "could not journal the end of the run");
        }
        if let Ok(mut clock) = clock.lock() {
            if let Some((phase, since)) = clock.current.take() {
                clock.done.push((phase, since.elapsed()));
            }
            report.phases = std::mem::take(&mut clock.done);
        }
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

    /// Runs the host hygiene [`CopyEngine::run`] leaves outstanding (the rescan-delete) by
    /// `deadline` ([`CopyOutcome::host_hygiene_by`]). Its failures are logged, never change the outcome: the volume is
    /// released already and a dead path entry goes with the host's next rescan.
    pub async fn finish_host_hygiene(
        &self,
        job: &CopyJob,
        journal: &CopyJournal,
        deadline: Instant,
    ) {
        let undo = self.undo(job);
        let started = Instant::now();
        let failures = CleanupFailures(undo.host_hygiene(journal, deadline).await);
        let duration_ms = started.elapsed().as_millis() as u64;
        if failures.0.is_empty() {
            info!(duration_ms, "host cleanup after completion done");
        } else {
            warn!(duration_ms, %failures, "host cleanup after completion incomplete; the journal keeps it");
        }
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

    fn enter(&self, clock: &SyncMutex<PhaseClock>, phase: Phase) {
        if let Ok(mut clock) = clock.lock() {
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
        self.metrics.set_phase(phase.as_str());
        if let Some(observer) = &self.observer {
            observer(phase);
        }
    }

    /// Undoes what earlier runs left, before anything new is started (never a second clone onto
    /// a LUN an old clone may still write to: its task is aborted and cleaned first).
    async fn recover(&self, undo: &Undo<'_>, journal: &CopyJournal) -> Result<(), CopyError> {
        let recovery = journal.lock().await.recovery();
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
            self.detach_under_unnamed_clone(undo, journal, clone)
                .await?;
        }
        info!(
            previous_run = ?recovery.previous_run,
            outstanding = recovery.outstanding.len(),
            "undoing what an earlier run left"
        );
        let failures = undo.outstanding(journal, self.timing.cleanup_budget).await;
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
    async fn detach_under_unnamed_clone(
        &self,
        undo: &Undo<'_>,
        journal: &CopyJournal,
        clone: &CloneRecord,
    ) -> Result<(), CopyError> {
        let Some(device) = &clone.device else {
            return Ok(());
        };
        // The request names the device path the clone wrote to; the discovery, its bare id.
        let naa = device.rsplit('/').next().unwrap_or(device);
        let step = CleanupStep::RemoveDevice {
            host: clone.host.clone(),
            naa: naa.to_owned(),
        };
        if !journal.lock().await.recovery().outstanding.contains(&step) {
            return Ok(());
        }
        let deadline = Instant::now() + self.timing.cleanup_budget;
        undo.step(journal, &step, deadline)
            .await
            .map_err(|error| CopyError::UnnamedCloneRunning {
                host: clone.host.clone(),
                device: naa.to_owned(),
                reason: error.to_string(),
            })
    }

    async fn forward(
        &self,
        job: &CopyJob,
        journal: &CopyJournal,
        cancel: &CancellationToken,
        clock: &SyncMutex<PhaseClock>,
        report: &mut CopyReport,
    ) -> Result<(), CopyError> {
        let step = |phase| {
            if cancel.is_cancelled() {
                return Err(CopyError::Cancelled);
            }
            self.enter(clock, phase);
            Ok(())
        };

        step(Phase::Resolve)?;
        // The vSphere side and the array side are independent reads: ask both at once.
        let source = async {
            let vm = match &job.vm_id {
                Some(id) => self.vsphere.find_vm(id).await,
                None => self.vsphere.find_vm_by_disk(&job.vmdk).await,
            }
            .map_err(CopyError::vsphere("finding the source VM"))?;
            let disk = self
                .vsphere
                .source_disk(&vm, &job.vmdk)
                .await
                .map_err(CopyError::vsphere("reading the source disk"))?;
            Ok::<_, CopyError>((vm, disk))
        };
        let target = async {
            self.storage
                .resolve_volume(&job.pv)
                .await
                .map_err(CopyError::storage("resolving the PV to an array volume"))
        };
        let ((vm, disk), volume) = tokio::try_join!(source, target)?;
        report.provisioned_bytes = disk.provisioned_bytes;
        report.allocated_bytes = disk.allocated_bytes.unwrap_or(0);
        check_capacity(disk.provisioned_bytes, volume.size_bytes, &volume.name)?;

        step(Phase::Plan)?;
        let array_copy = self.storage.array_copy();
        let supports = |source: &ArrayCopySource| array_copy.is_some_and(|a| a.supports(source));
        let path = choose_path(&PlanInput {
            disk: &disk.kind,
            clone_method: job.clone_method,
            disable_vvol_method: job.disable_vvol_method,
            disable_rdm_method: job.disable_rdm_method,
            array_copy: array_copy.map(|_| &supports as &dyn Fn(&ArrayCopySource) -> bool),
        });
        report.clone_method = path.metric_label();
        info!(disk_kind = ?disk.kind, path = ?path, provisioned_bytes = disk.provisioned_bytes, volume = %volume.name, "copy path chosen");

        match path {
            CopyPath::ArrayCopy(source) => {
                step(Phase::ArrayCopy)?;
                self.array_copy(job, &source, &volume, journal, cancel, report)
                    .await
            }
            CopyPath::Xcopy(method) => {
                step(Phase::Map)?;
                self.xcopy(
                    job, method, &vm, &disk, &volume, journal, cancel, clock, report,
                )
                .await
            }
        }
    }

    async fn array_copy(
        &self,
        job: &CopyJob,
        source: &ArrayCopySource,
        volume: &Volume,
        journal: &CopyJournal,
        cancel: &CancellationToken,
        report: &mut CopyReport,
    ) -> Result<(), CopyError> {
        let array = self
            .storage
            .array_copy()
            .ok_or_else(|| CopyError::Refused("the array lost its copy capability".into()))?;
        self.metrics
            .set_xcopy_used(&job.storage_vendor, report.clone_method, false);
        // The session's objects are named before they exist, so the journal can list them first.
        let session = array.session(source, volume);
        record(
            journal,
            JournalEntry::ChangeMade {
                undo: CleanupStep::EndArrayCopy {
                    session: session.clone(),
                },
            },
        )
        .await?;
        let metrics = self.metrics.clone();
        let progress = move |percent: u8| metrics.set_progress(percent);
        tokio::select! {
            biased;
            () = cancel.cancelled() => Err(CopyError::Cancelled),
            copied = array.copy(&session, &progress) => copied.map_err(CopyError::storage("array-side copy")),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn xcopy(
        &self,
        job: &CopyJob,
        method: CloneMethod,
        vm: &ManagedObjectReference,
        disk: &VsphereDisk,
        volume: &Volume,
        journal: &CopyJournal,
        cancel: &CancellationToken,
        clock: &SyncMutex<PhaseClock>,
        report: &mut CopyReport,
    ) -> Result<(), CopyError> {
        let host = match &job.migration_host {
            Some(id) => self.vsphere.find_host(id).await,
            None => self.vsphere.vm_host(vm).await,
        }
        .map_err(CopyError::vsphere("finding the ESXi host"))?;
        let host_key = host.to_string();
        let host_id = HostId::from_managed_object(&host_key)?;
        let host_storage = HostStorage::new(self.vsphere.clone(), host.clone());

        // The clone method connects (SSH: wrapper placed, session opened, version checked) while
        // the array maps the volume and the host discovers it: neither waits for the other, and
        // whichever fails first stops the other before anything more is changed.
        let abandon = cancel.child_token();
        let executor = async {
            let connected = tokio::select! {
                biased;
                () = abandon.cancelled() => Err(CopyError::Cancelled),
                connected = self.connect_executor(&host, job, method) => connected,
            };
            if connected.is_err() {
                abandon.cancel();
            }
            connected
        };
        let mapped_and_verified = async {
            let mapped = self
                .map_and_discover(
                    job,
                    &host,
                    &host_id,
                    &host_storage,
                    disk,
                    volume,
                    journal,
                    &abandon,
                    clock,
                    report,
                )
                .await;
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
                return Err(if cancel.is_cancelled() {
                    CopyError::Cancelled
                } else {
                    error
                });
            }
            (Err(error), _) | (_, Err(error)) => return Err(error),
        };

        // Clone.
        if cancel.is_cancelled() {
            return Err(CopyError::Cancelled);
        }
        self.enter(clock, Phase::Clone);
        let journaled = JournaledExecutor::new(executor.as_ref(), journal, &host_key);
        let metrics = self.metrics.clone();
        let vendor = job.storage_vendor.clone();
        let label = report.clone_method;
        let result = CloneTask::new(&journaled)
            .with_schedule(self.timing.poll)
            .run(
                &job.vmdk.esxi_path(),
                &volume.naa.esxi_device_path(),
                cancel,
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
            record(journal, JournalEntry::CloneFinished { task_id, outcome }).await?;
        }
        let outcome = result.map_err(CopyError::esxi(&host_key, "clone"))?;
        report.xcopy_used = outcome.xcopy_used.unwrap_or(false);
        self.metrics.set_progress(100);
        Ok(())
    }

    /// The clone method's executor on `host`, with the VIB version published (advisory, as
    /// upstream: an older wrapper still clones).
    async fn connect_executor(
        &self,
        host: &ManagedObjectReference,
        job: &CopyJob,
        method: CloneMethod,
    ) -> Result<Box<dyn CloneExecutor>, CopyError> {
        let executor = self.executors.connect(host, job.vmdk.datastore()).await?;
        if method == CloneMethod::Vib {
            let version = executor.version().await.ok();
            self.metrics.set_vib_version(version.as_deref());
        }
        Ok(executor)
    }

    /// Map (journaled first), discover under the host lease, and verify that the device is the
    /// volume: nothing is written unless this succeeds.
    #[allow(clippy::too_many_arguments)]
    async fn map_and_discover(
        &self,
        job: &CopyJob,
        host: &ManagedObjectReference,
        host_id: &HostId,
        host_storage: &HostStorage,
        disk: &VsphereDisk,
        volume: &Volume,
        journal: &CopyJournal,
        cancel: &CancellationToken,
        clock: &SyncMutex<PhaseClock>,
        report: &mut CopyReport,
    ) -> Result<(), CopyError> {
        let host_key = host.to_string();
        // Reads that do not depend on each other run at once: the host's SAN side (vSphere), the
        // volume's current mappings (array) and esxcli's command metadata (so each esxcli later
        // costs one round trip).
        let san = async {
            let datastore = self
                .vsphere
                .datastore_device(host, job.vmdk.datastore())
                .await
                .map_err(CopyError::vsphere("reading the source datastore"))?;
            let adapters = self
                .vsphere
                .source_adapters(host, &datastore, self.storage.requires_sdc())
                .await
                .map_err(CopyError::vsphere("finding the host's SAN adapters"))?;
            let chosen: Vec<&str> = adapters
                .adapters
                .iter()
                .map(|a| a.device.as_str())
                .collect();
            match &adapters.device {
                Some(device) if !adapters.fallback => {
                    info!(datastore = %datastore.name, %device, adapters = ?chosen, "adapters with active paths to the source datastore's device chosen");
                }
                Some(device) => {
                    info!(datastore = %datastore.name, %device, adapters = ?chosen, "no active path to the source datastore's device goes through a SAN adapter; the host's first FC, else iSCSI, adapter chosen");
                }
                None => {
                    info!(datastore = %datastore.name, info_type = %datastore.info_type, adapters = ?chosen, "the source datastore has no SAN device (NFS): the host's SAN adapter chosen (PowerFlex SDC if the array needs it, else first FC, else iSCSI); the clone will be a host copy (no XCOPY from NFS to a SAN LUN)");
                }
            }
            Ok::<_, CopyError>((datastore, adapters))
        };
        let originals = async {
            self.storage
                .current_mappings(volume)
                .await
                .map_err(CopyError::storage("reading the volume's current mappings"))
        };
        let ((datastore, adapters), originals, ()) =
            tokio::try_join!(san, originals, host_storage.prepare())?;
        report.storage_protocol = adapters
            .adapters
            .iter()
            .find_map(|a| match a.protocol() {
                "iscsi" => Some(StorageProtocolLabel::Iscsi),
                "fc" => Some(StorageProtocolLabel::Fc),
                _ => None,
            })
            .unwrap_or(StorageProtocolLabel::Unknown);
        let esx = EsxiHostRef {
            host_id: host_id.as_str().to_owned(),
            initiators: adapters
                .adapters
                .iter()
                .map(|a| Initiator::from_adapter_id(&a.id))
                .collect(),
        };
        let adapter_devices: Vec<String> =
            adapters.adapters.iter().map(|a| a.device.clone()).collect();

        // Map: every change is journaled first.
        let pending_group = CleanupStep::ReleaseGroup {
            host: esx.clone(),
            group: None,
        };
        record(
            journal,
            JournalEntry::ChangeMade {
                undo: pending_group.clone(),
            },
        )
        .await?;
        let group = self
            .storage
            .ensure_initiator_group(&esx)
            .await
            .map_err(CopyError::storage("ensuring the host's initiator group"))?;
        // What the mapping will change, in one durable write before it is made. The group entry
        // that knows the array's objects supersedes the pending one.
        let change = |undo| JournalEntry::ChangeMade { undo };
        let entries = vec![
            change(CleanupStep::ReleaseGroup {
                host: esx.clone(),
                group: Some(group.clone()),
            }),
            JournalEntry::CleanupDone {
                step: pending_group,
            },
            change(CleanupStep::RestoreMappings {
                volume: volume.clone(),
                groups: originals,
            }),
            change(CleanupStep::RescanDelete {
                host: host_key.clone(),
                adapters: adapter_devices.clone(),
            }),
            change(CleanupStep::UnmapVolume {
                volume: volume.clone(),
                group: group.clone(),
            }),
        ];
        journal
            .lock()
            .await
            .record_all(entries)
            .await
            .map_err(CopyError::from)?;
        if cancel.is_cancelled() {
            return Err(CopyError::Cancelled);
        }
        let mapping = self
            .storage
            .map(volume, &group)
            .await
            .map_err(CopyError::storage("mapping the volume to the host"))?;
        if mapping.naa != volume.naa {
            return Err(CopyError::WrongDevice {
                host: host_key,
                device: mapping.naa.to_string(),
                reason: format!(
                    "the array mapped it for volume {} whose device is {}",
                    volume.name, volume.naa
                ),
            });
        }

        // Discover, under the host lease.
        let naa = volume.naa.as_str();
        record(
            journal,
            JournalEntry::ChangeMade {
                undo: CleanupStep::RemoveDevice {
                    host: host_key.clone(),
                    naa: naa.to_owned(),
                },
            },
        )
        .await?;
        let schedule = self.timing.discovery;
        let discover = |token: CancellationToken| {
            let adapter_devices = &adapter_devices;
            async move {
                self.enter(clock, Phase::Discover);
                discover_device(host_storage, naa, adapter_devices, schedule, &token).await
            }
        };
        let device = match &self.lease {
            Some(lease) => lease.with_slot(host_id, cancel, discover).await??,
            None => discover(cancel.clone()).await?,
        };
        if cancel.is_cancelled() {
            return Err(CopyError::Cancelled);
        }

        // Verify: nothing is written unless the device is provably the volume. A datastore
        // without a SAN device (NFS) has no extents the target could be.
        self.enter(clock, Phase::Verify);
        verify_device(
            Expected {
                volume,
                source_bytes: disk.provisioned_bytes,
                datastore_devices: &datastore.extents,
            },
            &device,
        )
        .map_err(|reason| CopyError::WrongDevice {
            host: host_key.clone(),
            device: device.naa.clone(),
            reason,
        })
    }
}

async fn record(journal: &CopyJournal, entry: JournalEntry) -> Result<(), CopyError> {
    journal
        .lock()
        .await
        .record(entry)
        .await
        .map_err(CopyError::from)
}
