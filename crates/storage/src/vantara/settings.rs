//! Hitachi Vantara's own keys: the REST port, the array's serial, the host groups to use instead
//! of discovering them, and the pace of array-side copies.

use co_api::StorageVendorProduct;
use co_api::contract::flags;

use crate::settings::{Lookup, SettingProblem, VendorConfig, VendorKey, finish, required};

const STORAGE_PORT: VendorKey = VendorKey {
    flag: flags::VANTARA_STORAGE_PORT,
    required: true,
    help: "the REST API port (required for vantara)",
};
const STORAGE_ID: VendorKey = VendorKey {
    flag: flags::VANTARA_STORAGE_ID,
    required: false,
    help: "the array's storage device id (serial)",
};
const HOSTGROUP_ID_LIST: VendorKey = VendorKey {
    flag: flags::VANTARA_HOSTGROUP_ID_LIST,
    required: false,
    help: "host groups to map through instead of discovering them, <portId>,<hostGroupNumber> entries separated by \":\", e.g. \"CL1-A,1:CL2-B,2\"",
};
const COPY_SPEED: VendorKey = VendorKey {
    flag: flags::VANTARA_COPY_SPEED,
    required: false,
    help: "the pace of array-side copies: slower (default), medium or faster",
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `STORAGE_ID`: array serial number.
    pub storage_id: Option<String>,
    /// `STORAGE_PORT`: REST API port.
    pub port: u16,
    /// `HOSTGROUP_ID_LIST`: host groups to use instead of discovery.
    pub host_groups: Vec<HostGroup>,
    /// `COPY_SPEED`.
    pub copy_speed: CopySpeed,
}

/// A host group: a port and a host group number on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGroup {
    /// Port id, e.g. `CL1-A`.
    pub port: String,
    /// Host group number on that port.
    pub number: u32,
}

/// Copy pace of array-side copies (`COPY_SPEED`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CopySpeed {
    #[default]
    Slower,
    Medium,
    Faster,
}

impl VendorConfig for Settings {
    const PRODUCT: StorageVendorProduct = StorageVendorProduct::Vantara;
    const KEYS: &'static [VendorKey] = &[STORAGE_PORT, STORAGE_ID, HOSTGROUP_ID_LIST, COPY_SPEED];

    fn read(lookup: Lookup<'_>) -> Result<Self, Vec<SettingProblem>> {
        let mut problems = Vec::new();
        let port = required(lookup, &STORAGE_PORT, &mut problems).and_then(|text| {
            match text.parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => {
                    problems.push(SettingProblem::new(
                        STORAGE_PORT.flag,
                        format!("{text:?} is not a port; expected a number from 1 to 65535"),
                    ));
                    None
                }
            }
        });
        let host_groups = match lookup(&HOSTGROUP_ID_LIST.flag) {
            None => Vec::new(),
            Some(text) => parse_host_groups(&text).unwrap_or_else(|| {
                problems.push(SettingProblem::new(
                    HOSTGROUP_ID_LIST.flag,
                    format!(
                        "{text:?} is not a host group list; expected {}",
                        HOSTGROUP_ID_LIST.help
                    ),
                ));
                Vec::new()
            }),
        };
        let copy_speed = match lookup(&COPY_SPEED.flag).as_deref() {
            None | Some("slower") => CopySpeed::Slower,
            Some("medium") => CopySpeed::Medium,
            Some("faster") => CopySpeed::Faster,
            Some(other) => {
                problems.push(SettingProblem::new(
                    COPY_SPEED.flag,
                    format!("{other:?} is not a copy speed; expected slower, medium or faster"),
                ));
                CopySpeed::Slower
            }
        };
        let settings = port.map(|port| Self {
            storage_id: lookup(&STORAGE_ID.flag),
            port,
            host_groups,
            copy_speed,
        });
        finish(settings, problems)
    }
}

/// `CL1-A,1:CL2-B,2` → host groups; `None` if any entry is malformed.
fn parse_host_groups(text: &str) -> Option<Vec<HostGroup>> {
    text.split(':')
        .map(|entry| {
            let (port, number) = entry.trim().split_once(',')?;
            let port = port.trim();
            if port.is_empty() {
                return None;
            }
            Some(HostGroup {
                port: port.to_owned(),
                number: number.trim().parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_group_lists_parse_or_are_refused() {
        assert_eq!(
            parse_host_groups("CL1-A,1:CL2-B,2"),
            Some(vec![
                HostGroup {
                    port: "CL1-A".into(),
                    number: 1
                },
                HostGroup {
                    port: "CL2-B".into(),
                    number: 2
                }
            ])
        );
        assert_eq!(parse_host_groups("CL1-A"), None);
        assert_eq!(parse_host_groups("CL1-A,x"), None);
        assert_eq!(parse_host_groups(",1"), None);
    }
}
