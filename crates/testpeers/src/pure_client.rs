//! The Python interpreter with Pure Storage's own FlashArray client (`py-pure-client`) that
//! `scripts/peers.sh install vendorclients-pure` puts in a venv, for checking the lab's FlashArray
//! facade against the vendor's library.

use std::path::PathBuf;

use crate::venv::PinnedVenv;

/// The install command named in every "not installed" message.
pub const PURE_CLIENT_INSTALL: &str = "scripts/peers.sh install vendorclients-pure";

const VENV: PinnedVenv = PinnedVenv {
    env: "COPY_OFFLOAD_PURE_CLIENT_PYTHON",
    dir_prefix: "vendorclients-py-pure-client",
    version_key: "PY_PURE_CLIENT_VERSION",
    what: "py-pure-client",
    install: PURE_CLIENT_INSTALL,
};

/// A `python3` that can `import pypureclient.flasharray`: `$COPY_OFFLOAD_PURE_CLIENT_PYTHON`, or
/// the pinned venv `<cache>/vendorclients-py-pure-client-<version>/venv/bin/python`.
pub fn python_with_pure_client() -> anyhow::Result<PathBuf> {
    VENV.python()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_venv_names_the_install_command() {
        let empty = tempfile::tempdir().unwrap();
        let err = VENV.python_in(empty.path()).unwrap_err().to_string();
        assert!(err.contains(PURE_CLIENT_INSTALL), "{err}");
    }
}
