//! The Python interpreter with Dell's PyPowerStore that `scripts/peers.sh install
//! vendorclients-powerstore` puts in a venv, for checking the lab's PowerStore facade against the
//! vendor's own client.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::layout::{cache_dir, env_path, pinned};

/// The install command a missing venv names.
pub const PYPOWERSTORE_INSTALL: &str = "scripts/peers.sh install vendorclients-powerstore";

/// A `python3` that can `import PyPowerStore`: `$COPY_OFFLOAD_PYPOWERSTORE_PYTHON`, or the pinned
/// venv `<cache>/vendorclients-PyPowerStore-<version>/venv/bin/python`.
pub fn python_with_pypowerstore() -> anyhow::Result<PathBuf> {
    if let Some(python) = env_path("COPY_OFFLOAD_PYPOWERSTORE_PYTHON") {
        if !python.is_file() {
            bail!(
                "COPY_OFFLOAD_PYPOWERSTORE_PYTHON={} does not exist: unset it or run `{PYPOWERSTORE_INSTALL}`",
                python.display()
            );
        }
        return Ok(python);
    }
    python_in(&cache_dir())
}

fn python_in(cache: &Path) -> anyhow::Result<PathBuf> {
    let venv = cache
        .join(format!(
            "vendorclients-PyPowerStore-{}",
            pinned("PYPOWERSTORE_VERSION")?
        ))
        .join("venv");
    // The script writes the marker only after `import PyPowerStore.powerstore_conn` worked.
    if !venv.join(".complete").is_file() {
        bail!(
            "PyPowerStore venv not found at {}: run `{PYPOWERSTORE_INSTALL}`",
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
        assert!(err.contains(PYPOWERSTORE_INSTALL), "{err}");
    }
}
