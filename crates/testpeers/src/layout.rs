//! Where `scripts/peers.sh` puts things: the version pins shared with the script
//! (`peers/versions.env`), the build cache and the runtime state directory, with the same environment
//! overrides and defaults as the script.

use std::path::PathBuf;

use anyhow::{Context, anyhow};

/// The version pins, compiled in so that a pin change rebuilds this crate and moves the cache keys.
const VERSIONS_ENV: &str = include_str!("../../../peers/versions.env");

/// The repository root (co-testpeers lives in `crates/testpeers`).
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The build cache: `$COPY_OFFLOAD_PEERS_CACHE`, default `/var/cache/copy-offload-peers`.
pub fn cache_dir() -> PathBuf {
    env_path("COPY_OFFLOAD_PEERS_CACHE")
        .unwrap_or_else(|| PathBuf::from("/var/cache/copy-offload-peers"))
}

/// The runtime state of the shared peers (kubeconfig, logs, pid files): `$COPY_OFFLOAD_PEERS_DIR`,
/// default `/tmp/copy-offload-peers`.
pub fn state_dir() -> PathBuf {
    env_path("COPY_OFFLOAD_PEERS_DIR").unwrap_or_else(|| PathBuf::from("/tmp/copy-offload-peers"))
}

/// A non-empty environment variable as a path.
pub(crate) fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The value of `key` in `peers/versions.env`.
pub(crate) fn pinned(key: &str) -> anyhow::Result<&'static str> {
    pinned_in(VERSIONS_ENV, key)
}

fn pinned_in<'a>(versions_env: &'a str, key: &str) -> anyhow::Result<&'a str> {
    versions_env
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .ok_or_else(|| anyhow!("peers/versions.env has no {key}= line"))
}

/// The installed version of a Debian package, as `dpkg-query` reports it.
pub(crate) fn debian_package_version(package: &str, install_hint: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()
        .with_context(|| format!("running dpkg-query for {package} (is this Debian?)"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || version.is_empty() {
        anyhow::bail!("Debian package {package} is not installed: run `{install_hint}`");
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_values_are_read_from_versions_env() {
        let env = "# comment\nA=1\n B = two \nA_LONGER=3\n";
        assert_eq!(pinned_in(env, "A").unwrap(), "1");
        assert_eq!(pinned_in(env, "B").unwrap(), "two");
        assert_eq!(pinned_in(env, "A_LONGER").unwrap(), "3");
        assert!(pinned_in(env, "C").is_err());
    }

    #[test]
    fn the_script_reads_the_same_versions_file() {
        // The script and this crate must agree on the cache keys: both read peers/versions.env.
        let script = std::fs::read_to_string(repo_root().join("scripts/peers.sh")).unwrap();
        assert!(script.contains(r#". "$REPO_ROOT/peers/versions.env""#));
        for key in [
            "PYVMOMI_VERSION",
            "PY_PURE_CLIENT_VERSION",
            "PYPOWERSTORE_VERSION",
            "KUBE_VERSION",
            "KUBE_PATCHSET",
            "KUBE_APISERVER_PORT",
        ] {
            pinned(key).unwrap();
        }
    }
}
