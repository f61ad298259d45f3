//! The source side of a Plan as the offload planner sees it: each VM with its disks, and how busy
//! each ESXi migration host already is. The planning function takes these as plain values, so it
//! can be tested without a vCenter; reading them from vCenter and the cluster is the reconcile's job.

use std::collections::BTreeMap;

/// One VM of a Plan, as vCenter describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmInventory {
    /// The VM's managed object id (`vm-42`), the id Forklift's Plan and inventory use.
    pub id: String,
    /// The VM's display name.
    pub name: String,
    /// The managed object id of the ESXi host the VM runs on (`host-17`).
    pub host: String,
    /// The VM's virtual disks, in device order.
    pub disks: Vec<DiskInventory>,
}

/// One virtual disk of a VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskInventory {
    /// The device key vCenter gives the disk within its VM (2000, 2001, …); stable across reads.
    pub key: i32,
    /// The disk's backing file as a datastore path, `[datastore] folder/disk.vmdk`.
    pub file: String,
    /// The managed object id of the datastore holding the backing file (`datastore-12`).
    pub datastore_id: String,
    /// That datastore's name, which StorageMaps may match on instead of the id.
    pub datastore_name: String,
    /// The disk's capacity in bytes; the PVC requests exactly this.
    pub capacity_bytes: u64,
    /// How the disk is backed, which decides the copy path.
    pub backing: DiskBackingKind,
    /// The NAA identifier (`naa.` + hex, lower case) of the LUN the data lives on: the
    /// datastore's extent for a VMDK on VMFS, the mapped LUN for an RDM; `None` for a vVol or when
    /// vCenter does not say.
    pub naa: Option<String>,
}

/// How a virtual disk is backed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskBackingKind {
    /// A VMDK file on a VMFS or NFS datastore.
    Vmdk,
    /// A raw device mapping.
    Rdm,
    /// A virtual volume.
    Vvol,
}

/// Copies already running or planned per ESXi migration host name, so the least-loaded host of a
/// mapping's `dedicatedMigrationHosts` can be chosen. A host absent from the map has no load.
pub type HostLoads = BTreeMap<String, usize>;
