//! The Kubernetes-backed journal against the real kube-apiserver peer (`scripts/peers.sh install kube
//! && scripts/peers.sh start`): the annotation on the `VSphereXcopyVolumePopulator` CR (or the target
//! PVC), optimistic concurrency that tolerates other writers of the object but refuses a second
//! journal writer, and a clear error when the object is gone.

use crate::journal_support;
use crate::kube_support;

use std::collections::BTreeMap;

use co_populator::journal::{
    CleanupStep, JOURNAL_ANNOTATION, Journal, JournalEntry, JournalError, KubeJournalStore, Outcome,
};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use kube_support::ScratchNamespace;

fn annotation<K: Resource>(object: &K) -> Option<String> {
    object
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(JOURNAL_ANNOTATION).cloned())
}

fn mapped() -> JournalEntry {
    journal_support::mapped("trident_pvc_1")
}

#[tokio::test]
async fn the_journal_lives_in_an_annotation_on_the_cr() {
    let client = kube_support::client().await;
    let ns = ScratchNamespace::new(&client, "journal-cr").await;
    let api = kube_support::create_cr(&client, &ns.name, "disk-1").await;

    let (mut journal, recovery) = Journal::load(KubeJournalStore::on_populator_cr(
        client.clone(),
        &ns.name,
        "disk-1",
    ))
    .await
    .unwrap();
    assert!(recovery.is_clean());
    journal
        .record(JournalEntry::ChangeMade {
            undo: journal_support::restore("trident_pvc_1", vec![]),
        })
        .await
        .unwrap();
    journal.record(mapped()).await.unwrap();
    journal
        .record(JournalEntry::CloneRequested {
            host: "HostSystem:host-7".into(),
            device: "naa.600a098038304437".into(),
            task_id: None,
        })
        .await
        .unwrap();
    let run = journal.run_id().to_owned();

    let stored = annotation(&api.get("disk-1").await.unwrap()).expect("journal annotation missing");
    let document: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(document["version"], 2);
    let kinds: Vec<&str> = document["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["changeMade", "changeMade", "cloneRequested"]);

    let (_, recovery) = Journal::load(KubeJournalStore::on_populator_cr(
        client.clone(),
        &ns.name,
        "disk-1",
    ))
    .await
    .unwrap();
    assert_eq!(recovery.previous_run.as_deref(), Some(run.as_str()));
    assert!(
        recovery.clone_may_be_running().is_some(),
        "a requested clone without an end may still run"
    );
    assert_eq!(
        recovery.outstanding,
        vec![
            journal_support::unmap("trident_pvc_1"),
            journal_support::restore("trident_pvc_1", vec![])
        ]
    );
    ns.delete().await;
}

#[tokio::test]
async fn other_writers_of_the_object_do_not_disturb_the_journal() {
    let client = kube_support::client().await;
    let ns = ScratchNamespace::new(&client, "journal-rv").await;
    let api = kube_support::create_cr(&client, &ns.name, "disk-2").await;
    let (mut journal, _) = Journal::load(KubeJournalStore::on_populator_cr(
        client.clone(),
        &ns.name,
        "disk-2",
    ))
    .await
    .unwrap();
    journal.record(mapped()).await.unwrap();

    // The controller changes the object between two journal writes (new resourceVersion).
    let labels = serde_json::json!({ "metadata": { "labels": { "forklift.konveyor.io/offload-completed": "false" } } });
    api.patch("disk-2", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();

    journal
        .record(JournalEntry::RunFinished {
            outcome: Outcome::Succeeded,
        })
        .await
        .unwrap();
    let object = api.get("disk-2").await.unwrap();
    let labels: BTreeMap<String, String> = object.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("forklift.konveyor.io/offload-completed")
            .map(String::as_str),
        Some("false")
    );
    let (reread, recovery) = Journal::load(KubeJournalStore::on_populator_cr(
        client.clone(),
        &ns.name,
        "disk-2",
    ))
    .await
    .unwrap();
    assert_eq!(reread.records().len(), 2);
    assert_eq!(recovery.previous_outcome, Some(Outcome::Succeeded));
    ns.delete().await;
}

#[tokio::test]
async fn a_second_journal_writer_is_refused() {
    let client = kube_support::client().await;
    let ns = ScratchNamespace::new(&client, "journal-two").await;
    kube_support::create_cr(&client, &ns.name, "disk-3").await;
    let store = || KubeJournalStore::on_populator_cr(client.clone(), &ns.name, "disk-3");
    let (mut one, _) = Journal::load(store()).await.unwrap();
    let (mut two, _) = Journal::load(store()).await.unwrap();
    one.record(mapped()).await.unwrap();
    let err = two
        .record(JournalEntry::CloneRequested {
            host: "h".into(),
            device: "naa.1".into(),
            task_id: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, JournalError::ConcurrentWriter { .. }),
        "{err}"
    );
    assert!(two.records().is_empty());
    let (reread, _) = Journal::load(store()).await.unwrap();
    assert_eq!(reread.records().len(), 1);
    ns.delete().await;
}

#[tokio::test]
async fn without_a_cr_the_journal_goes_on_the_target_pvc() {
    let client = kube_support::client().await;
    let ns = ScratchNamespace::new(&client, "journal-pvc").await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns.name);
    let pvc = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("target".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            volume_mode: Some("Block".into()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity("1Gi".into()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    pvcs.create(&PostParams::default(), &pvc).await.unwrap();
    let (mut journal, _) =
        Journal::load(KubeJournalStore::on_pvc(client.clone(), &ns.name, "target"))
            .await
            .unwrap();
    journal
        .record(JournalEntry::ChangeMade {
            undo: CleanupStep::RemoveDevice {
                host: "HostSystem:host-1".into(),
                naa: "naa.6".into(),
            },
        })
        .await
        .unwrap();
    let stored = annotation(&pvcs.get("target").await.unwrap())
        .expect("journal annotation missing on the PVC");
    assert!(stored.contains("removeDevice"), "{stored}");
    ns.delete().await;
}

#[tokio::test]
async fn a_missing_object_is_named_in_the_error() {
    let client = kube_support::client().await;
    let ns = ScratchNamespace::new(&client, "journal-missing").await;
    kube_support::ensure_crd(&client).await;
    let err = Journal::load(KubeJournalStore::on_populator_cr(
        client.clone(),
        &ns.name,
        "never-created",
    ))
    .await
    .err()
    .unwrap();
    assert!(matches!(err, JournalError::Missing { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("VSphereXcopyVolumePopulator") && text.contains("never-created"),
        "{text}"
    );
    ns.delete().await;
}

#[tokio::test]
async fn the_journal_lease_is_created_on_first_write_and_refuses_a_second_writer() {
    let client = kube_support::client().await;
    let ns = ScratchNamespace::new(&client, "journal-lease").await;
    let handle = "pvc-trident_pvc_lease";
    let store = || KubeJournalStore::on_journal_lease(client.clone(), &ns.name, handle);
    assert!(!store().holds_journal().await.unwrap());
    // Both runs see no Lease: the first write creates it, the second finds it taken.
    let (mut one, recovery) = Journal::load(store()).await.unwrap();
    assert!(recovery.is_clean());
    let (mut two, _) = Journal::load(store()).await.unwrap();
    one.record(mapped()).await.unwrap();
    let err = two
        .record(JournalEntry::CloneRequested {
            host: "h".into(),
            device: "naa.1".into(),
            task_id: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, JournalError::ConcurrentWriter { .. }),
        "{err}"
    );
    one.record(JournalEntry::CloneRequested {
        host: "HostSystem:host-7".into(),
        device: "naa.600a098038304437".into(),
        task_id: None,
    })
    .await
    .unwrap();

    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), &ns.name);
    let lease = leases
        .get(&co_populator::journal::journal_lease_name(handle))
        .await
        .unwrap();
    assert!(annotation(&lease).is_some());
    assert!(store().holds_journal().await.unwrap());
    let (_, recovery) = Journal::load(store()).await.unwrap();
    assert!(
        recovery.clone_may_be_running().is_some(),
        "a requested clone without an end may still run"
    );
    ns.delete().await;
}
