//! Trust in ESXi SSH host keys, outside the SSH handshake itself:
//!
//! - [`KnownHosts`]: OpenSSH known_hosts text as a strict allow-list (plain, wildcard, negated,
//!   `[host]:port` and hashed `|1|…` host patterns; `@revoked` lines).
//! - [`HostKeyStore`]: the seam behind trust on first use. A store records the first key seen for
//!   a `host:port`; every process sharing the store then requires that key. The store decides how
//!   far the trust reaches: [`KnownHostsFile`] is one process's file, the populator keeps a
//!   cluster-wide record in Kubernetes. `learn` is first-writer-wins, so two processes racing to
//!   record different keys cannot both be accepted.

use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use russh::keys::HashAlg;
/// The host key type stores deal in (re-exported so stores need no SSH dependency of their own).
pub use russh::keys::PublicKey;
use ssh_key::known_hosts::{Entry, HostPatterns, Marker};
use tracing::debug;

/// The SHA-256 fingerprint OpenSSH prints (`SHA256:…`).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The name OpenSSH looks a host up by: `host` on port 22, `[host]:port` otherwise.
pub fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// One unusable line of known_hosts text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KnownHostsError {
    #[error(
        "line {line} is not a known_hosts entry ({reason}); expected \
         `host[,host…] <key type> <base64 key>`, e.g. `[esxi-1.example.com]:22 ssh-ed25519 AAAA…`"
    )]
    Line { line: usize, reason: String },
    #[error(
        "line {line} is a @cert-authority entry; host certificates are not supported: list each \
         host's own key instead"
    )]
    CertificateAuthority { line: usize },
    #[error("has no host key lines; expected one line per ESXi host, as `ssh-keyscan` prints them")]
    Empty,
}

/// Keys a [`KnownHosts`] list holds for one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedKeys {
    pub trusted: Vec<PublicKey>,
    pub revoked: Vec<PublicKey>,
}

/// OpenSSH known_hosts text, parsed: a static allow-list of host keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHosts {
    entries: Vec<Entry>,
    source: String,
}

impl KnownHosts {
    /// Parses known_hosts text, reporting every unusable line. Comments and blank lines are
    /// skipped; text without any entry is refused, since it would refuse every host.
    pub fn parse(text: &str) -> Result<Self, Vec<KnownHostsError>> {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
            if content.is_empty() {
                continue;
            }
            match content.parse::<Entry>() {
                Ok(entry) if entry.marker() == Some(&Marker::CertAuthority) => {
                    problems.push(KnownHostsError::CertificateAuthority { line })
                }
                Ok(entry) => entries.push(entry),
                Err(err) => problems.push(KnownHostsError::Line {
                    line,
                    reason: err.to_string(),
                }),
            }
        }
        if entries.is_empty() && problems.is_empty() {
            problems.push(KnownHostsError::Empty);
        }
        if problems.is_empty() {
            Ok(Self {
                entries,
                source: "the known_hosts list".into(),
            })
        } else {
            Err(problems)
        }
    }

    /// Names where the list came from (a setting), for error messages.
    pub fn from_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Where the list came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys listed for `host:port`, matched as OpenSSH matches host names.
    pub fn keys_for(&self, host: &str, port: u16) -> ListedKeys {
        let name = known_hosts_name(&host.to_ascii_lowercase(), port);
        let mut keys = ListedKeys::default();
        for entry in self
            .entries
            .iter()
            .filter(|entry| patterns_match(entry.host_patterns(), &name))
        {
            let list = match entry.marker() {
                Some(Marker::Revoked) => &mut keys.revoked,
                _ => &mut keys.trusted,
            };
            list.push(entry.public_key().clone());
        }
        keys
    }
}

