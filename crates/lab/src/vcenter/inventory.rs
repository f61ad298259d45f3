//! The managed object tree of the lab: fixed ids for the singletons and folders, and the hosts,
//! datastores and VMs of the scenario with their object ids.

use std::path::PathBuf;
use std::sync::Arc;

use super::value::Moref;
use crate::host::{DatastorePaths, SimHost};

pub const ROOT_FOLDER: &str = "group-d1";
pub const DATACENTER: &str = "datacenter-2";
pub const VM_FOLDER: &str = "group-v3";
pub const HOST_FOLDER: &str = "group-h4";
pub const DATASTORE_FOLDER: &str = "group-s5";
pub const NETWORK_FOLDER: &str = "group-n6";

/// A datastore and what backs it.
#[derive(Debug, Clone)]
pub struct DatastoreEntry {
    pub name: String,
    pub moid: String,
    pub backing: DatastoreBacking,
    pub capacity_bytes: u64,
}

/// What a datastore is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatastoreBacking {
    /// VMFS whose single extent is the SAN volume with device `naa` on `array`.
    Vmfs { array: String, naa: String },
    /// An NFS export (version 4.1 when `nfs41`): no SAN device behind it.
    Nfs {
        remote_host: String,
        remote_path: String,
        nfs41: bool,
    },
}

/// A virtual disk of a VM.
#[derive(Debug, Clone)]
pub struct VmDisk {
    pub datastore: String,
    /// Descriptor path relative to the datastore (`vm-1/vm-1.vmdk`).
    pub descriptor: String,
    /// Flat extent (or RDM mapping file) path relative to the datastore.
    pub flat: String,
    /// Device of a physical-mode RDM disk.
    pub rdm_naa: Option<String>,
    /// The vVol id (`rfc4122.<uuid>`) of a flat disk presented as a vVol.
    pub backing_object_id: Option<String>,
    pub capacity_bytes: u64,
    /// Device key (2000, 2001, …).
    pub key: i32,
    pub uuid: String,
}

/// A VM of the scenario.
#[derive(Debug, Clone)]
pub struct VmEntry {
    pub name: String,
    pub moid: String,
    /// Index into [`Inventory::hosts`].
    pub host: usize,
    /// BIOS UUID (`config.uuid`, SMBIOS), what guests and `FindByUuid` see.
    pub uuid: String,
    /// vCenter's own id of the VM (`config.instanceUuid`), distinct from the BIOS UUID.
    pub instance_uuid: String,
    pub disks: Vec<VmDisk>,
    /// Names of the VM's snapshots, oldest first (`scenario.snapshots`).
    pub snapshots: Vec<String>,
}

/// Everything the endpoint serves.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub datacenter: String,
    pub hosts: Vec<SimHost>,
    pub datastores: Vec<DatastoreEntry>,
    pub vms: Vec<VmEntry>,
    pub paths: Arc<DatastorePaths>,
    /// The lab's data directory; each host's own files are under [`crate::host_files::host_root`].
    pub data_dir: PathBuf,
}

/// Object id of the i-th host and its per-host managers.
pub fn host_moid(index: usize) -> String {
    format!("host-{}", index + 10)
}

fn index_of(moid: &str, prefix: &str) -> Option<usize> {
    moid.strip_prefix(prefix)?
        .parse::<usize>()
        .ok()?
        .checked_sub(10)
}

impl Inventory {
    /// Host behind a per-host object id (`host-10`, `storageSystem-10`, `domain-s10`, …).
    pub fn host_by(&self, moid: &str, prefix: &str) -> Option<(usize, &SimHost)> {
        let index = index_of(moid, prefix)?;
        self.hosts.get(index).map(|h| (index, h))
    }

    /// The root of a host's own file system (where a VIB installs its files).
    pub fn host_root(&self, host: &SimHost) -> PathBuf {
        crate::host_files::host_root(&self.data_dir, host.name())
    }

    pub fn host(&self, moid: &str) -> Option<(usize, &SimHost)> {
        self.host_by(moid, "host-")
    }

    pub fn datastore(&self, moid: &str) -> Option<&DatastoreEntry> {
        self.datastores.iter().find(|d| d.moid == moid)
    }

    pub fn datastore_named(&self, name: &str) -> Option<&DatastoreEntry> {
        self.datastores.iter().find(|d| d.name == name)
    }

    pub fn vm(&self, moid: &str) -> Option<&VmEntry> {
        self.vms.iter().find(|v| v.moid == moid)
    }

    pub fn host_ref(&self, index: usize) -> Moref {
        Moref::new("HostSystem", host_moid(index))
    }

    pub fn compute_resource_ref(&self, index: usize) -> Moref {
        Moref::new("ComputeResource", format!("domain-s{}", index + 10))
    }

    /// Direct children in the inventory tree (what a recursive container view walks).
    pub fn children(&self, obj: &Moref) -> Vec<Moref> {
        match (obj.kind.as_str(), obj.value.as_str()) {
            ("Folder", ROOT_FOLDER) => vec![Moref::new("Datacenter", DATACENTER)],
            ("Datacenter", DATACENTER) => vec![
                Moref::new("Folder", VM_FOLDER),
                Moref::new("Folder", HOST_FOLDER),
                Moref::new("Folder", DATASTORE_FOLDER),
                Moref::new("Folder", NETWORK_FOLDER),
            ],
            ("Folder", HOST_FOLDER) => (0..self.hosts.len())
                .map(|i| self.compute_resource_ref(i))
                .collect(),
            ("Folder", DATASTORE_FOLDER) => self
                .datastores
                .iter()
                .map(|d| Moref::new("Datastore", d.moid.clone()))
                .collect(),
            ("Folder", VM_FOLDER) => self
                .vms
                .iter()
                .map(|v| Moref::new("VirtualMachine", v.moid.clone()))
                .collect(),
            ("ComputeResource", moid) => match self.host_by(moid, "domain-s") {
                Some((i, _)) => vec![self.host_ref(i)],
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }
}

/// Whether objects of type `kind` are instances of `base` (for property specs and container views).
pub fn is_a(kind: &str, base: &str) -> bool {
    const ENTITIES: [&str; 7] = [
        "Folder",
        "Datacenter",
        "ComputeResource",
        "ClusterComputeResource",
        "HostSystem",
        "Datastore",
        "VirtualMachine",
    ];
    kind == base
        || (matches!(base, "ManagedEntity" | "ExtensibleManagedObject") && ENTITIES.contains(&kind))
        || (base == "ComputeResource" && kind == "ClusterComputeResource")
        || (matches!(base, "View" | "ManagedObjectView") && kind == "ContainerView")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_hierarchy_covers_managed_entities_and_views() {
        assert!(is_a("HostSystem", "ManagedEntity"));
        assert!(is_a("ContainerView", "View"));
        assert!(!is_a("HostSystem", "Datastore"));
        assert!(!is_a("ManagedEntity", "HostSystem"));
    }

    #[test]
    fn per_host_ids_round_trip() {
        assert_eq!(index_of(&host_moid(3), "host-"), Some(3));
        assert_eq!(index_of("host-9", "host-"), None);
        assert_eq!(index_of("storageSystem-11", "storageSystem-"), Some(1));
    }
}
