//! The `copy-offload` binary: thin subcommands over the library crates. It parses arguments,
//! sets up logging and TLS, and maps outcomes to the exit codes of `co_populator::ExitCode`.

use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::process::ExitCode as ProcessExitCode;

use clap::{Parser, Subcommand};
use co_populator::ExitCode;
use co_populator::{
    ArgProblem, ArgProblems, PopulateArgs, PopulateConfig, requests_version, version_text,
};
use tracing_subscriber::EnvFilter;

mod demo;
mod demo_cluster;
mod lab_cmd;
mod plan_cmd;
mod preflight_cmd;
mod vib_cmd;

/// Copy VMware vSphere disks into Kubernetes volumes by offloading the copy to the storage array.
#[derive(Debug, Parser)]
#[command(name = "copy-offload", version, propagate_version = false)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Copy one disk (the populator pod's entrypoint).
    Populate(Box<PopulateArgs>),
    /// Run the volume populator controller (PVCs whose dataSourceRef names a
    /// VSphereXcopyVolumePopulator get a populator pod and come out Bound with the disk's data)
    /// and the planner (Forklift's Providers get their SSH key pair while feature_copy_offload
    /// is on).
    Controller(Box<ControllerArgs>),
    /// Simulated vCenter, ESXi and storage arrays for demos and tests.
    Lab {
        #[command(subcommand)]
        command: LabCommand,
    },
    /// Check, read-only, that an environment is ready for a migration and predict the copy path
    /// of each disk (same flags and environment as populate, plus --vm/--disk).
    Preflight(Box<preflight_cmd::PreflightArgs>),
    /// Show what the planner would create for a Forklift Plan (`--dry-run`): per offloaded disk
    /// the PVC, the VSphereXcopyVolumePopulator and the Secret (values redacted), as YAML.
    Plan(Box<plan_cmd::PlanArgs>),
    /// Build or install the vmkfstools-wrapper VIB for ESXi hosts.
    Vib {
        #[command(subcommand)]
        command: VibCommand,
    },
    /// Print the CustomResourceDefinitions copy-offload ships, as YAML.
    Crd,
}

/// `copy-offload controller`: the two controllers, each with its own flags.
#[derive(Debug, clap::Args)]
struct ControllerArgs {
    #[command(flatten)]
    populator: co_controller::Settings,
    #[command(flatten)]
    planner: co_planner::Settings,
    /// Which controllers to run: `both`, `populator` (PVC population only) or `planner`
    /// (Forklift objects only).
    #[arg(
        long,
        env = "COPY_OFFLOAD_CONTROLLERS",
        value_enum,
        default_value = "both"
    )]
    run: RunControllers,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RunControllers {
    Both,
    Populator,
    Planner,
}

#[derive(Debug, Subcommand)]
enum LabCommand {
    /// Serve the simulated vCenter, ESXi hosts and arrays until Ctrl-C.
    Serve(lab_cmd::ServeArgs),
    /// Copy a lab VM's disks with the real populate code path, verify the bytes, print a summary.
    Demo(Box<demo::DemoArgs>),
}

#[derive(Debug, Subcommand)]
enum VibCommand {
    /// Build the vmkfstools-wrapper VIB.
    Build(vib_cmd::BuildArgs),
    /// Install the VIB on ESXi hosts over SSH (in parallel; hosts already at the version are skipped).
    Install(Box<vib_cmd::InstallArgs>),
}

fn main() -> ProcessExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if wants_version(&argv) {
        print!("{}", version_text());
        return ExitCode::Success.into();
    }
    // Unknown populate flags and unreadable environment values are reported with every other
    // argument problem, not alone (and unnamed) by the parser.
    let (argv, unknown_flags, repeated_flags) = if argv.get(1).and_then(|a| a.to_str())
        == Some("populate")
    {
        let (rest, mut unknown) = co_populator::split_unknown_flags(argv[2..].to_vec());
        for (env, problem) in co_populator::non_utf8_environment(|name| std::env::var_os(name)) {
            // SAFETY: no other thread exists yet (logging and the runtime start later), so
            // nothing reads the environment while it changes.
            unsafe { std::env::remove_var(env) };
            unknown.push(problem);
        }
        let repeated = co_populator::repeated_flags(&rest);
        (
            argv[..2].iter().cloned().chain(rest).collect(),
            unknown,
            repeated,
        )
    } else {
        (argv, Vec::new(), Vec::new())
    };
    let cli = Cli::parse_from(argv);
    // The lab commands and preflight talk to people on stdout; their logs stay quiet unless
    // RUST_LOG asks.
    init_logging(match cli.command {
        Command::Lab { .. } | Command::Preflight(_) | Command::Plan(_) => "warn",
        _ => "info",
    });
    // kube, reqwest and russh all use rustls; ring is the one crypto provider of the build.
    // An error only means a provider is already installed, which is the state we want.
    let _ = rustls::crypto::ring::default_provider().install_default();

    match cli.command {
        Command::Populate(args) => populate(&args, unknown_flags, &repeated_flags),
        Command::Crd => {
            print!("{}", co_api::crds_yaml());
            ExitCode::Success
        }
        Command::Controller(args) => block_on(run_controllers(*args)),
        Command::Preflight(args) => block_on(async move { preflight_cmd::run(&args).await }),
        Command::Plan(args) => block_on(async move { plan_cmd::run(&args).await }),
        Command::Lab {
            command: LabCommand::Serve(args),
        } => block_on(lab_cmd::until_signalled(|cancel| {
            lab_cmd::serve(args, cancel)
        })),
        Command::Lab {
            command: LabCommand::Demo(args),
        } => block_on(lab_cmd::until_signalled(|cancel| async move {
            if args.cluster {
                demo_cluster::run(*args, cancel).await
            } else {
                demo::run(*args, cancel).await
            }
        })),
        Command::Vib {
            command: VibCommand::Build(args),
        } => vib_cmd::build(&args),
        Command::Vib {
            command: VibCommand::Install(args),
        } => block_on(vib_cmd::install(&args)),
    }
    .into()
}

