//! The SSH clone method: one russh connection to ESXi root with the restricted copy-offload key.
//! Hosts carry one of two key lines, detected per connection ([`KeyLine`]): copy-offload's, whose
//! forced command is `python -I …/secure-vmkfstools-wrapper.py`, or Forklift's, which routes
//! `DS=<datastore>;CMD=<operation>` to the shell wrapper `secure-vmkfstools-wrapper`. Covers key
//! loading (`SSH_PRIVATE_KEY`, `SSH_TIMEOUT_SECONDS`), checking the host key by a
//! [`HostKeyPolicy`] (pinned, a known_hosts list, or trust on first use in a [`HostKeyStore`]),
//! the "key not installed" guidance, and putting the verified wrapper the key line runs on the
//! datastore before anything runs it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use russh::ChannelMsg;
use russh::client::{self, AuthResult, Handle};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use tracing::{debug, error, info, warn};

use crate::assets::{
    SSH_SHELL_WRAPPER, SSH_SHELL_WRAPPER_FILE_NAME, SSH_WRAPPER, SSH_WRAPPER_FILE_NAME,
    WRAPPER_VERSION, sha256_hex,
};
use crate::error::EsxiError;
use crate::executor::{CloneExecutor, WrapperTransport, reply_message};
use crate::guidance::{
    forklift_line_notice, forklift_route_problem, manual_key_instructions, restricted_key_line,
};
use crate::host_keys::{
    HostKeyStore, HostKeyStoreError, KnownHosts, KnownHostsFile, fingerprint, known_hosts_name,
};
use crate::protocol::{PROBE_REPLY, VersionInfo, WrapperCommand, WrapperReply, decode_message};

/// Env var holding the base64-encoded PEM private key.
pub const SSH_PRIVATE_KEY_ENV: &str = "SSH_PRIVATE_KEY";
/// Default per-operation SSH timeout (`SSH_TIMEOUT_SECONDS`, read by the populator's arguments).
pub const DEFAULT_SSH_TIMEOUT: Duration = Duration::from_secs(30);

/// How the ESXi host key is trusted.
#[derive(Debug, Clone)]
pub enum HostKeyPolicy {
    /// Only this key is accepted.
    Pinned(PublicKey),
    /// Only hosts listed with the key they present are accepted: a host that is not listed, or
    /// listed with other keys, or whose key is marked `@revoked`, is refused.
    KnownHosts(KnownHosts),
    /// Trust on first use in a shared record: the first key seen for `host:port` is recorded in
    /// the store, and every later connection through that store must present the same key.
    Store(Arc<dyn HostKeyStore>),
    /// Trust on first use in this OpenSSH known_hosts file (a [`KnownHostsFile`] store).
    TrustOnFirstUse { known_hosts: PathBuf },
}

/// Everything needed to open the SSH connection.
#[derive(Clone)]
pub struct SshSettings {
    pub private_key: Arc<PrivateKey>,
    pub host_key: HostKeyPolicy,
    /// Bounds connect + authentication and every wrapper call.
    pub timeout: Duration,
    pub port: u16,
    pub user: String,
}

impl std::fmt::Debug for SshSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSettings")
            .field("private_key", &"<redacted>")
            .field("host_key", &self.host_key)
            .field("timeout", &self.timeout)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish()
    }
}

/// A parsed SSH private key: the provider's `SSH_PRIVATE_KEY` secret, decoded and checked. The
/// argument reader parses it, so a value that is not a key is a bad-arguments error before any
/// connection is made.
#[derive(Clone)]
pub struct SshPrivateKey(Arc<PrivateKey>);

impl std::fmt::Debug for SshPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SshPrivateKey(<redacted>)")
    }
}

impl PartialEq for SshPrivateKey {
    fn eq(&self, other: &Self) -> bool {
        self.public_key_openssh() == other.public_key_openssh()
    }
}

impl Eq for SshPrivateKey {}