fn patterns_match(patterns: &HostPatterns, name: &str) -> bool {
    match patterns {
        HostPatterns::HashedName { salt, hash } => hmac_sha1(salt, name.as_bytes()) == *hash,
        HostPatterns::Patterns(list) => {
            let mut matched = false;
            for pattern in list {
                match pattern.strip_prefix('!') {
                    // A matching negation excludes the host whatever else matches.
                    Some(negated) if glob_match(&negated.to_ascii_lowercase(), name) => {
                        return false;
                    }
                    Some(_) => {}
                    None => matched |= glob_match(&pattern.to_ascii_lowercase(), name),
                }
            }
            matched
        }
    }
}

/// OpenSSH's host pattern match: `*` is any run of characters, `?` exactly one.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, consumed)) => {
                    p = star + 1;
                    t = consumed + 1;
                    backtrack = Some((star, consumed + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// HMAC-SHA1 (RFC 2104), the hash of OpenSSH's hashed host names (`HashKnownHosts`).
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut hash = [0u8; 20];
    hash.copy_from_slice(ring::hmac::sign(&key, message).as_ref());
    hash
}

/// A host-key store failed to answer; the connection is refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HostKeyStoreError {
    pub message: String,
    /// Repeating later may succeed (the store was unreachable or busy).
    pub transient: bool,
}

impl HostKeyStoreError {
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: true,
        }
    }
}

/// Where ESXi host keys are recorded on first use and looked up afterwards.
#[async_trait]
pub trait HostKeyStore: Send + Sync + fmt::Debug {
    /// The keys recorded for `host:port` (empty: never seen).
    async fn known(&self, host: &str, port: u16) -> Result<Vec<PublicKey>, HostKeyStoreError>;

    /// Records `key` for `host:port` unless keys are recorded already, and returns the keys
    /// recorded afterwards. First writer wins: when another writer got there first, its keys are
    /// returned and `key` is not recorded.
    async fn learn(
        &self,
        host: &str,
        port: u16,
        key: &PublicKey,
    ) -> Result<Vec<PublicKey>, HostKeyStoreError>;

    /// Where the keys of `host:port` are recorded, for messages (e.g. "entry X of ConfigMap Y").
    fn record_of(&self, host: &str, port: u16) -> String;

    /// What an administrator does so the next connection records a re-installed host's new key.
    fn retrust_hint(&self, host: &str, port: u16) -> String;
}

/// Trust on first use in an OpenSSH known_hosts file. The record lasts as long as the file: in a
/// pod with a fresh temporary directory that is one run, so the populator uses a cluster-wide
/// store whenever it has a Kubernetes API.
#[derive(Debug, Clone)]
pub struct KnownHostsFile {
    path: PathBuf,
}

impl KnownHostsFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    fn read(&self, host: &str, port: u16) -> Result<Vec<PublicKey>, HostKeyStoreError> {
        if !self.path.exists() {
            return Ok(Vec::new());
        }
        russh::keys::known_hosts::known_host_keys_path(host, port, &self.path)
            .map(|found| found.into_iter().map(|(_, key)| key).collect())
            .map_err(|err| {
                HostKeyStoreError::permanent(format!("cannot read {}: {err}", self.path.display()))
            })
    }
}

#[async_trait]
impl HostKeyStore for KnownHostsFile {
    async fn known(&self, host: &str, port: u16) -> Result<Vec<PublicKey>, HostKeyStoreError> {
        self.read(host, port)
    }

    async fn learn(
        &self,
        host: &str,
        port: u16,
        key: &PublicKey,
    ) -> Result<Vec<PublicKey>, HostKeyStoreError> {
        let recorded = self.read(host, port)?;
        if !recorded.is_empty() {
            debug!(host, port, path = %self.path.display(), "host key recorded meanwhile");
            return Ok(recorded);
        }
        russh::keys::known_hosts::learn_known_hosts_path(host, port, key, &self.path).map_err(
            |err| {
                HostKeyStoreError::permanent(format!(
                    "cannot record the host key in {}: {err}",
                    self.path.display()
                ))
            },
        )?;
        self.read(host, port)
    }

