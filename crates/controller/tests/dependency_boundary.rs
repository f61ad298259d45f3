//! The controller links the shared contract only: no SSH, vSphere, storage or copy-engine code may
//! enter its dependency tree (it runs with broad Kubernetes rights and must stay small and
//! auditable). Checked on the real resolved graph with `cargo tree`.

use std::process::Command;

const FORBIDDEN: &[&str] = &[
    "co-populator",
    "co-vsphere",
    "co-esxi",
    "co-storage",
    "co-lab",
    "russh",
];

#[test]
fn the_controller_depends_on_the_contract_only() {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "co-controller",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    let packages: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(packages.contains(&"co-api"), "{tree}");
    let found: Vec<&&str> = FORBIDDEN
        .iter()
        .filter(|name| packages.contains(name))
        .collect();
    assert!(
        found.is_empty(),
        "the controller's dependency tree contains {found:?}:\n{tree}"
    );
}
