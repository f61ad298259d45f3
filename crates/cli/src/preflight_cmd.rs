//! `copy-offload preflight`: the `populate` settings (same flags, same environment, so the
//! migration Secret works unchanged) plus the disks to look at; prints the report as a table or
//! JSON and exits 0 only when no check failed.

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
    /// Rehearse a copy end to end on a throw-away volume (the only mode that writes).
    #[arg(long, help_heading = "What to check")]
    probe: bool,
    #[command(flatten)]
    settings: PopulateArgs,
}

pub async fn run(args: &PreflightArgs) -> ExitCode {
    let mut problems = Vec::new();
    let disks: Vec<DatastorePath> = args
        .disks
        .iter()
        .filter_map(|text| {
            DatastorePath::parse(text)
                .map_err(|e| {
                    problems.push(ArgProblem::new(
                        "--disk",
                        format!("{text:?} is not a datastore path: {e}"),
                    ))
                })
                .ok()
        })
        .collect();
    if args.probe {
        problems.push(ArgProblem::new(
            "--probe",
            "is not built yet; preflight runs read-only checks only (drop --probe)",
        ));
    }
    let environment = match args.settings.validate_environment() {
        Ok(environment) if problems.is_empty() => environment,
        result => {
            problems.extend(result.err().map(|p| p.0).unwrap_or_default());
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
    let report = co_preflight::run(&environment, &selection, &PreflightOptions::default()).await;
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
