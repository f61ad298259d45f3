//! HostStorageSystem: the host's storage view (`storageDeviceInfo`, also served as
//! `HostSystem.config.storageDevice`) and the rescan methods that make newly mapped LUNs appear.

use super::inventory::Inventory;
use super::soap::{Call, Fault};
use super::value::{Moref, Value, s};
use crate::host::{Adapter, Device, DeviceState, RescanKind, SimHost};
use crate::scenario::AdapterKind;

fn adapter_key(adapter: &Adapter) -> String {
    match adapter.kind {
        AdapterKind::Iscsi => format!("key-vim.host.InternetScsiHba-{}", adapter.device),
        AdapterKind::Fc => format!("key-vim.host.FibreChannelHba-{}", adapter.device),
        AdapterKind::Local | AdapterKind::Sdc => {
            format!("key-vim.host.BlockHba-{}", adapter.device)
        }
    }
}

fn adapter_value(adapter: &Adapter) -> Value {
    let mut fields = vec![
        ("key", s(adapter_key(adapter))),
        ("device", s(adapter.device.clone())),
        ("bus", Value::Int(0)),
        ("status", s("online")),
        ("driver", s(adapter.driver.clone())),
        ("storageProtocol", s("scsi")),
    ];
    match adapter.kind {
        AdapterKind::Iscsi => {
            fields.insert(3, ("model", s("iSCSI Software Adapter")));
            fields.push(("isSoftwareBased", Value::Bool(true)));
            fields.push((
                "iScsiName",
                s(adapter.iscsi_name.clone().unwrap_or_default()),
            ));
            Value::obj("HostInternetScsiHba", fields)
        }
        AdapterKind::Fc => {
            fields.insert(3, ("model", s("QLogic 16Gb FC HBA")));
            // WWNs are `xsd:long` on the wire; the lab's all start with 0x20 so they stay positive.
            fields.push((
                "nodeWorldWideName",
                Value::Long(adapter.wwnn.unwrap_or_default() as i64),
            ));
            fields.push((
                "portWorldWideName",
                Value::Long(adapter.wwpn.unwrap_or_default() as i64),
            ));
            fields.push(("portType", s("fabric")));
            fields.push(("speed", Value::Long(16)));
            Value::obj("HostFibreChannelHba", fields)
        }
        AdapterKind::Local => {
            fields.insert(3, ("model", s("SATA AHCI Controller")));
            Value::obj("HostBlockHba", fields)
        }
        // The SDC is a block adapter driven by `scini`; its GUID is a module option, not a field.
        AdapterKind::Sdc => {
            fields.insert(3, ("model", s("PowerFlex SDC")));
            Value::obj("HostBlockHba", fields)
        }
    }
}

/// SCSI inquiry vendor and model, as the array family reports them.
pub(crate) fn scsi_inquiry(naa: &str) -> (&'static str, &'static str) {
    if naa.starts_with("naa.600a0980") {
        ("NETAPP", "LUN C-Mode")
    } else if naa.starts_with("naa.624a9370") {
        ("PURE", "FlashArray")
    } else {
        ("LAB", "Virtual LUN")
    }
}

/// The `uuid` ESXi derives for a SCSI device (also `lunUuid` of RDM backings).
pub(crate) fn scsi_uuid(device: &Device) -> String {
    let naa_hex = device
        .lun
        .naa
        .trim_start_matches("naa.")
        .trim_start_matches("eui.");
    format!(
        "0200{:02x}0000{naa_hex}4c554e20432d",
        device.lun.lun_id & 0xff
    )
}

fn scsi_lun_key(device: &Device) -> String {
    format!("key-vim.host.ScsiDisk-{}", scsi_uuid(device))
}

fn scsi_disk(device: &Device) -> Value {
    let (vendor, model) = scsi_inquiry(&device.lun.naa);
    let state = match device.state {
        DeviceState::On => "ok",
        DeviceState::Off => "off",
        DeviceState::DeadTimeout => "lostCommunication",
    };
    Value::obj(
        "HostScsiDisk",
        vec![
            (
                "deviceName",
                s(format!("/vmfs/devices/disks/{}", device.lun.naa)),
            ),
            ("deviceType", s("disk")),
            ("key", s(scsi_lun_key(device))),
            ("uuid", s(scsi_uuid(device))),
            ("canonicalName", s(device.lun.naa.clone())),
            (
                "displayName",
                s(format!("{vendor} iSCSI Disk ({})", device.lun.naa)),
            ),
            ("lunType", s("disk")),
            ("vendor", s(vendor)),
            ("model", s(model)),
            ("revision", s("9800")),
            ("scsiLevel", Value::Int(6)),
            ("serialNumber", s(device.lun.volume.serial.clone())),
            ("operationalState", Value::array("string", vec![s(state)])),
            (
                "capacity",
                Value::obj(
                    "HostDiskDimensionsLba",
                    vec![
                        ("blockSize", Value::Int(512)),
                        (
                            "block",
                            Value::Long((device.lun.volume.size_bytes / 512) as i64),
                        ),
                    ],
                ),
            ),
            (
                "devicePath",
                s(format!("/vmfs/devices/disks/{}", device.lun.naa)),
            ),
            ("ssd", Value::Bool(true)),
            ("localDisk", Value::Bool(false)),
            ("vStorageSupport", s("vStorageSupported")),
        ],
    )
}

