//! The ESXi clone executors as the copy uses them: connecting the configured method (VIB through
//! vCenter's esxcli, or SSH with the restricted key — either key line — after placing the
//! verified wrapper it runs) for a host, and [`JournaledExecutor`], which writes the journal
//! entries around starting and cleaning a clone task so a crash at any point leaves a record of
//! the task to abort and clean.

use std::sync::Mutex as SyncMutex;
use std::time::Duration;

use async_trait::async_trait;
use co_api::CloneMethod;
use co_esxi::protocol::{CloneStarted, TaskStatus};
use co_esxi::ssh::{SshExecutor, SshSettings};
use co_esxi::vib_executor::VibExecutor;
use co_esxi::vsphere::{DatacenterFiles, HostEsxcli};
use co_esxi::{CloneExecutor, EsxiError};
use co_vsphere::{Client, ManagedObjectReference};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::error::CopyError;
use crate::journal::{CleanupStep, Journal, JournalBackend, JournalEntry, JournalError};

/// The journal of one copy, shared by the phases.
pub type CopyJournal = Mutex<Journal<JournalBackend>>;

/// How to reach hosts over SSH.
#[derive(Debug, Clone)]
pub struct SshAccess {
    pub settings: SshSettings,
    /// Address to dial instead of the host's first management IP (the lab; tunnels).
    pub address_override: Option<String>,
}

/// Connects the configured clone method to a host.
#[derive(Debug, Clone)]
pub struct ExecutorFactory {
    pub vsphere: Client,
    pub method: CloneMethod,
    pub ssh: Option<SshAccess>,
}

impl ExecutorFactory {
    /// An executor on `host` for disks on `datastore` (the SSH key line routes by datastore).
    pub async fn connect(
        &self,
        host: &ManagedObjectReference,
        datastore: &str,
    ) -> Result<Box<dyn CloneExecutor>, CopyError> {
        let host_name = host.to_string();
        match self.method {
            CloneMethod::Vib => Ok(Box::new(VibExecutor::new(HostEsxcli::new(
                self.vsphere.clone(),
                host.clone(),
                host_name,
            )))),
            CloneMethod::Ssh => {
                let access = self.ssh.as_ref().ok_or_else(|| {
                    CopyError::Refused(
                        "the SSH clone method needs SSH_PRIVATE_KEY and SSH_PUBLIC_KEY (base64) from the provider's \
                         offload-ssh-keys secrets"
                            .into(),
                    )
                })?;
                let address = match &access.address_override {
                    Some(address) => address.clone(),
                    None => self
                        .vsphere
                        .host_management_ips(host)
                        .await
                        .map_err(CopyError::vsphere("reading the host's management IP"))?
                        .into_iter()
                        .next()
                        .ok_or_else(|| {
                            CopyError::Refused(format!(
                                "host {host_name} has no management IP to reach over SSH"
                            ))
                        })?,
                };
                let datacenter = self
                    .vsphere
                    .datacenter_of(host)
                    .await
                    .map_err(CopyError::vsphere("finding the host's datacenter"))?;
                let files = DatacenterFiles::new(self.vsphere.clone(), datacenter.path);
                let executor = SshExecutor::prepare(&address, datastore, &access.settings, &files)
                    .await
                    .map_err(CopyError::esxi(
                        &host_name,
                        "preparing SSH (wrapper script, connection, key line, version)",
                    ))?;
                Ok(Box::new(executor))
            }
        }
    }
}

/// Journals a clone task's life around an executor: `CloneRequested` before starting it,
/// `CloneStarted` with its id right after, and `CleanupDone` once it is cleaned. A journal write
/// that fails stops the operation before it reaches the host.
///
/// When the host's wrapper takes client-chosen task ids (1.1.0 and later), the id is chosen here
/// and journaled with the request, before the host hears of the clone: a run killed at any point
/// leaves the id of every clone it may have started, so the next run can abort and clean it
/// instead of starting a second clone onto the same LUN.
pub struct JournaledExecutor<'a> {
    inner: &'a dyn CloneExecutor,
    journal: &'a CopyJournal,
    host: String,
    started: SyncMutex<Option<String>>,
}

