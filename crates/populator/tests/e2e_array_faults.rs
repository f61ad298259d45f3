//! The array misbehaving, for every vendor, end to end through the lab rig (the faults are the
//! lab's, injected in front of the vendor's REST facade): the session expiring mid-run, the array
//! busy for a while and then for good, the array unreachable, credentials refused. Each run ends
//! with the exit class the pod contract promises and a message that names what to fix, and the
//! array and hosts are left as found — at once, or after the re-run the class asks for.

use crate::e2e_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use co_api::contract::flags;
use co_lab::faults::FaultRule;
use co_lab::scenario::VendorSpec;
use co_populator::ExitCode;
use co_populator::Phase;
use co_populator::{RunOptions, RunSummary, run_with};
use co_testpeers::vendor_matrix::{Cell, record};
use e2e_support::{LabRig, MIB, VENDORS, scenario_for};

/// Every request to the rig's array fails with `error` (`times` times, or for good), from the
/// moment the run starts mapping — after login, mid-run.
fn fail_array_from_map(rig: &LabRig, options: &mut RunOptions, error: &str, times: Option<u32>) {
    let faults = rig.lab.faults.clone();
    let rule = FaultRule {
        site: format!("array:{}:*", rig.rig().array.name),
        latency_ms: 0,
        error: Some(error.to_owned()),
        times,
    };
    options.observer = Some(Arc::new(move |entered| {
        if entered == Phase::Map {
            faults.add(rule.clone());
        }
    }));
}

/// Every counted fault was served: the run really met them.
fn assert_faults_served(rig: &LabRig, vendor: VendorSpec) {
    for rule in rig.lab.faults.rules() {
        assert!(
            matches!(rule.times, None | Some(0)),
            "{vendor:?}: the run never met {rule:?}"
        );
    }
    assert!(
        !rig.lab.faults.rules().is_empty(),
        "{vendor:?}: the run never reached the map phase"
    );
}

fn message(summary: &RunSummary) -> String {
    summary
        .error
        .as_ref()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default()
}

async fn rerun_copies(rig: &LabRig, name: &str, vendor: VendorSpec) {
    let rerun = run_with(rig.config(&rig.args(name)), rig.options(name)).await;
    assert_eq!(
        rerun.exit_code,
        ExitCode::Success,
        "{vendor:?}: re-run of {name}: {:?}",
        rerun.error
    );
    rig.assert_copied(name);
    rig.assert_clean(name);
}

async fn session_expired_mid_run(vendor: VendorSpec) {
    let rig = LabRig::start_with(scenario_for(vendor)).await;
    rig.target_volume("pvc_expired", 64 * MIB);
    let mut options = rig.options("pvc_expired");
    fail_array_from_map(&rig, &mut options, "401 session expired", Some(1));
    let summary = run_with(rig.config(&rig.args("pvc_expired")), options).await;
    assert_faults_served(&rig, vendor);
    if rig.rig().facade().has_sessions() {
        // One new login, and the request is sent again.
        assert_eq!(
            summary.exit_code,
            ExitCode::Success,
            "{vendor:?}: {:?}",
            summary.error
        );
        rig.assert_copied("pvc_expired");
        rig.assert_clean("pvc_expired");
    } else {
        // Credentials on every request: a 401 means they were refused; cleanup still runs.
        rig.lab.faults.clear();
        assert_eq!(
            summary.exit_code,
            ExitCode::Permanent,
            "{vendor:?}: {:?}",
            summary.error
        );
        rig.assert_clean("pvc_expired");
        rerun_copies(&rig, "pvc_expired", vendor).await;
    }
    record(rig.rig().facade().product(), Cell::FaultSessionExpired);
}

