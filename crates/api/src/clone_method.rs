//! `CloneMethod`: how the populator reaches `vmkfstools` on the ESXi host — through the
//! `vmkfstools-wrapper` VIB (esxcli over the vSphere API) or through a restricted SSH key.
//!
//! The setting comes from the Provider (`settings.esxiCloneMethod`) and reaches the populator pod
//! as `ESXI_CLONE_METHOD`. Upstream treated every value other than `ssh` as VIB, so a typo such
//! as `shh` silently selected the other method; here anything but `vib`/`ssh` is an error.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The way `vmkfstools` is invoked on the ESXi host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CloneMethod {
    /// The `vmkfstools-wrapper` VIB, called as `esxcli vmkfstools …` through vCenter (default).
    #[default]
    Vib,
    /// `secure-vmkfstools-wrapper` on a datastore, run through a command-restricted SSH key.
    Ssh,
}

impl CloneMethod {
    /// The wire spelling (`vib`, `ssh`), also used as the `clone_method` metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Vib => "vib",
            Self::Ssh => "ssh",
        }
    }

    /// Reads a setting as the Provider / `ESXI_CLONE_METHOD` carry it: empty or whitespace means
    /// the default (VIB); otherwise `vib` or `ssh`, trimmed and case-insensitive.
    pub fn from_setting(value: &str) -> Result<Self, UnknownCloneMethod> {
        if value.trim().is_empty() {
            Ok(Self::default())
        } else {
            value.parse()
        }
    }
}

impl fmt::Display for CloneMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A clone-method value that is neither `vib` nor `ssh`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not a clone method; expected \"vib\" (the default) or \"ssh\"")]
pub struct UnknownCloneMethod {
    /// The string that was given.
    pub given: String,
}

impl FromStr for CloneMethod {
    type Err = UnknownCloneMethod;

    /// Accepts `vib` or `ssh`, trimmed and case-insensitive. Empty is rejected here; use
    /// [`CloneMethod::from_setting`] where empty means "default".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        if trimmed.eq_ignore_ascii_case("vib") {
            Ok(Self::Vib)
        } else if trimmed.eq_ignore_ascii_case("ssh") {
            Ok(Self::Ssh)
        } else {
            Err(UnknownCloneMethod {
                given: s.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_semantics() {
        assert_eq!(CloneMethod::from_setting(""), Ok(CloneMethod::Vib));
        assert_eq!(CloneMethod::from_setting("  "), Ok(CloneMethod::Vib));
        assert_eq!(CloneMethod::from_setting(" SSH\n"), Ok(CloneMethod::Ssh));
        assert_eq!(CloneMethod::from_setting("Vib"), Ok(CloneMethod::Vib));
        let err = CloneMethod::from_setting("shh").unwrap_err();
        assert!(err.to_string().contains("\"vib\""), "{err}");
        assert!("".parse::<CloneMethod>().is_err());
    }
}
