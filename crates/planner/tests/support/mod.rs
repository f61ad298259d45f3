//! Test support for the planner: the shared kube-apiserver peer (`scripts/peers.sh start`), a
//! scratch namespace per test, a minimal structural subset of Forklift's CRDs (unknown fields
//! preserved; installed once, idempotently, as tests run in parallel), the seed's manifests, and
//! the planner running in-process on the test's namespace, reporting each reconcile.
//!
//! The namespace doubles as the planner's "Forklift namespace", so each test has its own
//! `feature_copy_offload` and tests do not see each other's flag.

use std::time::Duration;

use co_planner::{Observed, Settings};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long any one wait of a test may take.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// A client for the peer; fails with the command to start it when it is not running.
pub async fn client() -> Client {
    co_testpeers::kube_client()
        .await
        .unwrap_or_else(|error| panic!("kube-apiserver peer unavailable: {error:#}"))
}

/// The Forklift kinds the planner reads, as (kind, plural).
const FORKLIFT_KINDS: &[(&str, &str)] = &[
    ("Provider", "providers"),
    ("StorageMap", "storagemaps"),
    ("Plan", "plans"),
    ("ForkliftController", "forkliftcontrollers"),
];

fn minimal_crd(kind: &str, plural: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("{plural}.forklift.konveyor.io") },
        "spec": {
            "group": "forklift.konveyor.io",
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "plural": plural,
                "singular": kind.to_ascii_lowercase(),
                "listKind": format!("{kind}List"),
            },
            "versions": [{
                "name": "v1beta1",
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                }},
            }],
        },
    }))
    .expect("a valid CRD")
}

/// Installs the minimal Forklift CRDs unless present, and waits until they are served.
pub async fn ensure_forklift_crds(client: &Client) {
    for (kind, plural) in FORKLIFT_KINDS {
        co_testpeers::install_crd(client, &minimal_crd(kind, plural))
            .await
            .unwrap_or_else(|error| panic!("{error:#}"));
    }
}

/// A test's namespace, its planner, and what the planner reports.
pub struct Scratch {
    pub client: Client,
    pub namespace: String,
    /// The SSH port the planner probes ESXi hosts on (22 unless a test points it at its peers).
    pub esxi_ssh_port: u16,
    /// How often the planner re-probes a Provider's hosts (the default 300 s unless a test wants
    /// the requeue to trigger).
    pub ssh_readiness_interval_seconds: u64,
    observed: mpsc::UnboundedReceiver<Observed>,
    observer: mpsc::UnboundedSender<Observed>,
    planner: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
    /// The ClusterRole (and its binding) made for this test's account, deleted by `finish`, and
    /// that account's client.
    shipped_role: Option<(String, Client)>,
}

/// The controller's ServiceAccount, which `deploy/planner-rbac.yaml` binds the planner's role to.
pub const CONTROLLER_ACCOUNT: &str = "copy-offload-controller";

impl Scratch {
    /// A fresh namespace (named `<prefix>-<8 hex>`) with the Forklift CRDs installed; the planner
    /// is not started.
    pub async fn new(prefix: &str) -> Scratch {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = client().await;
        ensure_forklift_crds(&client).await;
        let namespace = co_testpeers::create_scratch_namespace(&client, prefix)
            .await
            .unwrap_or_else(|error| panic!("{error:#}"));
        let (observer, observed) = mpsc::unbounded_channel();
        Scratch {
            client,
            namespace,
            esxi_ssh_port: 22,
            ssh_readiness_interval_seconds: 300,
            observed,
            observer,
            planner: None,
            shipped_role: None,
        }
    }

    /// Starts the planner in-process on this namespace (also its Forklift namespace).
    pub async fn start_planner(&mut self) {
        let client = self.client.clone();
        self.start_planner_as(client).await;
    }

