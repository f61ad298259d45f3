//! The lab: simulated vCenter/ESXi and storage arrays that speak the real wire protocols, for the
//! demo, the integration tests and the benchmarks. Product crates never depend on this crate.

pub mod arrays;
pub mod faults;
pub mod host;
pub mod host_files;
pub mod lab;
pub mod rig;
pub mod san;
pub mod scenario;
pub mod ssh;
pub mod vcenter;
pub mod vmkfstools;
pub mod wrapper;
