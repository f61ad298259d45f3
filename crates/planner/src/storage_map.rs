//! The StorageMap controller: every mapping with `offloadPlugin.vsphereXcopyConfig` is checked
//! before any plan uses it — its storage Secret exists and holds what the vendor needs, and its
//! `storageVendorProduct` is one of the nine known — and the result is written as conditions on
//! the StorageMap itself (Forklift reports such problems only when the populator pod fails).
//!
//! The check reads the Secret and never connects to the array. It is repeated when the map or a
//! Secret it references changes, and when `feature_copy_offload` flips; while the flag is off the
//! controller does nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use co_api::StorageVendorProduct;
use co_api::contract::flags::{self, Flag};
use co_api::forklift::{StorageMap, StoragePair};
use co_storage::VendorSettings;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use crate::conditions::{self, Condition, category};
use crate::{Context, Error, Observed};

/// A mapping's storage Secret does not exist.
pub const SECRET_NOT_FOUND: &str = "OffloadStorageSecretNotFound";
/// A mapping's storage Secret lacks a key the vendor needs (or holds an unusable value).
pub const SECRET_INCOMPLETE: &str = "OffloadStorageSecretIncomplete";
/// A mapping names a storage product that is not one of the nine.
pub const VENDOR_UNKNOWN: &str = "OffloadStorageVendorUnknown";
/// Every offloaded mapping passed the checks.
pub const OFFLOAD_READY: &str = "OffloadConfigValid";
const OWNED: &[&str] = &[
    SECRET_NOT_FOUND,
    SECRET_INCOMPLETE,
    VENDOR_UNKNOWN,
    OFFLOAD_READY,
];

/// What one reconcile of a StorageMap did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageMapOutcome {
    /// `feature_copy_offload` is off: nothing was looked at.
    Disabled,
    /// The map has no offloaded mapping: no condition is written.
    NoOffload,
    /// The offloaded mappings were checked; these are the problems found (empty: all fine).
    Checked(Vec<MappingProblem>),
}

/// One problem of one offloaded mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingProblem {
    /// Position of the mapping in `spec.map`.
    pub index: usize,
    /// The source datastore as the mapping names it (id, else name).
    pub datastore: String,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What is wrong with a mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// `secretRef` is empty or cannot be the name of a Secret (e.g. the seed's placeholder
    /// `SECRET_WITH_ONTAP_CREDS` left in).
    InvalidSecretRef {
        /// The name given.
        given: String,
    },
    /// `secretRef` names a Secret that does not exist.
    SecretNotFound {
        /// Namespace looked in.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// The Secret lacks keys or holds unusable values; one entry per key, naming it.
    SecretIncomplete {
        /// The Secret's name.
        name: String,
        /// `KEY: what is wrong`, one per key.
        problems: Vec<String>,
    },
    /// `storageVendorProduct` is not one of the nine names.
    UnknownVendor {
        /// The name given.
        given: String,
    },
}

impl MappingProblem {
    fn condition_type(&self) -> &'static str {
        match self.kind {
            ProblemKind::InvalidSecretRef { .. } | ProblemKind::SecretNotFound { .. } => {
                SECRET_NOT_FOUND
            }
            ProblemKind::SecretIncomplete { .. } => SECRET_INCOMPLETE,
            ProblemKind::UnknownVendor { .. } => VENDOR_UNKNOWN,
        }
    }

    /// `map[<index>] (datastore <id>): <what is wrong>`, the condition's item.
    fn item(&self) -> String {
        let what = match &self.kind {
            ProblemKind::InvalidSecretRef { given } if given.is_empty() => {
                "offloadPlugin.vsphereXcopyConfig.secretRef is empty".to_owned()
            }
            ProblemKind::InvalidSecretRef { given } => format!(
                "secretRef {given:?} cannot name a Secret (lowercase letters, digits, '-' and \
                 '.' only)"
            ),
            ProblemKind::SecretNotFound { namespace, name } => {
                format!("Secret {namespace}/{name} does not exist")
            }
            ProblemKind::SecretIncomplete { name, problems } => {
                format!("Secret {name}: {}", problems.join("; "))
            }
            ProblemKind::UnknownVendor { given } => format!(
                "storageVendorProduct {given:?} is not one of {}",
                StorageVendorProduct::valid_names()
            ),
        };
        format!("map[{}] (datastore {}): {what}", self.index, self.datastore)
    }
}

