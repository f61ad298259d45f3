//! Forklift's controller writes a `VSphereXcopyVolumePopulator`'s status and its
//! `offload-completed` label with a plain Update (replace) of the whole object. On the real API
//! server: with the CRD we ship (`deploy/crds/`, no status subresource) that status persists; with
//! the status subresource the derived definition would carry, the server drops the status — the
//! reason we ship none. (The seed's example CR is applied unchanged by co-testpeers' `kube_smoke`.)
//!
//! The shared API server's CRD is used by every test running in parallel, so each case installs a
//! copy of the definition under a group of its own and removes it afterwards.

use std::time::Duration;

use co_api::contract::names::OFFLOAD_COMPLETED_LABEL;
use co_api::{CRDS_FILE, VSphereXcopyVolumePopulator};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, CustomResourceExt};
use serde::Deserialize;
use serde_json::json;

/// The CRD as checked in under `deploy/crds/`.
fn shipped_crd() -> CustomResourceDefinition {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(CRDS_FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let document = serde_yaml::Deserializer::from_str(&text)
        .next()
        .expect("one CRD in the file");
    CustomResourceDefinition::deserialize(document).unwrap()
}

/// `crd` installed under a group of its own; removed when the case ends.
struct ScratchCrd {
    client: Client,
    name: String,
    group: String,
}

impl ScratchCrd {
    async fn install(mut crd: CustomResourceDefinition) -> ScratchCrd {
        let client = co_testpeers::kube_client()
            .await
            .unwrap_or_else(|error| panic!("kube-apiserver peer unavailable: {error:#}"));
        let group = format!(
            "t{}.copy-offload.test",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let name = format!("{}.{group}", crd.spec.names.plural);
        crd.spec.group = group.clone();
        crd.metadata.name = Some(name.clone());
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.create(&PostParams::default(), &crd).await.unwrap();
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(crds, &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established within 60 s"))
        .unwrap();
        ScratchCrd {
            client,
            name,
            group,
        }
    }

    fn api(&self) -> Api<DynamicObject> {
        let gvk =
            GroupVersionKind::gvk(&self.group, co_api::VERSION, "VSphereXcopyVolumePopulator");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "vspherexcopyvolumepopulators");
        Api::namespaced_with(self.client.clone(), "default", &resource)
    }

    /// A CR as Forklift's builder creates it, in this CRD's group.
    fn forklift_cr(&self, name: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": format!("{}/{}", self.group, co_api::VERSION),
            "kind": "VSphereXcopyVolumePopulator",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "vmId": "vm-42",
                "vmdkPath": "[ds1] vm-1/vm-1.vmdk",
                "secretName": "vsphere-ontap",
                "storageVendorProduct": "ontap",
            },
        }))
        .unwrap()
    }

    /// Creates a CR, then replaces it as Forklift's controller does: the object as read, with a
    /// status and the completion label. Returns the object read back.
    async fn forklift_update(&self) -> DynamicObject {
        let api = self.api();
        let created = api
            .create(&PostParams::default(), &self.forklift_cr("vm-1-xcopy-1"))
            .await
            .unwrap();
        assert_eq!(created.data["spec"]["vmId"], "vm-42", "{created:?}");
        let mut updated = api.get("vm-1-xcopy-1").await.unwrap();
        updated.data["status"] = json!({"progress": "100", "xcopyUsed": "1"});
        updated
            .metadata
            .labels
            .get_or_insert_default()
            .insert(OFFLOAD_COMPLETED_LABEL.into(), "true".into());
        api.replace("vm-1-xcopy-1", &PostParams::default(), &updated)
            .await
            .unwrap();
        api.get("vm-1-xcopy-1").await.unwrap()
    }

    async fn remove(self) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let _ = crds.delete(&self.name, &DeleteParams::default()).await;
    }
}

fn completed_label(object: &DynamicObject) -> Option<&str> {
    object
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(OFFLOAD_COMPLETED_LABEL))
        .map(String::as_str)
}

#[tokio::test]
async fn a_plain_update_persists_status_with_the_crd_we_ship() {
    let crd = ScratchCrd::install(shipped_crd()).await;
    let read = crd.forklift_update().await;
    crd.remove().await;
    assert_eq!(read.data["status"]["progress"], "100", "{read:?}");
    assert_eq!(read.data["status"]["xcopyUsed"], "1", "{read:?}");
    assert_eq!(completed_label(&read), Some("true"));
}

/// Why the shipped CRD has no status subresource: with one, the same Update loses the status
/// (the label, being metadata, survives).
#[tokio::test]
async fn a_status_subresource_would_drop_forklifts_status() {
    let crd = ScratchCrd::install(VSphereXcopyVolumePopulator::crd()).await;
    let read = crd.forklift_update().await;
    crd.remove().await;
    assert!(read.data.get("status").is_none(), "{read:?}");
    assert_eq!(completed_label(&read), Some("true"));
}
