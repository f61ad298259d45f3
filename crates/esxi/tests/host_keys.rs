//! Host-key policies against OpenSSH sshd: a static known_hosts list (the `SSH_KNOWN_HOSTS`
//! policy) and trust on first use in a host-key store, where a relay on the host's address that
//! switches to another server plays the man-in-the-middle.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use co_esxi::EsxiError;
use co_esxi::host_keys::{KnownHosts, KnownHostsFile, fingerprint};
use co_esxi::ssh::{HostKeyPolicy, SshSession, SshSettings};
use co_testpeers::Sshd;
use russh::keys::PublicKey;
use support::ClientKey;

struct Server {
    sshd: Sshd,
    host_key: PublicKey,
}

impl Server {
    fn start(client: &ClientKey) -> Self {
        let sshd = Sshd::start(&format!("{}\n", client.public_openssh)).unwrap();
        let host_key = PublicKey::from_openssh(&sshd.host_public_key_openssh).unwrap();
        Self { sshd, host_key }
    }

    fn authentications(&self) -> usize {
        self.sshd.log().matches("Accepted publickey").count()
    }
}

fn settings(client: &ClientKey, port: u16, policy: HostKeyPolicy) -> SshSettings {
    let mut settings = SshSettings::from_base64_pem(&client.base64_pem(), policy).unwrap();
    settings.port = port;
    settings.timeout = std::time::Duration::from_secs(20);
    settings
}

async fn connect(settings: &SshSettings) -> Result<(), EsxiError> {
    let session = SshSession::connect("127.0.0.1", settings).await?;
    session.disconnect().await;
    Ok(())
}

fn known_hosts(text: &str) -> HostKeyPolicy {
    HostKeyPolicy::KnownHosts(
        KnownHosts::parse(text)
            .unwrap()
            .from_source("SSH_KNOWN_HOSTS"),
    )
}

#[tokio::test]
async fn a_known_hosts_list_accepts_only_the_listed_key_of_a_listed_host() {
    let client = ClientKey::generate_ed25519();
    let server = Server::start(&client);
    let port = server.sshd.port;
    let listed = server.sshd.host_public_key_openssh.trim();

    let accepted = known_hosts(&format!(
        "# pre-seeded\nesxi-9.example.com {listed}\n[127.0.0.1]:{port} {listed}\n"
    ));
    connect(&settings(&client, port, accepted)).await.unwrap();
    assert_eq!(server.authentications(), 1);

    // Not listed (only port 22 is): refused, naming the key it presented and how to list it.
    let unlisted = known_hosts(&format!("127.0.0.1 {listed}\n"));
    let err = connect(&settings(&client, port, unlisted))
        .await
        .unwrap_err();
    assert!(matches!(err, EsxiError::HostKeyUntrusted { .. }), "{err}");
    let message = err.to_string();
    for needle in [
        fingerprint(&server.host_key).as_str(),
        &format!("[127.0.0.1]:{port} is not listed in SSH_KNOWN_HOSTS"),
        &format!("ssh-keyscan -p {port} 127.0.0.1"),
    ] {
        assert!(message.contains(needle), "{needle:?} not in: {message}");
    }

    // Listed with another key: refused, naming both fingerprints.
    let other = ClientKey::generate_ed25519();
    let other_key = PublicKey::from_openssh(&other.public_openssh).unwrap();
    let wrong = known_hosts(&format!(
        "[127.0.0.1]:{port} {}\n",
        other.public_key_without_comment()
    ));
    let err = connect(&settings(&client, port, wrong)).await.unwrap_err();
    assert!(matches!(err, EsxiError::HostKeyMismatch { .. }), "{err}");
    let message = err.to_string();
    for needle in [
        format!("the host presented {}", fingerprint(&server.host_key)),
        format!("the trusted key is {}", fingerprint(&other_key)),
        "replace them with the host's new key in SSH_KNOWN_HOSTS".into(),
    ] {
        assert!(message.contains(&needle), "{needle:?} not in: {message}");
    }

    // Listed, but revoked.
    let revoked = known_hosts(&format!(
        "[127.0.0.1]:{port} {listed}\n@revoked * {listed}\n"
    ));
    let err = connect(&settings(&client, port, revoked))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("marks this key @revoked"), "{err}");

    assert_eq!(
        server.authentications(),
        1,
        "no refused connection got as far as authenticating"
    );
}

/// A TCP relay on a fixed loopback port to whichever server `target` names: the host's address,
/// answered first by the real host and then by an impostor.
struct Relay {
    port: u16,
    target: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Arc::new(AtomicU16::new(target));
        let current = target.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let port = current.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { port, target, task }
    }

    fn switch_to(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_store_learns_the_first_key_once_then_refuses_a_changed_one() {
    let client = ClientKey::generate_ed25519();
    let host = Server::start(&client);
    let impostor = Server::start(&client);
    let relay = Relay::start(host.sshd.port).await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("known_hosts");
    let store = HostKeyPolicy::Store(Arc::new(KnownHostsFile::new(&record)));
    let settings = settings(&client, relay.port, store);

    connect(&settings).await.unwrap();
    connect(&settings).await.unwrap();
    let recorded = std::fs::read_to_string(&record).unwrap();
    let entries = recorded.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(entries, 1, "learned once: {recorded}");
    let body = host.sshd.host_public_key_openssh.split_whitespace().nth(1);
    assert!(recorded.contains(body.unwrap()), "{recorded}");
    assert_eq!(host.authentications(), 2);

    relay.switch_to(impostor.sshd.port);
    let err = connect(&settings).await.unwrap_err();
    assert!(matches!(err, EsxiError::HostKeyMismatch { .. }), "{err}");
    let message = err.to_string();
    for needle in [
        format!("the host presented {}", fingerprint(&impostor.host_key)),
        format!("the trusted key is {}", fingerprint(&host.host_key)),
        format!("ssh-keygen -R '[127.0.0.1]:{}'", relay.port),
        "man-in-the-middle".into(),
    ] {
        assert!(message.contains(&needle), "{needle:?} not in: {message}");
    }
    assert_eq!(impostor.authentications(), 0, "the impostor got nothing");
    assert_eq!(std::fs::read_to_string(&record).unwrap(), recorded);
}
