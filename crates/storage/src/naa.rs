//! ESXi canonical device names (`naa.<hex>` / `eui.<hex>`) and how each of the nine vendors derives
//! the name of a volume from what its API returns. Pure functions: the plugins call them, the
//! tests pin every vendor's rule, and all names come out lowercase (ESXi lists devices lowercase;
//! upstream Vantara kept the array's uppercase and could never match).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string cannot be an ESXi device name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceNameError {
    #[error("device name {0:?} must be naa.<hex> or eui.<hex>")]
    Malformed(String),
    #[error(
        "{vendor} volume identifier {value:?} is not hex, so no ESXi device name can be derived from it"
    )]
    NotHex { vendor: &'static str, value: String },
}

/// The name ESXi gives the volume's SCSI device, e.g. `naa.600a098038304437...`; the device path
/// on the host is `/vmfs/devices/disks/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceName(String);

impl DeviceName {
    /// Parses `naa.<hex>` or `eui.<hex>` in any case.
    pub fn parse(text: &str) -> Result<Self, DeviceNameError> {
        let lower = text.trim().to_ascii_lowercase();
        let body = lower
            .strip_prefix("naa.")
            .or_else(|| lower.strip_prefix("eui."));
        match body {
            Some(hex) if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                Ok(DeviceName(lower))
            }
            _ => Err(DeviceNameError::Malformed(text.to_owned())),
        }
    }

    fn from_parts(prefix: &str, hex: &str, vendor: &'static str) -> Result<Self, DeviceNameError> {
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(DeviceNameError::NotHex {
                vendor,
                value: hex.to_owned(),
            });
        }
        Ok(DeviceName(format!("{prefix}{}", hex.to_ascii_lowercase())))
    }

    /// The full name, e.g. `naa.600a0980...`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex identifier after `naa.`/`eui.`.
    pub fn identifier(&self) -> &str {
        &self.0[4..]
    }

    /// `/vmfs/devices/disks/<name>`, the path vmkfstools writes to.
    pub fn esxi_device_path(&self) -> String {
        format!("/vmfs/devices/disks/{}", self.0)
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DeviceName {
    type Error = DeviceNameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        DeviceName::parse(&value)
    }
}

impl From<DeviceName> for String {
    fn from(value: DeviceName) -> Self {
        value.0
    }
}

/// NetApp ONTAP: `naa.600a0980` + the hex of the ASCII bytes of the LUN serial number (12
/// characters → 24 hex digits).
pub fn ontap(serial_number: &str) -> Result<DeviceName, DeviceNameError> {
    let hex: String = serial_number.bytes().map(|b| format!("{b:02x}")).collect();
    if serial_number.is_empty() || !serial_number.is_ascii() {
        return Err(DeviceNameError::NotHex {
            vendor: "ONTAP",
            value: serial_number.to_owned(),
        });
    }
    DeviceName::from_parts("naa.600a0980", &hex, "ONTAP")
}

/// Pure FlashArray: `naa.624a9370` + the volume serial (24 hex digits).
pub fn pure(serial: &str) -> Result<DeviceName, DeviceNameError> {
    DeviceName::from_parts("naa.624a9370", serial, "Pure FlashArray")
}

/// Hitachi Vantara: `naa.` + the LDEV's `naaId`.
pub fn vantara(naa_id: &str) -> Result<DeviceName, DeviceNameError> {
    DeviceName::from_parts("naa.", naa_id, "Hitachi Vantara")
}

/// Dell PowerFlex: `eui.` + system id + volume id (the SDC exposes an EUI-64 based name).
pub fn powerflex(system_id: &str, volume_id: &str) -> Result<DeviceName, DeviceNameError> {
    DeviceName::from_parts("eui.", &format!("{system_id}{volume_id}"), "Dell PowerFlex")
}

/// Dell PowerMax: `naa.` + the volume `wwn`.
pub fn powermax(wwn: &str) -> Result<DeviceName, DeviceNameError> {
    DeviceName::from_parts("naa.", wwn, "Dell PowerMax")
}

/// Dell PowerStore: the volume `wwn` already carries `naa.`; tolerate arrays that omit it.
pub fn powerstore(wwn: &str) -> Result<DeviceName, DeviceNameError> {
    let lower = wwn.to_ascii_lowercase();
    DeviceName::from_parts(
        "naa.",
        lower.strip_prefix("naa.").unwrap_or(&lower),
        "Dell PowerStore",
    )
}

