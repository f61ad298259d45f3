//! The vendor list: every storage product's settings ([`VendorSettings`]) and the plugin that
//! connects to it ([`connect`]). Adding a vendor touches its module, its lab facade, and one arm in
//! each `match` below — nothing in the populator.

use std::sync::Arc;

use co_api::StorageVendorProduct;

use crate::api::StorageApi;
use crate::error::StorageError;
use crate::http::{ConnectionSettings, RequestObserver};
use crate::settings::{Lookup, SettingProblem, VendorConfig, VendorKey};
use crate::{
    flashsystem, infinibox, ontap, powerflex, powermax, powerstore, primera3par, pure, vantara,
};

/// The storage product with the keys only that vendor reads, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorSettings {
    Vantara(vantara::Settings),
    Ontap(ontap::Settings),
    Primera3Par(primera3par::Settings),
    PureFlashArray(pure::Settings),
    PowerFlex(powerflex::Settings),
    PowerMax(powermax::Settings),
    PowerStore(powerstore::Settings),
    InfiniBox(infinibox::Settings),
    FlashSystem(flashsystem::Settings),
}

/// What the vendor list knows about a product without reading its settings.
#[derive(Debug, Clone, Copy)]
pub struct VendorInfo {
    pub keys: &'static [VendorKey],
    pub takes_token: bool,
}

impl VendorInfo {
    fn of<S: VendorConfig>() -> Self {
        Self {
            keys: S::KEYS,
            takes_token: S::TAKES_TOKEN,
        }
    }
}

impl VendorSettings {
    /// Reads and checks the settings of `product` through `lookup`; every problem at once.
    pub fn read(
        product: StorageVendorProduct,
        lookup: Lookup<'_>,
    ) -> Result<Self, Vec<SettingProblem>> {
        use StorageVendorProduct as P;
        Ok(match product {
            P::Vantara => Self::Vantara(vantara::Settings::read(lookup)?),
            P::Ontap => Self::Ontap(ontap::Settings::read(lookup)?),
            P::Primera3Par => Self::Primera3Par(primera3par::Settings::read(lookup)?),
            P::PureFlashArray => Self::PureFlashArray(pure::Settings::read(lookup)?),
            P::PowerFlex => Self::PowerFlex(powerflex::Settings::read(lookup)?),
            P::PowerMax => Self::PowerMax(powermax::Settings::read(lookup)?),
            P::PowerStore => Self::PowerStore(powerstore::Settings::read(lookup)?),
            P::InfiniBox => Self::InfiniBox(infinibox::Settings::read(lookup)?),
            P::FlashSystem => Self::FlashSystem(flashsystem::Settings::read(lookup)?),
        })
    }

    /// The keys `product` reads and whether it takes `STORAGE_TOKEN`.
    pub fn info(product: StorageVendorProduct) -> VendorInfo {
        use StorageVendorProduct as P;
        match product {
            P::Vantara => VendorInfo::of::<vantara::Settings>(),
            P::Ontap => VendorInfo::of::<ontap::Settings>(),
            P::Primera3Par => VendorInfo::of::<primera3par::Settings>(),
            P::PureFlashArray => VendorInfo::of::<pure::Settings>(),
            P::PowerFlex => VendorInfo::of::<powerflex::Settings>(),
            P::PowerMax => VendorInfo::of::<powermax::Settings>(),
            P::PowerStore => VendorInfo::of::<powerstore::Settings>(),
            P::InfiniBox => VendorInfo::of::<infinibox::Settings>(),
            P::FlashSystem => VendorInfo::of::<flashsystem::Settings>(),
        }
    }

    /// The storage product these settings are for.
    pub fn product(&self) -> StorageVendorProduct {
        use StorageVendorProduct as P;
        match self {
            Self::Vantara(_) => P::Vantara,
            Self::Ontap(_) => P::Ontap,
            Self::Primera3Par(_) => P::Primera3Par,
            Self::PureFlashArray(_) => P::PureFlashArray,
            Self::PowerFlex(_) => P::PowerFlex,
            Self::PowerMax(_) => P::PowerMax,
            Self::PowerStore(_) => P::PowerStore,
            Self::InfiniBox(_) => P::InfiniBox,
            Self::FlashSystem(_) => P::FlashSystem,
        }
    }
}

