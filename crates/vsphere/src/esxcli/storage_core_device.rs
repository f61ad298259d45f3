//! The `storage core device` namespace (and its `detached` and `vaai status` children): list a
//! device, set its state, forget a detached device, read its VAAI primitives' status.

use crate::error::Error;

use super::command::Command;
use super::command_line::words;
use super::wire::EsxcliResponse;

const MIB: u64 = 1024 * 1024;

/// One row of an esxcli answer: field name → values.
type Record = std::collections::BTreeMap<String, Vec<String>>;

/// `command`, filtered to `device` (`-d <device>`) when one is given.
fn for_device(command: &[&str], device: Option<&str>) -> Vec<String> {
    let mut argv = words(command);
    if let Some(device) = device {
        argv.extend(["-d".to_owned(), device.to_owned()]);
    }
    argv
}

/// A field of a row as one string (esxcli may split a value in several strings).
fn field(record: &Record, key: &str) -> Option<String> {
    record.get(key).map(|values| values.concat())
}

/// A SCSI device as `esxcli storage core device list` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Canonical name (`Device`): `naa.…`, or `eui.…`/`t10.…` for devices without an NAA id.
    pub naa: String,
    /// `Size`, reported in whole MiB, in bytes.
    pub size_bytes: u64,
    /// `Status`: `on`, `off`, `dead timeout`, …
    pub status: String,
}

impl DeviceInfo {
    pub fn is_on(&self) -> bool {
        self.status == "on"
    }

    /// Set off, or lost by the host: left over by an earlier detach or unmap.
    pub fn is_stale(&self) -> bool {
        matches!(self.status.as_str(), "off" | "dead timeout")
    }
}

/// `esxcli storage core device list [-d <device>]`. A device the host does not know is an
/// [`Error::Esxcli`] from the host, not an empty list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageCoreDeviceList {
    pub device: Option<String>,
}

impl Command for StorageCoreDeviceList {
    type Output = Vec<DeviceInfo>;

    fn argv(&self) -> Vec<String> {
        for_device(
            &["storage", "core", "device", "list"],
            self.device.as_deref(),
        )
    }

    fn output(&self, response: EsxcliResponse) -> Result<Vec<DeviceInfo>, Error> {
        Ok(response
            .records
            .iter()
            .map(|record| DeviceInfo {
                naa: field(record, "Device")
                    .or_else(|| self.device.clone())
                    .unwrap_or_default(),
                size_bytes: field(record, "Size")
                    .and_then(|mib| mib.trim().parse::<u64>().ok())
                    .unwrap_or(0)
                    .saturating_mul(MIB),
                status: field(record, "Status").unwrap_or_default(),
            })
            .collect())
    }
}

/// The states `storage core device set --state` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    On,
    Off,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::On => "on",
            DeviceState::Off => "off",
        }
    }
}

/// `esxcli storage core device set --state <state> -d <device>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageCoreDeviceSet {
    pub device: String,
    pub state: DeviceState,
}

impl Command for StorageCoreDeviceSet {
    type Output = ();

    fn argv(&self) -> Vec<String> {
        let mut argv = words(&["storage", "core", "device", "set", "--state"]);
        argv.extend([
            self.state.as_str().to_owned(),
            "-d".to_owned(),
            self.device.clone(),
        ]);
        argv
    }

    fn output(&self, _: EsxcliResponse) -> Result<(), Error> {
        Ok(())
    }
}

/// `esxcli storage core device detached remove -d <device>`: forgets a detached device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageCoreDeviceDetachedRemove {
    pub device: String,
}

impl Command for StorageCoreDeviceDetachedRemove {
    type Output = ();

    fn argv(&self) -> Vec<String> {
        let mut argv = words(&["storage", "core", "device", "detached", "remove", "-d"]);
        argv.push(self.device.clone());
        argv
    }

    fn output(&self, _: EsxcliResponse) -> Result<(), Error> {
        Ok(())
    }
}

/// What ESXi reports for one VAAI primitive of a device (`Clone Status: supported`): `supported`
/// once the device answered the primitive, `unsupported` when it refused it or the claim rule
/// disables it, `unknown` before ESXi has tried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaaiStatus {
    Supported,
    Unsupported,
    Unknown,
    /// Any other word a newer ESXi may report, as given.
    Other(String),
}

impl VaaiStatus {
    fn parse(text: &str) -> VaaiStatus {
        match text.trim().to_ascii_lowercase().as_str() {
            "supported" => VaaiStatus::Supported,
            "unsupported" => VaaiStatus::Unsupported,
            "unknown" | "" => VaaiStatus::Unknown,
            _ => VaaiStatus::Other(text.trim().to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            VaaiStatus::Supported => "supported",
            VaaiStatus::Unsupported => "unsupported",
            VaaiStatus::Unknown => "unknown",
            VaaiStatus::Other(text) => text,
        }
    }
}

/// The VAAI status of one device, as `esxcli storage core device vaai status get` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceVaaiStatus {
    /// `Device`: the canonical name.
    pub device: String,
    /// `VAAIPluginName`: the VAAI plugin claiming the device (empty for the T10 standard path).
    pub plugin: String,
    /// `ATSStatus`: atomic test-and-set (hardware-assisted locking).
    pub ats: VaaiStatus,
    /// `CloneStatus`: XCOPY (full copy), what an offloaded clone needs.
    pub clone: VaaiStatus,
    /// `ZeroStatus`: WRITE SAME (block zeroing).
    pub zero: VaaiStatus,
    /// `DeleteStatus`: UNMAP (space reclamation).
    pub delete: VaaiStatus,
}

