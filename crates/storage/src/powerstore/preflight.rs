//! PowerStore's read-only readiness: the hosts holding each ESXi host's initiators (the source
//! datastore's volume reaches the ESXi host through one of them) and their `os_type`, and
//! whether a device is a volume of this cluster (looked up by its `wwn`).

use serde::Deserialize;

use super::{PowerStoreArray, port_of, same_port};
use crate::api::{ArrayReadiness, HostInitiators, StorageApi, VendorPrerequisite};
use crate::error::StorageError;
use crate::model::EsxiHostRef;
use crate::naa::DeviceName;

/// The host `os_type` ESXi needs.
const ESXI_OS_TYPE: &str = "ESXi";

#[derive(Debug, Deserialize)]
struct HostFacts {
    name: String,
    #[serde(default)]
    os_type: Option<String>,
    #[serde(default)]
    host_initiators: Vec<super::PortRecord>,
}

#[derive(Debug, Deserialize)]
struct VolumeId {
    #[serde(default)]
    id: Option<String>,
}

impl PowerStoreArray {
    pub(super) async fn check_readiness(
        &self,
        hosts: &[EsxiHostRef],
    ) -> Result<ArrayReadiness, StorageError> {
        let info = self.array_info().await?;
        let records: Vec<HostFacts> = self
            .list("host", "name,os_type,host_initiators", &[])
            .await?;
        let holds = |h: &HostFacts, port: &str| {
            h.host_initiators
                .iter()
                .any(|q| same_port(&q.port_name, port))
        };
        let mut initiators = Vec::new();
        let mut prerequisites = Vec::new();
        for host in hosts {
            let ports: Vec<String> = host
                .initiators
                .iter()
                .filter_map(port_of)
                .map(|(name, _)| name)
                .collect();
            initiators.push(HostInitiators::sort(
                host,
                |i| port_of(i).is_some(),
                |i| port_of(i).is_some_and(|(name, _)| records.iter().any(|h| holds(h, &name))),
            ));
            for record in records.iter().filter(|h| ports.iter().any(|p| holds(h, p))) {
                let os_type = record.os_type.as_deref().unwrap_or("unknown");
                prerequisites.push(VendorPrerequisite {
                    name: format!("host {} os_type", record.name),
                    satisfied: os_type == ESXI_OS_TYPE,
                    detail: format!(
                        "host {} holds initiators of {} and has os_type {os_type}",
                        record.name, host.host_id
                    ),
                    remedy: format!(
                        "Give host {} the operating system ESXi (PowerStore Manager › Compute › Hosts & \
                         Host Groups › {} › Modify); where the host cannot be modified, remove it and add \
                         it again as ESXi with the same initiators, then restore its volume mappings.",
                        record.name, record.name
                    ),
                });
            }
        }
        Ok(ArrayReadiness {
            info,
            initiators,
            prerequisites,
        })
    }
}

impl PowerStoreArray {
    pub(super) async fn lookup_device(
        &self,
        device: &DeviceName,
    ) -> Result<Option<bool>, StorageError> {
        // `ilike`: the array may spell the hex upper-case; ESXi and the device name use lower case.
        let found: Vec<VolumeId> = self
            .list(
                "volume",
                "id",
                &[("wwn", format!("ilike.{}", device.as_str()))],
            )
            .await?;
        Ok(Some(found.iter().any(|v| v.id.is_some())))
    }
}
