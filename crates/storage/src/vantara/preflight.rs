//! Vantara's read-only readiness: the host groups on the storage's FC and iSCSI ports that
//! register each ESXi host's initiators, and on each such host group (or on the ones
//! `HOSTGROUP_ID_LIST` names) the host mode `VMWARE_EX` and host mode options 54 (VAAI EXTENDED
//! COPY) and 63 (VAAI T10 vStorage) that XCOPY needs.

use http::StatusCode;
use serde::Deserialize;

use super::{
    DataList, HostInitiatorRecord, PortRecord, VantaraArray, host_group_id, iscsi_matches,
    wwn_matches,
};
use crate::api::{ArrayReadiness, HostInitiators, StorageApi, VendorPrerequisite};
use crate::error::StorageError;
use crate::model::{EsxiHostRef, Initiator};

/// The host mode ESXi host groups need.
const VMWARE_HOST_MODE: &str = "VMWARE_EX";
/// Host mode options XCOPY needs: 54 (VAAI EXTENDED COPY) and 63 (VAAI T10 vStorage).
const XCOPY_HOST_MODE_OPTIONS: [u32; 2] = [54, 63];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HostGroupFacts {
    port_id: String,
    host_group_number: u32,
    #[serde(default)]
    host_group_name: Option<String>,
    #[serde(default)]
    host_mode: Option<String>,
    #[serde(default)]
    host_mode_options: Vec<u32>,
}

fn registered(initiator: &Initiator, record: &HostInitiatorRecord) -> bool {
    wwn_matches(initiator, &record.initiator) || iscsi_matches(initiator, &record.initiator)
}

impl VantaraArray {
    pub(super) async fn check_readiness(
        &self,
        hosts: &[EsxiHostRef],
    ) -> Result<ArrayReadiness, StorageError> {
        let info = self.array_info().await?;
        let ports: DataList<PortRecord> = self.http.get(&["objects", "ports"]).send_json().await?;
        let mut records: Vec<HostInitiatorRecord> = Vec::new();
        for port in &ports.data {
            // FC ports list their host groups' WWNs, iSCSI ports their targets' iSCSI names.
            let resource = match port.port_type.as_deref() {
                Some("FIBRE") => "host-wwns",
                Some("ISCSI") => "host-iscsis",
                _ => continue,
            };
            let listed: DataList<HostInitiatorRecord> = self
                .http
                .get(&["objects", resource])
                .query("portId", &port.port_id)
                .send_json()
                .await?;
            records.extend(listed.data);
        }
        let mut initiators = Vec::new();
        let mut groups: Vec<(String, u32, String)> = Vec::new();
        for host in hosts {
            initiators.push(HostInitiators::sort(
                host,
                |i| matches!(i, Initiator::FibreChannel(_) | Initiator::Iscsi(_)),
                |i| records.iter().any(|r| registered(i, r)),
            ));
            for record in records
                .iter()
                .filter(|r| host.initiators.iter().any(|i| registered(i, r)))
            {
                let group = (
                    record.port_id.clone(),
                    record.host_group_number,
                    host.host_id.clone(),
                );
                if !groups.iter().any(|g| g.0 == group.0 && g.1 == group.1) {
                    groups.push(group);
                }
            }
        }
        // With HOSTGROUP_ID_LIST the plugin maps through those host groups whatever registers the
        // initiators, so theirs are the settings that count.
        if !self.settings.host_groups.is_empty() {
            groups = self
                .settings
                .host_groups
                .iter()
                .map(|g| (g.port.clone(), g.number, "every ESXi host".to_owned()))
                .collect();
        }
        let mut prerequisites = Vec::new();
        for (port, number, host_id) in &groups {
            let reply = self
                .http
                .get(&["objects", "host-groups"])
                .query("portId", port)
                .query("hostGroupNumber", &number.to_string())
                .send()
                .await?;
            // The storage answers 404 for a port it does not have.
            let listed: Vec<HostGroupFacts> = if reply.status == StatusCode::NOT_FOUND {
                Vec::new()
            } else {
                reply.success()?.json::<DataList<HostGroupFacts>>()?.data
            };
            let Some(group) = listed
                .into_iter()
                .find(|g| g.port_id == *port && g.host_group_number == *number)
            else {
                let id = host_group_id(port, *number);
                prerequisites.push(VendorPrerequisite {
                    name: format!("host group {id}"),
                    satisfied: false,
                    detail: format!("HOSTGROUP_ID_LIST names host group {id}, which the storage does not have"),
                    remedy: "Correct HOSTGROUP_ID_LIST in the migration Secret: <port>,<host group number> \
                             pairs separated by ':' (e.g. CL1-A,1:CL2-A,1) of host groups that admit the \
                             ESXi hosts, or leave it empty to use the host groups that register their \
                             initiators."
                        .into(),
                });
                continue;
            };
            prerequisites.extend(host_group_prerequisites(&group, host_id));
        }
        Ok(ArrayReadiness {
            info,
            initiators,
            prerequisites,
        })
    }
}

