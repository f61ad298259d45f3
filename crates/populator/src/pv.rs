//! A PersistentVolume's CSI identity (driver, volume handle, attributes): read from a PV object or
//! from a PV manifest file given with `--pv-file`.

use std::path::Path;

use co_storage::PersistentVolumeRef;
use k8s_openapi::api::core::v1::PersistentVolume;

use crate::error::CopyError;

/// Reads a PV manifest (YAML or JSON) and takes its CSI source.
pub fn pv_from_file(path: &Path) -> Result<PersistentVolumeRef, CopyError> {
    let text = std::fs::read_to_string(path).map_err(|e| CopyError::Target {
        message: format!("cannot read the PV file {}: {e}", path.display()),
        retryable: false,
    })?;
    let pv: PersistentVolume = serde_yaml::from_str(&text).map_err(|e| CopyError::Target {
        message: format!(
            "{} is not a PersistentVolume manifest: {e}; export one with `kubectl get pv <name> -o yaml`",
            path.display()
        ),
        retryable: false,
    })?;
    pv_ref(&pv)
}

/// The CSI identity of a PV.
pub fn pv_ref(pv: &PersistentVolume) -> Result<PersistentVolumeRef, CopyError> {
    let name = pv.metadata.name.clone().unwrap_or_default();
    let csi = pv
        .spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .ok_or_else(|| CopyError::Target {
            message: format!(
                "PersistentVolume {name:?} has no CSI source; copy-offload needs a volume provisioned by the \
                 array's CSI driver"
            ),
            retryable: false,
        })?;
    Ok(PersistentVolumeRef {
        name,
        csi_driver: Some(csi.driver.clone()),
        volume_handle: csi.volume_handle.clone(),
        volume_attributes: csi.volume_attributes.clone().unwrap_or_default(),
    })
}
