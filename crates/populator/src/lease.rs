//! Per-ESXi-host concurrency limit: at most N (default 2) populators run the device rescan on one host
//! at a time, coordinated through Kubernetes `coordination.k8s.io/v1` Leases named
//! `esxi-lock-<hostID>-slot-<k>` in `HOST_LEASE_NAMESPACE` — the names, namespace and holder identity
//! upstream populators use, so old and new pods share the same slots.
//!
//! Differences from upstream, and why:
//! - **Expiry never compares clocks.** Upstream declares a lease expired when `renewTime +
//!   leaseDurationSeconds` is before its own wall clock, so a holder whose clock runs behind loses its
//!   slot while alive, and one whose clock runs ahead blocks the slot long after it died. Here a lease
//!   held by someone else counts as expired only after its `resourceVersion` stayed unchanged for
//!   `leaseDurationSeconds` measured on *our* monotonic clock from the moment we first saw that
//!   version. Every renewal writes the object and changes the version, so a live holder can never be
//!   judged dead, whatever the clocks of the two pods say.
//! - **Explicit release by clearing the holder** (an UPDATE, not a DELETE): the lease namespace is
//!   shared with upstream pods whose RBAC grants `get/list/watch/create/update` on leases but not
//!   `delete`, and an update carries our `resourceVersion` so it can only ever clear a lease we still
//!   hold. A released lease has no `holderIdentity` (free for us and for client-go tooling) and a
//!   `renewTime` of the Unix epoch, so upstream pods, which only check `renewTime +
//!   leaseDurationSeconds < now` and treat a missing `renewTime` as held forever, see it as expired at
//!   once whatever their clock says.
//! - **Waiting is event-driven.** When every slot is busy we watch the slot objects and retry as soon
//!   as one changes (e.g. is released), falling back to a jittered timer and to the observed expiry
//!   deadline; waiting is cancellable.
//! - **Transient API errors do not drop the slot at once.** The renewer keeps retrying and only gives
//!   the slot up (cancelling the work under it) before another pod could legitimately judge it
//!   expired: three quarters of the lease duration after the last successful renewal was sent.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use rand::RngExt as _;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Namespace of the host leases when `HOST_LEASE_NAMESPACE` is unset (upstream's default).
pub use co_api::contract::names::DEFAULT_LEASE_NAMESPACE;
/// Lease duration when `HOST_LEASE_DURATION_SECONDS` is unset (upstream's default).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(10);
/// Concurrent holders per ESXi host (upstream's hard-coded value).
pub const DEFAULT_SLOTS: u32 = co_api::contract::names::DEFAULT_LEASE_SLOTS;
/// Longest wait between two acquisition attempts when no watch event arrives (upstream retries
/// every 10 s).
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// Environment variable naming the lease namespace (read by the argument contract).
const LEASE_NAMESPACE_ENV: &str = co_api::contract::flags::HOST_LEASE_NAMESPACE.env_name();

/// Consecutive acquisition passes that may fail with transient API errors before giving up.
const MAX_TRANSIENT_FAILURES: u32 = 5;

/// An ESXi host identity usable in a lease name: a DNS-1123 label such as `hostsystem-host-1234`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostId(String);

impl HostId {
    /// Validates `id` as a DNS-1123 label (the rule upstream enforces before naming leases).
    pub fn new(id: impl Into<String>) -> Result<Self, LeaseError> {
        let id = id.into();
        match dns1123_label_violation(&id) {
            None => Ok(Self(id)),
            Some(reason) => Err(LeaseError::InvalidHostId {
                host_id: id,
                reason,
            }),
        }
    }

