//! Test support for the planner: the shared kube-apiserver peer (`scripts/peers.sh start`), a
//! scratch namespace per test, a minimal structural subset of Forklift's CRDs (unknown fields
//! preserved; installed once, idempotently, as tests run in parallel), the seed's manifests, and
//! the planner running in-process on the test's namespace, reporting each reconcile.
//!
//! The namespace doubles as the planner's "Forklift namespace", so each test has its own
//! `feature_copy_offload` and tests do not see each other's flag.

#![allow(dead_code)]

use std::time::Duration;

use co_planner::{Observed, Settings};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::runtime::wait::await_condition;
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
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (kind, plural) in FORKLIFT_KINDS {
        let crd = minimal_crd(kind, plural);
        let name = crd.metadata.name.clone().unwrap_or_default();
        match crds.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_already_exists() => {}
            Err(error) => panic!("cannot install CRD {name}: {error}"),
        }
        let established = await_condition(
            crds.clone(),
            &name,
            |crd: Option<&CustomResourceDefinition>| {
                crd.and_then(|c| c.status.as_ref())
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    })
            },
        );
        match tokio::time::timeout(DEADLINE, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => panic!("watching CRD {name}: {error}"),
            Err(_) => panic!("CRD {name} not established within {DEADLINE:?}"),
        }
    }
}

/// A test's namespace, its planner, and what the planner reports.
pub struct Scratch {
    pub client: Client,
    pub namespace: String,
    observed: mpsc::UnboundedReceiver<Observed>,
    observer: mpsc::UnboundedSender<Observed>,
    planner: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Scratch {
    /// A fresh namespace (named `<prefix>-<8 hex>`) with the Forklift CRDs installed; the planner
    /// is not started.
    pub async fn new(prefix: &str) -> Scratch {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = client().await;
        ensure_forklift_crds(&client).await;
        let namespace = format!(
            "{prefix}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &Namespace {
                    metadata: ObjectMeta {
                        name: Some(namespace.clone()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|error| panic!("creating namespace {namespace}: {error}"));
        let (observer, observed) = mpsc::unbounded_channel();
        Scratch {
            client,
            namespace,
            observed,
            observer,
            planner: None,
        }
    }

    /// Starts the planner in-process on this namespace (also its Forklift namespace).
    pub async fn start_planner(&mut self) {
        let settings = Settings {
            forklift_namespace: self.namespace.clone(),
            forklift_controller_name: "forklift-controller".into(),
            watch_namespace: Some(self.namespace.clone()),
            observer: Some(self.observer.clone()),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let client = self.client.clone();
        let task = tokio::spawn(co_planner::run_with(client, settings, async move {
            let _ = stopped.await;
        }));
        self.planner = Some((stop, task));
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

    /// Stops the planner and deletes the namespace.
    pub async fn finish(mut self) {
        self.stop_planner().await;
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces
            .delete(&self.namespace, &DeleteParams::default())
            .await;
    }
}
