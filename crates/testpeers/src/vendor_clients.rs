//! The vendors' own client libraries that `scripts/peers.sh install vendorclients-<vendor>` puts in
//! pinned venvs, for checking the lab's array facades against clients nobody here wrote. The table
//! here and the script's `VENDOR_CLIENTS` name the same venvs; a test pins that they agree.

use std::path::PathBuf;

use crate::venv::PinnedVenv;

/// One vendor's client library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorClient {
    /// NetApp `netapp-ontap` (ONTAP REST).
    NetappOntap,
    /// Pure Storage `py-pure-client` (FlashArray REST 2.x).
    PyPureClient,
    /// Dell `PyPowerStore`.
    PyPowerStore,
    /// Dell `PyU4V` (PowerMax Unisphere REST).
    PyU4V,
    /// Dell `PyPowerFlex`.
    PyPowerFlex,
    /// Infinidat `infinisdk` (InfiniBox).
    InfiniSdk,
    /// HPE `python-3parclient` (Primera / 3PAR WSAPI).
    Python3ParClient,
    /// The `ansible` package: its `ibm.storage_virtualize` (FlashSystem) and
    /// `hitachivantara.vspone_block` (Vantara) collections carry those vendors' REST clients.
    AnsibleCollections,
}

impl VendorClient {
    pub const ALL: [VendorClient; 8] = [
        VendorClient::NetappOntap,
        VendorClient::PyPureClient,
        VendorClient::PyPowerStore,
        VendorClient::PyU4V,
        VendorClient::PyPowerFlex,
        VendorClient::InfiniSdk,
        VendorClient::Python3ParClient,
        VendorClient::AnsibleCollections,
    ];

    /// The `scripts/peers.sh install` target that builds the venv.
    pub fn install_target(self) -> &'static str {
        self.venv().install_target
    }

    /// The command that builds the venv, for messages.
    pub fn install_command(self) -> String {
        format!("scripts/peers.sh install {}", self.install_target())
    }

    /// A `python3` that can import the library: `$COPY_OFFLOAD_<…>_PYTHON`, or the pinned venv
    /// `<cache>/vendorclients-<pip name>-<version>/venv/bin/python`. An error names the install
    /// command.
    pub fn python(self) -> anyhow::Result<PathBuf> {
        self.venv().python()
    }

    fn venv(self) -> PinnedVenv {
        let (env, dir_prefix, pip_name, version_key, install_target) = match self {
            VendorClient::NetappOntap => (
                "COPY_OFFLOAD_NETAPP_ONTAP_PYTHON",
                "vendorclients-netapp-ontap",
                "netapp-ontap",
                "NETAPP_ONTAP_VERSION",
                "vendorclients-ontap",
            ),
            VendorClient::PyPureClient => (
                "COPY_OFFLOAD_PURE_CLIENT_PYTHON",
                "vendorclients-py-pure-client",
                "py-pure-client",
                "PY_PURE_CLIENT_VERSION",
                "vendorclients-pure",
            ),
            VendorClient::PyPowerStore => (
                "COPY_OFFLOAD_PYPOWERSTORE_PYTHON",
                "vendorclients-PyPowerStore",
                "PyPowerStore",
                "PYPOWERSTORE_VERSION",
                "vendorclients-powerstore",
            ),
            VendorClient::PyU4V => (
                "COPY_OFFLOAD_PYU4V_PYTHON",
                "vendorclients-PyU4V",
                "PyU4V",
                "PYU4V_VERSION",
                "vendorclients-powermax",
            ),
            VendorClient::PyPowerFlex => (
                "COPY_OFFLOAD_PYPOWERFLEX_PYTHON",
                "vendorclients-PyPowerFlex",
                "PyPowerFlex",
                "PYPOWERFLEX_VERSION",
                "vendorclients-powerflex",
            ),
            VendorClient::InfiniSdk => (
                "COPY_OFFLOAD_INFINISDK_PYTHON",
                "vendorclients-infinisdk",
                "infinisdk",
                "INFINISDK_VERSION",
                "vendorclients-infinibox",
            ),
            VendorClient::Python3ParClient => (
                "COPY_OFFLOAD_3PARCLIENT_PYTHON",
                "vendorclients-python-3parclient",
                "python-3parclient",
                "PYTHON_3PARCLIENT_VERSION",
                "vendorclients-primera3par",
            ),
            VendorClient::AnsibleCollections => (
                "COPY_OFFLOAD_ANSIBLE_PYTHON",
                "vendorclients-ansible",
                "ansible",
                "ANSIBLE_VERSION",
                "vendorclients-ansible",
            ),
        };
        PinnedVenv {
            env,
            dir_prefix,
            version_key,
            what: pip_name,
            install_target,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_venv_names_the_install_command() {
        let empty = tempfile::tempdir().unwrap();
        for client in VendorClient::ALL {
            let err = client.venv().python_in(empty.path()).unwrap_err();
            assert!(
                err.to_string().contains(&client.install_command()),
                "{client:?}: {err}"
            );
        }
    }

    #[test]
    fn each_venv_directory_is_named_after_the_pip_package() {
        for client in VendorClient::ALL {
            let venv = client.venv();
            assert_eq!(venv.dir_prefix, format!("vendorclients-{}", venv.what));
        }
    }

    /// The script's table and this one must name the same venvs: a drift would make a test look
    /// for a venv the script never builds.
    #[test]
    fn the_install_script_builds_the_venvs_named_here() {
        let script =
            std::fs::read_to_string(crate::layout::repo_root().join("scripts/peers.sh")).unwrap();
        for client in VendorClient::ALL {
            let venv = client.venv();
            let row = format!(
                "\"{} {} {} ",
                venv.install_target, venv.what, venv.version_key
            );
            assert!(
                script.contains(&row),
                "scripts/peers.sh VENDOR_CLIENTS has no row starting {row}"
            );
        }
    }
}
