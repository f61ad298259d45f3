//! `VirtualMachine`: its disks and their backings (flat chains for snapshots, RDM, vVol), the
//! disk behind a datastore path classified with its sizes, its snapshot tree, and the host it
//! runs on.

use std::collections::{HashMap, HashSet};

use tracing::debug;

use co_api::DatastorePath;

use crate::client::Client;
use crate::decode::Node;
use crate::error::Error;
use crate::soap::Request;
use crate::types::ManagedObjectReference;

use super::host_system::HostSystem;

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

/// One snapshot of a VM (a node of its `snapshot.rootSnapshotList` tree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSnapshot {
    pub name: String,
    /// Depth in the tree (0 = a root snapshot).
    pub depth: usize,
}

/// A virtual machine.
#[derive(Debug, Clone)]
pub struct VirtualMachine {
    client: Client,
    moref: ManagedObjectReference,
}

impl VirtualMachine {
    pub fn new(client: Client, moref: ManagedObjectReference) -> Self {
        Self { client, moref }
    }

    pub fn reference(&self) -> &ManagedObjectReference {
        &self.moref
    }

    /// The virtual disks of the VM.
    pub async fn disks(&self) -> Result<Vec<VirtualDisk>, Error> {
        let content = self
            .client
            .retrieve_one(&self.moref, &["config.hardware.device"])
            .await?;
        Ok(content
            .prop("config.hardware.device")
            .map(disks_from_devices)
            .unwrap_or_default())
    }

    /// The disk whose backing chain contains `wanted`, with its kind and sizes.
    pub async fn source_disk(&self, wanted: &DatastorePath) -> Result<SourceDisk, Error> {
        let vm = &self.moref;
        // layoutEx can be stale; refreshing is best effort (sizes are informational).
        let refresh = Request::new("RefreshStorageInfo", vm);
        if let Err(e) = self.client.call(&refresh).await {
            debug!(vm = %vm, error = %e, "RefreshStorageInfo failed; using cached layout");
        }
        let content = self
            .client
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

    /// The VM's snapshots, parents before their children; empty when it has none (vCenter then
    /// leaves the `snapshot` property unset).
    pub async fn snapshots(&self) -> Result<Vec<VmSnapshot>, Error> {
        let content = self.client.retrieve_one(&self.moref, &["snapshot"]).await?;
        let mut out = Vec::new();
        if let Some(info) = content.prop("snapshot") {
            let mut pending: Vec<(&Node, usize)> = info
                .children_named("rootSnapshotList")
                .map(|tree| (tree, 0))
                .collect();
            pending.reverse();
            while let Some((tree, depth)) = pending.pop() {
                out.push(VmSnapshot {
                    name: tree.text_of("name").unwrap_or_default().to_owned(),
                    depth,
                });
                let children: Vec<_> = tree.children_named("childSnapshotList").collect();
                pending.extend(children.into_iter().rev().map(|child| (child, depth + 1)));
            }
        }
        Ok(out)
    }

    /// The host the VM is registered on.
    pub async fn host(&self) -> Result<HostSystem, Error> {
        let content = self
            .client
            .retrieve_one(&self.moref, &["runtime.host"])
            .await?;
        content
            .moref("runtime.host")
            .map(|host| HostSystem::new(self.client.clone(), host))
            .ok_or_else(|| Error::NotFound {
                what: "host of virtual machine",
                id: self.moref.to_string(),
                hint: " (the VM has no runtime host; is it registered?)".into(),
            })
    }
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
pub(crate) fn match_disk<'a>(
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
}
