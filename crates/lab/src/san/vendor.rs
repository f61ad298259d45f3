//! Per-vendor identity rules: how an array spells a volume's serial and which NAA ESXi derives from it
//! (`../shared/spec/vendors.md` §1). Adding a vendor means adding a variant and its two rules here.

use serde::{Deserialize, Serialize};

/// The kind of array a simulated array imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ArrayVendor {
    /// NetApp ONTAP: 12-character ASCII LUN serials, devices `naa.600a0980` + hex of the serial bytes.
    Ontap,
}

/// Characters ONTAP-style serials are drawn from (printable, no quoting or separator characters).
const SERIAL_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl ArrayVendor {
    /// The name this vendor goes by in `storageVendorProduct` and scenario files.
    pub fn product_name(self) -> &'static str {
        match self {
            ArrayVendor::Ontap => "ontap",
        }
    }

    /// The serial of the `sequence`-th volume created on an array whose name hashes to `array_seed`.
    /// Deterministic, so a scenario produces the same device names on every run.
    pub fn serial(self, array_seed: u64, sequence: u64) -> String {
        match self {
            ArrayVendor::Ontap => {
                // 4 characters identify the array, 8 the volume: unique within a lab of any
                // realistic size, and stable across restarts.
                let mut serial = base62(array_seed, 4);
                serial.push_str(&base62(sequence, 8));
                serial
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
        // vendors.md §2.2: 12 ASCII characters → 24 hex digits, 32 in total.
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

    #[test]
    fn stable_uuids_have_the_uuid_shape() {
        let uuid = stable_uuid(&["a", "b"]);
        let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_ne!(uuid, stable_uuid(&["a", "c"]));
    }
}
