//! The cluster-wide ESXi host-key record against the real kube-apiserver peer (`scripts/peers.sh
//! start`): first use records the key in the ConfigMap, another store instance (another pod) sees
//! it, first writer wins when pods race with different keys, and entries are never overwritten.

use crate::kube_support;

use co_esxi::host_keys::{HostKeyStore, PublicKey};
use co_populator::host_keys::{HOST_KEYS_CONFIG_MAP, KubeHostKeyStore, entry_name};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use kube_support::ScratchNamespace;
use russh::keys::ssh_key::public::{Ed25519PublicKey, KeyData};

fn random_key() -> PublicKey {
    PublicKey::new(KeyData::Ed25519(Ed25519PublicKey(rand::random())), "")
}

async fn entries(client: &Client, namespace: &str) -> std::collections::BTreeMap<String, String> {
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get(HOST_KEYS_CONFIG_MAP)
        .await
        .unwrap()
        .data
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_key_is_recorded_for_every_pod_and_never_replaced() {
    let client = kube_support::client().await;
    let namespace = ScratchNamespace::new(&client, "host-keys").await;
    let pod_a = KubeHostKeyStore::new(client.clone(), &namespace.name);
    let pod_b = KubeHostKeyStore::new(client.clone(), &namespace.name);
    let (first, second) = (random_key(), random_key());

    assert!(pod_a.known("10.0.0.21", 22).await.unwrap().is_empty());
    assert_eq!(
        pod_a.learn("10.0.0.21", 22, &first).await.unwrap(),
        vec![first.clone()]
    );
    let recorded = entries(&client, &namespace.name).await;
    assert_eq!(
        recorded.get("10.0.0.21_22").map(String::as_str),
        Some(first.to_openssh().unwrap().as_str()),
        "{recorded:?}"
    );

    // Another pod trusts the recorded key, and offering another one records nothing.
    assert_eq!(
        pod_b.known("10.0.0.21", 22).await.unwrap(),
        vec![first.clone()]
    );
    assert_eq!(
        pod_b.learn("10.0.0.21", 22, &second).await.unwrap(),
        vec![first.clone()]
    );
    // Another port and an IPv6 host are other entries, added beside the first.
    pod_b.learn("10.0.0.21", 2222, &second).await.unwrap();
    pod_b.learn("fe80::21", 22, &second).await.unwrap();
    let recorded = entries(&client, &namespace.name).await;
    assert_eq!(
        recorded.keys().collect::<Vec<_>>(),
        ["10.0.0.21_22", "10.0.0.21_2222", "fe80_3a_3a21_22"]
    );
    assert_eq!(recorded["10.0.0.21_22"], first.to_openssh().unwrap());
    assert_eq!(
        pod_a.known("FE80::21", 22).await.unwrap(),
        vec![second.clone()]
    );

    // The messages name the entry and how to re-trust a re-installed host.
    assert_eq!(
        pod_a.record_of("fe80::21", 22),
        format!(
            "entry fe80_3a_3a21_22 of ConfigMap {}/{HOST_KEYS_CONFIG_MAP}",
            namespace.name
        )
    );
    assert!(
        pod_a
            .retrust_hint("fe80::21", 22)
            .contains("\"path\":\"/data/fe80_3a_3a21_22\""),
        "{}",
        pod_a.retrust_hint("fe80::21", 22)
    );
    namespace.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_learners_end_with_exactly_one_key() {
    let client = kube_support::client().await;
    let namespace = ScratchNamespace::new(&client, "host-keys-race").await;
    // Each round races on a new host; the first rounds race on creating the ConfigMap, later ones
    // on updating it.
    for round in 0..6 {
        let host = format!("10.0.1.{round}");
        let pods: Vec<KubeHostKeyStore> = (0..3)
            .map(|_| KubeHostKeyStore::new(client.clone(), &namespace.name))
            .collect();
        let keys: Vec<PublicKey> = (0..3).map(|_| random_key()).collect();
        let answers = futures::future::join_all(
            pods.iter()
                .zip(&keys)
                .map(|(pod, key)| pod.learn(&host, 22, key)),
        )
        .await;
        let answers: Vec<Vec<PublicKey>> = answers.into_iter().map(Result::unwrap).collect();
        let winner = &answers[0];
        assert_eq!(winner.len(), 1, "{answers:?}");
        assert!(
            answers.iter().all(|answer| answer == winner),
            "every learner sees the same key: {answers:?}"
        );
        let accepted = keys.iter().filter(|key| winner.contains(key)).count();
        assert_eq!(accepted, 1, "exactly one learner's key is accepted");
        let recorded = entries(&client, &namespace.name).await;
        assert_eq!(
            recorded[&entry_name(&host, 22)],
            winner[0].to_openssh().unwrap()
        );
        assert_eq!(recorded.len(), round + 1, "no entry lost: {recorded:?}");
    }
    namespace.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_seeded_entry_is_trusted_and_a_broken_one_is_reported() {
    let client = kube_support::client().await;
    let namespace = ScratchNamespace::new(&client, "host-keys-seed").await;
    let (ed25519, other) = (random_key(), random_key());
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace.name);
    config_maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some(HOST_KEYS_CONFIG_MAP.into()),
                    ..Default::default()
                },
                data: Some(
                    [
                        (
                            "esxi-1.example.com_22".to_owned(),
                            format!(
                                "# checked on the console\n{}\n{}\n",
                                ed25519.to_openssh().unwrap(),
                                other.to_openssh().unwrap()
                            ),
                        ),
                        ("esxi-2.example.com_22".to_owned(), "ssh-ed25519 !!".into()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let store = KubeHostKeyStore::new(client.clone(), &namespace.name);
    assert_eq!(
        store.known("esxi-1.example.com", 22).await.unwrap(),
        [ed25519.clone(), other.clone()]
    );
    let err = store
        .learn("esxi-2.example.com", 22, &ed25519)
        .await
        .unwrap_err();
    assert!(!err.transient);
    assert!(
        err.message
            .contains("entry esxi-2.example.com_22 of ConfigMap")
            && err.message.contains("delete the entry"),
        "{err}"
    );
    namespace.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_namespace_is_reported_not_trusted() {
    let client = kube_support::client().await;
    let store = KubeHostKeyStore::new(client, "no-such-namespace-for-host-keys");
    let err = store
        .learn("10.0.0.1", 22, &random_key())
        .await
        .unwrap_err();
    assert!(
        err.message.contains(&format!(
            "creating ConfigMap no-such-namespace-for-host-keys/{HOST_KEYS_CONFIG_MAP} failed"
        )),
        "{err}"
    );
}