    /// Derives the id upstream uses from a host's managed-object reference string
    /// (`HostSystem:host-1234` → `hostsystem-host-1234`); the same id names the initiator group
    /// `xcopy-<id>`, so it must not drift.
    pub fn from_managed_object(moref: &str) -> Result<Self, LeaseError> {
        Self::new(co_api::contract::names::host_id_from_managed_object(moref))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for HostId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn dns1123_label_violation(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        return Some("it is empty");
    }
    if id.len() > 63 {
        return Some("it is longer than 63 characters");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("it contains characters other than lower-case letters, digits and '-'");
    }
    if id.starts_with('-') || id.ends_with('-') {
        return Some("it starts or ends with '-'");
    }
    None
}

/// The name of one slot's lease (compatibility contract with upstream pods).
pub fn lease_name(host: &HostId, slot: u32) -> String {
    co_api::contract::names::host_lease_name(host.as_str(), slot)
}

/// How host leases are named, held and timed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLeaseConfig {
    /// Namespace of the lease objects.
    pub namespace: String,
    /// `leaseDurationSeconds` written into our leases; also how long we watch an unchanged lease
    /// of another holder before taking it over when it carries no duration itself.
    pub duration: Duration,
    /// Concurrent holders per host.
    pub slots: u32,
    /// `holderIdentity` written into our leases (informational: ownership is decided by
    /// `resourceVersion`, so two processes with the same identity still exclude each other).
    pub holder: String,
    /// Longest wait between two acquisition attempts when no watch event arrives.
    pub retry_interval: Duration,
}

impl Default for HostLeaseConfig {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_LEASE_NAMESPACE.to_owned(),
            duration: DEFAULT_LEASE_DURATION,
            slots: DEFAULT_SLOTS,
            holder: default_holder_identity(),
            retry_interval: DEFAULT_RETRY_INTERVAL,
        }
    }
}

impl HostLeaseConfig {
    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// How often a held lease is renewed: three times per duration, like upstream's 3 s for 10 s.
    fn renew_interval(&self) -> Duration {
        (self.duration / 3).max(Duration::from_millis(100))
    }

    /// How long after the last successful renewal (counted from when it was sent) we stop trusting
    /// that we still hold the slot. Another pod needs a full duration of our silence before taking
    /// over, so the remaining quarter is the safety margin for request latency.
    fn loss_after(&self) -> Duration {
        self.duration.mul_f64(0.75)
    }
}

/// The pod's hostname (its name, in Kubernetes), as upstream uses; `populator-<uuid>` if unreadable.
pub fn default_holder_identity() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("populator-{}", uuid::Uuid::new_v4()))
}

/// Why a held slot was given up while work was running under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LossCause {
    /// Another holder wrote the lease (it judged us dead, or someone edited the object).
    TakenOver { by: Option<String> },
    /// The lease object was deleted.
    Deleted,
    /// Renewals kept failing until the lease could have been judged expired by other pods.
    RenewalFailed { last_error: String },
}

impl std::fmt::Display for LossCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TakenOver { by: Some(by) } => write!(f, "it was taken over by {by:?}"),
            Self::TakenOver { by: None } => f.write_str("another writer changed it"),
            Self::Deleted => f.write_str("the lease object was deleted"),
            Self::RenewalFailed { last_error } => write!(
                f,
                "renewals failed for too long (last error: {last_error}); another pod may take the slot"
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "ESXi host id {host_id:?} cannot name a lease because {reason}; host ids must be DNS-1123 labels \
         (lower-case letters, digits and '-', at most 63 characters), e.g. \"hostsystem-host-1234\""
    )]
    InvalidHostId {
        host_id: String,
        reason: &'static str,
    },

    #[error(
        "the Kubernetes API refused to {operation} lease {namespace}/{name}; check that namespace \
         {namespace} exists (it is set by {LEASE_NAMESPACE_ENV}) and that the populator's service account \
         may get, list, watch, create and update leases in it"
    )]
    Refused {
        operation: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },

    #[error(
        "could not reach the Kubernetes Lease API for lease {namespace}/{name} after {attempts} attempts; \
         check the API server and the pod's network"
    )]
    Unreachable {
        namespace: String,
        name: String,
        attempts: u32,
        #[source]
        source: Box<kube::Error>,
    },

    #[error("stopped waiting for a lease slot on ESXi host {host_id}: the operation was cancelled")]
    Cancelled { host_id: HostId },

    #[error(
        "lost lease {namespace}/{name} for ESXi host {host_id} because {cause}; the work under it was cancelled"
    )]
    Lost {
        host_id: HostId,
        namespace: String,
        name: String,
        cause: LossCause,
    },

    #[error(
        "could not release lease {namespace}/{name}; it frees itself once other pods see it unrenewed for \
         its duration"
    )]
    ReleaseFailed {
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
}

