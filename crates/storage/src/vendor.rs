//! Connecting the plugin for `--storage-vendor-product` (env `STORAGE_VENDOR`, parsed by
//! `co_api::StorageVendorProduct`), reading the vendor's own env keys (e.g. `ONTAP_SVM`) through
//! the same lookup as the shared `STORAGE_*` settings.

use std::sync::Arc;

use co_api::StorageVendorProduct;

use crate::api::StorageApi;
use crate::error::StorageError;
use crate::http::{ConnectionSettings, RequestObserver};
use crate::ontap::OntapArray;

/// `ONTAP_SVM`: the SVM holding the Trident LUNs (optional when the cluster has one SVM).
pub const ONTAP_SVM: &str = "ONTAP_SVM";

/// Connects the plugin for `product`. `env` supplies vendor keys (e.g. `|k| std::env::var(k).ok()`);
/// `observer`, when given, sees every HTTP request (round-trip counting, contract tests).
pub async fn connect(
    product: StorageVendorProduct,
    settings: &ConnectionSettings,
    env: &(dyn Fn(&str) -> Option<String> + Send + Sync),
    observer: Option<Arc<dyn RequestObserver>>,
) -> Result<Arc<dyn StorageApi>, StorageError> {
    match product {
        StorageVendorProduct::Ontap => {
            let svm = env(ONTAP_SVM);
            Ok(Arc::new(
                OntapArray::connect(settings, svm.as_deref(), observer).await?,
            ))
        }
        other => Err(StorageError::Unsupported {
            message: format!(
                "storage vendor {other} is not implemented in this build yet; \
                 use the upstream populator image for it or a build that includes it"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ConnectionSettings {
        ConnectionSettings::from_lookup(|k| match k {
            "STORAGE_HOSTNAME" => Some("127.0.0.1:1".into()),
            "STORAGE_TOKEN" => Some("t".into()),
            _ => None,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn vendors_without_a_plugin_yet_are_unsupported() {
        let err = connect(
            StorageVendorProduct::PowerStore,
            &settings(),
            &|_| None,
            None,
        )
        .await
        .err()
        .unwrap();
        assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("powerstore"), "{err}");
    }

    #[tokio::test]
    async fn ontap_needs_username_and_password() {
        let err = connect(StorageVendorProduct::Ontap, &settings(), &|_| None, None)
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("STORAGE_USERNAME and STORAGE_PASSWORD"),
            "{err}"
        );
    }
}
