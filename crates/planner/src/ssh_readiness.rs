//! SSH readiness of a vSphere Provider whose `esxiCloneMethod` is `ssh`: every ESXi host of its
//! vCenter is probed with the Provider's private key (several at a time, each bounded by the SSH
//! timeout), and the result is written as Forklift's `SSHReady` / `SSHNotReady` conditions — the
//! failing hosts, why, and the exact `authorized_keys` line(s) to add.
//!
//! The probe is the upstream one (`DS=;CMD=status test-task-id`, answered `SSH_OK`): it reads
//! nothing and changes nothing on the host, whichever key line answers it. A host carrying
//! Forklift's `sh -c` routing line, the seed's `.py` line or copy-offload's line counts as ready;
//! so does a host whose `.py` line names a wrapper not yet on the datastore (the populator places
//! it before each copy). A key accepted without a forced command that answers the probe does
//! not. Host keys are trusted on first use for the life of the process (a host whose key changes
//! is reported, not probed).
//!
//! A Provider is reconciled on every change of its status too (ours and Forklift's), so the
//! result of a check is kept and reused until the probe interval has passed, the Provider's spec
//! changed, or one of its key Secrets changed (touching one re-probes at once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use co_api::forklift::Provider;
use co_esxi::EsxiError;
use co_esxi::assets::SSH_WRAPPER_FILE_NAME;
use co_esxi::guidance::{ESXI_ROOT_AUTHORIZED_KEYS, restricted_key_line};
use co_esxi::host_keys::{HostKeyStore, HostKeyStoreError, PublicKey};
use co_esxi::protocol::{PROBE_REPLY, WrapperCommand};
use co_esxi::ssh::{CommandOutput, HostKeyPolicy, SshPrivateKey, SshSession, SshSettings};
use co_esxi::vsphere::EsxiHost;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use crate::conditions::{Condition, category};
use crate::ssh_keys;

/// Condition type listing the hosts that accept the Provider's key (Forklift's name).
pub const SSH_READY: &str = "SSHReady";
/// Condition type listing the hosts that do not, with what to do (Forklift's name).
pub const SSH_NOT_READY: &str = "SSHNotReady";
/// The condition types this module writes.
pub const READINESS_CONDITIONS: &[&str] = &[SSH_READY, SSH_NOT_READY];
/// How many hosts are probed at the same time (Forklift probes one after the other, 30 s each).
const PARALLEL_PROBES: usize = 8;
/// Bounds the vCenter calls of one readiness check.
const VCENTER_TIMEOUT: Duration = Duration::from_secs(60);

/// How hosts are probed.
#[derive(Clone, Debug)]
pub struct ProbeSettings {
    /// The port ESXi's SSH service listens on.
    pub port: u16,
    /// Bounds connect and authentication, and then the probe, of each host.
    pub timeout: Duration,
    /// Host keys seen so far.
    pub host_keys: Arc<MemoryHostKeys>,
}

impl ProbeSettings {
    /// Port `port`, the SSH method's default timeout, an empty host-key record.
    pub fn new(port: u16) -> Self {
        Self {
            port,
            timeout: co_esxi::ssh::DEFAULT_SSH_TIMEOUT,
            host_keys: Arc::new(MemoryHostKeys::default()),
        }
    }
}

/// The outcome of probing one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostProbe {
    /// The host as the inventory lists it.
    pub host: EsxiHost,
    /// `None` when it answered the probe; else why not.
    pub failure: Option<String>,
}

impl HostProbe {
    /// Forklift's item form, `id|name|ip`.
    fn item(&self) -> String {
        format!("{}|{}|{}", self.host.id, self.host.name, self.host.address)
    }
}

