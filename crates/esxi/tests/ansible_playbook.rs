//! The Ansible install path documented in vmkfstools-wrapper/README.md parses with the real
//! `ansible-playbook` against the example inventory.

use std::path::Path;
use std::process::Command;

#[test]
fn playbook_and_inventory_pass_ansible_syntax_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vmkfstools-wrapper");
    let output = Command::new("ansible-playbook")
        .current_dir(&dir)
        .args([
            "--syntax-check",
            "-i",
            "esxi_hosts.yaml",
            "vib-install-playbook.yaml",
        ])
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "ansible-playbook cannot run ({err}): install it with `scripts/peers.sh install` \
                 (pip install 'ansible-core==2.17.7')"
            )
        });
    assert!(
        output.status.success(),
        "syntax check failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let listed = Command::new("ansible-inventory")
        .current_dir(&dir)
        .args(["-i", "esxi_hosts.yaml", "--list"])
        .output()
        .expect("ansible-inventory ships with ansible-core");
    let inventory = String::from_utf8_lossy(&listed.stdout);
    assert!(
        inventory.contains("esxi-01.example.com") && inventory.contains("esxi-02.example.com"),
        "{inventory}"
    );
}
