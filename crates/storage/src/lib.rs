//! The storage-array seam of copy-offload: the [`StorageApi`] trait every vendor implements, the
//! vendor-neutral model ([`Volume`], [`InitiatorGroup`], [`Mapping`], ...), the shared HTTP layer
//! ([`http`]), NAA/WWN rules ([`naa`], [`fc`]), one module per vendor (each owning its typed
//! settings: [`settings`]), and the vendor list ([`vendor`]): [`VendorSettings::read`] checks a
//! product's keys, [`connect`] connects its plugin.
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
pub mod flashsystem;
pub mod http;
pub mod infinibox;
pub mod model;
pub mod naa;
pub mod ontap;
pub mod powerflex;
pub mod powermax;
pub mod powerstore;
pub mod primera3par;
pub mod pure;
pub mod settings;
pub mod vantara;
pub mod vendor;

pub use api::{
    ArrayCopy, ArrayCopySession, ArrayCopySource, ArrayReadiness, HostInitiators, ProgressSink,
    StorageApi, VendorPrerequisite,
};
pub use error::{ErrorClass, StorageError};
pub use model::{
    ArrayInfo, EsxiHostRef, GroupKind, GroupRef, GroupRelease, Initiator, InitiatorGroup, Mapping,
    PersistentVolumeRef, StorageProtocol, Volume,
};
pub use naa::DeviceName;
pub use settings::{SettingProblem, VendorConfig, VendorKey};
pub use vendor::{VendorInfo, VendorSettings, connect};
