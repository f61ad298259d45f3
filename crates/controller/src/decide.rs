//! The populator controller's decisions: a pure function from what was observed about one user PVC
//! (the PVC, its CR, the prime PVC, the pod, the prime PVC's PV, the storage class, the load on the
//! ESXi host, the time) to the list of actions that move it one step forward. The Kubernetes calls
//! live in `reconcile`; everything worth testing lives here.
//!
//! The state machine is implicit in the objects, so a restarted controller picks up where the last
//! one stopped: no pod → prime PVC and pod created → pod running (scraped) → pod succeeded → PV's
//! claimRef moved to the user PVC → prime PVC `Lost` and user PVC bound → prime PVC (and pod)
//! deleted, finalizer removed. A retryable failure deletes the pod and records the attempt and the
//! earliest next start in annotations of the user PVC; a permanent one stops with a condition.

use std::time::Duration;

use co_api::contract::{ErrorClass, ExitCode};
use co_api::{CopyPhase, GROUP, NormalizedSpec, VSphereXcopyVolumePopulator};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};

use crate::objects::{self, SELECTED_NODE_ANNOTATION};
use crate::settings::Settings;

/// The kind of data source this controller populates.
pub const KIND: &str = "VSphereXcopyVolumePopulator";
/// Finalizer on the user PVC while a copy is in flight: a deleted PVC keeps its objects until the
/// populator pod has been stopped (SIGTERM, so it cleans the array) and is gone.
pub const FINALIZER: &str = "copy-offload.konveyor.io/populate-target-protection";
/// Annotation on the user PVC: populator runs started so far.
pub const ATTEMPTS_ANNOTATION: &str = "copy-offload.konveyor.io/populator-attempts";
/// Annotation on the user PVC: the earliest time the next populator run may start (RFC 3339).
pub const RETRY_NOT_BEFORE_ANNOTATION: &str = "copy-offload.konveyor.io/retry-not-before";
/// Annotation on the PV moved to the user PVC (lib-volume-populator's convention).
pub const POPULATED_FROM_ANNOTATION: &str = "forklift.konveyor.io/populated-from";
/// How often to look again while the ESXi host has no free slot.
pub const THROTTLE_RECHECK: Duration = Duration::from_secs(5);

/// The storage class of the user PVC, as far as the decision cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassBinding {
    /// The PVC names no class (or the default class applies later): bind immediately.
    Immediate,
    /// The class binds when a consumer is scheduled.
    WaitForFirstConsumer,
    /// The PVC names a class that does not exist (yet).
    Missing,
}

/// Everything observed about one user PVC.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub pvc: &'a PersistentVolumeClaim,
    pub populator: Option<&'a VSphereXcopyVolumePopulator>,
    pub class: ClassBinding,
    pub prime: Option<&'a PersistentVolumeClaim>,
    pub pod: Option<&'a Pod>,
    /// The PV the prime PVC is bound to.
    pub prime_pv: Option<&'a PersistentVolume>,
    /// Populator pods (other than this PVC's) pending or running on the same ESXi host.
    pub inflight_on_host: usize,
    pub now: Timestamp,
}

/// The CR status the decision wants; `None` fields are left as they are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusUpdate {
    pub phase: Option<CopyPhase>,
    /// `"success"` or `"failure"`.
    pub result: Option<&'static str>,
    /// A condition to set: (type, status, reason, message).
    pub condition: Option<Condition>,
    /// Set the `forklift.konveyor.io/offload-completed=true` label.
    pub completed_label: bool,
}

/// A condition to set on the CR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// An Event on the user PVC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// One step the kube layer carries out, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    AddFinalizer,
    RemoveFinalizer,
    CreatePrime(Box<PersistentVolumeClaim>),
    CreatePod(Box<k8s_openapi::api::core::v1::Pod>),
    /// Graceful delete: the kubelet sends SIGTERM and the populator cleans up.
    DeletePod,
    DeletePrime,
    /// Record a finished run and the earliest start of the next.
    RecordAttempt {
        attempts: u32,
        not_before: Timestamp,
    },
    /// Point the PV's claimRef at the user PVC and annotate where it was populated from.
    RebindPv {
        pv: String,
        populated_from: String,
    },
    /// Scrape the running pod's metrics into the CR status (until it stops running).
    Monitor {
        pod_ip: String,
        port: u16,
    },
    StopMonitor,
    Status(StatusUpdate),
    Event(Event),
    /// Look again after this long even if nothing changes.
    Requeue(Duration),
}

