//! A virtual disk opened for reading: its descriptor, its extent files and its snapshot parents, flattened
//! into a list of [`Run`]s that say, for each byte range of the virtual disk, which file region holds it
//! (child over parent) or that it reads as zeroes. A raw device mapping extent reads the SAN volume its
//! mapping file names, as ESXi reads the mapped LUN.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::descriptor::{Descriptor, ExtentAccess, ExtentKind, parse_descriptor};
use super::sparse::{Grain, SparseExtent, embedded_descriptor, is_sparse};
use super::{VmkfstoolsError, mapped_device};
use crate::san::{San, Volume};

/// Snapshot chains on ESXi are limited to 32 levels; deeper means a loop or a broken chain.
const MAX_CHAIN_DEPTH: usize = 32;
/// A text descriptor is a few hundred bytes; anything this large is a data file given by mistake.
const MAX_DESCRIPTOR_BYTES: u64 = 1 << 20;
/// How much of an RDM mapping file is read to find the device it names.
const MAPPING_HEAD_BYTES: u64 = 4096;

/// A contiguous byte range of the virtual disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Run {
    /// `len` bytes stored in `files[file]` from `file_offset`.
    Data {
        file: usize,
        file_offset: u64,
        len: u64,
    },
    /// `len` bytes that read as zeroes.
    Zero { len: u64 },
}

impl Run {
    pub fn len(&self) -> u64 {
        match *self {
            Run::Data { len, .. } | Run::Zero { len } => len,
        }
    }
}

/// An opened disk chain.
pub(crate) struct DiskChain {
    /// The top (leaf) descriptor.
    pub descriptor: Descriptor,
    pub files: Vec<(File, PathBuf)>,
    pub capacity_bytes: u64,
    /// The SAN volumes that raw device mapping extents read.
    pub raw_devices: Vec<Volume>,
    /// Whether any extent reads a file on the datastore (anything but a raw device mapping).
    pub reads_datastore_files: bool,
    top: Layer,
}

/// What [`open_layer`] collects across the chain besides the layers themselves.
#[derive(Default)]
struct Opened {
    files: Vec<(File, PathBuf)>,
    raw_devices: Vec<Volume>,
    reads_datastore_files: bool,
}

struct Layer {
    extents: Vec<LayerExtent>,
    parent: Option<Box<Layer>>,
}

struct LayerExtent {
    start: u64,
    len: u64,
    source: Source,
}

enum Source {
    Flat { file: usize, offset: u64 },
    Zero,
    Sparse { file: usize, extent: SparseExtent },
}

impl DiskChain {
    /// Opens the disk whose descriptor (or monolithicSparse file) is at `path`, with all its parents;
    /// raw device mappings are resolved to their volumes on `san`.
    pub fn open(path: &Path, san: &San) -> Result<DiskChain, VmkfstoolsError> {
        let mut opened = Opened::default();
        let (descriptor, top) = open_layer(path, san, &mut opened, 0)?;
        Ok(DiskChain {
            capacity_bytes: descriptor.capacity_bytes(),
            descriptor,
            files: opened.files,
            raw_devices: opened.raw_devices,
            reads_datastore_files: opened.reads_datastore_files,
            top,
        })
    }

    /// The whole virtual disk as runs, in order, adjacent runs merged.
    pub fn runs(&self) -> Vec<Run> {
        let mut out = Vec::new();
        self.top.map(0, self.capacity_bytes, &mut out);
        out
    }
}

