//! `copy-offload lab serve`: the lab alone, from the embedded scenario or a scenario file, up
//! until SIGINT, then gone.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `lab serve`, returns its stdout up to the ready line, then stops it with SIGINT and
/// returns the exit code.
fn serve_until_ready(args: &[&str]) -> (String, Option<i32>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_copy-offload"))
        .args(["lab", "serve"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the copy-offload binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = stdout.read_line(&mut line).unwrap();
        assert!(n > 0, "lab serve ended before it was ready:\n{seen}");
        seen.push_str(&line);
        if line.starts_with("lab ready") {
            break;
        }
    }
    let vcenter: SocketAddr = seen
        .lines()
        .find_map(|l| l.strip_prefix("vCenter     https://"))
        .and_then(|rest| rest.trim_end_matches("/sdk").parse().ok())
        .unwrap_or_else(|| panic!("no vCenter URL in:\n{seen}"));
    TcpStream::connect_timeout(&vcenter, Duration::from_secs(5))
        .expect("the lab's vCenter accepts connections while it serves");

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let until = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        assert!(Instant::now() < until, "lab serve did not stop on SIGINT");
        std::thread::park_timeout(Duration::from_millis(50));
    };
    assert!(
        TcpStream::connect_timeout(&vcenter, Duration::from_secs(2)).is_err(),
        "vCenter still listens after lab serve ended"
    );
    (seen, code)
}

#[test]
fn the_embedded_scenario_serves_until_sigint() {
    let (stdout, code) = serve_until_ready(&[]);
    assert_eq!(code, Some(0));
    for expected in [
        "administrator@vsphere.local",
        "thumbprint",
        "esxi-1.lab.local",
        "esxi-2.lab.local",
        "array       ontap1 (ontap)  https://127.0.0.1:",
        "GOVC_URL=https://127.0.0.1:",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
}

#[test]
fn a_scenario_file_is_served_and_its_data_dir_kept() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("lab.yaml");
    std::fs::write(
        &scenario,
        "arrays: [{name: filer, vendor: ontap}]\nhosts: [{name: esx-a}]\ndatastores: [{name: gold, array: filer}]\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let (stdout, code) = serve_until_ready(&[
        "--scenario",
        scenario.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("ESXi        esx-a"), "{stdout}");
    assert!(stdout.contains("array       filer"), "{stdout}");
    assert!(!stdout.contains("esxi-2"), "{stdout}");
    assert!(data.join("lab-certificate.pem").is_file());
}

#[test]
fn an_invalid_scenario_is_a_bad_argument() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("lab.yaml");
    std::fs::write(&scenario, "arrays: []\nhosts: []\ndatastores: []\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_copy-offload"))
        .args(["lab", "serve", "--scenario", scenario.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least one host"), "{stderr}");
}
