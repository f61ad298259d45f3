//! `copy-offload preflight`: a read-only check that an environment is ready for offloaded copies,
//! and the copy path each disk will take.
//!
//! This crate owns the checks and their remedies ([`catalog`]), the report they make up
//! ([`Report`], [`Check`], [`DiskPrediction`]) with its two renderings (a table for people, JSON
//! for scripts), and the run that gathers them ([`run`]): vCenter login and the session's
//! privileges, each ESXi host's advanced settings, LUN-id headroom and clone method, the array's
//! answer through [`co_storage::StorageApi::readiness`], and per disk the source LUN's array,
//! snapshots and the predicted path. Nothing in [`run`] changes vCenter, a host or an array: every
//! call is a read (the SSH check logs in and asks the wrapper its version). [`probe`] is the one
//! part that writes: a rehearsal copy onto a throw-away volume through the populator's engine.
//!
//! It reuses the populator's settings ([`co_populator::EnvironmentConfig`]) so a Secret that works
//! for `populate` works here unchanged.

pub mod catalog;
pub mod cluster;
mod disks;
mod hosts;
mod probe;
mod report;
mod run;
mod storage;

pub use probe::{probe, probe_copies};
pub use report::{Check, CopyPath, DiskPrediction, Outcome, Report};
pub use run::{PreflightOptions, Selection, run};
