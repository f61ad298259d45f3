//! The thin Kubernetes layer around [`decide`](crate::decide): observe the objects of one PVC,
//! ask the decision function, carry out its actions. Also the per-pod metrics monitors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use co_api::contract::names;
use co_api::{VSphereXcopyVolumePopulator, VSphereXcopyVolumePopulatorStatus};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition as KubeCondition, Time};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::decide::{
    self, ATTEMPTS_ANNOTATION, Action, ClassBinding, FINALIZER, Observed,
    POPULATED_FROM_ANNOTATION, RETRY_NOT_BEFORE_ANNOTATION, StatusUpdate,
};
use crate::metrics::Fleet;
use crate::objects::SOURCE_HOST_LABEL;
use crate::scrape;
use crate::settings::Settings;

/// Field manager of every write.
pub const MANAGER: &str = "copy-offload-controller";

/// A failed reconcile: retried with backoff by the controller runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} failed: {}", short(.source))]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// A write raced another writer (409): retried at once, nothing to tell anyone.
    pub fn is_conflict(&self) -> bool {
        match self {
            Error::Kube { source, .. } => conflict_or_exists(source),
        }
    }
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub image: String,
    pub recorder: Recorder,
    pub scraper: reqwest::Client,
    pub fleet: Fleet,
    monitors: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        image: String,
        recorder: Recorder,
        scraper: reqwest::Client,
        fleet: Fleet,
    ) -> Self {
        Self {
            client,
            settings,
            image,
            recorder,
            scraper,
            fleet,
            monitors: Mutex::new(HashMap::new()),
        }
    }

    fn stop_monitor(&self, pvc_uid: &str) {
        if let Ok(mut monitors) = self.monitors.lock()
            && let Some(handle) = monitors.remove(pvc_uid)
        {
            handle.abort();
        }
        self.fleet.set_monitored(self.monitor_count());
    }

    fn monitor_count(&self) -> usize {
        self.monitors.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if let Ok(monitors) = self.monitors.lock() {
            for handle in monitors.values() {
                handle.abort();
            }
        }
    }
}

/// The API server's message for an API error, the error itself otherwise.
fn short(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// A delete or patch whose object is already gone has nothing left to do.
fn unless_gone<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Err(e) if not_found(&e) => Ok(()),
        other => other.map(|_| ()),
    }
}

fn not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

fn conflict_or_exists(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

async fn get_opt<K>(api: &Api<K>, name: &str) -> Result<Option<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .map_err(kube_err(format!("reading {} {name}", K::kind(&()))))
}

