//! The disks to check — every disk of a selected VM, or one disk by path — what vCenter says
//! about each (kind, datastore, host, snapshots), the per-disk checks, and the predicted path.

use co_api::DatastorePath;
use co_api::StorageVendorProduct;
use co_populator::EnvironmentConfig;
use co_storage::{ArrayCopySource, DeviceName, StorageApi};
use co_vsphere::inventory::{DiskBacking, DiskKind};
use co_vsphere::object::VmSnapshot;
use co_vsphere::{Client, DatastoreDevice, ManagedObjectReference, VirtualMachine};

use crate::catalog::{DISK_FOUND, DISK_SAME_ARRAY, DISK_SNAPSHOTS, device_oui, vendor_ouis};
use crate::hosts::HostFacts;
use crate::report::{Check, CopyPath, DiskPrediction, Outcome};

/// What vCenter says about one disk.
pub(crate) struct DiskFacts {
    pub vm: String,
    pub path: DatastorePath,
    pub kind: DiskKind,
    pub host: ManagedObjectReference,
    /// The disk's datastore as its host mounts it.
    pub datastore: DatastoreDevice,
    pub snapshots: Vec<VmSnapshot>,
}

/// Finds the selected disks; a VM or disk that cannot be read fails [`DISK_FOUND`].
pub(crate) async fn gather(
    client: &Client,
    selection: &crate::Selection,
    checks: &mut Vec<Check>,
) -> Vec<DiskFacts> {
    let mut wanted: Vec<(ManagedObjectReference, DatastorePath)> = Vec::new();
    for vm in &selection.vms {
        match vm_disk_paths(client, vm).await {
            Ok(paths) if paths.is_empty() => checks.push(Check::warn(
                DISK_FOUND,
                vm.as_str(),
                "the VM has no disk backed by a file or a raw device mapping",
                "Nothing to migrate on this VM; check the VM name.",
            )),
            Ok(paths) => wanted.extend(paths),
            Err(error) => checks.push(Check::fail(
                DISK_FOUND,
                vm.as_str(),
                format!("cannot read the VM: {error}"),
                "Give the VM's name, managed object id (vm-123) or inventory path as vCenter shows it.",
            )),
        }
    }
    for path in &selection.disks {
        match client.find_vm_by_disk(path).await {
            Ok(vm) => wanted.push((vm, path.clone())),
            Err(error) => checks.push(Check::fail(
                DISK_FOUND,
                path.to_string(),
                format!("no VM has this disk: {error}"),
                "Give the disk descriptor's datastore path as the VM's hardware settings show it, \
                 e.g. \"[datastore1] vm-1/vm-1.vmdk\".",
            )),
        }
    }
    let mut out = Vec::new();
    for (vm, path) in wanted {
        match disk_facts(client, &vm, &path).await {
            Ok(facts) => {
                checks.push(Check::pass(
                    DISK_FOUND,
                    path.to_string(),
                    format!("disk of VM {} ({})", facts.vm, kind_name(&facts.kind)),
                ));
                out.push(facts);
            }
            Err(error) => checks.push(Check::fail(
                DISK_FOUND,
                path.to_string(),
                format!("cannot read the disk: {error}"),
                "Check that the VM is registered on a connected host and the datastore is mounted.",
            )),
        }
    }
    out
}

async fn vm_disk_paths(
    client: &Client,
    vm: &str,
) -> Result<Vec<(ManagedObjectReference, DatastorePath)>, co_vsphere::Error> {
    let moref = client.find_vm(vm).await?;
    let disks = VirtualMachine::new(client.clone(), moref.clone())
        .disks()
        .await?;
    Ok(disks
        .iter()
        .filter_map(|disk| match &disk.backing {
            DiskBacking::File { chain, .. } => chain.first().map(|f| f.file_name.clone()),
            DiskBacking::Rdm { file_name, .. } => Some(file_name.clone()),
            DiskBacking::Other { .. } => None,
        })
        .filter_map(|name| DatastorePath::parse(&name).ok())
        .map(|path| (moref.clone(), path))
        .collect())
}

async fn disk_facts(
    client: &Client,
    vm: &ManagedObjectReference,
    path: &DatastorePath,
) -> Result<DiskFacts, co_vsphere::Error> {
    let handle = VirtualMachine::new(client.clone(), vm.clone());
    let source = handle.source_disk(path).await?;
    let host = handle.host().await?;
    let datastore = host.datastore(path.datastore()).await?;
    Ok(DiskFacts {
        vm: client.entity_name(vm).await?,
        path: path.clone(),
        kind: source.kind,
        host: host.reference().clone(),
        datastore,
        snapshots: handle.snapshots().await?,
    })
}

fn kind_name(kind: &DiskKind) -> &'static str {
    match kind {
        DiskKind::Vmdk => "VMDK",
        DiskKind::Vvol { .. } => "vVol",
        DiskKind::Rdm { .. } => "RDM",
    }
}

