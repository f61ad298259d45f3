//! Typed views of the inventory and the operations the populator needs: find a VM by managed
//! object id, name or inventory path across datacenters; read its disks and their backings
//! (flat chains for snapshots, RDM, vVol); find the VM owning a disk; the host of a VM; a host by
//! id or name; the device under a VMFS datastore; a host's management IPs; a datacenter's path.

use std::collections::{HashMap, HashSet};

use tracing::debug;

use co_api::DatastorePath;

use crate::client::Client;
use crate::decode::Node;
use crate::error::Error;
use crate::property::{ObjectContent, ObjectSpec, PropertySpec};
use crate::soap::Request;
use crate::types::ManagedObjectReference;

/// Same file, ignoring ASCII case (datastore paths are case-insensitive in practice).
fn same_file(a: &DatastorePath, b: &DatastorePath) -> bool {
    a.datastore().eq_ignore_ascii_case(b.datastore()) && a.path().eq_ignore_ascii_case(b.path())
}

/// One file of a disk's backing chain (top first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingFile {
    pub file_name: String,
    /// The vVol id when the file lives on a vVol datastore.
    pub backing_object_id: Option<String>,
}

/// How a virtual disk is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskBacking {
    /// A VMDK file (flat/sparse/seSparse); `chain[0]` is the file in use, then its parents.
    File {
        kind: String,
        chain: Vec<BackingFile>,
    },
    /// A raw device mapping.
    Rdm {
        file_name: String,
        device_name: String,
        lun_uuid: String,
        compatibility_mode: String,
    },
    /// A backing this crate does not interpret.
    Other { kind: String },
}

/// A `VirtualDisk` device of a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualDisk {
    pub key: i32,
    pub label: String,
    pub capacity_bytes: u64,
    pub backing: DiskBacking,
}

/// What the copy needs to know about the source disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskKind {
    Vmdk,
    Vvol {
        backing_object_id: String,
    },
    Rdm {
        device_name: String,
        lun_uuid: String,
    },
}

/// The disk matched by a datastore path, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDisk {
    pub disk: VirtualDisk,
    pub kind: DiskKind,
    /// Position in the backing chain of the matched file (0 = top; >0 = a snapshot parent).
    pub chain_index: usize,
    pub provisioned_bytes: u64,
    /// Bytes the matched file and its parents occupy on the datastore (`layoutEx`), ≤ provisioned.
    pub allocated_bytes: Option<u64>,
}

/// The datastore a host sees under a name, and the devices backing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatastoreDevice {
    pub datastore: ManagedObjectReference,
    pub name: String,
    /// `xsi:type` of the datastore info (`VmfsDatastoreInfo`, `NasDatastoreInfo`, …).
    pub info_type: String,
    /// Canonical names of the VMFS extents (`naa.…`), in extent order.
    pub extents: Vec<String>,
}

impl DatastoreDevice {
    /// The device of the first VMFS extent.
    pub fn canonical_device(&self) -> Result<&str, Error> {
        self.extents
            .first()
            .map(String::as_str)
            .ok_or_else(|| Error::DatastoreDevice {
                datastore: self.name.clone(),
                reason: format!(
                    "it is not VMFS (info type {:?}); the XCOPY path needs a VMFS datastore on a SAN LUN",
                    self.info_type
                ),
            })
    }
}

/// A datacenter and its inventory path (the `dcPath` of `/folder` URLs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datacenter {
    pub moref: ManagedObjectReference,
    pub path: String,
}

impl Client {
    /// Finds a VM by inventory path (`/DC0/vm/folder/name`), name (unique across datacenters),
    /// or managed object id (`vm-42`), in that order of preference, in one listing.
    pub async fn find_vm(&self, id: &str) -> Result<ManagedObjectReference, Error> {
        self.find_entity("VirtualMachine", "virtual machine", id)
            .await
    }

    /// Finds a host by inventory path, name, or managed object id.
    pub async fn find_host(&self, id: &str) -> Result<ManagedObjectReference, Error> {
        self.find_entity("HostSystem", "ESXi host", id).await
    }

