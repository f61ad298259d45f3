//! Hosted sparse extents (`SPARSE`, the "KDMV" format of monolithicSparse and twoGbMaxExtentSparse
//! disks): header, embedded descriptor and grain directory, enough to tell for every grain whether it
//! is stored here, reads as zeroes, or falls through to the parent disk.
//!
//! Layout (little endian): magic `KDMV` @0, version @4, flags @8, capacity @12, grainSize @20,
//! descriptorOffset @28, descriptorSize @36, numGTEsPerGT @44, rgdOffset @48, gdOffset @56 — sizes
//! and offsets in sectors. Grain-table entry 0 means "not allocated here", 1 means "zero grain" when
//! flag bit 2 is set, anything else is the grain's sector offset in the file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::VmkfstoolsError;

pub(crate) const MAGIC: &[u8; 4] = b"KDMV";
const SECTOR: u64 = 512;
const FLAG_ZEROED_GRAIN_GTE: u32 = 1 << 2;
const FLAG_COMPRESSED: u32 = 1 << 16;
const GD_AT_END: u64 = u64::MAX;
/// Refuse grain tables that would need more memory than any real disk does (a 62 TB disk at
/// 64 KiB grains has ~10^9 entries; the lab never needs more than this).
const MAX_GRAINS: u64 = 1 << 28;

/// Where a grain's data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grain {
    /// Stored in this file at this byte offset.
    Stored(u64),
    /// Reads as zeroes.
    Zero,
    /// Not allocated here: read the parent (or zeroes without one).
    Unallocated,
}

/// A parsed KDMV sparse extent.
#[derive(Debug)]
pub(crate) struct SparseExtent {
    pub capacity_sectors: u64,
    pub grain_bytes: u64,
    grains: Vec<Grain>,
}

/// The header fields a reader needs.
struct Header {
    flags: u32,
    capacity: u64,
    grain_size: u64,
    descriptor_offset: u64,
    descriptor_size: u64,
    gtes_per_gt: u32,
    gd_offset: u64,
}

fn read_header(file: &File, path: &Path) -> Result<Header, VmkfstoolsError> {
    let mut raw = [0u8; 512];
    file.read_exact_at(&mut raw, 0)
        .map_err(|e| VmkfstoolsError::io("read the sparse header of", path, e))?;
    if &raw[0..4] != MAGIC {
        return Err(VmkfstoolsError::Unsupported {
            path: path.to_path_buf(),
            what: "a SPARSE extent without the KDMV magic".to_owned(),
        });
    }
    let u32_at = |o: usize| u32::from_le_bytes([raw[o], raw[o + 1], raw[o + 2], raw[o + 3]]);
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&raw[o..o + 8]);
        u64::from_le_bytes(b)
    };
    Ok(Header {
        flags: u32_at(8),
        capacity: u64_at(12),
        grain_size: u64_at(20),
        descriptor_offset: u64_at(28),
        descriptor_size: u64_at(36),
        gtes_per_gt: u32_at(44),
        gd_offset: u64_at(56),
    })
}

/// Whether `file` starts with the KDMV magic (a monolithicSparse disk given as "the descriptor").
pub(crate) fn is_sparse(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// The descriptor text embedded in a monolithicSparse file (NUL padded).
pub(crate) fn embedded_descriptor(file: &File, path: &Path) -> Result<Vec<u8>, VmkfstoolsError> {
    let header = read_header(file, path)?;
    if header.descriptor_offset == 0 || header.descriptor_size == 0 {
        return Err(VmkfstoolsError::Unsupported {
            path: path.to_path_buf(),
            what: "a sparse extent without an embedded descriptor given as the disk".to_owned(),
        });
    }
    let len = header
        .descriptor_size
        .checked_mul(SECTOR)
        .filter(|len| *len <= 1 << 20)
        .ok_or_else(|| corrupt(path, "embedded descriptor larger than 1 MiB"))?;
    let mut text = vec![0u8; len as usize];
    file.read_exact_at(&mut text, header.descriptor_offset * SECTOR)
        .map_err(|e| VmkfstoolsError::io("read the embedded descriptor of", path, e))?;
    Ok(text)
}

impl SparseExtent {
    pub fn open(file: &File, path: &Path) -> Result<SparseExtent, VmkfstoolsError> {
        let header = read_header(file, path)?;
        if header.flags & FLAG_COMPRESSED != 0 || header.gd_offset == GD_AT_END {
            return Err(VmkfstoolsError::Unsupported {
                path: path.to_path_buf(),
                what: "compressed (streamOptimized) grains; convert the disk first".to_owned(),
            });
        }
        if header.grain_size == 0 || header.gtes_per_gt == 0 {
            return Err(corrupt(path, "grain size or grain-table size is zero"));
        }
        let grain_count = header.capacity.div_ceil(header.grain_size);
        if grain_count > MAX_GRAINS {
            return Err(corrupt(path, "grain count is implausibly large"));
        }
        let per_table = u64::from(header.gtes_per_gt);
        let tables = grain_count.div_ceil(per_table);
        let directory = read_u32s(file, path, header.gd_offset * SECTOR, tables)?;
        let zero_gte = header.flags & FLAG_ZEROED_GRAIN_GTE != 0;

        let mut grains = Vec::with_capacity(grain_count as usize);
        for (index, table_sector) in directory.iter().enumerate() {
            let in_this_table = per_table.min(grain_count - index as u64 * per_table);
            if *table_sector == 0 {
                grains.extend(std::iter::repeat_n(
                    Grain::Unallocated,
                    in_this_table as usize,
                ));
                continue;
            }
            let entries = read_u32s(file, path, u64::from(*table_sector) * SECTOR, in_this_table)?;
            grains.extend(entries.into_iter().map(|entry| match entry {
                0 => Grain::Unallocated,
                1 if zero_gte => Grain::Zero,
                sector => Grain::Stored(u64::from(sector) * SECTOR),
            }));
        }
        Ok(SparseExtent {
            capacity_sectors: header.capacity,
            grain_bytes: header.grain_size * SECTOR,
            grains,
        })
    }

    /// The grain holding byte `offset` of this extent.
    pub fn grain(&self, offset: u64) -> Grain {
        self.grains
            .get((offset / self.grain_bytes) as usize)
            .copied()
            .unwrap_or(Grain::Unallocated)
    }
}

fn read_u32s(
    file: &File,
    path: &Path,
    offset: u64,
    count: u64,
) -> Result<Vec<u32>, VmkfstoolsError> {
    let mut raw = vec![0u8; (count * 4) as usize];
    file.read_exact_at(&mut raw, offset)
        .map_err(|e| VmkfstoolsError::io("read the grain tables of", path, e))?;
    Ok(raw
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn corrupt(path: &Path, what: &str) -> VmkfstoolsError {
    VmkfstoolsError::Corrupt {
        path: path.to_path_buf(),
        what: what.to_owned(),
    }
}
