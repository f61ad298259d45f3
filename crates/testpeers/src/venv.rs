//! The Python venvs `scripts/peers.sh` builds for client libraries (pyvmomi, the vendors' clients):
//! where each one's interpreter is, and what to run when it is missing.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::layout::{cache_dir, env_path, pinned};

/// One pinned venv under the peers cache: `<cache>/<dir_prefix>-<version>/venv`.
pub(crate) struct PinnedVenv {
    /// Environment variable that names the interpreter directly, overriding the cache.
    pub env: &'static str,
    pub dir_prefix: &'static str,
    /// Key of the version in `peers/versions.env`.
    pub version_key: &'static str,
    /// What the venv holds, for messages.
    pub what: &'static str,
    /// The `scripts/peers.sh install` target that builds it.
    pub install_target: &'static str,
}

impl PinnedVenv {
    fn install_command(&self) -> String {
        format!("scripts/peers.sh install {}", self.install_target)
    }

    /// The venv's `python`: `$<env>` when set, else the cached venv once complete.
    pub fn python(&self) -> anyhow::Result<PathBuf> {
        if let Some(python) = env_path(self.env) {
            if !python.is_file() {
                bail!(
                    "{}={} does not exist: unset it or run `{}`",
                    self.env,
                    python.display(),
                    self.install_command()
                );
            }
            return Ok(python);
        }
        self.python_in(&cache_dir())
    }

    pub fn python_in(&self, cache: &Path) -> anyhow::Result<PathBuf> {
        let venv = cache
            .join(format!("{}-{}", self.dir_prefix, pinned(self.version_key)?))
            .join("venv");
        // The script writes the marker only after importing the library worked.
        if !venv.join(".complete").is_file() {
            bail!(
                "{} venv not found at {}: run `{}`",
                self.what,
                venv.display(),
                self.install_command()
            );
        }
        Ok(venv.join("bin/python"))
    }
}