/// HPE Primera/3PAR: `naa.` + the volume `wwn` (which already starts with the `60002ac` vendor
/// prefix; upstream's RDM path prefixed it twice).
pub fn primera3par(wwn: &str) -> Result<DeviceName, DeviceNameError> {
    DeviceName::from_parts("naa.", wwn, "HPE Primera/3PAR")
}

/// Infinidat InfiniBox: `naa.6` + the volume serial.
pub fn infinibox(serial: &str) -> Result<DeviceName, DeviceNameError> {
    DeviceName::from_parts("naa.6", serial, "Infinidat InfiniBox")
}

/// IBM FlashSystem: `naa.` + the `vdisk_UID` (which already starts with IBM's `6005076`).
pub fn flashsystem(vdisk_uid: &str) -> Result<DeviceName, DeviceNameError> {
    DeviceName::from_parts("naa.", vdisk_uid, "IBM FlashSystem")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ontap_hexes_the_ascii_serial() {
        let name = ontap("wCH1x]Fn1ZkB").unwrap();
        assert_eq!(name.as_str(), "naa.600a098077434831785d466e315a6b42");
        assert_eq!(name.identifier().len(), 32);
        assert!(ontap("").is_err());
        assert!(ontap("séries").is_err());
    }

    #[test]
    fn pure_prefixes_the_serial_in_lowercase() {
        let name = pure("F4B9A1C2D3E4F5A6B7C8D9E0").unwrap();
        assert_eq!(name.as_str(), "naa.624a9370f4b9a1c2d3e4f5a6b7c8d9e0");
        assert!(pure("not-hex").is_err());
    }

    #[test]
    fn vantara_is_lowercased_unlike_upstream() {
        let name = vantara("60060E8012345600504012345600001A").unwrap();
        assert_eq!(name.as_str(), "naa.60060e8012345600504012345600001a");
    }

    #[test]
    fn powerflex_uses_an_eui_name() {
        let name = powerflex("7b3c5a1d2e4f6789", "d1a2b3c400000005").unwrap();
        assert_eq!(name.as_str(), "eui.7b3c5a1d2e4f6789d1a2b3c400000005");
    }

    #[test]
    fn powermax_prefixes_the_wwn() {
        let name = powermax("60000970000197900123533030314233").unwrap();
        assert_eq!(name.as_str(), "naa.60000970000197900123533030314233");
    }

    #[test]
    fn powerstore_accepts_wwn_with_or_without_prefix() {
        let expected = "naa.68ccf098001234567890abcdef012345";
        assert_eq!(
            powerstore("naa.68CCF098001234567890ABCDEF012345")
                .unwrap()
                .as_str(),
            expected
        );
        assert_eq!(
            powerstore("68ccf098001234567890abcdef012345")
                .unwrap()
                .as_str(),
            expected
        );
    }

    #[test]
    fn primera3par_prefixes_once() {
        let name = primera3par("60002AC0000000000000001A00012345").unwrap();
        assert_eq!(name.as_str(), "naa.60002ac0000000000000001a00012345");
    }

    #[test]
    fn infinibox_prefixes_naa_6() {
        let name = infinibox("742b0f000004e2b0000000000000abcd").unwrap();
        assert_eq!(name.as_str(), "naa.6742b0f000004e2b0000000000000abcd");
    }

    #[test]
    fn flashsystem_lowercases_the_vdisk_uid() {
        let name = flashsystem("6005076810810261F800000000000ABC").unwrap();
        assert_eq!(name.as_str(), "naa.6005076810810261f800000000000abc");
    }

    #[test]
    fn device_names_parse_and_serialise_as_strings() {
        let name = DeviceName::parse("NAA.600A0980ABCDEF").unwrap();
        assert_eq!(name.as_str(), "naa.600a0980abcdef");
        assert_eq!(
            name.esxi_device_path(),
            "/vmfs/devices/disks/naa.600a0980abcdef"
        );
        let json = serde_json::to_string(&name).unwrap();
        assert_eq!(json, "\"naa.600a0980abcdef\"");
        let back: DeviceName = serde_json::from_str(&json).unwrap();
        assert_eq!(back, name);
        for bad in ["600a0980", "naa.", "naa.xyz", "t10.ATA", "vml.0200"] {
            assert!(DeviceName::parse(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<DeviceName>("\"naa.zz\"").is_err());
    }
}