/// Reconciles one PVC.
pub async fn reconcile(
    pvc: Arc<PersistentVolumeClaim>,
    ctx: Arc<Context>,
) -> Result<Requeue, Error> {
    let Some(cr_name) = decide::source_name(&pvc) else {
        return Ok(Requeue::await_change());
    };
    ctx.fleet.reconciled();
    let namespace = pvc.namespace().unwrap_or_default();
    let uid = pvc.uid().unwrap_or_default();
    let client = ctx.client.clone();
    let crs: Api<VSphereXcopyVolumePopulator> = Api::namespaced(client.clone(), &namespace);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pvs: Api<PersistentVolume> = Api::all(client.clone());

    // Independent reads, sent together: a reconcile's latency is one round trip, not five.
    let prime_name = names::prime_pvc_name(&uid);
    let pod_name = names::populator_pod_name(&uid);
    let (cr, prime, pod, class) = tokio::try_join!(
        get_opt(&crs, &cr_name),
        get_opt(&pvcs, &prime_name),
        get_opt(&pods, &pod_name),
        class_binding(&client, &pvc),
    )?;
    let prime_pv = match prime
        .as_ref()
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty())
    {
        Some(name) => get_opt(&pvs, &name).await?,
        None => None,
    };
    let inflight_on_host = match (&pod, &cr) {
        (None, Some(cr)) if ctx.settings.max_populator_inflight > 0 => {
            match cr
                .spec
                .normalized()
                .ok()
                .and_then(|spec| crate::objects::source_host(cr, &spec))
            {
                Some(host) => inflight_on(&client, &host, &uid).await?,
                None => 0,
            }
        }
        _ => 0,
    };
    let observed = Observed {
        pvc: &pvc,
        populator: cr.as_ref(),
        class,
        prime: prime.as_ref(),
        pod: pod.as_ref(),
        prime_pv: prime_pv.as_ref(),
        inflight_on_host,
        now: Timestamp::now(),
    };
    let actions = decide::decide(&observed, &ctx.settings, &ctx.image);
    tracing::debug!(pvc = %pvc.name_any(), namespace, ?actions, "decided");
    let mut requeue = Requeue::await_change();
    for action in actions {
        match action {
            Action::AddFinalizer | Action::RemoveFinalizer => {
                let mut finalizers: Vec<String> = pvc.finalizers().to_vec();
                if matches!(action, Action::AddFinalizer) {
                    finalizers.push(FINALIZER.to_owned());
                } else {
                    finalizers.retain(|f| f != FINALIZER);
                }
                let patch = json!({"metadata": {
                    "finalizers": finalizers,
                    "resourceVersion": pvc.resource_version(),
                }});
                match pvcs
                    .patch(
                        &pvc.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                {
                    Err(e) if not_found(&e) => return Ok(Requeue::await_change()),
                    result => {
                        result.map_err(kube_err("updating the PVC's finalizers"))?;
                    }
                }
            }
            Action::CreatePrime(prime) => {
                create_or_report(
                    &ctx,
                    &pvc,
                    &pvcs,
                    &prime,
                    "PopulatorPVCCreationError",
                    "creating the prime PVC",
                )
                .await?;
            }
            Action::CreatePod(pod) => {
                if create_or_report(
                    &ctx,
                    &pvc,
                    &pods,
                    &pod,
                    "PopulatorCreationError",
                    "creating the populator pod",
                )
                .await?
                {
                    ctx.fleet.pod_created();
                }
            }
            Action::DeletePod => {
                let name = names::populator_pod_name(&uid);
                unless_gone(pods.delete(&name, &DeleteParams::default()).await)
                    .map_err(kube_err("deleting the populator pod"))?;
            }
            Action::DeletePrime => {
                let name = names::prime_pvc_name(&uid);
                unless_gone(pvcs.delete(&name, &DeleteParams::default()).await)
                    .map_err(kube_err("deleting the prime PVC"))?;
            }
            Action::RecordAttempt {
                attempts,
                not_before,
            } => {
                let patch = json!({"metadata": {"annotations": {
                    ATTEMPTS_ANNOTATION: attempts.to_string(),
                    RETRY_NOT_BEFORE_ANNOTATION: not_before.to_string(),
                }}});
                pvcs.patch(
                    &pvc.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(kube_err("recording the populator attempt on the PVC"))?;
            }
            Action::RebindPv { pv, populated_from } => {
                let patch = json!({
                    "metadata": {"annotations": {POPULATED_FROM_ANNOTATION: populated_from}},
                    "spec": {"claimRef": {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "namespace": namespace,
                        "name": pvc.name_any(),
                        "uid": uid,
                        "resourceVersion": pvc.resource_version(),
                        "fieldPath": null,
                    }}
                });
                pvs.patch(&pv, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(kube_err(format!("moving PV {pv} to the PVC")))?;
                ctx.fleet.finished("success");
            }
            Action::Monitor { pod_ip, port } => {
                start_monitor(&ctx, &uid, &namespace, &cr_name, pod_ip, port)
            }
            Action::StopMonitor => ctx.stop_monitor(&uid),
            Action::Status(update) => {
                if let Some(result) = update.result
                    && result == "failure"
                {
                    ctx.fleet.finished(result);
                }
                write_decided_status(&crs, &cr_name, &update).await?;
            }
            Action::Event(event) => {
                publish(&ctx, &pvc, event.warning, event.reason, &event.message).await;
            }
            Action::Requeue(after) => {
                requeue = Requeue::requeue(after.max(Duration::from_millis(100)))
            }
        }
    }
    Ok(requeue)
}

/// Creates `object` (already existing is fine: a restarted controller may find it); a refusal is
/// reported on the PVC with `reason` and returned. True when this call created it.
async fn create_or_report<K>(
    ctx: &Context,
    pvc: &PersistentVolumeClaim,
    api: &Api<K>,
    object: &K,
    reason: &str,
    what: &str,
) -> Result<bool, Error>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(true),
        Err(e) if conflict_or_exists(&e) => Ok(false),
        Err(e) => {
            let message = short(&e);
            let hint = if message.contains("serviceaccount") {
                " (create the ServiceAccount `populator` in this namespace, as Forklift does for each plan: deploy/populator-rbac.yaml)"
            } else {
                ""
            };
            publish(
                ctx,
                pvc,
                true,
                reason,
                &format!("{what} failed: {message}{hint}"),
            )
            .await;
            Err(kube_err(what)(e))
        }
    }
}

