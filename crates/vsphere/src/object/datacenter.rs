//! `Datacenter`: a datacenter and its inventory path, the `dcPath` of `/folder` URLs.

use crate::types::ManagedObjectReference;

/// A datacenter and its inventory path (the `dcPath` of `/folder` URLs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datacenter {
    pub moref: ManagedObjectReference,
    pub path: String,
}
