//! Cluster mode against the real kube-apiserver peer and the lab: the target is the user's PVC,
//! still unbound, whose prime PVC `prime-<uid>` is bound to a CSI PV naming the lab's Trident
//! volume; the journal lives in an annotation of the PVC and the host lease in the Lease API.

mod e2e_support;
mod kube_support;

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

    let mut args = rig.args(flexvol);
    args.target_volume_handle = None;
    args.target_volume_attribute = Vec::new();
    args.owner_name = Some("disk-0".into());
    args.owner_uid = Some(uid.clone());
    args.target_namespace = Some(namespace.name.clone());
    args.host_lease_namespace = Some(namespace.name.clone());
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
