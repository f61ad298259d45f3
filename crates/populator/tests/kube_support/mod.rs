//! Shared setup for the tests that run against the kube-apiserver peer (`scripts/peers.sh start`).

use std::time::Duration;

use co_api::{VSphereXcopyVolumePopulator, VSphereXcopyVolumePopulatorSpec};
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, Namespace, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeSpec, VolumeResourceRequirements,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::time::Instant;

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

/// Installs the CRD (if no other test did) and waits until the apiserver serves it.
pub async fn ensure_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = co_api::populator_crd();
    let name = crd.metadata.name.clone().unwrap();
    match crds.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.is_already_exists() => {}
        Err(error) => panic!("cannot install the CRD: {error}"),
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let established = crds
            .get(&name)
            .await
            .unwrap()
            .status
            .and_then(|s| s.conditions)
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if established {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "CRD {name} never became established"
        );
        tokio::task::yield_now().await;
    }
}

pub async fn create_cr(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Api<VSphereXcopyVolumePopulator> {
    ensure_crd(client).await;
    let api: Api<VSphereXcopyVolumePopulator> = Api::namespaced(client.clone(), namespace);
    let spec = VSphereXcopyVolumePopulatorSpec {
        vm_id: Some("vm-42".into()),
        vmdk_path: "[datastore1] vm-42/vm-42.vmdk".into(),
        secret_name: Some("storage-secret".into()),
        storage_vendor_product: "ontap".into(),
        ..Default::default()
    };
    let cr = VSphereXcopyVolumePopulator::new(name, spec);
    // The CRD may have been installed a moment ago: the first creates can race its serving.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api.create(&PostParams::default(), &cr).await {
            Ok(_) => return api,
            Err(_) if Instant::now() < deadline => tokio::task::yield_now().await,
            Err(error) => panic!("cannot create the CR: {error}"),
        }
    }
}

/// A 64 MiB block PVC `name`, bound to PV `volume` when given.
pub fn claim(name: &str, volume: Option<&str>) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            volume_mode: Some("Block".into()),
            volume_name: volume.map(str::to_owned),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity("64Mi".into()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// The user's PVC `disk-0` (unbound) and its prime PVC bound to a CSI PV naming `flexvol`, as
/// Forklift's controller and the CSI driver leave them; returns the user PVC's UID.
pub async fn target_claims(admin: &Client, namespace: &str, flexvol: &str) -> String {
    let uid = user_claim(admin, namespace).await;
    bind_prime_claim(admin, namespace, &uid, flexvol).await;
    uid
}

/// The user's PVC `disk-0`, unbound and without a prime PVC yet (as Forklift's controller leaves
/// it when it has started the pod); returns its UID.
pub async fn user_claim(admin: &Client, namespace: &str) -> String {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), namespace);
    let user = pvcs
        .create(&PostParams::default(), &claim("disk-0", None))
        .await
        .unwrap();
    user.metadata.uid.unwrap()
}

/// What the storage provisioner does for the prime PVC of the PVC with `uid`: a CSI PV naming
/// `flexvol`, and the prime PVC bound to it.
pub async fn bind_prime_claim(admin: &Client, namespace: &str, uid: &str, flexvol: &str) {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), namespace);
    let pv_name = format!("pv-{namespace}");
    Api::<PersistentVolume>::all(admin.clone())
        .create(
            &PostParams::default(),
            &PersistentVolume {
                metadata: ObjectMeta {
                    name: Some(pv_name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    capacity: Some(BTreeMap::from([(
                        "storage".into(),
                        Quantity("64Mi".into()),
                    )])),
                    volume_mode: Some("Block".into()),
                    csi: Some(CSIPersistentVolumeSource {
                        driver: "csi.trident.netapp.io".into(),
                        volume_handle: format!("pvc-{flexvol}"),
                        volume_attributes: Some(BTreeMap::from([(
                            "internalName".into(),
                            flexvol.into(),
                        )])),
                        ..CSIPersistentVolumeSource::default()
                    }),
                    ..PersistentVolumeSpec::default()
                }),
                ..PersistentVolume::default()
            },
        )
        .await
        .unwrap();
    pvcs.create(
        &PostParams::default(),
        &claim(&format!("prime-{uid}"), Some(&pv_name)),
    )
    .await
    .unwrap();
}
