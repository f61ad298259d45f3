//! The simulated `vmkfstools` clone engine: VMDK descriptors in, bytes onto the target volume.
//!
//! Implements `vmkfstools -i <src.vmdk> -d rdm:/vmfs/devices/disks/<naa> <dst.vmdk>` for the lab's
//! ESXi hosts: it reads the source disk (monolithicFlat / `vmfs` flat extents, hosted sparse extents,
//! snapshot chains via `parentFileNameHint`, raw device mappings whose mapping file names a SAN
//! device), writes the RDM descriptor and its mapping file as ESXi does, and copies the disk's bytes
//! onto the volume backing the target device. When everything the source reads (its datastore, or the
//! device an RDM source maps) lives on the target volume's array, and that array offloads clones
//! (not PowerFlex, whose volumes ESXi reaches through the SDC), and every device involved reports
//! VAAI clone supported (the SAN's status of each), the copy is "offloaded" (XCOPY): done
//! with `copy_file_range` and counted in the target device's clone counters, which is what the ESXi
//! wrapper's `vsish … /stats` probe reads. Otherwise it is a host copy through a buffer.
//!
//! Who calls this: the simulated ESXi host's wrapper dispatcher, which maps ESXi paths to host paths,
//! runs [`clone`] as a task, and renders [`progress_line`]s into the task's stdout.

mod chain;
mod copy;
mod descriptor;
mod sparse;

pub use descriptor::{
    Descriptor, Extent, ExtentAccess, ExtentKind, NO_PARENT_CID, parse_descriptor,
};

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::san::{ArrayVendor, San, Volume, stable_hash};
use crate::scenario::VaaiStatusSpec;
use chain::DiskChain;
use descriptor::RdmDescriptor;

/// A clone of a virtual disk onto a raw device, as `vmkfstools -i … -d rdm:<device> <rdm>` runs it.
#[derive(Debug, Clone)]
pub struct CloneRequest {
    /// Host-file-system path of the source `.vmdk` descriptor (or monolithicSparse file).
    pub source_descriptor: PathBuf,
    /// The volume behind `/vmfs/devices/disks/<naa>`.
    pub target: Volume,
    /// Host-file-system path of the RDM descriptor to create (must not exist).
    pub rdm_descriptor: PathBuf,
    /// The array backing the source datastore, when it is SAN storage; same as the target's ⇒ XCOPY.
    /// An RDM source reads its mapped device instead, whose own array decides.
    pub source_array: Option<String>,
    /// The LUN under the source datastore, when it is SAN storage: ESXi sends XCOPY only when
    /// both it and the target report VAAI clone supported.
    pub source_lun: Option<String>,
    /// The SAN holding the target (to check the device still exists and to count XCOPY segments) and
    /// the devices RDM sources map.
    pub san: San,
}

/// What a finished clone did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneReport {
    /// Bytes actually moved (holes are not counted).
    pub bytes_copied: u64,
    /// Whether the array did the copy (XCOPY), i.e. everything the source reads is on the target's array.
    pub offloaded: bool,
    /// Virtual size of the source disk.
    pub capacity_bytes: u64,
}

/// Why a clone failed. `Display` is what the simulated `vmkfstools` prints on stderr after its
/// `Failed to clone disk: ` prefix (which the caller adds).
#[derive(Debug, thiserror::Error)]
pub enum VmkfstoolsError {
    #[error("invalid VMDK descriptor{}: {reason}", at_line(*.line))]
    Descriptor { line: usize, reason: String },
    #[error("cannot open disk {path}: {reason}")]
    InvalidDisk { path: PathBuf, reason: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open disk {path}: unsupported {what}")]
    Unsupported { path: PathBuf, what: String },
    #[error("cannot open disk {path}: the file is corrupt ({what})")]
    Corrupt { path: PathBuf, what: String },
    #[error(
        "cannot open disk {descriptor}: extent file {extent:?} not found next to the descriptor"
    )]
    MissingExtent { descriptor: PathBuf, extent: String },
    #[error(
        "cannot open disk {child}: the parent disk {hint:?} of this snapshot was not found; \
         restore it or consolidate the snapshot chain"
    )]
    MissingParent { child: PathBuf, hint: String },
    #[error(
        "cannot open disk {child}: the parent virtual disk {parent} has been modified since the \
         child was created (parentCID {expected}, parent CID {found})"
    )]
    ParentModified {
        child: PathBuf,
        parent: PathBuf,
        expected: String,
        found: String,
    },
    #[error("cannot open disk {path}: the snapshot chain is deeper than 32 levels or loops")]
    ChainTooDeep { path: PathBuf },
    #[error(
        "the destination device {naa} ({have} bytes) is smaller than the \
         source disk ({need} bytes); use a target volume at least as large as the source"
    )]
    TargetTooSmall { naa: String, need: u64, have: u64 },
    #[error("the destination device {naa} no longer exists on the array")]
    TargetGone { naa: String },
    #[error(
        "cannot open disk {mapping}: the raw device {naa} it maps does not exist on any array; \
         check that the RDM's LUN is still presented to this host"
    )]
    MappedDeviceGone { mapping: PathBuf, naa: String },
    #[error(
        "the source disk is a raw device mapping of the destination device {naa}; choose a \
         different target volume"
    )]
    SourceIsTarget { naa: String },
    #[error("the destination file {path} already exists (39)")]
    RdmExists { path: PathBuf },
    #[error("the operation was cancelled")]
    Cancelled,
    #[error("the clone worker stopped unexpectedly: {0}")]
    Worker(String),
}

