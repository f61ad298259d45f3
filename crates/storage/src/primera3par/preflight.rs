//! Primera/3PAR's read-only readiness: the hosts holding each ESXi host's paths (the source
//! datastore's volume reaches the ESXi host through one of them) and their persona, and whether
//! a device is a volume of this array (looked up by its `wwn`).

use serde::Deserialize;

use super::{HostPath, HostRecord, Members, PERSONA_VMWARE, Primera3ParArray, path_of, query};
use crate::api::{ArrayReadiness, HostInitiators, StorageApi, VendorPrerequisite};
use crate::error::StorageError;
use crate::model::EsxiHostRef;
use crate::naa::DeviceName;

#[derive(Debug, Deserialize)]
struct HostFacts {
    #[serde(flatten)]
    host: HostRecord,
    #[serde(default)]
    persona: Option<u64>,
}

impl Primera3ParArray {
    pub(super) async fn check_readiness(
        &self,
        hosts: &[EsxiHostRef],
    ) -> Result<ArrayReadiness, StorageError> {
        let info = self.array_info().await?;
        let paths: Vec<HostPath> = hosts
            .iter()
            .flat_map(|h| h.initiators.iter().filter_map(path_of))
            .collect();
        let records: Vec<HostFacts> = if paths.is_empty() {
            Vec::new()
        } else {
            let expression = paths
                .iter()
                .map(HostPath::query_term)
                .collect::<Vec<_>>()
                .join(" OR ");
            let found: Members<HostFacts> = self
                .http
                .get(&["hosts"])
                .query("query", &query(&expression))
                .send_json()
                .await?;
            found.members
        };
        let mut initiators = Vec::new();
        let mut prerequisites = Vec::new();
        for host in hosts {
            let own: Vec<HostPath> = host.initiators.iter().filter_map(path_of).collect();
            initiators.push(HostInitiators::sort(
                host,
                |i| path_of(i).is_some(),
                |i| path_of(i).is_some_and(|p| records.iter().any(|r| p.held_by(&r.host))),
            ));
            for record in records
                .iter()
                .filter(|r| own.iter().any(|p| p.held_by(&r.host)))
            {
                let name = &record.host.name;
                prerequisites.push(VendorPrerequisite {
                    name: format!("host {name} persona"),
                    satisfied: record.persona == Some(PERSONA_VMWARE),
                    detail: format!(
                        "host {name} holds paths of {} and has persona {} (the WSAPI numbers VMware {PERSONA_VMWARE})",
                        host.host_id,
                        record
                            .persona
                            .map_or_else(|| "unknown".to_owned(), |p| p.to_string())
                    ),
                    remedy: format!(
                        "Set the host's persona to VMware, which ESXi needs for ALUA and the VAAI \
                         primitives: `sethost -persona 11 {name}` (the CLI numbers VMware 11), or in the \
                         SSMC: Hosts › {name} › Edit › Host OS: VMware (ESXi)."
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

impl Primera3ParArray {
    pub(super) async fn lookup_device(
        &self,
        device: &DeviceName,
    ) -> Result<Option<bool>, StorageError> {
        let wwn = device.identifier().to_ascii_uppercase();
        let found: Members<serde_json::Value> = self
            .http
            .get(&["volumes"])
            .query("query", &query(&format!("wwn EQ {wwn}")))
            .send_json()
            .await?;
        Ok(Some(!found.members.is_empty()))
    }
}
