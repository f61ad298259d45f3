//! The embedded ESXi SSH endpoint enforcing the restricted-key semantics.
//!
//! Only root's keys from the host's authorized_keys are accepted. A key restricted with
//! Forklift's `command="sh -c '…'"` line (route `SSH_ORIGINAL_COMMAND` = `DS=<ds>;CMD=<op …>` to
//! `/vmfs/volumes/<ds>/secure-vmkfstools-wrapper`, [`co_esxi::forklift_key_line`]) gets that line's
//! behaviour: an empty `DS` answers `SSH_OK`, anything else runs the in-process wrapper
//! ([`crate::wrapper`]) as the shell wrapper would, `hex:` values decoded. copy-offload's line
//! (`python -I …/secure-vmkfstools-wrapper.py`) runs it with the request as sent. Shells, ptys, port forwarding
//! and subsystems (sftp) are refused; so is any command that is not the wrapper.

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};

use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use ssh_key::{PrivateKey, PublicKey};
use tokio_util::sync::CancellationToken;

use crate::faults::FaultPlan;
use crate::host::SimHost;
use crate::wrapper;
use co_esxi::protocol::{
    PROBE_REPLY, WrapperCommand, WrapperReply, shell_quote, split_shell_words,
};

/// Name of the wrapper script the populator uploads to the datastore root.
pub const WRAPPER_SCRIPT: &str = "secure-vmkfstools-wrapper";

/// An `authorized_keys` entry: its forced command (the one option the simulated sshd acts on) and
/// key.
#[derive(Debug, Clone)]
pub struct AuthorizedKey {
    pub forced_command: Option<String>,
    pub key: PublicKey,
}

/// Parses one authorized_keys line (`[options] <type> <base64> [comment]`); `None` for comments, blank
/// lines and lines whose key does not parse.
pub fn parse_authorized_key(line: &str) -> Option<AuthorizedKey> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let is_key_type =
        |s: &str| s.starts_with("ssh-") || s.starts_with("ecdsa-") || s.starts_with("sk-");
    let (options_text, key_text) = if is_key_type(line) {
        ("", line)
    } else {
        // Options end at the first whitespace outside double quotes.
        let mut quoted = false;
        let mut end = line.len();
        for (i, c) in line.char_indices() {
            match c {
                '"' => quoted = !quoted,
                c if c.is_whitespace() && !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        (&line[..end], line[end..].trim_start())
    };
    let key = PublicKey::from_openssh(key_text).ok()?;
    let mut options = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in options_text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => options.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        options.push(current);
    }
    let forced_command = options.iter().find_map(|o| {
        let value = o.strip_prefix("command=")?;
        Some(value.trim_matches('"').replace("\\\"", "\""))
    });
    Some(AuthorizedKey {
        forced_command,
        key,
    })
}

/// Splits `DS=<ds>;CMD=<op …>` as the restricted template does: DS is the text between `DS=` and the
/// first `;`, CMD the text after `CMD=`.
pub fn split_routed_command(original: &str) -> (String, String) {
    let ds = original
        .split_once("DS=")
        .map(|(_, rest)| rest.split(';').next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let cmd = original
        .split_once("CMD=")
        .map(|(_, rest)| rest.to_owned())
        .unwrap_or_default();
    (ds, cmd)
}

/// Output and exit status of one exec request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    pub stdout: String,
    pub stderr: String,
    pub status: u32,
}

impl ExecOutcome {
    fn refused(message: &str) -> ExecOutcome {
        ExecOutcome {
            stdout: String::new(),
            stderr: format!("{message}\n"),
            status: 126,
        }
    }

    fn failed(message: &str) -> ExecOutcome {
        ExecOutcome {
            stdout: String::new(),
            stderr: format!("{message}\n"),
            status: 1,
        }
    }

