//! Six copies from one ESXi host at once, coordinated through host leases on the real
//! kube-apiserver peer (`scripts/peers.sh start`): never more than two of them rescan at the same
//! time — the discovery rescans and the rescan-deletes after unmapping alike — every copy succeeds
//! with the right bytes, and every lease is released at the end.

use crate::e2e_support;
use crate::kube_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use co_populator::ExitCode;
use co_populator::Phase;
use co_populator::run_with;
use e2e_support::{LabRig, MIB};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::ListParams;
use kube_support::ScratchNamespace;

const RUNS: usize = 6;
const RESCAN: &str = "esxcli:storage core adapter rescan";
const RESCAN_LATENCY: std::time::Duration = std::time::Duration::from_millis(200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_copies_on_one_host_rescan_at_most_two_at_a_time_and_release_their_leases() {
    let client = kube_support::client().await;
    let namespace = ScratchNamespace::new(&client, "engine-lease").await;
    let rig = LabRig::start().await;
    // Rescans take a while, as on a real host, so overlapping ones would be seen.
    rig.lab.faults.add(co_lab::faults::FaultRule {
        site: RESCAN.into(),
        latency_ms: RESCAN_LATENCY.as_millis() as u64,
        error: None,
        times: None,
    });
    rig.lab.faults.record_calls();
    let discovering = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut runs = Vec::new();
    for i in 0..RUNS {
        let flexvol = format!("trident_pvc_lease_{i}");
        rig.target_volume(&flexvol, 64 * MIB);
        let mut args = rig.args(&flexvol);
        args.host_lease_namespace = Some(namespace.name.clone());
        let mut options = rig.options(&flexvol);
        options.kube_client = Some(client.clone());
        let (discovering, most) = (discovering.clone(), most.clone());
        let inside = AtomicBool::new(false);
        options.observer = Some(Arc::new(move |phase| {
            if phase == Phase::Discover {
                inside.store(true, Ordering::SeqCst);
                let now = discovering.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
            } else if inside.swap(false, Ordering::SeqCst) {
                discovering.fetch_sub(1, Ordering::SeqCst);
            }
        }));
        runs.push((flexvol, tokio::spawn(run_with(rig.config(&args), options))));
    }
    for (flexvol, run) in runs {
        let summary = run.await.unwrap();
        assert_eq!(
            summary.exit_code,
            ExitCode::Success,
            "{flexvol}: {:?}",
            summary.error
        );
        rig.assert_copied(&flexvol);
    }
    let most = most.load(Ordering::SeqCst);
    println!("at most {most} of {RUNS} copies discovered at the same time");
    assert!((1..=2).contains(&most), "{most} discoveries at once");
    // A rescan is in flight for at least its injected latency after it arrives, so the rescans
    // that arrived within that much before another one were still running when it arrived.
    let rescans: Vec<_> = rig
        .lab
        .faults
        .take_calls()
        .into_iter()
        .filter(|c| c.site == RESCAN)
        .map(|c| c.at)
        .collect();
    // A rescan-delete per copy; a discovery may find its device already visible through another
    // copy's rescan and skip its own.
    assert!(
        (RUNS + 1..=2 * RUNS).contains(&rescans.len()),
        "{} rescans",
        rescans.len()
    );
    let in_flight = rescans
        .iter()
        .map(|&at| {
            rescans
                .iter()
                .filter(|&&other| other <= at && at.duration_since(other) < RESCAN_LATENCY)
                .count()
        })
        .max()
        .unwrap_or(0);
    println!("at most {in_flight} rescans in flight at once");
    assert!(in_flight <= 2, "{in_flight} rescans on one host at once");
    rig.assert_clean("trident_pvc_lease_0");

    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace.name);
    let list = leases.list(&ListParams::default()).await.unwrap();
    let names: Vec<String> = list
        .items
        .iter()
        .filter_map(|l| l.metadata.name.clone())
        .collect();
    assert!(!names.is_empty(), "leases were used");
    for lease in &list.items {
        assert!(
            lease
                .metadata
                .name
                .as_deref()
                .unwrap_or_default()
                .starts_with("esxi-lock-hostsystem-host-"),
            "{:?}",
            lease.metadata.name
        );
        assert_eq!(
            lease.spec.as_ref().and_then(|s| s.holder_identity.clone()),
            None,
            "{:?} still held",
            lease.metadata.name
        );
    }
    namespace.delete().await;
}