/// Runs the StorageMap controller until `shutdown` resolves.
pub(crate) async fn run(
    context: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let maps = context.watched::<StorageMap>();
    let secrets = context.watched::<Secret>();
    let controller = Controller::new(maps, watcher::Config::default());
    let known_maps = controller.store();
    let results = controller
        .watches(
            secrets,
            watcher::Config::default(),
            move |secret: Secret| {
                let namespace = secret.namespace().unwrap_or_default();
                let name = secret.name_any();
                known_maps
                    .state()
                    .into_iter()
                    .filter(|map| references_secret(map, &namespace, &name))
                    .map(|map| ObjectRef::from_obj(&*map))
                    .collect::<Vec<_>>()
            },
        )
        .reconcile_all_on(context.flag.changes())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context);
    crate::log_reconcile_errors(results, "storage map").await;
}

/// Where the storage Secrets of `map` live: the source provider's namespace, as Forklift reads
/// them, else the map's own.
pub(crate) fn secret_namespace(map: &StorageMap) -> String {
    map.spec
        .provider
        .source
        .as_ref()
        .and_then(|source| source.namespace.clone())
        .filter(|namespace| !namespace.is_empty())
        .unwrap_or_else(|| map.namespace().unwrap_or_default())
}

pub(crate) fn offloaded(pair: &StoragePair) -> Option<&co_api::forklift::VSphereXcopyPluginConfig> {
    pair.offload_plugin
        .as_ref()
        .and_then(|plugin| plugin.vsphere_xcopy_config.as_ref())
}

fn references_secret(map: &StorageMap, namespace: &str, name: &str) -> bool {
    secret_namespace(map) == namespace
        && map
            .spec
            .map
            .iter()
            .filter_map(offloaded)
            .any(|config| config.secret_ref.trim() == name)
}

async fn reconcile(map: Arc<StorageMap>, context: Arc<Context>) -> Result<Action, Error> {
    let outcome = reconcile_map(&map, &context).await?;
    context.observe(Observed::StorageMap {
        namespace: map.namespace().unwrap_or_default(),
        name: map.name_any(),
        outcome,
    });
    Ok(Action::await_change())
}

async fn reconcile_map(map: &StorageMap, context: &Context) -> Result<StorageMapOutcome, Error> {
    if !context.flag.enabled() {
        return Ok(StorageMapOutcome::Disabled);
    }
    if map.metadata.deletion_timestamp.is_some() {
        return Ok(StorageMapOutcome::NoOffload);
    }
    let namespace = secret_namespace(map);
    let secrets: Api<Secret> = Api::namespaced(context.client.clone(), &namespace);
    let mut problems = Vec::new();
    let mut any_offloaded = false;
    for (index, pair) in map.spec.map.iter().enumerate() {
        let Some(config) = offloaded(pair) else {
            continue;
        };
        any_offloaded = true;
        let problem = |kind| MappingProblem {
            index,
            datastore: datastore_of(pair),
            kind,
        };
        let vendor = match config.vendor() {
            Ok(vendor) => Some(vendor),
            Err(unknown) => {
                problems.push(problem(ProblemKind::UnknownVendor {
                    given: unknown.given,
                }));
                None
            }
        };
        let secret_name = config.secret_ref.trim();
        if !is_object_name(secret_name) {
            problems.push(problem(ProblemKind::InvalidSecretRef {
                given: secret_name.to_owned(),
            }));
            continue;
        }
        let secret = secrets
            .get_opt(secret_name)
            .await
            .map_err(|source| Error::Read {
                what: format!("Secret {namespace}/{secret_name}"),
                source,
            })?;
        let Some(secret) = secret else {
            problems.push(problem(ProblemKind::SecretNotFound {
                namespace: namespace.clone(),
                name: secret_name.to_owned(),
            }));
            continue;
        };
        if let Some(vendor) = vendor {
            let missing = check_secret(vendor, secret.data.as_ref().unwrap_or(&BTreeMap::new()));
            if !missing.is_empty() {
                problems.push(problem(ProblemKind::SecretIncomplete {
                    name: secret_name.to_owned(),
                    problems: missing,
                }));
            }
        }
    }
    if !any_offloaded {
        report(context, map, &[]).await?;
        return Ok(StorageMapOutcome::NoOffload);
    }
    if !problems.is_empty() {
        tracing::warn!(
            storage_map = %map.name_any(),
            problems = problems.len(),
            "the storage map's offload configuration has problems"
        );
    }
    report(context, map, &conditions_for(&problems)).await?;
    Ok(StorageMapOutcome::Checked(problems))
}

