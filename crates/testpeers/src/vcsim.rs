//! vcsim, govmomi's vCenter/ESXi simulator, built from `peers/vcsim` by `scripts/peers.sh install vcsim`
//! and started per test on `127.0.0.1:0` with a fresh self-signed certificate.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::process::PeerProcess;

/// How long vcsim may take to print its URL (it needs ~0.2 s; the margin is for loaded CI machines).
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// A vcsim instance owned by one test; dropping it kills the process and deletes its datastore files.
#[derive(Debug)]
pub struct Vcsim {
    /// The SDK endpoint, `https://127.0.0.1:<port>/sdk`.
    pub url: String,
    /// The only user name Login accepts.
    pub username: String,
    /// The only password Login accepts.
    pub password: String,
    /// PEM of the server certificate (self-signed, CN and IP SAN 127.0.0.1): the trust anchor to pin.
    pub ca_pem: String,
    /// SHA-256 of the server certificate's DER, upper-case hex bytes joined by `:`.
    pub thumbprint_sha256: String,
    process: PeerProcess,
    // Keeps the first-line pipe open so vcsim never writes to a closed stdout.
    _stdout: BufReader<ChildStdout>,
    // vcsim runs with -exit-on-stdin-eof: when this process dies, even by SIGKILL, the pipe closes
    // and vcsim exits instead of leaking.
    _stdin: ChildStdin,
    // Holds the TLS files and the datastore directories (vcsim creates them under TMPDIR).
    dir: TempDir,
}

impl Vcsim {
    /// Starts the default vCenter (VPX) model; credentials `user` / `pass`.
    pub fn start() -> anyhow::Result<Vcsim> {
        Self::start_with(&[])
    }

    /// Starts vcsim with extra flags, e.g. `["-method-delay", "RetrievePropertiesEx:3000"]`, `["-esx"]`,
    /// `["-trace-file", path]`.
    pub fn start_with(extra_args: &[&str]) -> anyhow::Result<Vcsim> {
        let binary = vcsim_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("vcsim-")
            .tempdir()
            .context("creating the vcsim directory")?;
        let (username, password) = ("user".to_owned(), "pass".to_owned());

        let tls = ServerCertificate::generate()?;
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, &tls.cert_pem).context("writing the vcsim certificate")?;
        std::fs::write(&key_path, &tls.key_pem).context("writing the vcsim key")?;

        let log_path = dir.path().join("vcsim.log");
        let log = File::create(&log_path).context("creating the vcsim log")?;
        let mut child = Command::new(&binary)
            .args([
                "-l",
                "127.0.0.1:0",
                "-username",
                &username,
                "-password",
                &password,
            ])
            .arg("-tlscert")
            .arg(&cert_path)
            .arg("-tlskey")
            .arg(&key_path)
            .arg("-exit-on-stdin-eof")
            .args(extra_args)
            .env("TMPDIR", dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child
            .stdout
            .take()
            .context("vcsim stdout was not captured")?;
        let stdin = child.stdin.take().context("vcsim stdin was not captured")?;
        let mut process = PeerProcess::new(child, log_path);

        let (url, stdout) = match read_first_line(stdout) {
            Ok(read) => read,
            Err(e) => {
                // The reader gives up on a deadline or EOF; the log says why vcsim did not get there.
                let exited = process
                    .exited()
                    .map(|s| format!(" (exited: {s})"))
                    .unwrap_or_default();
                bail!(
                    "vcsim did not print its URL{exited}: {e:#}\n{}",
                    process.log_tail()
                );
            }
        };
        if !url.starts_with("https://127.0.0.1:") || !url.ends_with("/sdk") {
            bail!(
                "vcsim printed {url:?}, expected https://127.0.0.1:<port>/sdk\n{}",
                process.log_tail()
            );
        }

        Ok(Vcsim {
            url,
            username,
            password,
            ca_pem: tls.cert_pem,
            thumbprint_sha256: tls.thumbprint_sha256,
            process,
            _stdout: stdout,
            _stdin: stdin,
            dir,
        })
    }

    /// `host:port` of the SDK endpoint.
    pub fn authority(&self) -> &str {
        let rest = self.url.trim_start_matches("https://");
        rest.split_once('/')
            .map_or(rest, |(authority, _)| authority)
    }

    /// vcsim's stderr so far (failures, `-method-delay` echo, shutdown).
    pub fn log(&self) -> String {
        self.process.log_tail()
    }

    /// The private directory of this instance (TLS files, datastore directories, log).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// Reads vcsim's first stdout line on a helper thread, so a hung start-up ends at the deadline.
fn read_first_line(stdout: ChildStdout) -> anyhow::Result<(String, BufReader<ChildStdout>)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let result = reader
            .read_line(&mut line)
            .map(|_| (line.trim().to_owned(), reader));
        let _ = tx.send(result);
    });
    match rx.recv_timeout(STARTUP_DEADLINE) {
        Ok(Ok((line, _))) if line.is_empty() => bail!("stdout closed before the URL line"),
        Ok(Ok(read)) => Ok(read),
        Ok(Err(e)) => Err(e).context("reading vcsim's stdout"),
        Err(_) => bail!("no URL line within {STARTUP_DEADLINE:?}"),
    }
}

/// A self-signed serving certificate for 127.0.0.1.
struct ServerCertificate {
    cert_pem: String,
    key_pem: String,
    thumbprint_sha256: String,
}

impl ServerCertificate {
    fn generate() -> anyhow::Result<Self> {
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .context("building the vcsim certificate parameters")?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        let key = rcgen::KeyPair::generate().context("generating the vcsim TLS key")?;
        let cert = params
            .self_signed(&key)
            .context("signing the vcsim certificate")?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            thumbprint_sha256: colon_hex(&Sha256::digest(cert.der())),
        })
    }
}

/// `AB:CD:…`, the form vSphere uses for certificate thumbprints.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The vcsim binary: `$COPY_OFFLOAD_VCSIM`, or the one `scripts/peers.sh install vcsim` built for the
/// installed govmomi library and the current `peers/vcsim/*.go` (a stale build is not used).
pub fn vcsim_binary() -> anyhow::Result<PathBuf> {
    crate::go_peer::binary("vcsim", "COPY_OFFLOAD_VCSIM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_use_the_vsphere_form() {
        assert_eq!(colon_hex(&[0xab, 0x01, 0xff]), "AB:01:FF");
    }
}
