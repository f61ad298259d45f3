//! The vendor-neutral nouns of the storage seam: the PV to resolve, the array volume behind it,
//! the ESXi host and its initiators, the array objects a volume is exposed through, and the
//! mapping that results. Everything the populator journals (groups, ownership, the volume, the
//! original mappings) is `Serialize + Deserialize` so a re-run can resume or undo.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::fc::FcAdapterId;
use crate::naa::DeviceName;

/// Name prefix of every array object copy-offload creates (`xcopy-<hostID>...`), shared with the
/// upstream populator so objects it left behind are recognised.
pub use co_api::contract::names::ARRAY_OBJECT_PREFIX as OBJECT_NAME_PREFIX;

/// The CSI persistent volume backing the target PVC (or its `prime-<uid>` PVC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistentVolumeRef {
    /// PV name.
    pub name: String,
    /// `spec.csi.driver`; `None` when the PV is not a CSI volume.
    pub csi_driver: Option<String>,
    /// `spec.csi.volumeHandle`.
    pub volume_handle: String,
    /// `spec.csi.volumeAttributes`.
    pub volume_attributes: BTreeMap<String, String>,
}

/// The array volume that backs a PV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// The array's stable identifier (ONTAP LUN uuid, PowerStore volume id, LDEV id, ...).
    pub id: String,
    /// The array's name for it (ONTAP LUN path `/vol/<flexvol>/<lun>`, volume name, ...).
    pub name: String,
    /// The ESXi canonical device name (`naa.` or `eui.`) the volume appears as once mapped.
    pub naa: DeviceName,
    /// The array's serial number for the volume.
    pub serial: String,
    /// Provisioned size in bytes (the clone target must be at least the source disk's size).
    pub size_bytes: u64,
}

/// One ESXi storage adapter identity, parsed from the id the vSphere side reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Initiator {
    /// `fc.<WWNN>:<WWPN>`.
    FibreChannel(FcAdapterId),
    /// iSCSI qualified name (`iqn.`) or EUI-format iSCSI name (`eui.`).
    Iscsi(String),
    /// NVMe qualified name (`nqn.`).
    Nvme(String),
    /// PowerFlex SDC GUID (adapters driven by `scini`), e.g. `1C2A7D4E-...`.
    Sdc(String),
    /// Anything else ESXi reports: `vmhbaN` of block/NVMe/parallel adapters, SAS WWNs.
    Other(String),
}

impl Initiator {
    /// Classifies an ESXi adapter id. Never fails: unknown shapes become [`Initiator::Other`].
    pub fn from_adapter_id(id: &str) -> Self {
        let lower = id.to_ascii_lowercase();
        if lower.starts_with("fc.") {
            if let Ok(fc) = FcAdapterId::parse(id) {
                return Initiator::FibreChannel(fc);
            }
            return Initiator::Other(id.to_owned());
        }
        if lower.starts_with("iqn.") || lower.starts_with("eui.") {
            return Initiator::Iscsi(id.to_owned());
        }
        if lower.starts_with("nqn.") {
            return Initiator::Nvme(id.to_owned());
        }
        if is_guid(id) {
            return Initiator::Sdc(id.to_owned());
        }
        Initiator::Other(id.to_owned())
    }

    /// The id in ESXi's spelling (what [`Initiator::from_adapter_id`] parsed).
    pub fn adapter_id(&self) -> String {
        match self {
            Initiator::FibreChannel(fc) => fc.to_string(),
            Initiator::Iscsi(s) | Initiator::Nvme(s) | Initiator::Sdc(s) | Initiator::Other(s) => {
                s.clone()
            }
        }
    }

    /// The SAN transport this initiator uses, when it has one an array can group.
    pub fn protocol(&self) -> Option<StorageProtocol> {
        match self {
            Initiator::FibreChannel(_) => Some(StorageProtocol::Fc),
            Initiator::Iscsi(_) => Some(StorageProtocol::Iscsi),
            Initiator::Nvme(_) => Some(StorageProtocol::Nvme),
            Initiator::Sdc(_) => Some(StorageProtocol::Sdc),
            Initiator::Other(_) => None,
        }
    }
}

