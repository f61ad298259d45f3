//! Installing the VIB on ESXi hosts over SSH as root: a bounded pool of hosts in parallel; a host
//! already at the version is skipped; hostd is restarted only when the new esxcli namespace is
//! not visible after installation.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt as _;
use tracing::{info, warn};

use super::identity::VIB_NAME;
use crate::error::EsxiError;
use crate::protocol::shell_quote;
use crate::ssh::{SshSession, SshSettings};

/// The ESXi commands the installer runs; tests point them at stand-ins.
#[derive(Debug, Clone)]
pub struct EsxiCommands {
    pub esxcli: String,
    pub restart_hostd: String,
    pub upload_dir: String,
}

impl Default for EsxiCommands {
    fn default() -> Self {
        Self {
            esxcli: "esxcli".into(),
            restart_hostd: "/etc/init.d/hostd restart".into(),
            upload_dir: "/tmp".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub vib_path: PathBuf,
    /// The version inside the VIB (compared with what hosts report).
    pub version: String,
    /// Host names or addresses, optionally `host:port`.
    pub hosts: Vec<String>,
    /// Root key with a normal (unrestricted) login on the hosts.
    pub ssh: SshSettings,
    /// Hosts handled at the same time.
    pub parallelism: usize,
    /// Allow restarting hostd when the namespace does not appear after installation.
    pub restart_hostd: bool,
    /// How long to wait for hostd to serve the namespace after a restart.
    pub hostd_ready_timeout: Duration,
    pub commands: EsxiCommands,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutcome {
    AlreadyInstalled,
    Installed {
        previous: Option<String>,
        hostd_restarted: bool,
    },
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInstall {
    pub host: String,
    pub outcome: HostOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstallSummary {
    pub hosts: Vec<HostInstall>,
}

impl InstallSummary {
    pub fn failed(&self) -> impl Iterator<Item = &HostInstall> {
        self.hosts
            .iter()
            .filter(|host| matches!(host.outcome, HostOutcome::Failed(_)))
    }

    pub fn all_succeeded(&self) -> bool {
        self.failed().next().is_none()
    }
}

/// Installs on every host (at most `parallelism` at once). Never fails as a whole: each host's
/// outcome is in the summary, in the order the hosts were given.
pub async fn install(options: &InstallOptions) -> InstallSummary {
    let vib = match std::fs::read(&options.vib_path) {
        Ok(bytes) => bytes,
        Err(err) => {
            let message = format!("cannot read {}: {err}", options.vib_path.display());
            let hosts = options
                .hosts
                .iter()
                .map(|host| HostInstall {
                    host: host.clone(),
                    outcome: HostOutcome::Failed(message.clone()),
                })
                .collect();
            return InstallSummary { hosts };
        }
    };
    let mut results: Vec<(usize, HostInstall)> =
        futures::stream::iter(options.hosts.iter().enumerate())
            .map(|(index, host)| {
                let vib = &vib;
                async move {
                    let outcome = match install_on_host(options, host, vib).await {
                        Ok(outcome) => outcome,
                        Err(err) => HostOutcome::Failed(err.to_string()),
                    };
                    match &outcome {
                        HostOutcome::Failed(reason) => {
                            warn!(host, reason, "VIB installation failed")
                        }
                        other => info!(host, outcome = ?other, "VIB installation done"),
                    }
                    (
                        index,
                        HostInstall {
                            host: host.clone(),
                            outcome,
                        },
                    )
                }
            })
            .buffer_unordered(options.parallelism.max(1))
            .collect()
            .await;
    results.sort_by_key(|(index, _)| *index);
    InstallSummary {
        hosts: results.into_iter().map(|(_, host)| host).collect(),
    }
}

/// The version of `vmkfstools-wrapper` in `esxcli software vib get` output, if installed.
pub fn installed_version(vib_get_output: &str) -> Option<String> {
    vib_get_output.lines().find_map(|line| {
        let (key, value) = line.trim().split_once(':')?;
        (key.trim() == "Version")
            .then(|| value.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// `host` or `host:port` (IPv6 literals in brackets: `[fd00::1]:2222`).
fn split_host_port(host: &str, default_port: u16) -> (&str, u16) {
    if let Some((name, port)) = host.rsplit_once(':')
        && let Ok(port) = port.parse()
        && (!name.contains(':') || name.starts_with('['))
    {
        return (name.trim_start_matches('[').trim_end_matches(']'), port);
    }
    (host, default_port)
}

async fn install_on_host(
    options: &InstallOptions,
    host: &str,
    vib: &[u8],
) -> Result<HostOutcome, EsxiError> {
    let (name, port) = split_host_port(host, options.ssh.port);
    let mut settings = options.ssh.clone();
    settings.port = port;
    let session = SshSession::connect(name, &settings).await?;
    let result = install_with(&session, options, vib).await;
    session.disconnect().await;
    result
}

async fn install_with(
    session: &SshSession,
    options: &InstallOptions,
    vib: &[u8],
) -> Result<HostOutcome, EsxiError> {
    let esxcli = &options.commands.esxcli;
    let get = session
        .run(&format!("{esxcli} software vib get -n {VIB_NAME}"), None)
        .await?;
    let previous = if get.exit_status == Some(0) {
        installed_version(&get.stdout)
    } else {
        None
    };
    if previous.as_deref() == Some(options.version.as_str()) {
        return Ok(HostOutcome::AlreadyInstalled);
    }
    let remote = format!(
        "{}/{VIB_NAME}-{}.vib",
        options.commands.upload_dir, options.version
    );
    let quoted = shell_quote(&remote);
    let upload_timeout = options.ssh.timeout.max(Duration::from_secs(120));
    let upload = session
        .run_with_timeout(&format!("cat > {quoted}"), Some(vib), upload_timeout)
        .await?;
    check(session, "upload the VIB", &upload)?;
    let installed = session
        .run_with_timeout(
            &format!("{esxcli} software vib install -v {quoted} -f"),
            None,
            upload_timeout,
        )
        .await;
    let _ = session.run(&format!("rm -f {quoted}"), None).await;
    check(session, "esxcli software vib install", &installed?)?;

    let mut hostd_restarted = false;
    if !namespace_ready(session, esxcli).await? {
        if !options.restart_hostd {
            return Err(EsxiError::Esxcli {
                host: session.host().to_owned(),
                command: "vmkfstools version".into(),
                message:
                    "the VIB is installed but esxcli does not serve the vmkfstools namespace yet; \
                          restart hostd (/etc/init.d/hostd restart) or allow the installer to"
                        .into(),
            });
        }
        let restart = session.run(&options.commands.restart_hostd, None).await?;
        check(session, "restart hostd", &restart)?;
        hostd_restarted = true;
        let deadline = tokio::time::Instant::now() + options.hostd_ready_timeout;
        let mut pause = Duration::from_millis(200);
        while !namespace_ready(session, esxcli).await? {
            if tokio::time::Instant::now() >= deadline {
                return Err(EsxiError::Timeout {
                    host: session.host().to_owned(),
                    what: "esxcli vmkfstools namespace after hostd restart".into(),
                    seconds: options.hostd_ready_timeout.as_secs(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
    Ok(HostOutcome::Installed {
        previous,
        hostd_restarted,
    })
}

async fn namespace_ready(session: &SshSession, esxcli: &str) -> Result<bool, EsxiError> {
    Ok(session
        .run(&format!("{esxcli} vmkfstools version"), None)
        .await?
        .exit_status
        == Some(0))
}

fn check(
    session: &SshSession,
    what: &str,
    output: &crate::ssh::CommandOutput,
) -> Result<(), EsxiError> {
    if output.exit_status == Some(0) {
        return Ok(());
    }
    Err(EsxiError::Esxcli {
        host: session.host().to_owned(),
        command: what.to_owned(),
        message: format!(
            "exit status {}: {}",
            output
                .exit_status
                .map_or_else(|| "none".to_owned(), |s| s.to_string()),
            format!("{}{}", output.stderr, output.stdout).trim()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_may_carry_a_port() {
        assert_eq!(split_host_port("esxi1", 22), ("esxi1", 22));
        assert_eq!(split_host_port("10.0.0.1:2222", 22), ("10.0.0.1", 2222));
        assert_eq!(split_host_port("[fd00::1]:2222", 22), ("fd00::1", 2222));
        assert_eq!(split_host_port("fd00::1", 22), ("fd00::1", 22));
    }

    #[test]
    fn version_is_read_from_vib_get() {
        let output = "REDHAT_bootbank_vmkfstools-wrapper_1.0.0\n   Name: vmkfstools-wrapper\n   Version: 1.0.0\n   Type: bootbank\n";
        assert_eq!(installed_version(output).as_deref(), Some("1.0.0"));
        assert_eq!(
            installed_version("[NoMatchError]\n No VIB matching VIB search specification"),
            None
        );
    }
}
