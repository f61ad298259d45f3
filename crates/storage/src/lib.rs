//! The storage-array seam of copy-offload: the [`StorageApi`] trait every vendor implements, the
//! vendor-neutral model ([`Volume`], [`InitiatorGroup`], [`Mapping`], ...), the shared HTTP layer
//! ([`http`]), NAA/WWN rules ([`naa`], [`fc`]), one module per vendor ([`ontap`]), and
//! [`connect`], which picks the vendor named by `--storage-vendor-product`.
//!
//! A VMDK/XCOPY copy uses the trait in this order, journaling each result before the next
//! external change: `resolve_volume` → `ensure_initiator_group` → `current_mappings` → `map` →
//! (ESXi rescan and clone) → `unmap` → `restore` → `release_group`. Every mutating call is
//! idempotent, so a resumed run simply repeats the journaled steps.
//!
//! This crate talks to arrays only; ESXi, vSphere and Kubernetes are other crates' business.

pub mod api;
pub mod error;
pub mod fc;
pub mod http;
pub mod model;
pub mod naa;
pub mod ontap;
pub mod vendor;

pub use api::{ArrayCopy, ArrayCopySource, ProgressSink, StorageApi};
pub use error::{ErrorClass, StorageError};
pub use model::{
    ArrayInfo, EsxiHostRef, GroupKind, GroupRef, GroupRelease, Initiator, InitiatorGroup, Mapping,
    PersistentVolumeRef, StorageProtocol, Volume,
};
pub use naa::DeviceName;
pub use vendor::connect;
