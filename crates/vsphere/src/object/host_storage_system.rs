//! `HostStorageSystem`: rescans, and the host's storage device information
//! (`HostStorageDeviceInfo`) read as the adapters (HBAs) through which the host reaches a device,
//! with the initiator id an array needs for its initiator group: iSCSI IQN, FC
//! `fc.<wwnn>:<wwpn>`, SAS node WWN, or the PowerFlex SDC GUID from the `scini` module options.
//!
//! When no active path goes through a SAN adapter the choice falls back to the host's FC, then
//! iSCSI adapters in device order, so the same host always yields the same answer. A source
//! datastore without a SAN device (NFS) has no paths at all: it takes the same fallback, after the
//! PowerFlex SDC when the destination array needs one.

use std::cmp::Ordering;

use crate::client::Client;
use crate::decode::Node;
use crate::error::Error;
use crate::soap::Request;
use crate::types::ManagedObjectReference;

/// A host's `HostStorageSystem`: the rescans.
#[derive(Debug, Clone)]
pub struct HostStorageSystem {
    client: Client,
    moref: ManagedObjectReference,
}

impl HostStorageSystem {
    pub fn new(client: Client, moref: ManagedObjectReference) -> Self {
        Self { client, moref }
    }

    pub fn reference(&self) -> &ManagedObjectReference {
        &self.moref
    }

    /// `RescanAllHba`: scans every adapter for new devices.
    pub async fn rescan_all_hba(&self) -> Result<(), Error> {
        self.client
            .call(&Request::new("RescanAllHba", &self.moref))
            .await
            .map(drop)
    }

    /// `RescanHba` of one adapter (`vmhba65`).
    pub async fn rescan_hba(&self, adapter_device: &str) -> Result<(), Error> {
        let mut req = Request::new("RescanHba", &self.moref);
        req.text("hbaDevice", adapter_device);
        self.client.call(&req).await.map(drop)
    }

    /// `RescanVmfs`: looks for new VMFS volumes.
    pub async fn rescan_vmfs(&self) -> Result<(), Error> {
        self.client
            .call(&Request::new("RescanVmfs", &self.moref))
            .await
            .map(drop)
    }
}

/// The transport of a host bus adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterKind {
    Iscsi,
    FibreChannel,
    Sas,
    /// PowerFlex SDC (`scini` driver) identified by its GUID.
    Scini,
    /// Block, parallel SCSI, or anything else (identified by device name).
    Other,
}

/// One host bus adapter and the initiator id arrays know it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAdapter {
    /// `vmhba64`
    pub device: String,
    /// IQN, `fc.<wwnn>:<wwpn>`, SAS WWN, SDC GUID, or the device name.
    pub id: String,
    pub driver: String,
    pub kind: AdapterKind,
    /// The `HostHostBusAdapter.key`, used by multipath info.
    pub key: String,
}

impl HostAdapter {
    /// True for adapters an array can map a LUN to.
    pub fn is_san(&self) -> bool {
        matches!(self.kind, AdapterKind::Iscsi | AdapterKind::FibreChannel)
            || (self.kind == AdapterKind::Scini && !self.id.is_empty())
    }

    /// The protocol label used in metrics (`iscsi`, `fc`, or `n/a`).
    pub fn protocol(&self) -> &'static str {
        match self.kind {
            AdapterKind::Iscsi => "iscsi",
            AdapterKind::FibreChannel => "fc",
            _ => "n/a",
        }
    }
}

/// The adapters chosen for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAdapters {
    /// Canonical device name (`naa.…`); `None` for a source datastore without a SAN device (NFS).
    pub device: Option<String>,
    pub adapters: Vec<HostAdapter>,
    /// True when no active path went through a SAN adapter (or there was no device to have paths)
    /// and the host-wide fallback was used.
    pub fallback: bool,
}

/// Parses the PowerFlex GUID out of a module option string (`IoctlIniGuidStr=<guid> …`).
pub fn scini_guid_from_options(options: &str) -> Option<String> {
    options.split_whitespace().find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.eq_ignore_ascii_case("IoctlIniGuidStr") && !v.is_empty()).then(|| v.to_owned())
    })
}

/// Reads the adapters of a `HostStorageDeviceInfo`.
pub fn parse_adapters(storage: &Node, scini_guid: Option<&str>) -> Vec<HostAdapter> {
    storage
        .children_named("hostBusAdapter")
        .map(|hba| adapter(hba, scini_guid))
        .collect()
}

