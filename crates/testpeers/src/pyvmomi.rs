//! The Python interpreter with VMware's pyvmomi bindings that `scripts/peers.sh install pyvmomi` puts
//! in a venv, for checking our SOAP side against VMware's own client.

use std::path::{Path, PathBuf};

use crate::layout::{cache_dir, cached_venv_python, pinned, python_from_env};

const INSTALL: &str = "scripts/peers.sh install pyvmomi";

/// A `python3` that can `import pyVmomi`: `$COPY_OFFLOAD_PYVMOMI_PYTHON`, or the pinned venv
/// `<cache>/pyvmomi-<version>/venv/bin/python`.
pub fn python_with_pyvmomi() -> anyhow::Result<PathBuf> {
    match python_from_env("COPY_OFFLOAD_PYVMOMI_PYTHON", INSTALL)? {
        Some(python) => Ok(python),
        None => python_in(&cache_dir()),
    }
}

fn python_in(cache: &Path) -> anyhow::Result<PathBuf> {
    let dir = format!("pyvmomi-{}", pinned("PYVMOMI_VERSION")?);
    cached_venv_python(cache, &dir, "pyvmomi", INSTALL)
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
