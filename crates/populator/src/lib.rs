//! The copy engine behind `copy-offload populate`: argument contract, the copy state machine and
//! its journal, host lease, the cluster-wide ESXi host-key record, metrics endpoint.
pub mod args;
pub mod cleanup;
pub mod copy;
pub mod discover;
pub mod error;
pub mod executors;
pub mod exit;
pub mod host_keys;
pub mod journal;
pub mod lease;
pub mod metrics;
pub mod plan;
pub mod pv;
pub mod resolve;
pub mod rights;
pub mod run;
pub mod signals;
pub mod verify;