/// Which object a PVC's data source names, if it names our kind: `dataSourceRef`, else
/// `dataSource` (the only field on servers before 1.24 with the gate off).
pub fn source_name(pvc: &PersistentVolumeClaim) -> Option<String> {
    let spec = pvc.spec.as_ref()?;
    if let Some(reference) = &spec.data_source_ref {
        // dataSourceRef wins when set, even if dataSource names something else (the API server
        // keeps them equal anyway when both are set).
        return (reference.api_group.as_deref() == Some(GROUP)
            && reference.kind == KIND
            && !reference.name.is_empty()
            && reference
                .namespace
                .as_deref()
                .is_none_or(|ns| Some(ns) == pvc.metadata.namespace.as_deref()))
        .then(|| reference.name.clone());
    }
    let source = spec.data_source.as_ref()?;
    (source.api_group.as_deref() == Some(GROUP) && source.kind == KIND && !source.name.is_empty())
        .then(|| source.name.clone())
}

fn annotation<'a>(pvc: &'a PersistentVolumeClaim, key: &str) -> Option<&'a str> {
    pvc.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn has_finalizer(pvc: &PersistentVolumeClaim) -> bool {
    pvc.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// The exit code and termination message of the populate container, once it terminated.
fn termination(pod: &Pod) -> Option<(i32, String)> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let status = statuses
        .iter()
        .find(|s| s.name == objects::CONTAINER_NAME)?;
    let terminated = status.state.as_ref()?.terminated.as_ref()?;
    Some((
        terminated.exit_code,
        terminated.message.clone().unwrap_or_default(),
    ))
}

/// The populator's last error from a termination message (the tail of its log): the last line
/// logged at ERROR level, else the last line. JSON log lines (the format in a pod) are reduced to
/// their message and error fields.
pub fn last_line(message: &str) -> Option<String> {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let chosen = lines
        .iter()
        .rev()
        .find(|l| log_level(l).as_deref() == Some("ERROR"))
        .or(lines.last())?;
    Some(readable(chosen))
}

fn log_level(line: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(json) => json.get("level")?.as_str().map(str::to_owned),
        Err(_) => line
            .split_whitespace()
            .find(|w| matches!(*w, "ERROR" | "WARN" | "INFO" | "DEBUG" | "TRACE"))
            .map(str::to_owned),
    }
}

fn readable(line: &str) -> String {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_owned();
    };
    let Some(fields) = json.get("fields").and_then(|f| f.as_object()) else {
        return line.to_owned();
    };
    let mut text = fields
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_owned();
    for (key, value) in fields.iter().filter(|(k, _)| *k != "message") {
        let value = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        text.push_str(&format!(" {key}={value}"));
    }
    text
}

fn wait_status(reason: &'static str, message: String) -> Action {
    Action::Status(StatusUpdate {
        phase: Some(CopyPhase::Pending),
        condition: Some(Condition {
            type_: "Ready",
            status: false,
            reason,
            message,
        }),
        ..Default::default()
    })
}

fn already_failed(cr: &VSphereXcopyVolumePopulator) -> bool {
    cr.status
        .as_ref()
        .is_some_and(|s| s.phase == Some(CopyPhase::Failed))
}

fn already_succeeded(cr: &VSphereXcopyVolumePopulator) -> bool {
    cr.status
        .as_ref()
        .is_some_and(|s| s.phase == Some(CopyPhase::Succeeded))
}

