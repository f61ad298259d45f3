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
use crate::journal::{
    FileJournalStore, Journal, JournalBackend, JournalError, JournalStore as _, KubeJournalStore,
};
use crate::lease::{self, HostLease};
use crate::metrics::{
    CopyCompletion, CopyResult, FINAL_SCRAPE_WAIT, MetricsEndpoint, PopulatorMetrics,
    StorageArrayInfo,
};
use crate::resolve::{VolumeWait, resolve_target};
use crate::rights::{self, AccessCheck, ExtraRights};

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
    /// known_hosts file for trust on first use when neither `SSH_KNOWN_HOSTS` nor the cluster's
    /// record can be used; default `copy-offload-known_hosts` in the temporary directory (fresh
    /// per pod, shared by every run on a workstation).
    pub local_known_hosts: Option<PathBuf>,
    /// Journal file in Kubernetes-less mode; default derived from the volume handle.
    pub journal_path: Option<PathBuf>,
    /// Kubernetes client to use instead of building one from the configuration.
    pub kube_client: Option<kube::Client>,
    /// Lease slots per host (upstream: 2).
    pub lease_slots: u32,
    pub timing: Timing,
    /// A listener already bound for the metrics endpoint, served instead of binding the
    /// configured address: a test binds it first, so no parallel test can be given its port.
    pub metrics_listener: Option<Arc<std::net::TcpListener>>,
    /// How long to wait for the controller's scrape of the completion metric.
    pub final_scrape_wait: Duration,
    pub observer: Option<PhaseObserver>,
    /// How long to wait for the provisioner to bind the prime PVC.
    pub volume_bind_timeout: Duration,
    /// Notified when the run starts waiting for the prime PVC's binding.
    pub volume_waiting: Option<Arc<tokio::sync::Notify>>,
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
            local_known_hosts: None,
            journal_path: None,
            kube_client: None,
            lease_slots: lease::DEFAULT_SLOTS,
            timing: Timing::default(),
            metrics_listener: None,
            final_scrape_wait: FINAL_SCRAPE_WAIT,
            observer: None,
            volume_bind_timeout: crate::resolve::VOLUME_BIND_TIMEOUT,
            volume_waiting: None,
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
    let served = match &options.metrics_listener {
        Some(listener) => listener
            .try_clone()
            .map_err(|source| crate::metrics::MetricsError::Bind {
                addr: config.metrics.addr,
                source,
            })
            .and_then(|listener| {
                MetricsEndpoint::serve_on(listener, config.metrics.addr, metrics.clone())
            }),
        None => MetricsEndpoint::serve(config.metrics.addr, metrics.clone()),
    };
    let endpoint = match served {
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
    let (result, report, mut host_hygiene_by) = match copied {
        Ok(outcome) => (
            outcome.result,
            Some(outcome.report),
            outcome.host_hygiene_by,
        ),
        Err(error) => (Err(error), None, None),
    };
    // Forklift's controller updates the CR once when it scrapes completion and never retries: a
    // journal write to the CR in that window would make its update conflict and lose the
    // completion. With the journal on the CR, the host's tidying (which journals) runs first.
    if let (Some(copy), Some(deadline)) = (&prepared, host_hygiene_by)
        && copy.journal_on_cr
    {
        copy.engine
            .finish_host_hygiene(&copy.job, &copy.journal, deadline)
            .await;
        host_hygiene_by = None;
    }
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
    /// The journal is an annotation of the CR, which Forklift's controller also updates.
    journal_on_cr: bool,
}

