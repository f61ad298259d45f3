//! VirtualMachine: `config.hardware.device` (controller + flat, vVol or RDM virtual disks),
//! `layoutEx` with the allocated size of every disk file, `runtime.host`, and the no-op
//! `RefreshStorageInfo`.

use std::os::unix::fs::MetadataExt;

use super::host_storage_system::scsi_uuid;
use super::inventory::{Inventory, VM_FOLDER, VmEntry};
use super::soap::{Call, Fault};
use super::value::{Moref, Value, s};

const CONTROLLER_KEY: i32 = 1000;

fn disk_device(inv: &Inventory, vm: &VmEntry, index: usize) -> Value {
    let disk = &vm.disks[index];
    let datastore = inv
        .datastore_named(&disk.datastore)
        .map(|d| Moref::new("Datastore", d.moid.clone()));
    let file_name = s(format!("[{}] {}", disk.datastore, disk.descriptor));
    let mut backing = match &disk.rdm_naa {
        None => vec![
            ("fileName", file_name),
            ("diskMode", s("persistent")),
            ("split", Value::Bool(false)),
            ("writeThrough", Value::Bool(false)),
            ("thinProvisioned", Value::Bool(true)),
            ("uuid", s(disk.uuid.clone())),
            ("contentId", s(format!("{:032x}", disk.key))),
            ("digestEnabled", Value::Bool(false)),
        ],
        Some(naa) => {
            let lun_uuid = inv.hosts[vm.host]
                .device(naa)
                .map(|d| scsi_uuid(&d))
                .unwrap_or_default();
            vec![
                ("fileName", file_name),
                ("lunUuid", s(lun_uuid)),
                ("deviceName", s(format!("/vmfs/devices/disks/{naa}"))),
                ("compatibilityMode", s("physicalMode")),
                ("diskMode", s("independent_persistent")),
                ("uuid", s(disk.uuid.clone())),
            ]
        }
    };
    let backing_kind = if disk.rdm_naa.is_some() {
        "VirtualDiskRawDiskMappingVer1BackingInfo"
    } else {
        "VirtualDiskFlatVer2BackingInfo"
    };
    // VirtualDeviceFileBackingInfo's own fields come first, in the WSDL's order: fileName,
    // datastore, backingObjectId (set only for a vVol disk).
    let mut file_fields = 1;
    if let Some(ds) = datastore {
        backing.insert(file_fields, ("datastore", Value::Ref(ds)));
        file_fields += 1;
    }
    if let Some(id) = &disk.backing_object_id {
        backing.insert(file_fields, ("backingObjectId", s(id.clone())));
    }
    Value::obj(
        "VirtualDisk",
        vec![
            ("key", Value::Int(disk.key)),
            (
                "deviceInfo",
                Value::obj(
                    "Description",
                    vec![
                        ("label", s(format!("Hard disk {}", index + 1))),
                        ("summary", s(format!("{} KB", disk.capacity_bytes / 1024))),
                    ],
                ),
            ),
            ("backing", Value::obj(backing_kind, backing)),
            ("controllerKey", Value::Int(CONTROLLER_KEY)),
            ("unitNumber", Value::Int(index as i32)),
            (
                "capacityInKB",
                Value::Long((disk.capacity_bytes / 1024) as i64),
            ),
            ("capacityInBytes", Value::Long(disk.capacity_bytes as i64)),
        ],
    )
}

fn controller(vm: &VmEntry) -> Value {
    Value::obj(
        "VirtualLsiLogicController",
        vec![
            ("key", Value::Int(CONTROLLER_KEY)),
            (
                "deviceInfo",
                Value::obj(
                    "Description",
                    vec![
                        ("label", Value::str("SCSI controller 0")),
                        ("summary", Value::str("LSI Logic")),
                    ],
                ),
            ),
            ("busNumber", Value::Int(0)),
            (
                "device",
                Value::array("int", vm.disks.iter().map(|d| Value::Int(d.key)).collect()),
            ),
            ("hotAddRemove", Value::Bool(true)),
            ("sharedBus", Value::str("noSharing")),
            ("scsiCtlrUnitNumber", Value::Int(7)),
        ],
    )
}