    fn probe() -> ExecOutcome {
        ExecOutcome {
            stdout: format!("{PROBE_REPLY}\n"),
            stderr: String::new(),
            status: 0,
        }
    }

    fn wrapper(reply: &WrapperReply, status: u32) -> ExecOutcome {
        ExecOutcome {
            stdout: reply.to_xml(),
            stderr: String::new(),
            status,
        }
    }
}

/// The wrapper script a forced command (or a direct command line) runs: `/vmfs/volumes/<ds>/<script>`
/// as the upstream template (`secure-vmkfstools-wrapper`) or the product's key line
/// (`python …/secure-vmkfstools-wrapper.py`) names it, and the words after it.
fn script_in(words: &[String]) -> Option<(String, String, &[String])> {
    let position = words.iter().position(|w| {
        w.starts_with("/vmfs/volumes/")
            && (w.ends_with(WRAPPER_SCRIPT) || w.ends_with(&format!("{WRAPPER_SCRIPT}.py")))
    })?;
    let launcher_ok = words[..position]
        .iter()
        .all(|w| matches!(w.as_str(), "sh" | "python" | "python3" | "exec" | "-I"));
    let path = &words[position];
    let (datastore, file) = path.strip_prefix("/vmfs/volumes/")?.split_once('/')?;
    (launcher_ok && !file.contains('/')).then(|| {
        (
            datastore.to_owned(),
            file.to_owned(),
            &words[position + 1..],
        )
    })
}

/// Runs the wrapper at `/vmfs/volumes/<datastore>/<file>` with `original` as its SSH_ORIGINAL_COMMAND.
async fn run_wrapper(
    host: &SimHost,
    faults: &FaultPlan,
    datastore: &str,
    file: &str,
    original: &str,
) -> ExecOutcome {
    let present = host
        .paths()
        .resolve(datastore, file)
        .is_some_and(|p| p.is_file());
    if !present {
        return ExecOutcome {
            stdout: String::new(),
            stderr: format!(
                "sh: can't open '/vmfs/volumes/{datastore}/{file}': No such file or directory\n"
            ),
            status: 2,
        };
    }
    // The shell wrapper (what Forklift's line runs) decodes `hex:` values, as the VIB's does.
    let parsed = WrapperCommand::parse_ssh_command(original).and_then(|(_, command)| {
        if file == WRAPPER_SCRIPT {
            command.decode_esxcli_values()
        } else {
            Ok(command)
        }
    });
    let command = match parsed {
        Ok(command) => command,
        Err(e) => return ExecOutcome::wrapper(&WrapperReply::failed(1, e.to_string()), 1),
    };
    if let Err(injected) = faults.apply(&format!("ssh:{}", command.operation())).await {
        return ExecOutcome::failed(&injected.message);
    }
    if command == WrapperCommand::Probe {
        return ExecOutcome::probe();
    }
    if command == WrapperCommand::Version
        && let Some(script) = host.paths().resolve(datastore, file)
    {
        // The script on the datastore answers its own version, whichever one was placed there.
        host.record_wrapper_command(&command);
        return ExecOutcome::wrapper(&crate::host_files::version_reply(&script), 0);
    }
    ExecOutcome::wrapper(&wrapper::run_ssh(host, command).await, 0)
}

