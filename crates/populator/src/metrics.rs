//! The populator's Prometheus endpoint: the upstream metric names and label sets the populator
//! controller and Forklift scrape (compatibility contract), our extra
//! progress figures (bytes copied, rate, phase), and the HTTPS server that exposes them with a
//! self-signed certificate generated at start, like upstream.
//!
//! Every metric is a gauge: prometheus-client appends `_total` to counters, which would rename
//! `vsphere_xcopy_volume_populator_progress` away from what the controller matches. Label names are
//! declared in alphabetical order, the order client_golang prints them in, so even a scraper that
//! matches whole lines sees the same text as from an upstream pod. The body is the classic text
//! format (`text/plain; version=0.0.4`) without the OpenMetrics `# EOF` trailer.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{error, info};

/// Where the metrics server listens unless told otherwise (the pod's `metrics` container port).
pub const DEFAULT_METRICS_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8443);
/// The only path served.
pub const METRICS_PATH: &str = "/metrics";
/// Content type of the scrape response (classic Prometheus text format).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How long to wait, after completion is flagged, for the controller to scrape once more (upstream).
pub const FINAL_SCRAPE_WAIT: Duration = Duration::from_secs(10);

/// Metric names (compatibility contract: the controller and Forklift match these).
pub use co_api::contract::metrics as names;
pub use co_api::contract::metrics::{CloneMethodLabel, CopyResult, StorageProtocolLabel};

use co_api::contract::metrics::NOT_AVAILABLE;

/// What the storage array says about itself; empty model/version are reported as `n/a`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageArrayInfo {
    pub vendor: String,
    pub product: String,
    pub model: String,
    pub version: String,
}