impl SshPrivateKey {
    /// A key from PEM text (OpenSSH or PKCS#1/PKCS#8). The error says what is wrong, without any
    /// of the key's content.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        if pem.trim().is_empty() {
            return Err("it is empty".into());
        }
        russh::keys::decode_secret_key(pem, None)
            .map(|key| Self(Arc::new(key)))
            .map_err(|err| format!("it is not a usable private key ({err})"))
    }

    /// A key from base64-encoded PEM, the secret's format.
    pub fn from_base64_pem(encoded: &str) -> Result<Self, String> {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|err| format!("it is not valid base64 ({err})"))?;
        let pem = String::from_utf8(pem).map_err(|_| {
            "it does not decode to PEM text (binary after base64 decoding)".to_owned()
        })?;
        if pem.trim().is_empty() {
            return Err("it is empty".into());
        }
        if !pem.contains("-----BEGIN") {
            return Err(
                "it decodes from base64, but not to a PEM private key (no \"-----BEGIN\" line)"
                    .into(),
            );
        }
        Self::from_pem(&pem)
    }

    /// The public half, in authorized_keys format.
    pub fn public_key_openssh(&self) -> String {
        self.0.public_key().to_openssh().unwrap_or_default()
    }
}

impl SshSettings {
    /// Settings for `key`: root on port 22, the default timeout.
    pub fn new(key: SshPrivateKey, host_key: HostKeyPolicy) -> Self {
        Self {
            private_key: key.0,
            host_key,
            timeout: DEFAULT_SSH_TIMEOUT,
            port: 22,
            user: "root".into(),
        }
    }

    /// Settings from a base64-encoded PEM key (the `SSH_PRIVATE_KEY` format), root on port 22.
    pub fn from_base64_pem(encoded: &str, host_key: HostKeyPolicy) -> Result<Self, EsxiError> {
        let key = SshPrivateKey::from_base64_pem(encoded)
            .map_err(|reason| EsxiError::SshConfig(format!("{SSH_PRIVATE_KEY_ENV}: {reason}")))?;
        Ok(Self::new(key, host_key))
    }

    /// The public half, in authorized_keys format.
    pub fn public_key_openssh(&self) -> String {
        self.private_key
            .public_key()
            .to_openssh()
            .unwrap_or_default()
    }
}

struct HostKeyCheck {
    host: String,
    port: u16,
    policy: HostKeyPolicy,
    /// Why the key was refused, handed back to [`SshSession::connect`] (russh only sees `false`).
    refusal: Arc<Mutex<Option<EsxiError>>>,
}

impl HostKeyCheck {
    async fn verify(&self, key: &PublicKey) -> Result<(), EsxiError> {
        let (host, port) = (self.host.as_str(), self.port);
        match &self.policy {
            HostKeyPolicy::Pinned(pinned) => {
                if pinned.key_data() == key.key_data() {
                    Ok(())
                } else {
                    Err(self.mismatch(
                        std::slice::from_ref(pinned),
                        key,
                        "the pinned key".into(),
                        "update the pinned key".into(),
                    ))
                }
            }
            HostKeyPolicy::KnownHosts(list) => {
                let name = known_hosts_name(host, port);
                let listed = list.keys_for(host, port);
                if listed
                    .revoked
                    .iter()
                    .any(|k| k.key_data() == key.key_data())
                {
                    return Err(EsxiError::HostKeyUntrusted {
                        host: host.to_owned(),
                        actual: fingerprint(key),
                        reason: format!("{} marks this key @revoked", list.source()),
                        remedy: format!(
                            "re-key the host and list its new key for {name} in {}",
                            list.source()
                        ),
                    });
                }
                if listed.trusted.is_empty() {
                    return Err(EsxiError::HostKeyUntrusted {
                        host: host.to_owned(),
                        actual: fingerprint(key),
                        reason: format!("{name} is not listed in {}", list.source()),
                        remedy: format!(
                            "add the host's line `{name} <key type> <base64 key>` to {} \
                             (`ssh-keyscan -p {port} {host}` prints it; compare its fingerprint with \
                             `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host's console)",
                            list.source()
                        ),
                    });
                }
                if listed
                    .trusted
                    .iter()
                    .any(|known| known.key_data() == key.key_data())
                {
                    Ok(())
                } else {
                    Err(self.mismatch(
                        &listed.trusted,
                        key,
                        format!("the entries for {name} in {}", list.source()),
                        format!("replace them with the host's new key in {}", list.source()),
                    ))
                }
            }
            HostKeyPolicy::Store(store) => self.verify_in_store(store.as_ref(), key).await,
            HostKeyPolicy::TrustOnFirstUse { known_hosts } => {
                self.verify_in_store(&KnownHostsFile::new(known_hosts.clone()), key)
                    .await
            }
        }
    }