async fn busy_array_is_retried_then_given_up_on(vendor: VendorSpec) {
    let rig = LabRig::start_with(scenario_for(vendor)).await;

    // Busy for a moment: retried, and the copy goes through.
    for (name, busy) in [
        ("pvc_429", "429 too many requests"),
        ("pvc_503", "503 busy"),
    ] {
        rig.target_volume(name, 64 * MIB);
        let mut options = rig.options(name);
        fail_array_from_map(&rig, &mut options, busy, Some(2));
        let summary = run_with(rig.config(&rig.args(name)), options).await;
        assert_faults_served(&rig, vendor);
        assert_eq!(
            summary.exit_code,
            ExitCode::Success,
            "{vendor:?} {busy}: {:?}",
            summary.error
        );
        rig.assert_copied(name);
        rig.assert_clean(name);
        rig.lab.faults.clear();
    }

    // Busy for good: a bounded number of attempts, then a retryable failure; the re-run the
    // controller makes once the array answers again undoes what was left and copies.
    rig.target_volume("pvc_busy", 64 * MIB);
    let mut options = rig.options("pvc_busy");
    fail_array_from_map(&rig, &mut options, "503 busy", None);
    let summary = run_with(rig.config(&rig.args("pvc_busy")), options).await;
    assert_faults_served(&rig, vendor);
    assert_eq!(
        summary.exit_code,
        ExitCode::Retryable,
        "{vendor:?}: {:?}",
        summary.error
    );
    rig.lab.faults.clear();
    rerun_copies(&rig, "pvc_busy", vendor).await;
    record(rig.rig().facade().product(), Cell::FaultBusy);
}

async fn unreachable_array_fails_fast(vendor: VendorSpec) {
    let rig = LabRig::start_with(scenario_for(vendor)).await;
    rig.target_volume("pvc_unreachable", 64 * MIB);
    let refusing = co_testpeers::RefusingPort::bind();
    let port = refusing.port();
    let address = format!("https://127.0.0.1:{port}");
    let args = rig.args_with("pvc_unreachable", |list| {
        for (flag, value) in list.iter_mut() {
            if *flag == flags::STORAGE_HOSTNAME {
                value.clone_from(&address);
            } else if *flag == flags::VANTARA_STORAGE_PORT {
                *value = port.to_string();
            }
        }
    });
    let started = Instant::now();
    let summary = run_with(rig.config(&args), rig.options("pvc_unreachable")).await;
    let elapsed = started.elapsed();
    assert_eq!(
        summary.exit_code,
        ExitCode::Retryable,
        "{vendor:?}: {:?}",
        summary.error
    );
    let message = message(&summary);
    assert!(
        message.contains("STORAGE_HOSTNAME"),
        "{vendor:?}: names the key to check: {message}"
    );
    // Fast: a refused connection is not waited out like a timeout.
    assert!(elapsed < Duration::from_secs(30), "{vendor:?}: {elapsed:?}");
    rig.assert_clean("pvc_unreachable");
    rig.assert_untouched("pvc_unreachable");
    record(rig.rig().facade().product(), Cell::FaultUnreachable);
}

async fn wrong_credentials_name_the_key(vendor: VendorSpec) {
    let rig = LabRig::start_with(scenario_for(vendor)).await;
    rig.target_volume("pvc_credentials", 64 * MIB);
    let mut changed = Vec::new();
    let args = rig.args_with("pvc_credentials", |list| {
        for (flag, value) in list.iter_mut() {
            if *flag == flags::STORAGE_PASSWORD || *flag == flags::STORAGE_TOKEN {
                *value = format!("not-{value}");
                changed.extend(flag.env);
            }
        }
    });
    let summary = run_with(rig.config(&args), rig.options("pvc_credentials")).await;
    assert_eq!(
        summary.exit_code,
        ExitCode::Permanent,
        "{vendor:?}: {:?}",
        summary.error
    );
    let message = message(&summary);
    assert!(
        changed.iter().any(|key| message.contains(key)),
        "{vendor:?}: names one of {changed:?}: {message}"
    );
    rig.assert_clean("pvc_credentials");
    rig.assert_untouched("pvc_credentials");
    record(rig.rig().facade().product(), Cell::FaultWrongCredentials);
}

/// One test per vendor and fault, so they run side by side.
macro_rules! array_faults {
    ($($module:ident => $vendor:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_session_expiring_mid_run() {
                session_expired_mid_run($vendor).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_busy_array_is_retried_then_given_up_on() {
                busy_array_is_retried_then_given_up_on($vendor).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_unreachable_array_fails_fast() {
                unreachable_array_fails_fast($vendor).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn wrong_credentials_name_the_key_to_fix() {
                wrong_credentials_name_the_key($vendor).await;
            }
        }
    )*};
}

array_faults! {
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

/// A vendor added to the end-to-end list gets its fault tests here too.
#[test]
fn every_vendor_of_the_end_to_end_list_is_faulted_here() {
    let source = include_str!("e2e_array_faults.rs");
    for vendor in VENDORS {
        assert!(
            source.contains(&format!("=> VendorSpec::{vendor:?},")),
            "add `{vendor:?}` to array_faults!"
        );
    }
}
