//! Contract between `scripts/peers.sh` and this crate: both resolve the same peer paths, and the
//! script refuses what it does not know.

use std::path::PathBuf;
use std::process::Command;

fn script() -> Command {
    Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/peers.sh"))
}

fn exported(env_output: &str, name: &str) -> PathBuf {
    let prefix = format!("export {name}=");
    let line = env_output
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{name} missing:\n{env_output}"));
    PathBuf::from(&line[prefix.len()..])
}

#[test]
fn env_prints_the_paths_the_crate_uses() {
    let out = script()
        .arg("env")
        .env_remove("COPY_OFFLOAD_VCSIM")
        .env_remove("COPY_OFFLOAD_PYVMOMI_PYTHON")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = String::from_utf8(out.stdout).unwrap();

    assert_eq!(
        exported(&env, "COPY_OFFLOAD_PEERS_CACHE"),
        co_testpeers::cache_dir()
    );
    assert_eq!(
        exported(&env, "COPY_OFFLOAD_PEERS_DIR"),
        co_testpeers::state_dir()
    );
    assert_eq!(
        exported(&env, "KUBECONFIG"),
        co_testpeers::kubeconfig_path()
    );
    assert_eq!(
        exported(&env, "COPY_OFFLOAD_VCSIM"),
        co_testpeers::vcsim_binary().unwrap()
    );
    assert_eq!(
        exported(&env, "COPY_OFFLOAD_PYVMOMI_PYTHON"),
        co_testpeers::python_with_pyvmomi().unwrap()
    );
}

#[test]
fn unknown_commands_and_targets_are_refused() {
    let out = script().arg("bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));

    let out = script().args(["install", "bogus"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown install target 'bogus'"));
}
