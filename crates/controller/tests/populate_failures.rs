//! Failures on the real API server with the real populator: a retryable failure is retried after
//! a backoff and then succeeds; a permanent one stops at once with the populator's last error line
//! in the CR's condition and a Warning event.

use crate::cluster;

use cluster::{Options, TestCluster};
use co_api::CopyPhase;

fn condition(cr: &co_api::VSphereXcopyVolumePopulator, type_: &str) -> Option<(String, String)> {
    cr.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_is_retried_after_a_backoff_and_then_succeeds() {
    let mut options = Options::default();
    // Long enough to clear the fault between the runs, short enough for a test.
    options.settings.retry_backoff_seconds = 5;
    let cluster = TestCluster::start("ctl-retry", options).await;
    cluster.lab.faults.add(co_lab::faults::FaultRule {
        site: "soap:RetrievePropertiesEx".into(),
        latency_ms: 0,
        error: Some("hostd is restarting".into()),
        times: None,
    });
    cluster.create_cr("vm-1-disk-0", cluster::SECRET).await;
    let pvc = cluster.create_claim("disk-0", "vm-1-disk-0").await;
    let retrying = cluster::wait_for(&cluster.crs(), "vm-1-disk-0", "retry scheduled", |cr| {
        cr.and_then(|cr| condition(cr, "Ready"))
            .is_some_and(|(reason, _)| reason == "PopulatorRetrying")
    })
    .await
    .unwrap();
    cluster.lab.faults.clear();
    let (_, message) = condition(&retrying, "Ready").unwrap();
    assert!(message.contains("hostd is restarting"), "{message}");

    let bound = cluster.wait_bound("disk-0").await;
    let pvs: kube::Api<k8s_openapi::api::core::v1::PersistentVolume> =
        kube::Api::all(cluster.client.clone());
    let pv = pvs
        .get(bound.spec.as_ref().unwrap().volume_name.as_deref().unwrap())
        .await
        .unwrap();
    cluster.assert_copied(&pv);
    let runs = cluster.runs.lock().unwrap().clone();
    let codes: Vec<Option<i32>> = runs.iter().map(|r| r.1).collect();
    assert_eq!(codes, [Some(4), Some(0)], "{runs:?}");
    let annotations = cluster
        .pvcs()
        .get("disk-0")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default();
    assert_eq!(annotations[co_controller::decide::ATTEMPTS_ANNOTATION], "1");
    let events = cluster.events_for("disk-0").await;
    let retry = events
        .iter()
        .find(|e| e.1 == "PopulatorRetrying")
        .expect("a PopulatorRetrying event");
    assert_eq!(retry.0, "Warning");
    assert!(retry.2.contains("Run 2 of 3"), "{retry:?}");
    let _ = pvc;
    cluster.assert_lab_clean();
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_stops_with_the_last_error_line() {
    let cluster = TestCluster::start("ctl-permanent", Options::default()).await;
    cluster.create_secret("wrong-password", false).await;
    cluster.create_cr("vm-1-disk-0", "wrong-password").await;
    cluster.create_claim("disk-0", "vm-1-disk-0").await;
    let failed = cluster::wait_for(&cluster.crs(), "vm-1-disk-0", "copy failed", |cr| {
        cr.and_then(|cr| cr.status.as_ref())
            .is_some_and(|s| s.phase == Some(CopyPhase::Failed))
    })
    .await
    .unwrap();
    let (reason, message) = condition(&failed, "Failed").unwrap();
    assert_eq!(reason, "PopulatorFailed");
    assert!(message.contains("failed permanently (exit 3)"), "{message}");
    assert_eq!(
        failed.status.as_ref().unwrap().result.as_deref(),
        Some("failure")
    );
    let events = cluster.events_for("disk-0").await;
    let event = events
        .iter()
        .find(|e| e.1 == "PopulatorFailed")
        .expect("a PopulatorFailed event");
    assert_eq!(event.0, "Warning");
    assert!(event.2.contains("kubectl logs"), "{event:?}");
    let runs = cluster.runs.lock().unwrap().clone();
    assert_eq!(
        runs.len(),
        1,
        "a permanent failure is not retried: {runs:?}"
    );
    assert_eq!(runs[0].1, Some(3), "{runs:?}");
    // The last line of the populator's log is quoted.
    let tail = message.rsplit(": ").next().unwrap_or_default();
    assert!(!tail.is_empty(), "{message}");
    eprintln!("condition: {message}");
    cluster.assert_lab_clean();
    cluster.finish().await;
}
