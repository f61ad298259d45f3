//! The lab's vmkfstools engine against real VMDKs made by qemu-img: every clone is byte-compared with
//! `qemu-img convert -O raw` of the same source, and the side effects ESXi would show (RDM descriptor
//! and mapping file, XCOPY clone counters, progress lines, cleanup on abort) are checked.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use co_lab::san::{ArrayVendor, San, Volume};
use co_lab::vmkfstools::{
    self, CloneReport, CloneRequest, ExtentKind, VmkfstoolsError, parse_descriptor,
    rdm_mapping_contents, rdm_mapping_path,
};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

const MIB: u64 = 1 << 20;

fn tool(name: &str, args: &[&str]) {
    let output = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!(
            "{name} is required for the VMDK fixtures ({e}); install it with `scripts/peers.sh install` \
             or `apt-get install -y qemu-utils`"
        )
    });
    assert!(
        output.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn qemu_img(args: &[&str]) {
    tool("qemu-img", args);
}

/// Runs qemu-io commands (`write -P 0xab 0 1M`, `write -z …`) against a VMDK.
fn qemu_io(disk: &Path, commands: &[&str]) {
    let mut args = vec!["-f", "vmdk"];
    for command in commands {
        args.extend(["-c", command]);
    }
    let disk = disk.to_str().unwrap();
    args.push(disk);
    tool("qemu-io", &args);
}

/// The disk's contents according to qemu-img, the reference implementation.
fn reference_raw(dir: &Path, disk: &Path) -> Vec<u8> {
    let raw = dir.join(format!(
        "{}.reference.raw",
        disk.file_name().unwrap().to_string_lossy()
    ));
    qemu_img(&[
        "convert",
        "-O",
        "raw",
        disk.to_str().unwrap(),
        raw.to_str().unwrap(),
    ]);
    std::fs::read(raw).unwrap()
}

struct Lab {
    dir: TempDir,
    san: San,
}

impl Lab {
    /// Two ONTAP arrays; datastores live on `array-a`.
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let san = San::new(&dir.path().join("san"));
        san.add_array("array-a", ArrayVendor::Ontap).unwrap();
        san.add_array("array-b", ArrayVendor::Ontap).unwrap();
        std::fs::create_dir_all(dir.path().join("ds1/vm")).unwrap();
        Lab { dir, san }
    }

    fn vm_dir(&self) -> PathBuf {
        self.dir.path().join("ds1/vm")
    }

    fn target(&self, array: &str, size: u64) -> Volume {
        let name = format!("/vol/pvc_{}/lun0", self.san.volumes(array).len());
        self.san.create_volume(array, &name, size).unwrap()
    }

    /// A 10 MiB monolithicFlat base: 1 MiB of 0xab at 0, 64 KiB of 0xcd at 5 MiB, holes elsewhere.
    fn flat_base(&self) -> PathBuf {
        self.flat_disk(
            "base.vmdk",
            "10M",
            &["write -P 0xab 0 1M", "write -P 0xcd 5M 64k"],
        )
    }

    /// A monolithicFlat disk `name` of `size` (qemu-img's notation) in the VM folder, written
    /// with the qemu-io `writes`; holes elsewhere.
    fn flat_disk(&self, name: &str, size: &str, writes: &[&str]) -> PathBuf {
        let disk = self.vm_dir().join(name);
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=monolithicFlat",
            disk.to_str().unwrap(),
            size,
        ]);
        qemu_io(&disk, writes);
        disk
    }

    /// A physical-mode RDM of a new `size`-byte volume on `array`, as ESXi lays it out: a
    /// `VMFSRDM` descriptor in the VM folder whose mapping file names the device. The device holds
    /// 1 MiB of 0x5c at 0 and 4 KiB of 0x7e at 3 MiB, holes elsewhere.
    fn rdm_source(&self, array: &str, size: u64) -> (PathBuf, Volume) {
        let volume = self
            .san
            .create_volume(
                array,
                &format!("rdm-src-{}", self.san.volumes(array).len()),
                size,
            )
            .unwrap();
        let device = std::fs::OpenOptions::new()
            .write(true)
            .open(&volume.backing_path)
            .unwrap();
        device.write_all_at(&vec![0x5c; MIB as usize], 0).unwrap();
        device.write_all_at(&[0x7e; 4096], 3 * MIB).unwrap();
        let mapping = self.vm_dir().join("rdm-src-rdmp.vmdk");
        std::fs::write(&mapping, rdm_mapping_contents(&volume.naa)).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&mapping)
            .unwrap()
            .set_len(size)
            .unwrap();
        let descriptor = self.vm_dir().join("rdm-src.vmdk");
        std::fs::write(
            &descriptor,
            co_lab::lab::rdm_descriptor(
                "rdm-src-rdmp.vmdk",
                size,
                "60 00 c2 9b 1f 3e 5a 7d-8c 9e 0f 11 22 33 44 55",
            ),
        )
        .unwrap();
        (descriptor, volume)
    }

    fn request(&self, source: &Path, target: &Volume, source_array: Option<&str>) -> CloneRequest {
        let mut rdm = source.as_os_str().to_owned();
        rdm.push("-rdmdisk-4242");
        CloneRequest {
            source_descriptor: source.to_path_buf(),
            target: target.clone(),
            rdm_descriptor: PathBuf::from(rdm),
            source_array: source_array.map(str::to_owned),
            source_lun: None,
            san: self.san.clone(),
        }
    }
}