fn layout_ex(inv: &Inventory, vm: &VmEntry) -> Value {
    let mut files = Vec::new();
    let mut disks = Vec::new();
    let size_of = |ds: &str, rel: &str| {
        inv.paths
            .resolve(ds, rel)
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.blocks() * 512)
    };
    let file = |key: i32, name: String, kind: &str, size: u64| {
        Value::obj(
            "VirtualMachineFileLayoutExFileInfo",
            vec![
                ("key", Value::Int(key)),
                ("name", s(name)),
                ("type", s(kind)),
                ("size", Value::Long(size as i64)),
                ("uniqueSize", Value::Long(size as i64)),
                ("accessible", Value::Bool(true)),
            ],
        )
    };
    if let Some(first) = vm.disks.first() {
        files.push(file(
            0,
            format!("[{}] {}/{}.vmx", first.datastore, vm.name, vm.name),
            "config",
            2048,
        ));
    }
    for (i, disk) in vm.disks.iter().enumerate() {
        let descriptor_key = 1 + 2 * i as i32;
        let extent_key = descriptor_key + 1;
        files.push(file(
            descriptor_key,
            format!("[{}] {}", disk.datastore, disk.descriptor),
            "diskDescriptor",
            size_of(&disk.datastore, &disk.descriptor),
        ));
        files.push(file(
            extent_key,
            format!("[{}] {}", disk.datastore, disk.flat),
            "diskExtent",
            size_of(&disk.datastore, &disk.flat),
        ));
        disks.push(Value::obj(
            "VirtualMachineFileLayoutExDiskLayout",
            vec![
                ("key", Value::Int(disk.key)),
                (
                    "chain",
                    Value::array(
                        "VirtualMachineFileLayoutExDiskUnit",
                        vec![Value::obj(
                            "VirtualMachineFileLayoutExDiskUnit",
                            vec![(
                                "fileKey",
                                Value::array(
                                    "int",
                                    vec![Value::Int(descriptor_key), Value::Int(extent_key)],
                                ),
                            )],
                        )],
                    ),
                ),
            ],
        ));
    }
    Value::obj(
        "VirtualMachineFileLayoutEx",
        vec![
            (
                "file",
                Value::array("VirtualMachineFileLayoutExFileInfo", files),
            ),
            (
                "disk",
                Value::array("VirtualMachineFileLayoutExDiskLayout", disks),
            ),
            ("timestamp", Value::DateTime(super::now_datetime())),
        ],
    )
}

