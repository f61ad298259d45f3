//! The embedded ESXi SSH endpoint enforcing the restricted-key semantics.
