//! `co-planner`: the Forklift-side half of copy offload, run by `copy-offload controller` next to
//! the populator controller. It works with Forklift's `forklift.konveyor.io` objects, so a cluster
//! with Forklift installed, or with only copy-offload, behaves the same:
//!
//! - [`feature_flag`]: `feature_copy_offload`, followed live; nothing here acts while it is off;
//! - [`ssh_keys`] and the Provider controller: one SSH key pair per vSphere `Provider`, and
//!   [`ssh_readiness`]: its ESXi hosts probed with it when the Provider uses the SSH method;
//! - [`storage_map`]: each StorageMap's offload configuration checked and reported on it;
//! - [`plan`]: the disks of each Plan that opts in planned for copy offload;
//! - [`inventory`]: the source-side facts (VMs, disks, host loads) offload planning takes;
//! - [`gather`]: reading a Plan's planning inputs from the cluster and vCenter;
//! - [`offload`]: offload planning, the per-disk PVC, populator and Secret of a Plan (no I/O);
//! - [`conditions`]: conditions written into Forklift objects' status without taking over them.
//!
//! It links the vSphere and ESXi crates the populator controller must not (see
//! `docs/architecture.md`), which is why it is its own crate.

pub mod conditions;
pub mod feature_flag;
pub mod gather;
pub mod inventory;
pub mod offload;
pub mod plan;
mod provider;
pub mod ssh_keys;
pub mod ssh_readiness;
pub mod storage_map;

use std::sync::Arc;

use kube::Client;
use tokio::sync::mpsc;

pub use feature_flag::FeatureFlag;
pub use plan::PlanOutcome;
pub use provider::{PRIVATE_KEY_INVALID, PUBLIC_KEY_INVALID, ProviderOutcome};
pub use storage_map::StorageMapOutcome;

/// What the planner's reconciles did, for whoever listens (tests wait on it instead of
/// guessing when a reconcile has happened).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// A Provider was reconciled.
    Provider {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What happened.
        outcome: ProviderOutcome,
    },
    /// A StorageMap was reconciled.
    StorageMap {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What happened.
        outcome: StorageMapOutcome,
    },
    /// The ESXi hosts of a Provider using the SSH method were probed.
    SshProbed {
        /// The Provider's namespace.
        namespace: String,
        /// The Provider's name.
        name: String,
        /// What the probes found.
        readiness: ssh_readiness::Readiness,
    },
    /// A Plan was reconciled.
    Plan {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What happened.
        outcome: PlanOutcome,
    },
}

/// The planner's settings (flags of `copy-offload controller`).
#[derive(Clone, Debug, clap::Args)]
#[group(id = "planner")]
#[command(next_help_heading = "Planner (Forklift objects)")]
pub struct Settings {
    /// Namespace of Forklift's `ForkliftController` CR and of the `copy-offload-features`
    /// ConfigMap, where `feature_copy_offload` is read.
    #[arg(long, env = "FORKLIFT_NAMESPACE", default_value = "openshift-mtv")]
    pub forklift_namespace: String,

    /// Name of the `ForkliftController` CR.
    #[arg(
        long,
        env = "FORKLIFT_CONTROLLER_NAME",
        default_value = "forklift-controller"
    )]
    pub forklift_controller_name: String,

    /// Port of the ESXi hosts' SSH service, for the SSH readiness probes.
    #[arg(long, env = "ESXI_SSH_PORT", default_value_t = 22)]
    pub esxi_ssh_port: u16,

    /// How often the ESXi hosts of a Provider using the SSH method are probed again.
    #[arg(long, env = "SSH_READINESS_INTERVAL_SECONDS", default_value_t = 300)]
    pub ssh_readiness_interval_seconds: u64,

    /// Only watch Forklift objects of this namespace (all namespaces when unset); set from the
    /// controller's `--watch-namespace`.
    #[arg(skip)]
    pub watch_namespace: Option<String>,

    /// Receives one [`Observed`] per reconcile.
    #[arg(skip)]
    pub observer: Option<mpsc::UnboundedSender<Observed>>,
}

/// Why the planner stopped or a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No Kubernetes client could be built.
    #[error("cannot connect to the Kubernetes API: {0}")]
    Connect(#[source] kube::Error),
    /// An SSH key pair could not be generated or stored.
    #[error(transparent)]
    Keys(#[from] ssh_keys::KeyError),
    /// An object the reconcile needs could not be read.
    #[error("reading {what}: {source}")]
    Read {
        /// What was being read.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A plan's inputs could not be read (API server or vCenter unreachable).
    #[error(transparent)]
    Gather(#[from] gather::GatherError),
    /// A planned disk's objects could not be written.
    #[error(transparent)]
    Apply(#[from] plan::ApplyError),
    /// A status could not be read or written.
    #[error("updating the status of a Forklift object: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    /// The process exit code for this error (the populator's codes, shared by all subcommands).
    pub fn exit_code(&self) -> co_api::contract::ExitCode {
        use co_api::contract::ExitCode;
        match self {
            Self::Connect(_) | Self::Apply(_) => ExitCode::Retryable,
            Self::Gather(error) => error.exit_code(),
            Self::Keys(_) | Self::Status(_) | Self::Read { .. } => ExitCode::Internal,
        }
    }
}

pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) settings: Settings,
    pub(crate) flag: FeatureFlag,
    pub(crate) prober: ssh_readiness::Prober,
}

impl Context {
    fn observe(&self, observed: Observed) {
        if let Some(observer) = &self.settings.observer {
            // A listener that went away is not the planner's problem.
            let _ = observer.send(observed);
        }
    }

    /// The API of `K` the planner watches: the `--watch-namespace`, or every namespace.
    fn watched<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.settings.watch_namespace {
            Some(namespace) => kube::Api::namespaced(self.client.clone(), namespace),
            None => kube::Api::all(self.client.clone()),
        }
    }
}

/// Drives a controller's results to the end, logging failed reconciles at debug level: each
/// reconcile reports its own outcome (conditions, [`Observed`]), and the error policy requeues.
async fn log_reconcile_errors<T, E: std::fmt::Display>(
    results: impl futures::Stream<Item = Result<T, E>>,
    controller: &'static str,
) {
    use futures::StreamExt;
    results
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, controller, "reconcile failed");
            }
        })
        .await;
}

/// Runs the planner with the in-cluster (or kubeconfig) client until SIGTERM/Ctrl-C.
pub async fn run(settings: Settings) -> Result<(), Error> {
    let client = Client::try_default().await.map_err(Error::Connect)?;
    run_with(client, settings, co_api::shutdown_signal()).await;
    Ok(())
}

/// Runs the planner with `client` until `shutdown` resolves.
pub async fn run_with(
    client: Client,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (flag, follower) = FeatureFlag::follow(
        client.clone(),
        &settings.forklift_namespace,
        &settings.forklift_controller_name,
    );
    flag.synced().await;
    tracing::info!(enabled = flag.enabled(), "feature_copy_offload read");
    let prober = ssh_readiness::Prober::new(
        ssh_readiness::ProbeSettings::new(settings.esxi_ssh_port),
        std::time::Duration::from_secs(settings.ssh_readiness_interval_seconds.max(1)),
    );
    let context = Arc::new(Context {
        client,
        settings,
        flag,
        prober,
    });
    let shutdown = futures::FutureExt::shared(shutdown);
    tokio::join!(
        provider::run(context.clone(), shutdown.clone()),
        storage_map::run(context.clone(), shutdown.clone()),
        plan::run(context, shutdown),
    );
    follower.abort();
}
