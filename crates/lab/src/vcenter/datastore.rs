//! Datastore: `info` (a `VmfsDatastoreInfo` whose extent is the datastore's SAN volume, or an NFS
//! datastore's `NasDatastoreInfo`), `summary`, host mounts and VMs.

use std::path::Path;

use super::inventory::{DATASTORE_FOLDER, DatastoreBacking, DatastoreEntry, Inventory};
use super::value::{Moref, Value, s};

/// Bytes the files under `dir` occupy (allocated blocks, so sparse disks count as thin).
pub(crate) fn used_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    total
}

pub(super) fn properties(inv: &Inventory, obj: &Moref) -> Option<Vec<(&'static str, Value)>> {
    let ds = inv.datastore(&obj.value)?;
    let url = format!("ds:///vmfs/volumes/{}/", ds.name);
    let free = ds
        .capacity_bytes
        .saturating_sub(used_bytes(&inv.paths.dir(&ds.name))) as i64;
    let capacity = ds.capacity_bytes as i64;
    let base = vec![
        ("name", s(ds.name.clone())),
        ("url", s(url.clone())),
        ("freeSpace", Value::Long(free)),
        ("maxFileSize", Value::Long(70_368_744_177_664)),
        ("maxVirtualDiskCapacity", Value::Long(68_169_720_922_112)),
        ("maxMemoryFileSize", Value::Long(70_368_744_177_664)),
        ("containerId", s(format!("lab-{}", ds.moid))),
    ];
    let (info, summary_type) = match &ds.backing {
        DatastoreBacking::Vmfs { naa, .. } => {
            let mut fields = base;
            fields.push(("vmfs", vmfs_volume(ds, naa, capacity)));
            (Value::obj("VmfsDatastoreInfo", fields), "VMFS")
        }
        DatastoreBacking::Nfs {
            remote_host,
            remote_path,
            nfs41,
        } => {
            let kind = if *nfs41 { "NFS41" } else { "NFS" };
            let nas = Value::obj(
                "HostNasVolume",
                vec![
                    ("type", s(kind)),
                    ("name", s(ds.name.clone())),
                    ("capacity", Value::Long(capacity)),
                    ("remoteHost", s(remote_host.clone())),
                    ("remotePath", s(remote_path.clone())),
                    (
                        "remoteHostNames",
                        Value::array("string", vec![s(remote_host.clone())]),
                    ),
                    ("securityType", s("AUTH_SYS")),
                    ("protocolEndpoint", Value::Bool(false)),
                ],
            );
            let mut fields = base;
            fields.push(("nas", nas));
            (Value::obj("NasDatastoreInfo", fields), kind)
        }
    };
    let summary = Value::obj(
        "DatastoreSummary",
        vec![
            ("datastore", Value::Ref(obj.clone())),
            ("name", s(ds.name.clone())),
            ("url", s(url)),
            ("capacity", Value::Long(capacity)),
            ("freeSpace", Value::Long(free)),
            ("accessible", Value::Bool(true)),
            ("multipleHostAccess", Value::Bool(inv.hosts.len() > 1)),
            ("type", s(summary_type)),
            ("maintenanceMode", s("normal")),
        ],
    );
    let mounts = (0..inv.hosts.len())
        .map(|i| {
            Value::obj(
                "DatastoreHostMount",
                vec![
                    ("key", Value::Ref(inv.host_ref(i))),
                    (
                        "mountInfo",
                        Value::obj(
                            "HostMountInfo",
                            vec![
                                ("path", s(format!("/vmfs/volumes/{}", ds.name))),
                                ("accessMode", s("readWrite")),
                                ("mounted", Value::Bool(true)),
                                ("accessible", Value::Bool(true)),
                            ],
                        ),
                    ),
                ],
            )
        })
        .collect();
    let vms = inv
        .vms
        .iter()
        .filter(|v| v.disks.iter().any(|d| d.datastore == ds.name))
        .map(|v| v.moid.clone());
    Some(vec![
        ("name", s(ds.name.clone())),
        ("parent", Value::Ref(Moref::new("Folder", DATASTORE_FOLDER))),
        ("overallStatus", s("green")),
        ("info", info),
        ("summary", summary),
        ("host", Value::array("DatastoreHostMount", mounts)),
        ("vm", Value::refs("VirtualMachine", vms)),
        (
            "browser",
            Value::Ref(Moref::new(
                "HostDatastoreBrowser",
                super::datastore_browser::datastore_browser_moid(&ds.moid),
            )),
        ),
    ])
}

/// The `HostVmfsVolume` of a VMFS datastore whose single extent is device `naa`.
fn vmfs_volume(ds: &DatastoreEntry, naa: &str, capacity: i64) -> Value {
    Value::obj(
        "HostVmfsVolume",
        vec![
            ("type", s("VMFS")),
            ("name", s(ds.name.clone())),
            ("capacity", Value::Long(capacity)),
            ("blockSizeMb", Value::Int(1)),
            ("blockSize", Value::Int(1024)),
            ("maxBlocks", Value::Int(63_963_136)),
            ("majorVersion", Value::Int(6)),
            ("version", s("6.82")),
            ("uuid", s(format!("lab-{}", ds.moid))),
            (
                "extent",
                Value::array(
                    "HostScsiDiskPartition",
                    vec![Value::obj(
                        "HostScsiDiskPartition",
                        vec![
                            ("diskName", s(naa.to_owned())),
                            ("partition", Value::Int(1)),
                        ],
                    )],
                ),
            ),
            ("vmfsUpgradable", Value::Bool(false)),
            ("ssd", Value::Bool(true)),
            ("local", Value::Bool(false)),
        ],
    )
}
