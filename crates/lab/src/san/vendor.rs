//! Per-vendor identity rules: how an array spells a volume's serial and which NAA ESXi derives from it
//! Adding a vendor means adding a variant and its two rules here.

use serde::{Deserialize, Serialize};

/// The kind of array a simulated array imitates. Every vendor's volumes get serials and ESXi device
/// names of that vendor's form, so the product's per-vendor NAA rules meet realistic identities; only
/// ONTAP has a REST facade so far (`crate::arrays`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ArrayVendor {
    /// NetApp ONTAP: 12-character ASCII LUN serials, devices `naa.600a0980` + hex of the serial bytes.
    Ontap,
    /// Hitachi Vantara: the LDEV's `naaId` (32 hex, upper case, prefix `60060E80`) is the serial.
    Vantara,
    /// Pure FlashArray: 24-hex volume serial, devices `naa.624a9370` + the serial in lower case.
    PureFlashArray,
    /// Dell PowerFlex: no NAA; devices `eui.` + system id (16 hex) + volume id (16 hex).
    PowerFlex,
    /// Dell PowerMax: the volume `wwn` (32 decimal-looking digits, prefix `6000097`).
    PowerMax,
    /// Dell PowerStore: the volume `wwn` (prefix `68ccf098`), which the array already reports with `naa.`.
    PowerStore,
    /// HPE Primera/3PAR: the volume `wwn` (prefix `60002AC`), devices `naa.` + the wwn in lower case.
    Primera3Par,
    /// Infinidat InfiniBox: 31-hex volume serial (prefix `742b0f`), devices `naa.6` + the serial.
    InfiniBox,
    /// IBM FlashSystem: the `vdisk_UID` (prefix `6005076`), devices `naa.` + the UID in lower case.
    FlashSystem,
}

/// Characters ONTAP-style serials are drawn from (printable, no quoting or separator characters).
const SERIAL_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl ArrayVendor {
    /// The name this vendor goes by in `storageVendorProduct` and scenario files.
    pub fn product_name(self) -> &'static str {
        match self {
            ArrayVendor::Ontap => "ontap",
            ArrayVendor::Vantara => "vantara",
            ArrayVendor::PureFlashArray => "pureFlashArray",
            ArrayVendor::PowerFlex => "powerflex",
            ArrayVendor::PowerMax => "powermax",
            ArrayVendor::PowerStore => "powerstore",
            ArrayVendor::Primera3Par => "primera3par",
            ArrayVendor::InfiniBox => "infinibox",
            ArrayVendor::FlashSystem => "flashsystem",
        }
    }

    /// Whether ESXi reaches this vendor's volumes through the PowerFlex SDC (`scini`), which is
    /// not a SCSI transport: no iSCSI or FC path leads to them, and none of the SDC's to others.
    pub fn reached_through_sdc(self) -> bool {
        self == ArrayVendor::PowerFlex
    }

    /// Whether a clone between two volumes of one array of this vendor is offloaded (VAAI
    /// XCOPY). A PowerFlex volume behind the SDC is not: ESXi copies through the host.
    pub fn offloads_clones(self) -> bool {
        !self.reached_through_sdc()
    }

    /// Every vendor, in the order of the product's vendor list.
    pub const ALL: [ArrayVendor; 9] = [
        ArrayVendor::Vantara,
        ArrayVendor::Ontap,
        ArrayVendor::Primera3Par,
        ArrayVendor::PureFlashArray,
        ArrayVendor::PowerFlex,
        ArrayVendor::PowerMax,
        ArrayVendor::PowerStore,
        ArrayVendor::InfiniBox,
        ArrayVendor::FlashSystem,
    ];

    /// The serial of the `sequence`-th volume created on an array whose name hashes to `array_seed`.
    /// Deterministic, so a scenario produces the same device names on every run.
    pub fn serial(self, array_seed: u64, sequence: u64) -> String {
        // The array part stays the same for every volume of an array and the sequence part is
        // unique within it: identities are stable across restarts of the same scenario.
        let array = array_seed & 0xffff_ffff;
        match self {
            ArrayVendor::Ontap => {
                // 4 characters identify the array, 8 the volume: unique within a lab of any
                // realistic size, and stable across restarts.
                let mut serial = base62(array_seed, 4);
                serial.push_str(&base62(sequence, 8));
                serial
            }
            ArrayVendor::Vantara => format!("60060E80{array:08X}{sequence:016X}"),
            ArrayVendor::PureFlashArray => format!("{array:08X}{sequence:016X}"),
            ArrayVendor::PowerFlex => format!("{array:016x}{sequence:016x}"),
            ArrayVendor::PowerMax => format!(
                "60000970000{:012}{:09}",
                array % 1_000_000_000_000,
                sequence % 1_000_000_000
            ),
            ArrayVendor::PowerStore => format!("68ccf098{array:08x}{sequence:016x}"),
            ArrayVendor::Primera3Par => {
                format!("60002AC{:09X}{sequence:016X}", array & 0xf_ffff_ffff)
            }
            ArrayVendor::InfiniBox => format!("742b0f{:09x}{sequence:016x}", array & 0xf_ffff_ffff),
            ArrayVendor::FlashSystem => {
                format!("6005076{:09X}{sequence:016X}", array & 0xf_ffff_ffff)
            }
        }
    }

    /// The ESXi canonical device name of a volume with this serial.
    pub fn naa(self, serial: &str) -> String {
        match self {
            ArrayVendor::Ontap => {
                let mut naa = String::from("naa.600a0980");
                for byte in serial.bytes() {
                    naa.push_str(&format!("{byte:02x}"));
                }
                naa
            }
            ArrayVendor::PureFlashArray => format!("naa.624a9370{}", serial.to_ascii_lowercase()),
            ArrayVendor::PowerFlex => format!("eui.{}", serial.to_ascii_lowercase()),
            ArrayVendor::InfiniBox => format!("naa.6{}", serial.to_ascii_lowercase()),
            ArrayVendor::Vantara
            | ArrayVendor::PowerMax
            | ArrayVendor::PowerStore
            | ArrayVendor::Primera3Par
            | ArrayVendor::FlashSystem => format!("naa.{}", serial.to_ascii_lowercase()),
        }
    }
}

