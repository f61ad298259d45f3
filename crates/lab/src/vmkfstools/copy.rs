//! The data mover: copies a flattened disk onto the target volume's backing file.
//!
//! Same array → the "array" copies: `copy_file_range(2)` so the kernel (or the file system, by reflink)
//! moves the bytes without them passing through this process, counted as XCOPY segments. Different
//! arrays → a host copy through a buffer, as ESXi's software data mover does. Either way holes are
//! skipped with `SEEK_DATA`/`SEEK_HOLE` and punched in the target, so a mostly empty disk costs little
//! and the target reads back exactly like the source.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::{FallocateFlags, SeekFrom};
use tokio_util::sync::CancellationToken;

use super::VmkfstoolsError;
use super::chain::{DiskChain, Run};
use crate::san::San;

/// One XCOPY segment: ESXi's default `/DataMover/MaxHWTransferSize` (4 MiB). Also the unit between
/// cancellation checks and progress updates.
pub(crate) const SEGMENT_BYTES: u64 = 4 << 20;
const HOST_BUFFER_BYTES: usize = 1 << 20;

/// What the data mover did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CopyStats {
    pub bytes_copied: u64,
    pub segments: u64,
}

/// Where offloaded segments are counted: the target device's clone counters, as the array would
/// report them while the XCOPY runs (so a task poll mid-copy already sees them).
pub(crate) struct XcopyCounter<'a> {
    pub san: &'a San,
    pub naa: &'a str,
}

/// Copies `chain` onto `target`, calling `progress(done_bytes)` after each segment or hole.
/// With `xcopy`, the copy is offloaded (`copy_file_range`) and every segment is counted.
pub(crate) fn copy_disk(
    chain: &DiskChain,
    target: &File,
    target_path: &Path,
    xcopy: Option<XcopyCounter<'_>>,
    cancel: &CancellationToken,
    progress: &mut dyn FnMut(u64),
) -> Result<CopyStats, VmkfstoolsError> {
    let mut mover = Mover {
        chain,
        target,
        target_path,
        buffer: if xcopy.is_some() {
            Vec::new()
        } else {
            vec![0u8; HOST_BUFFER_BYTES]
        },
        xcopy,
        cancel,
        stats: CopyStats::default(),
    };
    let mut position = 0u64;
    for run in chain.runs() {
        match run {
            Run::Zero { len } => mover.zero(position, len)?,
            Run::Data {
                file,
                file_offset,
                len,
            } => mover.data(file, file_offset, position, len, progress)?,
        }
        position += run.len();
        progress(position);
    }
    Ok(mover.stats)
}

struct Mover<'a> {
    chain: &'a DiskChain,
    target: &'a File,
    target_path: &'a Path,
    xcopy: Option<XcopyCounter<'a>>,
    cancel: &'a CancellationToken,
    stats: CopyStats,
    buffer: Vec<u8>,
}

impl Mover<'_> {
    /// Copies the stored part of a source region, punching its holes in the target.
    fn data(
        &mut self,
        file: usize,
        source_offset: u64,
        target_offset: u64,
        len: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), VmkfstoolsError> {
        let (source, source_path) = &self.chain.files[file];
        let end = source_offset + len;
        let mut cursor = source_offset;
        while cursor < end {
            let data_start = match rustix::fs::seek(source, SeekFrom::Data(cursor)) {
                Ok(at) => at.min(end),
                // ENXIO: no data at or after `cursor` (hole up to EOF, or past EOF).
                Err(rustix::io::Errno::NXIO) => end,
                Err(e) => {
                    return Err(VmkfstoolsError::io("find data in", source_path, e.into()));
                }
            };
            if data_start > cursor {
                self.zero(
                    target_offset + (cursor - source_offset),
                    data_start - cursor,
                )?;
            }
            if data_start >= end {
                break;
            }
            let data_end = match rustix::fs::seek(source, SeekFrom::Hole(data_start)) {
                Ok(at) => at.min(end),
                Err(e) => {
                    return Err(VmkfstoolsError::io("find holes in", source_path, e.into()));
                }
            };
            let mut at = data_start;
            while at < data_end {
                if self.cancel.is_cancelled() {
                    return Err(VmkfstoolsError::Cancelled);
                }
                let segment = (data_end - at).min(SEGMENT_BYTES);
                let out_at = target_offset + (at - source_offset);
                let copied = self.segment(source, source_path, at, out_at, segment)?;
                if copied < segment {
                    // The source file ends before its extent does: the rest reads as zeroes.
                    self.zero(out_at + copied, end - (at + copied))?;
                    progress(target_offset + len);
                    return Ok(());
                }
                self.stats.bytes_copied += segment;
                self.stats.segments += 1;
                if let Some(counter) = &self.xcopy {
                    counter.san.record_clone(counter.naa, 1, false);
                }
                at += segment;
                progress(target_offset + (at - source_offset));
            }
            cursor = data_end;
        }
        Ok(())
    }

    /// Moves one segment; returns fewer bytes than asked only at the source's end of file.
    fn segment(
        &mut self,
        source: &File,
        source_path: &Path,
        from: u64,
        to: u64,
        len: u64,
    ) -> Result<u64, VmkfstoolsError> {
        let mut done = 0u64;
        while done < len {
            let want = (len - done) as usize;
            let moved = if self.xcopy.is_some() {
                let mut off_in = from + done;
                let mut off_out = to + done;
                match rustix::fs::copy_file_range(
                    source,
                    Some(&mut off_in),
                    self.target,
                    Some(&mut off_out),
                    want,
                ) {
                    Ok(n) => n,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => {
                        return Err(VmkfstoolsError::io(
                            "copy (offloaded) into",
                            self.target_path,
                            e.into(),
                        ));
                    }
                }
            } else {
                let chunk = want.min(self.buffer.len());
                let n = match source.read_at(&mut self.buffer[..chunk], from + done) {
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(VmkfstoolsError::io("read", source_path, e)),
                };
                self.target
                    .write_all_at(&self.buffer[..n], to + done)
                    .map_err(|e| VmkfstoolsError::io("write", self.target_path, e))?;
                n
            };
            if moved == 0 {
                break;
            }
            done += moved as u64;
        }
        Ok(done)
    }

    /// Makes `[offset, offset + len)` of the target read as zeroes without allocating it.
    fn zero(&mut self, offset: u64, len: u64) -> Result<(), VmkfstoolsError> {
        if len == 0 {
            return Ok(());
        }
        let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        match rustix::fs::fallocate(self.target, flags, offset, len) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::OPNOTSUPP) => self.write_zeroes(offset, len),
            Err(e) => Err(VmkfstoolsError::io(
                "zero a range of",
                self.target_path,
                e.into(),
            )),
        }
    }

    /// For file systems without hole punching.
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), VmkfstoolsError> {
        let zeroes = vec![0u8; HOST_BUFFER_BYTES];
        let mut done = 0u64;
        while done < len {
            if self.cancel.is_cancelled() {
                return Err(VmkfstoolsError::Cancelled);
            }
            let n = (len - done).min(zeroes.len() as u64) as usize;
            self.target
                .write_all_at(&zeroes[..n], offset + done)
                .map_err(|e| VmkfstoolsError::io("write", self.target_path, e))?;
            done += n as u64;
        }
        Ok(())
    }
}
