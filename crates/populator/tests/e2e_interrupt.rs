//! Interruptions against the lab, for every vendor: SIGTERM (the run's cancellation token, as the
//! signal handler cancels it) in each phase aborts and cleans everything; SIGKILL (the run dropped
//! mid-phase, nothing more runs) leaves a journal from which the re-run undoes the leftovers —
//! including a clone still running on the host — and then copies correctly. Never two clones on
//! one LUN, and the array holds nothing afterwards that it did not hold before. The real binary
//! killed with `kill -9` is covered by `crates/cli/tests/populate_sigkill.rs`. An RDM disk copied
//! by the array (Vantara's Thin Image clone pair) is interrupted while the pair copies: SIGTERM
//! ends the pair at cleanup, SIGKILL leaves it to the re-run, and no pair remains either way.

use crate::e2e_support;

use std::sync::Arc;
use std::time::Duration;

use co_lab::scenario::VendorSpec;
use co_populator::ExitCode;
use co_populator::Phase;
use co_populator::run_with;
use co_testpeers::eventually;
use co_testpeers::vendor_matrix::{Cell, record};
use e2e_support::{LabRig, MIB, VENDORS, scenario_for};
use tokio::sync::mpsc;

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
            let running = || std::future::ready((!host.task_ids().is_empty()).then_some(()));
            eventually(
                Duration::from_secs(10),
                "the clone task on the host",
                running,
            )
            .await;
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

/// Sees the storage requests of a run; `polled` fires once the plugin polls a pair it created.
struct PairPolls {
    created: std::sync::atomic::AtomicBool,
    polled: tokio::sync::watch::Sender<bool>,
    group_deletes: std::sync::Mutex<Vec<Option<u16>>>,
}

impl co_storage::http::RequestObserver for PairPolls {
    fn observe(&self, request: &co_storage::http::ObservedRequest) {
        use std::sync::atomic::Ordering;
        if request.method == reqwest::Method::POST
            && request.path.ends_with("/objects/snapshots")
            && request.status == Some(202)
        {
            self.created.store(true, Ordering::SeqCst);
        }
        if self.created.load(Ordering::SeqCst)
            && request.method == reqwest::Method::GET
            && request.path.ends_with("/objects/snapshots")
            && request.query.iter().any(|(k, _)| k == "svolLdevId")
        {
            self.polled.send_replace(true);
        }
        if request.method == reqwest::Method::DELETE
            && request.path.contains("/objects/snapshot-groups/")
        {
            self.group_deletes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(request.status);
        }
    }
}

/// The Thin Image pairs on the lab array whose S-VOL is the LDEV of `handle`, read over the
/// array's REST API.
async fn pairs_onto(rig: &LabRig, handle: &str) -> serde_json::Value {
    let ldev = handle.split("--").nth(3).expect("a Hitachi CSI handle");
    let array = &rig.lab.arrays[0];
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(rig.lab.certificate_pem.as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let answer = http
        .get(format!(
            "{}/ConfigurationManager/v1/objects/snapshots?svolLdevId={ldev}",
            array.url.trim_end_matches('/')
        ))
        .basic_auth(&array.username, Some(&array.password))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{answer:?}");
    answer.json::<serde_json::Value>().await.unwrap()["data"].clone()
}

/// An RDM disk the array copies, interrupted while the copy pair copies: SIGTERM (cleanup ends
/// the pair) and SIGKILL (the re-run ends the journaled pair), each followed by a re-run that
/// copies the RDM's bytes and leaves no pair.
async fn interrupted_while_the_array_copies(vendor: VendorSpec) {
    let mut scenario = scenario_for(vendor);
    let array = scenario.arrays[0].name.clone();
    scenario.vms[0].disks[0].rdm_array = Some(array.clone());
    let size = scenario.vms[0].disks[0].size_mib * MIB;
    let rig = LabRig::start_with(scenario).await;
    let source = rig.lab.san.volume(&array, "rdm-vm-1-0").unwrap();
    let bytes = std::fs::read(source.backing_path).unwrap();
    for kill in [false, true] {
        let name = if kill { "pvc_rdm_kill" } else { "pvc_rdm_term" };
        rig.target_volume(name, size);
        let config = rig.config(&rig.args(name));
        let mut options = rig.options(name);
        let (polled, mut polling) = tokio::sync::watch::channel(false);
        let observer = Arc::new(PairPolls {
            created: Default::default(),
            polled,
            group_deletes: Default::default(),
        });
        options.storage_observer = Some(observer.clone());
        let cancel = options.cancel.clone();
        let run = tokio::spawn(run_with(config.clone(), options));
        polling.wait_for(|p| *p).await.unwrap();
        if kill {
            run.abort();
            assert!(run.await.unwrap_err().is_cancelled(), "{vendor:?}: killed");
            let left = pairs_onto(&rig, &rig.target(name).volume_handle).await;
            assert_eq!(
                left.as_array().map(Vec::len),
                Some(1),
                "killed mid-copy: {left}"
            );
            // The rig's end-of-run check sees the pair too, not only what the SAN model shares.
            let seen = rig.rig().leftovers(&[]);
            assert!(
                seen.iter().any(|l| l.starts_with("Thin Image pair")),
                "the rig misses the pair left by the kill: {seen:?}"
            );
        } else {
            cancel.cancel();
            let summary = run.await.unwrap();
            assert_eq!(
                summary.exit_code,
                ExitCode::Cancelled,
                "{vendor:?}: SIGTERM while the array copies: {:?}",
                summary.error
            );
            let deletes = observer.group_deletes.lock().unwrap().clone();
            assert_eq!(deletes, [Some(202)], "cleanup deleted the pair's group");
            let left = pairs_onto(&rig, &rig.target(name).volume_handle).await;
            assert_eq!(left, serde_json::json!([]), "after SIGTERM");
        }

        let rerun = run_with(config, rig.options(name)).await;
        assert_eq!(
            rerun.exit_code,
            ExitCode::Success,
            "{vendor:?}: re-run after kill={kill}: {:?}",
            rerun.error
        );
        rig.assert_copied_from(&bytes, name);
        let left = pairs_onto(&rig, &rig.target(name).volume_handle).await;
        assert_eq!(
            left,
            serde_json::json!([]),
            "after the re-run (kill={kill})"
        );
        let left = rig.rig().leftovers(&[&rig.target(name)]);
        assert!(left.is_empty(), "{vendor:?}: left behind: {left:?}");
    }
}

/// Vendors whose RDM copy runs as a pair on the array long enough to be interrupted.
mod array_copy_pairs {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn vantara_clone_pair_interrupted_then_rerun() {
        interrupted_while_the_array_copies(VendorSpec::Vantara).await;
    }
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
