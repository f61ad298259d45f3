//! The VIB's identity as esxcli knows it: the name and vendor the package is built and installed
//! under.

/// VIB name, as esxcli lists it.
pub const VIB_NAME: &str = "vmkfstools-wrapper";
/// VIB vendor, kept from upstream so hosts see an upgrade of the same package.
pub const VIB_VENDOR: &str = "REDHAT";
