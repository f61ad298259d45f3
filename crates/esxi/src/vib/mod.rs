//! The `vmkfstools-wrapper` VIB: [`build`] packs the shell wrapper and the esxcli plugin into a
//! `.vib` (an `ar` archive of `descriptor.xml`, `sig.pkcs7` and a gzipped tar `payload1`), and
//! [`install`] puts it on ESXi hosts over SSH.

mod archive;
mod identity;
mod install;

pub use archive::{VibError, VibInfo, build, build_at, descriptor_xml};
pub use identity::{VIB_NAME, VIB_VENDOR};
pub use install::{
    EsxiCommands, HostInstall, HostOutcome, InstallOptions, InstallSummary, install,
    installed_version,
};
