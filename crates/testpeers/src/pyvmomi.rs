//! The Python interpreter with VMware's pyvmomi bindings that `scripts/peers.sh install pyvmomi` puts
//! in a venv, for checking our SOAP side against VMware's own client.

use std::path::PathBuf;

use crate::venv::PinnedVenv;

const VENV: PinnedVenv = PinnedVenv {
    env: "COPY_OFFLOAD_PYVMOMI_PYTHON",
    dir_prefix: "pyvmomi",
    version_key: "PYVMOMI_VERSION",
    what: "pyvmomi",
    install_target: "pyvmomi",
};

/// A `python3` that can `import pyVmomi`: `$COPY_OFFLOAD_PYVMOMI_PYTHON`, or the pinned venv
/// `<cache>/pyvmomi-<version>/venv/bin/python`.
pub fn python_with_pyvmomi() -> anyhow::Result<PathBuf> {
    VENV.python()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_venv_names_the_install_command() {
        let empty = tempfile::tempdir().unwrap();
        let err = VENV.python_in(empty.path()).unwrap_err().to_string();
        assert!(
            err.contains("run `scripts/peers.sh install pyvmomi`"),
            "{err}"
        );
    }
}