fn open_layer(
    path: &Path,
    san: &San,
    opened: &mut Opened,
    depth: usize,
) -> Result<(Descriptor, Layer), VmkfstoolsError> {
    if depth >= MAX_CHAIN_DEPTH {
        return Err(VmkfstoolsError::ChainTooDeep {
            path: path.to_path_buf(),
        });
    }
    let files = &mut opened.files;
    let (descriptor, embedded_in) = read_descriptor(path, files)?;
    let dir = path.parent().unwrap_or(Path::new("."));

    let mut extents = Vec::with_capacity(descriptor.extents.len());
    let mut start = 0u64;
    for extent in &descriptor.extents {
        let len = extent.sectors * 512;
        if extent.access == ExtentAccess::NoAccess {
            return Err(VmkfstoolsError::Unsupported {
                path: path.to_path_buf(),
                what: "a NOACCESS extent".to_owned(),
            });
        }
        if !matches!(extent.kind, ExtentKind::VmfsRdm | ExtentKind::VmfsRaw) {
            opened.reads_datastore_files = true;
        }
        let files = &mut opened.files;
        let source = match extent.kind {
            ExtentKind::Zero => Source::Zero,
            ExtentKind::Flat | ExtentKind::Vmfs => {
                let file = open_extent(dir, extent.file.as_deref(), path, files)?;
                Source::Flat {
                    file,
                    offset: extent.offset_sectors * 512,
                }
            }
            ExtentKind::Sparse => {
                // A monolithicSparse disk names itself as its extent.
                let file = match embedded_in {
                    Some(index) if resolves_to(dir, extent.file.as_deref(), path) => index,
                    _ => open_extent(dir, extent.file.as_deref(), path, files)?,
                };
                let parsed = SparseExtent::open(&files[file].0, &files[file].1)?;
                if parsed.capacity_sectors < extent.sectors {
                    return Err(VmkfstoolsError::Corrupt {
                        path: files[file].1.clone(),
                        what: format!(
                            "the sparse extent holds {} sectors but the descriptor needs {}",
                            parsed.capacity_sectors, extent.sectors
                        ),
                    });
                }
                Source::Sparse {
                    file,
                    extent: parsed,
                }
            }
            ExtentKind::VmfsRdm | ExtentKind::VmfsRaw => {
                let mapping = open_extent(dir, extent.file.as_deref(), path, files)?;
                let volume = mapped_volume(&files[mapping].0, &files[mapping].1, san)?;
                let device = File::open(&volume.backing_path).map_err(|e| {
                    VmkfstoolsError::io("open the mapped device", &volume.backing_path, e)
                })?;
                files.push((device, volume.backing_path.clone()));
                let file = files.len() - 1;
                opened.raw_devices.push(volume);
                // The mapping covers the whole device; its bytes start at the device's first sector.
                Source::Flat { file, offset: 0 }
            }
            other => {
                return Err(VmkfstoolsError::Unsupported {
                    path: path.to_path_buf(),
                    what: format!(
                        "{} extents as a clone source; consolidate snapshots or convert the disk first",
                        other.as_str()
                    ),
                });
            }
        };
        extents.push(LayerExtent { start, len, source });
        start += len;
    }

    let parent = if descriptor.has_parent() {
        let hint = descriptor.parent_file_name_hint.as_deref().ok_or_else(|| {
            VmkfstoolsError::MissingParent {
                child: path.to_path_buf(),
                hint: String::new(),
            }
        })?;
        let parent_path = resolve(dir, hint).ok_or_else(|| VmkfstoolsError::MissingParent {
            child: path.to_path_buf(),
            hint: hint.to_owned(),
        })?;
        let (parent_descriptor, parent_layer) = open_layer(&parent_path, san, opened, depth + 1)?;
        if let (Some(expected), Some(found)) = (&descriptor.parent_cid, &parent_descriptor.cid)
            && expected != found
        {
            return Err(VmkfstoolsError::ParentModified {
                child: path.to_path_buf(),
                parent: parent_path,
                expected: expected.clone(),
                found: found.clone(),
            });
        }
        Some(Box::new(parent_layer))
    } else {
        None
    };
    Ok((descriptor, Layer { extents, parent }))
}