fn at_line(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" (line {line})")
    }
}

impl VmkfstoolsError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        VmkfstoolsError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The lines `vmkfstools -i … -d rdm:…` prints before the first progress line.
pub fn banner(source_esxi_path: &str) -> String {
    format!("Destination disk format: raw device mapping\nCloning disk '{source_esxi_path}'...\n")
}

/// A progress line as vmkfstools prints it (it rewrites the line with `\r`).
pub fn progress_line(percent: u8) -> String {
    format!("Clone: {percent}% done.")
}

/// The mapping file ESXi creates next to an RDM descriptor: `<name>-rdm.vmdk` (the `.vmdk` suffix of
/// the descriptor, when present, is replaced).
pub fn rdm_mapping_path(rdm_descriptor: &Path) -> PathBuf {
    let name = rdm_descriptor
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".vmdk").unwrap_or(&name);
    rdm_descriptor.with_file_name(format!("{stem}-rdm.vmdk"))
}

/// What the simulated mapping file of an RDM holds: the device it maps. (On VMFS the mapping file is
/// file-system metadata; here it is a sparse stand-in as large as the device that names it in its
/// first line.)
pub fn rdm_mapping_contents(naa: &str) -> String {
    format!("{RDM_MAPPING_PREFIX}{naa}\n")
}

const RDM_MAPPING_PREFIX: &str = "raw device mapping: /vmfs/devices/disks/";

/// The device (`naa.…`) an RDM mapping file written by [`rdm_mapping_contents`] maps.
pub(crate) fn mapped_device(mapping_head: &[u8]) -> Option<String> {
    let line = mapping_head.split(|b| *b == b'\n').next()?;
    let naa = std::str::from_utf8(line)
        .ok()?
        .strip_prefix(RDM_MAPPING_PREFIX)?;
    let naa = naa.trim();
    (!naa.is_empty() && !naa.contains('/')).then(|| naa.to_owned())
}

/// Clones the source disk onto the target device: writes the RDM descriptor and mapping file, then the
/// bytes. `progress` is called with every whole percentage from 0 to 100, in order. Cancelling (or
/// dropping the returned future) stops the copy between segments and removes the RDM files, as an
/// aborted vmkfstools does.
pub async fn clone(
    req: CloneRequest,
    mut progress: impl FnMut(u8) + Send,
    cancel: CancellationToken,
) -> Result<CloneReport, VmkfstoolsError> {
    let (percent_tx, mut percent_rx) = tokio::sync::mpsc::unbounded_channel::<u8>();
    // The copy runs on a blocking thread that outlives this future unless told to stop: if the
    // caller drops the future (task aborted, runtime shutting down), the guard cancels the copy
    // without touching the caller's own token.
    let worker_cancel = cancel.child_token();
    let _stop_on_drop = worker_cancel.clone().drop_guard();
    let worker = tokio::task::spawn_blocking(move || {
        run_clone(&req, &worker_cancel, &mut |percent| {
            // The receiver only goes away when the caller's future is dropped; nothing to report then.
            let _ = percent_tx.send(percent);
        })
    });
    let mut reported: Option<u8> = None;
    while let Some(percent) = percent_rx.recv().await {
        let from = reported.map_or(0, |r| r + 1);
        for step in from..=percent {
            progress(step);
        }
        reported = Some(reported.map_or(percent, |r| r.max(percent)));
    }
    worker
        .await
        .map_err(|e| VmkfstoolsError::Worker(e.to_string()))?
}

