//! VIM SOAP client for vCenter and ESXi: transport, session, faults, property collection,
//! typed inventory views, datastore file transfer and esxcli over the API.
//!
//! Layers, each knowing one thing: [`client`] (session, re-login, retries), [`soap`] (envelope
//! bytes and faults), [`transport`] (HTTPS, trust, cookie, timeouts, round-trip counter),
//! [`decode`] (xsi:typed XML), [`types`] (wire types), [`property`] (the property collector),
//! [`inventory`] (VMs, disks, hosts, datastores), [`adapters`] (SAN adapters serving a
//! datastore), [`files`] (`/folder` transfers), [`esxcli`] (esxcli over `ExecuteSoap`), [`retry`]
//! (transient-failure policy).

pub mod adapters;
pub mod client;
pub mod decode;
pub mod error;
pub mod esxcli;
pub mod files;
pub mod inventory;
pub mod property;
pub mod retry;
pub mod soap;
pub mod transport;
pub mod types;

pub use client::{Client, ClientConfig};
pub use co_api::{DatastorePath, Secret};
pub use error::{Error, Fault, FaultKind};
pub use esxcli::EsxcliResponse;
pub use retry::RetryPolicy;
pub use transport::TlsTrust;
pub use types::{ManagedObjectReference, ServiceContent};
