//! `copy-offload populate` from a validated configuration to an exit code: connect the peers
//! (vCenter, the array, Kubernetes when present), serve metrics, load the journal, run the copy
//! with SIGTERM/SIGINT handling, report completion for the controller's last scrape.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use co_api::CloneMethod;
use co_esxi::ssh::{HostKeyPolicy, SshSettings};
use co_storage::StorageApi;
use co_storage::http::RequestObserver;
use co_vsphere::{Client, TlsTrust};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::args::{PopulateConfig, TargetVolume};
use crate::copy::{CopyEngine, CopyJob, CopyReport, PhaseObserver, Timing};
use crate::error::CopyError;
use crate::executors::{CopyJournal, ExecutorFactory, SshAccess};
use crate::exit::ExitCode;
use crate::host_keys::{HOST_KEYS_CONFIG_MAP, KubeHostKeyStore};
use crate::journal::{FileJournalStore, Journal, JournalBackend, KubeJournalStore};
use crate::lease::{self, HostLease};
use crate::metrics::{
    CopyCompletion, CopyResult, FINAL_SCRAPE_WAIT, MetricsEndpoint, PopulatorMetrics,
    StorageArrayInfo,
};
use crate::resolve::resolve_target;

/// Knobs beyond the upstream flags: for the lab, tests and benchmarks (defaults suit a pod).
#[derive(Clone)]
pub struct RunOptions {
    /// Cancels the run as SIGTERM would.
    pub cancel: CancellationToken,
    /// Install the SIGTERM/SIGINT handler.
    pub handle_signals: bool,
    /// vCenter trust instead of the one derived from `GOVMOMI_INSECURE`/`cacert`.
    pub vsphere_trust: Option<TlsTrust>,
    /// Extra CA (PEM) to trust for the array.
    pub storage_ca_pem: Option<String>,
    /// SSH address to dial instead of the host's management IP, and port.
    pub ssh_address: Option<String>,
    pub ssh_port: Option<u16>,
    /// SSH host key trust instead of the configured one (see [`host_key_policy`]).
    pub ssh_host_key: Option<HostKeyPolicy>,
    /// Journal file in Kubernetes-less mode; default derived from the volume handle.
    pub journal_path: Option<PathBuf>,
    /// Kubernetes client to use instead of building one from the configuration.
    pub kube_client: Option<kube::Client>,
    /// Lease slots per host (upstream: 2).
    pub lease_slots: u32,
    pub timing: Timing,
    /// How long to wait for the controller's scrape of the completion metric.
    pub final_scrape_wait: Duration,
    pub observer: Option<PhaseObserver>,
    /// Sees every storage-array HTTP request (round-trip counting in benchmarks).
    pub storage_observer: Option<Arc<dyn RequestObserver>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            cancel: CancellationToken::new(),
            handle_signals: true,
            vsphere_trust: None,
            storage_ca_pem: None,
            ssh_address: None,
            ssh_port: None,
            ssh_host_key: None,
            journal_path: None,
            kube_client: None,
            lease_slots: lease::DEFAULT_SLOTS,
            timing: Timing::default(),
            final_scrape_wait: FINAL_SCRAPE_WAIT,
            observer: None,
            storage_observer: None,
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct RunSummary {
    pub exit_code: ExitCode,
    pub error: Option<CopyError>,
    pub report: Option<CopyReport>,
    /// Where metrics were served.
    pub metrics_addr: Option<SocketAddr>,
    /// SOAP requests sent to vCenter (login and logout included).
    pub soap_round_trips: u64,
    /// When the completion metric was set: the volume was released by then; only the host's
    /// rescan-delete and the wait for the final scrape follow.
    pub completion_reported_at: std::time::Instant,
    /// What this run undid, in order: its own changes and any an earlier run left.
    pub cleanup: Vec<crate::journal::CleanupStep>,
}

/// Runs `copy-offload populate` and returns its exit code (the CLI's entry point).
pub async fn run(config: PopulateConfig) -> ExitCode {
    run_with(config, RunOptions::default()).await.exit_code
}

/// [`run`] with explicit options.
pub async fn run_with(config: PopulateConfig, options: RunOptions) -> RunSummary {
    let started = Instant::now();
    let _ = rustls::crypto::ring::default_provider().install_default();
    for warning in &config.warnings {
        warn!(%warning, "argument accepted, but check it");
    }
    let cancel = options.cancel.clone();
    let signals = if options.handle_signals {
        match crate::signals::cancel_on_signals(cancel.clone()) {
            Ok(task) => Some(task),
            Err(e) => {
                error!(error = %e, "cannot install the SIGTERM handler");
                return summary(ExitCode::Internal, None, None, None);
            }
        }
    } else {
        None
    };

    let metrics = PopulatorMetrics::new(config.owner_uid.clone().unwrap_or_default());
    let endpoint = match MetricsEndpoint::serve(config.metrics.addr, metrics.clone()) {
        Ok(endpoint) => endpoint,
        Err(e) => {
            error!(error = %e, "cannot serve metrics");
            return summary(ExitCode::Permanent, None, None, None);
        }
    };
    let metrics_addr = endpoint.local_addr();
    let vendor = config.storage.product().as_str().to_owned();

    let (copied, prepared) = match prepare(&config, &options, &metrics).await {
        Ok(copy) => {
            // The array's identity is for metrics only: read it alongside the copy.
            let (outcome, ()) = tokio::join!(
                copy.engine.run(&copy.job, &copy.journal, &cancel),
                publish_array_info(copy.engine.storage.as_ref(), &config, &metrics)
            );
            (Ok(outcome), Some(copy))
        }
        Err(error) => (Err(error), None),
    };
    let (result, report, host_hygiene_by) = match copied {
        Ok(outcome) => (
            outcome.result,
            Some(outcome.report),
            outcome.host_hygiene_by,
        ),
        Err(error) => (Err(error), None, None),
    };
    let succeeded = result.is_ok();

    let completion = CopyCompletion {
        result: if succeeded {
            CopyResult::Success
        } else {
            CopyResult::Failure
        },
        storage_vendor: vendor,
        clone_method: report.as_ref().map_or(
            match config.esxi.clone_method {
                CloneMethod::Vib => crate::metrics::CloneMethodLabel::Vib,
                CloneMethod::Ssh => crate::metrics::CloneMethodLabel::Ssh,
            },
            |r| r.clone_method,
        ),
        storage_protocol: report
            .as_ref()
            .map_or(crate::metrics::StorageProtocolLabel::Unknown, |r| {
                r.storage_protocol
            }),
        xcopy_used: report.as_ref().is_some_and(|r| r.xcopy_used),
        duration: started.elapsed(),
        provisioned_bytes: report.as_ref().map_or(0, |r| r.provisioned_bytes),
        datastore_allocated_bytes: report.as_ref().map_or(0, |r| r.allocated_bytes),
    };
    metrics.record_completion(&completion);
    let completion_reported_at = std::time::Instant::now();
    let exit_code = match &result {
        Ok(()) => ExitCode::Success,
        Err(error) => error.exit_code(),
    };
    match &result {
        Ok(()) => info!(
            duration_ms = completion.duration.as_millis() as u64,
            "copy-offload finished, waiting for metrics scrape"
        ),
        Err(error) => {
            error!(%error, exit_code = exit_code.code(), "copy-offload failed, waiting for metrics scrape")
        }
    }
    // The volume is released: the rescan-delete only tidies the host, so it overlaps the wait
    // for the controller's last scrape instead of delaying the completion report.
    let host_cleanup = async {
        if let Some(copy) = &prepared {
            if let Some(deadline) = host_hygiene_by {
                copy.engine
                    .finish_host_hygiene(&copy.job, &copy.journal, deadline)
                    .await;
            }
            // Neither session is needed any more: end both at once.
            let (vsphere, storage) =
                tokio::join!(copy.engine.vsphere.logout(), copy.engine.storage.close());
            if let Err(error) = vsphere {
                warn!(%error, "vSphere logout failed; the session expires on its own");
            }
            if let Err(error) = storage {
                warn!(%error, "storage array logout failed; the session expires on its own");
            }
        }
    };
    tokio::join!(
        host_cleanup,
        endpoint.await_final_scrape(options.final_scrape_wait)
    );
    endpoint.shutdown().await;
    if let Some(task) = signals {
        task.abort();
    }
    let cleanup = match &prepared {
        Some(copy) => copy.journal.lock().await.undone_by_this_run().to_vec(),
        None => Vec::new(),
    };
    RunSummary {
        cleanup,
        exit_code,
        error: result.err(),
        report,
        metrics_addr: Some(metrics_addr),
        soap_round_trips: prepared.map_or(0, |copy| copy.engine.vsphere.round_trips()),
        completion_reported_at,
    }
}

fn summary(
    exit_code: ExitCode,
    error: Option<CopyError>,
    report: Option<CopyReport>,
    metrics_addr: Option<SocketAddr>,
) -> RunSummary {
    RunSummary {
        exit_code,
        error,
        report,
        metrics_addr,
        soap_round_trips: 0,
        completion_reported_at: std::time::Instant::now(),
        cleanup: Vec::new(),
    }
}

async fn publish_array_info(
    storage: &dyn StorageApi,
    config: &PopulateConfig,
    metrics: &PopulatorMetrics,
) {
    match storage.array_info().await {
        Ok(info) => metrics.set_storage_array_info(
            config.storage.product().as_str(),
            &StorageArrayInfo {
                vendor: info.vendor,
                product: info.product,
                model: info.model,
                version: info.version,
            },
        ),
        Err(error) => warn!(%error, "could not read the array's identity (metrics only)"),
    }
}

/// Everything a copy needs, connected.
struct PreparedCopy {
    engine: CopyEngine,
    job: CopyJob,
    journal: CopyJournal,
}

/// Resolves the target, connects the array and vCenter (at once: neither needs the other) and
/// loads the journal.
async fn prepare(
    config: &PopulateConfig,
    options: &RunOptions,
    metrics: &PopulatorMetrics,
) -> Result<PreparedCopy, CopyError> {
    let kube = kube_client(config, options).await?;
    let pv = resolve_target(&config.target, kube.as_ref()).await?;
    info!(pv = %pv.name, volume_handle = %pv.volume_handle, "target volume resolved");

    let journal = async {
        let backend = journal_backend(config, options, kube.as_ref(), &pv.volume_handle);
        Journal::load(backend)
            .await
            .map(|(journal, _)| Mutex::new(journal))
            .map_err(CopyError::from)
    };
    let (storage, vsphere, journal) = tokio::try_join!(
        connect_storage(config, options),
        connect_vsphere(config, options),
        journal
    )?;

    let lease = kube.clone().map(|client| {
        HostLease::new(
            client,
            lease::HostLeaseConfig {
                namespace: config.host_lease.namespace.clone(),
                duration: config.host_lease.duration,
                slots: options.lease_slots,
                ..lease::HostLeaseConfig::default()
            },
        )
    });
    if lease.is_none() {
        info!("no Kubernetes API: rescans run without the per-host lease");
    }
    let executors = ExecutorFactory {
        vsphere: vsphere.clone(),
        method: config.esxi.clone_method,
        ssh: ssh_access(config, options, kube.as_ref())?,
    };
    let engine = CopyEngine {
        vsphere,
        storage,
        executors,
        lease,
        metrics: metrics.clone(),
        timing: options.timing,
        observer: options.observer.clone(),
    };
    let job = CopyJob {
        vmdk: config.source.vmdk.clone(),
        vm_id: config.source.vm_id.clone(),
        pv,
        clone_method: config.esxi.clone_method,
        migration_host: config.esxi.migration_host.clone(),
        disable_vvol_method: config.esxi.disable_vvol_method,
        disable_rdm_method: config.esxi.disable_rdm_method,
        storage_vendor: config.storage.product().as_str().to_owned(),
    };
    Ok(PreparedCopy {
        engine,
        job,
        journal,
    })
}

async fn kube_client(
    config: &PopulateConfig,
    options: &RunOptions,
) -> Result<Option<kube::Client>, CopyError> {
    if let Some(client) = &options.kube_client {
        return Ok(Some(client.clone()));
    }
    let needed = matches!(config.target, TargetVolume::Pvc { .. })
        || config.kube.kubeconfig.is_some()
        || config.kube.master.is_some();
    if !needed {
        return Ok(None);
    }
    let refused = |message: String| CopyError::Target {
        message,
        retryable: false,
    };
    let mut kube_config = match &config.kube.kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| refused(format!("cannot read kubeconfig {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| refused(format!("kubeconfig {} is unusable: {e}", path.display())))?
        }
        None => kube::Config::infer().await.map_err(|e| {
            refused(format!(
                "no Kubernetes configuration found (in-cluster or ~/.kube/config): {e}"
            ))
        })?,
    };
    if let Some(master) = &config.kube.master {
        kube_config.cluster_url = master
            .parse()
            .map_err(|e| refused(format!("--master {master:?} is not a URL: {e}")))?;
    }
    kube::Client::try_from(kube_config)
        .map(Some)
        .map_err(|source| CopyError::Kube {
            action: "building the client".into(),
            source,
        })
}

async fn connect_storage(
    config: &PopulateConfig,
    options: &RunOptions,
) -> Result<Arc<dyn StorageApi>, CopyError> {
    let settings = config
        .storage
        .connection_settings(options.storage_ca_pem.clone());
    co_storage::connect(
        &config.storage.vendor,
        &settings,
        options.storage_observer.clone(),
    )
    .await
    .map_err(CopyError::storage("connecting to the storage array"))
}

async fn connect_vsphere(
    config: &PopulateConfig,
    options: &RunOptions,
) -> Result<Client, CopyError> {
    Client::login(config.vsphere.client_config(options.vsphere_trust.clone()))
        .await
        .map_err(CopyError::vsphere("login"))
}

fn journal_backend(
    config: &PopulateConfig,
    options: &RunOptions,
    kube: Option<&kube::Client>,
    volume_handle: &str,
) -> JournalBackend {
    if let Some(client) = kube {
        if let (Some(name), Some(namespace)) = (&config.cr_name, &config.cr_namespace) {
            return JournalBackend::Kube(Box::new(KubeJournalStore::on_populator_cr(
                client.clone(),
                namespace,
                name,
            )));
        }
        if let TargetVolume::Pvc { namespace, name } = &config.target {
            return JournalBackend::Kube(Box::new(KubeJournalStore::on_pvc(
                client.clone(),
                namespace,
                name,
            )));
        }
    }
    let path = options.journal_path.clone().unwrap_or_else(|| {
        let safe: String = volume_handle
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        std::env::temp_dir().join(format!("copy-offload-journal-{safe}.json"))
    });
    JournalBackend::File(FileJournalStore::new(path))
}

fn ssh_access(
    config: &PopulateConfig,
    options: &RunOptions,
    kube: Option<&kube::Client>,
) -> Result<Option<SshAccess>, CopyError> {
    if config.esxi.clone_method != CloneMethod::Ssh {
        return Ok(None);
    }
    let Some(keys) = &config.esxi.ssh_keys else {
        return Ok(None);
    };
    let policy = host_key_policy(config, options, kube);
    let mut settings = SshSettings::new(keys.private_key.clone(), policy);
    settings.timeout = config.esxi.ssh_timeout;
    if let Some(port) = options.ssh_port {
        settings.port = port;
    }
    Ok(Some(SshAccess {
        settings,
        address_override: options.ssh_address.clone(),
    }))
}

/// How the ESXi host key is trusted, strictest configured source first: the options' policy
/// (tests, the lab); the `SSH_KNOWN_HOSTS` list; with a Kubernetes API, trust on first use
/// recorded cluster-wide in a ConfigMap of the host lease namespace; without one, trust on first
/// use in a known_hosts file in the temporary directory (one run's trust in a fresh pod).
pub fn host_key_policy(
    config: &PopulateConfig,
    options: &RunOptions,
    kube: Option<&kube::Client>,
) -> HostKeyPolicy {
    if let Some(policy) = &options.ssh_host_key {
        return policy.clone();
    }
    if let Some(list) = &config.esxi.ssh_known_hosts {
        info!(
            entries = list.len(),
            "ESXi host keys checked against SSH_KNOWN_HOSTS"
        );
        return HostKeyPolicy::KnownHosts(list.clone());
    }
    if let Some(client) = kube {
        info!(
            namespace = %config.host_lease.namespace,
            config_map = HOST_KEYS_CONFIG_MAP,
            "ESXi host keys trusted on first use, recorded for the cluster"
        );
        return HostKeyPolicy::Store(Arc::new(KubeHostKeyStore::new(
            client.clone(),
            &config.host_lease.namespace,
        )));
    }
    let known_hosts = std::env::temp_dir().join("copy-offload-known_hosts");
    warn!(
        path = %known_hosts.display(),
        "no SSH_KNOWN_HOSTS and no Kubernetes API: ESXi host keys are trusted on first use in a \
         local file only"
    );
    HostKeyPolicy::TrustOnFirstUse { known_hosts }
}
