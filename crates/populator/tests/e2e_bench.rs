//! Orchestration benchmark (prints figures; asserts only correctness, never timings): one disk at
//! a time through the VIB path against the lab with injected latencies — every SOAP call 20 ms,
//! every array REST call 50 ms, every adapter rescan 2 s, every SSH wrapper call 20 ms — using the
//! production cadences, then one disk through the SSH method. Prints the time per phase, the
//! overhead until the completion report outside the clone phase, the round trips per disk and the
//! call timeline of the first disk; see BENCHMARKS.md. Run: `cargo test -p co-populator --test suite e2e_bench:: -- --nocapture`.

use crate::e2e_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use co_lab::faults::FaultRule;
use co_populator::ExitCode;
use co_populator::run_with;
use co_populator::{Phase, Timing};
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
        latency("ssh:*", 20),
    ] {
        rig.lab.faults.add(rule);
    }
    println!(
        "\ndisk | method | process s | completion s | overhead s | clone phase s | SOAP | REST | SSH | phases (ms)"
    );
    let mut overheads = Vec::new();
    let mut timeline = Vec::new();
    for i in 0..DISKS + 1 {
        // The VIB path for most disks, then one through SSH.
        let ssh = i == DISKS;
        let flexvol = format!("trident_pvc_bench_{i}");
        rig.target_volume(&flexvol, 64 * MIB);
        let mut args = rig.args(&flexvol);
        let mut options = rig.options(&flexvol);
        if ssh {
            rig.use_ssh(&mut args, &mut options);
        }
        options.timing = Timing::default();
        let rest = Arc::new(RestCounter::default());
        options.storage_observer = Some(rest.clone());
        rig.lab.faults.record_calls();
        let started = Instant::now();
        let summary = run_with(rig.config(&args), options).await;
        let total = started.elapsed();
        let calls = rig.lab.faults.take_calls();
        if i == 0 {
            timeline.extend(calls.iter().map(|c| {
                format!(
                    "  +{:>5} ms {}",
                    c.at.saturating_duration_since(started.into_std())
                        .as_millis(),
                    c.site
                )
            }));
        }
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
        // Overhead: until the completion report (volume released), minus the clone itself. The
        // rescan-delete after it overlaps the final-scrape wait in a pod (none here).
        let completion = summary
            .completion_reported_at
            .saturating_duration_since(started.into_std());
        let outside = completion.saturating_sub(clone);
        if !ssh {
            overheads.push(outside);
        }
        let ssh_round_trips = calls.iter().filter(|c| c.site.starts_with("ssh:")).count();
        let phases: Vec<String> = report
            .phases
            .iter()
            .map(|(p, d)| format!("{}={}", p.as_str(), d.as_millis()))
            .collect();
        println!(
            "{i} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {}",
            if ssh { "ssh" } else { "vib" },
            total.as_secs_f64(),
            completion.as_secs_f64(),
            outside.as_secs_f64(),
            clone.as_secs_f64(),
            summary.soap_round_trips,
            rest.0.load(Ordering::SeqCst),
            ssh_round_trips,
            phases.join(" ")
        );
    }
    println!("calls the lab served for disk 0 (arrival time from the start of the run):");
    for line in &timeline {
        println!("{line}");
    }
    let mean = overheads.iter().sum::<Duration>() / overheads.len() as u32;
    println!(
        "mean overhead of the VIB disks (start to completion report, minus the clone phase): {:.2} s (includes the 2 s injected discovery rescan)",
        mean.as_secs_f64()
    );
}