fn host_group_prerequisites(group: &HostGroupFacts, host_id: &str) -> [VendorPrerequisite; 2] {
    let id = host_group_id(&group.port_id, group.host_group_number);
    let label = match group.host_group_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("host group {id} ({name})"),
        None => format!("host group {id}"),
    };
    let mode = group.host_mode.as_deref().unwrap_or("unknown");
    let missing: Vec<String> = XCOPY_HOST_MODE_OPTIONS
        .iter()
        .filter(|o| !group.host_mode_options.contains(o))
        .map(u32::to_string)
        .collect();
    let options = group
        .host_mode_options
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut wanted = group.host_mode_options.clone();
    wanted.extend(XCOPY_HOST_MODE_OPTIONS);
    wanted.sort_unstable();
    wanted.dedup();
    let wanted = wanted
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    [
        VendorPrerequisite {
            name: format!("{label} host mode"),
            satisfied: mode == VMWARE_HOST_MODE,
            detail: format!("{label} admits {host_id} and has host mode {mode}"),
            remedy: format!(
                "Set the host group's host mode to VMware Extension: `raidcom modify host_grp -port \
                 {}-{} -host_mode VMWARE_EX` (Storage Navigator › Host Groups › Edit Host \
                 Groups › Host Mode: 21 [VMware Extension]).",
                group.port_id, group.host_group_number
            ),
        },
        VendorPrerequisite {
            name: format!("{label} host mode options 54 and 63"),
            satisfied: missing.is_empty(),
            detail: format!(
                "{label} has host mode options [{options}]{}",
                if missing.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {} missing, without which the storage refuses XCOPY",
                        missing.join(" and ")
                    )
                }
            ),
            remedy: format!(
                "Enable host mode options 54 (VAAI EXTENDED COPY) and 63 (VAAI T10 vStorage) on the \
                 host group: `raidcom modify host_grp -port {}-{} -host_mode VMWARE_EX \
                 -host_mode_opt {wanted}` (the options already set and the two; Storage Navigator › \
                 Host Groups › Edit Host Groups › Host Mode Options).",
                group.port_id, group.host_group_number
            ),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(mode: &str, options: &[u32]) -> HostGroupFacts {
        HostGroupFacts {
            port_id: "CL1-A".into(),
            host_group_number: 3,
            host_group_name: Some("esx-cluster".into()),
            host_mode: Some(mode.into()),
            host_mode_options: options.to_vec(),
        }
    }

    #[test]
    fn a_missing_option_fails_and_the_command_keeps_the_options_already_set() {
        let [mode, options] = host_group_prerequisites(&group("VMWARE_EX", &[2, 54]), "host-1");
        assert!(mode.satisfied);
        assert!(!options.satisfied);
        assert!(options.detail.contains("63 missing"), "{}", options.detail);
        assert!(
            options.remedy.contains(
                "raidcom modify host_grp -port CL1-A-3 -host_mode VMWARE_EX -host_mode_opt 2 54 63"
            ),
            "{}",
            options.remedy
        );
        assert_eq!(
            options.name,
            "host group CL1-A,3 (esx-cluster) host mode options 54 and 63"
        );
    }

    #[test]
    fn another_host_mode_fails_and_both_options_pass() {
        let [mode, options] = host_group_prerequisites(&group("LINUX/IRIX", &[54, 63]), "host-1");
        assert!(!mode.satisfied);
        assert!(
            mode.detail.contains("host mode LINUX/IRIX"),
            "{}",
            mode.detail
        );
        assert!(options.satisfied);
    }
}