    /// Trust on first use: the recorded keys bind the host; with none, `key` is offered to the
    /// store, and whatever the store holds afterwards (ours, or a racing writer's) decides.
    async fn verify_in_store(
        &self,
        store: &dyn HostKeyStore,
        key: &PublicKey,
    ) -> Result<(), EsxiError> {
        let (host, port) = (self.host.as_str(), self.port);
        let store_failed = |err: HostKeyStoreError| EsxiError::HostKeyRecord {
            host: host.to_owned(),
            record: store.record_of(host, port),
            message: err.message,
            transient: err.transient,
        };
        let mut recorded = store.known(host, port).await.map_err(store_failed)?;
        if recorded.is_empty() {
            info!(
                host,
                port,
                fingerprint = %fingerprint(key),
                record = %store.record_of(host, port),
                "trusting the ESXi host key on first use"
            );
            recorded = store.learn(host, port, key).await.map_err(store_failed)?;
        }
        // Any recorded key binds the host: a different key, even of another algorithm, is refused.
        if recorded
            .iter()
            .any(|known| known.key_data() == key.key_data())
        {
            Ok(())
        } else {
            Err(self.mismatch(
                &recorded,
                key,
                store.record_of(host, port),
                store.retrust_hint(host, port),
            ))
        }
    }

    fn mismatch(
        &self,
        expected: &[PublicKey],
        actual: &PublicKey,
        trusted_in: String,
        retrust: String,
    ) -> EsxiError {
        EsxiError::HostKeyMismatch {
            host: self.host.clone(),
            expected: expected
                .iter()
                .map(fingerprint)
                .collect::<Vec<_>>()
                .join(", "),
            actual: fingerprint(actual),
            trusted_in,
            retrust,
        }
    }
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_key else {
            return Ok(false);
        };
        match self.verify(key).await {
            Ok(()) => Ok(true),
            Err(refusal) => {
                warn!(host = %self.host, port = self.port, error = %refusal, "SSH host key refused");
                if let Ok(mut slot) = self.refusal.lock() {
                    *slot = Some(refusal);
                }
                Ok(false)
            }
        }
    }
}

/// Files on a datastore, as the vSphere `/folder` endpoint offers them. Implemented over
/// `co_vsphere::Client` by the caller; a seam so the executor can be tested without vCenter.
#[async_trait]
pub trait DatastoreFiles: Send + Sync {
    /// The file's bytes, or `None` when it does not exist.
    async fn download(&self, datastore: &str, path: &str) -> Result<Option<Vec<u8>>, EsxiError>;
    async fn upload(&self, datastore: &str, path: &str, body: Vec<u8>) -> Result<(), EsxiError>;
}

/// What [`ensure_wrapper_script`] had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptPlacement {
    AlreadyCurrent,
    Uploaded,
}

/// How often [`ensure_wrapper_script`] reads, uploads and re-verifies before giving up.
const SCRIPT_PLACEMENT_ATTEMPTS: u32 = 5;

/// Makes sure the datastore holds exactly this crate's Python wrapper (the one copy-offload's key
/// line runs) before anything runs it; see [`place_script`].
pub async fn ensure_wrapper_script(
    files: &dyn DatastoreFiles,
    datastore: &str,
) -> Result<ScriptPlacement, EsxiError> {
    place_script(files, datastore, SSH_WRAPPER_FILE_NAME, SSH_WRAPPER).await
}

