//! Vendor settings: the keys only one vendor reads (`ONTAP_SVM`, `PURE_CLUSTER_PREFIX`, …), each
//! vendor module owning its typed `Settings` with their validation and help text. The populator
//! has one reader of flags and environment; it hands each vendor a [`Lookup`] over the vendor's
//! flags ([`VendorSettings::read`]) and reports every [`SettingProblem`] with the flag and its
//! environment variable, before anything is contacted.

use co_api::StorageVendorProduct;
pub use co_api::contract::flags::Flag;

/// The value given for a flag: the flag itself, else its environment variable; `None` when unset
/// or empty.
pub type Lookup<'a> = &'a dyn Fn(&Flag) -> Option<String>;

/// One problem with a vendor setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingProblem {
    pub flag: Flag,
    /// What is wrong and what is expected, without the flag's name (the reader adds it).
    pub message: String,
}

impl SettingProblem {
    pub fn new(flag: Flag, message: impl Into<String>) -> Self {
        Self {
            flag,
            message: message.into(),
        }
    }
}

/// One key a vendor reads, for validation messages and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorKey {
    pub flag: Flag,
    pub required: bool,
    pub help: &'static str,
}

/// What every vendor's `Settings` type provides.
pub trait VendorConfig: Sized {
    /// The product these settings are for.
    const PRODUCT: StorageVendorProduct;
    /// The vendor's own keys.
    const KEYS: &'static [VendorKey];
    /// Whether the vendor authenticates with `STORAGE_TOKEN` (else user name and password).
    const TAKES_TOKEN: bool = false;

    /// Reads and checks the vendor's keys; every problem at once.
    fn read(lookup: Lookup<'_>) -> Result<Self, Vec<SettingProblem>>;
}

/// A required key: its value, or a problem naming what it is for.
pub fn required(
    lookup: Lookup<'_>,
    key: &VendorKey,
    problems: &mut Vec<SettingProblem>,
) -> Option<String> {
    let value = lookup(&key.flag);
    if value.is_none() {
        problems.push(SettingProblem::new(
            key.flag,
            format!("missing; expected {}", key.help),
        ));
    }
    value
}

/// `Ok(settings)` when no problem was found.
pub fn finish<T>(
    settings: Option<T>,
    problems: Vec<SettingProblem>,
) -> Result<T, Vec<SettingProblem>> {
    match settings {
        Some(settings) if problems.is_empty() => Ok(settings),
        _ => Err(problems),
    }
}

/// The `Settings` of a vendor that reads no keys of its own (the shared `STORAGE_*` settings are
/// all it needs).
macro_rules! settings_without_keys {
    ($product:ident) => {
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Settings {}

        impl $crate::settings::VendorConfig for Settings {
            const PRODUCT: co_api::StorageVendorProduct = co_api::StorageVendorProduct::$product;
            const KEYS: &'static [$crate::settings::VendorKey] = &[];

            fn read(
                _: $crate::settings::Lookup<'_>,
            ) -> Result<Self, Vec<$crate::settings::SettingProblem>> {
                Ok(Self {})
            }
        }
    };
}
pub(crate) use settings_without_keys;
