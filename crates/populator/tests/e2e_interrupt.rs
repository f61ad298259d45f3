//! Interruptions against the lab, for every vendor: SIGTERM (the run's cancellation token, as the
//! signal handler cancels it) in each phase aborts and cleans everything; SIGKILL (the run dropped
//! mid-phase, nothing more runs) leaves a journal from which the re-run undoes the leftovers —
//! including a clone still running on the host — and then copies correctly. Never two clones on
//! one LUN, and the array holds nothing afterwards that it did not hold before. The real binary
//! killed with `kill -9` is covered by `crates/cli/tests/populate_sigkill.rs`.

mod e2e_support;

use std::sync::Arc;
use std::time::Duration;

use co_lab::scenario::VendorSpec;
use co_populator::ExitCode;
use co_populator::Phase;
use co_populator::run_with;
use co_testpeers::vendor_matrix::{Cell, record};
use e2e_support::{LabRig, MIB, VENDORS, scenario_for};
use tokio::sync::mpsc;
use tokio::time::Instant;

const PHASES: [Phase; 6] = [
    Phase::Resolve,
    Phase::Plan,
    Phase::Map,
    Phase::Discover,
    Phase::Verify,
    Phase::Clone,
];

async fn sigterm_in_each_phase_cleans_up_and_the_rerun_copies(vendor: VendorSpec) {
    let rig = LabRig::start_with(scenario_for(vendor)).await;
    for phase in PHASES {
        let flexvol = format!("trident_pvc_term_{}", phase.as_str());
        rig.target_volume(&flexvol, 64 * MIB);
        let config = rig.config(&rig.args(&flexvol));
        let mut options = rig.options(&flexvol);
        let cancel = options.cancel.clone();
        options.observer = Some(Arc::new(move |entered| {
            if entered == phase {
                cancel.cancel();
            }
        }));
        let summary = run_with(config.clone(), options).await;
        assert_eq!(
            summary.exit_code,
            ExitCode::Cancelled,
            "{vendor:?}: SIGTERM in {phase:?}: {:?}",
            summary.error
        );
        rig.assert_clean(&flexvol);
        if phase != Phase::Clone {
            rig.assert_untouched(&flexvol);
        }

        let rerun = run_with(config, rig.options(&flexvol)).await;
        assert_eq!(
            rerun.exit_code,
            ExitCode::Success,
            "{vendor:?}: re-run after {phase:?}: {:?}",
            rerun.error
        );
        rig.assert_copied(&flexvol);
        rig.assert_clean(&flexvol);
    }
    record(rig.rig().facade().product(), Cell::FaultSigterm);
}

async fn sigkill_in_each_phase_is_undone_by_the_rerun(vendor: VendorSpec) {
    let rig = LabRig::start_with(scenario_for(vendor)).await;
    let host = rig.lab.hosts[0].sim.clone();
    for phase in [Phase::Map, Phase::Discover, Phase::Verify, Phase::Clone] {
        let flexvol = format!("trident_pvc_kill_{}", phase.as_str());
        rig.target_volume(&flexvol, 64 * MIB);
        let config = rig.config(&rig.args(&flexvol));
        let mut options = rig.options(&flexvol);
        if phase == Phase::Clone {
            // Keep the clone running long enough to be killed mid-copy.
            rig.lab.faults.add(co_lab::faults::FaultRule {
                site: "esxcli:vmkfstools taskGet".into(),
                latency_ms: 300,
                error: None,
                times: None,
            });
        }
        let (phases, mut entered) = mpsc::unbounded_channel();
        options.observer = Some(Arc::new(move |p| {
            let _ = phases.send(p);
        }));
        let run = tokio::spawn(run_with(config.clone(), options));
        loop {
            let p = entered.recv().await.expect("run reached the phase");
            if p == phase {
                break;
            }
        }
        if phase == Phase::Clone {
            let deadline = Instant::now() + Duration::from_secs(10);
            while host.task_ids().is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(!host.task_ids().is_empty(), "the clone task is running");
        }
        run.abort();
        assert!(
            run.await.unwrap_err().is_cancelled(),
            "{vendor:?}: killed in {phase:?}"
        );
        rig.lab.faults.clear();

        let rerun = run_with(config, rig.options(&flexvol)).await;
        assert_eq!(
            rerun.exit_code,
            ExitCode::Success,
            "{vendor:?}: re-run after SIGKILL in {phase:?}: {:?}",
            rerun.error
        );
        rig.assert_copied(&flexvol);
        rig.assert_clean(&flexvol);
    }
    record(rig.rig().facade().product(), Cell::FaultSigkill);
}

/// One test per vendor and kind of interruption, so the vendors run side by side.
macro_rules! interrupted_in_each_phase {
    ($($module:ident => $vendor:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sigterm_in_each_phase_cleans_up_and_the_rerun_copies() {
                super::sigterm_in_each_phase_cleans_up_and_the_rerun_copies($vendor).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sigkill_in_each_phase_is_undone_by_the_rerun() {
                super::sigkill_in_each_phase_is_undone_by_the_rerun($vendor).await;
            }
        }
    )*};
}

interrupted_in_each_phase! {
    ontap => VendorSpec::Ontap,
    pure_flash_array => VendorSpec::PureFlashArray,
    powerstore => VendorSpec::PowerStore,
    flashsystem => VendorSpec::FlashSystem,
    powermax => VendorSpec::PowerMax,
    infinibox => VendorSpec::InfiniBox,
    primera3par => VendorSpec::Primera3Par,
    vantara => VendorSpec::Vantara,
    powerflex => VendorSpec::PowerFlex,
}

/// A vendor added to the end-to-end list gets its interruption tests here too.
#[test]
fn every_vendor_of_the_end_to_end_list_is_interrupted_here() {
    let source = include_str!("e2e_interrupt.rs");
    for vendor in VENDORS {
        assert!(
            source.contains(&format!("=> VendorSpec::{vendor:?},")),
            "add `{vendor:?}` to interrupted_in_each_phase!"
        );
    }
}