/// What the host runs for an exec request by a key with the given forced command.
pub async fn exec(
    host: &SimHost,
    faults: &FaultPlan,
    forced_command: Option<&str>,
    command: &str,
) -> ExecOutcome {
    match forced_command {
        // The upstream template: the inline sh routes DS/CMD to the datastore's script.
        Some(forced)
            if forced.contains("SSH_ORIGINAL_COMMAND") && forced.contains(WRAPPER_SCRIPT) =>
        {
            let (datastore, cmd) = split_routed_command(command);
            if datastore.is_empty() {
                return match faults.apply("ssh:probe").await {
                    Ok(()) => ExecOutcome::probe(),
                    Err(injected) => ExecOutcome::failed(&injected.message),
                };
            }
            run_wrapper(host, faults, &datastore, WRAPPER_SCRIPT, &cmd).await
        }
        // A forced command naming the script (the product's key line): the wrapper parses the request.
        Some(forced) => match split_shell_words(forced)
            .ok()
            .as_deref()
            .and_then(script_in)
        {
            Some((datastore, file, [])) => {
                run_wrapper(host, faults, &datastore, &file, command).await
            }
            _ => ExecOutcome::refused(
                "lab ESXi: the forced command does not run the copy-offload wrapper",
            ),
        },
        // Unrestricted key: only the direct form `[sh|python] /vmfs/volumes/<ds>/<script> <args>` runs.
        None => match split_shell_words(command)
            .ok()
            .as_deref()
            .and_then(script_in)
        {
            Some((datastore, file, args)) => {
                let original = args
                    .iter()
                    .map(|a| shell_quote(a))
                    .collect::<Vec<_>>()
                    .join(" ");
                run_wrapper(host, faults, &datastore, &file, &original).await
            }
            None => ExecOutcome::refused("lab ESXi: this shell only runs the vmkfstools wrapper"),
        },
    }
}

/// A running SSH endpoint of one host.
#[derive(Debug)]
pub struct SshEndpoint {
    pub addr: SocketAddr,
    /// Host public key, OpenSSH format.
    pub host_key: String,
    /// Server configuration (with the host key) for connections accepted from now on.
    config: Arc<RwLock<Arc<russh::server::Config>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// A fresh Ed25519 host key and the server configuration presenting it.
fn host_config() -> std::io::Result<(String, Arc<russh::server::Config>)> {
    let seed = crate::host::random_bytes();
    let key = PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&seed));
    let host_key = key
        .public_key()
        .to_openssh()
        .map_err(std::io::Error::other)?;
    let config = Arc::new(russh::server::Config {
        keys: vec![key],
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: std::time::Duration::from_millis(10),
        auth_rejection_time_initial: Some(std::time::Duration::ZERO),
        inactivity_timeout: Some(std::time::Duration::from_secs(600)),
        ..Default::default()
    });
    Ok((host_key, config))
}

impl SshEndpoint {
    /// Listens on `addr` (port 0: an ephemeral port).
    pub async fn start_at(
        host: SimHost,
        faults: FaultPlan,
        addr: SocketAddr,
    ) -> std::io::Result<SshEndpoint> {
        let (host_key, config) = host_config()?;
        let config = Arc::new(RwLock::new(config));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let current = config.clone();
        let task = tokio::spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = stopped.cancelled() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, peer)) = accepted else { continue };
                        let handler = SshSession { host: host.clone(), faults: faults.clone(), forced_command: None };
                        let config = current.read().unwrap_or_else(PoisonError::into_inner).clone();
                        sessions.spawn(async move {
                            match russh::server::run_stream(config, stream, handler).await {
                                Ok(running) => {
                                    if let Err(e) = running.await {
                                        tracing::debug!(%peer, error = %e, "SSH session ended with an error");
                                    }
                                }
                                Err(e) => tracing::debug!(%peer, error = %e, "SSH handshake failed"),
                            }
                        });
                    }
                    Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                }
            }
            sessions.shutdown().await;
        });
        Ok(SshEndpoint {
            addr,
            host_key,
            config,
            stop,
            task,
        })
    }

    /// Gives the host a new SSH host key, as re-installing ESXi does (or as an impostor on its
    /// address would present): connections accepted from now on see it. Returns the new public key.
    pub fn replace_host_key(&mut self) -> std::io::Result<String> {
        let (host_key, config) = host_config()?;
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
        self.host_key = host_key.clone();
        Ok(host_key)
    }

    /// Stops accepting, ends open sessions and waits for them.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for SshEndpoint {
    /// A dropped endpoint (lab dropped without `shutdown`, or a failed start) stops accepting at once.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct SshSession {
    host: SimHost,
    faults: FaultPlan,
    /// Forced command of the key that authenticated (`Some("")` never happens; `None` = unrestricted).
    forced_command: Option<String>,
}