impl LeaseError {
    /// The failure class: a refusal or a bad id needs a person; the rest passes by itself.
    pub fn class(&self) -> co_api::contract::ErrorClass {
        use co_api::contract::ErrorClass;
        match self {
            LeaseError::Cancelled { .. } => ErrorClass::Cancelled,
            LeaseError::InvalidHostId { .. } | LeaseError::Refused { .. } => ErrorClass::Permanent,
            LeaseError::Unreachable { .. }
            | LeaseError::Lost { .. }
            | LeaseError::ReleaseFailed { .. } => ErrorClass::Retryable,
        }
    }
}

/// Takes host-lease slots. Cheap to clone; one per process is enough.
#[derive(Clone)]
pub struct HostLease {
    api: Api<Lease>,
    config: Arc<HostLeaseConfig>,
}

impl HostLease {
    pub fn new(client: Client, config: HostLeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config: Arc::new(config),
        }
    }

    pub fn config(&self) -> &HostLeaseConfig {
        &self.config
    }

    /// Waits for a free slot on `host`, takes it and keeps renewing it until the returned
    /// [`HeldLease`] is released or dropped. Returns [`LeaseError::Cancelled`] if `cancel` fires
    /// first; the work token of the held lease is a child of `cancel`.
    pub async fn acquire(
        &self,
        host: &HostId,
        cancel: &CancellationToken,
    ) -> Result<HeldLease, LeaseError> {
        let mut observed: HashMap<String, Observation> = HashMap::new();
        let mut transient_failures = 0;
        loop {
            if cancel.is_cancelled() {
                return Err(LeaseError::Cancelled {
                    host_id: host.clone(),
                });
            }
            // Cancellation may interrupt a create or takeover the server has applied: that lease
            // is never renewed, so others take it over after its duration, like a crashed pod's.
            let pass = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(LeaseError::Cancelled { host_id: host.clone() }),
                pass = self.try_slots(host, &mut observed) => pass?,
            };
            match pass {
                Pass::Acquired {
                    slot,
                    lease,
                    sent_at,
                } => {
                    info!(host = %host, slot, lease = %lease_name(host, slot), holder = %self.config.holder, "lease acquired");
                    return Ok(HeldLease::start(
                        self,
                        host.clone(),
                        slot,
                        lease,
                        sent_at,
                        cancel,
                    ));
                }
                Pass::Busy { raced: true, .. } => {
                    debug!(host = %host, "a slot changed under us, looking again");
                }
                Pass::Busy {
                    wake_at,
                    versions,
                    transient,
                    raced: false,
                } => {
                    if let Some((name, source)) = transient {
                        transient_failures += 1;
                        if transient_failures >= MAX_TRANSIENT_FAILURES {
                            return Err(LeaseError::Unreachable {
                                namespace: self.config.namespace.clone(),
                                name,
                                attempts: transient_failures,
                                source: Box::new(source),
                            });
                        }
                        warn!(host = %host, attempt = transient_failures, error = %source, "lease API error, will retry");
                    } else {
                        transient_failures = 0;
                        info!(host = %host, slots = self.config.slots, "all lease slots taken, waiting for one to free up");
                    }
                    self.wait_for_change(host, wake_at, &versions, transient_failures, cancel)
                        .await?;
                }
            }
        }
    }

    /// Runs `work` while holding a slot on `host`, then releases the slot. The token given to
    /// `work` is cancelled if the lease is lost or `cancel` fires; a lost lease turns the result
    /// into [`LeaseError::Lost`] because the work cannot be trusted to have run exclusively.
    pub async fn with_slot<T, F, Fut>(
        &self,
        host: &HostId,
        cancel: &CancellationToken,
        work: F,
    ) -> Result<T, LeaseError>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = T>,
    {
        let held = self.acquire(host, cancel).await?;
        let output = work(held.work_token()).await;
        match held.release().await {
            Ok(()) => Ok(output),
            Err(lost @ LeaseError::Lost { .. }) => Err(lost),
            Err(release_error) => {
                warn!(error = %release_error, "work under the host lease finished but releasing the lease failed");
                Ok(output)
            }
        }
    }

    /// One pass over the slots: take the first free (missing, released or observed-expired) one.
    async fn try_slots(
        &self,
        host: &HostId,
        observed: &mut HashMap<String, Observation>,
    ) -> Result<Pass, LeaseError> {
        let mut wake_at: Option<Instant> = None;
        let mut versions = Vec::new();
        let mut transient = None;
        let mut raced = false;
        for slot in 0..self.config.slots {
            let name = lease_name(host, slot);
            match self.try_slot(&name, observed).await {
                Ok(SlotState::Acquired { lease, sent_at }) => {
                    return Ok(Pass::Acquired {
                        slot,
                        lease,
                        sent_at,
                    });
                }
                Ok(SlotState::Held {
                    expires_at,
                    resource_version,
                }) => {
                    wake_at = Some(wake_at.map_or(expires_at, |w| w.min(expires_at)));
                    versions.extend(resource_version.map(|rv| (name, rv)));
                }
                Ok(SlotState::Raced) => raced = true,
                Err(error) if is_transient(&error) => transient = Some((name, error)),
                Err(error) => {
                    return Err(LeaseError::Refused {
                        operation: "read or write",
                        namespace: self.config.namespace.clone(),
                        name,
                        source: Box::new(error),
                    });
                }
            }
        }
        Ok(Pass::Busy {
            wake_at,
            versions,
            transient,
            raced,
        })
    }

    async fn try_slot(
        &self,
        name: &str,
        observed: &mut HashMap<String, Observation>,
    ) -> Result<SlotState, kube::Error> {
        let sent_at = Instant::now();
        let Some(current) = self.api.get_opt(name).await? else {
            let lease = self.claimed(name, None);
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(lease) => Ok(SlotState::Acquired {
                    lease: Box::new(lease),
                    sent_at,
                }),
                Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(SlotState::Raced),
                Err(error) => Err(error),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let free = is_released(&current);
        let version = current.metadata.resource_version.clone();
        let seen = observed
            .entry(name.to_owned())
            .or_insert_with(|| Observation::new(version.clone()));
        if seen.resource_version != version {
            *seen = Observation::new(version.clone());
        }
        let held_for = spec
            .lease_duration_seconds
            .filter(|s| *s > 0)
            .map_or(self.config.duration, |s| {
                Duration::from_secs(s.unsigned_abs().into())
            });
        let expires_at = seen.first_seen + held_for;
        if !free && Instant::now() < expires_at {
            debug!(lease = name, holder = ?spec.holder_identity, "lease slot held by another");
            return Ok(SlotState::Held {
                expires_at,
                resource_version: version,
            });
        }
        if !free {
            info!(lease = name, holder = ?spec.holder_identity, unchanged_for = ?held_for, "lease not renewed for its duration, taking it over");
        }
        let sent_at = Instant::now();
        match self
            .api
            .replace(
                name,
                &PostParams::default(),
                &self.claimed(name, Some(&current)),
            )
            .await
        {
            Ok(lease) => Ok(SlotState::Acquired {
                lease: Box::new(lease),
                sent_at,
            }),
            Err(kube::Error::Api(status)) if status.is_conflict() || status.is_not_found() => {
                Ok(SlotState::Raced)
            }
            Err(error) => Err(error),
        }
    }

    /// The lease object that records us as holder, based on `previous` when taking one over.
    fn claimed(&self, name: &str, previous: Option<&Lease>) -> Lease {
        let now = MicroTime(jiff::Timestamp::now());
        let previous_spec = previous.and_then(|l| l.spec.clone()).unwrap_or_default();
        let transitions = match previous_spec.holder_identity.as_deref() {
            Some(h) if !h.is_empty() && h != self.config.holder => previous_spec
                .lease_transitions
                .unwrap_or(0)
                .saturating_add(1),
            _ => previous_spec.lease_transitions.unwrap_or(0),
        };
        Lease {
            metadata: previous.map_or_else(
                || ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                |l| l.metadata.clone(),
            ),
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.holder.clone()),
                lease_duration_seconds: Some(self.config.duration_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(transitions),
                ..previous_spec
            }),
        }
    }

    /// Sleeps until a watched slot changes, the earliest observed lease could expire, a jittered
    /// retry interval passes, or `cancel` fires.
    async fn wait_for_change(
        &self,
        host: &HostId,
        wake_at: Option<Instant>,
        versions: &[(String, String)],
        transient_failures: u32,
        cancel: &CancellationToken,
    ) -> Result<(), LeaseError> {
        let retry = if transient_failures > 0 {
            Duration::from_millis(250).saturating_mul(1 << transient_failures.min(6))
        } else {
            self.config.retry_interval
        };
        let timer = Instant::now() + jittered(retry);
        let deadline = wake_at.map_or(timer, |w| w.min(timer));
        let timeout_secs =
            u32::try_from(deadline.saturating_duration_since(Instant::now()).as_secs() + 1)
                .unwrap_or(u32::MAX);

        let mut watches = Vec::new();
        for (name, version) in versions {
            let params = WatchParams::default()
                .fields(&format!("metadata.name={name}"))
                .timeout(timeout_secs);
            match self.api.watch(&params, version).await {
                Ok(events) => watches.push(events.boxed()),
                Err(error) => {
                    debug!(lease = %name, %error, "cannot watch lease, relying on the retry timer")
                }
            }
        }
        let mut changes =
            std::pin::pin!(stream::select_all(watches).filter_map(|event| async move {
                match event {
                    Ok(WatchEvent::Deleted(_)) => Some(()),
                    Ok(WatchEvent::Added(lease) | WatchEvent::Modified(lease)) => {
                        is_released(&lease).then_some(())
                    }
                    // A renewal (holder still set) cannot free the slot: waking for it would make
                    // every waiter poll on every renewal. Errors and bookmarks say nothing about
                    // the slots; the timer covers a broken watch.
                    Ok(WatchEvent::Bookmark(_) | WatchEvent::Error(_)) | Err(_) => None,
                }
            }));
        let changed = async {
            if changes.next().await.is_none() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(LeaseError::Cancelled { host_id: host.clone() }),
            _ = changed => Ok(()),
            _ = sleep_until(deadline) => Ok(()),
        }
    }
}

