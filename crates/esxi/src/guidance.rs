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

/// The `authorized_keys` line Forklift tells administrators to install for `public_key`: an
/// inline `sh -c` that reads `DS=<datastore>;CMD=<operation>` from `SSH_ORIGINAL_COMMAND`, answers
/// `SSH_OK` to an empty DS, and otherwise runs `sh /vmfs/volumes/$DS/secure-vmkfstools-wrapper`
/// with `SSH_ORIGINAL_COMMAND=<operation>`. Hosts in the field carry it; the SSH executor works
/// through it (see [`forklift_route_problem`] for the datastore names it cannot route). Kept here
/// so the tests and the lab install exactly the text administrators have.
pub fn forklift_key_line(public_key: &str) -> String {
    const ROUTING: &str = r#"sh -c 'DS=$(echo \"$SSH_ORIGINAL_COMMAND\" | sed -n \"s/^DS=\\([^;]*\\);.*/\\1/p\"); CMD=$(echo \"$SSH_ORIGINAL_COMMAND\" | sed -n \"s/^DS=[^;]*;CMD=\\(.*\\)/\\1/p\"); if [ -z \"$DS\" ]; then echo \"SSH_OK\"; else SSH_ORIGINAL_COMMAND=\"$CMD\" exec sh /vmfs/volumes/$DS/secure-vmkfstools-wrapper; fi'"#;
    format!(
        "command=\"{ROUTING}\",no-port-forwarding,no-agent-forwarding,no-X11-forwarding {}",
        public_key.trim()
    )
}

/// Why Forklift's key line cannot run the shell wrapper of `datastore`, or `None` when it can.
/// The line expands its DS unquoted — split at spaces, tabs and newlines, and globbed at `*`, `?`
/// and `[` — after passing it through `echo` (which may interpret `\`), and ends DS at the first
/// `;`. Such a name would run no script, or another datastore's.
pub fn forklift_route_problem(datastore: &str) -> Option<&'static str> {
    if datastore.contains([' ', '\t', '\n']) {
        Some("Forklift's key line splits the name into words at its spaces")
    } else if datastore.contains(['*', '?', '[']) {
        Some("Forklift's key line expands `*`, `?` and `[` in the name as a file pattern")
    } else if datastore.contains('\\') {
        Some("Forklift's key line passes the name through `echo`, which may rewrite `\\`")
    } else if datastore.contains(';') {
        Some("Forklift's key line ends the datastore name at the first `;`")
    } else {
        None
    }
}

/// What the log says when a host carries Forklift's key line: that copies work through it, and
/// the steps to replace it with copy-offload's line (an isolated Python wrapper that takes every
/// datastore name).
pub fn forklift_line_notice(host: &str, datastore: &str, public_key: &str) -> String {
    format!(
        "ESXi host {host} carries Forklift's key line (it routes DS=<datastore>;CMD=<operation> to \
         {shell}). copy-offload works through it with its own shell wrapper, which it places and \
         verifies there. Recommended: replace the line with copy-offload's, which needs no routing \
         and takes every datastore name:\n\
         1. Log in as root: `ssh root@{host}`.\n\
         2. In {ESXI_ROOT_AUTHORIZED_KEYS}, delete the line with this key that contains \
         `secure-vmkfstools-wrapper; fi'`.\n\
         3. Append this single line instead (one per datastore the host copies from):\n\
         {line}\n\
         No restart is needed.",
        shell = format_args!(
            "/vmfs/volumes/<datastore>/{}",
            crate::assets::SSH_SHELL_WRAPPER_FILE_NAME
        ),
        line = restricted_key_line(datastore, public_key),
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
    fn forklift_line_routes_through_an_inline_shell() {
        let line = forklift_key_line(KEY);
        assert!(line.starts_with("command=\"sh -c 'DS=$(echo \\\"$SSH_ORIGINAL_COMMAND\\\""));
        assert!(line.contains("exec sh /vmfs/volumes/$DS/secure-vmkfstools-wrapper; fi'\","));
        assert!(line.ends_with("no-X11-forwarding ssh-rsa AAAAB3NzaC1yc2E copy-offload"));
    }

    #[test]
    fn datastore_names_forklift_cannot_route_are_named() {
        for routable in [
            "datastore1",
            "Bob's_DS",
            "ds-1_(prod)",
            "データ",
            "no\u{a0}break",
        ] {
            assert_eq!(forklift_route_problem(routable), None, "{routable}");
        }
        for (name, needle) in [
            ("ds 1", "splits"),
            ("ds*", "file pattern"),
            ("ds[1]", "file pattern"),
            ("a\\b", "echo"),
            ("a;b", "first `;`"),
        ] {
            assert!(
                forklift_route_problem(name).unwrap().contains(needle),
                "{name}"
            );
        }
    }

    #[test]
    fn forklift_notice_recommends_our_line() {
        let text = forklift_line_notice("10.0.0.5", "ds1", KEY);
        assert!(text.contains("Forklift's key line"));
        assert!(text.contains(&restricted_key_line("ds1", KEY)));
        assert!(text.contains(ESXI_ROOT_AUTHORIZED_KEYS));
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
