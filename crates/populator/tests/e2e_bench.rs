//! Orchestration benchmark (prints figures; asserts only correctness, never timings): one disk at
//! a time through the VIB path against the lab with injected latencies — every SOAP call 20 ms,
//! every array REST call 50 ms, every adapter rescan 2 s — using the production cadences. Prints
//! the time per phase, the overhead outside the clone phase and the round trips per disk; see
//! BENCHMARKS.md. Run: `cargo test -p co-populator --test e2e_bench -- --nocapture`.

mod e2e_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use co_lab::faults::FaultRule;
use co_populator::copy::{Phase, Timing};
use co_populator::exit::ExitCode;
use co_populator::run::run_with;
use co_storage::http::{ObservedRequest, RequestObserver};
use e2e_support::{LabRig, MIB};
use tokio::time::Instant;

#[derive(Default)]
struct RestCounter(AtomicU64);

impl RequestObserver for RestCounter {
    fn observe(&self, _: &ObservedRequest) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn latency(site: &str, ms: u64) -> FaultRule {
    FaultRule {
        site: site.into(),
        latency_ms: ms,
        error: None,
        times: None,
    }
}

const DISKS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestration_overhead_per_disk_with_injected_latencies() {
    let rig = LabRig::start().await;
    for rule in [
        latency("soap:*", 20),
        latency("array:*", 50),
        latency("esxcli:storage core adapter rescan", 2000),
    ] {
        rig.lab.faults.add(rule);
    }
    println!("\ndisk | total s | outside clone s | clone phase s | SOAP | REST | phases (ms)");
    let mut overheads = Vec::new();
    for i in 0..DISKS {
        let flexvol = format!("trident_pvc_bench_{i}");
        rig.target_volume(&flexvol, 64 * MIB);
        let mut options = rig.options(&flexvol);
        options.timing = Timing::default();
        let rest = Arc::new(RestCounter::default());
        options.storage_observer = Some(rest.clone());
        let started = Instant::now();
        let summary = run_with(rig.config(&rig.args(&flexvol)), options).await;
        let total = started.elapsed();
        assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);
        rig.assert_copied(&flexvol);
        rig.assert_clean(&flexvol);
        let report = summary.report.unwrap();
        let clone: Duration = report
            .phases
            .iter()
            .filter(|(p, _)| *p == Phase::Clone)
            .map(|(_, d)| *d)
            .sum();
        let outside = total.saturating_sub(clone);
        overheads.push(outside);
        let phases: Vec<String> = report
            .phases
            .iter()
            .map(|(p, d)| format!("{}={}", p.as_str(), d.as_millis()))
            .collect();
        println!(
            "{i} | {:.2} | {:.2} | {:.2} | {} | {} | {}",
            total.as_secs_f64(),
            outside.as_secs_f64(),
            clone.as_secs_f64(),
            summary.soap_round_trips,
            rest.0.load(Ordering::SeqCst),
            phases.join(" ")
        );
    }
    let mean = overheads.iter().sum::<Duration>() / overheads.len() as u32;
    println!(
        "mean time outside the clone phase: {:.2} s (includes the 2 s injected rescan)",
        mean.as_secs_f64()
    );
}
