//! FlashArray's read-only readiness: the hosts holding each ESXi host's ports (the source
//! datastore's volume reaches the ESXi host through one of them), and whether a device is a
//! volume of this array (its name carries the volume serial).

use super::{HostRecord, PureArray, filter_literal, host_port, serial_from_device_name};
use crate::api::{ArrayReadiness, HostInitiators, StorageApi};
use crate::error::StorageError;
use crate::model::EsxiHostRef;
use crate::naa::DeviceName;

impl PureArray {
    pub(super) async fn check_readiness(
        &self,
        hosts: &[EsxiHostRef],
    ) -> Result<ArrayReadiness, StorageError> {
        let info = self.array_info().await?;
        let records: Vec<HostRecord> = self.list("hosts", &[]).await?;
        let initiators = HostInitiators::sort_each(
            hosts,
            |i| host_port(i).is_some(),
            |i| host_port(i).is_some_and(|port| records.iter().any(|h| port.on(h))),
        );
        Ok(ArrayReadiness {
            info,
            initiators,
            prerequisites: Vec::new(),
        })
    }
}

impl PureArray {
    pub(super) async fn lookup_device(
        &self,
        device: &DeviceName,
    ) -> Result<Option<bool>, StorageError> {
        let Some(serial) = serial_from_device_name(device.as_str()) else {
            return Ok(Some(false));
        };
        let filter = format!("serial={}", filter_literal(&serial, "serial")?);
        Ok(Some(self.volume_by("filter", &filter).await?.is_some()))
    }
}
