//! The lab: simulated vCenter/ESXi and storage arrays that speak the real wire protocols, for the
//! demo, the integration tests and the benchmarks. Product crates never depend on this crate.
//!
//! Public: starting a lab from a scenario (`lab`, `scenario`), the SAN model and the vendors' array
//! facades over it (`san`, `arrays`), the rig that copies into them (`rig`), fault injection
//! (`faults`), the byte-copying vmkfstools (`vmkfstools`, benchmarked on its own), and the few host
//! handles tests need (re-exported below), and the cluster players (`cluster`: the CSI
//! provisioner and kubelet that let the populator controller run on the lab against a real API
//! server). The simulated vCenter, its SSH endpoints and the
//! wrapper emulation are private: they are reached only through their protocols.

pub mod arrays;
pub mod cluster;
pub mod faults;
mod host;
mod host_files;
pub mod lab;
pub mod rig;
pub mod san;
pub mod scenario;
mod ssh;
mod vcenter;
pub mod vmkfstools;
mod wrapper;

/// A simulated ESXi host (its devices, rescans and clone tasks), reached through a running lab.
pub use host::{RescanKind, SimHost};
/// Where a simulated host keeps its files (the VIB's wrapper among them).
pub use host_files::{host_root, vib_wrapper_path};
/// The SOAP XML reader the simulated vCenter parses requests with; tests read answers with it.
pub use vcenter::xml;
