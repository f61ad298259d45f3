//! The Python interpreter with VMware's pyvmomi bindings that `scripts/peers.sh install pyvmomi` puts
//! in a venv, for checking our SOAP side against VMware's own client.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::layout::{cache_dir, env_path, pinned};

/// A `python3` that can `import pyVmomi`: `$COPY_OFFLOAD_PYVMOMI_PYTHON`, or the pinned venv
/// `<cache>/pyvmomi-<version>/venv/bin/python`.
pub fn python_with_pyvmomi() -> anyhow::Result<PathBuf> {
    if let Some(python) = env_path("COPY_OFFLOAD_PYVMOMI_PYTHON") {
        if !python.is_file() {
            bail!(
                "COPY_OFFLOAD_PYVMOMI_PYTHON={} does not exist: unset it or run `scripts/peers.sh install pyvmomi`",
                python.display()
            );
        }
        return Ok(python);
    }
    python_in(&cache_dir())
}

fn python_in(cache: &Path) -> anyhow::Result<PathBuf> {
    let venv = cache
        .join(format!("pyvmomi-{}", pinned("PYVMOMI_VERSION")?))
        .join("venv");
    // The script writes the marker only after `import pyVmomi` worked.
    if !venv.join(".complete").is_file() {
        bail!(
            "pyvmomi venv not found at {}: run `scripts/peers.sh install pyvmomi`",
            venv.display()
        );
    }
    Ok(venv.join("bin/python"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_venv_names_the_install_command() {
        let empty = tempfile::tempdir().unwrap();
        let err = python_in(empty.path()).unwrap_err().to_string();
        assert!(
            err.contains("run `scripts/peers.sh install pyvmomi`"),
            "{err}"
        );
    }
}