/// Makes sure the datastore holds exactly this crate's shell wrapper (the one Forklift's key line
/// runs) before anything runs it; see [`place_script`].
pub async fn ensure_shell_wrapper_script(
    files: &dyn DatastoreFiles,
    datastore: &str,
) -> Result<ScriptPlacement, EsxiError> {
    place_script(
        files,
        datastore,
        SSH_SHELL_WRAPPER_FILE_NAME,
        SSH_SHELL_WRAPPER,
    )
    .await
}

/// Makes sure the datastore root holds exactly `script` as `file_name`: the file is read back
/// through the datastore API and its SHA-256 compared with the embedded script; a missing, older
/// or altered script is replaced and verified again.
///
/// Several populators copying disks of the same datastore run this at the same time, and a
/// datastore upload is not atomic: a reader can see a half-written file, or a download can break
/// while another pod rewrites it. Every writer writes the same bytes, so the file converges; each
/// attempt therefore re-reads first (another writer may have finished) and only a file that still
/// fails verification after every attempt is an error.
async fn place_script(
    files: &dyn DatastoreFiles,
    datastore: &str,
    file_name: &str,
    script: &str,
) -> Result<ScriptPlacement, EsxiError> {
    crate::executor::check_datastore_name(datastore)?;
    let expected = sha256_hex(script.as_bytes());
    let mut uploaded = false;
    let mut last_error = None;
    for attempt in 0..SCRIPT_PLACEMENT_ATTEMPTS {
        if attempt > 0 {
            // Back off so a concurrent writer can finish; jitter keeps racing pods apart.
            let base_ms = 100u64 << attempt.min(4);
            let jitter_ms = rand::random_range(0..base_ms);
            tokio::time::sleep(Duration::from_millis(base_ms + jitter_ms)).await;
        }
        let current = match files.download(datastore, file_name).await {
            Ok(current) => current,
            Err(err) => {
                debug!(datastore, file_name, attempt, error = %err, "reading the wrapper script failed");
                last_error = Some(err);
                continue;
            }
        };
        let actual = current.as_deref().map(sha256_hex);
        if actual.as_deref() == Some(expected.as_str()) {
            debug!(datastore, file_name, uploaded, "wrapper script verified");
            return Ok(if uploaded {
                ScriptPlacement::Uploaded
            } else {
                ScriptPlacement::AlreadyCurrent
            });
        }
        if uploaded {
            last_error = Some(EsxiError::ScriptUnverified {
                datastore: datastore.to_owned(),
                expected: expected.clone(),
                actual: actual.unwrap_or_else(|| "<missing>".into()),
            });
        }
        info!(
            datastore,
            file_name,
            present = current.is_some(),
            version = WRAPPER_VERSION,
            attempt,
            "uploading the wrapper script"
        );
        match files
            .upload(datastore, file_name, script.as_bytes().to_vec())
            .await
        {
            Ok(()) => uploaded = true,
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error.unwrap_or_else(|| EsxiError::ScriptUnverified {
        datastore: datastore.to_owned(),
        expected,
        actual: "<not verified>".into(),
    }))
}

/// Output of one SSH command.
#[derive(Debug, Default)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_status: Option<u32>,
}

/// One authenticated SSH connection to an ESXi host; every command opens a channel on it.
pub struct SshSession {
    host: String,
    timeout: Duration,
    handle: Handle<HostKeyCheck>,
}