    pub(crate) async fn find_entity(
        &self,
        kind: &'static str,
        what: &'static str,
        id: &str,
    ) -> Result<ManagedObjectReference, Error> {
        let id = id.trim();
        let listing = self
            .retrieve(
                &ObjectSpec::inventory(&self.inner.service.root_folder),
                &[PropertySpec::new("ManagedEntity", &["name", "parent"])],
            )
            .await?;
        let paths = inventory_paths(&listing, &self.inner.service.root_folder);
        let candidates: Vec<&ObjectContent> =
            listing.iter().filter(|o| o.obj.kind == kind).collect();
        if id.contains('/') {
            let wanted = format!("/{}", id.trim_start_matches('/'));
            if let Some(o) = candidates
                .iter()
                .find(|o| paths.get(&o.obj).is_some_and(|p| *p == wanted))
            {
                return Ok(o.obj.clone());
            }
        }
        let by_name: Vec<&&ObjectContent> = candidates
            .iter()
            .filter(|o| o.text("name") == Some(id))
            .collect();
        match by_name.as_slice() {
            [one] => return Ok(one.obj.clone()),
            [] => {}
            many => {
                return Err(Error::Ambiguous {
                    what,
                    id: id.to_owned(),
                    candidates: many
                        .iter()
                        .map(|o| {
                            paths
                                .get(&o.obj)
                                .cloned()
                                .unwrap_or_else(|| o.obj.to_string())
                        })
                        .collect(),
                });
            }
        }
        let moid = id.rsplit(':').next().unwrap_or(id);
        candidates
            .iter()
            .find(|o| o.obj.value == moid)
            .map(|o| o.obj.clone())
            .ok_or_else(|| Error::NotFound {
                what,
                id: id.to_owned(),
                hint: "; give its managed object id, its name or its inventory path".into(),
            })
    }

    /// The virtual disks of a VM.
    pub async fn vm_disks(&self, vm: &ManagedObjectReference) -> Result<Vec<VirtualDisk>, Error> {
        let content = self.retrieve_one(vm, &["config.hardware.device"]).await?;
        Ok(content
            .prop("config.hardware.device")
            .map(disks_from_devices)
            .unwrap_or_default())
    }

    /// The disk of `vm` whose backing chain contains `wanted`, with its kind and sizes.
    pub async fn source_disk(
        &self,
        vm: &ManagedObjectReference,
        wanted: &DatastorePath,
    ) -> Result<SourceDisk, Error> {
        // layoutEx can be stale; refreshing is best effort (sizes are informational).
        let refresh = Request::new("RefreshStorageInfo", vm);
        if let Err(e) = self.call(&refresh).await {
            debug!(vm = %vm, error = %e, "RefreshStorageInfo failed; using cached layout");
        }
        let content = self
            .retrieve_one(vm, &["config.hardware.device", "layoutEx"])
            .await?;
        let disks = content
            .prop("config.hardware.device")
            .map(disks_from_devices)
            .unwrap_or_default();
        let (disk, chain_index) = match_disk(&disks, wanted).ok_or_else(|| Error::NotFound {
            what: "disk",
            id: wanted.to_string(),
            hint: format!(" on VM {vm}"),
        })?;
        let disk = disk.clone();
        let kind = classify(&disk, chain_index);
        let allocated_bytes = match (&kind, content.prop("layoutEx")) {
            (DiskKind::Vmdk, Some(layout)) => {
                allocated_bytes(layout, &disk, chain_index).map(|b| b.min(disk.capacity_bytes))
            }
            _ => None,
        };
        Ok(SourceDisk {
            provisioned_bytes: disk.capacity_bytes,
            disk,
            kind,
            chain_index,
            allocated_bytes,
        })
    }

