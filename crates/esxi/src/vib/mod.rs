//! The `vmkfstools-wrapper` VIB: [`build`] packs the shell wrapper and the esxcli plugin into a
//! `.vib` (an `ar` archive of `descriptor.xml`, `sig.pkcs7` and a gzipped tar `payload1`), and
//! [`install`] puts it on ESXi hosts over SSH.

mod archive;
mod install;

pub use archive::{VibError, VibInfo, build, build_at, descriptor_xml};
pub use install::{
    EsxiCommands, HostInstall, HostOutcome, InstallOptions, InstallSummary, install,
    installed_version,
};

/// VIB name, as esxcli lists it.
pub const VIB_NAME: &str = "vmkfstools-wrapper";
/// VIB vendor, kept from upstream so hosts see an upgrade of the same package.
pub const VIB_VENDOR: &str = "REDHAT";
