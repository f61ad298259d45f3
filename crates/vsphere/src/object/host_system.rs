//! `HostSystem`: an ESXi host as the populator uses it — its name and management IPs, a datastore
//! as the host mounts it, the adapters through which it reaches a device (read from its
//! `config.storageDevice` and chosen by the rules of the `host_storage_system` module), its
//! storage system for rescans, its advanced settings (`QueryOptions`), and its esxcli.

use crate::client::Client;
use crate::decode::Node;
use crate::error::Error;
use crate::esxcli::Esxcli;
use crate::property::{ObjectContent, ObjectSpec, PropertySpec, TraversalSpec};
use crate::soap::Request;
use crate::types::ManagedObjectReference;

use super::datastore::DatastoreDevice;
use super::host_storage_system::{
    DeviceAdapters, HostAdapter, HostStorageSystem, parse_adapters, scini_guid_from_options,
    select_adapters, select_host_adapters,
};

/// One ESXi advanced setting as `QueryOptions` answers it (`OptionValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvancedOption {
    /// The API's key, `Group.Name` (esxcli shows it as `/Group/Name`).
    pub key: String,
    /// The value as sent: integer settings travel as `xsd:long`, others as strings.
    pub value: String,
}

impl AdvancedOption {
    /// The value of an integer setting.
    pub fn as_i64(&self) -> Option<i64> {
        self.value.trim().parse().ok()
    }
}

/// An ESXi host.
#[derive(Debug, Clone)]
pub struct HostSystem {
    client: Client,
    moref: ManagedObjectReference,
}

impl HostSystem {
    pub fn new(client: Client, moref: ManagedObjectReference) -> Self {
        Self { client, moref }
    }

    pub fn reference(&self) -> &ManagedObjectReference {
        &self.moref
    }

    /// The host's esxcli (see [`Esxcli`]).
    pub fn esxcli(&self) -> Esxcli {
        Esxcli::new(self.client.clone(), self.moref.clone())
    }

    /// The host's name in the inventory.
    pub async fn name(&self) -> Result<String, Error> {
        self.client.entity_name(&self.moref).await
    }

    /// The management IP addresses of the host (management vmknics), first = preferred.
    pub async fn management_ips(&self) -> Result<Vec<String>, Error> {
        let path = "config.virtualNicManagerInfo.netConfig";
        let content = self.client.retrieve_one(&self.moref, &[path]).await?;
        let ips = content.prop(path).map(management_ips).unwrap_or_default();
        if ips.is_empty() {
            return Err(Error::NotFound {
                what: "management IP of host",
                id: self.moref.to_string(),
                hint: " (no vmknic is selected for management traffic)".into(),
            });
        }
        Ok(ips)
    }

    /// The datastore named `datastore` as mounted on the host, with its VMFS extents.
    pub async fn datastore(&self, datastore: &str) -> Result<DatastoreDevice, Error> {
        let spec = ObjectSpec {
            start: self.moref.clone(),
            skip: true,
            traversal: vec![TraversalSpec {
                name: "hostDs",
                kind: "HostSystem",
                path: "datastore",
                select: Vec::new(),
            }],
        };
        let listing = self
            .client
            .retrieve(&spec, &[PropertySpec::new("Datastore", &["name", "info"])])
            .await?;
        let ds = listing
            .iter()
            .find(|o| o.text("name") == Some(datastore))
            .ok_or_else(|| Error::NotFound {
                what: "datastore",
                id: datastore.to_owned(),
                hint: format!(" on host {}", self.moref),
            })?;
        Ok(DatastoreDevice::from_info(
            ds.obj.clone(),
            datastore,
            ds.prop("info"),
        ))
    }

    /// The host's `HostStorageSystem`.
    pub async fn storage_system(&self) -> Result<HostStorageSystem, Error> {
        let content = self
            .client
            .retrieve_one(&self.moref, &["configManager.storageSystem"])
            .await?;
        content
            .moref("configManager.storageSystem")
            .map(|moref| HostStorageSystem::new(self.client.clone(), moref))
            .ok_or_else(|| Error::NotFound {
                what: "storage system of host",
                id: self.moref.to_string(),
                hint: String::new(),
            })
    }

