//! InfiniBox's read-only readiness: the hosts holding each ESXi host's ports (the source
//! datastore's volume reaches the ESXi host through one of them), and whether a device is a
//! volume of this system (its name is `naa.6` + the volume serial).

use super::{HOST_FIELDS, HostRecord, InfiniBoxArray, port_of, same_port};
use crate::api::{ArrayReadiness, HostInitiators, StorageApi};
use crate::error::StorageError;
use crate::model::EsxiHostRef;
use crate::naa::DeviceName;

impl InfiniBoxArray {
    pub(super) async fn check_readiness(
        &self,
        hosts: &[EsxiHostRef],
    ) -> Result<ArrayReadiness, StorageError> {
        let info = self.array_info().await?;
        let records: Vec<HostRecord> = self.list(&["hosts"], Some(HOST_FIELDS), &[]).await?;
        let initiators = HostInitiators::sort_each(
            hosts,
            |i| port_of(i).is_some(),
            |i| {
                port_of(i).is_some_and(|port| {
                    records
                        .iter()
                        .any(|h| h.ports.iter().any(|q| same_port(q, &port)))
                })
            },
        );
        Ok(ArrayReadiness {
            info,
            initiators,
            prerequisites: Vec::new(),
        })
    }
}

impl InfiniBoxArray {
    pub(super) async fn lookup_device(
        &self,
        device: &DeviceName,
    ) -> Result<Option<bool>, StorageError> {
        let Some(serial) = device
            .identifier()
            .strip_prefix('6')
            .filter(|_| device.as_str().starts_with("naa."))
        else {
            return Ok(Some(false));
        };
        let found: Vec<serde_json::Value> = self
            .list(&["volumes"], Some("id"), &[("serial", serial.to_owned())])
            .await?;
        Ok(Some(!found.is_empty()))
    }
}