fn multipath_lun(host: &SimHost, device: &Device) -> Value {
    let lu_key = format!(
        "key-vim.host.MultipathInfo.LogicalUnit-{}",
        scsi_uuid(device)
    );
    let state = if device.state == DeviceState::On {
        "active"
    } else {
        "dead"
    };
    let paths = host
        .adapters_to(&device.lun)
        .into_iter()
        .map(|adapter| {
            let name = format!("{}:C0:T0:L{}", adapter.device, device.lun.lun_id);
            Value::obj(
                "HostMultipathInfoPath",
                vec![
                    ("key", s(format!("key-vim.host.MultipathInfo.Path-{name}"))),
                    ("name", s(name)),
                    ("pathState", s(state)),
                    ("state", s(state)),
                    (
                        "isWorkingPath",
                        Value::Bool(device.state == DeviceState::On),
                    ),
                    ("adapter", s(adapter_key(adapter))),
                    ("lun", s(lu_key.clone())),
                ],
            )
        })
        .collect();
    Value::obj(
        "HostMultipathInfoLogicalUnit",
        vec![
            ("key", s(lu_key.clone())),
            ("id", s(scsi_uuid(device))),
            ("lun", s(scsi_lun_key(device))),
            ("path", Value::array("HostMultipathInfoPath", paths)),
            (
                "policy",
                Value::obj(
                    "HostMultipathInfoLogicalUnitPolicy",
                    vec![("policy", s("VMW_PSP_RR"))],
                ),
            ),
        ],
    )
}

/// `HostStorageDeviceInfo` of a host: adapters, discovered (not detached) devices, multipath.
pub(crate) fn storage_device_info(host: &SimHost) -> Value {
    let devices: Vec<Device> = host
        .devices()
        .into_iter()
        .filter(|d| d.state != DeviceState::Off)
        .collect();
    Value::obj(
        "HostStorageDeviceInfo",
        vec![
            (
                "hostBusAdapter",
                Value::array(
                    "HostHostBusAdapter",
                    host.adapters.iter().map(adapter_value).collect(),
                ),
            ),
            (
                "scsiLun",
                Value::array("ScsiLun", devices.iter().map(scsi_disk).collect()),
            ),
            (
                "multipathInfo",
                Value::obj(
                    "HostMultipathInfo",
                    vec![(
                        "lun",
                        Value::array(
                            "HostMultipathInfoLogicalUnit",
                            devices.iter().map(|d| multipath_lun(host, d)).collect(),
                        ),
                    )],
                ),
            ),
            (
                "softwareInternetScsiEnabled",
                Value::Bool(host.adapters.iter().any(|a| a.kind == AdapterKind::Iscsi)),
            ),
        ],
    )
}

pub(super) fn properties(inv: &Inventory, obj: &Moref) -> Option<Vec<(&'static str, Value)>> {
    let (_, host) = inv.host_by(&obj.value, "storageSystem-")?;
    Some(vec![("storageDeviceInfo", storage_device_info(host))])
}

pub(super) fn invoke(inv: &Inventory, call: &Call) -> Result<Option<Value>, Fault> {
    let (_, host) = inv
        .host_by(&call.this.value, "storageSystem-")
        .ok_or_else(|| Fault::ManagedObjectNotFound {
            obj: call.this.clone(),
        })?;
    match call.method.as_str() {
        "RescanAllHba" | "RescanVmfs" | "RefreshStorageSystem" => {
            host.rescan(RescanKind::All);
            Ok(None)
        }
        "RescanHba" => {
            let device = call.body.child_text("hbaDevice").unwrap_or_default().trim();
            if !host.adapters.iter().any(|a| a.device == device) {
                return Err(Fault::NotFound(format!("host bus adapter {device}")));
            }
            host.rescan(RescanKind::All);
            Ok(None)
        }
        _ => Err(Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        }),
    }
}