/// The blocking body of [`clone`].
fn run_clone(
    req: &CloneRequest,
    cancel: &CancellationToken,
    percent: &mut dyn FnMut(u8),
) -> Result<CloneReport, VmkfstoolsError> {
    let chain = DiskChain::open(&req.source_descriptor, &req.san)?;
    let capacity = chain.capacity_bytes;
    let target =
        req.san
            .volume_by_naa(&req.target.naa)
            .ok_or_else(|| VmkfstoolsError::TargetGone {
                naa: req.target.naa.clone(),
            })?;
    if target.size_bytes < capacity {
        return Err(VmkfstoolsError::TargetTooSmall {
            naa: target.naa,
            need: capacity,
            have: target.size_bytes,
        });
    }
    if chain
        .raw_devices
        .iter()
        .any(|device| device.naa == target.naa)
    {
        return Err(VmkfstoolsError::SourceIsTarget { naa: target.naa });
    }
    let datastore_on_target_array =
        !chain.reads_datastore_files || req.source_array.as_deref() == Some(target.array.as_str());
    let array_offloads = req
        .san
        .array_vendor(&target.array)
        .is_some_and(ArrayVendor::offloads_clones);
    let clone_supported = |naa: &str| req.san.vaai_clone_status(naa) == VaaiStatusSpec::Supported;
    let offloaded = array_offloads
        && datastore_on_target_array
        && chain
            .raw_devices
            .iter()
            .all(|device| device.array == target.array && clone_supported(&device.naa))
        && clone_supported(&target.naa)
        && (!chain.reads_datastore_files || req.source_lun.as_deref().is_none_or(clone_supported));

    let rdm = RdmFiles::create(&req.rdm_descriptor, &chain.descriptor, &target)?;
    let device = OpenOptions::new()
        .write(true)
        .open(&target.backing_path)
        .map_err(|e| VmkfstoolsError::io("open the device backing", &target.backing_path, e))?;

    percent(0);
    let mut last = 0u8;
    let mut on_progress = |done: u64| {
        // An empty disk is complete from the start.
        let now = (done.min(capacity) * 100)
            .checked_div(capacity)
            .map_or(100, |p| p as u8);
        if now > last {
            last = now;
            percent(now);
        }
    };
    let xcopy = offloaded.then(|| copy::XcopyCounter {
        san: &req.san,
        naa: &target.naa,
    });
    let result = copy::copy_disk(
        &chain,
        &device,
        &target.backing_path,
        xcopy,
        cancel,
        &mut on_progress,
    )
    .and_then(|stats| {
        device
            .sync_data()
            .map_err(|e| VmkfstoolsError::io("flush", &target.backing_path, e))?;
        Ok(stats)
    });
    match result {
        Ok(stats) => {
            on_progress(capacity);
            if offloaded && stats.segments == 0 {
                // An offloaded clone of an empty disk still issues one XCOPY command.
                req.san.record_clone(&target.naa, 1, false);
            }
            rdm.keep();
            Ok(CloneReport {
                bytes_copied: stats.bytes_copied,
                offloaded,
                capacity_bytes: capacity,
            })
        }
        Err(error) => {
            // Remove the RDM files before the failure becomes visible in the counters, so whoever
            // waits for the failure finds the cleanup done.
            drop(rdm);
            if offloaded {
                req.san.record_clone(&target.naa, 0, true);
            }
            Err(error)
        }
    }
}

/// The RDM descriptor and mapping file of one clone; removed on drop unless kept.
struct RdmFiles {
    descriptor: PathBuf,
    mapping: PathBuf,
    keep: bool,
}

impl RdmFiles {
    fn create(
        path: &Path,
        source: &Descriptor,
        target: &Volume,
    ) -> Result<RdmFiles, VmkfstoolsError> {
        let mapping = rdm_mapping_path(path);
        let seed = stable_hash(&[&target.naa, &path.to_string_lossy()]);
        let second = stable_hash(&[&seed.to_string()]);
        let long_content_id = format!("{seed:016x}{second:016x}");
        let uuid_bytes: Vec<String> = seed
            .to_be_bytes()
            .iter()
            .chain(second.to_be_bytes().iter())
            .map(|b| format!("{b:02x}"))
            .collect();
        let uuid = format!(
            "{}-{}",
            uuid_bytes[..8].join(" "),
            uuid_bytes[8..].join(" ")
        );
        let mapping_name = mapping
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = RdmDescriptor {
            cid: (seed >> 32) as u32,
            device_sectors: target.size_bytes / 512,
            mapping_file: &mapping_name,
            adapter_type: source.ddb("adapterType").unwrap_or("lsilogic"),
            virtual_hw_version: source.ddb("virtualHWVersion").unwrap_or("13"),
            long_content_id: &long_content_id,
            uuid: &uuid,
        }
        .render();

        // Created before the guard exists, so an existing descriptor is never removed.
        let mut descriptor = create_new(path)?;
        let mut files = RdmFiles {
            descriptor: path.to_path_buf(),
            mapping: PathBuf::new(),
            keep: false,
        };
        descriptor
            .write_all(text.as_bytes())
            .map_err(|e| VmkfstoolsError::io("write", path, e))?;
        let mut map_file = create_new(&mapping)?;
        files.mapping = mapping.clone();
        map_file
            .write_all(rdm_mapping_contents(&target.naa).as_bytes())
            .and_then(|()| map_file.set_len(target.size_bytes))
            .map_err(|e| VmkfstoolsError::io("write", &mapping, e))?;
        Ok(files)
    }

    fn keep(mut self) {
        self.keep = true;
    }
}

fn create_new(path: &Path) -> Result<File, VmkfstoolsError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => VmkfstoolsError::RdmExists {
                path: path.to_path_buf(),
            },
            _ => VmkfstoolsError::io("create", path, e),
        })
}

impl Drop for RdmFiles {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for path in [&self.descriptor, &self.mapping] {
            if !path.as_os_str().is_empty() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