/// Populator pods (other than the one of `pvc_uid`) pending or running through `host`.
async fn inflight_on(client: &Client, host: &str, pvc_uid: &str) -> Result<usize, Error> {
    let pods: Api<Pod> = Api::all(client.clone());
    let own = names::populator_pod_name(pvc_uid);
    let list = pods
        .list(&ListParams::default().labels(&format!("{SOURCE_HOST_LABEL}={host}")))
        .await
        .map_err(kube_err("listing the populator pods of the ESXi host"))?;
    Ok(list
        .items
        .iter()
        .filter(|p| p.metadata.name.as_deref() != Some(own.as_str()))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                None | Some("Pending" | "Running")
            )
        })
        .count())
}

pub(crate) async fn publish(
    ctx: &Context,
    pvc: &PersistentVolumeClaim,
    warning: bool,
    reason: &str,
    message: &str,
) {
    let event = KubeEvent {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_owned(),
        note: Some(message.chars().take(1000).collect()),
        action: "Populate".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &pvc.object_ref(&())).await {
        tracing::warn!(%error, reason, "could not publish an event on the PVC");
    }
}

fn upsert_condition(
    conditions: &mut Vec<KubeCondition>,
    wanted: &decide::Condition,
    generation: Option<i64>,
) {
    let status = if wanted.status { "True" } else { "False" };
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == wanted.type_) {
        if existing.status != status {
            existing.last_transition_time = Time(Timestamp::now());
        }
        existing.status = status.into();
        existing.reason = wanted.reason.into();
        existing.message = wanted.message.clone();
        existing.observed_generation = generation;
    } else {
        conditions.push(KubeCondition {
            type_: wanted.type_.into(),
            status: status.into(),
            reason: wanted.reason.into(),
            message: wanted.message.clone(),
            last_transition_time: Time(Timestamp::now()),
            observed_generation: generation,
        });
    }
}

/// How the PVC's StorageClass binds volumes.
async fn class_binding(
    client: &Client,
    pvc: &PersistentVolumeClaim,
) -> Result<ClassBinding, Error> {
    let name = match pvc
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
    {
        None | Some("") => return Ok(ClassBinding::Immediate),
        Some(name) => name,
    };
    let classes: Api<StorageClass> = Api::all(client.clone());
    Ok(match get_opt(&classes, name).await? {
        None => ClassBinding::Missing,
        Some(class) if class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer") => {
            ClassBinding::WaitForFirstConsumer
        }
        Some(_) => ClassBinding::Immediate,
    })
}

async fn write_decided_status(
    crs: &Api<VSphereXcopyVolumePopulator>,
    name: &str,
    update: &StatusUpdate,
) -> Result<(), Error> {
    let Some(cr) = get_opt(crs, name).await? else {
        return Ok(());
    };
    let mut status = cr.status.clone().unwrap_or_default();
    if let Some(phase) = update.phase {
        status.phase = Some(phase);
    }
    if let Some(result) = update.result {
        status.result = Some(result.into());
    }
    if let Some(condition) = &update.condition {
        upsert_condition(&mut status.conditions, condition, cr.metadata.generation);
    }
    status.observed_generation = cr.metadata.generation;
    if update.completed_label {
        status.progress = Some("100".into());
        status.percent = Some(100);
    }
    write_status(crs, &cr, status, update.completed_label).await
}