/// Reads the descriptor at `path`; for a monolithicSparse file also returns its index in `files`.
fn read_descriptor(
    path: &Path,
    files: &mut Vec<(File, PathBuf)>,
) -> Result<(Descriptor, Option<usize>), VmkfstoolsError> {
    let mut file = File::open(path).map_err(|e| VmkfstoolsError::io("open", path, e))?;
    let mut head = [0u8; 4];
    let read = file
        .read(&mut head)
        .map_err(|e| VmkfstoolsError::io("read", path, e))?;
    let invalid = |e: VmkfstoolsError| VmkfstoolsError::InvalidDisk {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if is_sparse(&head[..read]) {
        let text = embedded_descriptor(&file, path)?;
        let descriptor = parse_descriptor(&text).map_err(invalid)?;
        files.push((file, path.to_path_buf()));
        return Ok((descriptor, Some(files.len() - 1)));
    }
    let size = file
        .metadata()
        .map_err(|e| VmkfstoolsError::io("stat", path, e))?
        .len();
    if size > MAX_DESCRIPTOR_BYTES {
        return Err(VmkfstoolsError::InvalidDisk {
            path: path.to_path_buf(),
            reason: format!(
                "{size} bytes is too large for a descriptor; pass the .vmdk descriptor, not the -flat file"
            ),
        });
    }
    let text = std::fs::read(path).map_err(|e| VmkfstoolsError::io("read", path, e))?;
    Ok((parse_descriptor(&text).map_err(invalid)?, None))
}

/// The SAN volume an RDM mapping file maps.
fn mapped_volume(mapping: &File, path: &Path, san: &San) -> Result<Volume, VmkfstoolsError> {
    let mut head = Vec::new();
    mapping
        .take(MAPPING_HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| VmkfstoolsError::io("read the mapping file", path, e))?;
    let naa = mapped_device(&head).ok_or_else(|| VmkfstoolsError::Corrupt {
        path: path.to_path_buf(),
        what: "the raw device mapping file names no /vmfs/devices/disks device".to_owned(),
    })?;
    san.volume_by_naa(&naa)
        .ok_or_else(|| VmkfstoolsError::MappedDeviceGone {
            mapping: path.to_path_buf(),
            naa,
        })
}

fn open_extent(
    dir: &Path,
    name: Option<&str>,
    descriptor: &Path,
    files: &mut Vec<(File, PathBuf)>,
) -> Result<usize, VmkfstoolsError> {
    let name = name.unwrap_or_default();
    let path = resolve(dir, name).ok_or_else(|| VmkfstoolsError::MissingExtent {
        descriptor: descriptor.to_path_buf(),
        extent: name.to_owned(),
    })?;
    let file = File::open(&path).map_err(|e| VmkfstoolsError::io("open the extent", &path, e))?;
    files.push((file, path));
    Ok(files.len() - 1)
}

fn resolves_to(dir: &Path, name: Option<&str>, path: &Path) -> bool {
    name.and_then(|n| resolve(dir, n))
        .is_some_and(|resolved| same_file(&resolved, path))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Resolves a file name from a descriptor. Relative names are relative to the descriptor. An absolute
/// ESXi path (`/vmfs/volumes/<datastore uuid>/…`, as snapshot parent hints often are) that does not
/// exist on this machine falls back to the same file name next to the descriptor, where ESXi keeps
/// snapshot parents.
fn resolve(dir: &Path, name: &str) -> Option<PathBuf> {
    let candidate = Path::new(name);
    if candidate.is_relative() {
        let path = dir.join(candidate);
        return path.exists().then_some(path);
    }
    if candidate.exists() {
        return Some(candidate.to_path_buf());
    }
    if name.starts_with("/vmfs/volumes/") {
        let local = dir.join(candidate.file_name()?);
        return local.exists().then_some(local);
    }
    None
}

impl Layer {
    /// Appends the runs covering virtual bytes `[offset, end)` of this layer to `out`.
    fn map(&self, mut offset: u64, end: u64, out: &mut Vec<Run>) {
        while offset < end {
            let Some(extent) = self
                .extents
                .iter()
                .find(|e| e.start <= offset && offset < e.start + e.len)
            else {
                // Beyond this layer's size (a child grown past its parent): the parent or zeroes.
                self.fall_through(offset, end, out);
                return;
            };
            let extent_end = (extent.start + extent.len).min(end);
            let within = offset - extent.start;
            let next = match &extent.source {
                Source::Flat { file, offset: base } => {
                    push(
                        out,
                        Run::Data {
                            file: *file,
                            file_offset: base + within,
                            len: extent_end - offset,
                        },
                    );
                    extent_end
                }
                Source::Zero => {
                    push(
                        out,
                        Run::Zero {
                            len: extent_end - offset,
                        },
                    );
                    extent_end
                }
                Source::Sparse {
                    file,
                    extent: sparse,
                } => {
                    let grain = sparse.grain_bytes;
                    let grain_end = (extent.start + (within / grain + 1) * grain).min(extent_end);
                    let len = grain_end - offset;
                    match sparse.grain(within) {
                        Grain::Stored(at) => push(
                            out,
                            Run::Data {
                                file: *file,
                                file_offset: at + within % grain,
                                len,
                            },
                        ),
                        Grain::Zero => push(out, Run::Zero { len }),
                        Grain::Unallocated => self.fall_through(offset, grain_end, out),
                    }
                    grain_end
                }
            };
            offset = next;
        }
    }

    fn fall_through(&self, offset: u64, end: u64, out: &mut Vec<Run>) {
        match &self.parent {
            Some(parent) => parent.map(offset, end, out),
            None => push(out, Run::Zero { len: end - offset }),
        }
    }
}

fn push(out: &mut Vec<Run>, run: Run) {
    if run.len() == 0 {
        return;
    }
    match (out.last_mut(), run) {
        (Some(Run::Zero { len }), Run::Zero { len: more }) => *len += more,
        (
            Some(Run::Data {
                file,
                file_offset,
                len,
            }),
            Run::Data {
                file: next_file,
                file_offset: next_offset,
                len: more,
            },
        ) if *file == next_file && *file_offset + *len == next_offset => *len += more,
        _ => out.push(run),
    }
}
