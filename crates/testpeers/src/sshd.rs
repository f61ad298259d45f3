//! OpenSSH's sshd started per test on a free loopback port with its own configuration, host key and
//! authorized_keys, standing in for an ESXi host's SSH service.

use std::fs::{File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use tempfile::TempDir;

use crate::process::{PeerProcess, log_tail};

const SSHD: &str = "/usr/sbin/sshd";
/// sshd needs well under a second to listen; the margin is for loaded CI machines.
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
/// Another process can grab the port between our probe and sshd's bind; that many fresh ports are tried.
const BIND_ATTEMPTS: usize = 5;

/// An sshd instance owned by one test; dropping it kills the listener.
#[derive(Debug)]
pub struct Sshd {
    /// The loopback address sshd listens on (127.0.0.1 unless started with [`Sshd::start_on`]).
    pub address: IpAddr,
    /// The port sshd listens on.
    pub port: u16,
    /// The private directory holding sshd_config, the host key and authorized_keys.
    pub dir: PathBuf,
    /// The host's ed25519 public key, `ssh-ed25519 AAAA…`, for the client's host-key check.
    pub host_public_key_openssh: String,
    /// sshd's log (LogLevel VERBOSE): authentication decisions and refused requests.
    pub log_path: PathBuf,
    process: PeerProcess,
    _dir: TempDir,
}

impl Sshd {
    /// Starts sshd accepting the keys in `authorized_keys` (authorized_keys(5) format, options such as
    /// `command="…"` included) for the user running the test. Password and keyboard-interactive
    /// authentication, forwarding and environment passing are off; sftp is internal-sftp.
    pub fn start(authorized_keys: &str) -> anyhow::Result<Sshd> {
        Self::start_on(authorized_keys, IpAddr::V4(Ipv4Addr::LOCALHOST), None)
    }

    /// As [`Sshd::start`], listening on `address` (a loopback address such as a lab host's
    /// management IP) at `port`, or at a free port when `None`. A given port is tried once: when
    /// it is taken the error says so, and the caller picks another.
    pub fn start_on(
        authorized_keys: &str,
        address: IpAddr,
        port: Option<u16>,
    ) -> anyhow::Result<Sshd> {
        if !Path::new(SSHD).is_file() {
            bail!("sshd not found at {SSHD}: run `scripts/peers.sh install sshd`");
        }
        ensure_privilege_separation_dir()?;

        let dir = tempfile::Builder::new()
            .prefix("sshd-")
            .tempdir()
            .context("creating the sshd directory")?;
        let host_key_path = dir.path().join("host_ed25519");
        let host_key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .context("generating the sshd host key")?;
        host_key
            .write_openssh_file(&host_key_path, LineEnding::LF)
            .context("writing the sshd host key")?;
        let host_public_key_openssh = host_key
            .public_key()
            .to_openssh()
            .context("encoding the sshd host public key")?;
        let authorized_keys_path = dir.path().join("authorized_keys");
        std::fs::write(&authorized_keys_path, authorized_keys)
            .context("writing authorized_keys")?;
        let log_path = dir.path().join("sshd.log");

        let mut last_error = None;
        let attempts = if port.is_some() { 1 } else { BIND_ATTEMPTS };
        for _ in 0..attempts {
            let port = match port {
                Some(port) => port,
                None => free_port(address)?,
            };
            let config_path = dir.path().join("sshd_config");
            std::fs::write(
                &config_path,
                sshd_config(
                    dir.path(),
                    address,
                    port,
                    &host_key_path,
                    &authorized_keys_path,
                ),
            )
            .context("writing sshd_config")?;
            // A fresh log per attempt: readiness is read from it.
            File::create(&log_path).context("creating the sshd log")?;
            // Append mode: sshd's own -E writes share the file.
            let log = OpenOptions::new()
                .append(true)
                .open(&log_path)
                .context("opening the sshd log")?;
            let child = Command::new(SSHD)
                .arg("-D")
                .arg("-f")
                .arg(&config_path)
                .arg("-E")
                .arg(&log_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {SSHD}"))?;
            let mut process = PeerProcess::new(child, log_path.clone());
            match wait_listening(&mut process, &log_path, address, port) {
                Ok(()) => {
                    return Ok(Sshd {
                        address,
                        port,
                        dir: dir.path().to_owned(),
                        host_public_key_openssh,
                        log_path,
                        process,
                        _dir: dir,
                    });
                }
                Err(Startup::PortTaken) => {
                    last_error = Some(format!("port {port} taken\n{}", process.log_tail()))
                }
                Err(Startup::Failed(e)) => return Err(e),
            }
        }
        bail!(
            "sshd could not bind a port of {address} in {attempts} attempt(s): {}",
            last_error.unwrap_or_default()
        )
    }

    /// Replaces the accepted keys. sshd reads the file at every authentication, so the next
    /// connection sees the new lines; the file is replaced whole, never read half-written.
    pub fn replace_authorized_keys(&self, authorized_keys: &str) -> anyhow::Result<()> {
        let path = self.dir.join("authorized_keys");
        let staged = self.dir.join("authorized_keys.new");
        std::fs::write(&staged, authorized_keys).context("writing the new authorized_keys")?;
        std::fs::rename(&staged, &path).context("replacing authorized_keys")
    }

    /// sshd's log so far.
    pub fn log(&self) -> String {
        log_tail(&self.log_path)
    }

    /// Whether the listener is still running (it exits on fatal errors only).
    pub fn is_running(&mut self) -> bool {
        self.process.exited().is_none()
    }
}

fn sshd_config(
    dir: &Path,
    address: IpAddr,
    port: u16,
    host_key: &Path,
    authorized_keys: &Path,
) -> String {
    format!(
        "\
ListenAddress {address}
Port {port}
HostKey {host_key}
PidFile {pid}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The test directory lives under /tmp, which StrictModes rejects as world-writable.
StrictModes no
AllowTcpForwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
X11Forwarding no
PermitTunnel no
PermitUserEnvironment no
PrintMotd no
LogLevel VERBOSE
Subsystem sftp internal-sftp
",
        host_key = host_key.display(),
        pid = dir.join("sshd.pid").display(),
        authorized_keys = authorized_keys.display(),
    )
}

/// sshd exits at start-up without its privilege-separation directory, and nothing else creates it on a
/// machine without an init system.
fn ensure_privilege_separation_dir() -> anyhow::Result<()> {
    let dir = Path::new("/run/sshd");
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating {} (sshd's privilege-separation directory): run `scripts/peers.sh install sshd` as root", dir.display()))
}

fn free_port(address: IpAddr) -> anyhow::Result<u16> {
    let probe = TcpListener::bind((address, 0))
        .with_context(|| format!("finding a free port of {address}"))?;
    Ok(probe.local_addr().context("reading the probe port")?.port())
}

enum Startup {
    PortTaken,
    Failed(anyhow::Error),
}

/// Polls sshd's log for its "Server listening" line until a deadline.
fn wait_listening(
    process: &mut PeerProcess,
    log_path: &Path,
    address: IpAddr,
    port: u16,
) -> Result<(), Startup> {
    let ready = format!("Server listening on {address} port {port}");
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        let log = std::fs::read_to_string(log_path).unwrap_or_default();
        if log.contains(&ready) {
            return Ok(());
        }
        if let Some(status) = process.exited() {
            if log.contains("Address already in use") {
                return Err(Startup::PortTaken);
            }
            return Err(Startup::Failed(anyhow::anyhow!(
                "sshd exited at start-up ({status})\n{}",
                process.log_tail()
            )));
        }
        if Instant::now() >= deadline {
            return Err(Startup::Failed(anyhow::anyhow!(
                "sshd not listening on port {port} after {STARTUP_DEADLINE:?}\n{}",
                process.log_tail()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