async fn clone(req: CloneRequest) -> (Result<CloneReport, VmkfstoolsError>, Vec<u8>) {
    let mut seen = Vec::new();
    let result = vmkfstools::clone(req, |p| seen.push(p), CancellationToken::new()).await;
    (result, seen)
}

fn device_bytes(volume: &Volume, len: usize) -> Vec<u8> {
    let mut bytes = std::fs::read(&volume.backing_path).unwrap();
    assert_eq!(
        bytes.len() as u64,
        volume.size_bytes,
        "the device keeps its size"
    );
    bytes.truncate(len);
    bytes
}

#[tokio::test]
async fn monolithic_flat_clone_on_the_same_array_is_offloaded_and_exact() {
    let lab = Lab::new();
    let base = lab.flat_base();
    let expected = reference_raw(lab.dir.path(), &base);
    let target = lab.target("array-a", 16 * MIB);

    let (result, progress) = clone(lab.request(&base, &target, Some("array-a"))).await;
    let report = result.unwrap();

    assert!(report.offloaded);
    assert_eq!(report.capacity_bytes, 10 * MIB);
    assert_eq!(
        report.bytes_copied,
        MIB + 64 * 1024,
        "only allocated data moves"
    );
    assert_eq!(device_bytes(&target, expected.len()), expected);
    assert_eq!(
        progress,
        (0..=100).collect::<Vec<u8>>(),
        "every percentage once, in order"
    );

    let counters = lab.san.clone_counters(&target.naa);
    assert!(
        counters.clone_write_ops >= 2,
        "XCOPY segments counted: {counters:?}"
    );
    assert_eq!(counters.failed_clone_ops, 0);
}

#[tokio::test]
async fn clone_to_another_array_is_a_host_copy_without_xcopy_counters() {
    let lab = Lab::new();
    let base = lab.flat_base();
    let expected = reference_raw(lab.dir.path(), &base);
    let target = lab.target("array-b", 10 * MIB);

    let (result, _) = clone(lab.request(&base, &target, Some("array-a"))).await;
    let report = result.unwrap();

    assert!(!report.offloaded);
    assert_eq!(device_bytes(&target, expected.len()), expected);
    assert_eq!(lab.san.clone_counters(&target.naa).clone_write_ops, 0);
}

