//! The volume populator controller behind `copy-offload controller`: for every PVC whose
//! `dataSourceRef` (or, on older servers, `dataSource`) names a `VSphereXcopyVolumePopulator`, it
//! creates the prime PVC and the populator pod, scrapes the pod's progress into the CR status,
//! retries retryable failures a bounded number of times, and on success moves the prime PVC's
//! volume to the user PVC.
//!
//! Layout: [`decide`] is the pure decision function (all the behaviour, unit-tested); [`objects`]
//! builds the prime PVC and the pod; [`reconcile`] is the thin Kubernetes layer; [`scrape`] reads a
//! pod's metrics; [`metrics`] is the controller's own endpoint. It links `co-api` only: what it
//! shares with the populator pod is `co_api::contract`.

pub mod decide;
pub mod metrics;
pub mod objects;
pub mod reconcile;
pub mod scrape;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use co_api::VSphereXcopyVolumePopulator;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

pub use settings::Settings;

/// Why the controller could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no populator image: set VSPHERE_XCOPY_VOLUME_POPULATOR_IMAGE (or Forklift's VSPHERE_COPY_OFFLOAD_POPULATOR_IMAGE, or --populator-image)"
    )]
    NoImage,
    #[error("connecting to the Kubernetes API server: {0}")]
    Connect(#[source] kube::Error),
    #[error("building the metrics scraper: {0}")]
    Scraper(#[source] reqwest::Error),
    #[error("listening on {address} for /metrics and probes: {source}")]
    Listen {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code of a controller that stopped with this error.
    pub fn exit_code(&self) -> co_api::contract::ExitCode {
        use co_api::contract::ExitCode;
        match self {
            Self::NoImage | Self::Listen { .. } => ExitCode::BadArguments,
            Self::Connect(_) => ExitCode::Retryable,
            Self::Scraper(_) => ExitCode::Internal,
        }
    }
}

/// Runs the controller with the in-cluster (or `KUBECONFIG`) credentials until SIGTERM/SIGINT.
pub async fn run(settings: Settings) -> Result<(), Error> {
    settings.image().ok_or(Error::NoImage)?;
    let client = Client::try_default().await.map_err(Error::Connect)?;
    let listener = tokio::net::TcpListener::bind(&settings.http_endpoint)
        .await
        .map_err(|source| Error::Listen {
            address: settings.http_endpoint.clone(),
            source,
        })?;
    run_with(client, settings, listener, co_api::shutdown_signal()).await
}

/// Runs the controller with `client` until `shutdown` completes, serving `/metrics` and the probes
/// on `listener`.
pub async fn run_with(
    client: Client,
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    let image = settings.image().ok_or(Error::NoImage)?;
    let scraper = scrape::client(Duration::from_secs(settings.scrape_timeout_seconds.max(1)))
        .map_err(Error::Scraper)?;
    let fleet = metrics::Fleet::new();
    let server = tokio::spawn(metrics::serve(listener, fleet.clone()));
    let reporter = Reporter {
        controller: reconcile::MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let (pvcs, pods, crs) = match &settings.watch_namespace {
        Some(ns) => (
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns),
            Api::<Pod>::namespaced(client.clone(), ns),
            Api::<VSphereXcopyVolumePopulator>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    let ctx = Arc::new(reconcile::Context::new(
        client,
        settings,
        image,
        recorder,
        scraper,
        fleet.clone(),
    ));
    let controller = Controller::new(pvcs.clone(), watcher::Config::default());
    let store = controller.store();
    let ready_fleet = fleet.clone();
    let ready_store = store.clone();
    tokio::spawn(async move {
        if ready_store.wait_until_ready().await.is_ok() {
            ready_fleet.set_ready();
        }
    });
    controller
        .owns(pods, watcher::Config::default())
        .owns(pvcs, watcher::Config::default())
        .watches(crs, watcher::Config::default(), move |cr| {
            // The PVCs of the CR's namespace whose data source names it.
            let namespace = cr.namespace();
            let name = cr.name_any();
            store
                .state()
                .into_iter()
                .filter(|pvc| pvc.namespace() == namespace)
                .filter(|pvc| decide::source_name(pvc).as_deref() == Some(name.as_str()))
                .map(|pvc| ObjectRef::from_obj(&*pvc))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile did not complete");
            }
        })
        .await;
    server.abort();
    Ok(())
}

/// A failed step is logged and reported as a Warning event on the PVC (a missing permission shows
/// there, naming the verb and resource), then retried.
fn error_policy(
    pvc: Arc<PersistentVolumeClaim>,
    error: &reconcile::Error,
    ctx: Arc<reconcile::Context>,
) -> Action {
    tracing::warn!(pvc = %pvc.name_any(), namespace = pvc.namespace().unwrap_or_default(), %error, "reconcile failed; retrying");
    if error.is_conflict() {
        return Action::requeue(Duration::from_millis(200));
    }
    let message = error.to_string();
    tokio::spawn(async move {
        reconcile::publish(
            &ctx,
            &pvc,
            true,
            "PopulatorReconcileError",
            &format!("{message}; retrying"),
        )
        .await;
    });
    Action::requeue(Duration::from_secs(5))
}
