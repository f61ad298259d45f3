//! ONTAP's read-only readiness: the igroups of the SVM that hold each ESXi host's initiators
//! (the source datastore's LUN reaches the host through one of them), their `os_type`, and
//! whether a device is a LUN of this cluster (its name carries the LUN serial).

use super::{OntapArray, Records, initiator_name, same_initiator};
use crate::api::{ArrayReadiness, HostInitiators, StorageApi, VendorPrerequisite};
use crate::error::StorageError;
use crate::model::EsxiHostRef;
use crate::naa::DeviceName;

/// The igroup `os_type` ESXi hosts need (ALUA and the SCSI behaviour VMFS expects).
const VMWARE_OS_TYPE: &str = "vmware";

/// The NAA prefix of every ONTAP LUN: the serial follows as the hex of its ASCII bytes.
const NAA_PREFIX: &str = "600a0980";

#[derive(Debug, serde::Deserialize)]
struct IgroupFacts {
    name: String,
    #[serde(default)]
    os_type: Option<String>,
    #[serde(default)]
    initiators: Vec<super::NameOnly>,
}

impl OntapArray {
    pub(super) async fn check_readiness(
        &self,
        hosts: &[EsxiHostRef],
    ) -> Result<ArrayReadiness, StorageError> {
        let info = self.array_info().await?;
        let igroups: Records<IgroupFacts> = self
            .http
            .get(&["protocols", "san", "igroups"])
            .query("svm.uuid", &self.svm.uuid)
            .query("fields", "name,os_type,initiators.name")
            .send_json()
            .await?;
        let holds = |igroup: &IgroupFacts, name: &str| {
            igroup
                .initiators
                .iter()
                .any(|i| same_initiator(&i.name, name))
        };
        let mut initiators = Vec::new();
        let mut prerequisites = Vec::new();
        for host in hosts {
            let names: Vec<String> = host.initiators.iter().filter_map(initiator_name).collect();
            initiators.push(HostInitiators::sort(
                host,
                |i| initiator_name(i).is_some(),
                |i| {
                    initiator_name(i)
                        .is_some_and(|name| igroups.records.iter().any(|g| holds(g, &name)))
                },
            ));
            for igroup in igroups
                .records
                .iter()
                .filter(|g| names.iter().any(|n| holds(g, n)))
            {
                let os_type = igroup.os_type.as_deref().unwrap_or("unknown");
                prerequisites.push(VendorPrerequisite {
                    name: format!("igroup {} os_type", igroup.name),
                    satisfied: os_type == VMWARE_OS_TYPE,
                    detail: format!(
                        "igroup {} of SVM {} holds initiators of {} and has os_type {os_type}",
                        igroup.name, self.svm.name, host.host_id
                    ),
                    remedy: format!(
                        "Set the igroup's OS type to VMware: `lun igroup modify -vserver {} -igroup {} \
                         -ostype vmware` (System Manager › Hosts › SAN Initiator Groups › {} › Edit › Host \
                         operating system: VMware).",
                        self.svm.name, igroup.name, igroup.name
                    ),
                });
            }
        }
        prerequisites.dedup_by(|a, b| a.name == b.name);
        Ok(ArrayReadiness {
            info,
            initiators,
            prerequisites,
        })
    }
}

/// The LUN serial an ONTAP device name carries (`naa.600a0980` + hex of the ASCII serial).
fn serial_of(device: &DeviceName) -> Option<String> {
    let hex = device.identifier().strip_prefix(NAA_PREFIX)?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect();
    String::from_utf8(bytes?).ok().filter(|s| s.is_ascii())
}

impl OntapArray {
    pub(super) async fn lookup_device(
        &self,
        device: &DeviceName,
    ) -> Result<Option<bool>, StorageError> {
        let Some(serial) = serial_of(device) else {
            return Ok(Some(false));
        };
        let found: Records<serde_json::Value> = self
            .http
            .get(&["storage", "luns"])
            .query("serial_number", &serial)
            .query("fields", "uuid")
            .send_json()
            .await?;
        Ok(Some(!found.records.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lun_serial_comes_back_from_the_device_name() {
        let device = crate::naa::ontap("80GBq$Rk3m0e").unwrap();
        assert_eq!(serial_of(&device).as_deref(), Some("80GBq$Rk3m0e"));
        let pure = DeviceName::parse("naa.624a93700123456789abcdef01234567").unwrap();
        assert_eq!(serial_of(&pure), None);
    }
}
