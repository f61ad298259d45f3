//! Cluster mode: the settings `populate` would get for a migration, read from Forklift's own
//! objects — the vSphere `Provider` (vCenter URL, its credentials Secret, the clone method) and the
//! `StorageMap`'s `offloadPlugin.vsphereXcopyConfig` (the array's vendor and Secret), and for the
//! SSH method the Provider's key pair (the Secrets the provider controller writes) — as `populate`
//! flags, so they are checked by the same validation as a Secret given by hand.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use co_api::CloneMethod;
use co_api::contract::flags::{self, Flag};
use co_api::forklift::{Provider, StorageMap, VSphereXcopyPluginConfig};
use co_planner::ssh_keys;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

/// A namespaced object named `namespace/name` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectName {
    pub namespace: String,
    pub name: String,
}

impl std::str::FromStr for ObjectName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once('/') {
            Some((namespace, name))
                if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
            {
                Ok(ObjectName {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(format!("{text:?} is not NAMESPACE/NAME")),
        }
    }
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why the settings could not be read from the cluster. Never carries a credential.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read {what} {object}: {source}")]
    Read {
        what: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// A client from `kubeconfig`, or else the in-cluster or `~/.kube/config` configuration.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> Result<Client, ClusterError> {
    let unusable =
        |e: String| ClusterError::Invalid(format!("no usable Kubernetes configuration: {e}"));
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| unusable(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| unusable(format!("{}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| unusable(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| unusable(e.to_string()))
}

/// Provider Secret keys (Forklift's) and the `populate` setting each one gives.
const PROVIDER_SECRET_KEYS: &[(&str, Flag)] = &[
    ("user", flags::VSPHERE_USERNAME),
    ("password", flags::VSPHERE_PASSWORD),
    ("insecureSkipVerify", flags::VSPHERE_INSECURE),
    ("cacert", flags::VSPHERE_CA_CERT),
    ("ca.crt", flags::VSPHERE_CA_CERT),
];

/// The `populate` flags (`--name=value`) for the migration `provider` and `storage_map` describe.
/// The StorageMap's offload Secret gives the array settings (its keys are `populate`'s
/// environment variables, as the populator pod receives them); `offload_secret` picks one when
/// the map's pairs name several. The Provider gives vCenter and the clone method, over any
/// `GOVMOMI_*` key of the offload Secret.
pub async fn populate_flags(
    client: &Client,
    provider: &ObjectName,
    storage_map: &ObjectName,
    offload_secret: Option<&str>,
) -> Result<Vec<String>, ClusterError> {
    let read = |what: &'static str, object: String| {
        move |source| ClusterError::Read {
            what,
            object,
            source,
        }
    };
    let map = Api::<StorageMap>::namespaced(client.clone(), &storage_map.namespace)
        .get(&storage_map.name)
        .await
        .map_err(read("StorageMap", storage_map.to_string()))?;
    let config = offload_config(&map.spec.map, storage_map, offload_secret)?;
    let provider_object = Api::<Provider>::namespaced(client.clone(), &provider.namespace)
        .get(&provider.name)
        .await
        .map_err(read("Provider", provider.to_string()))?;
    let secrets = |namespace: &str| Api::<Secret>::namespaced(client.clone(), namespace);

    let mut settings: BTreeMap<&'static str, String> = BTreeMap::new();
    let offload_name = format!("{}/{}", storage_map.namespace, config.secret_ref);
    let offload = secrets(&storage_map.namespace)
        .get(&config.secret_ref)
        .await
        .map_err(read("the offload plugin's Secret", offload_name.clone()))?;
    for (key, value) in secret_strings(&offload, &offload_name)? {
        if let Some(flag) = flags::by_env(&key) {
            settings.insert(flag.name, value);
        }
    }
    settings.insert(
        flags::STORAGE_VENDOR_PRODUCT.name,
        config.storage_vendor_product.clone(),
    );

    let spec = &provider_object.spec;
    let url = spec.url.clone().filter(|u| !u.is_empty()).ok_or_else(|| {
        ClusterError::Invalid(format!(
            "Provider {provider} has no spec.url: give the vCenter SDK URL there"
        ))
    })?;
    settings.insert(flags::VSPHERE_HOSTNAME.name, url);
    let reference = spec
        .secret
        .as_ref()
        .and_then(|s| s.name.clone())
        .ok_or_else(|| {
            ClusterError::Invalid(format!(
                "Provider {provider} names no credentials Secret (spec.secret)"
            ))
        })?;
    let secret_namespace = spec
        .secret
        .as_ref()
        .and_then(|s| s.namespace.clone())
        .unwrap_or_else(|| provider.namespace.clone());
    let provider_secret_name = format!("{secret_namespace}/{reference}");
    let credentials = secrets(&secret_namespace)
        .get(&reference)
        .await
        .map_err(read("the Provider's Secret", provider_secret_name.clone()))?;
    let credentials = secret_strings(&credentials, &provider_secret_name)?;
    for (key, flag) in PROVIDER_SECRET_KEYS {
        if let Some(value) = credentials.get(*key) {
            settings.insert(flag.name, value.clone());
        }
    }
    let method = spec.esxi_clone_method().map_err(|e| {
        ClusterError::Invalid(format!(
            "Provider {provider}: settings.esxiCloneMethod: {e}"
        ))
    })?;
    settings.insert(flags::ESXI_CLONE_METHOD.name, method.as_str().to_owned());
    if method == CloneMethod::Ssh {
        let keys = [
            (
                ssh_keys::private_secret_name(&provider.name),
                ssh_keys::PRIVATE_KEY_FIELD,
                flags::SSH_PRIVATE_KEY,
            ),
            (
                ssh_keys::public_secret_name(&provider.name),
                ssh_keys::PUBLIC_KEY_FIELD,
                flags::SSH_PUBLIC_KEY,
            ),
        ];
        for (name, field, flag) in keys {
            let object = format!("{}/{name}", provider.namespace);
            let secret = secrets(&provider.namespace)
                .get(&name)
                .await
                .map_err(read("the Provider's SSH key Secret", object.clone()))?;
            let value = secret_strings(&secret, &object)?
                .remove(field)
                .ok_or_else(|| {
                    ClusterError::Invalid(format!(
                        "Secret {object} has no {field}: the provider controller writes it"
                    ))
                })?;
            // `populate` takes the keys base64-encoded, as the migration Secret carries them.
            settings.insert(flag.name, BASE64.encode(value.trim_end()));
        }
    }
    Ok(settings
        .into_iter()
        .map(|(name, value)| format!("--{name}={value}"))
        .collect())
}

/// The one `vsphereXcopyConfig` of the map's pairs (all pairs sharing it), or the one whose
/// Secret is `wanted`.
fn offload_config<'a>(
    pairs: &'a [co_api::forklift::StoragePair],
    storage_map: &ObjectName,
    wanted: Option<&str>,
) -> Result<&'a VSphereXcopyPluginConfig, ClusterError> {
    let mut configs: Vec<&VSphereXcopyPluginConfig> = pairs
        .iter()
        .filter_map(|p| p.offload_plugin.as_ref()?.vsphere_xcopy_config.as_ref())
        .filter(|c| wanted.is_none_or(|w| c.secret_ref == w))
        .collect();
    configs.sort_by(|a, b| a.secret_ref.cmp(&b.secret_ref));
    configs.dedup_by(|a, b| a.secret_ref == b.secret_ref);
    let names = |configs: &[&VSphereXcopyPluginConfig]| {
        configs
            .iter()
            .map(|c| c.secret_ref.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match configs.as_slice() {
        [one] => Ok(one),
        [] => Err(ClusterError::Invalid(match wanted {
            Some(name) => {
                format!("no storage pair of StorageMap {storage_map} offloads with Secret {name}")
            }
            None => format!(
                "StorageMap {storage_map} has no storage pair with offloadPlugin.vsphereXcopyConfig: \
                 nothing is copied by offload under it"
            ),
        })),
        many => Err(ClusterError::Invalid(format!(
            "StorageMap {storage_map} offloads to several arrays (Secrets {}); preflight checks one \
             per run: give --offload-secret with one of them",
            names(many)
        ))),
    }
}

/// A Secret's `data` (and `stringData`) as text; a value that is not UTF-8 is an error naming
/// the key, never the value.
fn secret_strings(secret: &Secret, name: &str) -> Result<BTreeMap<String, String>, ClusterError> {
    let mut out = BTreeMap::new();
    for (key, bytes) in secret.data.iter().flatten() {
        let value = String::from_utf8(bytes.0.clone()).map_err(|_| {
            ClusterError::Invalid(format!("Secret {name}: key {key} is not UTF-8 text"))
        })?;
        out.insert(key.clone(), value);
    }
    for (key, value) in secret.string_data.iter().flatten() {
        out.insert(key.clone(), value.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_namespace_slash_name() {
        let name: ObjectName = "openshift-mtv/vcenter".parse().unwrap();
        assert_eq!(name.to_string(), "openshift-mtv/vcenter");
        for wrong in ["vcenter", "/vcenter", "ns/", "a/b/c"] {
            assert!(wrong.parse::<ObjectName>().is_err(), "{wrong}");
        }
    }
}