    /// The advanced setting `key` (`DataMover.HardwareAcceleratedMove`), read through the host's
    /// option manager; `None` when the host has no such setting.
    pub async fn advanced_option(&self, key: &str) -> Result<Option<AdvancedOption>, Error> {
        let content = self
            .client
            .retrieve_one(&self.moref, &["configManager.advancedOption"])
            .await?;
        let manager = content
            .moref("configManager.advancedOption")
            .ok_or_else(|| Error::NotFound {
                what: "advanced option manager of host",
                id: self.moref.to_string(),
                hint: String::new(),
            })?;
        let mut req = Request::new("QueryOptions", &manager);
        req.text("name", key);
        let response = match self.client.call(&req).await {
            Ok(response) => response,
            Err(e)
                if e.fault()
                    .is_some_and(|f| f.detail_type.ends_with("InvalidName")) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        Ok(response
            .children_named("returnval")
            .find(|option| option.text_of("key") == Some(key))
            .map(|option| AdvancedOption {
                key: key.to_owned(),
                value: option
                    .text_of("value")
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            }))
    }

    /// The LUN ids under which the host sees its SCSI devices (from the path names
    /// `vmhbaN:C0:T0:L<id>` of `config.storageDevice.multipathInfo`), sorted, without repeats.
    pub async fn lun_ids(&self) -> Result<Vec<u32>, Error> {
        let content = self
            .client
            .retrieve_one(&self.moref, &["config.storageDevice"])
            .await?;
        let mut ids: Vec<u32> = content
            .prop("config.storageDevice")
            .and_then(|storage| storage.child("multipathInfo"))
            .map(|multipath| {
                multipath
                    .children_named("lun")
                    .flat_map(|lun| lun.children_named("path"))
                    .filter_map(|path| path.text_of("name"))
                    .filter_map(|name| name.rsplit_once(":L")?.1.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Every host bus adapter of the host with its initiator id.
    pub async fn adapters(&self) -> Result<Vec<HostAdapter>, Error> {
        let content = self
            .client
            .retrieve_one(&self.moref, &["config.storageDevice"])
            .await?;
        Ok(content
            .prop("config.storageDevice")
            .map(|d| parse_adapters(d, None))
            .unwrap_or_default())
    }

    /// The adapters with active paths to the device under `datastore` (with the fallback the
    /// `host_storage_system` module describes). `requires_scini`: the destination array is
    /// PowerFlex.
    pub async fn datastore_adapters(
        &self,
        datastore: &str,
        requires_scini: bool,
    ) -> Result<DeviceAdapters, Error> {
        let ds = self.datastore(datastore).await?;
        let device = ds.canonical_device()?.to_owned();
        self.device_adapters(&device, requires_scini).await
    }

    /// The adapters through which the host reaches the array when copying from `datastore`:
    /// those with active paths to its SAN device ([`HostSystem::device_adapters`]), or — for a
    /// datastore without one (NFS) — the host's SAN adapters ([`HostSystem::san_adapters`]).
    pub async fn source_adapters(
        &self,
        datastore: &DatastoreDevice,
        requires_scini: bool,
    ) -> Result<DeviceAdapters, Error> {
        match datastore.extents.first() {
            Some(device) => self.device_adapters(device, requires_scini).await,
            None => self.san_adapters(&datastore.name, requires_scini).await,
        }
    }

    /// The adapters with active paths to `device` (a canonical name).
    pub async fn device_adapters(
        &self,
        device: &str,
        requires_scini: bool,
    ) -> Result<DeviceAdapters, Error> {
        let no_adapter = |reason| Error::NoAdapter {
            host: self.moref.to_string(),
            device: device.to_owned(),
            reason,
        };
        let view = self.storage_view(requires_scini).await?;
        let storage = view
            .storage()
            .ok_or_else(|| no_adapter("the host reports no storage device information".into()))?;
        select_adapters(storage, device, view.scini_guid.as_deref(), requires_scini)
            .map_err(no_adapter)
    }

    /// The SAN adapters of the host for a copy from `datastore`, a datastore without a SAN
    /// device (NFS): nothing has paths to it, so the choice is the fallback's — the PowerFlex SDC
    /// when `requires_scini`, else the first FC, else the first iSCSI adapter in device order.
    pub async fn san_adapters(
        &self,
        datastore: &str,
        requires_scini: bool,
    ) -> Result<DeviceAdapters, Error> {
        let view = self.storage_view(requires_scini).await?;
        let adapters = view
            .storage()
            .map(|storage| parse_adapters(storage, view.scini_guid.as_deref()))
            .unwrap_or_default();
        select_host_adapters(&adapters, requires_scini).ok_or_else(|| Error::NoSanAdapter {
            host: match view.host_name() {
                Some(name) => format!("{name} ({})", self.moref),
                None => self.moref.to_string(),
            },
            datastore: datastore.to_owned(),
            found: if adapters.is_empty() {
                "none".into()
            } else {
                adapters
                    .iter()
                    .map(|a| format!("{} ({})", a.device, a.driver))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }

    /// The host's storage device information with the PowerFlex GUID resolved when it matters.
    async fn storage_view(&self, requires_scini: bool) -> Result<StorageView, Error> {
        let content = self
            .client
            .retrieve_one(
                &self.moref,
                &[
                    "name",
                    "config.storageDevice",
                    "configManager.kernelModuleSystem",
                ],
            )
            .await?;
        let has_scini = content.prop("config.storageDevice").is_some_and(|storage| {
            parse_adapters(storage, None)
                .iter()
                .any(|a| a.driver == "scini")
        });
        let scini_guid = match content.moref("configManager.kernelModuleSystem") {
            Some(kms) if has_scini || requires_scini => self.scini_guid(&kms).await?,
            _ => None,
        };
        Ok(StorageView {
            content,
            scini_guid,
        })
    }

    /// `IoctlIniGuidStr` from the `scini` kernel module options, if the module is present.
    async fn scini_guid(&self, kms: &ManagedObjectReference) -> Result<Option<String>, Error> {
        let req = Request::new("QueryModules", kms);
        let response = self.client.call(&req).await?;
        Ok(response
            .children_named("returnval")
            .find(|m| m.text_of("name") == Some("scini"))
            .and_then(|m| scini_guid_from_options(m.text_of("optionString").unwrap_or_default())))
    }
}

/// A host's `config.storageDevice` and `name`, with the PowerFlex GUID if it was needed.
struct StorageView {
    content: ObjectContent,
    scini_guid: Option<String>,
}

impl StorageView {
    fn storage(&self) -> Option<&Node> {
        self.content.prop("config.storageDevice")
    }

    fn host_name(&self) -> Option<&str> {
        self.content.text("name")
    }
}

fn management_ips(net_config: &Node) -> Vec<String> {
    let mut ips = Vec::new();
    for cfg in net_config
        .children
        .iter()
        .filter(|c| c.text_of("nicType") == Some("management"))
    {
        let selected: Vec<&str> = cfg
            .children_named("selectedVnic")
            .map(|s| s.text.as_str())
            .collect();
        for vnic in cfg.children_named("candidateVnic") {
            let key = vnic.text_of("key").unwrap_or_default();
            let chosen = selected
                .iter()
                .any(|s| *s == key || s.ends_with(&format!(".{key}")));
            if chosen
                && let Some(ip) = vnic
                    .descend(&["spec", "ip", "ipAddress"])
                    .map(|n| n.text.trim())
                    .filter(|ip| !ip.is_empty())
            {
                ips.push(ip.to_owned());
            }
        }
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::parse;

    #[test]
    fn management_ips_come_from_selected_management_vnics() {
        let cfg = parse(
            br#"<val><VirtualNicManagerNetConfig><nicType>vmotion</nicType><candidateVnic><key>a</key><spec><ip><ipAddress>10.0.0.9</ipAddress></ip></spec></candidateVnic><selectedVnic>a</selectedVnic></VirtualNicManagerNetConfig>
            <VirtualNicManagerNetConfig><nicType>management</nicType>
              <candidateVnic><key>management.key-vim.host.VirtualNic-vmk0</key><spec><ip><ipAddress>10.0.0.1</ipAddress></ip></spec></candidateVnic>
              <candidateVnic><key>management.key-vim.host.VirtualNic-vmk1</key><spec><ip><ipAddress>10.0.0.2</ipAddress></ip></spec></candidateVnic>
              <selectedVnic>management.key-vim.host.VirtualNic-vmk1</selectedVnic></VirtualNicManagerNetConfig></val>"#,
        )
        .unwrap();
        assert_eq!(management_ips(&cfg), vec!["10.0.0.2"]);
    }
}
