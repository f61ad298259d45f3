//! The ESXi side of the copy: the wrapper protocol, the wrapper scripts and VIB as assets,
//! and the clone executors (VIB through esxcli, SSH through the restricted key).
//!
//! - [`protocol`]: the wrapper wire format (XML envelope, JSON task documents, SSH framing, the
//!   VIB's encoded values) and [`TaskId`], the only task id form that reaches a host.
//! - [`assets`]: the scripts and the esxcli plugin shipped to hosts.
//! - [`executor`]: the [`CloneExecutor`] seam and the [`CloneTask`] driver.
//! - [`vib_executor`] and [`ssh`]: the two methods.
//! - [`host_keys`]: known_hosts lists and the host-key store behind trust on first use.
//! - [`guidance`]: the restricted key line and the manual steps shown to administrators.
//! - [`vib`]: building and installing the `vmkfstools-wrapper` VIB.
//! - [`vsphere`]: the esxcli and datastore-file seams over `co_vsphere::Client`.

pub mod assets;
pub mod error;
pub mod executor;
pub mod guidance;
pub mod host_keys;
pub mod protocol;
pub mod ssh;
pub mod vib;
pub mod vib_executor;
pub mod vsphere;

pub use error::EsxiError;
pub use executor::{
    CloneExecutor, CloneOutcome, CloneProgress, CloneTask, PollRetry, PollSchedule,
    WrapperTransport,
};
pub use guidance::{
    forklift_key_line, forklift_route_problem, manual_key_instructions, restricted_key_line,
};
pub use protocol::{InvalidTaskId, TaskId};
