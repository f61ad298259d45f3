//! Fibre Channel names: parsing ESXi's `fc.<WWNN>:<WWPN>` adapter ids and the World Wide Name
//! spellings arrays expect (bare or colon-separated, upper- or lowercase). Every vendor formats
//! WWNs through [`Wwn`], so there is one normalisation rule.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a World Wide Name or FC adapter id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FcParseError {
    #[error("FC adapter id {0:?} must look like fc.<WWNN>:<WWPN>")]
    NotAnFcAdapterId(String),
    #[error(
        "WWN {0:?} must be a non-empty, even number of hex digits (separators : - and spaces allowed)"
    )]
    InvalidWwn(String),
}

/// A World Wide Name (node or port), stored as lowercase hex without separators.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Wwn(String);

impl Wwn {
    /// Accepts any mix of case and `:`, `-` or space separators, e.g. `20:00:00:25:B5:00:00:01`.
    pub fn parse(text: &str) -> Result<Self, FcParseError> {
        let digits: String = text
            .chars()
            .filter(|c| !matches!(c, ':' | '-' | ' '))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if digits.is_empty()
            || !digits.len().is_multiple_of(2)
            || !digits.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Err(FcParseError::InvalidWwn(text.to_owned()));
        }
        Ok(Wwn(digits))
    }

    /// `2000002...` (lowercase, no separators).
    pub fn hex_lower(&self) -> &str {
        &self.0
    }

    /// `2000002...` (uppercase, no separators): Vantara port logins, 3PAR, FlashSystem.
    pub fn hex_upper(&self) -> String {
        self.0.to_ascii_uppercase()
    }

    /// `20:00:00:...` (lowercase): ONTAP, PowerStore.
    pub fn colon_lower(&self) -> String {
        colon_separated(&self.0)
    }

    /// `20:00:00:...` (uppercase).
    pub fn colon_upper(&self) -> String {
        colon_separated(&self.hex_upper())
    }

    /// True when both spellings name the same WWN (separators and case ignored).
    pub fn matches(&self, other: &str) -> bool {
        Wwn::parse(other).is_ok_and(|w| w == *self)
    }
}

fn colon_separated(hex: &str) -> String {
    let mut out = String::with_capacity(hex.len() * 3 / 2);
    for (i, c) in hex.chars().enumerate() {
        if i > 0 && i % 2 == 0 {
            out.push(':');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Wwn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Wwn {
    type Error = FcParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Wwn::parse(&value)
    }
}

impl From<Wwn> for String {
    fn from(value: Wwn) -> Self {
        value.0
    }
}

/// An ESXi FC adapter id `fc.<WWNN>:<WWPN>` (as the vSphere client renders it: 16 lowercase hex
/// digits each).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FcAdapterId {
    pub wwnn: Wwn,
    pub wwpn: Wwn,
}

impl FcAdapterId {
    pub fn parse(text: &str) -> Result<Self, FcParseError> {
        let bad = || FcParseError::NotAnFcAdapterId(text.to_owned());
        let rest = text
            .strip_prefix("fc.")
            .or_else(|| text.strip_prefix("FC."))
            .ok_or_else(bad)?;
        let (wwnn, wwpn) = rest.split_once(':').ok_or_else(bad)?;
        if wwpn.contains(':') {
            return Err(bad());
        }
        Ok(FcAdapterId {
            wwnn: Wwn::parse(wwnn)?,
            wwpn: Wwn::parse(wwpn)?,
        })
    }
}

impl fmt::Display for FcAdapterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fc.{}:{}", self.wwnn, self.wwpn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_esxi_adapter_id() {
        let id = FcAdapterId::parse("fc.20000025b5000001:21000025B5000001").unwrap();
        assert_eq!(id.wwnn.hex_lower(), "20000025b5000001");
        assert_eq!(id.wwpn.hex_upper(), "21000025B5000001");
        assert_eq!(id.wwpn.colon_upper(), "21:00:00:25:B5:00:00:01");
        assert_eq!(id.wwpn.colon_lower(), "21:00:00:25:b5:00:00:01");
        assert_eq!(id.to_string(), "fc.20000025b5000001:21000025b5000001");
    }

    #[test]
    fn rejects_malformed_adapter_ids() {
        for bad in [
            "20000025b5000001:21000025b5000001",
            "fc.20000025b5000001",
            "fc.:21000025b5000001",
            "fc.2000:",
            "fc.200:2100",
            "fc.zz00:2100",
            "fc.2000:2100:2200",
            "iqn.1998-01.com.vmware:esx1",
        ] {
            assert!(FcAdapterId::parse(bad).is_err(), "{bad} must be rejected");
        }
    }

    #[test]
    fn wwn_comparison_ignores_separators_and_case() {
        let w = Wwn::parse("21:00:00:25:b5:00:00:01").unwrap();
        assert!(w.matches("21000025B5000001"));
        assert!(w.matches("21-00-00-25-B5-00-00-01"));
        assert!(w.matches("21 00 00 25 b5 00 00 01"));
        assert!(!w.matches("21000025B5000002"));
        assert!(!w.matches("not a wwn"));
    }

    #[test]
    fn odd_length_tail_stays_its_own_segment_when_formatted() {
        // Only even-length WWNs parse, so the formatter never sees an odd tail from outside.
        assert_eq!(colon_separated("abc"), "ab:c");
    }

    proptest! {
        #[test]
        fn any_8_byte_wwn_round_trips_through_every_spelling(bytes in proptest::array::uniform8(any::<u8>())) {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let w = Wwn::parse(&hex).unwrap();
            prop_assert_eq!(Wwn::parse(&w.colon_upper()).unwrap(), w.clone());
            prop_assert_eq!(Wwn::parse(&w.hex_upper()).unwrap(), w.clone());
            prop_assert_eq!(w.colon_lower().len(), 23);
        }
    }
}