/// The per-disk checks and each disk's predicted path.
pub(crate) async fn check_disks(
    env: &EnvironmentConfig,
    array: Option<&dyn StorageApi>,
    disks: &[DiskFacts],
    hosts: &[HostFacts],
    checks: &mut Vec<Check>,
) -> Vec<DiskPrediction> {
    let mut predictions = Vec::new();
    for disk in disks {
        let host = hosts.iter().find(|h| h.moref == disk.host);
        let snapshots = snapshot_check(disk);
        let same_array = same_array_check(env, array, disk).await;
        predictions.push(predict(env, array, disk, host, &snapshots, &same_array));
        checks.push(snapshots);
        checks.push(same_array.check);
    }
    predictions
}

fn snapshot_check(disk: &DiskFacts) -> Check {
    let subject = disk.path.to_string();
    if disk.snapshots.is_empty() {
        return Check::pass(
            DISK_SNAPSHOTS,
            subject,
            format!("VM {} has no snapshots", disk.vm),
        );
    }
    let names: Vec<&str> = disk.snapshots.iter().map(|s| s.name.as_str()).collect();
    Check::fail(
        DISK_SNAPSHOTS,
        subject,
        format!(
            "VM {} has {} snapshot(s) ({}): the disk is a delta chain, which ESXi copies on the host",
            disk.vm,
            names.len(),
            names.join(", ")
        ),
        format!(
            "Delete or consolidate the snapshots of VM {} before the copy (vSphere Client › the VM › \
             Snapshots › Manage Snapshots › Delete All), then run preflight again.",
            disk.vm
        ),
    )
}

/// The device whose array the copy reads from: the datastore's first extent for a VMDK, the
/// mapped LUN for an RDM; a vVol has none (the array copies it itself).
pub(crate) fn source_device(disk: &DiskFacts) -> Option<String> {
    match &disk.kind {
        DiskKind::Vmdk => disk.datastore.extents.first().cloned(),
        DiskKind::Rdm { device_name, .. } => Some(device_name.clone()),
        DiskKind::Vvol { .. } => None,
    }
}

/// The same-array verdict and whether it rules out XCOPY (another array, no SAN LUN); a
/// warning that only says "cannot tell which array" does not.
struct SameArray {
    check: Check,
    blocks_offload: bool,
}

impl SameArray {
    fn blocking(check: Check) -> SameArray {
        SameArray {
            check,
            blocks_offload: true,
        }
    }

    fn open(check: Check) -> SameArray {
        SameArray {
            check,
            blocks_offload: false,
        }
    }
}

