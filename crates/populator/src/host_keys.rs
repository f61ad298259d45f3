//! The cluster-wide record of ESXi SSH host keys behind trust on first use: the ConfigMap
//! [`HOST_KEYS_CONFIG_MAP`] in the host lease namespace, one data entry per `host:port` (named by
//! [`entry_name`]) holding the host's OpenSSH public key line(s).
//!
//! Every populator pod shares it, so a host's key is trusted once for the whole cluster and every
//! later run requires it, even though each pod starts with an empty temporary directory. Writes
//! never overwrite: the object is created (an `AlreadyExists` answer means another pod was first,
//! so it is read again) or updated with the `resourceVersion` it was read at (a `Conflict` answer
//! means it changed meanwhile, so it is read again); an entry that exists is never replaced. Two
//! pods racing to record different keys therefore end with exactly one recorded, and the other
//! pod refuses its host. Host keys are public: nothing secret is stored or logged.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use co_esxi::host_keys::{HostKeyStore, HostKeyStoreError, PublicKey, fingerprint};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tracing::{debug, info};

use crate::lease::is_transient;

/// Name of the ConfigMap holding the host keys (compatibility contract: RBAC and pre-seeding
/// refer to it).
pub use co_api::contract::names::HOST_KEYS_CONFIG_MAP;

/// Reads and conditional writes before `learn` gives up on a ConfigMap that keeps changing.
const LEARN_ATTEMPTS: u32 = 8;

/// Longest ConfigMap data key the API server accepts.
const MAX_ENTRY_NAME: usize = 253;

/// The data key of `host:port`. ConfigMap keys allow only `[-._a-zA-Z0-9]`, so the host (in lower
/// case, as host names compare) keeps its letters, digits, `.` and `-`, every other byte becomes
/// `_` and two lower-case hex digits (`:` is `_3a`), and `_<port>` follows:
/// `esxi-1.example.com` port 22 is `esxi-1.example.com_22`, `fe80::1` port 2222 is
/// `fe80_3a_3a1_2222`. [`parse_entry_name`] reverses it.
pub fn entry_name(host: &str, port: u16) -> String {
    let mut name = String::with_capacity(host.len() + 6);
    for byte in host.to_ascii_lowercase().bytes() {
        if byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'.' || byte == b'-' {
            name.push(char::from(byte));
        } else {
            name.push_str(&format!("_{byte:02x}"));
        }
    }
    name.push_str(&format!("_{port}"));
    name
}

/// The `(host, port)` an [`entry_name`] was made from; `None` for any other text.
pub fn parse_entry_name(name: &str) -> Option<(String, u16)> {
    let (encoded, port) = name.rsplit_once('_')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port = port.parse().ok()?;
    let mut host = Vec::with_capacity(encoded.len());
    let mut bytes = encoded.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'_' {
            let hex = [bytes.next()?, bytes.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            if hex.bytes().any(|b| b.is_ascii_uppercase()) {
                return None;
            }
            host.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            host.push(byte);
        }
    }
    let host = String::from_utf8(host).ok()?;
    (entry_name(&host, port) == name).then_some((host, port))
}

/// Trust on first use shared by every populator through [`HOST_KEYS_CONFIG_MAP`].
#[derive(Clone)]
pub struct KubeHostKeyStore {
    api: Api<ConfigMap>,
    namespace: String,
}

impl fmt::Debug for KubeHostKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeHostKeyStore")
            .field("namespace", &self.namespace)
            .field("config_map", &HOST_KEYS_CONFIG_MAP)
            .finish()
    }
}

impl KubeHostKeyStore {
    /// The store in `namespace` (the host lease namespace).
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
        }
    }

    fn entry(&self, host: &str, port: u16) -> Result<String, HostKeyStoreError> {
        let name = entry_name(host, port);
        if name.len() > MAX_ENTRY_NAME {
            return Err(HostKeyStoreError::permanent(format!(
                "the host name {host:?} is too long for a ConfigMap key ({} > {MAX_ENTRY_NAME} \
                 characters once encoded); reach the host by its IP address",
                name.len()
            )));
        }
        Ok(name)
    }

    fn api_error(&self, action: &str, error: kube::Error) -> HostKeyStoreError {
        let forbidden =
            matches!(&error, kube::Error::Api(status) if status.code == 401 || status.code == 403);
        let mut message = format!(
            "{action} ConfigMap {}/{HOST_KEYS_CONFIG_MAP} failed: {error}",
            self.namespace
        );
        if forbidden {
            message.push_str(&format!(
                "; the populator's service account needs get, create and update on configmaps \
                 in namespace {} (HOST_LEASE_NAMESPACE)",
                self.namespace
            ));
        }
        if is_transient(&error) {
            HostKeyStoreError::transient(message)
        } else {
            HostKeyStoreError::permanent(message)
        }
    }

    /// The keys in entry `entry` of `config_map`.
    fn recorded(
        &self,
        config_map: &ConfigMap,
        entry: &str,
    ) -> Result<Vec<PublicKey>, HostKeyStoreError> {
        let Some(value) = config_map.data.as_ref().and_then(|data| data.get(entry)) else {
            return Ok(Vec::new());
        };
        value
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                PublicKey::from_openssh(line).map_err(|err| {
                    HostKeyStoreError::permanent(format!(
                        "entry {entry} of ConfigMap {}/{HOST_KEYS_CONFIG_MAP} holds {line:?}, which \
                         is not an OpenSSH public key line ({err}); correct it (`<key type> <base64 \
                         key>`, one per line) or delete the entry to trust the host's key on next use",
                        self.namespace
                    ))
                })
            })
            .collect()
    }
}