/// Everything the completion signal reports.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyCompletion {
    pub result: CopyResult,
    pub storage_vendor: String,
    pub clone_method: CloneMethodLabel,
    pub storage_protocol: StorageProtocolLabel,
    pub xcopy_used: bool,
    pub duration: Duration,
    /// Guest-visible size of the source disk; reported on success when > 0.
    pub provisioned_bytes: u64,
    /// Bytes the source disk occupies on its datastore; reported on success when > 0.
    pub datastore_allocated_bytes: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OwnerLabels {
    owner_uid: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct XcopyUsedLabels {
    clone_method: String,
    owner_uid: String,
    storage_vendor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VibVersionLabels {
    owner_uid: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageArrayLabels {
    storage_array_model: String,
    storage_array_product: String,
    storage_array_vendor: String,
    storage_array_version: String,
    storage_vendor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceDiskLabels {
    clone_method: String,
    owner_uid: String,
    storage_protocol: String,
    storage_vendor: String,
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CompletionLabels {
    clone_method: String,
    owner_uid: String,
    result: String,
    storage_protocol: String,
    storage_vendor: String,
    xcopy_used: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    owner_uid: String,
    phase: String,
}

type IntGauges<L> = Family<L, Gauge>;
type FloatGauges<L> = Family<L, Gauge<f64, AtomicU64>>;

/// The metrics of one populator run (one target PVC, `owner_uid`). Cheap to clone; all clones
/// update the same registry.
#[derive(Clone)]
pub struct PopulatorMetrics {
    inner: Arc<MetricsInner>,
}

struct MetricsInner {
    owner_uid: String,
    registry: Registry,
    progress: IntGauges<OwnerLabels>,
    xcopy_used: SingleSeries<XcopyUsedLabels, Gauge>,
    vib_version: SingleSeries<VibVersionLabels, Gauge>,
    storage_array_info: SingleSeries<StorageArrayLabels, Gauge>,
    source_disk_bytes: IntGauges<SourceDiskLabels>,
    copy_duration: SingleSeries<CompletionLabels, Gauge<f64, AtomicU64>>,
    copied_bytes: IntGauges<OwnerLabels>,
    copy_rate: FloatGauges<OwnerLabels>,
    phase: IntGauges<PhaseLabels>,
    /// Highest progress reported so far: progress never goes backwards (upstream semantics).
    progress_high_water: AtomicI64,
    current_phase: Mutex<Option<(String, Instant)>>,
    /// Whether the completion series is recorded. Held for writing while it is recorded and for
    /// reading while a scrape is encoded, so a scrape knows whether its body carries it.
    completion_recorded: RwLock<bool>,
}

impl PopulatorMetrics {
    /// Registers every metric for the run that populates the PVC with UID `owner_uid`.
    pub fn new(owner_uid: impl Into<String>) -> Self {
        let owner_uid = owner_uid.into();
        let mut registry = Registry::default();
        let progress = IntGauges::default();
        let xcopy_used = SingleSeries::new();
        let vib_version = SingleSeries::new();
        let storage_array_info = SingleSeries::new();
        let source_disk_bytes = IntGauges::default();
        let copy_duration = SingleSeries::new();
        let copied_bytes = IntGauges::default();
        let copy_rate = FloatGauges::default();
        let phase = IntGauges::default();
        registry.register(
            names::PROGRESS,
            "Progress of vSphere XCOPY volume population (percentage 0-100)",
            progress.clone(),
        );
        registry.register(
            names::XCOPY_USED,
            "Whether the array offloaded the clone with XCOPY (0=no, 1=yes)",
            xcopy_used.family.clone(),
        );
        registry.register(
            names::VIB_VERSION,
            "Version of the vmkfstools-wrapper VIB on the ESXi host (constant 1)",
            vib_version.family.clone(),
        );
        registry.register(
            names::STORAGE_ARRAY_INFO,
            "Storage array metadata (constant 1); join with other metrics on storage_vendor",
            storage_array_info.family.clone(),
        );
        registry.register(
            names::SOURCE_DISK_BYTES,
            "Source disk size in bytes: provisioned is the guest-visible size, datastore_allocated the data on the datastore",
            source_disk_bytes.clone(),
        );
        registry.register(
            names::COPY_DURATION_SECONDS,
            "Duration of the copy in seconds; its presence signals completion, the result label tells success or failure",
            copy_duration.family.clone(),
        );
        registry.register(
            names::COPIED_BYTES,
            "Bytes copied to the target volume so far",
            copied_bytes.clone(),
        );
        registry.register(
            names::COPY_RATE,
            "Copy rate over the last progress interval, in bytes per second",
            copy_rate.clone(),
        );
        registry.register(
            names::PHASE,
            "Copy phase: 1 for the current phase, 0 for phases already left",
            phase.clone(),
        );
        // Present from the start, like a fresh counter upstream, so a scrape before the first
        // progress report reads 0 rather than nothing.
        progress
            .get_or_create(&OwnerLabels {
                owner_uid: owner_uid.clone(),
            })
            .set(0);
        Self {
            inner: Arc::new(MetricsInner {
                owner_uid,
                registry,
                progress,
                xcopy_used,
                vib_version,
                storage_array_info,
                source_disk_bytes,
                copy_duration,
                copied_bytes,
                copy_rate,
                phase,
                progress_high_water: AtomicI64::new(0),
                current_phase: Mutex::new(None),
                completion_recorded: RwLock::new(false),
            }),
        }
    }

    pub fn owner_uid(&self) -> &str {
        &self.inner.owner_uid
    }

    fn owner(&self) -> OwnerLabels {
        OwnerLabels {
            owner_uid: self.inner.owner_uid.clone(),
        }
    }

    /// Reports copy progress in percent. Values above 100 are clamped; a value lower than one
    /// already reported is ignored, so the series only ever rises.
    pub fn set_progress(&self, percent: u8) {
        let percent = i64::from(percent.min(100));
        let previous = self
            .inner
            .progress_high_water
            .fetch_max(percent, Ordering::AcqRel);
        if percent > previous {
            self.inner
                .progress
                .get_or_create(&self.owner())
                .set(percent);
        }
    }

    /// Reports whether the last task poll saw XCOPY used. The series is replaced, not added to,
    /// when the vendor or clone method changes.
    pub fn set_xcopy_used(&self, storage_vendor: &str, clone_method: CloneMethodLabel, used: bool) {
        let labels = XcopyUsedLabels {
            clone_method: clone_method.as_str().to_owned(),
            owner_uid: self.inner.owner_uid.clone(),
            storage_vendor: storage_vendor.to_owned(),
        };
        self.inner.xcopy_used.update(labels, |g| {
            g.set(i64::from(used));
        });
    }

    /// Reports the VIB version found on the host (`unknown` when it could not be read).
    pub fn set_vib_version(&self, version: Option<&str>) {
        let labels = VibVersionLabels {
            owner_uid: self.inner.owner_uid.clone(),
            version: version
                .filter(|v| !v.is_empty())
                .unwrap_or("unknown")
                .to_owned(),
        };
        self.inner.vib_version.update(labels, |g| {
            g.set(1);
        });
    }

    pub fn set_storage_array_info(&self, storage_vendor: &str, info: &StorageArrayInfo) {
        let or_na = |v: &str| {
            if v.is_empty() {
                NOT_AVAILABLE.to_owned()
            } else {
                v.to_owned()
            }
        };
        let labels = StorageArrayLabels {
            storage_array_model: or_na(&info.model),
            storage_array_product: info.product.clone(),
            storage_array_vendor: info.vendor.clone(),
            storage_array_version: or_na(&info.version),
            storage_vendor: storage_vendor.to_owned(),
        };
        self.inner.storage_array_info.update(labels, |g| {
            g.set(1);
        });
    }

    pub fn set_copied_bytes(&self, bytes: u64) {
        self.inner
            .copied_bytes
            .get_or_create(&self.owner())
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn set_copy_rate(&self, bytes_per_second: f64) {
        self.inner
            .copy_rate
            .get_or_create(&self.owner())
            .set(bytes_per_second.max(0.0));
    }

    /// Marks `phase` as current (value 1) and the previous phase as left (value 0), and logs how
    /// long the previous phase took.
    pub fn set_phase(&self, phase: &str) {
        let now = Instant::now();
        let mut current = self
            .inner
            .current_phase
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((previous, since)) = current.take() {
            if previous == phase {
                *current = Some((previous, since));
                return;
            }
            let elapsed = now.duration_since(since);
            info!(phase = %previous, duration_ms = elapsed.as_millis() as u64, "phase finished");
            self.inner
                .phase
                .get_or_create(&self.phase_labels(&previous))
                .set(0);
        }
        info!(phase, "phase started");
        self.inner
            .phase
            .get_or_create(&self.phase_labels(phase))
            .set(1);
        *current = Some((phase.to_owned(), now));
    }

    fn phase_labels(&self, phase: &str) -> PhaseLabels {
        PhaseLabels {
            owner_uid: self.inner.owner_uid.clone(),
            phase: phase.to_owned(),
        }
    }

    /// Records the completion signal (`copy_duration_seconds`) and, on success, the source disk
    /// sizes. A failed copy reports `storage_protocol="n/a"`, as upstream does.
    pub fn record_completion(&self, completion: &CopyCompletion) {
        let mut recorded = self
            .inner
            .completion_recorded
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let owner_uid = self.inner.owner_uid.clone();
        let protocol = match completion.result {
            CopyResult::Success => completion.storage_protocol,
            CopyResult::Failure => StorageProtocolLabel::Unknown,
        };
        if completion.result == CopyResult::Success {
            for (kind, bytes) in [
                ("provisioned", completion.provisioned_bytes),
                ("datastore_allocated", completion.datastore_allocated_bytes),
            ] {
                if bytes > 0 {
                    let labels = SourceDiskLabels {
                        clone_method: completion.clone_method.as_str().to_owned(),
                        owner_uid: owner_uid.clone(),
                        storage_protocol: protocol.as_str().to_owned(),
                        storage_vendor: completion.storage_vendor.clone(),
                        r#type: kind.to_owned(),
                    };
                    self.inner
                        .source_disk_bytes
                        .get_or_create(&labels)
                        .set(i64::try_from(bytes).unwrap_or(i64::MAX));
                }
            }
        }
        let labels = CompletionLabels {
            clone_method: completion.clone_method.as_str().to_owned(),
            owner_uid,
            result: completion.result.as_str().to_owned(),
            storage_protocol: protocol.as_str().to_owned(),
            storage_vendor: completion.storage_vendor.clone(),
            xcopy_used: if completion.xcopy_used { "1" } else { "0" }.to_owned(),
        };
        self.inner.copy_duration.update(labels, |g| {
            g.set(completion.duration.as_secs_f64());
        });
        *recorded = true;
        drop(recorded);
        info!(
            result = completion.result.as_str(),
            duration_ms = completion.duration.as_millis() as u64,
            xcopy_used = completion.xcopy_used,
            "copy completion recorded"
        );
    }

    /// The scrape body in the classic Prometheus text format.
    pub fn encode(&self) -> String {
        self.encode_scrape().0
    }

    /// The scrape body, and whether it carries the completion series.
    fn encode_scrape(&self) -> (String, bool) {
        let recorded = self
            .inner
            .completion_recorded
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut body = String::new();
        // Writing into a String cannot fail, and our label values are plain strings.
        if let Err(error) = encode_registry(&mut body, &self.inner.registry) {
            error!(%error, "encoding metrics failed");
        }
        (body, *recorded)
    }
}

/// A family that holds at most one series: when the labels change (e.g. the clone method is
/// only known later), the new series is written before the old one is removed, so a scrape never
/// sees the metric missing.
struct SingleSeries<L, M> {
    family: Family<L, M>,
    current: Mutex<Option<L>>,
}

impl<L, M> SingleSeries<L, M>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
    M: Default
        + prometheus_client::metrics::TypedMetric
        + prometheus_client::encoding::EncodeMetric
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    fn new() -> Self {
        Self {
            family: Family::default(),
            current: Mutex::new(None),
        }
    }

    fn update(&self, labels: L, set: impl FnOnce(&M)) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        set(&self.family.get_or_create(&labels));
        if let Some(previous) = current.replace(labels)
            && Some(&previous) != current.as_ref()
        {
            self.family.remove(&previous);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "cannot listen for metrics on {addr}; is another process using the port? Choose another address"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the metrics server's self-signed TLS certificate")]
    Certificate(#[source] rcgen::Error),
    #[error("cannot configure TLS for the metrics server")]
    Tls(#[source] rustls::Error),
}

/// The running HTTPS metrics server.
pub struct MetricsEndpoint {
    local_addr: SocketAddr,
    scrape: Arc<ScrapeState>,
    handle: axum_server::Handle<SocketAddr>,
    server: tokio::task::JoinHandle<()>,
}

struct ScrapeState {
    metrics: PopulatorMetrics,
    /// Number of scrapes served whose body carried the completion series.
    completion_scrapes: watch::Sender<u64>,
}

impl MetricsEndpoint {
    /// Starts serving `metrics` over HTTPS at `addr` (path [`METRICS_PATH`]) with a fresh
    /// self-signed certificate (TLS 1.2 or 1.3, ring). Port 0 picks a free port; see
    /// [`Self::local_addr`]. Must be called from within a Tokio runtime, which runs the server.
    pub fn serve(addr: SocketAddr, metrics: PopulatorMetrics) -> Result<Self, MetricsError> {
        let listener =
            TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
        Self::serve_on(listener, addr, metrics)
    }

    /// Serves as [`Self::serve`] does on a listener already bound (for `addr`, named in errors).
    pub fn serve_on(
        listener: TcpListener,
        addr: SocketAddr,
        metrics: PopulatorMetrics,
    ) -> Result<Self, MetricsError> {
        let tls = self_signed_tls_config()?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let scrape = Arc::new(ScrapeState {
            metrics,
            completion_scrapes: watch::Sender::new(0),
        });
        let app = Router::new()
            .route(METRICS_PATH, get(scrape_handler))
            .with_state(Arc::clone(&scrape));
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(
            listener,
            axum_server::tls_rustls::RustlsConfig::from_config(tls),
        )
        .map_err(|source| MetricsError::Bind { addr, source })?
        .handle(handle.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = server.serve(app.into_make_service()).await {
                error!(%error, "metrics server stopped");
            }
        });
        info!(addr = %local_addr, path = METRICS_PATH, "metrics server listening (HTTPS, self-signed)");
        Ok(Self {
            local_addr,
            scrape,
            handle,
            server,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits up to `wait` for one scrape whose body carried the completion series (one served
    /// before this call counts: the controller may scrape between
    /// [`PopulatorMetrics::record_completion`] and this call, and then not again), so the
    /// controller has read the completion signal before the pod exits. Returns whether such a
    /// scrape happened.
    pub async fn await_final_scrape(&self, wait: Duration) -> bool {
        let mut scrapes = self.scrape.completion_scrapes.subscribe();
        info!(
            wait_s = wait.as_secs(),
            "copy finished, waiting for a final metrics scrape"
        );
        let seen = tokio::time::timeout(wait, scrapes.wait_for(|count| *count > 0))
            .await
            .is_ok_and(|r| r.is_ok());
        if !seen {
            info!("no metrics scrape after completion; exiting anyway");
        }
        seen
    }

    /// Stops accepting connections and closes open ones.
    pub async fn shutdown(self) {
        self.handle.shutdown();
        let _ = self.server.await;
    }
}

async fn scrape_handler(State(scrape): State<Arc<ScrapeState>>) -> impl IntoResponse {
    let (body, completed) = scrape.metrics.encode_scrape();
    if completed {
        scrape.completion_scrapes.send_modify(|count| *count += 1);
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body)
}

fn self_signed_tls_config() -> Result<Arc<rustls::ServerConfig>, MetricsError> {
    let names = vec![
        "localhost".to_owned(),
        crate::lease::default_holder_identity(),
    ];
    let certified = rcgen::generate_simple_self_signed(names).map_err(MetricsError::Certificate)?;
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(MetricsError::Tls)?
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .map_err(MetricsError::Tls)?;
    Ok(Arc::new(config))
}
