//! Smoke test: the Rust side reaches OpenSSH's sshd with russh, authenticates with an in-process
//! RSA-2048 key over rsa-sha2-512, checks the host key, and runs through a forced command.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use co_testpeers::Sshd;
use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use ssh_key::private::RsaKeypair;

/// RSA key generation is slow in debug builds; one key serves every test in this binary.
static CLIENT_KEY: LazyLock<Arc<PrivateKey>> = LazyLock::new(|| {
    Arc::new(PrivateKey::from(
        RsaKeypair::random(&mut rand::rng(), 2048).unwrap(),
    ))
});

/// Accepts exactly one host key, given in OpenSSH form.
struct PinnedHostKey {
    expected: ssh_key::PublicKey,
}

impl client::Handler for PinnedHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                key.key_data() == self.expected.key_data()
            }
            PublicKeyOrCertificate::Certificate(_) => false,
        })
    }
}

/// Output of one remote command.
#[derive(Debug, Default)]
struct Exec {
    stdout: String,
    stderr: String,
    exit_status: Option<u32>,
}

fn current_user() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A forced-command fixture that echoes what the client asked for, writes to stderr and exits 3.
fn forced_command_fixture(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("forced-command.sh");
    std::fs::write(
        &path,
        "#!/bin/sh\nprintf 'original=%s\\n' \"$SSH_ORIGINAL_COMMAND\"\necho stderr-marker >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn authorized_key_line(command: &Path, key: &PrivateKey) -> String {
    format!(
        "command=\"{}\",no-port-forwarding,no-agent-forwarding,no-X11-forwarding {}\n",
        command.display(),
        key.public_key().to_openssh().unwrap()
    )
}

async fn connect(
    sshd: &Sshd,
    expected_host_key: &str,
) -> Result<Handle<PinnedHostKey>, russh::Error> {
    let handler = PinnedHostKey {
        expected: ssh_key::PublicKey::from_openssh(expected_host_key).unwrap(),
    };
    client::connect(
        Arc::new(client::Config::default()),
        ("127.0.0.1", sshd.port),
        handler,
    )
    .await
}

async fn authenticate(session: &mut Handle<PinnedHostKey>, key: Arc<PrivateKey>) -> bool {
    let hash = session.best_supported_rsa_hash().await.unwrap().flatten();
    assert_eq!(
        hash,
        Some(HashAlg::Sha512),
        "OpenSSH 9 advertises rsa-sha2-512"
    );
    session
        .authenticate_publickey(current_user(), PrivateKeyWithHashAlg::new(key, hash))
        .await
        .unwrap()
        .success()
}

async fn exec(session: &Handle<PinnedHostKey>, command: &str) -> Exec {
    let mut channel = session.channel_open_session().await.unwrap();
    channel.exec(true, command).await.unwrap();
    let mut out = Exec::default();
    while let Some(msg) = channel.wait().await {
        match msg {
            ChannelMsg::Data { data } => out.stdout.push_str(&String::from_utf8_lossy(&data)),
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                out.stderr.push_str(&String::from_utf8_lossy(&data))
            }
            ChannelMsg::ExitStatus { exit_status } => out.exit_status = Some(exit_status),
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn forced_command_receives_the_request_verbatim_and_its_exit_status_comes_back() {
    let work = tempfile::tempdir().unwrap();
    let fixture = forced_command_fixture(work.path());
    let sshd = Sshd::start(&authorized_key_line(&fixture, &CLIENT_KEY)).unwrap();

    let mut session = connect(&sshd, &sshd.host_public_key_openssh).await.unwrap();
    assert!(
        authenticate(&mut session, CLIENT_KEY.clone()).await,
        "{}",
        sshd.log()
    );

    let out = exec(
        &session,
        "vmkfstools -i '/vmfs/volumes/ds 1/a.vmdk' -d thin b.vmdk",
    )
    .await;
    assert_eq!(
        out.stdout,
        "original=vmkfstools -i '/vmfs/volumes/ds 1/a.vmdk' -d thin b.vmdk\n"
    );
    assert_eq!(out.stderr, "stderr-marker\n");
    assert_eq!(out.exit_status, Some(3));

    // Shell metacharacters reach the forced command as data and never run.
    let pwned = work.path().join("PWNED");
    let payload = format!(
        "echo hi; touch {0} && $(touch {0}) `touch {0}` | touch {0}",
        pwned.display()
    );
    let out = exec(&session, &payload).await;
    assert_eq!(out.stdout, format!("original={payload}\n"));
    assert_eq!(out.exit_status, Some(3));
    assert!(!pwned.exists(), "the payload ran a shell command");
}

#[tokio::test]
async fn a_different_host_key_is_rejected_by_the_client() {
    let work = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&authorized_key_line(
        &forced_command_fixture(work.path()),
        &CLIENT_KEY,
    ))
    .unwrap();
    let impostor = PrivateKey::random(&mut rand::rng(), ssh_key::Algorithm::Ed25519).unwrap();

    let result = connect(&sshd, &impostor.public_key().to_openssh().unwrap()).await;
    assert!(
        matches!(result, Err(russh::Error::UnknownKey)),
        "{:?}",
        result.err()
    );
}

#[tokio::test]
async fn a_key_missing_from_authorized_keys_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&authorized_key_line(
        &forced_command_fixture(work.path()),
        &CLIENT_KEY,
    ))
    .unwrap();
    let stranger =
        Arc::new(PrivateKey::random(&mut rand::rng(), ssh_key::Algorithm::Ed25519).unwrap());

    let mut session = connect(&sshd, &sshd.host_public_key_openssh).await.unwrap();
    assert!(!authenticate(&mut session, stranger).await);
}