impl SshSession {
    fn find_key(&self, key: &PublicKey) -> Option<AuthorizedKey> {
        self.host
            .authorized_keys()
            .iter()
            .filter_map(|line| parse_authorized_key(line))
            .find(|entry| entry.key.key_data() == key.key_data())
    }
}

impl russh::server::Handler for SshSession {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(
            if user == "root" && self.find_key(offer.public_key).is_some() {
                Auth::Accept
            } else {
                Auth::reject()
            },
        )
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        match (user, self.find_key(key.public_key)) {
            ("root", Some(entry)) => {
                self.forced_command = entry.forced_command;
                Ok(Auth::Accept)
            }
            _ => Ok(Auth::reject()),
        }
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        finish(
            session,
            channel,
            ExecOutcome::refused("lab ESXi: interactive shells are not allowed"),
        )
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let command = String::from_utf8_lossy(data).into_owned();
        let (host, faults, forced) = (
            self.host.clone(),
            self.faults.clone(),
            self.forced_command.clone(),
        );
        let handle = session.handle();
        // The wrapper may wait (task-clean joins the clone), so answer off the session loop.
        tokio::spawn(async move {
            let outcome = exec(&host, &faults, forced.as_deref(), &command).await;
            if !outcome.stdout.is_empty() {
                let _ = handle.data(channel, outcome.stdout.into_bytes()).await;
            }
            if !outcome.stderr.is_empty() {
                let _ = handle
                    .extended_data(channel, 1, outcome.stderr.into_bytes())
                    .await;
            }
            let _ = handle.exit_status_request(channel, outcome.status).await;
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
        });
        Ok(())
    }
}

fn finish(
    session: &mut Session,
    channel: ChannelId,
    outcome: ExecOutcome,
) -> Result<(), russh::Error> {
    if !outcome.stdout.is_empty() {
        session.data(channel, outcome.stdout.into_bytes())?;
    }
    if !outcome.stderr.is_empty() {
        session.extended_data(channel, 1, outcome.stderr.into_bytes())?;
    }
    session.exit_status_request(channel, outcome.status)?;
    session.eof(channel)?;
    session.close(channel)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDHp4qNMtPgPpzCUx0EKbxzzcdaa+xiSbs7Dv8y2E1Jc lab";

    #[test]
    fn parses_restricted_line_with_quoted_command() {
        let line = format!(
            "command=\"sh -c 'DS=$(echo \\\"$SSH_ORIGINAL_COMMAND\\\" | sed -n s/x/y/p); exec sh /vmfs/volumes/$DS/secure-vmkfstools-wrapper'\",no-port-forwarding,no-agent-forwarding,no-X11-forwarding {KEY}"
        );
        let entry = parse_authorized_key(&line).unwrap();
        let forced = entry.forced_command.unwrap();
        // The quoted command holds commas and semicolons; it ends where its quotes do.
        assert!(forced.contains("SSH_ORIGINAL_COMMAND") && forced.contains(WRAPPER_SCRIPT));
        assert!(forced.ends_with("secure-vmkfstools-wrapper'"), "{forced}");
        assert!(parse_authorized_key(KEY).unwrap().forced_command.is_none());
        assert!(parse_authorized_key("# comment").is_none());
    }

    #[test]
    fn routed_command_splits_like_the_template() {
        assert_eq!(
            split_routed_command("DS=;CMD=status test-task-id"),
            (String::new(), "status test-task-id".into())
        );
        assert_eq!(
            split_routed_command("DS=ds1;CMD=--task-get -i abc"),
            ("ds1".to_owned(), "--task-get -i abc".to_owned())
        );
    }
}
