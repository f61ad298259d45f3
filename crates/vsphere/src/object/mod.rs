//! Typed handles on the managed objects the populator works with, one file per object: a handle
//! is the session and the object's reference (`HostSystem { client, moref }`) with the
//! operations the copy needs, so a reader finds an operation where the vSphere API puts it.

mod authorization_manager;
mod datacenter;
mod datastore;
mod file_manager;
mod host_storage_system;
mod host_system;
mod task;
mod virtual_machine;

pub use authorization_manager::{AuthorizationManager, EntityPrivileges};
pub use datacenter::Datacenter;
pub use datastore::{Datastore, DatastoreDevice};
pub use file_manager::FileManager;
pub use host_storage_system::{AdapterKind, DeviceAdapters, HostAdapter, HostStorageSystem};
pub use host_system::{AdvancedOption, HostSystem};
pub use task::Task;
pub use virtual_machine::{
    BackingFile, DiskBacking, DiskKind, SourceDisk, VirtualDisk, VirtualMachine, VmSnapshot,
};

pub(crate) use virtual_machine::{disks_from_devices, match_disk};

#[cfg(test)]
pub(crate) use host_storage_system::{parse_adapters, select_adapters};
