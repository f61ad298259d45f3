//! Cluster mode against the real kube-apiserver peer and the lab: the target is the user's PVC,
//! still unbound, whose prime PVC `prime-<uid>` is bound to a CSI PV naming the lab's Trident
//! volume; the journal lives in an annotation of the PVC and the host lease in the Lease API.

use crate::e2e_support;
use crate::kube_support;

use std::sync::Arc;
use std::time::Duration;

use co_populator::ExitCode;
use co_populator::journal::JOURNAL_ANNOTATION;
use co_populator::{RunOptions, run_with};
use e2e_support::{LabRig, MIB};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Api;
use kube_support::ScratchNamespace;

/// A scratch namespace, the lab and the user PVC `disk-0` of one test.
struct ClaimFixture {
    client: kube::Client,
    namespace: ScratchNamespace,
    rig: LabRig,
    flexvol: &'static str,
    uid: String,
}

impl ClaimFixture {
    /// The user PVC, with its prime PVC bound to the lab volume `flexvol` when `bound`.
    async fn start(prefix: &str, flexvol: &'static str, bound: bool) -> Self {
        let client = kube_support::client().await;
        let namespace = ScratchNamespace::new(&client, prefix).await;
        let rig = LabRig::start().await;
        rig.target_volume(flexvol, 64 * MIB);
        let uid = if bound {
            kube_support::target_claims(&client, &namespace.name, flexvol).await
        } else {
            kube_support::user_claim(&client, &namespace.name).await
        };
        Self {
            client,
            namespace,
            rig,
            flexvol,
            uid,
        }
    }

    /// The populate arguments Forklift's controller gives the pod of `disk-0`.
    fn config(&self) -> co_populator::PopulateConfig {
        let mut args = self.rig.args(self.flexvol);
        args.target_volume_handle = None;
        args.target_volume_attribute = Vec::new();
        args.owner_name = Some("disk-0".into());
        args.owner_uid = Some(self.uid.clone());
        args.target_namespace = Some(self.namespace.name.clone());
        args.host_lease_namespace = Some(self.namespace.name.clone());
        self.rig.config(&args)
    }

    fn options(&self, name: &str) -> RunOptions {
        let mut options = self.rig.options(name);
        options.kube_client = Some(self.client.clone());
        options
    }

    /// Deletes the PV (when the test bound one) and the namespace.
    async fn finish(self) {
        let pv = format!("pv-{}", self.namespace.name);
        Api::<PersistentVolume>::all(self.client.clone())
            .delete(&pv, &Default::default())
            .await
            .map(|_| ())
            .or_else(|e| match e {
                kube::Error::Api(status) if status.code == 404 => Ok(()),
                e => Err(e),
            })
            .unwrap();
        self.namespace.delete().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pvc_waiting_for_its_populator_is_filled_through_its_prime_pvc() {
    let fixture = ClaimFixture::start("engine-cluster", "trident_pvc_cluster", true).await;
    let (rig, flexvol) = (&fixture.rig, fixture.flexvol);
    let summary = run_with(fixture.config(), fixture.options("cluster")).await;
    assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);
    rig.assert_copied(flexvol);
    rig.assert_clean(flexvol);

    let pvcs: Api<PersistentVolumeClaim> =
        Api::namespaced(fixture.client.clone(), &fixture.namespace.name);
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
    fixture.finish().await;
}

/// Forklift's controller starts the pod before it creates the prime PVC, and ours before the
/// provisioner bound it: the run waits for the binding (watching, not failing as upstream does)
/// and then copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_before_the_prime_pvc_exists_waits_for_its_volume() {
    let fixture = ClaimFixture::start("engine-bind-wait", "trident_pvc_bind_wait", false).await;
    let mut options = fixture.options("bind-wait");
    let waiting = Arc::new(tokio::sync::Notify::new());
    options.volume_waiting = Some(waiting.clone());
    let run = tokio::spawn(run_with(fixture.config(), options));

    waiting.notified().await;
    let namespace = &fixture.namespace.name;
    kube_support::bind_prime_claim(&fixture.client, namespace, &fixture.uid, fixture.flexvol).await;
    let summary = run.await.unwrap();
    assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);
    fixture.rig.assert_copied(fixture.flexvol);
    fixture.rig.assert_clean(fixture.flexvol);
    fixture.finish().await;
}

/// A provisioner that never binds the prime PVC ends the run as retryable, naming the claim to
/// look at, with nothing done on the array.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prime_pvc_never_bound_fails_retryable_naming_it() {
    let fixture =
        ClaimFixture::start("engine-bind-timeout", "trident_pvc_bind_timeout", false).await;
    let mut options = fixture.options("bind-timeout");
    options.volume_bind_timeout = Duration::from_secs(1);
    let summary = run_with(fixture.config(), options).await;
    assert_eq!(
        summary.exit_code,
        ExitCode::Retryable,
        "{:?}",
        summary.error
    );
    let message = summary.error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains(&format!("prime-{}", fixture.uid)) && message.contains("within 1 s"),
        "{message}"
    );
    fixture.rig.assert_clean(fixture.flexvol);
    fixture.finish().await;
}
