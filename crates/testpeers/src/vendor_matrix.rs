//! The README's vendor table is produced by the test suite, not typed by hand: a test that proves
//! one cell of it (a vendor × a capability) records so once its assertions passed, and
//! `scripts/vendor_matrix.py` renders the table from the records of the run `scripts/test.sh` just
//! made, failing when the README shows anything else. A cell nobody recorded shows as not proven.
//!
//! Records go to `$COPY_OFFLOAD_VENDOR_MATRIX_DIR/<storageVendorProduct>/<cell>` (the file holds
//! the cell's text); without that variable (a test run on its own) nothing is recorded.

use std::path::PathBuf;

/// One column (or, for faults, one part of the faults column) of the vendor table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// A VMDK cloned with `vmkfstools` through the VIB, bytes verified, nothing left behind.
    VmdkVib,
    /// The same through the SSH wrapper.
    VmdkSsh,
    /// An RDM disk copied; the text says how (`array copy` or `XCOPY`).
    Rdm(&'static str),
    /// A vVol disk copied; the text says how.
    Vvol(&'static str),
    /// Every request the plugin sent in its lab runs matched the vendor's published definition.
    Contract,
    /// The vendor's own client library drove every operation the plugin uses against the facade.
    VendorClient,
    /// The run survived the session expiring mid-run (or, without sessions, failed cleanly).
    FaultSessionExpired,
    /// A busy array (429/503) was retried a bounded number of times.
    FaultBusy,
    /// An unreachable array failed fast, naming the address to check.
    FaultUnreachable,
    /// Wrong credentials failed permanently, naming the secret key to fix.
    FaultWrongCredentials,
    /// SIGTERM in each phase cleaned everything up and the re-run copied.
    FaultSigterm,
    /// SIGKILL in each phase was undone by the re-run.
    FaultSigkill,
}

impl Cell {
    /// The record's file name (the renderer's key).
    pub fn key(self) -> &'static str {
        match self {
            Cell::VmdkVib => "vmdk-vib",
            Cell::VmdkSsh => "vmdk-ssh",
            Cell::Rdm(_) => "rdm",
            Cell::Vvol(_) => "vvol",
            Cell::Contract => "contract",
            Cell::VendorClient => "vendor-client",
            Cell::FaultSessionExpired => "fault-session-expired",
            Cell::FaultBusy => "fault-busy",
            Cell::FaultUnreachable => "fault-unreachable",
            Cell::FaultWrongCredentials => "fault-wrong-credentials",
            Cell::FaultSigterm => "fault-sigterm",
            Cell::FaultSigkill => "fault-sigkill",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Cell::Rdm(how) | Cell::Vvol(how) => how,
            _ => "✓",
        }
    }
}

fn matrix_dir() -> Option<PathBuf> {
    crate::layout::env_path("COPY_OFFLOAD_VENDOR_MATRIX_DIR")
}

/// Records that the calling test proved `cell` for `product` (`storageVendorProduct`). Call it
/// after the test's last assertion.
pub fn record(product: &str, cell: Cell) {
    let Some(dir) = matrix_dir() else { return };
    let dir = dir.join(product);
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(cell.key()), cell.text()))
    {
        panic!(
            "recording {product}/{} in {}: {e}",
            cell.key(),
            dir.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The renderer reads the same keys.
    #[test]
    fn the_renderer_knows_every_cell() {
        let script =
            std::fs::read_to_string(crate::layout::repo_root().join("scripts/vendor_matrix.py"))
                .unwrap();
        for cell in [
            Cell::VmdkVib,
            Cell::VmdkSsh,
            Cell::Rdm(""),
            Cell::Vvol(""),
            Cell::Contract,
            Cell::VendorClient,
            Cell::FaultSessionExpired,
            Cell::FaultBusy,
            Cell::FaultUnreachable,
            Cell::FaultWrongCredentials,
            Cell::FaultSigterm,
            Cell::FaultSigkill,
        ] {
            assert!(
                script.contains(&format!("\"{}\"", cell.key()))
                    || script.contains(&format!("'{}'", cell.key())),
                "scripts/vendor_matrix.py does not read {}",
                cell.key()
            );
        }
    }
}
