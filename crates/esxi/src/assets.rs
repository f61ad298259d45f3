//! The ESXi-side files this crate ships, embedded at build time: the SSH forced-command script,
//! the VIB's shell wrapper and its esxcli plugin XML, with their version and SHA-256.

use sha2::{Digest, Sha256};

/// Version both wrapper scripts report (`--version`); the VIB carries the same version. 1.2.0
/// changed the VIB's wire: values may be sent encoded (`hex:…`, see
/// [`crate::protocol::ENCODED_VALUES_VERSION`]).
pub const WRAPPER_VERSION: &str = "1.2.0";

/// `secure-vmkfstools-wrapper.py`, run by the restricted SSH key from the datastore root.
pub const SSH_WRAPPER: &str = include_str!("../assets/secure-vmkfstools-wrapper.py");
/// File name of [`SSH_WRAPPER`] on the datastore.
pub const SSH_WRAPPER_FILE_NAME: &str = "secure-vmkfstools-wrapper.py";

/// The VIB's shell wrapper, installed at [`VIB_WRAPPER_INSTALL_PATH`].
pub const VIB_WRAPPER: &str = include_str!("../assets/vmkfstools-wrapper.sh");
/// Where the VIB installs the wrapper (kept from upstream: existing hosts and plugin files use it).
pub const VIB_WRAPPER_INSTALL_PATH: &str = "opt/redhat/vmkfstools-wrapper";

/// The SSH method's shell wrapper, for hosts whose key line is Forklift's `DS=<datastore>;CMD=…`
/// routing line: the VIB's wrapper script itself (it serves SSH when run without arguments),
/// uploaded to the datastore root under [`SSH_SHELL_WRAPPER_FILE_NAME`].
pub const SSH_SHELL_WRAPPER: &str = VIB_WRAPPER;
/// File name Forklift's key line runs from the datastore root (no extension).
pub const SSH_SHELL_WRAPPER_FILE_NAME: &str = "secure-vmkfstools-wrapper";

/// esxcli plugin adding the `vmkfstools` namespace.
pub const ESXCLI_PLUGIN: &str = include_str!("../assets/esxcli-vmkfstools.xml");
/// Where the VIB installs the plugin.
pub const ESXCLI_PLUGIN_INSTALL_PATH: &str = "usr/lib/vmware/esxcli/ext/esxcli-vmkfstools.xml";

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 of [`SSH_WRAPPER`]: the only script content the SSH executor will run.
pub fn ssh_wrapper_sha256() -> String {
    sha256_hex(SSH_WRAPPER.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_wrappers_and_the_plugin_report_the_crate_wrapper_version() {
        assert!(SSH_WRAPPER.contains(&format!("\nSCRIPT_VERSION = \"{WRAPPER_VERSION}\"\n")));
        assert!(VIB_WRAPPER.contains(&format!("\nSCRIPT_VERSION=\"{WRAPPER_VERSION}\"\n")));
        assert!(ESXCLI_PLUGIN.contains(&format!("\n   <version>{WRAPPER_VERSION}</version>\n")));
    }

    /// The version the shipped wrappers carry is one the populator sends client task ids to:
    /// otherwise the journal could never name a clone before it starts.
    #[test]
    fn the_shipped_wrappers_take_client_task_ids_and_encoded_values() {
        assert_eq!(WRAPPER_VERSION, "1.2.0");
        assert!(crate::protocol::accepts_client_task_id(WRAPPER_VERSION));
        assert!(crate::protocol::accepts_encoded_values(WRAPPER_VERSION));
        assert!(VIB_WRAPPER.contains("        hex:*) ;;\n"));
        assert!(
            SSH_WRAPPER.contains("\"-i\": \"task_id\",\n            \"--task-id\": \"task_id\",")
        );
        assert!(SSH_WRAPPER.contains("OPTIONAL = {\"clone\": {\"task_id\"}}"));
        assert!(ESXCLI_PLUGIN.contains(
            "<parameter name=\"task-id\" type=\"string\" required=\"false\" shortname=\"i\">"
        ));
    }

    #[test]
    fn plugin_runs_the_wrapper_at_the_upstream_install_path() {
        assert!(ESXCLI_PLUGIN.contains(&format!("<execute>/{VIB_WRAPPER_INSTALL_PATH} --clone -s '$val{{source-vmdk}}' -t '$val{{target-lun}}' $if{{task-id, -i '$val{{task-id}}'}}</execute>")));
        for command in ["clone", "taskGet", "taskAbort", "taskClean", "version"] {
            assert!(
                ESXCLI_PLUGIN.contains(&format!("<command path=\"vmkfstools.{command}\">")),
                "{command}"
            );
        }
    }

    #[test]
    fn sha256_is_stable_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(ssh_wrapper_sha256().len(), 64);
    }
}