/// Connects the plugin for `vendor`. `observer`, when given, sees every HTTP request
/// (round-trip counting, contract tests).
pub async fn connect(
    vendor: &VendorSettings,
    connection: &ConnectionSettings,
    observer: Option<Arc<dyn RequestObserver>>,
) -> Result<Arc<dyn StorageApi>, StorageError> {
    match vendor {
        VendorSettings::Ontap(settings) => Ok(Arc::new(
            ontap::OntapArray::connect(connection, settings, observer).await?,
        )),
        VendorSettings::PureFlashArray(settings) => Ok(Arc::new(
            pure::PureArray::connect(connection, settings, observer).await?,
        )),
        VendorSettings::PowerMax(settings) => Ok(Arc::new(
            powermax::PowerMaxArray::connect(connection, settings, observer).await?,
        )),
        VendorSettings::PowerStore(settings) => Ok(Arc::new(
            powerstore::PowerStoreArray::connect(connection, settings, observer).await?,
        )),
        VendorSettings::FlashSystem(settings) => Ok(Arc::new(
            flashsystem::FlashSystemArray::connect(connection, settings, observer).await?,
        )),
        VendorSettings::InfiniBox(settings) => Ok(Arc::new(
            infinibox::InfiniBoxArray::connect(connection, settings, observer).await?,
        )),
        VendorSettings::Primera3Par(settings) => Ok(Arc::new(
            primera3par::Primera3ParArray::connect(connection, settings, observer).await?,
        )),
        VendorSettings::Vantara(settings) => Ok(Arc::new(
            vantara::VantaraArray::connect(connection, settings, observer).await?,
        )),
        VendorSettings::PowerFlex(settings) => Ok(Arc::new(
            powerflex::PowerFlexArray::connect(connection, settings, observer).await?,
        )),
    }
}

#[cfg(test)]
mod tests {
    use co_api::contract::flags::{self, Flag};

    use super::*;
    use crate::http::{Credentials, Secret};

    fn connection() -> ConnectionSettings {
        ConnectionSettings::new(
            "127.0.0.1:1",
            Credentials {
                username: String::new(),
                password: Secret::new(""),
                token: Some(Secret::new("t")),
            },
        )
    }

    #[tokio::test]
    async fn ontap_needs_username_and_password() {
        let settings = VendorSettings::Ontap(ontap::Settings::default());
        let err = connect(&settings, &connection(), None).await.err().unwrap();
        assert!(
            err.to_string()
                .contains("STORAGE_USERNAME and STORAGE_PASSWORD"),
            "{err}"
        );
    }

    /// Every product reads its settings through the vendor list; required keys are named with
    /// their flag when missing, and every declared key is one of the `populate` flags.
    #[test]
    fn every_vendor_reads_its_keys() {
        let nothing = |_: &Flag| None;
        for product in StorageVendorProduct::ALL {
            let info = VendorSettings::info(product);
            for key in info.keys {
                assert!(flags::ALL.contains(&key.flag), "{product}: {key:?}");
            }
            let required: Vec<Flag> = info
                .keys
                .iter()
                .filter(|k| k.required)
                .map(|k| k.flag)
                .collect();
            match VendorSettings::read(product, &nothing) {
                Ok(settings) => {
                    assert!(required.is_empty(), "{product}");
                    assert_eq!(settings.product(), product);
                }
                Err(problems) => {
                    let named: Vec<Flag> = problems.iter().map(|p| p.flag).collect();
                    assert_eq!(named, required, "{product}");
                }
            }
        }
        assert!(VendorSettings::info(StorageVendorProduct::PureFlashArray).takes_token);
        assert!(!VendorSettings::info(StorageVendorProduct::Ontap).takes_token);
    }
}
