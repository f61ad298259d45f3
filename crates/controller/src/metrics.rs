//! The controller's own metrics (the fleet view) and its HTTP endpoint: `/metrics`, `/healthz`,
//! `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters and gauges over every PVC the controller handles. Label sets are bounded (no per-PVC
/// series), so the registry does not grow with the number of copies.
#[derive(Clone)]
pub struct Fleet {
    registry: Arc<Registry>,
    reconciles: Counter,
    pods_created: Counter,
    finished: Family<Vec<(String, String)>, Counter>,
    monitored: Gauge,
    ready: Arc<AtomicBool>,
}

impl Default for Fleet {
    fn default() -> Self {
        Self::new()
    }
}

impl Fleet {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("copy_offload_controller");
        let reconciles = Counter::default();
        let pods_created = Counter::default();
        let finished = Family::<Vec<(String, String)>, Counter>::default();
        let monitored = Gauge::default();
        registry.register("reconciles", "PVC reconciles run", reconciles.clone());
        registry.register(
            "populator_pods_created",
            "Populator pods created (first runs and retries)",
            pods_created.clone(),
        );
        registry.register(
            "copies_finished",
            "Copies that ended, by result (success, failure)",
            finished.clone(),
        );
        registry.register(
            "populator_pods_monitored",
            "Running populator pods whose metrics are being scraped",
            monitored.clone(),
        );
        Self {
            registry: Arc::new(registry),
            reconciles,
            pods_created,
            finished,
            monitored,
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn reconciled(&self) {
        self.reconciles.inc();
    }

    pub fn pod_created(&self) {
        self.pods_created.inc();
    }

    pub fn finished(&self, result: &str) {
        self.finished
            .get_or_create(&vec![("result".to_owned(), result.to_owned())])
            .inc();
    }

    pub fn set_monitored(&self, count: usize) {
        self.monitored.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Ready once the watches are established.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, fleet: Fleet) -> std::io::Result<()> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let metrics_fleet = fleet.clone();
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = fleet.is_ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "watches not established yet",
                        )
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = metrics_fleet.encode();
                async move { text }
            }),
        );
    axum::serve(listener, app).await
}
