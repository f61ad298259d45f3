//! Cluster mode against the real kube-apiserver peer and the lab: the target is the user's PVC,
//! still unbound, whose prime PVC `prime-<uid>` is bound to a CSI PV naming the lab's Trident
//! volume; the journal lives in an annotation of the PVC and the host lease in the Lease API.

mod e2e_support;
mod kube_support;

use std::sync::Arc;
use std::time::Duration;

use co_populator::ExitCode;
use co_populator::journal::JOURNAL_ANNOTATION;
use co_populator::run_with;
use e2e_support::{LabRig, MIB};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Api;
use kube_support::ScratchNamespace;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pvc_waiting_for_its_populator_is_filled_through_its_prime_pvc() {
    let client = kube_support::client().await;
    let namespace = ScratchNamespace::new(&client, "engine-cluster").await;
    let rig = LabRig::start().await;
    let flexvol = "trident_pvc_cluster";
    rig.target_volume(flexvol, 64 * MIB);

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace.name);
    let uid = kube_support::target_claims(&client, &namespace.name, flexvol).await;

    let args = claim_args(&rig, flexvol, &uid, &namespace.name);
    let mut options = rig.options("cluster");
    options.kube_client = Some(client.clone());
    let summary = run_with(rig.config(&args), options).await;
    assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);
    rig.assert_copied(flexvol);
    rig.assert_clean(flexvol);

    let user = pvcs.get("disk-0").await.unwrap();
    let journal = user
        .metadata
        .annotations
        .unwrap_or_default()
        .remove(JOURNAL_ANNOTATION)
        .expect("journal annotation on the PVC");
    let journal: serde_json::Value = serde_json::from_str(&journal).unwrap();
    let records = journal["records"].as_array().unwrap();
    let finished = records
        .iter()
        .position(|r| r["kind"] == "runFinished")
        .expect("a runFinished record");
    assert_eq!(records[finished]["outcome"], "succeeded", "{journal}");
    // Only the host's rescan-delete follows the outcome: it runs after completion is reported.
    // Nothing else is kept: a finished run leaves its end and its last record, nothing to undo.
    assert_eq!(records.len(), 2, "{journal}");
    let after: Vec<_> = records[finished + 1..]
        .iter()
        .map(|r| (r["kind"].clone(), r["step"]["step"].clone()))
        .collect();
    assert_eq!(
        after,
        [(
            serde_json::json!("cleanupDone"),
            serde_json::json!("rescanDelete")
        )],
        "{journal}"
    );
    Api::<PersistentVolume>::all(client.clone())
        .delete(&format!("pv-{}", namespace.name), &Default::default())
        .await
        .unwrap();
    namespace.delete().await;
}

/// Forklift's controller starts the pod before it creates the prime PVC, and ours before the
/// provisioner bound it: the run waits for the binding (watching, not failing as upstream does)
/// and then copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_before_the_prime_pvc_exists_waits_for_its_volume() {
    let client = kube_support::client().await;
    let namespace = ScratchNamespace::new(&client, "engine-bind-wait").await;
    let rig = LabRig::start().await;
    let flexvol = "trident_pvc_bind_wait";
    rig.target_volume(flexvol, 64 * MIB);
    let uid = kube_support::user_claim(&client, &namespace.name).await;

    let args = claim_args(&rig, flexvol, &uid, &namespace.name);
    let mut options = rig.options("bind-wait");
    options.kube_client = Some(client.clone());
    let waiting = Arc::new(tokio::sync::Notify::new());
    options.volume_waiting = Some(waiting.clone());
    let run = tokio::spawn(run_with(rig.config(&args), options));

    waiting.notified().await;
    kube_support::bind_prime_claim(&client, &namespace.name, &uid, flexvol).await;
    let summary = run.await.unwrap();
    assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);
    rig.assert_copied(flexvol);
    rig.assert_clean(flexvol);
    Api::<PersistentVolume>::all(client.clone())
        .delete(&format!("pv-{}", namespace.name), &Default::default())
        .await
        .unwrap();
    namespace.delete().await;
}

/// A provisioner that never binds the prime PVC ends the run as retryable, naming the claim to
/// look at, with nothing done on the array.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prime_pvc_never_bound_fails_retryable_naming_it() {
    let client = kube_support::client().await;
    let namespace = ScratchNamespace::new(&client, "engine-bind-timeout").await;
    let rig = LabRig::start().await;
    let flexvol = "trident_pvc_bind_timeout";
    rig.target_volume(flexvol, 64 * MIB);
    let uid = kube_support::user_claim(&client, &namespace.name).await;

    let args = claim_args(&rig, flexvol, &uid, &namespace.name);
    let mut options = rig.options("bind-timeout");
    options.kube_client = Some(client.clone());
    options.volume_bind_timeout = Duration::from_secs(1);
    let summary = run_with(rig.config(&args), options).await;
    assert_eq!(
        summary.exit_code,
        ExitCode::Retryable,
        "{:?}",
        summary.error
    );
    let message = summary.error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains(&format!("prime-{uid}")) && message.contains("within 1 s"),
        "{message}"
    );
    rig.assert_clean(flexvol);
    namespace.delete().await;
}

/// The populate arguments Forklift's controller gives a pod for the user PVC `disk-0` with `uid`.
fn claim_args(
    rig: &LabRig,
    flexvol: &str,
    uid: &str,
    namespace: &str,
) -> co_populator::PopulateArgs {
    let mut args = rig.args(flexvol);
    args.target_volume_handle = None;
    args.target_volume_attribute = Vec::new();
    args.owner_name = Some("disk-0".into());
    args.owner_uid = Some(uid.to_owned());
    args.target_namespace = Some(namespace.to_owned());
    args.host_lease_namespace = Some(namespace.to_owned());
    args
}