/// The actions for one observation. An empty list means nothing to do until something changes.
pub fn decide(observed: &Observed<'_>, settings: &Settings, image: &str) -> Vec<Action> {
    let pvc = observed.pvc;
    let Some(cr_name) = source_name(pvc) else {
        return Vec::new();
    };
    if pvc.metadata.deletion_timestamp.is_some() {
        return on_deleted(observed);
    }
    let bound = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .is_some_and(|v| !v.is_empty());
    if bound {
        return on_bound(observed, settings);
    }
    let Some(cr) = observed.populator else {
        // The CR watch brings the PVC back when the CR appears.
        return vec![Action::Event(Event {
            warning: false,
            reason: "PopulatorSourceMissing",
            message: format!(
                "waiting for {KIND} {cr_name:?} in namespace {:?}: create it, or fix the PVC's dataSourceRef",
                pvc.metadata.namespace.as_deref().unwrap_or_default()
            ),
        })];
    };
    let spec = match cr.spec.normalized() {
        Ok(spec) => spec,
        Err(error) => {
            if already_failed(cr) {
                return Vec::new();
            }
            return fail(
                format!("{error}; edit the {KIND} {cr_name:?}"),
                "InvalidSpec",
            );
        }
    };
    if let Some(target) = &spec.target_pvc
        && Some(target.as_str()) != pvc.metadata.name.as_deref()
    {
        if already_failed(cr) {
            return Vec::new();
        }
        return fail(
            format!(
                "spec.targetPVC names {target:?} but PVC {:?} references this {KIND}; one {KIND} populates one PVC",
                pvc.metadata.name.as_deref().unwrap_or_default()
            ),
            "TargetMismatch",
        );
    }
    match observed.class {
        ClassBinding::Missing => {
            let class = pvc
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.clone())
                .unwrap_or_default();
            return vec![wait_status(
                "StorageClassMissing",
                format!("waiting for StorageClass {class:?} to exist"),
            )];
        }
        ClassBinding::WaitForFirstConsumer
            if annotation(pvc, SELECTED_NODE_ANNOTATION).is_none() =>
        {
            return vec![wait_status(
                "WaitingForFirstConsumer",
                "the storage class binds on first use: waiting for a pod using the PVC to be scheduled".into(),
            )];
        }
        _ => {}
    }
    on_unbound(observed, cr, &spec, settings, image)
}

/// A failure: the Event first, so whoever sees the status can already find the Event.
fn fail(message: String, reason: &'static str) -> Vec<Action> {
    vec![
        Action::Event(Event {
            warning: true,
            reason: "PopulatorFailed",
            message: message.clone(),
        }),
        Action::Status(StatusUpdate {
            phase: Some(CopyPhase::Failed),
            result: Some("failure"),
            condition: Some(Condition {
                type_: "Failed",
                status: true,
                reason,
                message,
            }),
            completed_label: false,
        }),
    ]
}

