//! The ESXi side of the copy: the wrapper protocol, the wrapper scripts and VIB as assets,
//! and the clone executors (VIB through esxcli, SSH through the restricted key).
