//! Shared setup for the tests that run against the kube-apiserver peer (`scripts/peers.sh start`).

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

/// A client for the peer; fails (with the command to start it) if the peer is not running.
pub async fn client() -> Client {
    co_testpeers::kube_client()
        .await
        .unwrap_or_else(|error| panic!("kube-apiserver peer unavailable: {error:#}"))
}

/// A fresh namespace, so tests do not see each other's objects.
pub struct ScratchNamespace {
    pub name: String,
    api: Api<Namespace>,
}

impl ScratchNamespace {
    pub async fn new(client: &Client, prefix: &str) -> Self {
        let name = format!(
            "{prefix}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let api: Api<Namespace> = Api::all(client.clone());
        let namespace = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        Self { name, api }
    }
}

impl ScratchNamespace {
    /// Deletes the namespace (a test that fails before this leaves it for inspection).
    pub async fn delete(self) {
        let _ = self.api.delete(&self.name, &DeleteParams::default()).await;
    }
}