fn adapter(hba: &Node, scini_guid: Option<&str>) -> HostAdapter {
    let text = |name: &str| hba.text_of(name).unwrap_or_default().trim().to_owned();
    let device = text("device");
    let driver = text("driver");
    let key = text("key");
    let (kind, id) = match hba.xsi_type.as_deref().unwrap_or_default() {
        "HostInternetScsiHba" => (AdapterKind::Iscsi, text("iScsiName")),
        "HostFibreChannelHba" | "HostFibreChannelOverEthernetHba" => {
            match (wwn(hba, "nodeWorldWideName"), wwn(hba, "portWorldWideName")) {
                (Some(node), Some(port)) => (
                    AdapterKind::FibreChannel,
                    format!("fc.{node:016x}:{port:016x}"),
                ),
                _ => (AdapterKind::Other, device.clone()),
            }
        }
        "HostSerialAttachedHba" => (AdapterKind::Sas, text("nodeWorldWideName")),
        _ if driver == "scini" => match scini_guid {
            Some(guid) => (AdapterKind::Scini, guid.to_owned()),
            None => (AdapterKind::Other, device.clone()),
        },
        _ => (AdapterKind::Other, device.clone()),
    };
    let id = if id.is_empty() { device.clone() } else { id };
    HostAdapter {
        device,
        id,
        driver,
        kind,
        key,
    }
}

/// A WWN as the API sends it: an `xsd:long`, i.e. possibly negative; the bits are what count.
fn wwn(hba: &Node, name: &str) -> Option<u64> {
    let text = hba.text_of(name)?.trim();
    text.parse::<i64>()
        .map(|v| v as u64)
        .or_else(|_| text.parse::<u64>())
        .ok()
}

/// Chooses the adapters for `device` from a `HostStorageDeviceInfo`.
pub fn select_adapters(
    storage: &Node,
    device: &str,
    scini_guid: Option<&str>,
    requires_scini: bool,
) -> Result<DeviceAdapters, String> {
    let adapters = parse_adapters(storage, scini_guid);
    let lun_key = storage
        .children_named("scsiLun")
        .find(|l| l.text_of("canonicalName") == Some(device))
        .and_then(|l| l.text_of("key"))
        .ok_or_else(|| format!("scsi lun with canonical name {device} not found"))?;
    let multipath = storage
        .child("multipathInfo")
        .and_then(|m| {
            m.children_named("lun")
                .find(|l| l.text_of("lun") == Some(lun_key))
        })
        .ok_or_else(|| format!("multipath logical unit for {device} not found"))?;

    let mut active: Vec<HostAdapter> = Vec::new();
    for path in multipath.children_named("path") {
        let state = path
            .text_of("state")
            .or_else(|| path.text_of("pathState"))
            .unwrap_or_default();
        if !state.eq_ignore_ascii_case("active") {
            continue;
        }
        let key = path.text_of("adapter").unwrap_or_default();
        if let Some(a) = adapters.iter().find(|a| a.key == key)
            && !active.iter().any(|x| x.key == a.key)
        {
            active.push(a.clone());
        }
    }
    active.sort_by(|a, b| device_order(&a.device, &b.device));

    let usable = |a: &HostAdapter| {
        matches!(a.kind, AdapterKind::Iscsi | AdapterKind::FibreChannel)
            || (requires_scini && a.kind == AdapterKind::Scini)
    };
    if active.iter().any(usable) {
        return Ok(DeviceAdapters {
            device: Some(device.to_owned()),
            adapters: active,
            fallback: false,
        });
    }
    match fallback_adapter(&adapters) {
        Some(a) => Ok(DeviceAdapters {
            device: Some(device.to_owned()),
            adapters: vec![a.clone()],
            fallback: true,
        }),
        None if !active.is_empty() => Ok(DeviceAdapters {
            device: Some(device.to_owned()),
            adapters: active,
            fallback: false,
        }),
        None => Err(format!("no active adapters found for device {device}")),
    }
}

/// Chooses the adapters for a source without a SAN device from the host's `adapters`: the first
/// PowerFlex SDC (with its GUID) in device order when `requires_scini`, else the
/// [`fallback_adapter`]. `None` when the host has none of them.
pub fn select_host_adapters(
    adapters: &[HostAdapter],
    requires_scini: bool,
) -> Option<DeviceAdapters> {
    let sdc = || {
        adapters
            .iter()
            .filter(|a| a.kind == AdapterKind::Scini && a.is_san())
            .min_by(|a, b| device_order(&a.device, &b.device))
    };
    let chosen = requires_scini
        .then(sdc)
        .flatten()
        .or_else(|| fallback_adapter(adapters))?;
    Some(DeviceAdapters {
        device: None,
        adapters: vec![chosen.clone()],
        fallback: true,
    })
}