#[async_trait]
impl HostKeyStore for KubeHostKeyStore {
    async fn known(&self, host: &str, port: u16) -> Result<Vec<PublicKey>, HostKeyStoreError> {
        let entry = self.entry(host, port)?;
        match self.api.get_opt(HOST_KEYS_CONFIG_MAP).await {
            Ok(None) => Ok(Vec::new()),
            Ok(Some(config_map)) => self.recorded(&config_map, &entry),
            Err(error) => Err(self.api_error("reading", error)),
        }
    }

    async fn learn(
        &self,
        host: &str,
        port: u16,
        key: &PublicKey,
    ) -> Result<Vec<PublicKey>, HostKeyStoreError> {
        let entry = self.entry(host, port)?;
        let line = key
            .to_openssh()
            .map_err(|err| HostKeyStoreError::permanent(format!("cannot encode the key: {err}")))?;
        for attempt in 0..LEARN_ATTEMPTS {
            let current = self
                .api
                .get_opt(HOST_KEYS_CONFIG_MAP)
                .await
                .map_err(|error| self.api_error("reading", error))?;
            let written = match current {
                None => {
                    let config_map = ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(HOST_KEYS_CONFIG_MAP.into()),
                            labels: Some(BTreeMap::from([(
                                "app.kubernetes.io/managed-by".into(),
                                "copy-offload".into(),
                            )])),
                            ..ObjectMeta::default()
                        },
                        data: Some(BTreeMap::from([(entry.clone(), line.clone())])),
                        ..ConfigMap::default()
                    };
                    self.api
                        .create(&PostParams::default(), &config_map)
                        .await
                        .map_err(|error| ("creating", error))
                }
                Some(mut config_map) => {
                    let recorded = self.recorded(&config_map, &entry)?;
                    if !recorded.is_empty() {
                        debug!(host, port, "host key recorded by another populator first");
                        return Ok(recorded);
                    }
                    config_map
                        .data
                        .get_or_insert_with(BTreeMap::new)
                        .insert(entry.clone(), line.clone());
                    // The resourceVersion read above makes this a compare-and-swap.
                    self.api
                        .replace(HOST_KEYS_CONFIG_MAP, &PostParams::default(), &config_map)
                        .await
                        .map_err(|error| ("updating", error))
                }
            };
            match written {
                Ok(_) => {
                    info!(
                        host,
                        port,
                        fingerprint = %fingerprint(key),
                        config_map = %format!("{}/{HOST_KEYS_CONFIG_MAP}", self.namespace),
                        entry = %entry,
                        "recorded the ESXi host key for the cluster"
                    );
                    return Ok(vec![key.clone()]);
                }
                Err((_, kube::Error::Api(status)))
                    if status.is_already_exists() || status.is_conflict() =>
                {
                    debug!(
                        host,
                        port, attempt, "host key record changed meanwhile; reading it again"
                    );
                }
                Err((action, error)) => return Err(self.api_error(action, error)),
            }
        }
        Err(HostKeyStoreError::transient(format!(
            "ConfigMap {}/{HOST_KEYS_CONFIG_MAP} kept changing during {LEARN_ATTEMPTS} attempts to \
             record the key of {host}:{port}",
            self.namespace
        )))
    }

    fn record_of(&self, host: &str, port: u16) -> String {
        format!(
            "entry {} of ConfigMap {}/{HOST_KEYS_CONFIG_MAP}",
            entry_name(host, port),
            self.namespace
        )
    }

    fn retrust_hint(&self, host: &str, port: u16) -> String {
        format!(
            "delete that entry (kubectl -n {} patch configmap {HOST_KEYS_CONFIG_MAP} --type=json \
             -p '[{{\"op\":\"remove\",\"path\":\"/data/{}\"}}]') so the next run records the new key, \
             or put the new key line in it",
            self.namespace,
            entry_name(host, port)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_are_valid_config_map_keys_and_reversible() {
        let cases = [
            ("10.0.0.1", 22, "10.0.0.1_22"),
            ("ESXi-1.Example.com", 22, "esxi-1.example.com_22"),
            ("fe80::1", 2222, "fe80_3a_3a1_2222"),
            ("fe80::1%eth0", 22, "fe80_3a_3a1_25eth0_22"),
            ("host_name", 65535, "host_5fname_65535"),
        ];
        for (host, port, expected) in cases {
            let name = entry_name(host, port);
            assert_eq!(name, expected);
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)),
                "{name}"
            );
            assert_eq!(
                parse_entry_name(&name),
                Some((host.to_ascii_lowercase(), port))
            );
        }
        for not_ours in ["10.0.0.1", "a_", "a_x", "a_3_22", "a_3A_22", "a_99999"] {
            assert_eq!(parse_entry_name(not_ours), None, "{not_ours}");
        }
    }
}
