//! The contract between the pieces that run apart — the controller, the populator pod, Forklift's
//! controller and upstream populators — in one place, so no side spells a shared fact twice:
//! exit codes and the error classes behind them ([`exit`]), metric names and labels ([`metrics`]),
//! object names (prime PVC, populator pod, host leases, journal annotation, host-key ConfigMap,
//! array object prefix: [`names`]) and the `populate` flags with their environment variables
//! ([`flags`]).
//!
//! Pure data and pure functions: the controller links this without linking SSH, vSphere or
//! storage code. Each item is a compatibility contract and is pinned by tests.

pub mod exit;
pub mod flags;
pub mod metrics;
pub mod names;

pub use exit::{ErrorClass, ExitCode};