impl SshSession {
    /// Connects and authenticates with `settings`, verifying the host key by its policy.
    pub async fn connect(host: &str, settings: &SshSettings) -> Result<Self, EsxiError> {
        let refusal = Arc::new(Mutex::new(None));
        let check = HostKeyCheck {
            host: host.to_owned(),
            port: settings.port,
            policy: settings.host_key.clone(),
            refusal: refusal.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 4,
            ..Default::default()
        });
        let ssh_error = |message: String| EsxiError::Ssh {
            host: host.to_owned(),
            message,
        };
        let timed_out = |what: &str| EsxiError::Timeout {
            host: host.to_owned(),
            what: what.to_owned(),
            seconds: settings.timeout.as_secs(),
        };
        let connected = tokio::time::timeout(
            settings.timeout,
            client::connect(config, (host, settings.port), check),
        )
        .await;
        let mut handle = match connected {
            Err(_) => return Err(timed_out("SSH connect")),
            Ok(Ok(handle)) => handle,
            Ok(Err(err)) => {
                let refused = refusal.lock().ok().and_then(|mut slot| slot.take());
                return Err(refused.unwrap_or_else(|| ssh_error(err.to_string())));
            }
        };
        let auth = async {
            // Never fall back to SHA-1 `ssh-rsa`: ESXi 8 and OpenSSH >= 8.8 refuse it.
            let hash = handle
                .best_supported_rsa_hash()
                .await?
                .flatten()
                .or(Some(HashAlg::Sha512));
            let key = PrivateKeyWithHashAlg::new(settings.private_key.clone(), hash);
            handle
                .authenticate_publickey(settings.user.clone(), key)
                .await
        };
        match tokio::time::timeout(settings.timeout, auth).await {
            Err(_) => Err(timed_out("SSH authentication")),
            Ok(Err(err)) => Err(ssh_error(format!("authentication failed: {err}"))),
            Ok(Ok(AuthResult::Failure { .. })) => Err(EsxiError::AuthRejected {
                host: host.to_owned(),
            }),
            Ok(Ok(AuthResult::Success)) => Ok(Self {
                host: host.to_owned(),
                timeout: settings.timeout,
                handle,
            }),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Runs `command` (with `stdin` fed to it when given), bounded by the session timeout.
    pub async fn run(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<CommandOutput, EsxiError> {
        self.run_with_timeout(command, stdin, self.timeout).await
    }

    /// Like [`Self::run`] with an explicit bound (uploads of large files).
    pub async fn run_with_timeout(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<CommandOutput, EsxiError> {
        let ssh_error = |err: russh::Error| EsxiError::Ssh {
            host: self.host.clone(),
            message: err.to_string(),
        };
        let exchange = async {
            let mut channel = self
                .handle
                .channel_open_session()
                .await
                .map_err(ssh_error)?;
            channel.exec(true, command).await.map_err(ssh_error)?;
            if let Some(input) = stdin {
                channel.data(input).await.map_err(ssh_error)?;
            }
            channel.eof().await.map_err(ssh_error)?;
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            let mut output = CommandOutput::default();
            while let Some(message) = channel.wait().await {
                match message {
                    ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, .. } => stderr.extend_from_slice(&data),
                    ChannelMsg::ExitStatus { exit_status } => {
                        output.exit_status = Some(exit_status)
                    }
                    _ => {}
                }
            }
            output.stdout = String::from_utf8_lossy(&stdout).into_owned();
            output.stderr = String::from_utf8_lossy(&stderr).into_owned();
            Ok(output)
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| EsxiError::Timeout {
                host: self.host.clone(),
                what: format!("command {}", command.split(' ').next().unwrap_or_default()),
                seconds: timeout.as_secs(),
            })?
    }

    /// Closes the connection.
    pub async fn disconnect(&self) {
        if let Err(err) = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await
        {
            debug!(host = %self.host, error = %err, "SSH disconnect");
        }
    }
}

/// Which key line the host runs for the copy-offload key; decides how a request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLine {
    /// copy-offload's line: the forced command is the Python wrapper on the datastore, which reads
    /// the request (POSIX-quoted words) from `SSH_ORIGINAL_COMMAND`.
    CopyOffload,
    /// Forklift's line: an inline `sh -c` routes `DS=<datastore>;CMD=<operation>` to
    /// `/vmfs/volumes/<datastore>/secure-vmkfstools-wrapper`, copy-offload's shell wrapper there;
    /// requests go as [`WrapperCommand::to_routed_request`]. It answers a request without `DS=`
    /// with the probe reply, which is how it is recognised.
    ForkliftRouting,
}

impl KeyLine {
    /// The name used in logs.
    pub fn name(self) -> &'static str {
        match self {
            KeyLine::CopyOffload => "copy-offload",
            KeyLine::ForkliftRouting => "forklift",
        }
    }
}