/// The first moment we saw a lease's current version: expiry is judged from here on our clock.
struct Observation {
    resource_version: Option<String>,
    first_seen: Instant,
}

impl Observation {
    fn new(resource_version: Option<String>) -> Self {
        Self {
            resource_version,
            first_seen: Instant::now(),
        }
    }
}

enum SlotState {
    Acquired {
        lease: Box<Lease>,
        sent_at: Instant,
    },
    Held {
        expires_at: Instant,
        resource_version: Option<String>,
    },
    /// Someone else wrote the slot between our read and our write; look again on the next pass.
    Raced,
}

enum Pass {
    Acquired {
        slot: u32,
        lease: Box<Lease>,
        sent_at: Instant,
    },
    Busy {
        wake_at: Option<Instant>,
        versions: Vec<(String, String)>,
        transient: Option<(String, kube::Error)>,
        /// A slot changed between our read and write: look again at once instead of waiting.
        raced: bool,
    },
}

/// Errors worth retrying: the API server is overloaded, restarting or briefly unreachable.
/// Anything else (forbidden, not found, invalid) will not fix itself.
pub(crate) fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

fn jittered(base: Duration) -> Duration {
    base.mul_f64(rand::rng().random_range(0.8..1.2))
}

/// A slot held on one host: renewed in the background until [`HeldLease::release`] or drop.
pub struct HeldLease {
    api: Api<Lease>,
    host: HostId,
    namespace: String,
    name: String,
    slot: u32,
    work: CancellationToken,
    stop_renewing: CancellationToken,
    renewer: Option<JoinHandle<Option<Lease>>>,
    loss: Arc<OnceLock<LossCause>>,
}

