//! The Go peers `scripts/peers.sh install` builds from our own sources in `peers/<name>/*.go` against
//! Debian's govmomi library (vcsim, govc): where the build is, with the script's cache key.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::layout::{cache_dir, debian_package_version, env_path, repo_root};

/// The `name` binary: `$<env>`, or the one `scripts/peers.sh install <name>` built for the installed
/// govmomi library and the current `peers/<name>/*.go` (a stale build is not used).
pub(crate) fn binary(name: &str, env: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = env_path(env) {
        if !path.is_file() {
            bail!(
                "{env}={} does not exist: unset it or run `scripts/peers.sh install {name}`",
                path.display()
            );
        }
        return Ok(path);
    }
    binary_in(&cache_dir(), name)
}

pub(crate) fn binary_in(cache: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let install = format!("scripts/peers.sh install {name}");
    let govmomi = debian_package_version("golang-github-vmware-govmomi-dev", &install)?;
    let path = cache
        .join(format!("{name}-{govmomi}-{}", sources_sha(name)?))
        .join(name);
    if !path.is_file() {
        bail!(
            "{name} not found at {} (not built yet, or peers/{name} changed since): run `{install}`",
            path.display()
        );
    }
    Ok(path)
}

/// First 12 hex digits of SHA-256 over `peers/<name>/*.go` in name order, as the script's
/// `cat peers/<name>/*.go | sha256sum` computes it.
fn sources_sha(name: &str) -> anyhow::Result<String> {
    let dir = repo_root().join("peers").join(name);
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "go"))
        .collect();
    sources.sort();
    let mut hasher = Sha256::new();
    for source in &sources {
        hasher.update(
            std::fs::read(source).with_context(|| format!("reading {}", source.display()))?,
        );
    }
    let digest = hasher.finalize();
    Ok(digest.iter().take(6).map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn a_missing_build_names_the_install_command() {
        let empty = tempfile::tempdir().unwrap();
        for name in ["vcsim", "govc"] {
            let err = binary_in(empty.path(), name).unwrap_err().to_string();
            assert!(
                err.contains(&format!("run `scripts/peers.sh install {name}`")),
                "{err}"
            );
            assert!(err.contains(&empty.path().display().to_string()), "{err}");
        }
    }

    #[test]
    fn the_sources_hash_matches_the_scripts_cache_key() {
        for name in ["vcsim", "govc"] {
            let script_sha = Command::new("sh")
                .arg("-c")
                .arg(format!("cat peers/{name}/*.go | sha256sum | cut -c1-12"))
                .current_dir(repo_root())
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8(script_sha.stdout).unwrap().trim(),
                sources_sha(name).unwrap()
            );
        }
    }
}
