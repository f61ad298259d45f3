//! The executors' two vSphere seams implemented over `co_vsphere::Client`: esxcli on one host
//! (the VIB method) and datastore files through the `/folder` endpoint (placing the SSH wrapper).

use async_trait::async_trait;
use co_vsphere::{Client, ManagedObjectReference};
use futures::TryStreamExt as _;

use crate::error::EsxiError;
use crate::ssh::DatastoreFiles;
use crate::vib_executor::{EsxcliRecord, EsxcliRunner};

/// esxcli on one ESXi host, through vCenter.
pub struct HostEsxcli {
    client: Client,
    host: ManagedObjectReference,
    host_name: String,
}

impl HostEsxcli {
    pub fn new(client: Client, host: ManagedObjectReference, host_name: impl Into<String>) -> Self {
        Self {
            client,
            host,
            host_name: host_name.into(),
        }
    }
}

#[async_trait]
impl EsxcliRunner for HostEsxcli {
    fn host(&self) -> &str {
        &self.host_name
    }

    async fn esxcli(&self, argv: &[&str]) -> Result<Vec<EsxcliRecord>, EsxiError> {
        match self.client.esxcli(&self.host, argv).await {
            Ok(response) => Ok(response.records),
            Err(err) if is_transport_fault(&err) => Err(EsxiError::EsxcliTransport {
                host: self.host_name.clone(),
                command: readable_command(argv),
                message: err.to_string(),
            }),
            Err(err) => Err(EsxiError::Esxcli {
                host: self.host_name.clone(),
                command: readable_command(argv),
                message: format!(
                    "{err}; is the vmkfstools-wrapper VIB installed (copy-offload vib install)?"
                ),
            }),
        }
    }
}

