//! Peak memory of `copy-offload populate`, the figure the populator pod's resource requests come
//! from: the real binary (a release build when `COPY_OFFLOAD_BINARY` names one) copies a 1 GiB and
//! a 100 GiB disk of the lab by VIB, as in a pod (metrics endpoint on, waiting for the final
//! scrape), and its `VmHWM` is sampled until it exits.
//!
//! ```sh
//! cargo build --release -p copy-offload
//! COPY_OFFLOAD_BINARY=target/release/copy-offload \
//!   cargo test -p copy-offload --test suite bench_populate_rss:: -- --ignored --nocapture
//! ```

use crate::e2e_support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use co_api::contract::flags;
use e2e_support::{LabRig, MIB, SOURCE_VMDK, scenario_for};

const GIB: u64 = 1024 * MIB;

fn binary() -> PathBuf {
    std::env::var_os("COPY_OFFLOAD_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_copy-offload")))
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM`, `RssAnon`, `RssFile`).
fn status_kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/<pid>/status:\n{status}"))
}

struct Measured {
    peak_kib: u64,
    /// Resident at the end: private memory (heap, stacks) and pages of the binary and libraries.
    anon_kib: u64,
    file_kib: u64,
    wall: Duration,
}

/// A loopback port free at the time of asking, for the child's metrics endpoint. (An in-process
/// run takes `e2e_support::metrics_listener` instead, which no other test can be given; this bench
/// runs alone, `--ignored`.)
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn measure(size: u64) -> Measured {
    let mut scenario = scenario_for(co_lab::scenario::VendorSpec::Ontap);
    scenario.vms[0].disks[0].size_mib = size / MIB;
    let rig = LabRig::start_with(scenario).await;
    let name = "rss";
    rig.target_volume(name, size);
    let port = free_port();
    let args: Vec<String> = rig
        .rig()
        .populate_flags(SOURCE_VMDK, &rig.target(name))
        .into_iter()
        .filter(|(flag, _)| *flag != flags::HTTP_ENDPOINT)
        .map(|(flag, value)| flag.with_value(&value))
        .chain([flags::HTTP_ENDPOINT.with_value(&format!("127.0.0.1:{port}"))])
        .collect();
    let started = Instant::now();
    let mut child = Command::new(binary())
        .arg("populate")
        .args(&args)
        .env_clear()
        .env("TMPDIR", rig.dir.path())
        .env("cacert", &rig.lab.certificate_pem)
        .env("STORAGE_SKIP_SSL_VERIFICATION", "true")
        // As in a pod: the run waits for the controller's final scrape of the completion metric.
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // VmHWM only grows: the last sample taken before the process exits is its peak. The final
    // scrape below ends the run at once, so sampling (not one read after it) sees the end.
    let pid = child.id();
    let sampler = std::thread::spawn(move || {
        let mut last = None;
        while let Ok(memory) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if !memory.contains("VmHWM") {
                break; // a zombie: the process has exited
            }
            last = Some(memory);
            std::thread::sleep(Duration::from_millis(20));
        }
        last.expect("no /proc status sample of the populate process")
    });
    let metrics = e2e_support::scrape_until_complete(port, Duration::from_secs(600)).await;
    let wall = started.elapsed();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "populate failed: {status:?}\n{metrics}");
    let memory = sampler.join().unwrap();
    rig.assert_clean(name);
    Measured {
        peak_kib: status_kib(&memory, "VmHWM"),
        anon_kib: status_kib(&memory, "RssAnon"),
        file_kib: status_kib(&memory, "RssFile"),
        wall,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures, run with --ignored --nocapture"]
async fn populate_peak_rss() {
    println!("binary: {}", binary().display());
    println!(
        "| disk | copy (wall, to completion metric) | peak RSS (VmHWM) | of which at the end: private | binary and libraries |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (label, size) in [("1 GiB", GIB), ("100 GiB", 100 * GIB)] {
        let m = measure(size).await;
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!(
            "| {label} | {:.2} s | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
            m.wall.as_secs_f64(),
            mib(m.peak_kib),
            mib(m.anon_kib),
            mib(m.file_kib)
        );
    }
}
