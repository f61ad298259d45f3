//! The Python interpreter with Pure Storage's own FlashArray client (`py-pure-client`) that
//! `scripts/peers.sh install vendorclients-pure` puts in a venv, for checking the lab's FlashArray
//! facade against the vendor's library.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::layout::{cache_dir, env_path, pinned};

/// The install command named in every "not installed" message.
pub const PURE_CLIENT_INSTALL: &str = "scripts/peers.sh install vendorclients-pure";

/// A `python3` that can `import pypureclient.flasharray`: `$COPY_OFFLOAD_PURE_CLIENT_PYTHON`, or
/// the pinned venv `<cache>/vendorclients-py-pure-client-<version>/venv/bin/python`.
pub fn python_with_pure_client() -> anyhow::Result<PathBuf> {
    if let Some(python) = env_path("COPY_OFFLOAD_PURE_CLIENT_PYTHON") {
        if !python.is_file() {
            bail!(
                "COPY_OFFLOAD_PURE_CLIENT_PYTHON={} does not exist: unset it or run `{PURE_CLIENT_INSTALL}`",
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
            "vendorclients-py-pure-client-{}",
            pinned("PY_PURE_CLIENT_VERSION")?
        ))
        .join("venv");
    // The script writes the marker only after `import pypureclient.flasharray` worked.
    if !venv.join(".complete").is_file() {
        bail!(
            "py-pure-client venv not found at {}: run `{PURE_CLIENT_INSTALL}`",
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
        assert!(err.contains(PURE_CLIENT_INSTALL), "{err}");
    }
}