    /// Starts the planner as [`Scratch::start_planner`] does, making its requests with `client`
    /// (an account with restricted rights, say).
    pub async fn start_planner_as(&mut self, client: Client) {
        let settings = Settings {
            forklift_namespace: self.namespace.clone(),
            forklift_controller_name: "forklift-controller".into(),
            watch_namespace: Some(self.namespace.clone()),
            observer: Some(self.observer.clone()),
            esxi_ssh_port: self.esxi_ssh_port,
            ssh_readiness_interval_seconds: self.ssh_readiness_interval_seconds,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(co_planner::run_with(client, settings, async move {
            let _ = stopped.await;
        }));
        self.planner = Some((stop, task));
    }

    /// Starts the planner as the controller's ServiceAccount of this namespace, bound to exactly
    /// the ClusterRole shipped in `deploy/planner-rbac.yaml`, and returns that account's client:
    /// what the test then sees the planner do, it did with the shipped rights only. Called again
    /// (a restart), it starts the planner as the same account.
    pub async fn start_planner_with_shipped_role(&mut self) -> Client {
        if let Some((_, account)) = &self.shipped_role {
            let account = account.clone();
            self.start_planner_as(account.clone()).await;
            return account;
        }
        let role = format!("{}-planner", self.namespace);
        let shipped =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/planner-rbac.yaml");
        let rules = co_testpeers::shipped_cluster_role_rules(&shipped)
            .unwrap_or_else(|error| panic!("{error:#}"));
        let account = co_testpeers::client_as_account(
            &self.client,
            &self.namespace,
            CONTROLLER_ACCOUNT,
            &role,
            rules,
        )
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
        self.shipped_role = Some((role, account.clone()));
        self.start_planner_as(account.clone()).await;
        account
    }

    /// Stops the planner and waits until it has.
    pub async fn stop_planner(&mut self) {
        if let Some((stop, task)) = self.planner.take() {
            let _ = stop.send(());
            tokio::time::timeout(DEADLINE, task)
                .await
                .expect("the planner stops")
                .expect("the planner did not panic");
        }
        while self.observed.try_recv().is_ok() {}
    }

    /// Waits for the first reconcile report that `wanted` accepts, failing after [`DEADLINE`].
    pub async fn observe(&mut self, what: &str, wanted: impl Fn(&Observed) -> bool) -> Observed {
        let wait = async {
            while let Some(observed) = self.observed.recv().await {
                if wanted(&observed) {
                    return observed;
                }
            }
            panic!("the planner stopped reporting before {what}");
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .unwrap_or_else(|_| panic!("{what} did not happen within {DEADLINE:?}"))
    }

    /// A namespaced API of a Forklift kind (`"Provider"`, `"StorageMap"`, …).
    pub fn forklift(&self, kind: &str) -> Api<DynamicObject> {
        let plural = FORKLIFT_KINDS
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, plural)| *plural)
            .unwrap_or_else(|| panic!("not a Forklift kind of these tests: {kind}"));
        let resource = ApiResource {
            group: "forklift.konveyor.io".into(),
            version: "v1beta1".into(),
            api_version: "forklift.konveyor.io/v1beta1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
    }

    /// Applies a manifest (YAML text) into this namespace: only `metadata.namespace` (and
    /// namespaces inside references, given as `replace_namespace`) is changed.
    pub async fn apply_manifest(&self, yaml: &str, replace_namespace: &str) -> DynamicObject {
        let text = yaml.replace(
            &format!("namespace: {replace_namespace}"),
            &format!("namespace: {}", self.namespace),
        );
        let object: DynamicObject = serde_yaml::from_str(&text).expect("a valid manifest");
        let kind = object
            .types
            .as_ref()
            .map(|t| t.kind.clone())
            .unwrap_or_default();
        self.forklift(&kind)
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|error| panic!("creating the {kind}: {error}"))
    }

    /// Sets `feature_copy_offload` the way the seed does it: a merge patch of the
    /// `ForkliftController` CR's spec (the CR is created first when absent).
    pub async fn set_flag_on_forklift_controller(&self, value: &str) {
        let api = self.forklift("ForkliftController");
        let controller: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "forklift.konveyor.io/v1beta1",
            "kind": "ForkliftController",
            "metadata": { "name": "forklift-controller", "namespace": self.namespace },
            "spec": {},
        }))
        .expect("a valid object");
        match api.create(&PostParams::default(), &controller).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_already_exists() => {}
            Err(error) => panic!("creating the ForkliftController: {error}"),
        }
        api.patch(
            "forklift-controller",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"feature_copy_offload": value}})),
        )
        .await
        .unwrap_or_else(|error| panic!("patching the ForkliftController: {error}"));
    }

    /// Sets `feature_copy_offload` without Forklift's operator: copy-offload's own ConfigMap
    /// `copy-offload-features` (created first when absent).
    pub async fn set_flag_on_config_map(&self, value: &str) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let config_map: ConfigMap = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": "copy-offload-features", "namespace": self.namespace },
            "data": { "feature_copy_offload": value },
        }))
        .expect("a valid ConfigMap");
        match api.create(&PostParams::default(), &config_map).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                api.patch(
                    "copy-offload-features",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"data": {"feature_copy_offload": value}})),
                )
                .await
                .unwrap_or_else(|error| panic!("patching the flag ConfigMap: {error}"));
            }
            Err(error) => panic!("creating the flag ConfigMap: {error}"),
        }
    }

    /// Creates Provider `name` in this namespace with `spec`.
    pub async fn create_provider(&self, name: &str, spec: serde_json::Value) -> DynamicObject {
        let provider: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "forklift.konveyor.io/v1beta1",
            "kind": "Provider",
            "metadata": { "name": name, "namespace": self.namespace },
            "spec": spec,
        }))
        .expect("a valid Provider");
        self.forklift("Provider")
            .create(&PostParams::default(), &provider)
            .await
            .unwrap_or_else(|error| panic!("creating Provider {name}: {error}"))
    }

    /// Stops the planner and deletes the namespace.
    pub async fn finish(mut self) {
        self.stop_planner().await;
        if let Some((role, _)) = self.shipped_role.take() {
            co_testpeers::delete_cluster_role(&self.client, &role).await;
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces
            .delete(&self.namespace, &DeleteParams::default())
            .await;
    }
}