/// `copy-offload --version` and `copy-offload populate --version` print before any parsing, so
/// they succeed whatever else is on the command line (the populator controller's contract).
fn wants_version(argv: &[OsString]) -> bool {
    match argv.get(1).and_then(|arg| arg.to_str()) {
        Some("--version" | "-V") => true,
        Some("populate" | "preflight") => requests_version(&argv[2..]),
        _ => false,
    }
}

/// Validates every argument before any network call, then runs the copy (warnings about accepted but
/// suspicious values are logged by the engine).
fn populate(args: &PopulateArgs, unknown_flags: Vec<ArgProblem>, repeated: &[String]) -> ExitCode {
    let config = match (args.validate(), unknown_flags.is_empty()) {
        (Ok(config), true) => config,
        (result, _) => {
            let mut problems = unknown_flags;
            problems.extend(result.err().map(|p| p.0).unwrap_or_default());
            eprint!("{}", ArgProblems(problems));
            eprintln!(
                "Run `copy-offload populate --help` for every flag and its environment variable."
            );
            return ExitCode::BadArguments;
        }
    };
    for warning in repeated {
        tracing::warn!(%warning, "argument accepted, but check it");
    }
    log_configuration(&config);
    let mut options = co_populator::RunOptions::default();
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
        // Outside a pod no populator controller scrapes the completion metric: do not wait for it.
        options.final_scrape_wait = std::time::Duration::ZERO;
    }
    block_on(async move { co_populator::run_with(config, options).await.exit_code })
}

/// One line saying what the run will do, without secrets, certificates (by fingerprint only) or
/// values long enough to drown the log.
fn log_configuration(config: &PopulateConfig) {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let short = |text: &str| -> String {
        const MAX: usize = 160;
        if text.chars().count() <= MAX {
            text.to_owned()
        } else {
            let cut: String = text.chars().take(MAX).collect();
            format!("{cut}… ({} characters)", text.chars().count())
        }
    };
    let vcenter_ca = config.vsphere.ca_cert_pem.as_deref().map(|pem| {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .filter_map(Result::ok)
            .map(|der| hex::encode(ring::digest::digest(&ring::digest::SHA256, &der)))
            .collect::<Vec<_>>()
            .join(",")
    });
    tracing::info!(
        source = %short(&config.source.vmdk.to_string()),
        target = %short(&format!("{:?}", config.target)),
        storage_vendor = config.storage.product().as_str(),
        storage_hostname = %short(&config.storage.hostname),
        vcenter = %short(&config.vsphere.hostname),
        vcenter_ca_sha256 = ?vcenter_ca,
        clone_method = config.esxi.clone_method.as_str(),
        migration_host = ?config.esxi.migration_host.as_deref().map(short),
        "arguments validated"
    );
}

/// Runs one async subcommand on a multi-threaded runtime.
/// Runs the selected controllers until SIGTERM/SIGINT; the first to fail decides the exit code.
async fn run_controllers(args: ControllerArgs) -> ExitCode {
    let ControllerArgs {
        populator,
        mut planner,
        run,
    } = args;
    planner.watch_namespace = populator.watch_namespace.clone();
    let populator = async {
        if run == RunControllers::Planner {
            return Ok(());
        }
        co_controller::run(populator).await.map_err(|error| {
            tracing::error!(%error, "the populator controller stopped");
            error.exit_code()
        })
    };
    let planner = async {
        if run == RunControllers::Populator {
            return Ok(());
        }
        co_planner::run(planner).await.map_err(|error| {
            tracing::error!(%error, "the planner stopped");
            error.exit_code()
        })
    };
    match tokio::try_join!(populator, planner) {
        Ok(_) => ExitCode::Success,
        Err(code) => code,
    }
}

fn block_on(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(work),
        Err(err) => {
            eprintln!("copy-offload: cannot start the async runtime: {err}");
            ExitCode::Internal
        }
    }
}

/// JSON lines in a pod (or when `COPY_OFFLOAD_LOG_FORMAT=json`), human-readable otherwise;
/// `COPY_OFFLOAD_LOG_FORMAT=text` forces the latter. Level from `RUST_LOG` (default `default_level`).
fn init_logging(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = match std::env::var("COPY_OFFLOAD_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
    };
    // Colours only for a person at a terminal: a log file or a pod log gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