/// Writes a CR's status whichever CRD is installed: ours has a status subresource (a write to the
/// main resource would drop `status`); Forklift's has none (`/status` answers 404), so the status
/// goes with the object. Both are merge patches, so no field of anyone else is overwritten.
///
/// Without a status subresource every status write bumps `metadata.generation`, so the observed
/// generations we record are stale by one after each write: such a status is rewritten only when
/// something else changed, or each write would trigger the next (a reconcile loop per CR).
pub async fn write_status(
    crs: &Api<VSphereXcopyVolumePopulator>,
    cr: &VSphereXcopyVolumePopulator,
    status: VSphereXcopyVolumePopulatorStatus,
    completed_label: bool,
) -> Result<(), Error> {
    let name = cr.name_any();
    if cr.status.as_ref() != Some(&status) {
        let patch = json!({ "status": status });
        match crs
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => {
                let changed = cr
                    .status
                    .as_ref()
                    .is_none_or(|old| !same_apart_from_generations(old, &status));
                if changed {
                    match crs
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        Err(e) if not_found(&e) => return Ok(()),
                        result => {
                            result.map_err(kube_err(format!("writing the status of {name}")))?;
                        }
                    }
                }
            }
            Err(e) => return Err(kube_err(format!("writing the status of {name}"))(e)),
        }
    }
    let labelled = cr
        .labels()
        .get(names::OFFLOAD_COMPLETED_LABEL)
        .is_some_and(|v| v == "true");
    if completed_label && !labelled {
        let patch = json!({"metadata": {"labels": {names::OFFLOAD_COMPLETED_LABEL: "true"}}});
        unless_gone(
            crs.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await,
        )
        .map_err(kube_err(format!("labelling {name} completed")))?;
    }
    Ok(())
}

fn same_apart_from_generations(
    a: &VSphereXcopyVolumePopulatorStatus,
    b: &VSphereXcopyVolumePopulatorStatus,
) -> bool {
    let without = |status: &VSphereXcopyVolumePopulatorStatus| {
        let mut status = status.clone();
        status.observed_generation = None;
        for condition in &mut status.conditions {
            condition.observed_generation = None;
        }
        status
    };
    without(a) == without(b)
}

fn start_monitor(
    ctx: &Arc<Context>,
    pvc_uid: &str,
    namespace: &str,
    cr_name: &str,
    pod_ip: String,
    port: u16,
) {
    let Ok(mut monitors) = ctx.monitors.lock() else {
        return;
    };
    if monitors.get(pvc_uid).is_some_and(|h| !h.is_finished()) {
        return;
    }
    let crs: Api<VSphereXcopyVolumePopulator> = Api::namespaced(ctx.client.clone(), namespace);
    let scraper = ctx.scraper.clone();
    let interval = Duration::from_secs(ctx.settings.scrape_interval_seconds.max(1));
    let uid = pvc_uid.to_owned();
    let cr_name = cr_name.to_owned();
    let handle = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let samples = match scrape::scrape(&scraper, &pod_ip, port).await {
                Ok(samples) => samples,
                Err(error) => {
                    // The metrics server may not be up yet; the next tick tries again.
                    tracing::debug!(%error, pod_ip, "scrape failed");
                    continue;
                }
            };
            let scraped = scrape::status_from(&samples, &uid);
            if let Err(error) = merge_scraped(&crs, &cr_name, scraped).await {
                tracing::warn!(%error, cr = cr_name, "could not write the scraped progress");
            }
        }
    });
    monitors.insert(pvc_uid.to_owned(), handle);
    drop(monitors);
    ctx.fleet.set_monitored(ctx.monitor_count());
}