/// `esxcli storage core device vaai status get [-d <device>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageCoreDeviceVaaiStatusGet {
    pub device: Option<String>,
}

impl Command for StorageCoreDeviceVaaiStatusGet {
    type Output = Vec<DeviceVaaiStatus>;

    fn argv(&self) -> Vec<String> {
        for_device(
            &["storage", "core", "device", "vaai", "status", "get"],
            self.device.as_deref(),
        )
    }

    fn output(&self, response: EsxcliResponse) -> Result<Vec<DeviceVaaiStatus>, Error> {
        let text = |record: &Record, key: &str| field(record, key).unwrap_or_default();
        Ok(response
            .records
            .iter()
            .map(|record| DeviceVaaiStatus {
                device: field(record, "Device")
                    .filter(|name| !name.is_empty())
                    .or_else(|| self.device.clone())
                    .unwrap_or_default(),
                plugin: text(record, "VAAIPluginName"),
                ats: VaaiStatus::parse(&text(record, "ATSStatus")),
                clone: VaaiStatus::parse(&text(record, "CloneStatus")),
                zero: VaaiStatus::parse(&text(record, "ZeroStatus")),
                delete: VaaiStatus::parse(&text(record, "DeleteStatus")),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn record(fields: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
            .collect()
    }

    #[test]
    fn command_lines_are_the_ones_upstream_runs() {
        let naa = "naa.600a0980";
        assert_eq!(
            StorageCoreDeviceList {
                device: Some(naa.into())
            }
            .argv(),
            ["storage", "core", "device", "list", "-d", naa]
        );
        assert_eq!(
            StorageCoreDeviceList { device: None }.argv(),
            ["storage", "core", "device", "list"]
        );
        assert_eq!(
            StorageCoreDeviceSet {
                device: naa.into(),
                state: DeviceState::Off
            }
            .argv(),
            [
                "storage", "core", "device", "set", "--state", "off", "-d", naa
            ]
        );
        assert_eq!(
            StorageCoreDeviceDetachedRemove { device: naa.into() }.argv(),
            ["storage", "core", "device", "detached", "remove", "-d", naa]
        );
        assert_eq!(
            StorageCoreDeviceVaaiStatusGet {
                device: Some(naa.into())
            }
            .argv(),
            [
                "storage", "core", "device", "vaai", "status", "get", "-d", naa
            ]
        );
    }

    #[test]
    fn a_vaai_status_reads_each_primitive() {
        let get = StorageCoreDeviceVaaiStatusGet {
            device: Some("naa.1".into()),
        };
        let statuses = get
            .output(EsxcliResponse {
                records: vec![
                    record(&[
                        ("Device", "naa.1"),
                        ("VAAIPluginName", "VMW_VAAIP_NETAPP"),
                        ("ATSStatus", "supported"),
                        ("CloneStatus", "unsupported"),
                        ("ZeroStatus", "Supported"),
                        ("DeleteStatus", "unknown"),
                    ]),
                    record(&[("CloneStatus", "partial")]),
                ],
                value: None,
            })
            .unwrap();
        assert_eq!(statuses[0].device, "naa.1");
        assert_eq!(statuses[0].plugin, "VMW_VAAIP_NETAPP");
        assert_eq!(statuses[0].ats, VaaiStatus::Supported);
        assert_eq!(statuses[0].clone, VaaiStatus::Unsupported);
        assert_eq!(statuses[0].zero, VaaiStatus::Supported);
        assert_eq!(statuses[0].delete, VaaiStatus::Unknown);
        assert_eq!(statuses[1].device, "naa.1", "the device asked for");
        assert_eq!(statuses[1].clone, VaaiStatus::Other("partial".into()));
        assert_eq!(statuses[1].ats, VaaiStatus::Unknown, "absent field");
    }

    #[test]
    fn a_listed_device_reads_name_size_in_mib_and_status() {
        let list = StorageCoreDeviceList {
            device: Some("naa.1".into()),
        };
        let devices = list
            .output(EsxcliResponse {
                records: vec![
                    record(&[("Device", "naa.1"), ("Size", " 1024 "), ("Status", "on")]),
                    record(&[("Size", "x"), ("Status", "dead timeout")]),
                ],
                value: None,
            })
            .unwrap();
        assert_eq!(
            devices,
            [
                DeviceInfo {
                    naa: "naa.1".into(),
                    size_bytes: 1024 * MIB,
                    status: "on".into()
                },
                DeviceInfo {
                    naa: "naa.1".into(),
                    size_bytes: 0,
                    status: "dead timeout".into()
                }
            ]
        );
        assert!(devices[0].is_on() && !devices[0].is_stale());
        assert!(devices[1].is_stale());
        assert!(
            list.output(EsxcliResponse::default()).unwrap().is_empty(),
            "no record, no device"
        );
    }
}