/// Whether `name` can be an object name (a DNS-1123 subdomain).
pub(crate) fn is_object_name(name: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.starts_with(alphanumeric)
        && name.ends_with(alphanumeric)
        && name
            .chars()
            .all(|c| alphanumeric(c) || c == '-' || c == '.')
}

pub(crate) fn datastore_of(pair: &StoragePair) -> String {
    pair.source
        .id
        .clone()
        .or_else(|| pair.source.name.clone())
        .unwrap_or_else(|| "(none)".to_owned())
}

/// One condition per kind of problem, each item naming a mapping; or the all-clear.
fn conditions_for(problems: &[MappingProblem]) -> Vec<Condition> {
    if problems.is_empty() {
        return vec![Condition {
            type_: OFFLOAD_READY.into(),
            category: category::ADVISORY,
            reason: "OffloadConfigValidated".into(),
            message: "Every mapping with copy offload names a known storage product and a \
                      Secret holding what that product needs (checked without connecting to \
                      the array)."
                .into(),
            items: vec![],
        }];
    }
    let mut by_type: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for problem in problems {
        by_type
            .entry(problem.condition_type())
            .or_default()
            .push(problem.item());
    }
    by_type
        .into_iter()
        .map(|(type_, items)| {
            let (reason, advice) = match type_ {
                SECRET_NOT_FOUND => (
                    "NotFound",
                    "Create the Secret in the source provider's namespace, or correct \
                     offloadPlugin.vsphereXcopyConfig.secretRef.",
                ),
                SECRET_INCOMPLETE => (
                    "MissingKeys",
                    "Add the missing keys to the Secret (the populator reads them as \
                     environment variables of the same names).",
                ),
                _ => (
                    "NotSupported",
                    "Set offloadPlugin.vsphereXcopyConfig.storageVendorProduct to one of the \
                     supported names (exact spelling).",
                ),
            };
            Condition {
                type_: type_.into(),
                category: category::CRITICAL,
                reason: reason.into(),
                message: format!(
                    "Copy offload cannot run for {} of this map: {} {advice}",
                    if items.len() == 1 {
                        "a mapping".to_owned()
                    } else {
                        format!("{} mappings", items.len())
                    },
                    items.join(" | ")
                ),
                items,
            }
        })
        .collect()
}

