//! The Python interpreter with Dell's PyPowerStore that `scripts/peers.sh install
//! vendorclients-powerstore` puts in a venv, for checking the lab's PowerStore facade against the
//! vendor's own client.

use std::path::{Path, PathBuf};

use crate::layout::{cache_dir, cached_venv_python, pinned, python_from_env};

/// The install command a missing venv names.
pub const PYPOWERSTORE_INSTALL: &str = "scripts/peers.sh install vendorclients-powerstore";

/// A `python3` that can `import PyPowerStore`: `$COPY_OFFLOAD_PYPOWERSTORE_PYTHON`, or the pinned
/// venv `<cache>/vendorclients-PyPowerStore-<version>/venv/bin/python`.
pub fn python_with_pypowerstore() -> anyhow::Result<PathBuf> {
    match python_from_env("COPY_OFFLOAD_PYPOWERSTORE_PYTHON", PYPOWERSTORE_INSTALL)? {
        Some(python) => Ok(python),
        None => python_in(&cache_dir()),
    }
}

fn python_in(cache: &Path) -> anyhow::Result<PathBuf> {
    let dir = format!(
        "vendorclients-PyPowerStore-{}",
        pinned("PYPOWERSTORE_VERSION")?
    );
    cached_venv_python(cache, &dir, "PyPowerStore", PYPOWERSTORE_INSTALL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_venv_names_the_install_command() {
        let empty = tempfile::tempdir().unwrap();
        let err = python_in(empty.path()).unwrap_err().to_string();
        assert!(err.contains(PYPOWERSTORE_INSTALL), "{err}");
    }
}