async fn merge_scraped(
    crs: &Api<VSphereXcopyVolumePopulator>,
    name: &str,
    scraped: VSphereXcopyVolumePopulatorStatus,
) -> Result<(), Error> {
    let Some(cr) = get_opt(crs, name).await? else {
        return Ok(());
    };
    let mut status = cr.status.clone().unwrap_or_default();
    macro_rules! take {
        ($($field:ident),*) => { $( if scraped.$field.is_some() { status.$field = scraped.$field.clone(); } )* };
    }
    take!(
        progress,
        xcopy_used,
        vib_version,
        copy_duration_seconds,
        result,
        storage_vendor,
        clone_method,
        storage_protocol,
        provisioned_bytes,
        allocated_bytes,
        percent,
        copied_bytes,
        total_bytes
    );
    let completed = scraped.copy_duration_seconds.is_some();
    write_status(crs, &cr, status, completed).await
}

#[cfg(test)]
mod tests {
    //! `write_status` against both CRDs, at the HTTP seam: the API server's answers to `/status`
    //! decide which write persists the status.

    use super::*;
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn cr() -> VSphereXcopyVolumePopulator {
        let mut cr = VSphereXcopyVolumePopulator::new("disk-1", Default::default());
        cr.metadata.namespace = Some("ns".into());
        cr
    }

    fn status() -> VSphereXcopyVolumePopulatorStatus {
        VSphereXcopyVolumePopulatorStatus {
            progress: Some("42".into()),
            ..Default::default()
        }
    }

    /// Answers the next request with `code` and returns its method and path.
    async fn answer(handle: &mut Handle, code: StatusCode) -> (Method, String) {
        let (request, respond) = handle.next_request().await.expect("a request");
        let body = if code.is_success() {
            serde_json::to_vec(&cr()).unwrap()
        } else {
            serde_json::to_vec(&json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "code": code.as_u16(), "message": "the server could not find the requested resource",
            }))
            .unwrap()
        };
        respond.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(body))
                .unwrap(),
        );
        (request.method().clone(), request.uri().path().to_owned())
    }

    fn api() -> (Api<VSphereXcopyVolumePopulator>, Handle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "ns");
        (Api::namespaced(client, "ns"), handle)
    }

    const OBJECT: &str =
        "/apis/forklift.konveyor.io/v1beta1/namespaces/ns/vspherexcopyvolumepopulators/disk-1";

    #[tokio::test]
    async fn with_a_status_subresource_the_status_endpoint_takes_the_write() {
        let (crs, mut handle) = api();
        let server = tokio::spawn(async move {
            let first = answer(&mut handle, StatusCode::OK).await;
            (first, handle.next_request().await.is_none())
        });
        write_status(&crs, &cr(), status(), false).await.unwrap();
        drop(crs);
        let (first, no_more) = server.await.unwrap();
        assert_eq!(first, (Method::PATCH, format!("{OBJECT}/status")));
        assert!(no_more, "one write is enough");
    }

    #[tokio::test]
    async fn without_one_the_status_goes_with_the_object() {
        let (crs, mut handle) = api();
        let server = tokio::spawn(async move {
            let first = answer(&mut handle, StatusCode::NOT_FOUND).await;
            let second = answer(&mut handle, StatusCode::OK).await;
            (first, second)
        });
        write_status(&crs, &cr(), status(), false).await.unwrap();
        let (first, second) = server.await.unwrap();
        assert_eq!(first, (Method::PATCH, format!("{OBJECT}/status")));
        assert_eq!(second, (Method::PATCH, OBJECT.to_owned()));
    }

    #[tokio::test]
    async fn without_one_a_status_new_only_in_its_generations_is_not_rewritten() {
        // Each write through the object bumps its generation: rewriting for the generation alone
        // would make every write trigger the next.
        let mut written = cr();
        let mut old = status();
        old.observed_generation = Some(3);
        written.status = Some(old);
        written.metadata.generation = Some(4);
        let mut new = status();
        new.observed_generation = Some(4);
        let (crs, mut handle) = api();
        let server = tokio::spawn(async move {
            let first = answer(&mut handle, StatusCode::NOT_FOUND).await;
            (first, handle.next_request().await.is_none())
        });
        write_status(&crs, &written, new, false).await.unwrap();
        drop(crs);
        let (first, no_more) = server.await.unwrap();
        assert_eq!(first, (Method::PATCH, format!("{OBJECT}/status")));
        assert!(no_more, "rewritten for its generation alone");
    }
}