impl HeldLease {
    fn start(
        owner: &HostLease,
        host: HostId,
        slot: u32,
        lease: Box<Lease>,
        sent_at: Instant,
        cancel: &CancellationToken,
    ) -> Self {
        let name = lease_name(&host, slot);
        let work = cancel.child_token();
        let stop_renewing = CancellationToken::new();
        let loss = Arc::new(OnceLock::new());
        let renewer = tokio::spawn(
            Renewer {
                api: owner.api.clone(),
                name: name.clone(),
                interval: owner.config.renew_interval(),
                loss_after: owner.config.loss_after(),
                work: work.clone(),
                stop: stop_renewing.clone(),
                loss: Arc::clone(&loss),
            }
            .run(*lease, sent_at),
        );
        Self {
            api: owner.api.clone(),
            host,
            namespace: owner.config.namespace.clone(),
            name,
            slot,
            work,
            stop_renewing,
            renewer: Some(renewer),
            loss,
        }
    }

    pub fn slot(&self) -> u32 {
        self.slot
    }

    pub fn lease_name(&self) -> &str {
        &self.name
    }

    /// Cancelled when the lease is lost, when the caller's token passed to
    /// [`HostLease::acquire`] is cancelled, or once the lease is released.
    pub fn work_token(&self) -> CancellationToken {
        self.work.clone()
    }