    fn record_of(&self, host: &str, port: u16) -> String {
        format!(
            "the line for {} in {}",
            known_hosts_name(host, port),
            self.path.display()
        )
    }

    fn retrust_hint(&self, host: &str, port: u16) -> String {
        format!(
            "delete that line (ssh-keygen -R '{}' -f {})",
            known_hosts_name(host, port),
            self.path.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";

    fn key() -> PublicKey {
        PublicKey::from_openssh(ED25519).unwrap()
    }

    #[test]
    fn hosts_match_as_openssh_matches_them() {
        let text = format!(
            "# ESXi hosts\n\
             esxi-1.example.com,10.0.0.1 {ED25519}\n\
             [10.0.0.2]:2222 {ED25519} comment\n\
             *.lab.example.com,!bad.lab.example.com {ED25519}\n\
             10.0.0.? {ED25519}\n"
        );
        let hosts = KnownHosts::parse(&text).unwrap();
        assert_eq!(hosts.len(), 4);
        let trusted = |host: &str, port: u16| !hosts.keys_for(host, port).trusted.is_empty();
        assert!(trusted("ESXi-1.example.com", 22));
        assert!(trusted("10.0.0.1", 22));
        assert!(!trusted("10.0.0.1", 2222), "port 22 entry is not for 2222");
        assert!(trusted("10.0.0.2", 2222));
        assert!(trusted("a.lab.example.com", 22));
        assert!(!trusted("bad.lab.example.com", 22), "negated");
        assert!(trusted("10.0.0.9", 22));
        assert!(!trusted("10.0.0.10", 22));
        assert!(!trusted("esxi-2.example.com", 22));
        assert_eq!(hosts.keys_for("esxi-1.example.com", 22).trusted, [key()]);
        assert_eq!(
            hosts.keys_for("10.0.0.1", 22).trusted.len(),
            2,
            "two entries match"
        );
    }

    #[test]
    fn hashed_names_and_revoked_keys() {
        // "[10.0.0.5]:2222" hashed as `ssh-keygen -H` hashes it, with a fixed salt.
        let salt: Vec<u8> = (0..20).collect();
        let hash = hmac_sha1(&salt, b"[10.0.0.5]:2222");
        let line = format!(
            "{} {ED25519}",
            HostPatterns::HashedName { salt, hash }.to_string()
        );
        let text = format!("{line}\n@revoked * {ED25519}\n");
        let hosts = KnownHosts::parse(&text).unwrap();
        let listed = hosts.keys_for("10.0.0.5", 2222);
        assert_eq!(listed.trusted, [key()]);
        assert_eq!(listed.revoked, [key()]);
        assert!(hosts.keys_for("10.0.0.5", 22).trusted.is_empty());
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        assert_eq!(
            hex::encode(hmac_sha1(&[0x0b; 20], b"Hi There")),
            "b617318655057264e28bc0b6fb378c8ef146be00"
        );
        assert_eq!(
            hex::encode(hmac_sha1(
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    #[test]
    fn every_bad_line_is_reported() {
        let text = format!(
            "host {ED25519}\nhost ssh-ed25519 !!!\njust-a-name\n@cert-authority * {ED25519}\n"
        );
        let problems = KnownHosts::parse(&text).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(matches!(problems[0], KnownHostsError::Line { line: 2, .. }));
        assert!(matches!(problems[1], KnownHostsError::Line { line: 3, .. }));
        assert_eq!(
            problems[2],
            KnownHostsError::CertificateAuthority { line: 4 }
        );
        assert_eq!(
            KnownHosts::parse("# nothing\n\n").unwrap_err(),
            [KnownHostsError::Empty]
        );
    }

    #[test]
    fn glob() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYc"));
        assert!(!glob_match("a*b", "aXXbc"));
        assert!(glob_match("??", "ab"));
        assert!(!glob_match("?", ""));
    }
}
