//! PowerMax's own keys: which array, and the port group its masking views use.

use co_api::StorageVendorProduct;
use co_api::contract::flags;

use crate::settings::{Lookup, SettingProblem, VendorConfig, VendorKey, finish, required};

const SYMMETRIX_ID: VendorKey = VendorKey {
    flag: flags::POWERMAX_SYMMETRIX_ID,
    required: true,
    help: "the Symmetrix id (required for powermax)",
};
const PORT_GROUP_NAME: VendorKey = VendorKey {
    flag: flags::POWERMAX_PORT_GROUP_NAME,
    required: true,
    help: "the port group for the masking view (required for powermax)",
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `POWERMAX_SYMMETRIX_ID`.
    pub symmetrix_id: String,
    /// `POWERMAX_PORT_GROUP_NAME`.
    pub port_group_name: String,
}

impl VendorConfig for Settings {
    const PRODUCT: StorageVendorProduct = StorageVendorProduct::PowerMax;
    const KEYS: &'static [VendorKey] = &[SYMMETRIX_ID, PORT_GROUP_NAME];

    fn read(lookup: Lookup<'_>) -> Result<Self, Vec<SettingProblem>> {
        let mut problems = Vec::new();
        let symmetrix_id = required(lookup, &SYMMETRIX_ID, &mut problems);
        let port_group_name = required(lookup, &PORT_GROUP_NAME, &mut problems);
        let settings = symmetrix_id
            .zip(port_group_name)
            .map(|(symmetrix_id, port_group_name)| Self {
                symmetrix_id,
                port_group_name,
            });
        finish(settings, problems)
    }
}