#[tokio::test]
async fn clone_overwrites_stale_data_on_a_reused_device() {
    let lab = Lab::new();
    let base = lab.flat_base();
    let expected = reference_raw(lab.dir.path(), &base);
    let target = lab.target("array-a", 10 * MIB);
    std::fs::write(&target.backing_path, vec![0x5a; (10 * MIB) as usize]).unwrap();

    let (result, _) = clone(lab.request(&base, &target, Some("array-a"))).await;
    result.unwrap();

    assert_eq!(
        device_bytes(&target, expected.len()),
        expected,
        "holes in the source read as zeroes on the device"
    );
}

#[tokio::test]
async fn hand_edited_esxi_vmfs_descriptor_with_nul_padding_clones_exactly() {
    let lab = Lab::new();
    let base = lab.flat_base();
    let expected = reference_raw(lab.dir.path(), &base);
    let text = std::fs::read_to_string(&base).unwrap();
    let mut esx = text
        .replace("createType=\"monolithicFlat\"", "createType=\"vmfs\"")
        .replace(
            "RW 20480 FLAT \"base-flat.vmdk\" 0",
            "RW 20480 VMFS \"base-flat.vmdk\"",
        )
        .into_bytes();
    esx.resize(esx.len().next_multiple_of(512) + 512, 0);
    let esx_path = lab.vm_dir().join("esx disk.vmdk");
    std::fs::write(&esx_path, &esx).unwrap();
    let parsed = parse_descriptor(&esx).unwrap();
    assert_eq!(parsed.create_type, "vmfs");
    assert_eq!(parsed.extents[0].kind, ExtentKind::Vmfs);

    let target = lab.target("array-a", 10 * MIB);
    let (result, _) = clone(lab.request(&esx_path, &target, Some("array-a"))).await;
    result.unwrap();

    assert_eq!(device_bytes(&target, expected.len()), expected);
}

#[tokio::test]
async fn snapshot_child_over_flat_base_resolves_child_over_parent() {
    let lab = Lab::new();
    let base = lab.flat_base();
    let child = lab.vm_dir().join("base-000001.vmdk");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "vmdk",
        "-o",
        "subformat=twoGbMaxExtentSparse,zeroed_grain=on",
        "-b",
        base.to_str().unwrap(),
        "-F",
        "vmdk",
        child.to_str().unwrap(),
    ]);
    // Overwrite part of the base's data, zero the base's second run, and add data over a hole.
    qemu_io(
        &child,
        &[
            "write -P 0x11 512k 256k",
            "write -z 5M 64k",
            "write -P 0x22 8M 100k",
        ],
    );
    let expected = reference_raw(lab.dir.path(), &child);
    assert!(
        expected[5 * MIB as usize..][..65536]
            .iter()
            .all(|b| *b == 0),
        "fixture: the child's zero grain hides the parent's data"
    );

    let target = lab.target("array-a", 10 * MIB);
    let (result, _) = clone(lab.request(&child, &target, Some("array-a"))).await;
    result.unwrap();

    assert_eq!(device_bytes(&target, expected.len()), expected);
}

#[tokio::test]
async fn monolithic_sparse_child_with_embedded_descriptor_clones_exactly() {
    let lab = Lab::new();
    let base = lab.flat_base();
    let child = lab.vm_dir().join("child.vmdk");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "vmdk",
        "-b",
        base.to_str().unwrap(),
        "-F",
        "vmdk",
        child.to_str().unwrap(),
    ]);
    qemu_io(&child, &["write -P 0x33 960k 128k"]);
    let expected = reference_raw(lab.dir.path(), &child);

    let target = lab.target("array-b", 10 * MIB);
    let (result, _) = clone(lab.request(&child, &target, Some("array-a"))).await;
    result.unwrap();

    assert_eq!(device_bytes(&target, expected.len()), expected);
}