async fn same_array_check(
    env: &EnvironmentConfig,
    array: Option<&dyn StorageApi>,
    disk: &DiskFacts,
) -> SameArray {
    let subject = disk.path.to_string();
    let product = env.storage.product();
    let address = &env.storage.hostname;
    let Some(device) = source_device(disk) else {
        return match disk.kind {
            DiskKind::Vvol { .. } => SameArray::open(Check::pass(
                DISK_SAME_ARRAY,
                subject,
                "a vVol: the array that holds it copies it",
            )),
            _ => SameArray::blocking(Check::warn(
                DISK_SAME_ARRAY,
                subject,
                format!(
                    "datastore {} has no SAN LUN ({}): XCOPY cannot offload the copy",
                    disk.datastore.name, disk.datastore.info_type
                ),
                format!(
                    "Storage vMotion the VM to a VMFS datastore on {address} for an offloaded copy, or \
                     accept a host copy."
                ),
            )),
        };
    };
    let other_array_remedy = format!(
        "Map this VM to a storage class on the array that holds datastore {} (the StorageMap's \
         offload plugin settings), or Storage vMotion the VM to a datastore on {address} first.",
        disk.datastore.name
    );
    let expected = vendor_ouis(product);
    let vendor_id = match device_oui(&device) {
        _ if expected.is_empty() => format!("{} device names carry no vendor id", product.as_str()),
        Some(oui) if expected.contains(&oui.as_str()) => {
            format!("it carries the vendor id of {} ({oui})", product.as_str())
        }
        found => {
            return SameArray::blocking(Check::fail(
                DISK_SAME_ARRAY,
                subject,
                format!(
                    "source LUN {device} of datastore {} is not on a {} array (vendor id {}, expected {}): \
                     XCOPY between two arrays silently falls back to a host copy",
                    disk.datastore.name,
                    product.as_str(),
                    found.as_deref().unwrap_or("none"),
                    expected.join(" or ")
                ),
                other_array_remedy,
            ));
        }
    };
    let answer = match (array, DeviceName::parse(&device)) {
        (Some(array), Ok(name)) => array.holds_device(&name).await.map_err(|e| e.to_string()),
        (Some(_), Err(error)) => Err(error.to_string()),
        (None, _) => Ok(None),
    };
    match answer {
        Ok(Some(true)) => SameArray::open(Check::pass(
            DISK_SAME_ARRAY,
            subject,
            format!(
                "source LUN {device} of datastore {} is a volume of the array at {address} ({vendor_id})",
                disk.datastore.name
            ),
        )),
        Ok(Some(false)) => SameArray::blocking(Check::fail(
            DISK_SAME_ARRAY,
            subject,
            format!(
                "source LUN {device} of datastore {} is not a volume of the array at {address}, \
                 although {vendor_id}: it is on another {} array, and XCOPY between two arrays silently \
                 falls back to a host copy",
                disk.datastore.name,
                product.as_str()
            ),
            other_array_remedy,
        )),
        Ok(None) => SameArray::open(Check::warn(
            DISK_SAME_ARRAY,
            subject,
            format!(
                "source LUN {device} of datastore {}: {vendor_id}, but the {} plugin cannot tell \
                 whether it is on the array at {address} or on another array of that vendor",
                disk.datastore.name,
                product.as_str()
            ),
            format!(
                "Make sure datastore {} is on the array at {address}; if it is on another array, {}",
                disk.datastore.name,
                lowercase_first(&other_array_remedy)
            ),
        )),
        Err(error) => SameArray::open(Check::warn(
            DISK_SAME_ARRAY,
            subject,
            format!(
                "source LUN {device} of datastore {}: {vendor_id}, but the array did not say whether \
                 it holds it: {error}",
                disk.datastore.name
            ),
            format!(
                "Make sure datastore {} is on the array at {address}, then run preflight again.",
                disk.datastore.name
            ),
        )),
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

fn predict(
    env: &EnvironmentConfig,
    array: Option<&dyn StorageApi>,
    disk: &DiskFacts,
    host: Option<&HostFacts>,
    snapshots: &Check,
    same_array: &SameArray,
) -> DiskPrediction {
    let prediction = |path, reason: String| DiskPrediction {
        vm: disk.vm.clone(),
        disk: disk.path.to_string(),
        path,
        reason,
    };
    let array_copy = array.and_then(|a| a.array_copy());
    match &disk.kind {
        DiskKind::Vvol { backing_object_id } if !env.esxi.disable_vvol_method => {
            let source = ArrayCopySource::VVol {
                vvol_id: backing_object_id.clone(),
            };
            if array_copy.is_some_and(|c| c.supports(&source)) {
                return prediction(
                    CopyPath::ArrayCopyVvol,
                    format!(
                        "a vVol, and the {} plugin copies vVols on the array",
                        env.storage.product().as_str()
                    ),
                );
            }
        }
        DiskKind::Rdm {
            device_name,
            lun_uuid,
        } if !env.esxi.disable_rdm_method => {
            let source = ArrayCopySource::Rdm {
                device_name: device_name.clone(),
                lun_uuid: lun_uuid.clone(),
            };
            if array_copy.is_some_and(|c| c.supports(&source)) {
                return prediction(
                    CopyPath::ArrayCopyRdm,
                    format!(
                        "a raw device mapping, and the {} plugin copies RDM volumes on the array",
                        env.storage.product().as_str()
                    ),
                );
            }
        }
        _ => {}
    }
    if array.is_none() {
        return prediction(
            CopyPath::Unknown,
            "the array could not be reached, so its copy capabilities are unknown".into(),
        );
    }
    let Some(host) = host else {
        return prediction(
            CopyPath::Unknown,
            "the disk's host could not be read".into(),
        );
    };
    let blockers: Vec<String> = [
        (host.hardware_accelerated_move == Some(false))
            .then(|| format!("/DataMover/HardwareAcceleratedMove is off on {}", host.name)),
        (snapshots.outcome == Outcome::Fail).then(|| "the VM has snapshots".to_owned()),
        same_array
            .blocks_offload
            .then(|| same_array.check.message.clone()),
        (env.storage.product() == StorageVendorProduct::PowerFlex).then(|| {
            "PowerFlex volumes reach ESXi through the SDC, which offloads no clone".to_owned()
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    match (blockers.is_empty(), disk.kind == DiskKind::Vmdk) {
        (true, true) => prediction(
            CopyPath::Xcopy,
            format!(
                "VMFS datastore {} on the configured array, hardware accelerated move on {}",
                disk.datastore.name, host.name
            ),
        ),
        (true, false) => prediction(
            CopyPath::Xcopy,
            format!(
                "{} cloned by ESXi on {} with XCOPY (no array-side copy for it on this vendor or it is disabled)",
                kind_name(&disk.kind),
                host.name
            ),
        ),
        (false, _) => prediction(CopyPath::HostCopy, blockers.join("; ")),
    }
}
