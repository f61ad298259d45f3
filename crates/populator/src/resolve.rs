//! Resolve: which PersistentVolume (CSI volume handle and attributes) the copy writes into.
//!
//! In a cluster that is the PV bound to the target PVC or, while the PVC waits for its populator,
//! to the prime PVC `prime-<PVC UID>` in the same namespace (upstream's convention).
//! Without Kubernetes (manual runs, the lab) the volume is given directly, as a handle
//! with attributes or as a PV manifest file (YAML or JSON).
//!
//! The pod may start before the storage provisioner has bound the prime PVC: our controller
//! starts it at once so the populator's logins overlap the provisioning, and Forklift's creates
//! the pod before the prime PVC itself. The populator therefore watches the prime PVC until it is
//! bound — upstream fails the run instead, and Forklift never retries it.

use std::sync::Arc;
use std::time::Duration;

use co_storage::PersistentVolumeRef;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::args::TargetVolume;
use crate::error::CopyError;
pub use crate::pv::{pv_from_file, pv_ref};

/// Name of the prime PVC the populator controller creates for the PVC with this UID.
pub use co_api::contract::names::prime_pvc_name;

/// How long a run waits for the storage provisioner to bind the prime PVC. Provisioning a LUN
/// takes seconds on every array we know; ten minutes covers a busy CSI driver, and a run that
/// gives up is retryable.
pub const VOLUME_BIND_TIMEOUT: Duration = Duration::from_secs(600);

/// How [`resolve_target`] waits for a prime PVC that is not bound yet.
#[derive(Clone, Debug)]
pub struct VolumeWait {
    /// Give up (retryable) after this long.
    pub timeout: Duration,
    /// Stops the wait as SIGTERM stops the run.
    pub cancel: CancellationToken,
    /// Notified once when the wait starts (tests synchronise on it).
    pub waiting: Option<Arc<Notify>>,
}

impl Default for VolumeWait {
    fn default() -> Self {
        Self {
            timeout: VOLUME_BIND_TIMEOUT,
            cancel: CancellationToken::new(),
            waiting: None,
        }
    }
}

/// The PV behind `target`. `kube` is needed only for [`TargetVolume::Pvc`].
pub async fn resolve_target(
    target: &TargetVolume,
    kube: Option<&Client>,
    wait: &VolumeWait,
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
            pv_of_pvc(client, namespace, name, wait).await
        }
    }
}

async fn pv_of_pvc(
    client: &Client,
    namespace: &str,
    name: &str,
    wait: &VolumeWait,
) -> Result<PersistentVolumeRef, CopyError> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let kube_error = |action: String| move |source| CopyError::Kube { action, source };
    let pvc = pvcs
        .get(name)
        .await
        .map_err(kube_error(format!("reading PVC {namespace}/{name}")))?;
    let volume_name = match bound_volume(&pvc) {
        Some(volume) => volume,
        None => {
            let uid = pvc.metadata.uid.clone().unwrap_or_default();
            let prime = prime_pvc_name(&uid);
            let prime_pvc = pvcs
                .get_opt(&prime)
                .await
                .map_err(kube_error(format!("reading prime PVC {namespace}/{prime}")))?;
            match prime_pvc.as_ref().and_then(bound_volume) {
                Some(volume) => volume,
                None => wait_for_binding(&pvcs, namespace, name, &prime, wait).await?,
            }
        }
    };
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv = pvs
        .get(&volume_name)
        .await
        .map_err(kube_error(format!("reading PV {volume_name}")))?;
    pv_ref(&pv)
}

fn bound_volume(pvc: &PersistentVolumeClaim) -> Option<String> {
    pvc.spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty())
}

/// Watches the prime PVC until the provisioner binds it (it may not even exist yet when
/// Forklift's controller started the pod), within `wait.timeout`.
async fn wait_for_binding(
    pvcs: &Api<PersistentVolumeClaim>,
    namespace: &str,
    name: &str,
    prime: &str,
    wait: &VolumeWait,
) -> Result<String, CopyError> {
    info!(
        prime_pvc = %prime,
        timeout_s = wait.timeout.as_secs(),
        "waiting for the storage provisioner to bind the prime PVC"
    );
    if let Some(waiting) = &wait.waiting {
        waiting.notify_one();
    }
    let is_bound = |pvc: Option<&PersistentVolumeClaim>| pvc.and_then(bound_volume).is_some();
    let watched = tokio::select! {
        () = wait.cancel.cancelled() => return Err(CopyError::Cancelled),
        watched = tokio::time::timeout(wait.timeout, await_condition(pvcs.clone(), prime, is_bound)) => watched,
    };
    match watched {
        Ok(Ok(Some(pvc))) => bound_volume(&pvc).ok_or_else(|| CopyError::Target {
            message: format!("prime PVC {namespace}/{prime} was seen bound without a volume name"),
            retryable: true,
        }),
        Ok(Ok(None)) => Err(CopyError::Target {
            message: format!(
                "prime PVC {namespace}/{prime} was deleted while waiting for its volume"
            ),
            retryable: true,
        }),
        Ok(Err(e)) => Err(CopyError::Target {
            message: format!("watching prime PVC {namespace}/{prime} for its volume: {e}"),
            retryable: true,
        }),
        Err(_) => Err(CopyError::Target {
            message: format!(
                "neither PVC {namespace}/{name} nor its prime PVC {prime} was bound to a volume within {} s; \
                 check the storage class's provisioner (kubectl describe pvc -n {namespace} {prime})",
                wait.timeout.as_secs()
            ),
            retryable: true,
        }),
    }
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
