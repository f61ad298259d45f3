//! Files on a simulated host outside its datastores — what a VIB installs — and reading a wrapper
//! script's version from the script itself.
//!
//! The version a host's wrapper reports is the `SCRIPT_VERSION` line of the script actually on the
//! host: the VIB's shell wrapper under the host's root for the esxcli `vmkfstools` namespace, the
//! script uploaded to the datastore for SSH. A test that places an older script (or a scenario whose
//! `wrapper_version` installs an older VIB) sees that version answered, as on a real host.

use std::path::{Path, PathBuf};

use co_esxi::assets::{
    ESXCLI_PLUGIN, ESXCLI_PLUGIN_INSTALL_PATH, VIB_WRAPPER, VIB_WRAPPER_INSTALL_PATH,
    WRAPPER_VERSION,
};
use co_esxi::protocol::{VersionInfo, WrapperReply, encode_message};

/// The root of a host's own file system (`/` on ESXi) in the lab's data directory.
pub fn host_root(data_dir: &Path, host_name: &str) -> PathBuf {
    data_dir.join("hosts").join(host_name)
}

/// Installs the VIB's files (shell wrapper and esxcli plugin) under `root`, reporting `version`:
/// this build's files with their version lines rewritten when `version` is another one.
pub fn install_vib(root: &Path, version: &str) -> std::io::Result<()> {
    let wrapper = VIB_WRAPPER.replacen(
        &format!("\nSCRIPT_VERSION=\"{WRAPPER_VERSION}\"\n"),
        &format!("\nSCRIPT_VERSION=\"{version}\"\n"),
        1,
    );
    let plugin = ESXCLI_PLUGIN.replacen(
        &format!("<version>{WRAPPER_VERSION}</version>"),
        &format!("<version>{version}</version>"),
        1,
    );
    for (path, contents) in [
        (VIB_WRAPPER_INSTALL_PATH, wrapper),
        (ESXCLI_PLUGIN_INSTALL_PATH, plugin),
    ] {
        let file = root.join(path);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(file, contents)?;
    }
    Ok(())
}

/// Where the VIB's wrapper script is under a host's root.
pub fn vib_wrapper_path(root: &Path) -> PathBuf {
    root.join(VIB_WRAPPER_INSTALL_PATH)
}

/// The version a wrapper script declares: its first `SCRIPT_VERSION = "x"` (Python) or
/// `SCRIPT_VERSION="x"` (shell) assignment at the start of a line.
pub fn script_version(script: &str) -> Option<String> {
    script.lines().find_map(|line| {
        let value = line
            .strip_prefix("SCRIPT_VERSION")?
            .trim_start()
            .strip_prefix('=')?
            .trim();
        let quoted = value
            .strip_prefix('"')
            .and_then(|v| v.split_once('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.split_once('\'')))?;
        Some(quoted.0.to_owned()).filter(|v| !v.is_empty())
    })
}

/// The version a host's wrapper at `script` reports, read from the script; `Err` says why there is
/// none to report.
pub fn installed_version(script: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(script)
        .map_err(|e| format!("cannot read the wrapper {}: {e}", script.display()))?;
    script_version(&text).ok_or_else(|| {
        format!(
            "the wrapper {} has no SCRIPT_VERSION line",
            script.display()
        )
    })
}

/// The wrapper's answer to `--version` for the script at `script`, as that script would give it.
pub fn version_reply(script: &Path) -> WrapperReply {
    match installed_version(script) {
        Ok(version) => WrapperReply::ok(encode_message(&VersionInfo { version })),
        Err(why) => WrapperReply::failed(1, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_wrappers_declare_the_build_version() {
        assert_eq!(
            script_version(co_esxi::assets::SSH_WRAPPER).as_deref(),
            Some(WRAPPER_VERSION)
        );
        assert_eq!(
            script_version(VIB_WRAPPER).as_deref(),
            Some(WRAPPER_VERSION)
        );
    }

    #[test]
    fn version_lines_are_read_in_either_syntax_and_only_at_line_start() {
        assert_eq!(
            script_version("#!/bin/sh\nSCRIPT_VERSION=\"0.9.0\"\n").as_deref(),
            Some("0.9.0")
        );
        assert_eq!(
            script_version("x = 1\nSCRIPT_VERSION = '1.0.0'  # old\n").as_deref(),
            Some("1.0.0")
        );
        assert_eq!(script_version("  SCRIPT_VERSION=\"2\"\n"), None);
        assert_eq!(script_version("SCRIPT_VERSION_X=\"2\"\n"), None);
        assert_eq!(script_version("echo no version\n"), None);
    }

    #[test]
    fn an_installed_vib_reports_the_version_it_was_installed_with() {
        let dir = tempfile::tempdir().unwrap();
        install_vib(dir.path(), "1.0.0").unwrap();
        let path = vib_wrapper_path(dir.path());
        assert_eq!(installed_version(&path).as_deref(), Ok("1.0.0"));
        let plugin = std::fs::read_to_string(dir.path().join(ESXCLI_PLUGIN_INSTALL_PATH)).unwrap();
        assert!(plugin.contains("<version>1.0.0</version>"));
        let missing = installed_version(&dir.path().join("nothing")).unwrap_err();
        assert!(missing.contains("cannot read the wrapper"), "{missing}");
    }
}
