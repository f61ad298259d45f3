//! The copy engine behind `copy-offload populate`: argument contract, the copy state machine and
//! its journal, host lease, the cluster-wide ESXi host-key record, metrics endpoint.
//!
//! The public surface is what the CLI and the tests use: running `populate` (arguments, the run, its
//! exit code and errors), observing a run (phases, report, timing), and five components with their
//! own tests and their own namespace — the journal, the host lease, the host-key record, the
//! metrics endpoint and the probe of the rights the pod's account holds. Everything else (planning, resolving, discovery, the executors, cleanup,
//! verification) is private to the copy engine.

mod args;
mod cleanup;
mod copy;
mod discover;
mod error;
mod executors;
mod exit;
pub mod host_keys;
pub mod journal;
pub mod lease;
pub mod metrics;
mod plan;
mod pv;
mod resolve;
pub mod rights;
mod run;
mod signals;
mod verify;

// Running `populate`: its arguments, checked before anything is contacted, and the run itself.
pub use args::{
    ArgProblem, ArgProblems, EnvironmentConfig, PopulateArgs, PopulateConfig, non_utf8_environment,
    parse_quantity, repeated_flags, requests_version, split_unknown_flags, version_text,
};
pub use error::CopyError;
pub use exit::{ErrorClass, ExitCode};
pub use run::{RunOptions, RunSummary, run, run_with};
pub use signals::cancel_on_signals;

// Observing a run: the phases it enters, its cadences and its report.
pub use copy::{CopyReport, Phase, PhaseObserver, Timing};
pub use discover::DiscoverySchedule;