    /// Why the lease was lost, if it was.
    pub fn loss(&self) -> Option<LossCause> {
        self.loss.get().cloned()
    }

    /// Stops renewing and frees the slot at once for every waiter (see the module comment).
    /// Returns [`LeaseError::Lost`] if the lease had been lost meanwhile.
    pub async fn release(mut self) -> Result<(), LeaseError> {
        let renewer = self.renewer.take();
        let result = release_slot(&self.api, &self.stop_renewing, renewer, &self.name).await;
        self.work.cancel();
        match (self.loss(), result) {
            (Some(cause), _) => Err(LeaseError::Lost {
                host_id: self.host.clone(),
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                cause,
            }),
            (None, Ok(())) => {
                info!(host = %self.host, slot = self.slot, lease = %self.name, "lease released");
                Ok(())
            }
            (None, Err(source)) => Err(LeaseError::ReleaseFailed {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                source: Box::new(source),
            }),
        }
    }
}

impl std::fmt::Debug for HeldLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldLease")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("slot", &self.slot)
            .field("loss", &self.loss.get())
            .finish_non_exhaustive()
    }
}

impl Drop for HeldLease {
    /// A guard dropped without `release` (early return, panic unwinding) still frees the slot, in
    /// the background; without a runtime it only stops renewing and the lease expires.
    fn drop(&mut self) {
        self.work.cancel();
        let Some(renewer) = self.renewer.take() else {
            return;
        };
        self.stop_renewing.cancel();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (api, stop, name) = (
            self.api.clone(),
            self.stop_renewing.clone(),
            self.name.clone(),
        );
        runtime.spawn(async move {
            match release_slot(&api, &stop, Some(renewer), &name).await {
                Ok(()) => info!(lease = %name, "lease released"),
                Err(error) => {
                    warn!(lease = %name, %error, "could not release dropped lease; it will expire")
                }
            }
        });
    }
}

async fn release_slot(
    api: &Api<Lease>,
    stop: &CancellationToken,
    renewer: Option<JoinHandle<Option<Lease>>>,
    name: &str,
) -> Result<(), kube::Error> {
    stop.cancel();
    let Some(renewer) = renewer else {
        return Ok(());
    };
    let Ok(Some(mut lease)) = renewer.await else {
        return Ok(());
    };
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = Some(MicroTime(jiff::Timestamp::UNIX_EPOCH));
    }
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        // Someone else already holds or removed it: nothing of ours is left to free.
        Err(kube::Error::Api(status)) if status.is_conflict() || status.is_not_found() => Ok(()),
        Err(error) => Err(error),
    }
}

/// Background task that keeps one lease renewed; yields the last written lease when stopped, or
/// `None` after the lease was lost.
struct Renewer {
    api: Api<Lease>,
    name: String,
    interval: Duration,
    loss_after: Duration,
    work: CancellationToken,
    stop: CancellationToken,
    loss: Arc<OnceLock<LossCause>>,
}

