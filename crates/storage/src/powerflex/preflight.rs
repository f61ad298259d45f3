//! PowerFlex's read-only readiness: the SDC registered for each ESXi host (volumes reach ESXi
//! only through it), whether it is connected to the system's MDMs, and whether a device is a
//! volume of this system (its `eui.` name starts with the system id).

use super::{PowerFlexArray, SdcRecord};
use crate::api::{ArrayReadiness, HostInitiators, StorageApi, VendorPrerequisite};
use crate::error::StorageError;
use crate::model::{EsxiHostRef, Initiator};
use crate::naa::DeviceName;

/// The `mdmConnectionState` of an SDC that can serve I/O.
const CONNECTED: &str = "Connected";

impl PowerFlexArray {
    pub(super) async fn check_readiness(
        &self,
        hosts: &[EsxiHostRef],
    ) -> Result<ArrayReadiness, StorageError> {
        let info = self.array_info().await?;
        let system = format!("System::{}", self.system_id);
        let sdcs: Vec<SdcRecord> = self
            .http
            .get(&["instances", &system, "relationships", "Sdc"])
            .send_json()
            .await?;
        let sdc_of = |initiator: &Initiator| match initiator {
            Initiator::Sdc(guid) => sdcs.iter().find(|s| {
                s.sdc_guid
                    .as_deref()
                    .is_some_and(|g| g.eq_ignore_ascii_case(guid))
            }),
            _ => None,
        };
        let mut initiators = Vec::new();
        let mut prerequisites = Vec::new();
        for host in hosts {
            initiators.push(HostInitiators::sort(
                host,
                |i| matches!(i, Initiator::Sdc(_)),
                |i| sdc_of(i).is_some(),
            ));
            for sdc in host.initiators.iter().filter_map(sdc_of) {
                let name = sdc.name.as_deref().unwrap_or(&sdc.id);
                let state = sdc.mdm_connection_state.as_deref().unwrap_or("unknown");
                prerequisites.push(VendorPrerequisite {
                    name: format!("SDC {name} connected"),
                    satisfied: state == CONNECTED,
                    detail: format!(
                        "the SDC of {} (id {}) has mdmConnectionState {state}",
                        host.host_id, sdc.id
                    ),
                    remedy: format!(
                        "Reconnect SDC {name} to the system's MDMs: on the ESXi host check the MDM \
                         addresses in `esxcli system module parameters list -m scini` (IoctlMdmIPStr), set \
                         them with `esxcli system module parameters set -m scini -p \"IoctlIniGuidStr=<guid> \
                         IoctlMdmIPStr=<MDM IPs>\"` and reboot the host; the MDMs must be reachable from it."
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

impl PowerFlexArray {
    /// A PowerFlex device is `eui.<system id><volume id>`: the system id tells the system.
    pub(super) async fn lookup_device(
        &self,
        device: &DeviceName,
    ) -> Result<Option<bool>, StorageError> {
        Ok(Some(
            device.as_str().starts_with("eui.")
                && device
                    .identifier()
                    .starts_with(&self.system_id.to_ascii_lowercase()),
        ))
    }
}
