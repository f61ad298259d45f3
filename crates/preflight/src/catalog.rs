//! Every check preflight makes, by id, with what it verifies; the remedies are written next to the
//! code that decides them, and `docs/preflight.md` lists both (a test keeps the list complete).

pub const VSPHERE_LOGIN: &str = "vsphere.login";
pub const VSPHERE_PRIVILEGES: &str = "vsphere.privileges";
pub const DISK_FOUND: &str = "disk.found";
pub const DISK_SAME_ARRAY: &str = "disk.same-array";
pub const DISK_SNAPSHOTS: &str = "disk.snapshots";
pub const HOST_HW_MOVE: &str = "host.hardware-accelerated-move";
pub const HOST_HW_INIT: &str = "host.hardware-accelerated-init";
pub const HOST_MAX_HW_TRANSFER: &str = "host.max-hw-transfer-size";
pub const HOST_MAX_LUN: &str = "host.max-lun";
pub const HOST_VAAI_CLONE: &str = "host.vaai-clone";
pub const HOST_VIB: &str = "host.vib";
pub const HOST_SSH_KEY: &str = "host.ssh-key";
pub const HOST_SSH_WRAPPER: &str = "host.ssh-wrapper";
pub const PROBE_PREPARE: &str = "probe.prepare";
pub const PROBE_MAP: &str = "probe.map";
pub const PROBE_RESCAN: &str = "probe.rescan";
pub const PROBE_VERIFY: &str = "probe.verify";
pub const PROBE_CLONE: &str = "probe.clone";
pub const PROBE_CLEANUP: &str = "probe.cleanup";
pub const STORAGE_LOGIN: &str = "storage.login";
pub const STORAGE_API_VERSION: &str = "storage.api-version";
pub const STORAGE_INITIATORS: &str = "storage.initiators";
pub const STORAGE_PREREQUISITE: &str = "storage.vendor-prerequisite";

/// Every check id with one line saying what it verifies.
pub const CHECKS: &[(&str, &str)] = &[
    (VSPHERE_LOGIN, "vCenter answers and accepts the credentials"),
    (
        VSPHERE_PRIVILEGES,
        "the session holds the role's privileges on vCenter, each host and each datastore",
    ),
    (
        DISK_FOUND,
        "each selected VM or disk exists and can be read",
    ),
    (
        DISK_SAME_ARRAY,
        "the disk's source LUN is a volume of the configured array, not only of its vendor (XCOPY needs one array)",
    ),
    (
        DISK_SNAPSHOTS,
        "the disk's VM has no snapshots (they force a host copy)",
    ),
    (
        HOST_HW_MOVE,
        "/DataMover/HardwareAcceleratedMove is 1 (XCOPY enabled)",
    ),
    (
        HOST_HW_INIT,
        "/DataMover/HardwareAcceleratedInit is 1 (block zeroing offloaded)",
    ),
    (
        HOST_MAX_HW_TRANSFER,
        "/DataMover/MaxHWTransferSize is at the recommended 16384 KB",
    ),
    (
        HOST_MAX_LUN,
        "/Disk/MaxLUN leaves a LUN id above those in use, so a newly mapped volume is scanned",
    ),
    (
        HOST_VAAI_CLONE,
        "each source LUN reports VAAI clone (XCOPY) supported on the host that copies it",
    ),
    (
        HOST_VIB,
        "VIB method: the vmkfstools-wrapper VIB answers through esxcli at this build's version",
    ),
    (
        HOST_SSH_KEY,
        "SSH method: the host accepts the migration key (its restricted authorized_keys line)",
    ),
    (
        HOST_SSH_WRAPPER,
        "SSH method: the wrapper the key runs answers at this build's version",
    ),
    (
        PROBE_PREPARE,
        "--probe: the throw-away volume resolves on the array; vCenter and the array connect",
    ),
    (
        PROBE_MAP,
        "--probe: the array maps the volume to the host's initiators",
    ),
    (
        PROBE_RESCAN,
        "--probe: the host finds the volume after rescanning its adapters",
    ),
    (
        PROBE_VERIFY,
        "--probe: the device the host shows is the volume (NAA name and size)",
    ),
    (
        PROBE_CLONE,
        "--probe: the small disk clones onto the volume, with XCOPY",
    ),
    (
        PROBE_CLEANUP,
        "--probe: everything the probe changed is undone",
    ),
    (
        STORAGE_LOGIN,
        "the array answers and accepts the credentials",
    ),
    (
        STORAGE_API_VERSION,
        "the array reports its product and API version",
    ),
    (
        STORAGE_INITIATORS,
        "the array knows the initiators (PowerFlex: the SDC) each host is mapped through",
    ),
    (
        STORAGE_PREREQUISITE,
        "the vendor's own prerequisites (host mode and options, OS type, persona, volume protection, SDC connection)",
    ),
];