/// The esxcli command line as a person reads it: values the VIB receives hex-encoded are shown
/// decoded (and quoted), so an error names the disk, not its encoding.
fn readable_command(argv: &[&str]) -> String {
    argv.iter()
        .map(|arg| match crate::protocol::decode_esxcli_value(arg) {
            Ok(decoded) if decoded != *arg => format!("{decoded:?}"),
            _ => (*arg).to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether an esxcli call failed in transit (connection, gateway, timeout, a SOAP fault saying the
/// method did not run) rather than in the host's esxcli answer: the vSphere client's one
/// classification decides, except that a logged-out session needs a new login, which repeating
/// the call does not give it.
fn is_transport_fault(err: &co_vsphere::Error) -> bool {
    err.class().is_retryable() && !matches!(err, co_vsphere::Error::LoggedOut)
}

/// Files on the datastores of one datacenter.
pub struct DatacenterFiles {
    client: Client,
    datacenter: String,
}

impl DatacenterFiles {
    /// `datacenter` is the inventory path the `/folder` endpoint expects (`dcPath`).
    pub fn new(client: Client, datacenter: impl Into<String>) -> Self {
        Self {
            client,
            datacenter: datacenter.into(),
        }
    }

    fn transfer_error(datastore: &str, path: &str, err: impl std::fmt::Display) -> EsxiError {
        EsxiError::DatastoreTransfer {
            datastore: datastore.to_owned(),
            path: path.to_owned(),
            message: err.to_string(),
        }
    }
}

#[async_trait]
impl DatastoreFiles for DatacenterFiles {
    async fn download(&self, datastore: &str, path: &str) -> Result<Option<Vec<u8>>, EsxiError> {
        let stream = match self
            .client
            .download_file(&self.datacenter, datastore, path)
            .await
        {
            Ok(stream) => stream,
            // The /folder endpoint answers a missing file with HTTP 404.
            Err(co_vsphere::Error::File { reason, .. }) if reason.starts_with("HTTP 404") => {
                return Ok(None);
            }
            Err(err) => return Err(Self::transfer_error(datastore, path, err)),
        };
        let chunks: Vec<_> = stream
            .try_collect()
            .await
            .map_err(|err| Self::transfer_error(datastore, path, err))?;
        Ok(Some(chunks.concat()))
    }

    async fn upload(&self, datastore: &str, path: &str, body: Vec<u8>) -> Result<(), EsxiError> {
        let len = body.len() as u64;
        self.client
            .upload_file(
                &self.datacenter,
                datastore,
                path,
                reqwest::Body::from(body),
                len,
            )
            .await
            .map_err(|err| Self::transfer_error(datastore, path, err))
    }
}

/// An ESXi host of a vCenter as the SSH method reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsxiHost {
    /// Managed object id, e.g. `host-12`.
    pub id: String,
    /// Inventory name.
    pub name: String,
    /// Where SSH reaches it: the first management IP, or the inventory name when it reports none.
    pub address: String,
    /// Names of the datastores it mounts (each needs its own copy-offload key line).
    pub datastores: Vec<String>,
}

/// The SSH address of every ESXi host of a vCenter (optionally one datacenter): each host's first
/// management IP, or its inventory name when it reports none. Feeds `vib::install`.
pub async fn discover_hosts(
    client: &Client,
    datacenter: Option<&str>,
) -> Result<Vec<String>, EsxiError> {
    Ok(discover_esxi_hosts(client, datacenter)
        .await?
        .into_iter()
        .map(|host| host.address)
        .collect())
}

/// Every ESXi host of a vCenter (optionally one datacenter) with its SSH address and datastores,
/// in one inventory listing plus one management-IP read per host.
pub async fn discover_esxi_hosts(
    client: &Client,
    datacenter: Option<&str>,
) -> Result<Vec<EsxiHost>, EsxiError> {
    use co_vsphere::property::{ObjectSpec, PropertySpec};

    let inventory_error = |err: co_vsphere::Error| EsxiError::Inventory {
        what: "listing ESXi hosts",
        message: err.to_string(),
    };
    let root = match datacenter {
        Some(name) => {
            client
                .find_datacenter(name)
                .await
                .map_err(inventory_error)?
                .moref
        }
        None => client.service_content().root_folder.clone(),
    };
    let listing = client
        .retrieve(
            &ObjectSpec::inventory(&root),
            &[
                PropertySpec::new("HostSystem", &["name", "datastore"]),
                PropertySpec::new("Datastore", &["name"]),
            ],
        )
        .await
        .map_err(inventory_error)?;
    let datastore_name = |id: &str| {
        listing
            .iter()
            .find(|content| content.obj.kind == "Datastore" && content.obj.value == id)
            .and_then(|content| content.text("name"))
            .map(str::to_owned)
    };
    let mut hosts = Vec::new();
    for host in listing
        .iter()
        .filter(|content| content.obj.kind == "HostSystem")
    {
        let name = host.text("name").unwrap_or_default().to_owned();
        let datastores = host
            .prop("datastore")
            .map(|list| {
                list.children
                    .iter()
                    .filter_map(|reference| datastore_name(reference.text.trim()))
                    .collect()
            })
            .unwrap_or_default();
        let address = match client.host_management_ips(&host.obj).await {
            Ok(ips) => ips.into_iter().next().unwrap_or_else(|| name.clone()),
            Err(err) => {
                tracing::debug!(host = %name, error = %err, "no management IP, using the host name");
                name.clone()
            }
        };
        hosts.push(EsxiHost {
            id: host.obj.value.clone(),
            name,
            address,
            datastores,
        });
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn errors_show_encoded_values_decoded() {
        let source = crate::protocol::encode_esxcli_value("/vmfs/volumes/ds1/Bob's VM/disk.vmdk");
        assert_eq!(
            super::readable_command(&["vmkfstools", "clone", "-s", &source]),
            r#"vmkfstools clone -s "/vmfs/volumes/ds1/Bob's VM/disk.vmdk""#
        );
    }

    use co_vsphere::{Error, Fault, FaultKind};

    use super::is_transport_fault;

    fn fault(kind: FaultKind, detail_type: &str) -> Error {
        Error::Fault {
            method: "ExecuteSoap".into(),
            fault: Fault {
                kind,
                message: "boom".into(),
                detail_type: detail_type.into(),
            },
        }
    }

    #[test]
    fn esxcli_failures_in_transit_are_told_from_host_answers() {
        let transit = [
            Error::Timeout {
                method: "ExecuteSoap".into(),
                timeout: Duration::from_secs(30),
            },
            Error::HttpStatus {
                method: "ExecuteSoap".into(),
                status: 503,
                body: String::new(),
            },
            fault(FaultKind::SystemError, "HostCommunication"),
            fault(FaultKind::Other, ""),
        ];
        for err in &transit {
            assert!(is_transport_fault(err), "{err}");
        }
        let answers = [
            Error::Esxcli {
                host: "esx1".into(),
                command: "vmkfstools taskGet".into(),
                message: "task not found".into(),
                detail: String::new(),
            },
            Error::VibMissing {
                host: "esx1".into(),
                message: "NotFound".into(),
            },
            fault(FaultKind::NoPermission, "NoPermission"),
            Error::LoggedOut,
        ];
        for err in &answers {
            assert!(!is_transport_fault(err), "{err}");
        }
    }
}
