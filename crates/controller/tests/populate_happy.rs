//! A PVC whose data source names a VSphereXcopyVolumePopulator comes out Bound with the disk's
//! bytes, on the real API server with the real PV controller, the real populator binary and the lab.

use crate::cluster;

use cluster::{Options, TestCluster};
use co_api::CopyPhase;
use co_api::contract::names;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pvc_is_populated_and_bound_to_the_copied_volume() {
    let cluster = TestCluster::start("ctl-happy", Options::default()).await;
    cluster.create_cr("vm-1-disk-0", cluster::SECRET).await;
    let pvc = cluster.create_claim("disk-0", "vm-1-disk-0").await;
    let uid = pvc.metadata.uid.clone().unwrap();

    let bound = cluster.wait_bound("disk-0").await;
    let pv_name = bound.spec.as_ref().unwrap().volume_name.clone().unwrap();
    let pvs: Api<PersistentVolume> = Api::all(cluster.client.clone());
    let pv = pvs.get(&pv_name).await.unwrap();
    assert_eq!(
        pv.metadata.annotations.as_ref().unwrap()["forklift.konveyor.io/populated-from"],
        format!("{}/vm-1-disk-0", cluster.namespace)
    );
    assert_eq!(
        pv.spec
            .as_ref()
            .unwrap()
            .claim_ref
            .as_ref()
            .unwrap()
            .uid
            .as_deref(),
        Some(uid.as_str())
    );
    cluster.assert_copied(&pv);

    // The prime PVC goes, then the finalizer; the pod is deleted (not retained by default).
    cluster.wait_cleaned_up("disk-0", &uid).await;
    cluster::wait_for(
        &cluster.pods(),
        &names::populator_pod_name(&uid),
        "pod deleted",
        |p| p.is_none(),
    )
    .await;

    let cr = cluster.crs().get("vm-1-disk-0").await.unwrap();
    let status = cr.status.clone().unwrap();
    assert_eq!(status.phase, Some(CopyPhase::Succeeded));
    assert_eq!(status.result.as_deref(), Some("success"));
    assert_eq!(status.progress.as_deref(), Some("100"));
    // From the scrapes of the pod's metrics (the populator waits for the last one).
    assert!(status.copy_duration_seconds.is_some(), "{status:?}");
    assert_eq!(status.clone_method.as_deref(), Some("vib"), "{status:?}");
    assert_eq!(
        status.storage_vendor.as_deref(),
        Some("ontap"),
        "{status:?}"
    );
    assert!(status.xcopy_used.is_some(), "{status:?}");
    assert_eq!(
        cr.metadata.labels.as_ref().unwrap()[names::OFFLOAD_COMPLETED_LABEL],
        "true"
    );
    // Forklift's CRD has no status subresource, so each status write bumps the generation the
    // status records: rewriting a status for its generation alone would trigger the next write,
    // forever. A run writes a handful of distinct statuses (phases, a few progress scrapes).
    let generation = cr.metadata.generation.unwrap_or_default();
    assert!(
        generation <= 12,
        "the CR was written {generation} times: a status write loop"
    );
    let reasons: Vec<String> = cluster
        .events_for("disk-0")
        .await
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert!(
        reasons.contains(&"PopulatorCreated".to_owned()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"PopulatorFinished".to_owned()),
        "{reasons:?}"
    );
    assert_eq!(cluster.runs.lock().unwrap().len(), 1);
    cluster.assert_lab_clean();
    cluster.finish().await;
}

/// The seed documentation's PVC + CR (`secretRef`, `targetPVC`, no `vmId`), changed only where a
/// cluster of this test must differ: `dataSource` (the 1.20 server has no `dataSourceRef`), the
/// test's namespace, class, Secret, lab disk and array, `accessModes` added (the API server requires
/// one), and no `volumeName` (the seed's pre-binds
/// the PVC to a PV that does not exist, which would keep it from ever being populated).
const SEED_PVC_AND_CR: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: my-pvc
spec:
  resources:
    requests:
      storage: 64Mi
  dataSource:
    apiGroup: forklift.konveyor.io
    kind: VSphereXcopyVolumePopulator
    name: vm-1-xcopy-1
  storageClassName: CLASS
  volumeMode: Block
---
apiVersion: forklift.konveyor.io/v1beta1
kind: VSphereXcopyVolumePopulator
metadata:
  name: vm-1-xcopy-1
spec:
  secretRef: SECRET
  storageVendorProduct: ontap
  targetPVC: my-pvc
  vmdkPath: '[ds1] vm-1/vm-1.vmdk'
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_documentation_manifests_are_populated() {
    use serde::Deserialize;
    let cluster = TestCluster::start("ctl-seed", Options::default()).await;
    let text = SEED_PVC_AND_CR
        .replace("CLASS", &cluster.class)
        .replace("SECRET", cluster::SECRET);
    let mut documents = serde_yaml::Deserializer::from_str(&text);
    let pvc =
        k8s_openapi::api::core::v1::PersistentVolumeClaim::deserialize(documents.next().unwrap())
            .unwrap();
    let cr = co_api::VSphereXcopyVolumePopulator::deserialize(documents.next().unwrap()).unwrap();
    cluster
        .crs()
        .create(&Default::default(), &cr)
        .await
        .unwrap();
    let mut pvc = pvc;
    pvc.spec.as_mut().unwrap().access_modes = Some(vec!["ReadWriteOnce".into()]);
    cluster
        .pvcs()
        .create(&Default::default(), &pvc)
        .await
        .unwrap();
    let bound = cluster.wait_bound("my-pvc").await;
    let pvs: Api<PersistentVolume> = Api::all(cluster.client.clone());
    let pv = pvs
        .get(bound.spec.as_ref().unwrap().volume_name.as_deref().unwrap())
        .await
        .unwrap();
    cluster.assert_copied(&pv);
    cluster.finish().await;
}