impl<'a> JournaledExecutor<'a> {
    pub fn new(inner: &'a dyn CloneExecutor, journal: &'a CopyJournal, host: &str) -> Self {
        Self {
            inner,
            journal,
            host: host.to_owned(),
            started: SyncMutex::new(None),
        }
    }

    /// The id of the task this executor started, if any.
    pub fn task_id(&self) -> Option<String> {
        self.started.lock().ok().and_then(|t| t.clone())
    }

    async fn record(&self, entry: JournalEntry) -> Result<(), EsxiError> {
        self.journal
            .lock()
            .await
            .record(entry)
            .await
            .map_err(journal_refusal)
    }
}

fn journal_refusal(error: JournalError) -> EsxiError {
    EsxiError::OperationFailed {
        operation: "journal",
        status: -1,
        message: format!(
            "not sent to the host because the copy journal could not be written: {error}"
        ),
    }
}

#[async_trait]
impl CloneExecutor for JournaledExecutor<'_> {
    async fn version(&self) -> Result<String, EsxiError> {
        self.inner.version().await
    }

    async fn accepts_client_task_id(&self) -> Result<bool, EsxiError> {
        self.inner.accepts_client_task_id().await
    }

    async fn start_clone(
        &self,
        source_vmdk: &str,
        target_device: &str,
        task_id: Option<&str>,
    ) -> Result<CloneStarted, EsxiError> {
        let task_id = match task_id {
            Some(id) => Some(id.to_owned()),
            None if self.inner.accepts_client_task_id().await? => {
                Some(uuid::Uuid::new_v4().to_string())
            }
            None => {
                info!(
                    host = %self.host,
                    "the host's wrapper is older than 1.1.0: the clone's task id is known only once \
                     the host answers; upgrade the vmkfstools-wrapper VIB so a crash can never \
                     leave an unnamed clone"
                );
                None
            }
        };
        self.record(JournalEntry::CloneRequested {
            host: self.host.clone(),
            device: target_device.to_owned(),
            task_id: task_id.clone(),
        })
        .await?;
        let started = self
            .inner
            .start_clone(source_vmdk, target_device, task_id.as_deref())
            .await?;
        if let Ok(mut slot) = self.started.lock() {
            *slot = Some(started.task_id.clone());
        }
        self.record(JournalEntry::CloneStarted {
            host: self.host.clone(),
            task_id: started.task_id.clone(),
        })
        .await?;
        Ok(started)
    }

    async fn task_status(&self, task_id: &str) -> Result<TaskStatus, EsxiError> {
        self.inner.task_status(task_id).await
    }

    async fn abort(&self, task_id: &str) -> Result<TaskStatus, EsxiError> {
        self.inner.abort(task_id).await
    }

    async fn clean(&self, task_id: &str) -> Result<(), EsxiError> {
        self.inner.clean(task_id).await?;
        self.record(JournalEntry::CleanupDone {
            step: CleanupStep::CleanTask {
                host: self.host.clone(),
                task_id: task_id.to_owned(),
            },
        })
        .await
    }
}

/// Aborts (if still running) and cleans a task an earlier run left, waiting a bounded time for
/// the abort to take effect so the clean is not refused.
pub async fn abort_and_clean(
    executor: &dyn CloneExecutor,
    task_id: &str,
    wait: Duration,
) -> Result<(), EsxiError> {
    match executor.task_status(task_id).await {
        Ok(status) if status.exit_code.is_none() => {
            info!(task_id, "aborting a clone task an earlier run left running");
            if let Err(error) = executor.abort(task_id).await {
                warn!(task_id, %error, "abort failed; trying to clean anyway");
            }
            let deadline = tokio::time::Instant::now() + wait;
            let mut pause = Duration::from_millis(50);
            while tokio::time::Instant::now() < deadline {
                match executor.task_status(task_id).await {
                    Ok(status) if status.exit_code.is_none() => {}
                    _ => break,
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
        Ok(_) => {}
        // The wrapper answers an unknown task id with a failed operation: already cleaned.
        Err(EsxiError::OperationFailed { message, .. }) => {
            info!(task_id, %message, "clone task no longer known to the host");
            return Ok(());
        }
        Err(error) => return Err(error),
    }
    executor.clean(task_id).await
}
