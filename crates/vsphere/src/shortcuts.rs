//! One-call forms, on [`Client`], of the object operations that callers written before the
//! object layer use (the copy engine, the esxi crate's seams, the lab's tests): each builds the
//! handle and calls it. New code takes the handles in [`crate::object`] and [`crate::esxcli`].

use bytes::Bytes;
use futures::stream::BoxStream;

use co_api::DatastorePath;

use crate::client::Client;
use crate::error::Error;
use crate::esxcli::{Esxcli, EsxcliResponse};
use crate::object::{
    Datastore, DatastoreDevice, DeviceAdapters, HostSystem, SourceDisk, VirtualDisk, VirtualMachine,
};
use crate::types::ManagedObjectReference;

impl Client {
    /// [`VirtualMachine::disks`].
    pub async fn vm_disks(&self, vm: &ManagedObjectReference) -> Result<Vec<VirtualDisk>, Error> {
        self.vm(vm).disks().await
    }

    /// [`VirtualMachine::source_disk`].
    pub async fn source_disk(
        &self,
        vm: &ManagedObjectReference,
        wanted: &DatastorePath,
    ) -> Result<SourceDisk, Error> {
        self.vm(vm).source_disk(wanted).await
    }

    /// [`VirtualMachine::host`], as a reference.
    pub async fn vm_host(
        &self,
        vm: &ManagedObjectReference,
    ) -> Result<ManagedObjectReference, Error> {
        Ok(self.vm(vm).host().await?.reference().clone())
    }

    /// [`HostSystem::management_ips`].
    pub async fn host_management_ips(
        &self,
        host: &ManagedObjectReference,
    ) -> Result<Vec<String>, Error> {
        self.host(host).management_ips().await
    }

    /// [`HostSystem::datastore`].
    pub async fn datastore_device(
        &self,
        host: &ManagedObjectReference,
        datastore: &str,
    ) -> Result<DatastoreDevice, Error> {
        self.host(host).datastore(datastore).await
    }

    /// [`HostSystem::datastore_adapters`].
    pub async fn datastore_adapters(
        &self,
        host: &ManagedObjectReference,
        datastore: &str,
        requires_scini: bool,
    ) -> Result<DeviceAdapters, Error> {
        self.host(host)
            .datastore_adapters(datastore, requires_scini)
            .await
    }

    /// [`HostSystem::source_adapters`].
    pub async fn source_adapters(
        &self,
        host: &ManagedObjectReference,
        datastore: &DatastoreDevice,
        requires_scini: bool,
    ) -> Result<DeviceAdapters, Error> {
        self.host(host)
            .source_adapters(datastore, requires_scini)
            .await
    }

    /// [`Datastore::upload`].
    pub async fn upload_file(
        &self,
        datacenter: &str,
        datastore: &str,
        path: &str,
        body: reqwest::Body,
        len: u64,
    ) -> Result<(), Error> {
        self.datastore(datacenter, datastore)
            .upload(path, body, len)
            .await
    }

    /// [`Datastore::download`].
    pub async fn download_file(
        &self,
        datacenter: &str,
        datastore: &str,
        path: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, Error>>, Error> {
        self.datastore(datacenter, datastore).download(path).await
    }

    /// [`Esxcli::run`] on `host`.
    pub async fn esxcli(
        &self,
        host: &ManagedObjectReference,
        argv: &[&str],
    ) -> Result<EsxcliResponse, Error> {
        Esxcli::new(self.clone(), host.clone()).run(argv).await
    }

    fn vm(&self, vm: &ManagedObjectReference) -> VirtualMachine {
        VirtualMachine::new(self.clone(), vm.clone())
    }

    fn host(&self, host: &ManagedObjectReference) -> HostSystem {
        HostSystem::new(self.clone(), host.clone())
    }

    fn datastore(&self, datacenter: &str, datastore: &str) -> Datastore {
        Datastore::new(self.clone(), datacenter, datastore)
    }
}