/// What one readiness check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Every host was probed; sorted by host name.
    Probed(Vec<HostProbe>),
    /// The hosts could not be listed (or the key read); nothing was probed.
    NotChecked {
        /// CamelCase reason for the condition.
        reason: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

impl Readiness {
    /// Names of the hosts that did not answer the probe.
    pub fn failing_hosts(&self) -> Vec<&str> {
        self.hosts_where(false)
    }

    /// Names of the hosts that answered the probe.
    pub fn ready_hosts(&self) -> Vec<&str> {
        self.hosts_where(true)
    }

    fn hosts_where(&self, ready: bool) -> Vec<&str> {
        match self {
            Readiness::Probed(probes) => probes
                .iter()
                .filter(|p| p.failure.is_none() == ready)
                .map(|p| p.host.name.as_str())
                .collect(),
            Readiness::NotChecked { .. } => Vec::new(),
        }
    }
}

/// The result of [`Prober::check`].
#[derive(Clone, Debug)]
pub struct Checked {
    /// What the hosts answered (possibly in an earlier check).
    pub readiness: Readiness,
    /// The conditions to write on the Provider.
    pub conditions: Vec<Condition>,
    /// Whether this check probed the hosts, rather than reusing an earlier check's result.
    pub probed: bool,
}

/// An earlier check of one Provider.
struct LastCheck {
    /// The Provider's generation and its key Secrets' resource versions at the time.
    fingerprint: String,
    at: Instant,
    checked: Checked,
}

/// Probes the hosts of Providers, keeping each Provider's last result.
pub struct Prober {
    settings: ProbeSettings,
    /// Probes of one Provider are not repeated before this has passed (unless its spec or keys
    /// changed).
    interval: Duration,
    last: Mutex<HashMap<String, LastCheck>>,
}

impl Prober {
    /// A prober with `settings`, re-probing a Provider's hosts after `interval` at the latest.
    pub fn new(settings: ProbeSettings, interval: Duration) -> Self {
        Self {
            settings,
            interval,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// How long until `provider`'s hosts are due to be probed again.
    pub fn due_in(&self, provider: &Provider) -> Duration {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.get(&provider_key(provider))
            .map_or(Duration::ZERO, |check| {
                self.interval.saturating_sub(check.at.elapsed())
            })
            .max(Duration::from_secs(1))
    }

    /// Forgets `provider`'s last check (it no longer uses the SSH method, or is gone).
    pub fn forget(&self, provider: &Provider) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.remove(&provider_key(provider));
    }

    /// Probes every ESXi host of `provider`'s vCenter with the Provider's private key — or reuses
    /// the last result while it is fresh and neither the Provider's spec nor its keys changed —
    /// and returns what was found with the conditions to write.
    pub async fn check(&self, client: &Client, provider: &Provider) -> Checked {
        let key = provider_key(provider);
        let namespace = provider.namespace().unwrap_or_default();
        let (private, public) = key_secrets(client, &namespace, &provider.name_any()).await;
        let fingerprint = format!(
            "{}/{}/{}",
            provider.metadata.generation.unwrap_or_default(),
            resource_version(&private),
            resource_version(&public),
        );
        {
            let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(check) = last.get(&key)
                && check.fingerprint == fingerprint
                && check.at.elapsed() < self.interval
            {
                return Checked {
                    probed: false,
                    ..check.checked.clone()
                };
            }
        }
        let at = Instant::now();
        let readiness = match private_key(&namespace, &provider.name_any(), private) {
            Ok(private_key) => {
                let public_key = private_key.public_key_openssh();
                let readiness = probe_hosts(client, provider, &self.settings, private_key).await;
                (readiness, public_key)
            }
            Err(message) => (
                Readiness::NotChecked {
                    reason: "SSHKeysNotFound",
                    message,
                },
                String::new(),
            ),
        };
        let checked = Checked {
            conditions: conditions(&readiness.0, &readiness.1),
            readiness: readiness.0,
            probed: true,
        };
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.insert(
            key,
            LastCheck {
                fingerprint,
                at,
                checked: checked.clone(),
            },
        );
        checked
    }
}

fn provider_key(provider: &Provider) -> String {
    provider
        .uid()
        .unwrap_or_else(|| format!("{:?}/{}", provider.namespace(), provider.name_any()))
}

fn resource_version(secret: &Result<Option<Secret>, String>) -> String {
    match secret {
        Ok(Some(secret)) => secret.resource_version().unwrap_or_default(),
        Ok(None) => "absent".into(),
        Err(_) => "unreadable".into(),
    }
}

/// The Provider's private and public key Secrets (each `None` when absent, an error message
/// when unreadable).
async fn key_secrets(
    client: &Client,
    namespace: &str,
    provider: &str,
) -> (
    Result<Option<Secret>, String>,
    Result<Option<Secret>, String>,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read = |name: String| {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt(&name)
                .await
                .map_err(|error| format!("cannot read Secret {namespace}/{name}: {error}"))
        }
    };
    tokio::join!(
        read(ssh_keys::private_secret_name(provider)),
        read(ssh_keys::public_secret_name(provider)),
    )
}

async fn probe_hosts(
    client: &Client,
    provider: &Provider,
    settings: &ProbeSettings,
    key: SshPrivateKey,
) -> Readiness {
    let hosts = match tokio::time::timeout(VCENTER_TIMEOUT, esxi_hosts(client, provider)).await {
        Ok(Ok(hosts)) => hosts,
        Ok(Err(message)) => {
            return Readiness::NotChecked {
                reason: "HostListError",
                message,
            };
        }
        Err(_) => {
            return Readiness::NotChecked {
                reason: "HostListError",
                message: format!(
                    "vCenter did not list its ESXi hosts within {}s",
                    VCENTER_TIMEOUT.as_secs()
                ),
            };
        }
    };
    if hosts.is_empty() {
        return Readiness::NotChecked {
            reason: "NoHostsFound",
            message: "the provider's vCenter lists no ESXi host".into(),
        };
    }
    let mut ssh = SshSettings::new(
        key,
        HostKeyPolicy::Store(settings.host_keys.clone() as Arc<dyn HostKeyStore>),
    );
    ssh.port = settings.port;
    ssh.timeout = settings.timeout;
    // Connect and the probe are each bounded by the SSH timeout; this bounds the whole exchange,
    // disconnect included, whatever the host does.
    let per_host = settings.timeout * 2 + Duration::from_secs(5);
    let mut probes: Vec<HostProbe> = futures::stream::iter(hosts)
        .map(|host| {
            let ssh = &ssh;
            async move {
                let failure =
                    match tokio::time::timeout(per_host, probe_host(&host.address, ssh)).await {
                        Ok(result) => result.err(),
                        Err(_) => Some(format!(
                            "the host did not complete the probe within {}s",
                            per_host.as_secs()
                        )),
                    };
                HostProbe { host, failure }
            }
        })
        .buffer_unordered(PARALLEL_PROBES)
        .collect()
        .await;
    probes.sort_by(|a, b| a.host.name.cmp(&b.host.name));
    Readiness::Probed(probes)
}

/// One probe of the host at `address`: connect with the key and send the upstream probe, which
/// every copy-offload, Forklift and seed key line answers with `SSH_OK` without touching the host.
/// `Err` says why the host cannot be used with the SSH method yet.
pub async fn probe_host(address: &str, settings: &SshSettings) -> Result<(), String> {
    let session = SshSession::connect(address, settings)
        .await
        .map_err(|error| match error {
            EsxiError::AuthRejected { .. } => "the host does not accept the provider's key".into(),
            other => other.to_string(),
        })?;
    let output = session
        .run(&WrapperCommand::Probe.to_legacy_frame(""), None)
        .await;
    session.disconnect().await;
    probe_verdict(&output.map_err(|error| error.to_string())?)
}

/// Whether the forced command that answered the probe is one the SSH method works through.
fn probe_verdict(output: &CommandOutput) -> Result<(), String> {
    if output.stdout.trim() == PROBE_REPLY {
        return Ok(());
    }
    // A `.py` key line (copy-offload's or the seed's) whose wrapper the populator has not placed
    // yet: Python names the script it cannot open. The key is installed as it should be.
    if output.stdout.trim().is_empty()
        && output.stderr.contains(SSH_WRAPPER_FILE_NAME)
        && output.stderr.contains("can't open file")
    {
        return Ok(());
    }
    let mut got: String = output.stdout.trim().chars().take(80).collect();
    if got.is_empty() {
        got = format!("nothing, exit status {:?}", output.exit_status);
    }
    Err(format!(
        "the host accepts the key, but not through a restricted copy-offload or Forklift key \
         line: it answered the probe with {got:?}, not {PROBE_REPLY}"
    ))
}

fn private_key(
    namespace: &str,
    provider: &str,
    secret: Result<Option<Secret>, String>,
) -> Result<SshPrivateKey, String> {
    let name = ssh_keys::private_secret_name(provider);
    let secret = secret?.ok_or_else(|| format!("Secret {namespace}/{name} does not exist"))?;
    let pem = secret
        .data
        .as_ref()
        .and_then(|data| data.get(ssh_keys::PRIVATE_KEY_FIELD))
        .map(|value| String::from_utf8_lossy(&value.0).into_owned())
        .unwrap_or_default();
    SshPrivateKey::from_pem(&pem).map_err(|reason| {
        format!(
            "the {} of Secret {namespace}/{name} cannot be used: {reason}",
            ssh_keys::PRIVATE_KEY_FIELD
        )
    })
}

/// The provider's vCenter, logged in with the provider's Secret (`user`, `password`,
/// `insecureSkipVerify`, `cacert`, as Forklift keeps them), and its hosts.
async fn esxi_hosts(client: &Client, provider: &Provider) -> Result<Vec<EsxiHost>, String> {
    let url = provider
        .spec
        .url
        .clone()
        .filter(|url| !url.trim().is_empty())
        .ok_or("the provider has no spec.url")?;
    let reference = provider
        .spec
        .secret
        .as_ref()
        .ok_or("the provider has no spec.secret with the vCenter credentials")?;
    let name = reference.name.clone().unwrap_or_default();
    let namespace = reference
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| provider.namespace().unwrap_or_default());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let secret = secrets
        .get_opt(&name)
        .await
        .map_err(|error| format!("cannot read the provider Secret {namespace}/{name}: {error}"))?
        .ok_or_else(|| format!("the provider Secret {namespace}/{name} does not exist"))?;
    let field = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .map(|value| String::from_utf8_lossy(&value.0).trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    let user = field("user").ok_or_else(|| {
        format!("the provider Secret {namespace}/{name} has no user (the vCenter user name)")
    })?;
    let password = field("password").ok_or_else(|| {
        format!("the provider Secret {namespace}/{name} has no password (the vCenter password)")
    })?;
    let mut config = co_vsphere::ClientConfig::new(url, user, co_api::Secret::new(password));
    config.trust = if field("insecureSkipVerify").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        co_vsphere::TlsTrust::Insecure
    } else {
        co_vsphere::TlsTrust::Verify {
            extra_ca_pem: field("cacert"),
        }
    };
    let vcenter = co_vsphere::Client::login(config)
        .await
        .map_err(|error| format!("cannot log in to the provider's vCenter: {error}"))?;
    let hosts = co_esxi::vsphere::discover_esxi_hosts(&vcenter, None)
        .await
        .map_err(|error| error.to_string());
    let _ = vcenter.logout().await;
    hosts
}