/// A clone executor speaking to the SSH wrapper over one authenticated connection.
pub struct SshExecutor {
    session: SshSession,
    datastore: String,
    public_key: String,
    key_line: KeyLine,
    /// The wrapper version, read once per connection.
    version: tokio::sync::OnceCell<String>,
}

impl SshExecutor {
    /// Connects and authenticates. When the key is refused, the exact restricted line for
    /// `datastore` and the installation steps are logged, and [`EsxiError::KeyNotAccepted`] returned.
    pub async fn connect(
        host: &str,
        datastore: &str,
        settings: &SshSettings,
    ) -> Result<Self, EsxiError> {
        crate::executor::check_datastore_name(datastore)?;
        let public_key = settings.public_key_openssh();
        match SshSession::connect(host, settings).await {
            Ok(session) => {
                info!(host, datastore, "SSH connection to ESXi established");
                Ok(Self {
                    session,
                    datastore: datastore.to_owned(),
                    public_key,
                    key_line: KeyLine::CopyOffload,
                    version: tokio::sync::OnceCell::new(),
                })
            }
            Err(EsxiError::AuthRejected { .. }) => {
                error!(
                    host,
                    datastore,
                    instructions = %manual_key_instructions(host, datastore, &public_key),
                    "SSH key setup required"
                );
                Err(EsxiError::KeyNotAccepted {
                    host: host.to_owned(),
                    datastore: datastore.to_owned(),
                })
            }
            Err(err) => Err(err),
        }
    }

    /// The whole SSH preparation for one host: put the verified Python wrapper on `datastore`
    /// (through `files`, only when it differs), connect, detect the host's key line and log which
    /// it is — for Forklift's line also placing the verified shell wrapper it routes to, and
    /// logging the steps to copy-offload's line — then check the key line runs this crate's
    /// wrapper version. Nothing runs a script on the datastore before it was verified.
    pub async fn prepare(
        host: &str,
        datastore: &str,
        settings: &SshSettings,
        files: &dyn DatastoreFiles,
    ) -> Result<Self, EsxiError> {
        ensure_wrapper_script(files, datastore).await?;
        let mut executor = Self::connect(host, datastore, settings).await?;
        executor.key_line = executor.detect_key_line().await?;
        match executor.key_line {
            KeyLine::CopyOffload => {
                info!(
                    host,
                    datastore,
                    key_line = executor.key_line.name(),
                    "ESXi host runs copy-offload's key line"
                );
            }
            KeyLine::ForkliftRouting => {
                if let Some(reason) = forklift_route_problem(datastore) {
                    return Err(EsxiError::DatastoreNotRoutable {
                        host: host.to_owned(),
                        datastore: datastore.to_owned(),
                        reason,
                        key_line: restricted_key_line(datastore, &executor.public_key),
                    });
                }
                warn!(
                    host,
                    datastore,
                    key_line = executor.key_line.name(),
                    instructions = %forklift_line_notice(host, datastore, &executor.public_key),
                    "ESXi host runs Forklift's key line; copying through copy-offload's shell wrapper"
                );
                ensure_shell_wrapper_script(files, datastore).await?;
            }
        }
        executor.check_wrapper_version().await?;
        Ok(executor)
    }

    /// The key line this executor sends requests for.
    pub fn key_line(&self) -> KeyLine {
        self.key_line
    }

    /// Which key line the host runs: a direct `--version` is answered by copy-offload's wrapper
    /// with its envelope, and by Forklift's line (no `DS=`) with the probe reply, without running
    /// any script. The version copy-offload's wrapper reports is kept for
    /// [`Self::check_wrapper_version`].
    async fn detect_key_line(&self) -> Result<KeyLine, EsxiError> {
        let output = self
            .session
            .run(&WrapperCommand::Version.to_ssh_command(), None)
            .await?;
        if output.stdout.trim() == PROBE_REPLY {
            return Ok(KeyLine::ForkliftRouting);
        }
        if let Ok(version) = self
            .reply("version", output)
            .and_then(|reply| Ok(decode_message::<VersionInfo>(&reply)?.version))
        {
            let _ = self.version.set(version);
        }
        Ok(KeyLine::CopyOffload)
    }

