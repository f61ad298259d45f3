//! `copy-offload vib build|install`: packs the vmkfstools-wrapper VIB and installs it on ESXi hosts
//! over SSH. Argument handling only; the packaging and the install logic live in `co_esxi::vib`.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use clap::Args;
use co_api::Secret;
use co_esxi::assets::WRAPPER_VERSION;
use co_esxi::ssh::{HostKeyPolicy, SshSettings};
use co_esxi::vib::{self, EsxiCommands, HostOutcome, InstallOptions};
use co_populator::ExitCode;
use co_vsphere::{Client, ClientConfig, TlsTrust};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Where to write the VIB.
    #[arg(long, default_value = "vmkfstools-wrapper.vib")]
    out: PathBuf,
    /// Version written into the VIB descriptor (defaults to the bundled wrapper's version).
    #[arg(long, default_value = WRAPPER_VERSION)]
    version: String,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The VIB to install (build one with `copy-offload vib build`).
    #[arg(long, env = "VIB_PATH", default_value = "vmkfstools-wrapper.vib")]
    vib: PathBuf,
    /// The version inside the VIB; hosts already at it are skipped.
    #[arg(long, default_value = WRAPPER_VERSION)]
    version: String,
    /// Private key (PEM/OpenSSH) allowed to log in as root on the hosts.
    #[arg(long, env = "SSH_KEY_FILE")]
    ssh_key: PathBuf,
    /// ESXi hosts (`host` or `host:port`), comma separated.
    #[arg(
        long,
        env = "ESXI_HOSTS",
        value_delimiter = ',',
        required_unless_present = "vcenter"
    )]
    hosts: Vec<String>,
    /// Install on every host of this vCenter instead (its first management IP each).
    #[arg(long, env = "GOVMOMI_HOSTNAME", conflicts_with = "hosts")]
    vcenter: Option<String>,
    #[arg(long, env = "GOVMOMI_USERNAME", requires = "vcenter")]
    vcenter_username: Option<String>,
    #[arg(
        long,
        env = "GOVMOMI_PASSWORD",
        hide_env_values = true,
        requires = "vcenter"
    )]
    vcenter_password: Option<String>,
    /// Skip vCenter certificate verification (only the literal `true`).
    #[arg(long, env = "GOVMOMI_INSECURE")]
    vcenter_insecure: Option<String>,
    /// Limit the vCenter host discovery to one datacenter.
    #[arg(long, requires = "vcenter")]
    datacenter: Option<String>,
    /// Host keys seen on first contact are recorded here and enforced afterwards.
    #[arg(long, default_value = "copy-offload-known_hosts")]
    known_hosts: PathBuf,
    /// Hosts installed at the same time.
    #[arg(long, default_value_t = 4)]
    parallelism: usize,
    /// Allow restarting hostd when the esxcli namespace does not appear after the install.
    #[arg(long, env = "RESTART_HOSTD", default_value_t = true, action = clap::ArgAction::Set)]
    restart_hostd: bool,
    /// Per-operation SSH timeout.
    #[arg(long, env = "SSH_TIMEOUT_SECONDS", default_value_t = 30)]
    ssh_timeout_seconds: u64,
}

pub fn build(args: &BuildArgs) -> ExitCode {
    match vib::build(&args.out, &args.version) {
        Ok(info) => {
            println!(
                "built {} (version {}, released {}, payload {} bytes, sha256 {})",
                info.path.display(),
                info.version,
                info.release_date,
                info.payload_size,
                info.payload_sha256
            );
            ExitCode::Success
        }
        Err(err) => {
            eprintln!("copy-offload vib build: {err}");
            ExitCode::Permanent
        }
    }
}

pub async fn install(args: &InstallArgs) -> ExitCode {
    let key = match std::fs::read(&args.ssh_key) {
        Ok(key) => key,
        Err(err) => {
            eprintln!(
                "copy-offload vib install: cannot read the SSH key {}: {err}",
                args.ssh_key.display()
            );
            return ExitCode::BadArguments;
        }
    };
    let host_key = HostKeyPolicy::TrustOnFirstUse {
        known_hosts: args.known_hosts.clone(),
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(key);
    let mut ssh = match SshSettings::from_base64_pem(&encoded, host_key) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!(
                "copy-offload vib install: the SSH key {} is not usable: {err}",
                args.ssh_key.display()
            );
            return ExitCode::BadArguments;
        }
    };
    ssh.timeout = Duration::from_secs(args.ssh_timeout_seconds.max(1));

    let hosts = match &args.vcenter {
        None => args.hosts.clone(),
        Some(vcenter) => match vcenter_hosts(args, vcenter).await {
            Ok(hosts) => hosts,
            Err(message) => {
                eprintln!("copy-offload vib install: {message}");
                return ExitCode::Permanent;
            }
        },
    };
    if hosts.is_empty() {
        eprintln!("copy-offload vib install: no ESXi hosts to install on");
        return ExitCode::BadArguments;
    }

    let options = InstallOptions {
        vib_path: args.vib.clone(),
        version: args.version.clone(),
        hosts,
        ssh,
        parallelism: args.parallelism,
        restart_hostd: args.restart_hostd,
        hostd_ready_timeout: Duration::from_secs(120),
        commands: EsxiCommands::default(),
    };
    let summary = vib::install(&options).await;
    for host in &summary.hosts {
        match &host.outcome {
            HostOutcome::AlreadyInstalled => {
                println!("{}: already at {}", host.host, args.version)
            }
            HostOutcome::Installed {
                previous,
                hostd_restarted,
            } => println!(
                "{}: installed {} (was {}){}",
                host.host,
                args.version,
                previous.as_deref().unwrap_or("not installed"),
                if *hostd_restarted {
                    ", hostd restarted"
                } else {
                    ""
                }
            ),
            HostOutcome::Failed(reason) => println!("{}: FAILED: {reason}", host.host),
        }
    }
    if summary.all_succeeded() {
        ExitCode::Success
    } else {
        ExitCode::Retryable
    }
}

async fn vcenter_hosts(args: &InstallArgs, vcenter: &str) -> Result<Vec<String>, String> {
    let (Some(username), Some(password)) = (&args.vcenter_username, &args.vcenter_password) else {
        return Err("--vcenter needs --vcenter-username and --vcenter-password (GOVMOMI_USERNAME / GOVMOMI_PASSWORD)".into());
    };
    let mut config = ClientConfig::new(vcenter, username, Secret::new(password.clone()));
    config.trust = TlsTrust::from_env_values(args.vcenter_insecure.as_deref(), None);
    let client = Client::login(config)
        .await
        .map_err(|err| format!("cannot log in to vCenter {vcenter}: {err}"))?;
    let hosts = co_esxi::vsphere::discover_hosts(&client, args.datacenter.as_deref())
        .await
        .map_err(|err| format!("cannot list the ESXi hosts of {vcenter}: {err}"));
    // A failed logout only leaves a session to expire on the server.
    let _ = client.logout().await;
    hosts
}