    /// The VM whose disks include `wanted`, for when no VM id was given.
    pub async fn find_vm_by_disk(
        &self,
        wanted: &DatastorePath,
    ) -> Result<ManagedObjectReference, Error> {
        let listing = self
            .retrieve(
                &ObjectSpec::inventory(&self.inner.service.root_folder),
                &[PropertySpec::new(
                    "VirtualMachine",
                    &["config.hardware.device"],
                )],
            )
            .await?;
        let owners: Vec<ManagedObjectReference> = listing
            .iter()
            .filter(|o| {
                o.prop("config.hardware.device")
                    .map(disks_from_devices)
                    .is_some_and(|disks| match_disk(&disks, wanted).is_some())
            })
            .map(|o| o.obj.clone())
            .collect();
        match owners.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(Error::NotFound {
                what: "virtual machine owning disk",
                id: wanted.to_string(),
                hint: "; check --source-vmdk".into(),
            }),
            many => Err(Error::Ambiguous {
                what: "disk",
                id: wanted.to_string(),
                candidates: many.iter().map(ToString::to_string).collect(),
            }),
        }
    }

    /// The host a VM is registered on.
    pub async fn vm_host(
        &self,
        vm: &ManagedObjectReference,
    ) -> Result<ManagedObjectReference, Error> {
        let content = self.retrieve_one(vm, &["runtime.host"]).await?;
        content
            .moref("runtime.host")
            .ok_or_else(|| Error::NotFound {
                what: "host of virtual machine",
                id: vm.to_string(),
                hint: " (the VM has no runtime host; is it registered?)".into(),
            })
    }

    /// The name of any managed entity.
    pub async fn entity_name(&self, obj: &ManagedObjectReference) -> Result<String, Error> {
        let content = self.retrieve_one(obj, &["name"]).await?;
        Ok(content.text("name").unwrap_or_default().to_owned())
    }

    /// The management IP addresses of a host (management vmknics), first = preferred.
    pub async fn host_management_ips(
        &self,
        host: &ManagedObjectReference,
    ) -> Result<Vec<String>, Error> {
        let path = "config.virtualNicManagerInfo.netConfig";
        let content = self.retrieve_one(host, &[path]).await?;
        let ips = content.prop(path).map(management_ips).unwrap_or_default();
        if ips.is_empty() {
            return Err(Error::NotFound {
                what: "management IP of host",
                id: host.to_string(),
                hint: " (no vmknic is selected for management traffic)".into(),
            });
        }
        Ok(ips)
    }

    /// The datastore named `datastore` as mounted on `host`, with its VMFS extents.
    pub async fn datastore_device(
        &self,
        host: &ManagedObjectReference,
        datastore: &str,
    ) -> Result<DatastoreDevice, Error> {
        let spec = ObjectSpec {
            start: host.clone(),
            skip: true,
            traversal: vec![crate::property::TraversalSpec {
                name: "hostDs",
                kind: "HostSystem",
                path: "datastore",
                select: Vec::new(),
            }],
        };
        let listing = self
            .retrieve(&spec, &[PropertySpec::new("Datastore", &["name", "info"])])
            .await?;
        let ds = listing
            .iter()
            .find(|o| o.text("name") == Some(datastore))
            .ok_or_else(|| Error::NotFound {
                what: "datastore",
                id: datastore.to_owned(),
                hint: format!(" on host {host}"),
            })?;
        let info = ds.prop("info");
        let info_type = info.and_then(|i| i.xsi_type.clone()).unwrap_or_default();
        let extents = info
            .and_then(|i| i.child("vmfs"))
            .map(|vmfs| {
                vmfs.children_named("extent")
                    .filter_map(|e| e.text_of("diskName").map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(DatastoreDevice {
            datastore: ds.obj.clone(),
            name: datastore.to_owned(),
            info_type,
            extents,
        })
    }

    /// The datacenter containing `obj`, with its inventory path.
    pub async fn datacenter_of(&self, obj: &ManagedObjectReference) -> Result<Datacenter, Error> {
        let listing = self
            .retrieve(
                &ObjectSpec::ancestors(obj),
                &[PropertySpec::new("ManagedEntity", &["name", "parent"])],
            )
            .await?;
        let paths = inventory_paths(&listing, &self.inner.service.root_folder);
        listing
            .iter()
            .find(|o| o.obj.kind == "Datacenter")
            .map(|o| Datacenter {
                moref: o.obj.clone(),
                path: paths
                    .get(&o.obj)
                    .map(|p| p.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
            })
            .ok_or_else(|| Error::NotFound {
                what: "datacenter of",
                id: obj.to_string(),
                hint: String::new(),
            })
    }

    /// Finds a datacenter by name or inventory path.
    pub async fn find_datacenter(&self, id: &str) -> Result<Datacenter, Error> {
        let moref = self.find_entity("Datacenter", "datacenter", id).await?;
        self.datacenter_of(&moref).await
    }
}

/// Inventory paths (`/DC0/vm/name`) of every object in a listing that has `name` and `parent`.
/// The root folder is not part of paths.
fn inventory_paths(
    listing: &[ObjectContent],
    root: &ManagedObjectReference,
) -> HashMap<ManagedObjectReference, String> {
    let by_ref: HashMap<&ManagedObjectReference, &ObjectContent> =
        listing.iter().map(|o| (&o.obj, o)).collect();
    let mut out = HashMap::new();
    for o in listing {
        let mut names = Vec::new();
        let mut cur = Some(o);
        let mut seen = HashSet::new();
        while let Some(node) = cur {
            if &node.obj == root || !seen.insert(&node.obj) {
                break;
            }
            names.push(node.text("name").unwrap_or_default());
            cur = node.moref("parent").and_then(|p| by_ref.get(&p).copied());
        }
        names.reverse();
        out.insert(o.obj.clone(), format!("/{}", names.join("/")));
    }
    out
}

/// Reads the `VirtualDisk` devices out of a `config.hardware.device` value.
pub fn disks_from_devices(devices: &Node) -> Vec<VirtualDisk> {
    devices
        .children
        .iter()
        .filter(|d| d.is_type("VirtualDisk"))
        .filter_map(|d| {
            let key = d.i64_of("key").ok().flatten()?;
            let capacity_bytes = match d.i64_of("capacityInBytes").ok().flatten() {
                Some(b) if b > 0 => b as u64,
                _ => d
                    .i64_of("capacityInKB")
                    .ok()
                    .flatten()
                    .map(|kb| (kb.max(0) as u64).saturating_mul(1024))
                    .unwrap_or(0),
            };
            Some(VirtualDisk {
                key: i32::try_from(key).ok()?,
                label: d
                    .descend(&["deviceInfo", "label"])
                    .map(|l| l.text.clone())
                    .unwrap_or_default(),
                capacity_bytes,
                backing: d
                    .child("backing")
                    .map(backing)
                    .unwrap_or(DiskBacking::Other {
                        kind: String::new(),
                    }),
            })
        })
        .collect()
}

fn backing(node: &Node) -> DiskBacking {
    let kind = node.xsi_type.clone().unwrap_or_default();
    let text = |n: &Node, name: &str| n.text_of(name).unwrap_or_default().to_owned();
    if kind == "VirtualDiskRawDiskMappingVer1BackingInfo" {
        return DiskBacking::Rdm {
            file_name: text(node, "fileName"),
            device_name: text(node, "deviceName"),
            lun_uuid: text(node, "lunUuid"),
            compatibility_mode: text(node, "compatibilityMode"),
        };
    }
    if node.child("fileName").is_none() {
        return DiskBacking::Other { kind };
    }
    let mut chain = Vec::new();
    let mut cur = Some(node);
    // The depth cap of the decoder bounds this walk.
    while let Some(n) = cur {
        chain.push(BackingFile {
            file_name: text(n, "fileName"),
            backing_object_id: n
                .text_of("backingObjectId")
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
        });
        cur = n.child("parent");
    }
    DiskBacking::File { kind, chain }
}

/// The disk and chain position whose file is `wanted`.
fn match_disk<'a>(
    disks: &'a [VirtualDisk],
    wanted: &DatastorePath,
) -> Option<(&'a VirtualDisk, usize)> {
    let same = |file: &str| DatastorePath::parse(file).is_ok_and(|p| same_file(&p, wanted));
    disks.iter().find_map(|d| match &d.backing {
        DiskBacking::File { chain, .. } => chain
            .iter()
            .position(|f| same(&f.file_name))
            .map(|i| (d, i)),
        DiskBacking::Rdm { file_name, .. } => same(file_name).then_some((d, 0)),
        DiskBacking::Other { .. } => None,
    })
}

fn classify(disk: &VirtualDisk, chain_index: usize) -> DiskKind {
    match &disk.backing {
        DiskBacking::File { chain, .. } => match chain
            .get(chain_index)
            .and_then(|f| f.backing_object_id.clone())
        {
            Some(backing_object_id) => DiskKind::Vvol { backing_object_id },
            None => DiskKind::Vmdk,
        },
        DiskBacking::Rdm {
            device_name,
            lun_uuid,
            ..
        } => DiskKind::Rdm {
            device_name: device_name.clone(),
            lun_uuid: lun_uuid.clone(),
        },
        DiskBacking::Other { .. } => DiskKind::Vmdk,
    }
}

/// Sum of the `diskExtent` files of the matched file and its parents, from `layoutEx`.
fn allocated_bytes(layout: &Node, disk: &VirtualDisk, chain_index: usize) -> Option<u64> {
    let DiskBacking::File { chain, .. } = &disk.backing else {
        return None;
    };
    let wanted: HashSet<String> = chain[chain_index..]
        .iter()
        .map(|f| f.file_name.to_ascii_lowercase())
        .collect();
    let files: HashMap<i64, (&str, &str, u64)> = layout
        .children_named("file")
        .filter_map(|f| {
            Some((
                f.i64_of("key").ok().flatten()?,
                (
                    f.text_of("name")?,
                    f.text_of("type").unwrap_or_default(),
                    f.i64_of("size").ok().flatten().unwrap_or(0).max(0) as u64,
                ),
            ))
        })
        .collect();
    let layout_disk = layout
        .children_named("disk")
        .find(|d| d.i64_of("key").ok().flatten() == Some(i64::from(disk.key)))?;
    let mut total = 0u64;
    for unit in layout_disk.children_named("chain") {
        let keys: Vec<i64> = unit
            .children_named("fileKey")
            .filter_map(|k| k.text.trim().parse().ok())
            .collect();
        let in_chain = keys.iter().any(|k| {
            files
                .get(k)
                .is_some_and(|(name, _, _)| wanted.contains(&name.to_ascii_lowercase()))
        });
        if in_chain {
            total += keys
                .iter()
                .filter_map(|k| files.get(k))
                .filter(|(_, ty, _)| *ty == "diskExtent")
                .map(|(_, _, size)| *size)
                .sum::<u64>();
        }
    }
    Some(total)
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

    const DEVICES: &str = r#"<val xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="ArrayOfVirtualDevice">
      <VirtualDevice xsi:type="VirtualDisk"><key>2000</key><deviceInfo><label>Hard disk 1</label></deviceInfo>
        <backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[ds1] vm/vm-000001.vmdk</fileName>
          <parent xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[ds1] vm/vm.vmdk</fileName></parent></backing>
        <capacityInKB>1024</capacityInKB><capacityInBytes>1048576</capacityInBytes></VirtualDevice>
      <VirtualDevice xsi:type="VirtualDisk"><key>2001</key>
        <backing xsi:type="VirtualDiskRawDiskMappingVer1BackingInfo"><fileName>[ds1] vm/rdm.vmdk</fileName>
          <deviceName>vml.0200</deviceName><lunUuid>0200000000600a09</lunUuid><compatibilityMode>physicalMode</compatibilityMode></backing>
        <capacityInKB>2048</capacityInKB></VirtualDevice>
      <VirtualDevice xsi:type="VirtualDisk"><key>2002</key>
        <backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[vvolds] rfc4122.1/vm_1.vmdk</fileName><backingObjectId>rfc4122.abc</backingObjectId></backing>
        <capacityInKB>4</capacityInKB></VirtualDevice>
      <VirtualDevice xsi:type="VirtualE1000"><key>4000</key></VirtualDevice></val>"#;

    #[test]
    fn disks_are_classified_by_backing() {
        let disks = disks_from_devices(&parse(DEVICES.as_bytes()).unwrap());
        assert_eq!(disks.len(), 3);
        assert_eq!(disks[0].capacity_bytes, 1_048_576);
        assert_eq!(disks[1].capacity_bytes, 2048 * 1024);

        let parent = DatastorePath::parse("[DS1] VM/vm.vmdk").unwrap();
        let (d, i) = match_disk(&disks, &parent).unwrap();
        assert_eq!(
            (d.key, i),
            (2000, 1),
            "a snapshot parent matches (warm precopy)"
        );
        assert_eq!(classify(d, i), DiskKind::Vmdk);

        let rdm = DatastorePath::parse("[ds1] vm/rdm.vmdk").unwrap();
        let (d, i) = match_disk(&disks, &rdm).unwrap();
        assert_eq!(
            classify(d, i),
            DiskKind::Rdm {
                device_name: "vml.0200".into(),
                lun_uuid: "0200000000600a09".into()
            }
        );

        let vvol = DatastorePath::parse("[vvolds] rfc4122.1/vm_1.vmdk").unwrap();
        let (d, i) = match_disk(&disks, &vvol).unwrap();
        assert_eq!(
            classify(d, i),
            DiskKind::Vvol {
                backing_object_id: "rfc4122.abc".into()
            }
        );

        let other = DatastorePath::parse("[ds1] vm/m.vmdk").unwrap();
        assert!(
            match_disk(&disks, &other).is_none(),
            "no substring matching"
        );
    }

    #[test]
    fn allocated_bytes_sum_extents_of_the_matched_chain() {
        let disks = disks_from_devices(&parse(DEVICES.as_bytes()).unwrap());
        let layout = parse(
            br#"<val><file><key>1</key><name>[ds1] vm/vm.vmdk</name><type>diskDescriptor</type><size>500</size></file>
            <file><key>2</key><name>[ds1] vm/vm-flat.vmdk</name><type>diskExtent</type><size>4096</size></file>
            <file><key>3</key><name>[ds1] vm/vm-000001.vmdk</name><type>diskDescriptor</type><size>400</size></file>
            <file><key>4</key><name>[ds1] vm/vm-000001-delta.vmdk</name><type>diskExtent</type><size>100</size></file>
            <disk><key>2000</key><chain><fileKey>1</fileKey><fileKey>2</fileKey></chain><chain><fileKey>3</fileKey><fileKey>4</fileKey></chain></disk></val>"#,
        )
        .unwrap();
        assert_eq!(allocated_bytes(&layout, &disks[0], 0), Some(4196));
        assert_eq!(allocated_bytes(&layout, &disks[0], 1), Some(4096));
    }

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