    /// The request text for `command` on this host's key line.
    fn request(&self, command: &WrapperCommand) -> String {
        match self.key_line {
            KeyLine::CopyOffload => command.to_ssh_command(),
            KeyLine::ForkliftRouting => command.to_routed_request(&self.datastore),
        }
    }

    /// Runs the connectivity probe (`--probe` → `SSH_OK`).
    pub async fn probe(&self) -> Result<(), EsxiError> {
        let output = self
            .session
            .run(&self.request(&WrapperCommand::Probe), None)
            .await?;
        if output.stdout.trim() == PROBE_REPLY {
            Ok(())
        } else {
            Err(EsxiError::Ssh {
                host: self.session.host.clone(),
                message: format!("unexpected probe reply {:?}", output.stdout),
            })
        }
    }

    /// Checks the host runs this crate's wrapper version through the current key line.
    pub async fn check_wrapper_version(&self) -> Result<(), EsxiError> {
        let version = self.version().await?;
        if version == WRAPPER_VERSION {
            Ok(())
        } else {
            Err(EsxiError::WrapperVersionMismatch {
                host: self.session.host.clone(),
                found: version,
                expected: WRAPPER_VERSION,
                key_line: restricted_key_line(&self.datastore, &self.public_key),
            })
        }
    }

    /// Closes the connection.
    pub async fn disconnect(&self) {
        self.session.disconnect().await;
    }

    fn reply(&self, operation: &'static str, output: CommandOutput) -> Result<String, EsxiError> {
        let reply = WrapperReply::from_xml(&output.stdout).inspect_err(|_| {
            if !output.stderr.is_empty() {
                warn!(host = %self.session.host, operation, stderr = %output.stderr.trim(), "wrapper wrote to stderr");
            }
        })?;
        reply_message(operation, reply)
    }
}

#[async_trait]
impl WrapperTransport for SshExecutor {
    async fn call(&self, command: WrapperCommand) -> Result<String, EsxiError> {
        let output = self.session.run(&self.request(&command), None).await?;
        self.reply(command.operation(), output)
    }

    /// The version, or — when Forklift's line answers a direct request with its probe reply on a
    /// connection that did not detect it — copy-offload's key line.
    async fn read_version(&self) -> Result<String, EsxiError> {
        let output = self
            .session
            .run(&self.request(&WrapperCommand::Version), None)
            .await?;
        if output.stdout.trim() == PROBE_REPLY {
            return Err(EsxiError::LegacyKeyLine {
                reply: PROBE_REPLY.into(),
                key_line: restricted_key_line(&self.datastore, &self.public_key),
            });
        }
        let reply = self.reply("version", output)?;
        Ok(decode_message::<VersionInfo>(&reply)?.version)
    }

    fn version_cache(&self) -> &tokio::sync::OnceCell<String> {
        &self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_material_errors_are_actionable() {
        let policy = HostKeyPolicy::TrustOnFirstUse {
            known_hosts: "/nonexistent".into(),
        };
        let empty = SshSettings::from_base64_pem("", policy.clone()).unwrap_err();
        assert!(
            empty.to_string().contains("SSH_PRIVATE_KEY: it is empty"),
            "{empty}"
        );
        let not_base64 = SshSettings::from_base64_pem("***", policy.clone()).unwrap_err();
        assert!(not_base64.to_string().contains("not valid base64"));
        let not_key = base64::engine::general_purpose::STANDARD.encode("hello");
        assert!(
            SshSettings::from_base64_pem(&not_key, policy)
                .unwrap_err()
                .to_string()
                .contains("not to a PEM private key")
        );
    }
}