fn on_unbound(
    observed: &Observed<'_>,
    cr: &VSphereXcopyVolumePopulator,
    spec: &NormalizedSpec,
    settings: &Settings,
    image: &str,
) -> Vec<Action> {
    let pvc = observed.pvc;
    if already_succeeded(cr) && observed.pod.is_none_or(|p| pod_phase(p) != "Succeeded") {
        // The copy is done and its PV already moved: this is a stale view of the PVC from
        // before the PV controller bound it. Starting another run would copy twice.
        return Vec::new();
    }
    let mut actions = Vec::new();
    if !has_finalizer(pvc) {
        actions.push(Action::AddFinalizer);
    }
    if observed.prime.is_none() {
        actions.push(Action::CreatePrime(Box::new(objects::prime_pvc(pvc, cr))));
    }
    let attempts: u32 = annotation(pvc, ATTEMPTS_ANNOTATION)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let Some(pod) = observed.pod else {
        if already_failed(cr) {
            // A permanent failure stops here; deleting the CR's status (or the PVC) starts over.
            return actions;
        }
        if let Some(not_before) =
            annotation(pvc, RETRY_NOT_BEFORE_ANNOTATION).and_then(|t| t.parse::<Timestamp>().ok())
            && not_before > observed.now
        {
            let wait = observed.now.duration_until(not_before).unsigned_abs();
            actions.push(Action::Requeue(wait));
            return actions;
        }
        let host = objects::source_host(cr, spec);
        if settings.max_populator_inflight > 0
            && let Some(host) = host
            && observed.inflight_on_host >= settings.max_populator_inflight
        {
            let message = format!(
                "waiting for a free populator slot on ESXi host {host} ({}/{} in flight)",
                observed.inflight_on_host, settings.max_populator_inflight
            );
            actions.push(wait_status("PopulatorThrottled", message.clone()));
            actions.push(Action::Event(Event {
                warning: false,
                reason: "PopulatorThrottled",
                message,
            }));
            actions.push(Action::Requeue(THROTTLE_RECHECK));
            return actions;
        }
        actions.push(Action::CreatePod(Box::new(objects::populator_pod(
            pvc, cr, spec, settings, image,
        ))));
        actions.push(Action::Status(StatusUpdate {
            phase: Some(CopyPhase::Pending),
            condition: Some(Condition {
                type_: "Ready",
                status: false,
                reason: "PopulatorCreated",
                message: format!("populator run {} started", attempts + 1),
            }),
            ..Default::default()
        }));
        actions.push(Action::Event(Event {
            warning: false,
            reason: "PopulatorCreated",
            message: format!(
                "populator started (run {} of at most {})",
                attempts + 1,
                settings.max_attempts
            ),
        }));
        return actions;
    };
    if pod.metadata.deletion_timestamp.is_some() {
        // A retry's delete is under way; the pod watch brings us back when it is gone.
        return actions;
    }
    match pod_phase(pod) {
        "Succeeded" => {
            actions.push(Action::StopMonitor);
            let pv = observed
                .prime
                .and_then(|p| p.spec.as_ref())
                .and_then(|s| s.volume_name.clone());
            let Some(pv_name) = pv else {
                let message = "the populator succeeded but the prime PVC has no volume".to_owned();
                actions.extend(fail(message, "PrimeUnbound"));
                return actions;
            };
            let claimed_by_user = observed.prime_pv.is_some_and(|pv| {
                pv.spec
                    .as_ref()
                    .and_then(|s| s.claim_ref.as_ref())
                    .is_some_and(|c| c.uid.as_deref() == pvc.metadata.uid.as_deref())
            });
            if observed.prime_pv.is_some() && !claimed_by_user {
                actions.push(Action::RebindPv {
                    pv: pv_name,
                    populated_from: format!(
                        "{}/{}",
                        pvc.metadata.namespace.as_deref().unwrap_or_default(),
                        cr.metadata.name.as_deref().unwrap_or_default()
                    ),
                });
            }
            if !already_succeeded(cr) {
                actions.push(Action::Status(StatusUpdate {
                    phase: Some(CopyPhase::Succeeded),
                    result: Some("success"),
                    condition: Some(Condition {
                        type_: "Ready",
                        status: true,
                        reason: "Copied",
                        message: "the disk was copied; binding the PVC".into(),
                    }),
                    completed_label: true,
                }));
            }
        }
        "Failed" => {
            actions.push(Action::StopMonitor);
            if already_failed(cr) {
                return actions;
            }
            let (code, message) = termination(pod).unwrap_or((-1, String::new()));
            let last =
                last_line(&message).unwrap_or_else(|| "(no log line: see the pod's logs)".into());
            let class = ExitCode::from_code(code)
                .and_then(ExitCode::class)
                .unwrap_or(ErrorClass::Bug);
            let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
            let run = attempts + 1;
            let retry = matches!(class, ErrorClass::Retryable | ErrorClass::Cancelled);
            if retry && run < settings.max_attempts {
                let backoff = settings.retry_backoff(run);
                let not_before = observed.now.checked_add(backoff).unwrap_or(observed.now);
                actions.push(Action::RecordAttempt {
                    attempts: run,
                    not_before,
                });
                actions.push(Action::DeletePod);
                let status = wait_status(
                    "PopulatorRetrying",
                    format!(
                        "run {run} failed with a retryable error (exit {code}): {last}; retrying in {}s",
                        backoff.as_secs()
                    ),
                );
                actions.push(Action::Event(Event {
                    warning: true,
                    reason: "PopulatorRetrying",
                    message: format!(
                        "populator pod {pod_name} failed with a retryable error (exit {code}): {last}. Run {} of {} starts in {}s",
                        run + 1,
                        settings.max_attempts,
                        backoff.as_secs()
                    ),
                }));
                actions.push(status);
            } else {
                let why = match class {
                    ErrorClass::Retryable | ErrorClass::Cancelled => {
                        format!("failed {run} times, the last with a retryable error (exit {code})")
                    }
                    ErrorClass::Permanent => format!("failed permanently (exit {code})"),
                    ErrorClass::Bug => format!("failed with an internal error (exit {code})"),
                };
                actions.extend(fail(
                    format!(
                        "populator pod {pod_name} {why}: {last}. Fix the cause, then delete and re-create the PVC (logs: kubectl logs -n {} {pod_name})",
                        pod.metadata.namespace.as_deref().unwrap_or_default()
                    ),
                    "PopulatorFailed",
                ));
            }
        }
        _ => {
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
            if let Some(pod_ip) = ip.filter(|ip| !ip.is_empty()) {
                actions.push(Action::Monitor {
                    pod_ip,
                    port: metrics_port(pod),
                });
            }
        }
    }
    actions
}

