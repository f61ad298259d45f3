//! PowerFlex's own key: the system id that prefixes its device names.

use co_api::StorageVendorProduct;
use co_api::contract::flags;

use crate::settings::{Lookup, SettingProblem, VendorConfig, VendorKey, finish, required};

const SYSTEM_ID: VendorKey = VendorKey {
    flag: flags::POWERFLEX_SYSTEM_ID,
    required: true,
    help: "the PowerFlex system id (required for powerflex)",
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `POWERFLEX_SYSTEM_ID`.
    pub system_id: String,
}

impl VendorConfig for Settings {
    const PRODUCT: StorageVendorProduct = StorageVendorProduct::PowerFlex;
    const KEYS: &'static [VendorKey] = &[SYSTEM_ID];

    fn read(lookup: Lookup<'_>) -> Result<Self, Vec<SettingProblem>> {
        let mut problems = Vec::new();
        let system_id = required(lookup, &SYSTEM_ID, &mut problems);
        finish(system_id.map(|system_id| Self { system_id }), problems)
    }
}
