//! `copy-offload preflight`: the `populate` settings (same flags, same environment, so the
//! migration Secret works unchanged) plus the disks to look at, and with `--probe` the disks to
//! rehearse a copy with; prints the report as a table or JSON and exits 0 only when no check
//! failed.

use clap::{ArgGroup, Args, Parser as _, ValueEnum};
use co_api::DatastorePath;
use co_populator::{ArgProblem, ArgProblems, ExitCode, PopulateArgs};
use co_preflight::cluster::ObjectName;
use co_preflight::{PreflightOptions, Selection};

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A table for a person (the default).
    Table,
    /// The whole report as one JSON document.
    Json,
}

/// Flags of `copy-offload preflight`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("selection").required(true).multiple(true).args(["vms", "disks"])))]
pub struct PreflightArgs {
    /// A VM to check, by name, managed object id (vm-123) or inventory path: every disk of it.
    /// Repeat for more.
    #[arg(long = "vm", value_name = "VM", help_heading = "What to check")]
    vms: Vec<String>,
    /// One disk to check, by datastore path ("[datastore1] vm-1/vm-1.vmdk"). Repeat for more.
    #[arg(long = "disk", value_name = "PATH", help_heading = "What to check")]
    disks: Vec<String>,
    /// Report format.
    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value = "table",
        help_heading = "What to check"
    )]
    output: Output,
    /// Rehearse a copy end to end: copy each --probe-disk onto the throw-away volume given by
    /// --target-volume-handle (or --pv-file), overwriting it, then undo every mapping. The only
    /// mode that writes.
    #[arg(long, help_heading = "Probe (writes)")]
    probe: bool,
    /// A small disk to copy in the probe, by datastore path: one per ESXi host to rehearse (the
    /// host its VM runs on). Repeat for more.
    #[arg(
        long = "probe-disk",
        value_name = "PATH",
        help_heading = "Probe (writes)"
    )]
    probe_disks: Vec<String>,
    /// Cluster mode: the Forklift vSphere Provider (NAMESPACE/NAME) whose URL and credentials
    /// Secret give vCenter, and whose settings give the clone method. With --storage-map.
    #[arg(
        long,
        value_name = "NAMESPACE/NAME",
        requires = "storage_map",
        help_heading = "Cluster mode"
    )]
    provider: Option<ObjectName>,
    /// Cluster mode: the Forklift StorageMap (NAMESPACE/NAME) whose
    /// offloadPlugin.vsphereXcopyConfig gives the array's vendor and Secret. With --provider.
    #[arg(
        long,
        value_name = "NAMESPACE/NAME",
        requires = "provider",
        help_heading = "Cluster mode"
    )]
    storage_map: Option<ObjectName>,
    /// Cluster mode: which offload Secret of the StorageMap to check, when its pairs name several.
    #[arg(
        long,
        value_name = "NAME",
        requires = "storage_map",
        help_heading = "Cluster mode"
    )]
    offload_secret: Option<String>,
    #[command(flatten)]
    settings: PopulateArgs,
}

pub async fn run(args: &PreflightArgs) -> ExitCode {
    let settings = match cluster_settings(args).await {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("preflight: cannot read the migration's settings from the cluster: {error}");
            return ExitCode::BadArguments;
        }
    };
    let settings = settings.as_ref().unwrap_or(&args.settings);
    let mut problems = Vec::new();
    let disks = datastore_paths("--disk", &args.disks, &mut problems);
    let probe_disks = datastore_paths("--probe-disk", &args.probe_disks, &mut problems);
    let probe_copies = if args.probe {
        co_preflight::probe_copies(settings, &probe_disks)
            .map_err(|p| problems.extend(p.0))
            .ok()
    } else {
        if !args.probe_disks.is_empty() {
            problems.push(ArgProblem::new(
                "--probe-disk",
                "given without --probe: add --probe to copy it (preflight writes only then)",
            ));
        }
        None
    };
    let environment = match settings.validate_environment() {
        Ok(environment) if problems.is_empty() => environment,
        result => {
            // The probe's validation reports the shared settings' problems too: once each.
            for problem in result.err().map(|p| p.0).unwrap_or_default() {
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
            }
            eprint!("{}", ArgProblems(problems).of_command("preflight"));
            eprintln!(
                "Run `copy-offload preflight --help` for every flag and its environment variable."
            );
            return ExitCode::BadArguments;
        }
    };
    for warning in &environment.warnings {
        tracing::warn!(%warning, "argument accepted, but check it");
    }
    let selection = Selection {
        vms: args.vms.clone(),
        disks,
    };
    let options = PreflightOptions {
        probe_handles_signals: true,
        ..PreflightOptions::default()
    };
    let mut report = co_preflight::run(&environment, &selection, &options).await;
    if let Some(copies) = probe_copies {
        eprintln!(
            "preflight --probe WRITES: it copies {} onto the throw-away volume {}, overwriting it, \
             then undoes every mapping it made.",
            args.probe_disks.join(", "),
            settings
                .target_volume_handle
                .as_deref()
                .unwrap_or("given by --pv-file")
        );
        report = report.with_probe(co_preflight::probe(copies, &options).await);
    }
    match args.output {
        Output::Table => print!("{}", report.to_table()),
        Output::Json => println!("{}", report.to_json()),
    }
    if report.ready {
        ExitCode::Success
    } else {
        ExitCode::Permanent
    }
}

/// In cluster mode, `populate`'s settings as the migration's Forklift objects give them, with the
/// probe's target flags from the command line; `None` otherwise.
async fn cluster_settings(
    args: &PreflightArgs,
) -> Result<Option<PopulateArgs>, co_preflight::cluster::ClusterError> {
    let (Some(provider), Some(storage_map)) = (&args.provider, &args.storage_map) else {
        return Ok(None);
    };
    let client = co_preflight::cluster::client(args.settings.kubeconfig.as_deref()).await?;
    let flags = co_preflight::cluster::populate_flags(
        &client,
        provider,
        storage_map,
        args.offload_secret.as_deref(),
    )
    .await?;
    let mut settings = PopulateArgs::try_parse_from(
        std::iter::once("populate".to_owned()).chain(flags),
    )
    .map_err(|e| {
        co_preflight::cluster::ClusterError::Invalid(format!(
            "the Provider's and StorageMap's settings do not parse as populate's: {}",
            e.kind()
        ))
    })?;
    settings.target_volume_handle = args.settings.target_volume_handle.clone();
    settings.target_volume_attribute = args.settings.target_volume_attribute.clone();
    settings.pv_file = args.settings.pv_file.clone();
    Ok(Some(settings))
}

/// Each of `texts` as a datastore path; a problem naming `flag` for each that is not one.
fn datastore_paths(
    flag: &str,
    texts: &[String],
    problems: &mut Vec<ArgProblem>,
) -> Vec<DatastorePath> {
    texts
        .iter()
        .filter_map(|text| {
            DatastorePath::parse(text)
                .map_err(|e| {
                    problems.push(ArgProblem::new(
                        flag,
                        format!("{text:?} is not a datastore path: {e}"),
                    ))
                })
                .ok()
        })
        .collect()
}
