//! The controller's ClusterRole in `deploy/controller-rbac.yaml` is enough for a whole population,
//! and each verb in it is needed: with one removed, the step that uses it fails and the PVC
//! carries a Warning event saying so.

use crate::cluster;

use cluster::{Options, TestCluster};
use k8s_openapi::api::rbac::v1::PolicyRule;

fn options(rules: Vec<PolicyRule>) -> Options {
    Options {
        controller_rules: Some(rules),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_role_is_enough_to_populate_a_pvc() {
    let cluster =
        TestCluster::start("ctl-rbac", options(cluster::shipped_controller_rules())).await;
    cluster.create_cr("vm-1-disk-0", cluster::SECRET).await;
    cluster.create_claim("disk-0", "vm-1-disk-0").await;
    cluster.wait_bound("disk-0").await;
    let cr = cluster.crs().get("vm-1-disk-0").await.unwrap();
    assert_eq!(cr.status.unwrap().result.as_deref(), Some("success"));
    cluster.finish().await;
}

/// The rules with `verb` taken away from `resource`.
fn without(resource: &str, verb: &str) -> Vec<PolicyRule> {
    let mut rules = cluster::shipped_controller_rules();
    let mut found = false;
    for rule in &mut rules {
        if rule.resources.iter().flatten().any(|r| r == resource) {
            let before = rule.verbs.len();
            rule.verbs.retain(|v| v != verb);
            found |= rule.verbs.len() < before;
        }
    }
    assert!(found, "the shipped role has no {verb} on {resource}");
    rules.retain(|rule| !rule.verbs.is_empty());
    rules
}

async fn fails_without(resource: &str, verb: &str, expected: &str) {
    let cluster = TestCluster::start("ctl-rbac-verb", options(without(resource, verb))).await;
    cluster.create_cr("vm-1-disk-0", cluster::SECRET).await;
    cluster.create_claim("disk-0", "vm-1-disk-0").await;
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let deadline = tokio::time::Instant::now() + cluster::DEADLINE;
    let mut stream = std::pin::pin!(kube::runtime::WatchStreamExt::applied_objects(
        kube::runtime::watcher::watcher(events, Default::default())
    ));
    loop {
        let next = tokio::time::timeout_at(deadline, futures::TryStreamExt::try_next(&mut stream))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no event about {verb} {resource} within {:?}",
                    cluster::DEADLINE
                )
            });
        let event = next.unwrap().expect("the event watch ended");
        let note = event.note.clone().unwrap_or_default();
        if event.reason.as_deref() == Some("PopulatorReconcileError") {
            assert!(note.contains(expected), "{note}");
            assert!(note.contains("forbidden"), "{note}");
            break;
        }
    }
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_verb_of_the_role_is_needed() {
    // (resource, verb, the step that fails)
    let cases = [
        (
            "persistentvolumeclaims",
            "patch",
            "updating the PVC's finalizers",
        ),
        ("persistentvolumeclaims", "create", "creating the prime PVC"),
        ("pods", "create", "creating the populator pod"),
        ("pods", "get", "reading Pod"),
        (
            "persistentvolumeclaims",
            "get",
            "reading PersistentVolumeClaim",
        ),
        (
            "vspherexcopyvolumepopulators",
            "get",
            "reading VSphereXcopyVolumePopulator",
        ),
        ("storageclasses", "get", "reading StorageClass"),
        ("persistentvolumes", "get", "reading PersistentVolume"),
        ("persistentvolumes", "patch", "moving PV"),
        (
            "vspherexcopyvolumepopulators/status",
            "patch",
            "writing the status",
        ),
    ];
    for (resource, verb, expected) in cases {
        fails_without(resource, verb, expected).await;
    }
}
