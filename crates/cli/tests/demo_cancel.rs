//! Stopping `copy-offload lab demo` mid-copy: SIGTERM cancels the running clone, the copy's
//! cleanup runs, the lab shuts down, and nothing is left listening or on disk.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn start_demo(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_copy-offload"))
        .args(["lab", "demo"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the copy-offload binary starts")
}

fn wait_with_deadline(child: &mut Child, deadline: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the demo did not exit within {deadline:?} of SIGTERM");
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// Every `host:port` on the `lab endpoints:` line.
fn endpoints(stdout: &str) -> Vec<SocketAddr> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("lab endpoints:"))
        .unwrap_or_else(|| panic!("no endpoints line in:\n{stdout}"));
    line.split([' ', ','])
        .filter_map(|word| {
            let word = word.trim_start_matches("https://").trim_end_matches("/sdk");
            word.parse().ok()
        })
        .collect()
}

#[test]
fn sigterm_mid_copy_cancels_cleans_up_and_leaves_nothing_running() {
    // Each task poll takes 5 s in the lab, so the copy is surely still in its clone phase when
    // the signal arrives.
    let mut child = start_demo(&[
        "--size",
        "64MiB",
        "--lab-latency",
        "esxcli:vmkfstools taskGet=5000",
    ]);
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            let _ = lines_tx.send(line);
        }
        seen
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = lines_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the demo reaches the clone phase");
        if line.ends_with("disk 0: clone") {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let status = wait_with_deadline(&mut child, Duration::from_secs(60));
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let stderr = reader.join().unwrap();
    assert_eq!(
        status.code(),
        Some(5),
        "exit code for cancelled\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("disk 0: populate cancelled"), "{stderr}");
    assert!(stderr.contains("demo cancelled"), "{stderr}");
    assert!(!stdout.contains("checksum verified"), "{stdout}");
    // The copy undid its mapping, and the lab saw nothing left behind before it stopped.
    assert!(stdout.contains("disk 0: cleaned clone task"), "{stdout}");
    assert!(
        stdout.contains("disk 0: unmapped /vol/demo_pvc_0/lun0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lab check: no copy-offload initiator group"),
        "{stdout}"
    );

    let addrs = endpoints(&stdout);
    assert!(
        addrs.len() >= 4,
        "vCenter, array and two ESXi hosts: {addrs:?}"
    );
    for addr in addrs {
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
            "{addr} still accepts connections after the demo ended"
        );
    }
    let lab_dir: PathBuf = stdout
        .lines()
        .next()
        .and_then(|l| l.rsplit_once(", lab in "))
        .map(|(_, dir)| dir.into())
        .unwrap_or_else(|| panic!("no lab directory in:\n{stdout}"));
    assert!(!lab_dir.exists(), "{} was left behind", lab_dir.display());
}
