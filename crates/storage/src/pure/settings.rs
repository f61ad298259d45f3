//! Pure FlashArray's own key: the Portworx cluster prefix of its volume names.

use co_api::StorageVendorProduct;
use co_api::contract::flags;

use crate::settings::{Lookup, SettingProblem, VendorConfig, VendorKey, finish, required};

const CLUSTER_PREFIX: VendorKey = VendorKey {
    flag: flags::PURE_CLUSTER_PREFIX,
    required: true,
    help: "the Portworx cluster prefix, px_<first 8 characters of the StorageCluster uid> (required for pureFlashArray)",
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `PURE_CLUSTER_PREFIX` (`px_xxxxxxxx`).
    pub cluster_prefix: String,
}

impl VendorConfig for Settings {
    const PRODUCT: StorageVendorProduct = StorageVendorProduct::PureFlashArray;
    const KEYS: &'static [VendorKey] = &[CLUSTER_PREFIX];
    const TAKES_TOKEN: bool = true;

    fn read(lookup: Lookup<'_>) -> Result<Self, Vec<SettingProblem>> {
        let mut problems = Vec::new();
        let cluster_prefix = required(lookup, &CLUSTER_PREFIX, &mut problems);
        finish(
            cluster_prefix.map(|cluster_prefix| Self { cluster_prefix }),
            problems,
        )
    }
}
