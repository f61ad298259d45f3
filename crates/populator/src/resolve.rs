//! Resolve: which PersistentVolume (CSI volume handle and attributes) the copy writes into.
//!
//! In a cluster that is the PV bound to the target PVC or, while the PVC waits for its populator,
//! to the prime PVC `prime-<PVC UID>` in the same namespace (upstream's convention).
//! Without Kubernetes (manual runs, the lab) the volume is given directly, as a handle
//! with attributes or as a PV manifest file (YAML or JSON).

use co_storage::PersistentVolumeRef;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::{Api, Client};

use crate::args::TargetVolume;
use crate::error::CopyError;
pub use crate::pv::{pv_from_file, pv_ref};

/// Name of the prime PVC the populator controller creates for the PVC with this UID.
pub use co_api::contract::names::prime_pvc_name;

/// The PV behind `target`. `kube` is needed only for [`TargetVolume::Pvc`].
pub async fn resolve_target(
    target: &TargetVolume,
    kube: Option<&Client>,
) -> Result<PersistentVolumeRef, CopyError> {
    match target {
        TargetVolume::VolumeHandle { handle, attributes } => Ok(PersistentVolumeRef {
            name: handle.clone(),
            csi_driver: None,
            volume_handle: handle.clone(),
            volume_attributes: attributes.clone(),
        }),
        TargetVolume::PvFile(path) => pv_from_file(path),
        TargetVolume::Pvc { namespace, name } => {
            let client = kube.ok_or_else(|| CopyError::Target {
                message: format!(
                    "PVC {namespace}/{name} needs the Kubernetes API, but no client could be built; run in a \
                     pod, give --kubeconfig, or give --target-volume-handle/--pv-file instead"
                ),
                retryable: false,
            })?;
            pv_of_pvc(client, namespace, name).await
        }
    }
}

async fn pv_of_pvc(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<PersistentVolumeRef, CopyError> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let kube_error = |action: String| move |source| CopyError::Kube { action, source };
    let pvc = pvcs
        .get(name)
        .await
        .map_err(kube_error(format!("reading PVC {namespace}/{name}")))?;
    let bound = |pvc: &PersistentVolumeClaim| {
        pvc.spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty())
    };
    let volume_name = match bound(&pvc) {
        Some(volume) => volume,
        None => {
            let uid = pvc.metadata.uid.clone().unwrap_or_default();
            let prime = prime_pvc_name(&uid);
            let prime_pvc = pvcs
                .get(&prime)
                .await
                .map_err(kube_error(format!("reading prime PVC {namespace}/{prime}")))?;
            bound(&prime_pvc).ok_or_else(|| CopyError::Target {
                message: format!(
                    "neither PVC {namespace}/{name} nor its prime PVC {prime} is bound to a volume yet; the \
                     storage class may still be provisioning it"
                ),
                retryable: true,
            })?
        }
    };
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv = pvs
        .get(&volume_name)
        .await
        .map_err(kube_error(format!("reading PV {volume_name}")))?;
    pv_ref(&pv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pv_files_yield_the_csi_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pv.yaml");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: pvc-123\nspec:\n  csi:\n    driver: \
             csi.trident.netapp.io\n    volumeHandle: pvc-123\n    volumeAttributes:\n      internalName: trident_pvc_123\n",
        )
        .unwrap();
        let pv = pv_from_file(&path).unwrap();
        assert_eq!(pv.name, "pvc-123");
        assert_eq!(pv.csi_driver.as_deref(), Some("csi.trident.netapp.io"));
        assert_eq!(pv.volume_attributes["internalName"], "trident_pvc_123");

        std::fs::write(
            &path,
            "{\"kind\": \"PersistentVolume\", \"metadata\": {\"name\": \"nfs\"}, \"spec\": {}}",
        )
        .unwrap();
        let err = pv_from_file(&path).unwrap_err();
        assert!(err.to_string().contains("has no CSI source"), "{err}");
        assert!(pv_from_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn prime_pvc_name_is_the_upstream_convention() {
        assert_eq!(prime_pvc_name("0d2e-11"), "prime-0d2e-11");
    }
}
