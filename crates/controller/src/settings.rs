//! The controller's settings: every one a flag with an environment variable, so the Deployment can
//! set them either way and `copy-offload controller --help` documents them all.

use std::time::Duration;

/// Environment variable Forklift's operator sets for the populator image; accepted as a fallback.
pub const FORKLIFT_IMAGE_ENV: &str = "VSPHERE_COPY_OFFLOAD_POPULATOR_IMAGE";

// A populator pod's resources, shared by the flags and `Settings::defaults`.
const DEFAULT_REQUESTS_CPU: &str = "100m";
const DEFAULT_REQUESTS_MEMORY: &str = "32Mi";
const DEFAULT_LIMITS_CPU: &str = "1";
const DEFAULT_LIMITS_MEMORY: &str = "256Mi";

/// Settings of `copy-offload controller`.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Image of the populator pods (its entrypoint must be `copy-offload populate`). Falls back to
    /// VSPHERE_COPY_OFFLOAD_POPULATOR_IMAGE, the variable Forklift's operator sets.
    #[arg(long, env = "VSPHERE_XCOPY_VOLUME_POPULATOR_IMAGE")]
    pub populator_image: Option<String>,

    /// Most populator pods running at once per ESXi host (keyed by the CR's migrationHost, else
    /// its `sourceHost` label); 0 disables the limit. Forklift's default is 20.
    #[arg(long, env = "MAX_POPULATOR_INFLIGHT", default_value_t = 20)]
    pub max_populator_inflight: usize,

    /// Populator runs per PVC, counting the first: a pod that exits with the retryable code (4)
    /// or is cancelled (5) is re-created until this many ran. Permanent failures never retry.
    #[arg(long, env = "POPULATOR_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,

    /// Wait before the second run, in seconds; doubled for each further run (capped at 10 minutes).
    #[arg(long, env = "POPULATOR_RETRY_BACKOFF_SECONDS", default_value_t = 30)]
    pub retry_backoff_seconds: u64,

    /// Keep finished populator pods (and their logs) for debugging instead of deleting them once
    /// the PVC is bound; they still go away with the PVC.
    #[arg(long, env = "RETAIN_POPULATOR_PODS", default_value_t = false)]
    pub retain_populator_pods: bool,

    /// CPU request of a populator pod (Forklift's default; the populator mostly waits on the
    /// array and the ESXi host).
    #[arg(long, env = "POPULATOR_CONTAINER_REQUESTS_CPU", default_value = DEFAULT_REQUESTS_CPU)]
    pub requests_cpu: String,

    /// Memory request of a populator pod: twice the measured peak RSS of a release build's run
    /// (15 MiB, whatever the disk size: the copy runs on the array and the ESXi host).
    #[arg(
        long,
        env = "POPULATOR_CONTAINER_REQUESTS_MEMORY",
        default_value = DEFAULT_REQUESTS_MEMORY
    )]
    pub requests_memory: String,

    /// CPU limit of a populator pod.
    #[arg(long, env = "POPULATOR_CONTAINER_LIMITS_CPU", default_value = DEFAULT_LIMITS_CPU)]
    pub limits_cpu: String,

    /// Memory limit of a populator pod (room for a slow array's retries and large esxcli answers).
    #[arg(
        long,
        env = "POPULATOR_CONTAINER_LIMITS_MEMORY",
        default_value = DEFAULT_LIMITS_MEMORY
    )]
    pub limits_memory: String,

    /// Seconds between two scrapes of a running populator's metrics.
    #[arg(long, env = "POPULATOR_SCRAPE_INTERVAL_SECONDS", default_value_t = 5)]
    pub scrape_interval_seconds: u64,

    /// Timeout of one metrics scrape (connect + response), in seconds.
    #[arg(long, env = "POPULATOR_SCRAPE_TIMEOUT_SECONDS", default_value_t = 5)]
    pub scrape_timeout_seconds: u64,

    /// Address of the controller's own HTTP endpoint: `/metrics` (the fleet view), `/healthz`,
    /// `/readyz`.
    #[arg(long, env = "CONTROLLER_HTTP_ENDPOINT", default_value = "0.0.0.0:8080")]
    pub http_endpoint: String,

    /// Only watch PVCs of this namespace (all namespaces when unset).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
}

impl Settings {
    /// The populator image: the flag or its variable, else Forklift's variable.
    pub fn image(&self) -> Option<String> {
        self.populator_image
            .clone()
            .filter(|i| !i.trim().is_empty())
            .or_else(|| {
                std::env::var(FORKLIFT_IMAGE_ENV)
                    .ok()
                    .filter(|i| !i.trim().is_empty())
            })
    }

    /// How long to wait before run `attempt + 1` after `attempt` runs failed (attempt ≥ 1).
    pub fn retry_backoff(&self, attempt: u32) -> Duration {
        let base = Duration::from_secs(self.retry_backoff_seconds);
        let factor = 1u32 << attempt.saturating_sub(1).min(10);
        base.saturating_mul(factor).min(Duration::from_secs(600))
    }

    /// Settings with every default, for tests and embedding.
    pub fn defaults(image: &str) -> Self {
        Self {
            populator_image: Some(image.to_owned()),
            max_populator_inflight: 20,
            max_attempts: 3,
            retry_backoff_seconds: 30,
            retain_populator_pods: false,
            requests_cpu: DEFAULT_REQUESTS_CPU.into(),
            requests_memory: DEFAULT_REQUESTS_MEMORY.into(),
            limits_cpu: DEFAULT_LIMITS_CPU.into(),
            limits_memory: DEFAULT_LIMITS_MEMORY.into(),
            scrape_interval_seconds: 5,
            scrape_timeout_seconds: 5,
            http_endpoint: "127.0.0.1:0".into(),
            watch_namespace: None,
        }
    }
}