pub(super) fn properties(inv: &Inventory, obj: &Moref) -> Option<Vec<(&'static str, Value)>> {
    let vm = inv.vm(&obj.value)?;
    let host = inv.host_ref(vm.host);
    let mut devices = vec![controller(vm)];
    devices.extend((0..vm.disks.len()).map(|i| disk_device(inv, vm, i)));
    let vmx = vm
        .disks
        .first()
        .map(|d| format!("[{}] {}/{}.vmx", d.datastore, vm.name, vm.name))
        .unwrap_or_default();
    let runtime = Value::obj(
        "VirtualMachineRuntimeInfo",
        vec![
            ("host", Value::Ref(host)),
            ("connectionState", s("connected")),
            ("powerState", s("poweredOff")),
        ],
    );
    let mut datastores: Vec<String> = Vec::new();
    for disk in &vm.disks {
        if let Some(ds) = inv.datastore_named(&disk.datastore)
            && !datastores.contains(&ds.moid)
        {
            datastores.push(ds.moid.clone());
        }
    }
    let mut properties = vec![
        ("name", s(vm.name.clone())),
        ("parent", Value::Ref(Moref::new("Folder", VM_FOLDER))),
        ("overallStatus", s("green")),
        ("runtime", runtime.clone()),
        (
            "config",
            Value::obj(
                "VirtualMachineConfigInfo",
                vec![
                    ("changeVersion", s("1")),
                    ("modified", Value::DateTime(super::now_datetime())),
                    ("name", s(vm.name.clone())),
                    ("guestFullName", s("Other Linux (64-bit)")),
                    ("version", s("vmx-19")),
                    ("uuid", s(vm.uuid.clone())),
                    ("instanceUuid", s(vm.instance_uuid.clone())),
                    ("template", Value::Bool(false)),
                    ("guestId", s("otherLinux64Guest")),
                    (
                        "files",
                        Value::obj(
                            "VirtualMachineFileInfo",
                            vec![("vmPathName", s(vmx.clone()))],
                        ),
                    ),
                    (
                        "hardware",
                        Value::obj(
                            "VirtualHardware",
                            vec![
                                ("numCPU", Value::Int(1)),
                                ("numCoresPerSocket", Value::Int(1)),
                                ("memoryMB", Value::Int(1024)),
                                ("device", Value::array("VirtualDevice", devices)),
                            ],
                        ),
                    ),
                ],
            ),
        ),
        ("layoutEx", layout_ex(inv, vm)),
        ("datastore", Value::refs("Datastore", datastores)),
        (
            "summary",
            Value::obj(
                "VirtualMachineSummary",
                vec![
                    ("vm", Value::Ref(obj.clone())),
                    ("runtime", runtime),
                    (
                        "config",
                        Value::obj(
                            "VirtualMachineConfigSummary",
                            vec![
                                ("name", s(vm.name.clone())),
                                ("template", Value::Bool(false)),
                                ("vmPathName", s(vmx)),
                                ("numVirtualDisks", Value::Int(vm.disks.len() as i32)),
                                ("uuid", s(vm.uuid.clone())),
                                ("instanceUuid", s(vm.instance_uuid.clone())),
                            ],
                        ),
                    ),
                    ("overallStatus", s("green")),
                ],
            ),
        ),
    ];
    // vCenter leaves both properties unset on a VM without snapshots.
    if let Some(info) = snapshot_info(vm, obj) {
        let roots = vm.snapshots.first().map(|_| snapshot_ref(vm, 0));
        properties.push(("snapshot", info));
        properties.push(("rootSnapshot", Value::refs("VirtualMachineSnapshot", roots)));
    }
    Some(properties)
}

fn snapshot_ref(vm: &VmEntry, index: usize) -> String {
    format!("snapshot-{}-{}", vm.moid, index + 1)
}

/// `VirtualMachineSnapshotInfo`: the VM's snapshots as one chain (each the child of the one
/// before), the newest current.
fn snapshot_info(vm: &VmEntry, obj: &Moref) -> Option<Value> {
    let current = vm.snapshots.len().checked_sub(1)?;
    let mut tree: Option<Value> = None;
    for (index, name) in vm.snapshots.iter().enumerate().rev() {
        let mut fields = vec![
            (
                "snapshot",
                Value::Ref(Moref::new(
                    "VirtualMachineSnapshot",
                    snapshot_ref(vm, index),
                )),
            ),
            ("vm", Value::Ref(obj.clone())),
            ("name", s(name.clone())),
            ("description", s("")),
            ("id", Value::Int(index as i32 + 1)),
            ("createTime", Value::DateTime(super::now_datetime())),
            ("state", s("poweredOff")),
            ("quiesced", Value::Bool(false)),
        ];
        if let Some(child) = tree.take() {
            fields.push((
                "childSnapshotList",
                Value::array("VirtualMachineSnapshotTree", vec![child]),
            ));
        }
        tree = Some(Value::obj("VirtualMachineSnapshotTree", fields));
    }
    Some(Value::obj(
        "VirtualMachineSnapshotInfo",
        vec![
            (
                "currentSnapshot",
                Value::Ref(Moref::new(
                    "VirtualMachineSnapshot",
                    snapshot_ref(vm, current),
                )),
            ),
            (
                "rootSnapshotList",
                Value::array("VirtualMachineSnapshotTree", tree.into_iter().collect()),
            ),
        ],
    ))
}

pub(super) fn invoke(call: &Call) -> Result<Option<Value>, Fault> {
    match call.method.as_str() {
        // Sizes in layoutEx are read from the files on every request, so there is nothing to refresh.
        "RefreshStorageInfo" => Ok(None),
        _ => Err(Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        }),
    }
}