#[tokio::test]
async fn a_modified_parent_is_refused_like_esxi_does() {
    let lab = Lab::new();
    let base = lab.flat_base();
    let child = lab.vm_dir().join("base-000001.vmdk");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "vmdk",
        "-o",
        "subformat=twoGbMaxExtentSparse",
        "-b",
        base.to_str().unwrap(),
        "-F",
        "vmdk",
        child.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&child).unwrap();
    let cid_line = text.lines().find(|l| l.starts_with("parentCID=")).unwrap();
    std::fs::write(&child, text.replace(cid_line, "parentCID=0badc0de")).unwrap();

    let target = lab.target("array-a", 10 * MIB);
    let req = lab.request(&child, &target, Some("array-a"));
    let rdm = req.rdm_descriptor.clone();
    let (result, _) = clone(req).await;

    let err = result.unwrap_err();
    assert!(
        matches!(err, VmkfstoolsError::ParentModified { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("modified"), "{err}");
    assert!(!rdm.exists(), "nothing is created for a refused clone");
}

#[tokio::test]
async fn an_rdm_source_on_the_target_array_is_offloaded_from_its_device() {
    let lab = Lab::new();
    let (source, device) = lab.rdm_source("array-b", 8 * MIB);
    let expected = std::fs::read(&device.backing_path).unwrap();
    let target = lab.target("array-b", 8 * MIB);
    std::fs::write(&target.backing_path, vec![0xee; (8 * MIB) as usize]).unwrap();

    // The datastore holding the descriptor is on array-a: the mapped device's array decides.
    let (result, progress) = clone(lab.request(&source, &target, Some("array-a"))).await;
    let report = result.unwrap();

    assert!(report.offloaded, "{report:?}");
    assert_eq!(report.capacity_bytes, 8 * MIB);
    assert_eq!(
        report.bytes_copied,
        MIB + 4096,
        "only the device's data moves"
    );
    assert_eq!(device_bytes(&target, expected.len()), expected);
    assert_eq!(progress, (0..=100).collect::<Vec<u8>>());
    assert!(lab.san.clone_counters(&target.naa).clone_write_ops >= 2);
    assert_eq!(
        std::fs::read(&device.backing_path).unwrap(),
        expected,
        "the source device is only read"
    );
}

#[tokio::test]
async fn an_rdm_source_on_another_array_is_a_host_copy_from_its_device() {
    let lab = Lab::new();
    let (source, device) = lab.rdm_source("array-b", 8 * MIB);
    let expected = std::fs::read(&device.backing_path).unwrap();
    let target = lab.target("array-a", 8 * MIB);

    // The datastore is on the target's array, but the bytes live on array-b.
    let (result, _) = clone(lab.request(&source, &target, Some("array-a"))).await;
    let report = result.unwrap();

    assert!(!report.offloaded);
    assert_eq!(device_bytes(&target, expected.len()), expected);
    assert_eq!(lab.san.clone_counters(&target.naa).clone_write_ops, 0);
}

#[tokio::test]
async fn an_rdm_source_whose_device_is_gone_is_refused_without_touching_the_target() {
    let lab = Lab::new();
    let (source, device) = lab.rdm_source("array-a", 8 * MIB);
    lab.san.delete_volume("array-a", &device.name).unwrap();
    let target = lab.target("array-a", 8 * MIB);
    let req = lab.request(&source, &target, Some("array-a"));
    let rdm = req.rdm_descriptor.clone();

    let (result, progress) = clone(req).await;

    let err = result.unwrap_err();
    assert!(
        matches!(&err, VmkfstoolsError::MappedDeviceGone { naa, .. } if *naa == device.naa),
        "{err}"
    );
    assert!(err.to_string().contains(&device.naa), "{err}");
    assert!(progress.is_empty());
    assert!(!rdm.exists(), "no RDM descriptor written");
    assert_eq!(lab.san.clone_counters(&target.naa).clone_write_ops, 0);
}

#[tokio::test]
async fn an_rdm_of_the_target_device_itself_is_refused() {
    let lab = Lab::new();
    let (source, device) = lab.rdm_source("array-a", 8 * MIB);

    let (result, _) = clone(lab.request(&source, &device, Some("array-a"))).await;

    assert!(
        matches!(result, Err(VmkfstoolsError::SourceIsTarget { ref naa }) if *naa == device.naa),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_rdm_mapping_file_naming_no_device_is_reported_corrupt() {
    let lab = Lab::new();
    let (source, _) = lab.rdm_source("array-a", 8 * MIB);
    std::fs::write(lab.vm_dir().join("rdm-src-rdmp.vmdk"), b"\0\0\0\0").unwrap();
    let target = lab.target("array-a", 8 * MIB);

    let (result, _) = clone(lab.request(&source, &target, Some("array-a"))).await;

    assert!(
        matches!(result, Err(VmkfstoolsError::Corrupt { ref path, .. }) if path.ends_with("rdm-src-rdmp.vmdk")),
        "{result:?}"
    );
}

#[tokio::test]
async fn rdm_descriptor_and_mapping_file_are_written_as_esxi_does() {
    let lab = Lab::new();
    let base = lab.flat_base();
    let target = lab.target("array-a", 16 * MIB);
    let req = lab.request(&base, &target, Some("array-a"));
    let rdm = req.rdm_descriptor.clone();

    let (result, _) = clone(req).await;
    result.unwrap();

    let descriptor = parse_descriptor(&std::fs::read(&rdm).unwrap()).unwrap();
    assert_eq!(descriptor.create_type, "vmfsRawDeviceMap");
    assert_eq!(descriptor.extents.len(), 1);
    let extent = &descriptor.extents[0];
    assert_eq!(extent.kind, ExtentKind::VmfsRdm);
    assert_eq!(
        extent.sectors * 512,
        target.size_bytes,
        "an RDM is as large as its device"
    );
    let mapping = rdm_mapping_path(&rdm);
    assert_eq!(
        extent.file.as_deref(),
        Some(mapping.file_name().unwrap().to_str().unwrap())
    );
    assert_eq!(
        mapping.file_name().unwrap().to_str().unwrap(),
        "base.vmdk-rdmdisk-4242-rdm.vmdk"
    );
    let mapping_text = std::fs::read(&mapping).unwrap();
    assert!(
        String::from_utf8_lossy(&mapping_text)
            .contains(&format!("/vmfs/devices/disks/{}", target.naa))
    );
    assert_eq!(
        descriptor.ddb("adapterType"),
        Some("ide"),
        "taken from the source"
    );

    // A second clone onto the same descriptor path fails and leaves the first one intact.
    let again = lab.request(&base, &target, Some("array-a"));
    let (result, _) = clone(again).await;
    assert!(matches!(result, Err(VmkfstoolsError::RdmExists { .. })));
    assert!(rdm.exists() && mapping.exists());
}

#[tokio::test]
async fn a_target_smaller_than_the_source_is_refused() {
    let lab = Lab::new();
    let base = lab.flat_base();
    let target = lab.target("array-a", 8 * MIB);

    let (result, progress) = clone(lab.request(&base, &target, Some("array-a"))).await;

    let err = result.unwrap_err();
    assert!(
        matches!(err, VmkfstoolsError::TargetTooSmall { need, have, .. } if need == 10 * MIB && have == 8 * MIB),
        "{err}"
    );
    assert!(err.to_string().contains(&target.naa), "{err}");
    assert!(progress.is_empty());
}

#[tokio::test]
async fn a_device_deleted_from_the_array_is_refused() {
    let lab = Lab::new();
    let base = lab.flat_base();
    let target = lab.target("array-a", 10 * MIB);
    lab.san.delete_volume("array-a", &target.name).unwrap();

    let (result, _) = clone(lab.request(&base, &target, Some("array-a"))).await;

    assert!(matches!(result, Err(VmkfstoolsError::TargetGone { .. })));
}

#[tokio::test]
async fn cancelling_stops_the_copy_and_removes_the_rdm_files() {
    let lab = Lab::new();
    // Fully allocated, so the copy has many segments to be cancelled between.
    let base = lab.flat_disk("full.vmdk", "64M", &["write -P 0x77 0 64M"]);
    let target = lab.target("array-a", 64 * MIB);
    let req = lab.request(&base, &target, Some("array-a"));
    let rdm = req.rdm_descriptor.clone();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let mut seen = Vec::new();

    let result = vmkfstools::clone(
        req,
        |p| {
            seen.push(p);
            if p == 1 {
                trigger.cancel();
            }
        },
        cancel,
    )
    .await;

    assert!(
        matches!(result, Err(VmkfstoolsError::Cancelled)),
        "{result:?}"
    );
    assert!(
        seen.last().copied().unwrap_or(0) < 100,
        "stopped early: {seen:?}"
    );
    assert!(!rdm.exists(), "descriptor removed");
    assert!(!rdm_mapping_path(&rdm).exists(), "mapping file removed");
    assert_eq!(lab.san.clone_counters(&target.naa).failed_clone_ops, 1);
}

#[tokio::test]
async fn dropping_the_clone_future_stops_the_worker() {
    let lab = Lab::new();
    let base = lab.flat_disk("full.vmdk", "256M", &["write -P 0x77 0 256M"]);
    let target = lab.target("array-a", 256 * MIB);
    let req = lab.request(&base, &target, Some("array-a"));
    let rdm = req.rdm_descriptor.clone();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let mut started_tx = Some(started_tx);
    let caller_token = CancellationToken::new();

    let task = tokio::spawn(vmkfstools::clone(
        req,
        move |_| {
            if let Some(tx) = started_tx.take() {
                let _ = tx.send(());
            }
        },
        caller_token.clone(),
    ));
    started_rx.await.unwrap();
    task.abort();

    // The worker notices between segments, removes what it created, then records the failure.
    let mut changes = lab.san.subscribe();
    while lab.san.clone_counters(&target.naa).failed_clone_ops == 0 {
        tokio::time::timeout(std::time::Duration::from_secs(30), changes.changed())
            .await
            .expect("the worker kept running after the future was dropped")
            .unwrap();
    }
    assert!(!rdm.exists(), "descriptor removed");
    assert!(!rdm_mapping_path(&rdm).exists(), "mapping file removed");
    assert!(
        !caller_token.is_cancelled(),
        "the caller's token is left alone"
    );
}

#[tokio::test]
async fn a_mostly_empty_gibibyte_disk_clones_sparsely() {
    let lab = Lab::new();
    let writes = ["write -P 0x42 0 2M", "write -P 0x43 700M 1M"];
    let base = lab.flat_disk("big.vmdk", "1G", &writes);
    let target = lab.target("array-a", 1 << 30);

    let (result, progress) = clone(lab.request(&base, &target, Some("array-a"))).await;
    let report = result.unwrap();

    assert_eq!(report.bytes_copied, 3 * MIB);
    assert_eq!(progress.last(), Some(&100));
    let allocated = std::fs::metadata(&target.backing_path).unwrap().blocks() * 512;
    assert!(
        allocated < 16 * MIB,
        "holes stay holes on the device: {allocated} bytes allocated"
    );
    let window = |at: u64| {
        let mut bytes = vec![0u8; MIB as usize];
        let file = std::fs::File::open(&target.backing_path).unwrap();
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut bytes, at).unwrap();
        bytes
    };
    assert!(window(MIB).iter().all(|b| *b == 0x42));
    assert!(window(700 * MIB).iter().all(|b| *b == 0x43));
    for hole in [2 * MIB, 350 * MIB, 699 * MIB, 1023 * MIB] {
        assert!(window(hole).iter().all(|b| *b == 0), "zeroes at {hole}");
    }
}

#[test]
fn progress_and_banner_lines_match_vmkfstools() {
    assert_eq!(vmkfstools::progress_line(7), "Clone: 7% done.");
    assert_eq!(
        vmkfstools::banner("/vmfs/volumes/ds1/vm/vm.vmdk"),
        "Destination disk format: raw device mapping\nCloning disk '/vmfs/volumes/ds1/vm/vm.vmdk'...\n"
    );
}
