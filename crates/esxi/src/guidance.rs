//! What an ESXi administrator is told to do for the SSH method: the restricted `authorized_keys`
//! line and the numbered manual steps. Shared by the SSH executor, preflight and the controller.

use crate::assets::SSH_WRAPPER_FILE_NAME;

/// ESXi's authorized_keys file for root.
pub const ESXI_ROOT_AUTHORIZED_KEYS: &str = "/etc/ssh/keys-root/authorized_keys";

/// Path of the SSH wrapper on `datastore`.
pub fn ssh_wrapper_path(datastore: &str) -> String {
    format!("/vmfs/volumes/{datastore}/{SSH_WRAPPER_FILE_NAME}")
}

/// The options after `command="…"`: `restrict` turns off everything sshd can grant a key
/// (forwarding of every kind, a pty, `~/.ssh/rc`, and whatever later OpenSSH versions add), so
/// the key can do nothing but run the wrapper. OpenSSH 7.2 introduced it and ESXi 7.0 and 8.0
/// ship later releases; an sshd that does not know it refuses the whole line (fails closed). The seed's explicit
/// options and `no-pty` stay in the line so a reader sees what is off, and so it stays restricted
/// if an administrator deletes `restrict`.
pub const KEY_OPTIONS: &str =
    "restrict,no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding";

/// The `authorized_keys` line that lets `public_key` run only the wrapper on `datastore`.
///
/// `python -I` runs the script isolated: nothing is imported from the script's own folder (the
/// datastore root, writable by datastore users) or from `PYTHON*` variables. A datastore name
/// with spaces or shell metacharacters is single-quoted for the shell sshd runs the command
/// with, and `"` is written as `\"`, the only escape sshd's option parser undoes.
pub fn restricted_key_line(datastore: &str, public_key: &str) -> String {
    let command = format!(
        "python -I {}",
        crate::protocol::shell_quote(&ssh_wrapper_path(datastore))
    );
    let option_value = command.replace('"', "\\\"");
    format!(
        "command=\"{option_value}\",{KEY_OPTIONS} {}",
        public_key.trim()
    )
}

/// The numbered steps to install the key on `host`, with the exact line to append.
pub fn manual_key_instructions(host: &str, datastore: &str, public_key: &str) -> String {
    let line = restricted_key_line(datastore, public_key);
    format!(
        "The copy-offload SSH key is not accepted by ESXi host {host}. Install it once per host:\n\
         1. Enable SSH on the host: in the ESXi shell run `vim-cmd hostsvc/enable_ssh` and \
         `vim-cmd hostsvc/start_ssh` (or Host > Configure > Services > SSH > Start).\n\
         2. Log in as root: `ssh root@{host}`.\n\
         3. Append this single line to {ESXI_ROOT_AUTHORIZED_KEYS} (for example with `vi`):\n\
         {line}\n\
         4. Save the file; no restart is needed. Then retry the migration.\n\
         The key can only run {wrapper}; copy-offload uploads and verifies that script itself.",
        wrapper = ssh_wrapper_path(datastore),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-rsa AAAAB3NzaC1yc2E copy-offload\n";

    #[test]
    fn plain_datastore_gives_an_isolated_python_and_no_pty() {
        assert_eq!(
            restricted_key_line("datastore1", KEY),
            "command=\"python -I /vmfs/volumes/datastore1/secure-vmkfstools-wrapper.py\",\
             restrict,no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding \
             ssh-rsa AAAAB3NzaC1yc2E copy-offload"
        );
    }

    #[test]
    fn awkward_datastore_names_are_quoted() {
        assert!(restricted_key_line("ds 1", KEY).starts_with(
            "command=\"python -I '/vmfs/volumes/ds 1/secure-vmkfstools-wrapper.py'\","
        ));
        assert!(restricted_key_line("a\"b'c", KEY).starts_with(
            r#"command="python -I '/vmfs/volumes/a\"b'\''c/secure-vmkfstools-wrapper.py'","#
        ));
    }

    #[test]
    fn instructions_name_host_steps_and_line() {
        let text = manual_key_instructions("10.0.0.5", "ds1", KEY);
        for needle in [
            "10.0.0.5",
            "vim-cmd hostsvc/enable_ssh",
            "vim-cmd hostsvc/start_ssh",
            ESXI_ROOT_AUTHORIZED_KEYS,
            &restricted_key_line("ds1", KEY),
        ] {
            assert!(text.contains(needle), "missing {needle}");
        }
    }
}