/// The host-wide fallback: the first FC adapter in device order, else the first iSCSI adapter.
fn fallback_adapter(adapters: &[HostAdapter]) -> Option<&HostAdapter> {
    [AdapterKind::FibreChannel, AdapterKind::Iscsi]
        .iter()
        .find_map(|kind| {
            adapters
                .iter()
                .filter(|a| a.kind == *kind)
                .min_by(|a, b| device_order(&a.device, &b.device))
        })
}

/// `vmhba2` < `vmhba10` (numeric suffix order), then plain string order.
fn device_order(a: &str, b: &str) -> Ordering {
    let split = |s: &str| {
        let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (prefix, num) = s.split_at(s.len() - digits);
        (prefix.to_owned(), num.parse::<u64>().unwrap_or(0))
    };
    split(a).cmp(&split(b)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::parse;

    const STORAGE: &str = r#"<val xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="HostStorageDeviceInfo">
      <hostBusAdapter xsi:type="HostBlockHba"><key>key-vim.host.BlockHba-vmhba1</key><device>vmhba1</device><driver>vmw_ahci</driver></hostBusAdapter>
      <hostBusAdapter xsi:type="HostFibreChannelHba"><key>key-fc-vmhba10</key><device>vmhba10</device><driver>lpfc</driver><portWorldWideName>-8070450532247928832</portWorldWideName><nodeWorldWideName>1152922127287604726</nodeWorldWideName></hostBusAdapter>
      <hostBusAdapter xsi:type="HostFibreChannelHba"><key>key-fc-vmhba2</key><device>vmhba2</device><driver>lpfc</driver><portWorldWideName>1152922127287604554</portWorldWideName><nodeWorldWideName>1152922127287604554</nodeWorldWideName></hostBusAdapter>
      <hostBusAdapter xsi:type="HostInternetScsiHba"><key>key-iscsi</key><device>vmhba65</device><driver>iscsi_vmk</driver><iScsiName>iqn.1998-01.com.vmware:esx-1</iScsiName></hostBusAdapter>
      <hostBusAdapter xsi:type="HostBlockHba"><key>key-scini</key><device>vmhba70</device><driver>scini</driver></hostBusAdapter>
      <scsiLun xsi:type="HostScsiDisk"><key>lun-local</key><canonicalName>mpx.vmhba1:C0:T0:L0</canonicalName></scsiLun>
      <scsiLun xsi:type="HostScsiDisk"><key>lun-san</key><canonicalName>naa.600a0980</canonicalName></scsiLun>
      <scsiLun xsi:type="HostScsiDisk"><key>lun-flex</key><canonicalName>eui.flex</canonicalName></scsiLun>
      <multipathInfo>
        <lun><key>mp-local</key><lun>lun-local</lun><path><adapter>key-vim.host.BlockHba-vmhba1</adapter><state>active</state></path></lun>
        <lun><key>mp-san</key><lun>lun-san</lun>
          <path><adapter>key-iscsi</adapter><state>active</state></path>
          <path><adapter>key-fc-vmhba2</adapter><state>standby</state></path></lun>
        <lun><key>mp-flex</key><lun>lun-flex</lun><path><adapter>key-scini</adapter><state>active</state></path></lun>
      </multipathInfo></val>"#;

    #[test]
    fn initiator_ids_follow_upstream_formats() {
        let storage = parse(STORAGE.as_bytes()).unwrap();
        let adapters = parse_adapters(&storage, Some("a1b2-guid"));
        let ids: Vec<&str> = adapters.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "vmhba1",
                "fc.10000090faaa55f6:9000000000000000",
                "fc.10000090faaa554a:10000090faaa554a",
                "iqn.1998-01.com.vmware:esx-1",
                "a1b2-guid",
            ]
        );
    }

    #[test]
    fn active_san_paths_win() {
        let storage = parse(STORAGE.as_bytes()).unwrap();
        let chosen = select_adapters(&storage, "naa.600a0980", None, false).unwrap();
        assert!(!chosen.fallback);
        assert_eq!(chosen.adapters.len(), 1, "standby paths are ignored");
        assert_eq!(chosen.adapters[0].protocol(), "iscsi");
    }

    #[test]
    fn fallback_is_deterministic_fc_first_in_device_order() {
        let storage = parse(STORAGE.as_bytes()).unwrap();
        let chosen = select_adapters(&storage, "mpx.vmhba1:C0:T0:L0", None, false).unwrap();
        assert!(chosen.fallback);
        assert_eq!(
            chosen.adapters[0].device, "vmhba2",
            "vmhba2 sorts before vmhba10"
        );
    }

    #[test]
    fn scini_counts_only_when_the_destination_needs_it() {
        let storage = parse(STORAGE.as_bytes()).unwrap();
        let flex = select_adapters(&storage, "eui.flex", Some("guid-1"), true).unwrap();
        assert_eq!(
            (flex.adapters[0].id.as_str(), flex.fallback),
            ("guid-1", false)
        );
        let other = select_adapters(&storage, "eui.flex", Some("guid-1"), false).unwrap();
        assert!(other.fallback);
        assert!(
            select_adapters(&storage, "naa.missing", None, false)
                .unwrap_err()
                .contains("not found")
        );
    }

    #[test]
    fn a_source_without_device_takes_the_fallback_fc_first_in_device_order() {
        let storage = parse(STORAGE.as_bytes()).unwrap();
        let adapters = parse_adapters(&storage, Some("guid-1"));
        let chosen = select_host_adapters(&adapters, false).unwrap();
        assert_eq!(chosen.device, None);
        assert!(chosen.fallback);
        let devices: Vec<&str> = chosen.adapters.iter().map(|a| a.device.as_str()).collect();
        assert_eq!(
            devices,
            ["vmhba2"],
            "FC before iSCSI, vmhba2 before vmhba10"
        );
        let mut reversed = adapters.clone();
        reversed.reverse();
        assert_eq!(
            select_host_adapters(&reversed, false),
            Some(chosen),
            "the host's listing order does not matter"
        );
    }

    #[test]
    fn a_source_without_device_uses_iscsi_when_the_host_has_no_fc() {
        let storage = parse(STORAGE.as_bytes()).unwrap();
        let adapters: Vec<HostAdapter> = parse_adapters(&storage, None)
            .into_iter()
            .filter(|a| a.kind != AdapterKind::FibreChannel)
            .collect();
        let chosen = select_host_adapters(&adapters, true).unwrap();
        assert_eq!(
            chosen.adapters[0].id, "iqn.1998-01.com.vmware:esx-1",
            "an SDC without a GUID cannot be mapped: the iSCSI adapter is used"
        );
        let same = select_adapters(&storage, "mpx.vmhba1:C0:T0:L0", None, false).unwrap();
        assert_eq!(same.adapters[0].kind, AdapterKind::FibreChannel);
    }

    #[test]
    fn a_source_without_device_uses_the_powerflex_sdc_only_when_the_destination_needs_it() {
        let storage = parse(STORAGE.as_bytes()).unwrap();
        let adapters = parse_adapters(&storage, Some("guid-1"));
        let flex = select_host_adapters(&adapters, true).unwrap();
        assert_eq!(
            (
                flex.adapters[0].device.as_str(),
                flex.adapters[0].id.as_str()
            ),
            ("vmhba70", "guid-1")
        );
        let other = select_host_adapters(&adapters, false).unwrap();
        assert_eq!(other.adapters[0].kind, AdapterKind::FibreChannel);
    }

    #[test]
    fn a_source_without_device_on_a_host_without_san_adapters_has_no_choice() {
        let storage = parse(STORAGE.as_bytes()).unwrap();
        let local: Vec<HostAdapter> = parse_adapters(&storage, None)
            .into_iter()
            .filter(|a| !matches!(a.kind, AdapterKind::Iscsi | AdapterKind::FibreChannel))
            .collect();
        assert_eq!(local.len(), 2, "block and SDC adapters remain");
        assert_eq!(select_host_adapters(&local, false), None);
        assert_eq!(
            select_host_adapters(&local, true),
            None,
            "an SDC without a GUID is no initiator"
        );
        assert_eq!(select_host_adapters(&[], false), None);
    }

    #[test]
    fn scini_guid_is_read_case_insensitively() {
        assert_eq!(
            scini_guid_from_options("foo=1 ioctlinIGUIDstr=3f2a-11 bar=2").as_deref(),
            Some("3f2a-11")
        );
        assert_eq!(scini_guid_from_options("IoctlIniGuidStr="), None);
    }
}