fn is_guid(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    parts.len() == lens.len()
        && parts
            .iter()
            .zip(lens)
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

impl From<String> for Initiator {
    fn from(value: String) -> Self {
        Initiator::from_adapter_id(&value)
    }
}

impl From<Initiator> for String {
    fn from(value: Initiator) -> Self {
        value.adapter_id()
    }
}

impl fmt::Display for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.adapter_id())
    }
}

/// How the ESXi host reaches the array; also the `storage_protocol` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageProtocol {
    Fc,
    Iscsi,
    Nvme,
    /// PowerFlex SDC (proprietary block protocol).
    Sdc,
    /// FC and iSCSI initiators in one group.
    Mixed,
}

impl StorageProtocol {
    /// Value of the upstream `storage_protocol` metric label (`fc`, `iscsi`, or `n/a`).
    pub fn metric_label(self) -> &'static str {
        match self {
            StorageProtocol::Fc => "fc",
            StorageProtocol::Iscsi => "iscsi",
            StorageProtocol::Nvme | StorageProtocol::Sdc | StorageProtocol::Mixed => "n/a",
        }
    }
}

/// The ESXi host whose initiators must see the volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EsxiHostRef {
    /// `hostsystem-host-123` style id (lowercase moref, `:` replaced by `-`).
    pub host_id: String,
    /// Adapters with active paths to the source datastore.
    pub initiators: Vec<Initiator>,
}

impl EsxiHostRef {
    /// `xcopy-<hostID>`: the base name of every array object created for this host.
    pub fn group_base_name(&self) -> String {
        co_api::contract::names::array_object_base_name(&self.host_id)
    }
}

/// The kind of array object a volume is exposed through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// ONTAP initiator group.
    Igroup,
    /// A host object (Pure, PowerStore, InfiniBox, FlashSystem, 3PAR, PowerMax).
    Host,
    /// A group of hosts (PowerStore host group, Vantara `<port>,<number>` host group).
    HostGroup,
    /// 3PAR host set.
    HostSet,
    /// PowerMax per-copy storage group + masking view.
    MaskingView,
    /// PowerFlex storage data client.
    Sdc,
}

/// One array object by kind, name and the array's id for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupRef {
    pub kind: GroupKind,
    pub name: String,
    /// Array identifier (uuid, numeric id); empty when the array addresses the object by name.
    pub id: String,
}

impl GroupRef {
    /// True for objects named like the ones copy-offload (or upstream's populator) creates.
    pub fn is_copy_offload_object(&self) -> bool {
        co_api::contract::names::is_array_object_ours(&self.name)
    }
}

/// What [`crate::StorageApi::ensure_initiator_group`] established for one ESXi host: the array
/// objects to map volumes to and which of them copy-offload owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitiatorGroup {
    /// The ESXi host (and its initiators) this group serves; kept so a plugin can re-create the
    /// group if another run released it in between.
    pub host: EsxiHostRef,
    pub protocol: StorageProtocol,
    /// The objects a volume gets mapped to (one for most vendors; Vantara: one per port host group).
    pub targets: Vec<GroupRef>,
    /// Objects copy-offload created (now or in an earlier run) that may be deleted once nothing is
    /// mapped to them. Pre-existing admin objects are never listed here.
    pub owned: Vec<GroupRef>,
}

impl InitiatorGroup {
    /// True if `group` is one of the objects this ESXi group maps through.
    pub fn is_target(&self, group: &GroupRef) -> bool {
        self.targets
            .iter()
            .any(|t| t.kind == group.kind && t.name == group.name)
    }
}

/// A volume exposed to an initiator group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// Device name ESXi will list after a rescan.
    pub naa: DeviceName,
    /// LUN number the array assigned; `None` where the protocol has none (PowerFlex SDC).
    pub lun_id: Option<u32>,
}

