//! `StorageVendorProduct`: the closed set of storage products copy-offload can drive, spelled
//! exactly as Forklift's `StorageMap` (`offloadPlugin.vsphereXcopyConfig.storageVendorProduct`),
//! the populator CR and the `STORAGE_VENDOR` env var spell them.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A storage product whose array can take part in a copy offload.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum StorageVendorProduct {
    /// Hitachi Vantara VSP (Configuration Manager REST API).
    #[serde(rename = "vantara")]
    Vantara,
    /// NetApp ONTAP.
    #[serde(rename = "ontap")]
    Ontap,
    /// HPE Primera / 3PAR.
    #[serde(rename = "primera3par")]
    Primera3Par,
    /// Pure Storage FlashArray.
    #[serde(rename = "pureFlashArray")]
    PureFlashArray,
    /// Dell PowerFlex.
    #[serde(rename = "powerflex")]
    PowerFlex,
    /// Dell PowerMax.
    #[serde(rename = "powermax")]
    PowerMax,
    /// Dell PowerStore.
    #[serde(rename = "powerstore")]
    PowerStore,
    /// Infinidat InfiniBox.
    #[serde(rename = "infinibox")]
    InfiniBox,
    /// IBM FlashSystem.
    #[serde(rename = "flashsystem")]
    FlashSystem,
}

impl StorageVendorProduct {
    /// Every supported product, in the order the upstream documentation lists them.
    pub const ALL: [StorageVendorProduct; 9] = [
        Self::Vantara,
        Self::Ontap,
        Self::Primera3Par,
        Self::PureFlashArray,
        Self::PowerFlex,
        Self::PowerMax,
        Self::PowerStore,
        Self::InfiniBox,
        Self::FlashSystem,
    ];

    /// The exact wire spelling (`pureFlashArray`, `ontap`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Vantara => "vantara",
            Self::Ontap => "ontap",
            Self::Primera3Par => "primera3par",
            Self::PureFlashArray => "pureFlashArray",
            Self::PowerFlex => "powerflex",
            Self::PowerMax => "powermax",
            Self::PowerStore => "powerstore",
            Self::InfiniBox => "infinibox",
            Self::FlashSystem => "flashsystem",
        }
    }

    /// The nine names joined with ", ", for messages that tell the user what is accepted.
    pub fn valid_names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for StorageVendorProduct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A vendor string that is not one of the nine exact names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{given:?} is not a supported storage vendor product; expected one of: {}",
    StorageVendorProduct::valid_names()
)]
pub struct UnknownVendor {
    /// The string that was given.
    pub given: String,
}

impl FromStr for StorageVendorProduct {
    type Err = UnknownVendor;

    /// Matching is exact (case-sensitive), as in Forklift, so a value accepted here is accepted
    /// by every other component that reads the same field.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|vendor| vendor.as_str() == s)
            .ok_or_else(|| UnknownVendor {
                given: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_round_trips_through_from_str_and_serde() {
        for vendor in StorageVendorProduct::ALL {
            assert_eq!(vendor.as_str().parse::<StorageVendorProduct>(), Ok(vendor));
            let json = serde_json::to_string(&vendor).unwrap();
            assert_eq!(json, format!("\"{}\"", vendor.as_str()));
        }
    }

    #[test]
    fn matching_is_case_sensitive() {
        assert!("PureFlashArray".parse::<StorageVendorProduct>().is_err());
        assert!("ONTAP".parse::<StorageVendorProduct>().is_err());
    }
}
