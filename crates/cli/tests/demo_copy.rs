//! `copy-offload lab demo` end to end: the real populate code path against the in-process lab
//! for each clone method on the default vendor, and for a vVol disk, with the printed checksum
//! checked against the lab's known disk pattern, computed here independently.

use std::process::{Command, Output};

const MIB: u64 = 1024 * 1024;

fn demo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_copy-offload"))
        .args(["lab", "demo"])
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the copy-offload binary runs")
}

/// SHA-256 of a lab disk of `size` bytes, from the lab's own pattern writer.
fn expected_sha256(size: u64) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk");
    co_lab::lab::write_pattern_disk(&path, size).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes))
}

fn assert_verified_copy(method: &str, disk_type: &str) {
    let output = demo(&[
        "--method",
        method,
        "--disk-type",
        disk_type,
        "--size",
        "64MiB",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let checksum = format!(
        "checksum verified: disk 0 sha256 {} ([ds1] vm-1/vm-1.vmdk = /vol/demo_pvc_0/lun0 on ontap1)",
        expected_sha256(64 * MIB)
    );
    assert!(stdout.contains(&checksum), "no `{checksum}` in:\n{stdout}");
    let backing = match disk_type {
        "vvol" => "(vVol)",
        _ => "(flat VMDK)",
    };
    assert!(
        stdout.lines().next().unwrap_or_default().contains(backing),
        "{stdout}"
    );
    assert!(stdout.contains("XCOPY used    disk 0: yes"), "{stdout}");
    assert!(
        stdout.contains(&format!("clone method  {method}")),
        "{stdout}"
    );
    for phase in ["resolve", "map", "discover", "verify", "clone", "cleanup"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(phase)),
            "phase {phase} missing from the table:\n{stdout}"
        );
    }
    assert!(stdout.contains("67108864 bytes (64.0 MiB)"), "{stdout}");
    assert!(
        stdout.contains("disk 0: unmapped /vol/demo_pvc_0/lun0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lab check: no copy-offload initiator group"),
        "{stdout}"
    );
    // Without a terminal the progress is plain phase lines on stderr.
    assert!(stderr.contains("disk 0: clone"), "{stderr}");
}

#[test]
fn the_vib_method_copies_and_verifies_the_disk() {
    assert_verified_copy("vib", "vmdk");
}

#[test]
fn the_ssh_method_copies_and_verifies_the_disk() {
    assert_verified_copy("ssh", "vmdk");
}

/// ONTAP has no vVol array copy: a vVol disk is cloned with XCOPY, like a flat VMDK.
#[test]
fn a_vvol_disk_is_copied_through_xcopy_and_verified() {
    assert_verified_copy("vib", "vvol");
}

#[test]
fn unavailable_choices_are_refused_before_the_lab_starts() {
    let odd_size = demo(&["--size", "1000"]);
    assert_eq!(odd_size.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&odd_size.stderr).contains("whole number of MiB"));
}