/// The conditions for `readiness`: `SSHReady` listing the hosts that answered, `SSHNotReady`
/// listing the others with the line(s) to add; none of a kind when no host is of that kind.
fn conditions(readiness: &Readiness, public_key: &str) -> Vec<Condition> {
    let probes = match readiness {
        Readiness::NotChecked { reason, message } => {
            return vec![Condition {
                type_: SSH_NOT_READY.into(),
                category: category::WARN,
                reason: (*reason).into(),
                message: format!("The ESXi hosts' SSH access was not checked: {message}."),
                items: vec![],
            }];
        }
        Readiness::Probed(probes) => probes,
    };
    let (ready, failing): (Vec<&HostProbe>, Vec<&HostProbe>) =
        probes.iter().partition(|p| p.failure.is_none());
    let mut wanted = Vec::new();
    if !ready.is_empty() {
        wanted.push(Condition {
            type_: SSH_READY.into(),
            category: category::ADVISORY,
            reason: "SSHConnectivityValidated".into(),
            message: format!(
                "{} of {} ESXi hosts accept the provider's SSH key through a restricted key line.",
                ready.len(),
                probes.len()
            ),
            items: ready.iter().map(|p| p.item()).collect(),
        });
    }
    if !failing.is_empty() {
        let hosts: Vec<String> = failing
            .iter()
            .map(|p| {
                let lines = if p.host.datastores.is_empty() {
                    restricted_key_line("<datastore>", public_key)
                } else {
                    p.host
                        .datastores
                        .iter()
                        .map(|datastore| restricted_key_line(datastore, public_key))
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                format!(
                    "{} ({}): {}. Append to its {ESXI_ROOT_AUTHORIZED_KEYS}:\n{lines}",
                    p.host.name,
                    p.host.address,
                    p.failure.as_deref().unwrap_or_default()
                )
            })
            .collect();
        wanted.push(Condition {
            type_: SSH_NOT_READY.into(),
            category: category::WARN,
            reason: "SSHConnectivityFailed".into(),
            message: format!(
                "{} of {} ESXi hosts cannot be used with the SSH clone method yet. On each, \
                 enable SSH (`vim-cmd hostsvc/enable_ssh` and `vim-cmd hostsvc/start_ssh`) and add \
                 the copy-offload key line, one per datastore the host copies from (a host that \
                 already carries Forklift's line keeps working):\n{}",
                failing.len(),
                probes.len(),
                hosts.join("\n")
            ),
            items: failing.iter().map(|p| p.item()).collect(),
        });
    }
    wanted
}

/// Host keys trusted on first use, kept in memory.
#[derive(Debug, Default)]
pub struct MemoryHostKeys {
    keys: Mutex<HashMap<(String, u16), Vec<PublicKey>>>,
}

#[async_trait]
impl HostKeyStore for MemoryHostKeys {
    async fn known(&self, host: &str, port: u16) -> Result<Vec<PublicKey>, HostKeyStoreError> {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(keys
            .get(&(host.to_owned(), port))
            .cloned()
            .unwrap_or_default())
    }

    async fn learn(
        &self,
        host: &str,
        port: u16,
        key: &PublicKey,
    ) -> Result<Vec<PublicKey>, HostKeyStoreError> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(keys
            .entry((host.to_owned(), port))
            .or_insert_with(|| vec![key.clone()])
            .clone())
    }

    fn record_of(&self, host: &str, port: u16) -> String {
        format!("the planner's memory of {host}:{port} (since it started)")
    }

    fn retrust_hint(&self, _host: &str, _port: u16) -> String {
        "restart the copy-offload controller so the planner learns the host's new key".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, datastores: &[&str]) -> EsxiHost {
        EsxiHost {
            id: format!("host-{name}"),
            name: name.into(),
            address: format!("10.0.0.{}", name.len()),
            datastores: datastores.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    fn output(stdout: &str, stderr: &str, exit_status: u32) -> CommandOutput {
        CommandOutput {
            stdout: stdout.into(),
            stderr: stderr.into(),
            exit_status: Some(exit_status),
        }
    }

    #[test]
    fn a_py_line_whose_wrapper_is_not_placed_yet_is_ready_and_a_shell_is_not() {
        assert_eq!(probe_verdict(&output("SSH_OK\n", "", 0)), Ok(()));
        // ESXi's Python, for copy-offload's or the seed's line before the first copy.
        let missing = "python: can't open file '/vmfs/volumes/ds1/secure-vmkfstools-wrapper.py': \
                       [Errno 2] No such file or directory\n";
        assert_eq!(probe_verdict(&output("", missing, 2)), Ok(()));
        // A key without a forced command: the probe text runs in root's shell.
        let shell = probe_verdict(&output("", "sh: test-task-id: not found\n", 127)).unwrap_err();
        assert!(shell.contains("not through a restricted"), "{shell}");
        // Some other forced command that happens to mention the wrapper on stdout.
        assert!(
            probe_verdict(&output(
                "secure-vmkfstools-wrapper.py can't open file",
                "",
                0
            ))
            .is_err()
        );
    }

    #[test]
    fn failing_hosts_get_one_line_per_datastore_and_ready_ones_are_listed() {
        let readiness = Readiness::Probed(vec![
            HostProbe {
                host: host("esx-a", &["ds1"]),
                failure: None,
            },
            HostProbe {
                host: host("esx-bb", &["ds1", "ds 2"]),
                failure: Some("the host does not accept the provider's key".into()),
            },
        ]);
        let conditions = conditions(&readiness, "ssh-rsa AAAA planner");
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[0].type_, SSH_READY);
        assert_eq!(conditions[0].items, ["host-esx-a|esx-a|10.0.0.5"]);
        assert_eq!(conditions[1].type_, SSH_NOT_READY);
        assert_eq!(conditions[1].items, ["host-esx-bb|esx-bb|10.0.0.6"]);
        let message = &conditions[1].message;
        assert!(
            message.contains(&restricted_key_line("ds1", "ssh-rsa AAAA planner")),
            "{message}"
        );
        assert!(
            message.contains(&restricted_key_line("ds 2", "ssh-rsa AAAA planner")),
            "{message}"
        );
        assert!(!message.contains("esx-a ("), "{message}");
    }
}