fn base62(mut value: u64, width: usize) -> String {
    let radix = SERIAL_ALPHABET.len() as u64;
    let mut digits = vec![SERIAL_ALPHABET[0]; width];
    for slot in digits.iter_mut().rev() {
        *slot = SERIAL_ALPHABET[(value % radix) as usize];
        value /= radix;
    }
    digits.into_iter().map(char::from).collect()
}

/// FNV-1a: a stable hash for seeding serials and UUIDs (std's hasher is not guaranteed stable).
pub(crate) fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// A UUID-shaped (version 4 layout) identifier derived from `parts`, stable across runs.
pub(crate) fn stable_uuid(parts: &[&str]) -> String {
    let high = stable_hash(parts);
    let low = stable_hash(&[&high.to_string(), "uuid"]);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0x0fff,
        0x8000 | (low >> 48 & 0x3fff),
        low & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ontap_naa_is_prefix_plus_hex_of_serial_ascii() {
        // 12 ASCII characters → 24 hex digits, 32 in total.
        let naa = ArrayVendor::Ontap.naa("80Ab1-?]bJ3L");
        assert_eq!(naa, "naa.600a098038304162312d3f5d624a334c");
        assert_eq!(naa.len() - "naa.".len(), 32);
    }

    #[test]
    fn ontap_serials_are_twelve_printable_characters_and_distinct() {
        let seed = stable_hash(&["ontap1"]);
        let first = ArrayVendor::Ontap.serial(seed, 1);
        let second = ArrayVendor::Ontap.serial(seed, 2);
        assert_eq!(first.len(), 12);
        assert!(first.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(first, second);
        assert_eq!(first, ArrayVendor::Ontap.serial(seed, 1), "deterministic");
    }

    /// each vendor's device name prefix; ESXi names are 32 hex digits after the
    /// `naa.`/`eui.` prefix, in lower case.
    #[test]
    fn every_vendor_produces_its_own_device_name_form() {
        let expected_prefix = |vendor| match vendor {
            ArrayVendor::Ontap => "naa.600a0980",
            ArrayVendor::Vantara => "naa.60060e80",
            ArrayVendor::PureFlashArray => "naa.624a9370",
            ArrayVendor::PowerFlex => "eui.",
            ArrayVendor::PowerMax => "naa.6000097",
            ArrayVendor::PowerStore => "naa.68ccf098",
            ArrayVendor::Primera3Par => "naa.60002ac",
            ArrayVendor::InfiniBox => "naa.6742b0f",
            ArrayVendor::FlashSystem => "naa.6005076",
        };
        let seed = stable_hash(&["array-under-test"]);
        for vendor in ArrayVendor::ALL {
            let first = vendor.naa(&vendor.serial(seed, 1));
            let second = vendor.naa(&vendor.serial(seed, 2));
            assert!(
                first.starts_with(expected_prefix(vendor)),
                "{vendor:?}: {first}"
            );
            let (_, hex) = first.split_once('.').unwrap();
            assert_eq!(hex.len(), 32, "{vendor:?}: {first}");
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{vendor:?}: {first}"
            );
            assert_ne!(first, second, "{vendor:?}: volumes need distinct devices");
            assert_eq!(
                first,
                vendor.naa(&vendor.serial(seed, 1)),
                "{vendor:?}: deterministic"
            );
        }
    }

    #[test]
    fn stable_uuids_have_the_uuid_shape() {
        let uuid = stable_uuid(&["a", "b"]);
        let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_ne!(uuid, stable_uuid(&["a", "c"]));
    }
}