/// Outcome of [`crate::StorageApi::release_group`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupRelease {
    /// Deleted: copy-offload owned it and nothing was mapped to it.
    Deleted,
    /// Kept: volumes are still mapped (another copy on the same host is using it).
    InUse,
    /// Kept: a pre-existing object copy-offload does not own.
    NotOwned,
    /// Nothing to do: it no longer exists.
    AlreadyGone,
}

/// Identity of the array, for the `storage_array_info` metric.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayInfo {
    pub vendor: String,
    pub product: String,
    pub model: String,
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_esxi_adapter_id_shape() {
        let fc = Initiator::from_adapter_id("fc.20000025b5000001:21000025b5000001");
        assert_eq!(fc.protocol(), Some(StorageProtocol::Fc));
        assert_eq!(fc.adapter_id(), "fc.20000025b5000001:21000025b5000001");
        let iqn = Initiator::from_adapter_id("iqn.1998-01.com.vmware:esx1-4f3a");
        assert_eq!(
            iqn,
            Initiator::Iscsi("iqn.1998-01.com.vmware:esx1-4f3a".into())
        );
        assert_eq!(
            Initiator::from_adapter_id("eui.0123456789abcdef").protocol(),
            Some(StorageProtocol::Iscsi)
        );
        assert_eq!(
            Initiator::from_adapter_id("nqn.2014-08.org.nvmexpress:uuid:1").protocol(),
            Some(StorageProtocol::Nvme)
        );
        assert_eq!(
            Initiator::from_adapter_id("1C2A7D4E-1111-2222-3333-444455556666"),
            Initiator::Sdc("1C2A7D4E-1111-2222-3333-444455556666".into())
        );
        assert_eq!(
            Initiator::from_adapter_id("vmhba64"),
            Initiator::Other("vmhba64".into())
        );
        assert_eq!(
            Initiator::from_adapter_id("fc.xyz"),
            Initiator::Other("fc.xyz".into())
        );
    }

    #[test]
    fn initiators_serialise_as_the_esxi_id() {
        let host = EsxiHostRef {
            host_id: "hostsystem-host-12".into(),
            initiators: vec![
                Initiator::from_adapter_id("fc.20000025b5000001:21000025b5000001"),
                Initiator::from_adapter_id("iqn.1998-01.com.vmware:esx1"),
            ],
        };
        let json = serde_json::to_value(&host).unwrap();
        assert_eq!(
            json["initiators"],
            serde_json::json!([
                "fc.20000025b5000001:21000025b5000001",
                "iqn.1998-01.com.vmware:esx1"
            ])
        );
        let back: EsxiHostRef = serde_json::from_value(json).unwrap();
        assert_eq!(back, host);
        assert_eq!(host.group_base_name(), "xcopy-hostsystem-host-12");
    }

    #[test]
    fn journal_values_round_trip() {
        let group = InitiatorGroup {
            host: EsxiHostRef {
                host_id: "hostsystem-host-1".into(),
                initiators: vec![],
            },
            protocol: StorageProtocol::Iscsi,
            targets: vec![GroupRef {
                kind: GroupKind::Igroup,
                name: "xcopy-hostsystem-host-1-iscsi".into(),
                id: "u1".into(),
            }],
            owned: vec![],
        };
        let back: InitiatorGroup =
            serde_json::from_str(&serde_json::to_string(&group).unwrap()).unwrap();
        assert_eq!(back, group);
        assert!(back.targets[0].is_copy_offload_object());
        assert!(group.is_target(&GroupRef {
            kind: GroupKind::Igroup,
            name: "xcopy-hostsystem-host-1-iscsi".into(),
            id: String::new()
        }));
    }

    #[test]
    fn protocol_metric_labels_match_upstream() {
        assert_eq!(StorageProtocol::Fc.metric_label(), "fc");
        assert_eq!(StorageProtocol::Iscsi.metric_label(), "iscsi");
        assert_eq!(StorageProtocol::Sdc.metric_label(), "n/a");
    }
}
