//! `copy-offload vib build` writes a VIB that binutils' `ar` (not our code) reads back with the three
//! members ESXi expects, in order; `vib install` refuses an unreadable key before contacting any host.

use std::process::Command;

use assert_cmd::cargo::cargo_bin_cmd;

#[test]
fn vib_build_writes_an_ar_archive_with_the_esxi_members() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wrapper.vib");
    cargo_bin_cmd!("copy-offload")
        .args(["vib", "build", "--out"])
        .arg(&out)
        .assert()
        .success();
    let listing = Command::new("ar")
        .arg("t")
        .arg(&out)
        .output()
        .expect("binutils' ar is needed: run `scripts/peers.sh install esxi-tools`");
    assert!(listing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout),
        "descriptor.xml\nsig.pkcs7\npayload1\n"
    );
}

#[test]
fn vib_install_with_a_missing_key_is_a_bad_argument() {
    let output = cargo_bin_cmd!("copy-offload")
        .args([
            "vib",
            "install",
            "--ssh-key",
            "/nonexistent/key",
            "--hosts",
            "127.0.0.1:1",
        ])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read the SSH key"));
}
