//! `Secret`: a credential value (password, token, private key) that can be passed around and
//! logged as part of a larger structure without its content ever reaching a log line or an error
//! message. Reading the value requires an explicit [`Secret::expose`]. Also the key aliases a
//! storage vendor Secret may use ([`STORAGE_KEY_ALIASES`]).

use std::fmt;

/// A string whose `Debug` and `Display` print `***` instead of the value.
///
/// It deliberately implements neither `Serialize` nor `Deref<Target = str>`, so the value cannot
/// leak through a status object, a JSON log field or an accidental `format!("{}", &*s)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself; call only where it is sent to its peer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// Keys of a storage vendor Secret that stand for the populator's `STORAGE_*` variables, as
/// (variable, alias): Forklift copies them under the variable's name when it builds the per-disk
/// Secret, so a CSI driver's Secret (Trident's `management_address`, `username`, `password`) can
/// be referenced from a StorageMap as it is.
pub const STORAGE_KEY_ALIASES: [(&str, &str); 3] = [
    (
        crate::contract::flags::STORAGE_HOSTNAME.env_name(),
        "management_address",
    ),
    (
        crate::contract::flags::STORAGE_USERNAME.env_name(),
        "username",
    ),
    (
        crate::contract::flags::STORAGE_PASSWORD.env_name(),
        "password",
    ),
];

/// The alias a storage vendor Secret may use for the populator variable `variable`.
pub fn storage_key_alias(variable: &str) -> Option<&'static str> {
    STORAGE_KEY_ALIASES
        .iter()
        .find(|(name, _)| *name == variable)
        .map(|(_, alias)| *alias)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(Secret(***))");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn storage_aliases_are_forklifts() {
        assert_eq!(
            storage_key_alias("STORAGE_HOSTNAME"),
            Some("management_address")
        );
        assert_eq!(storage_key_alias("STORAGE_PASSWORD"), Some("password"));
        assert_eq!(storage_key_alias("STORAGE_TOKEN"), None);
    }
}
