//! Peak memory of one SSH wrapper invocation (ESXi's hostd-tmp pool is shared by every concurrent
//! clone). Prints the figures; the bound only catches gross regressions such as a heavy import.

use crate::support;

use std::process::Command;

use support::{FakeEsxi, PYTHON};

fn peak_rss_kib(esxi: &FakeEsxi, original_command: &str) -> (u64, String) {
    let script = esxi
        .datastore_dir()
        .join(co_esxi::assets::SSH_WRAPPER_FILE_NAME);
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(PYTHON)
        .arg(script)
        .env("SSH_ORIGINAL_COMMAND", original_command)
        .output()
        .expect(
            "/usr/bin/time is missing: run `scripts/peers.sh install` (apt-get install -y time)",
        );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let kib = stderr
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("{stderr}"));
    (kib, String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn one_wrapper_invocation_stays_small() {
    let esxi = FakeEsxi::new("ds1");
    esxi.install_ssh_wrapper();
    let source = esxi.add_vmdk("vm/vm.vmdk", r#"{"steps": 1}"#);
    let device = esxi.add_device("naa.1", Some(0));
    let interpreter = Command::new("/usr/bin/time")
        .args(["-f", "%M", PYTHON, "-c", "pass"])
        .output()
        .unwrap();
    let baseline: u64 = String::from_utf8_lossy(&interpreter.stderr)
        .trim()
        .parse()
        .unwrap();

    let (version, _) = peak_rss_kib(&esxi, "--version");
    let (clone, reply) = peak_rss_kib(&esxi, &format!("--clone -s {source} -t {device}"));
    let task_id = reply
        .split("\"taskId\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let (get, _) = peak_rss_kib(&esxi, &format!("--task-get -i {task_id}"));
    let (refused, _) = peak_rss_kib(&esxi, "--clone -s /etc/passwd -t x");
    println!(
        "peak RSS (KiB): interpreter alone {baseline}, --version {version}, --clone {clone}, \
         --task-get {get}, refused request {refused}"
    );
    for figure in [version, clone, get, refused] {
        assert!(
            figure < baseline + 16 * 1024,
            "{figure} KiB against an interpreter baseline of {baseline} KiB"
        );
    }
}