/// The port named `metrics` of the populate container (the contract's default otherwise).
fn metrics_port(pod: &Pod) -> u16 {
    pod.spec
        .as_ref()
        .and_then(|s| {
            s.containers
                .iter()
                .find(|c| c.name == objects::CONTAINER_NAME)
        })
        .and_then(|c| c.ports.as_ref())
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| p.name.as_deref() == Some(co_api::contract::metrics::CONTAINER_PORT_NAME))
        })
        .and_then(|p| u16::try_from(p.container_port).ok())
        .unwrap_or(co_api::contract::metrics::DEFAULT_PORT)
}

/// The user PVC is bound: once the prime PVC lost its volume to it, clean up.
fn on_bound(observed: &Observed<'_>, settings: &Settings) -> Vec<Action> {
    let mut actions = Vec::new();
    match observed.prime {
        Some(prime) => {
            let lost = prime.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Lost");
            if !lost {
                // The PV controller is still moving the volume over; its update of the prime PVC
                // brings us back.
                return actions;
            }
            actions.push(Action::StopMonitor);
            actions.push(Action::DeletePrime);
            if observed.pod.is_some() && !settings.retain_populator_pods {
                actions.push(Action::DeletePod);
            }
            actions.push(Action::Event(Event {
                warning: false,
                reason: "PopulatorFinished",
                message: "populator finished: the PVC is bound to the copied volume".into(),
            }));
        }
        None => {
            if observed.pod.is_some() && !settings.retain_populator_pods {
                actions.push(Action::DeletePod);
            }
        }
    }
    if has_finalizer(observed.pvc) {
        actions.push(Action::RemoveFinalizer);
    }
    actions
}

/// The user PVC is being deleted: stop the pod first (SIGTERM: the populator undoes what it did
/// on the array and the host), then let its objects go.
fn on_deleted(observed: &Observed<'_>) -> Vec<Action> {
    if !has_finalizer(observed.pvc) {
        return Vec::new();
    }
    let mut actions = vec![Action::StopMonitor];
    if let Some(pod) = observed.pod {
        let finished = matches!(pod_phase(pod), "Succeeded" | "Failed");
        if !finished {
            if pod.metadata.deletion_timestamp.is_none() {
                actions.push(Action::DeletePod);
                actions.push(Action::Event(Event {
                    warning: false,
                    reason: "PopulatorCancelling",
                    message: "the PVC is being deleted: stopping the populator, which cleans up the array and the ESXi host".into(),
                }));
            }
            // Wait for the pod to be gone; its deletion brings us back.
            return actions;
        }
        actions.push(Action::DeletePod);
    }
    if observed.prime.is_some() {
        actions.push(Action::DeletePrime);
    }
    actions.push(Action::RemoveFinalizer);
    actions
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
