//! `copy-offload preflight`: the `populate` settings (same flags, same environment, so the
//! migration Secret works unchanged) plus the disks to look at, and with `--probe` the disks to
//! rehearse a copy with; prints the report as a table or JSON and exits 0 only when no check
//! failed.

use clap::{ArgGroup, Args, ValueEnum};
use co_api::DatastorePath;
use co_populator::{ArgProblem, ArgProblems, ExitCode, PopulateArgs};
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
    #[command(flatten)]
    settings: PopulateArgs,
}

pub async fn run(args: &PreflightArgs) -> ExitCode {
    let mut problems = Vec::new();
    let disks = datastore_paths("--disk", &args.disks, &mut problems);
    let probe_disks = datastore_paths("--probe-disk", &args.probe_disks, &mut problems);
    let probe_copies = if args.probe {
        co_preflight::probe_copies(&args.settings, &probe_disks)
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
    let environment = match args.settings.validate_environment() {
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
            args.settings
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
