//! VIM SOAP client for vCenter and ESXi, in layers that each know one thing:
//!
//! - the session and its transport: [`Client`] (login, re-login, retries, logout), the SOAP
//!   envelope and faults ([`Request`], [`Error`], [`Fault`]), HTTPS with its trust, cookie,
//!   timeouts and round-trip counter ([`TlsTrust`]), and the transient-failure policy
//!   ([`retry`]);
//! - wire types and decoding of `xsi:type`d XML ([`ManagedObjectReference`], [`ServiceContent`],
//!   [`Node`]);
//! - property collection ([`property`]) and finding objects in the inventory
//!   ([`Client::find_vm`], [`Client::find_host`], [`Client::find_datacenter`],
//!   [`Client::find_vm_by_disk`]);
//! - typed handles on the managed objects the copy uses, one file each ([`object`]:
//!   [`VirtualMachine`], [`HostSystem`], [`HostStorageSystem`], [`Datastore`], [`FileManager`],
//!   [`AuthorizationManager`], [`Task`]);
//! - esxcli over `ExecuteSoap`, a handle per host with one typed value per command ([`esxcli`]).
//!
//! The `Client` methods in `shortcuts` are one-call forms of object operations for callers
//! written before the object layer.

mod client;
mod decode;
mod error;
pub mod esxcli;
mod find;
pub mod object;
pub mod property;
pub mod retry;
mod shortcuts;
mod soap;
mod transport;
mod types;

#[cfg(test)]
mod decoder_fuzz;

/// The paths of the inventory types before the object layer.
pub mod inventory {
    pub use crate::object::{
        BackingFile, Datacenter, DatastoreDevice, DiskBacking, DiskKind, SourceDisk, VirtualDisk,
    };
}

/// The paths of the adapter types before the object layer.
pub mod adapters {
    pub use crate::object::{AdapterKind, DeviceAdapters, HostAdapter};
}

pub use client::{Client, ClientConfig};
pub use co_api::{DatastorePath, Secret};
pub use decode::{DecodeError, Node};
pub use error::{Error, Fault, FaultKind};
pub use esxcli::{Esxcli, EsxcliResponse};
pub use object::{
    AdvancedOption, AuthorizationManager, Datacenter, Datastore, DatastoreDevice, EntityPrivileges,
    FileManager, HostStorageSystem, HostSystem, Task, VirtualMachine,
};
pub use retry::RetryPolicy;
pub use soap::Request;
pub use transport::{TlsTrust, Transport, sdk_url};
pub use types::{AboutInfo, ManagedObjectReference, ServiceContent};