impl Renewer {
    async fn run(self, mut lease: Lease, mut last_renewed: Instant) -> Option<Lease> {
        let mut next_attempt = self.interval;
        let mut last_error = String::from("none");
        loop {
            let lost_at = last_renewed + self.loss_after;
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => return Some(lease),
                _ = sleep_until(lost_at) => return self.lose(LossCause::RenewalFailed { last_error }),
                _ = sleep(next_attempt) => {}
            }
            let sent_at = Instant::now();
            let mut renewed = lease.clone();
            if let Some(spec) = renewed.spec.as_mut() {
                spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
            }
            // A renewal in flight is not interrupted by `stop` (release needs its outcome to know
            // the current resourceVersion), only by the loss deadline.
            let params = PostParams::default();
            let attempt = tokio::select! {
                _ = sleep_until(lost_at) => return self.lose(LossCause::RenewalFailed { last_error }),
                attempt = timeout(self.interval, self.api.replace(&self.name, &params, &renewed)) => attempt,
            };
            match attempt {
                Ok(Ok(updated)) => {
                    lease = updated;
                    last_renewed = sent_at;
                    next_attempt = self.interval;
                    debug!(lease = %self.name, "lease renewed");
                }
                Ok(Err(kube::Error::Api(status)))
                    if status.is_conflict() || status.is_not_found() =>
                {
                    let cause = match self.api.get_opt(&self.name).await {
                        Ok(None) => LossCause::Deleted,
                        // A renewal that timed out here may still have been applied: the lease is
                        // then still ours (same holder and acquire time), only newer.
                        Ok(Some(current)) if same_tenure(&current, &lease) => {
                            lease = current;
                            next_attempt = Duration::ZERO;
                            continue;
                        }
                        Ok(Some(current)) => LossCause::TakenOver {
                            by: current.spec.and_then(|s| s.holder_identity),
                        },
                        Err(_) => LossCause::TakenOver { by: None },
                    };
                    return self.lose(cause);
                }
                Ok(Err(error)) => {
                    warn!(lease = %self.name, %error, "lease renewal failed, retrying");
                    last_error = error.to_string();
                    next_attempt = self.interval / 2;
                }
                Err(_elapsed) => {
                    warn!(lease = %self.name, "lease renewal timed out, retrying");
                    last_error = format!("no answer within {:?}", self.interval);
                    next_attempt = self.interval / 2;
                }
            }
        }
    }

    fn lose(&self, cause: LossCause) -> Option<Lease> {
        warn!(lease = %self.name, %cause, "lease lost, cancelling the work under it");
        let _ = self.loss.set(cause);
        self.work.cancel();
        None
    }
}

/// A lease without a holder is free for anyone (our release, client-go's convention).
fn is_released(lease: &Lease) -> bool {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .is_none_or(str::is_empty)
}

/// Whether `current` is still the tenure recorded in `ours`: a takeover always writes a new
/// holder or acquire time.
fn same_tenure(current: &Lease, ours: &Lease) -> bool {
    let (current, ours) = (current.spec.as_ref(), ours.spec.as_ref());
    let holder = |s: Option<&LeaseSpec>| s.and_then(|s| s.holder_identity.clone());
    let acquired = |s: Option<&LeaseSpec>| s.and_then(|s| s.acquire_time.clone());
    holder(current).is_some()
        && holder(current) == holder(ours)
        && acquired(current) == acquired(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_must_be_dns1123_labels() {
        assert!(HostId::new("hostsystem-host-1234").is_ok());
        for bad in [
            "",
            "HostSystem-host-1",
            "host_1",
            "-host",
            "host-",
            &"a".repeat(64),
            "host.1",
        ] {
            let err = HostId::new(bad).unwrap_err();
            assert!(
                matches!(err, LeaseError::InvalidHostId { .. }),
                "{bad:?} accepted"
            );
            assert!(err.to_string().contains("DNS-1123"), "{err}");
        }
    }

    #[test]
    fn host_id_from_moref_matches_upstream_spelling() {
        let id = HostId::from_managed_object("HostSystem:host-1234").unwrap();
        assert_eq!(id.as_str(), "hostsystem-host-1234");
        assert_eq!(lease_name(&id, 1), "esxi-lock-hostsystem-host-1234-slot-1");
    }

    #[test]
    fn loss_comes_before_others_may_take_over() {
        let config = HostLeaseConfig::default();
        assert!(config.loss_after() + config.renew_interval() / 2 < config.duration);
        assert!(config.renew_interval() * 2 < config.loss_after());
    }

    #[test]
    fn a_tenure_is_holder_and_acquire_time() {
        let lease = |holder: Option<&str>, acquired: i64| Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                acquire_time: Some(MicroTime(jiff::Timestamp::from_second(acquired).unwrap())),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        assert!(same_tenure(
            &lease(Some("pod-a"), 100),
            &lease(Some("pod-a"), 100)
        ));
        assert!(
            !same_tenure(&lease(Some("pod-a"), 200), &lease(Some("pod-a"), 100)),
            "re-acquired by a namesake"
        );
        assert!(!same_tenure(
            &lease(Some("pod-b"), 100),
            &lease(Some("pod-a"), 100)
        ));
        assert!(
            !same_tenure(&lease(None, 100), &lease(None, 100)),
            "a released lease is nobody's"
        );
    }

    #[test]
    fn holder_identity_is_never_empty() {
        assert!(!default_holder_identity().is_empty());
    }
}
