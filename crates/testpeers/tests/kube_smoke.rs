//! Smoke test: the Rust side reaches the kube-apiserver started by `scripts/peers.sh start`, installs
//! co-api's CRD, and round-trips a VSphereXcopyVolumePopulator including its status.

use std::time::Duration;

use co_api::VSphereXcopyVolumePopulator;
use co_testpeers::kube_client;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde::Deserialize;

/// The example from the project's original documentation; only the name is made unique so that
/// concurrent runs against the shared apiserver do not collide.
const SEED_EXAMPLE: &str = r#"
apiVersion: forklift.konveyor.io/v1beta1
kind: VSphereXcopyVolumePopulator
metadata:
  name: vm-1-xcopy-1
  namespace: default
spec:
  secretRef: vantara-secret
  storageVendorProduct: vantara
  targetPVC: my-pvc
  vmdkPath: '[my-vsphere-ds] vm-1/vm-1.vmdk'
"#;

const ESTABLISHED_DEADLINE: Duration = Duration::from_secs(30);

async fn install_crds(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for document in serde_yaml::Deserializer::from_str(&co_api::crds_yaml()) {
        let crd = CustomResourceDefinition::deserialize(document).unwrap();
        let name = crd.metadata.name.clone().unwrap();
        // Server-side apply: idempotent, and other tests may install the same CRD concurrently.
        crds.patch(
            &name,
            &PatchParams::apply("co-testpeers").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
        tokio::time::timeout(
            ESTABLISHED_DEADLINE,
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established within {ESTABLISHED_DEADLINE:?}"))
        .unwrap();
    }
}

#[tokio::test]
async fn crd_installs_and_a_populator_round_trips_with_its_status() {
    let client = kube_client().await.unwrap();
    install_crds(&client).await;

    let mut populator: VSphereXcopyVolumePopulator = serde_yaml::from_str(SEED_EXAMPLE).unwrap();
    let name = format!("smoke-{}", std::process::id());
    populator.metadata.name = Some(name.clone());
    let api: Api<VSphereXcopyVolumePopulator> = Api::namespaced(client, "default");
    let _ = api.delete(&name, &DeleteParams::default()).await;

    let created = api
        .create(&PostParams::default(), &populator)
        .await
        .unwrap();
    let read = api.get(&name).await.unwrap();
    assert_eq!(read.spec, populator.spec);
    assert_eq!(read.metadata.uid, created.metadata.uid);
    assert_eq!(read.spec.vmdk_path, "[my-vsphere-ds] vm-1/vm-1.vmdk");

    // Like Forklift's CRD, ours has no status subresource: status is written with the object.
    let status =
        serde_json::json!({"status": {"progress": "42", "percent": 42, "xcopyUsed": "true"}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    let status = api.get(&name).await.unwrap().status.unwrap();
    assert_eq!(status.progress.as_deref(), Some("42"));
    assert_eq!(status.percent, Some(42));
    assert_eq!(status.xcopy_used.as_deref(), Some("true"));

    // The schema is enforced: percent is bounded 0..=100.
    let invalid = serde_json::json!({"status": {"percent": 101}});
    let err = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(invalid))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("percent"), "{err}");

    api.delete(&name, &DeleteParams::default()).await.unwrap();
}
