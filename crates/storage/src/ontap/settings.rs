//! ONTAP's own key: the SVM holding the Trident LUNs.

use co_api::StorageVendorProduct;
use co_api::contract::flags;

use crate::settings::{Lookup, SettingProblem, VendorConfig, VendorKey};

/// `ONTAP_SVM`: optional when the cluster has one SVM (the plugin then picks it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub svm: Option<String>,
}

impl VendorConfig for Settings {
    const PRODUCT: StorageVendorProduct = StorageVendorProduct::Ontap;
    const KEYS: &'static [VendorKey] = &[VendorKey {
        flag: flags::ONTAP_SVM,
        required: false,
        help: "the SVM holding the Trident LUNs (optional when the cluster has one SVM)",
    }];

    fn read(lookup: Lookup<'_>) -> Result<Self, Vec<SettingProblem>> {
        Ok(Self {
            svm: lookup(&flags::ONTAP_SVM),
        })
    }
}