/// The user-interface name of a privilege id, as the role editor shows it.
pub fn privilege_label(id: &str) -> &str {
    match id {
        "Global.Settings" => "Global › Settings",
        "Datastore.Browse" => "Datastore › Browse datastore",
        "Datastore.FileManagement" => "Datastore › Low level file operations",
        "Host.Config.AdvancedConfig" => "Host › Configuration › Advanced settings",
        "Host.Config.Patch" => "Host › Configuration › Query patch",
        "Host.Config.Storage" => "Host › Configuration › Storage partition configuration",
        other => other,
    }
}

/// The privileges the role needs on the root folder (vCenter itself).
pub const VCENTER_PRIVILEGES: &[&str] = &["Global.Settings"];
/// The privileges the role needs on each datastore holding a disk.
pub const DATASTORE_PRIVILEGES: &[&str] = &["Datastore.Browse", "Datastore.FileManagement"];
/// The privileges the role needs on each host running a selected VM.
pub const HOST_PRIVILEGES: &[&str] = &[
    "Host.Config.AdvancedConfig",
    "Host.Config.Patch",
    "Host.Config.Storage",
];

/// The IEEE company ids (OUI) in the NAA names of each vendor's volumes (`naa.6<oui>…`); PowerFlex
/// volumes are `eui.` names without one.
pub fn vendor_ouis(product: co_api::StorageVendorProduct) -> &'static [&'static str] {
    use co_api::StorageVendorProduct as P;
    match product {
        P::Ontap => &["00a098"],
        P::PureFlashArray => &["24a937"],
        P::Vantara => &["0060e8"],
        P::PowerMax => &["000097"],
        P::PowerStore => &["8ccf09"],
        P::Primera3Par => &["0002ac"],
        P::InfiniBox => &["742b0f"],
        P::FlashSystem => &["005076"],
        P::PowerFlex => &[],
    }
}

/// The OUI of a `naa.5…`/`naa.6…` device name (IEEE registered formats), lowercase.
pub fn device_oui(device: &str) -> Option<String> {
    let lower = device.trim().to_ascii_lowercase();
    let body = lower.strip_prefix("naa.")?;
    let mut chars = body.chars();
    match chars.next() {
        Some('5' | '6') => {
            let oui: String = chars.take(6).collect();
            (oui.len() == 6 && oui.chars().all(|c| c.is_ascii_hexdigit())).then_some(oui)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendor_device_name_rule_yields_its_oui() {
        use co_api::StorageVendorProduct as P;
        let cases = [
            (P::Ontap, co_storage::naa::ontap("80Ab1-?]bJ3L").unwrap()),
            (
                P::PureFlashArray,
                co_storage::naa::pure("0123456789abcdef01234567").unwrap(),
            ),
            (
                P::Vantara,
                co_storage::naa::vantara("60060E8012345600504012340000ABCD").unwrap(),
            ),
            (
                P::PowerMax,
                co_storage::naa::powermax("60000970000197900123533030334142").unwrap(),
            ),
            (
                P::PowerStore,
                co_storage::naa::powerstore("naa.68ccf09800a1b2c3d4e5f60718293a4b").unwrap(),
            ),
            (
                P::Primera3Par,
                co_storage::naa::primera3par("60002AC0000000000000000000012345").unwrap(),
            ),
            (
                P::InfiniBox,
                co_storage::naa::infinibox("742b0f000004e2b0000000000000a1b").unwrap(),
            ),
            (
                P::FlashSystem,
                co_storage::naa::flashsystem("600507680C8101A7D800000000000123").unwrap(),
            ),
        ];
        for (product, name) in cases {
            assert_eq!(
                device_oui(name.as_str()).as_deref(),
                vendor_ouis(product).first().copied(),
                "{product:?} {name}"
            );
        }
        assert_eq!(device_oui("eui.0011223344556677"), None);
    }

    #[test]
    fn docs_list_every_check() {
        let docs = include_str!("../../../docs/preflight.md");
        for (id, _) in CHECKS {
            assert!(
                docs.contains(&format!("`{id}`")),
                "docs/preflight.md does not list {id}"
            );
        }
    }
}