/// The problems of a storage Secret for `vendor`, one `KEY: what` per key; empty when the
/// populator would accept it. Mirrors what `copy-offload populate` checks before contacting the
/// array: the management address, the credentials the vendor authenticates with, and the
/// vendor's own keys.
pub fn check_secret(
    vendor: StorageVendorProduct,
    data: &BTreeMap<String, ByteString>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut not_text = Vec::new();
    let value = |name: &str| -> Option<String> {
        let bytes = data.get(name)?;
        match std::str::from_utf8(&bytes.0) {
            Ok(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
            Ok(_) => None,
            Err(_) => None,
        }
    };
    for (name, bytes) in data {
        if std::str::from_utf8(&bytes.0).is_err() {
            not_text.push(format!("{name}: is not valid UTF-8 text"));
        }
    }
    let lookup_env = |flag: &Flag| -> Option<String> {
        let variable = flag.env_name();
        value(variable).or_else(|| co_api::secret::storage_key_alias(variable).and_then(value))
    };
    let named = |flag: &Flag| match co_api::secret::storage_key_alias(flag.env_name()) {
        Some(alias) => format!("{} (or {alias})", flag.env_name()),
        None => flag.env_name().to_owned(),
    };
    if lookup_env(&flags::STORAGE_HOSTNAME).is_none() {
        problems.push(format!(
            "{}: missing; expected the array's management address",
            named(&flags::STORAGE_HOSTNAME)
        ));
    }
    let username = lookup_env(&flags::STORAGE_USERNAME);
    let password = lookup_env(&flags::STORAGE_PASSWORD);
    let token = lookup_env(&flags::STORAGE_TOKEN);
    let takes_token = VendorSettings::info(vendor).takes_token;
    let has_token = takes_token && token.is_some();
    if !has_token {
        let or_token = if takes_token {
            format!(" (or give {} instead)", flags::STORAGE_TOKEN.env_name())
        } else {
            String::new()
        };
        if username.is_none() {
            problems.push(format!(
                "{}: missing; expected the array user name{or_token}",
                named(&flags::STORAGE_USERNAME)
            ));
        }
        if password.is_none() {
            problems.push(format!(
                "{}: missing; expected the array password{or_token}",
                named(&flags::STORAGE_PASSWORD)
            ));
        }
    }
    if let Err(vendor_problems) = VendorSettings::read(vendor, &lookup_env) {
        problems.extend(
            vendor_problems
                .into_iter()
                .map(|problem| format!("{}: {}", problem.flag.env_name(), problem.message)),
        );
    }
    problems.extend(not_text);
    problems
}

async fn report(context: &Context, map: &StorageMap, wanted: &[Condition]) -> Result<(), Error> {
    let resource = ApiResource::erase::<StorageMap>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(
        context.client.clone(),
        &map.namespace().unwrap_or_default(),
        &resource,
    );
    let current = api.get(&map.name_any()).await.map_err(Error::Status)?;
    conditions::replace_owned(&api, &current, OWNED, wanted)
        .await
        .map_err(Error::Status)?;
    Ok(())
}

fn error_policy(map: Arc<StorageMap>, error: &Error, _context: Arc<Context>) -> Action {
    tracing::warn!(storage_map = %map.name_any(), %error, "storage map reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn trident_style_aliases_satisfy_the_shared_keys() {
        let secret = data(&[
            ("management_address", "ontap.example.com"),
            ("username", "admin"),
            ("password", "pw"),
        ]);
        assert_eq!(
            check_secret(StorageVendorProduct::Ontap, &secret),
            Vec::<String>::new()
        );
    }

    #[test]
    fn missing_keys_are_named_with_their_aliases_and_vendor_keys_checked() {
        let problems = check_secret(StorageVendorProduct::Ontap, &data(&[("username", "a")]));
        assert_eq!(
            problems,
            vec![
                "STORAGE_HOSTNAME (or management_address): missing; expected the array's \
                 management address"
                    .to_owned(),
                "STORAGE_PASSWORD (or password): missing; expected the array password".to_owned(),
            ]
        );
        let powermax = check_secret(
            StorageVendorProduct::PowerMax,
            &data(&[
                ("STORAGE_HOSTNAME", "u"),
                ("STORAGE_USERNAME", "a"),
                ("STORAGE_PASSWORD", "b"),
            ]),
        );
        assert!(
            powermax
                .iter()
                .any(|p| p.starts_with("POWERMAX_SYMMETRIX_ID:")),
            "{powermax:?}"
        );
    }

    #[test]
    fn a_token_is_enough_only_for_vendors_that_take_one() {
        let token = data(&[
            ("STORAGE_HOSTNAME", "a"),
            ("STORAGE_TOKEN", "t"),
            ("PURE_CLUSTER_PREFIX", "px"),
        ]);
        assert!(check_secret(StorageVendorProduct::PureFlashArray, &token).is_empty());
        assert_eq!(check_secret(StorageVendorProduct::Ontap, &token).len(), 2);
    }
}
