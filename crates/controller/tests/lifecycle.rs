//! The controller's lifecycle on the real API server with the real populator: WaitForFirstConsumer,
//! a controller restarted in each state, a PVC deleted mid-copy, the per-host throttle.

use crate::cluster;

use cluster::{NODE, Options, TestCluster};
use co_api::contract::names;
use co_lab::faults::FaultRule;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

fn pod_phase(pod: Option<&k8s_openapi::api::core::v1::Pod>) -> Option<String> {
    pod?.status.as_ref()?.phase.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_first_consumer_waits_for_the_selected_node_and_pins_the_pod() {
    let cluster = TestCluster::start(
        "ctl-wffc",
        Options {
            binding_mode: "WaitForFirstConsumer",
            ..Options::default()
        },
    )
    .await;
    cluster.create_cr("vm-1-disk-0", cluster::SECRET).await;
    let pvc = cluster.create_claim("disk-0", "vm-1-disk-0").await;
    let uid = pvc.metadata.uid.clone().unwrap();
    cluster::wait_for(&cluster.crs(), "vm-1-disk-0", "waiting condition", |cr| {
        cr.and_then(|cr| cr.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.reason == "WaitingForFirstConsumer")
        })
    })
    .await;
    assert!(
        cluster
            .pods()
            .get_opt(&names::populator_pod_name(&uid))
            .await
            .unwrap()
            .is_none()
    );
    // The scheduler picks a node for the PVC's consumer.
    let patch = json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": NODE}}});
    cluster
        .pvcs()
        .patch("disk-0", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let pod = cluster::wait_for(
        &cluster.pods(),
        &names::populator_pod_name(&uid),
        "pod created",
        |p| p.is_some(),
    )
    .await
    .unwrap();
    assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some(NODE));
    let prime = cluster
        .pvcs()
        .get(&names::prime_pvc_name(&uid))
        .await
        .unwrap();
    assert_eq!(
        prime.metadata.annotations.unwrap()["volume.kubernetes.io/selected-node"],
        NODE
    );
    cluster.wait_bound("disk-0").await;
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_restarted_in_each_state_finishes_the_job_once() {
    let mut cluster = TestCluster::start("ctl-restart", Options::default()).await;
    // Slow clone polls keep the pod running long enough to restart the controller under it.
    cluster.lab.faults.add(FaultRule {
        site: "esxcli:vmkfstools taskGet".into(),
        latency_ms: 300,
        error: None,
        times: None,
    });
    cluster.create_cr("vm-1-disk-0", cluster::SECRET).await;
    let pvc = cluster.create_claim("disk-0", "vm-1-disk-0").await;
    let uid = pvc.metadata.uid.clone().unwrap();
    let pod_name = names::populator_pod_name(&uid);

    // Restart while the pod runs.
    cluster::wait_for(&cluster.pods(), &pod_name, "pod running", |p| {
        pod_phase(p).as_deref() == Some("Running")
    })
    .await;
    cluster.restart_controller().await;
    // Stopped while the pod finishes: the new controller finds it Succeeded, PV not yet moved.
    cluster.stop_controller().await;
    cluster::wait_for(&cluster.pods(), &pod_name, "pod succeeded", |p| {
        pod_phase(p).as_deref() == Some("Succeeded")
    })
    .await;
    let pvc_now = cluster.pvcs().get("disk-0").await.unwrap();
    assert!(
        pvc_now.spec.unwrap().volume_name.is_none(),
        "nobody moved the PV while the controller was down"
    );
    cluster.start_controller().await;
    cluster.wait_bound("disk-0").await;
    // Restart once bound: the cleanup completes.
    cluster.restart_controller().await;
    cluster.wait_cleaned_up("disk-0", &uid).await;
    let runs = cluster.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 1, "one populator run in all: {runs:?}");
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pvc_deleted_mid_copy_stops_the_populator_first_and_leaves_the_lab_clean() {
    let cluster = TestCluster::start("ctl-delete", Options::default()).await;
    // The clone never reports completion while this rule stands.
    cluster.lab.faults.add(FaultRule {
        site: "esxcli:vmkfstools taskGet".into(),
        latency_ms: 500,
        error: None,
        times: None,
    });
    cluster.create_cr("vm-1-disk-0", cluster::SECRET).await;
    let pvc = cluster.create_claim("disk-0", "vm-1-disk-0").await;
    let uid = pvc.metadata.uid.clone().unwrap();
    let pod_name = names::populator_pod_name(&uid);
    cluster::wait_for(&cluster.pods(), &pod_name, "pod running", |p| {
        pod_phase(p).as_deref() == Some("Running")
    })
    .await;
    cluster
        .pvcs()
        .delete("disk-0", &DeleteParams::default())
        .await
        .unwrap();
    cluster::wait_for(&cluster.pvcs(), "disk-0", "PVC gone", |p| p.is_none()).await;
    cluster::wait_for(&cluster.pods(), &pod_name, "pod gone", |p| p.is_none()).await;
    cluster::wait_for(
        &cluster.pvcs(),
        &names::prime_pvc_name(&uid),
        "prime PVC gone",
        |p| p.is_none(),
    )
    .await;
    let runs = cluster.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 1, "{runs:?}");
    // Stopped by SIGTERM, not killed: it exits with its own code after cleaning up (5, or 4 when
    // the signal lands while it is still connecting), never by the signal itself.
    assert!(
        matches!(runs[0].1, Some(4 | 5)),
        "the populator exits by itself after SIGTERM: {runs:?}"
    );
    cluster.lab.faults.clear();
    cluster.assert_lab_clean();
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_host_throttle_holds_the_second_pod_until_the_first_ends() {
    let mut options = Options::default();
    options.settings.max_populator_inflight = 1;
    let cluster = TestCluster::start("ctl-throttle", options).await;
    cluster.lab.faults.add(FaultRule {
        site: "esxcli:vmkfstools taskGet".into(),
        latency_ms: 300,
        error: None,
        times: None,
    });
    // Forklift's sourceHost label keys the throttle (cluster-wide); unique to this test so other
    // tests' pods do not count.
    let host = cluster.namespace.clone();
    cluster
        .create_cr_on("vm-1-disk-0", cluster::SECRET, None, Some(&host))
        .await;
    cluster
        .create_cr_on("vm-1-disk-1", cluster::SECRET, None, Some(&host))
        .await;
    let first = cluster.create_claim("disk-0", "vm-1-disk-0").await;
    cluster::wait_for(
        &cluster.pods(),
        &names::populator_pod_name(first.metadata.uid.as_deref().unwrap()),
        "first pod",
        |p| p.is_some(),
    )
    .await;
    cluster.create_claim("disk-1", "vm-1-disk-1").await;
    let throttled = cluster::wait_for(&cluster.crs(), "vm-1-disk-1", "throttled", |cr| {
        cr.and_then(|cr| cr.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.reason == "PopulatorThrottled")
        })
    })
    .await
    .unwrap();
    let message = &throttled.status.unwrap().conditions[0].message;
    assert!(
        message.contains(&format!("{host} (1/1 in flight)")),
        "{message}"
    );
    // Only the first pod exists while the second PVC is throttled... unless the first already ended.
    let pods = cluster
        .pods()
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let running: Vec<_> = pods
        .iter()
        .filter(|p| {
            matches!(
                pod_phase(Some(p)).as_deref(),
                None | Some("Pending" | "Running")
            )
        })
        .collect();
    assert!(running.len() <= 1, "{} pods in flight", running.len());
    cluster.wait_bound("disk-0").await;
    cluster.wait_bound("disk-1").await;
    let events = cluster.events_for("disk-1").await;
    let event = events
        .iter()
        .find(|e| e.1 == "PopulatorThrottled")
        .expect("a throttle event");
    assert_eq!(event.0, "Normal");
    cluster.finish().await;
}