/// Resolves the target, connects the array and vCenter (at once: neither needs the other) and
/// loads the journal.
async fn prepare(
    config: &PopulateConfig,
    options: &RunOptions,
    metrics: &PopulatorMetrics,
) -> Result<PreparedCopy, CopyError> {
    let kube = kube_client(config, options).await?;
    let volume_wait = VolumeWait {
        timeout: options.volume_bind_timeout,
        cancel: options.cancel.clone(),
        waiting: options.volume_waiting.clone(),
    };
    // The target may still be provisioning: the logins run meanwhile, none needs the volume.
    let target = async {
        let pv = resolve_target(&config.target, kube.as_ref(), &volume_wait).await?;
        info!(pv = %pv.name, volume_handle = %pv.volume_handle, "target volume resolved");
        let rights = match &kube {
            Some(client) => probe_rights(client, config, options).await,
            None => ExtraRights::ALL,
        };
        let (backend, on_cr) =
            journal_backend(config, options, kube.as_ref(), rights, &pv.volume_handle)
                .await
                .map_err(CopyError::from)?;
        let (journal, _) = Journal::load(backend).await.map_err(CopyError::from)?;
        Ok::<_, CopyError>((pv, rights, Mutex::new(journal), on_cr))
    };
    let (storage, vsphere, (pv, rights, journal, journal_on_cr)) = tokio::try_join!(
        connect_storage(config, options),
        connect_vsphere(config, options),
        target
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
        ssh: ssh_access(config, options, kube.as_ref(), rights)?,
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
        journal_on_cr,
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

/// The object the journal goes on by preference: the CR, else the target PVC (namespace, name,
/// whether it is the CR).
fn journal_object(config: &PopulateConfig) -> Option<(&str, &str, bool)> {
    if let (Some(name), Some(namespace)) = (&config.cr_name, &config.cr_namespace) {
        return Some((namespace, name, true));
    }
    if let TargetVolume::Pvc { namespace, name } = &config.target {
        return Some((namespace, name, false));
    }
    None
}

/// Probes the rights beyond Forklift's grant that this run would use.
async fn probe_rights(
    client: &kube::Client,
    config: &PopulateConfig,
    options: &RunOptions,
) -> ExtraRights {
    let journal = journal_object(config)
        .map(|(namespace, _, on_cr)| AccessCheck::patch_journal_object(on_cr, namespace));
    let records_host_keys = config.esxi.clone_method == CloneMethod::Ssh
        && config.esxi.ssh_keys.is_some()
        && options.ssh_host_key.is_none()
        && config.esxi.ssh_known_hosts.is_none();
    let host_keys =
        records_host_keys.then(|| AccessCheck::write_host_key_record(&config.host_lease.namespace));
    rights::probe(client, journal, host_keys).await
}

/// Where the journal lives. In a cluster: the CR (else the target PVC) when the pod may patch it,
/// else a Lease of the copy's own; a journal already in that Lease is always used, so a copy's
/// journal stays where the copy began it whatever rights later runs have. `true` with it: the
/// journal is on the CR.
async fn journal_backend(
    config: &PopulateConfig,
    options: &RunOptions,
    kube: Option<&kube::Client>,
    rights: ExtraRights,
    volume_handle: &str,
) -> Result<(JournalBackend, bool), JournalError> {
    if let (Some(client), Some((namespace, name, on_cr))) = (kube, journal_object(config)) {
        let lease = KubeJournalStore::on_journal_lease(client.clone(), namespace, volume_handle);
        if !rights.journal_on_object || lease.holds_journal().await? {
            info!(store = %lease.location(), "copy journal kept in a Lease");
            return Ok((JournalBackend::Kube(Box::new(lease)), false));
        }
        let store = if on_cr {
            KubeJournalStore::on_populator_cr(client.clone(), namespace, name)
        } else {
            KubeJournalStore::on_pvc(client.clone(), namespace, name)
        };
        return Ok((JournalBackend::Kube(Box::new(store)), on_cr));
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
    Ok((JournalBackend::File(FileJournalStore::new(path)), false))
}

fn ssh_access(
    config: &PopulateConfig,
    options: &RunOptions,
    kube: Option<&kube::Client>,
    rights: ExtraRights,
) -> Result<Option<SshAccess>, CopyError> {
    if config.esxi.clone_method != CloneMethod::Ssh {
        return Ok(None);
    }
    let Some(keys) = &config.esxi.ssh_keys else {
        return Ok(None);
    };
    let policy = host_key_policy(config, options, kube.filter(|_| rights.host_key_record));
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
/// recorded cluster-wide in a ConfigMap of the host lease namespace; without one (or without the
/// right to write that ConfigMap: pass `None`), trust on first use in a known_hosts file in the
/// temporary directory (one run's trust in a fresh pod).
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
    let known_hosts = options
        .local_known_hosts
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("copy-offload-known_hosts"));
    warn!(
        path = %known_hosts.display(),
        "no SSH_KNOWN_HOSTS and no Kubernetes API: ESXi host keys are trusted on first use in a \
         local file only"
    );
    HostKeyPolicy::TrustOnFirstUse { known_hosts }
}
