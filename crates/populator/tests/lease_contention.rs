//! Host leases against the real kube-apiserver peer (`scripts/peers.sh install kube && scripts/peers.sh
//! start`): the per-host slot limit under contention, explicit release seen at once by waiters,
//! expiry judged without trusting anybody's wall clock, loss of the lease cancelling the work, and
//! the upstream-compatible object names and released state.

use crate::kube_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use co_populator::lease::{HostId, HostLease, HostLeaseConfig, LeaseError, LossCause, lease_name};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use kube_support::ScratchNamespace;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

fn config(namespace: &str, holder: &str, duration_secs: u64, slots: u32) -> HostLeaseConfig {
    HostLeaseConfig {
        namespace: namespace.to_owned(),
        duration: Duration::from_secs(duration_secs),
        slots,
        holder: holder.to_owned(),
        retry_interval: Duration::from_secs(10),
    }
}

fn host() -> HostId {
    HostId::new(format!(
        "hostsystem-host-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ))
    .unwrap()
}

fn spec(lease: &Lease) -> LeaseSpec {
    lease.spec.clone().unwrap_or_default()
}

/// Upstream pods call a lease free when `renewTime + leaseDurationSeconds` is before their clock.
fn expired_for_upstream(lease: &Lease) -> bool {
    let spec = spec(lease);
    match (spec.renew_time, spec.lease_duration_seconds) {
        (Some(MicroTime(renewed)), Some(seconds)) => {
            renewed + jiff::SignedDuration::from_secs(seconds.into()) < jiff::Timestamp::now()
        }
        _ => false,
    }
}

async fn write_foreign_lease(
    api: &Api<Lease>,
    name: &str,
    holder: &str,
    renewed: jiff::Timestamp,
    duration: i32,
) -> Lease {
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(duration),
            acquire_time: Some(MicroTime(renewed)),
            renew_time: Some(MicroTime(renewed)),
            ..Default::default()
        }),
    };
    match api.get_opt(name).await.unwrap() {
        None => api.create(&PostParams::default(), &lease).await.unwrap(),
        Some(existing) => {
            let mut replacement = lease;
            replacement.metadata = existing.metadata;
            api.replace(name, &PostParams::default(), &replacement)
                .await
                .unwrap()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn six_runs_on_one_host_never_hold_more_than_two_slots() {
    let client = kube_support::client().await;
    let ns = ScratchNamespace::new(&client, "lease-six").await;
    let host = host();
    let inside = Arc::new(AtomicUsize::new(0));
    let most_inside = Arc::new(AtomicUsize::new(0));
    let cancel = CancellationToken::new();

    let runs: Vec<_> = (0..6)
        .map(|i| {
            let lease = HostLease::new(
                client.clone(),
                config(&ns.name, &format!("populate-pod-{i}"), 10, 2),
            );
            let (host, inside, most_inside, cancel) = (
                host.clone(),
                inside.clone(),
                most_inside.clone(),
                cancel.clone(),
            );
            tokio::spawn(async move {
                lease
                    .with_slot(&host, &cancel, |token| async move {
                        let now_inside = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most_inside.fetch_max(now_inside, Ordering::SeqCst);
                        // Stands in for the rescan: long enough for the other runs to contend.
                        tokio::time::sleep(Duration::from_millis(400)).await;
                        inside.fetch_sub(1, Ordering::SeqCst);
                        token.is_cancelled()
                    })
                    .await
            })
        })
        .collect();
    for run in runs {
        let cancelled = timeout(Duration::from_secs(90), run)
            .await
            .expect("a run never got a slot")
            .unwrap()
            .unwrap();
        assert!(!cancelled, "work was cancelled while holding its slot");
    }
    assert_eq!(
        most_inside.load(Ordering::SeqCst),
        2,
        "the two slots were not both used, or more were"
    );

    // Both slots exist under the upstream names and are released: no holder, and expired by the
    // upstream rule whatever the observer's clock.
    let api: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let names: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|l| l.metadata.name)
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, vec![lease_name(&host, 0), lease_name(&host, 1)]);
    for name in names {
        let lease = api.get(&name).await.unwrap();
        assert_eq!(spec(&lease).holder_identity, None, "{name} still held");
        assert!(
            expired_for_upstream(&lease),
            "{name} would block upstream pods: {:?}",
            lease.spec
        );
        assert_eq!(spec(&lease).lease_duration_seconds, Some(10));
    }
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_is_seen_at_once_by_a_waiter() {
    let client = kube_support::client().await;
    let ns = ScratchNamespace::new(&client, "lease-release").await;
    let host = host();
    let cancel = CancellationToken::new();
    // A 120 s lease: only an explicit release can explain the waiter getting in within the test.
    let first = HostLease::new(client.clone(), config(&ns.name, "first", 120, 1));
    // Nor can the waiter's fallback timer: only the watch on the slot can wake it in time.
    let waiter = HostLease::new(
        client.clone(),
        HostLeaseConfig {
            retry_interval: Duration::from_secs(120),
            ..config(&ns.name, "waiter", 120, 1)
        },
    );

    let held = first.acquire(&host, &cancel).await.unwrap();
    assert_eq!(held.lease_name(), lease_name(&host, 0));
    let waiting = {
        let (host, cancel) = (host.clone(), cancel.clone());
        tokio::spawn(async move { waiter.acquire(&host, &cancel).await })
    };
    let api: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    assert_eq!(
        spec(&api.get(&lease_name(&host, 0)).await.unwrap())
            .holder_identity
            .as_deref(),
        Some("first")
    );
    // Give the waiter time to find the slot taken and park on its watch. (Had it not got there
    // yet, it would find the slot free after the release: the assertions hold either way; the
    // pause only makes the watch path the one exercised.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiting.is_finished(),
        "the waiter got a slot that was held"
    );
    held.release().await.unwrap();
    let released = api.get(&lease_name(&host, 0)).await.unwrap();
    assert!(
        spec(&released).holder_identity.is_none()
            || spec(&released).holder_identity.as_deref() == Some("waiter")
    );

    let taken = timeout(Duration::from_secs(30), waiting)
        .await
        .expect("waiter did not notice the release")
        .unwrap()
        .unwrap();
    let lease = api.get(taken.lease_name()).await.unwrap();
    assert_eq!(spec(&lease).holder_identity.as_deref(), Some("waiter"));
    taken.release().await.unwrap();
    ns.delete().await;
}

#[tokio::test]
async fn an_abandoned_lease_is_taken_over_after_its_duration_whatever_its_clock_says() {
    let client = kube_support::client().await;
    let ns = ScratchNamespace::new(&client, "lease-stale").await;
    let host = host();
    let api: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    // A dead holder whose clock ran a day ahead: by upstream's rule it stays valid for a day.
    let tomorrow = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
    write_foreign_lease(&api, &lease_name(&host, 0), "dead-pod", tomorrow, 2).await;

    let lease = HostLease::new(client.clone(), config(&ns.name, "survivor", 10, 1));
    let started = Instant::now();
    let held = timeout(
        Duration::from_secs(60),
        lease.acquire(&host, &CancellationToken::new()),
    )
    .await
    .unwrap()
    .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "took over after {waited:?}, before the lease went unrenewed for its 2 s"
    );
    let taken = api.get(held.lease_name()).await.unwrap();
    assert_eq!(spec(&taken).holder_identity.as_deref(), Some("survivor"));
    assert_eq!(spec(&taken).lease_transitions, Some(1));
    held.release().await.unwrap();
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_holder_keeps_its_slot_even_with_a_clock_far_behind() {
    let client = kube_support::client().await;
    let ns = ScratchNamespace::new(&client, "lease-skew").await;
    let host = host();
    let api: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let name = lease_name(&host, 0);
    // A live holder whose clock is stuck in 1970: upstream would call its lease expired at once.
    write_foreign_lease(&api, &name, "skewed-pod", jiff::Timestamp::UNIX_EPOCH, 2).await;
    let stop_renewing = CancellationToken::new();
    let renewer = {
        let (api, name, stop) = (api.clone(), name.clone(), stop_renewing.clone());
        tokio::spawn(async move {
            let mut tick = 0i64;
            while !stop.is_cancelled() {
                tick += 1;
                let renewed = jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(tick);
                write_foreign_lease(&api, &name, "skewed-pod", renewed, 2).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    let lease = HostLease::new(client.clone(), config(&ns.name, "contender", 10, 1));
    let give_up = CancellationToken::new();
    let contender = {
        let (lease, host, give_up) = (lease.clone(), host.clone(), give_up.clone());
        tokio::spawn(async move { lease.acquire(&host, &give_up).await })
    };
    // Three lease durations of a live holder renewing: the contender must still be waiting.
    tokio::time::sleep(Duration::from_secs(6)).await;
    give_up.cancel();
    let outcome = timeout(Duration::from_secs(10), contender)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(outcome, Err(LeaseError::Cancelled { .. })),
        "took a live holder's slot: {:?}",
        outcome.map(|h| h.slot())
    );

    // Once the holder stops renewing, the slot is taken over.
    stop_renewing.cancel();
    renewer.await.unwrap();
    let held = timeout(
        Duration::from_secs(60),
        lease.acquire(&host, &CancellationToken::new()),
    )
    .await
    .unwrap()
    .unwrap();
    held.release().await.unwrap();
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_lease_cancels_the_work_under_it() {
    let client = kube_support::client().await;
    let ns = ScratchNamespace::new(&client, "lease-lost").await;
    let host = host();
    let api: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let lease = HostLease::new(client.clone(), config(&ns.name, "victim", 3, 1));

    let result = lease
        .with_slot(&host, &CancellationToken::new(), |token| {
            let (api, name) = (api.clone(), lease_name(&host, 0));
            async move {
                // Another pod takes the slot over (e.g. it judged us dead).
                write_foreign_lease(&api, &name, "thief", jiff::Timestamp::now(), 3).await;
                timeout(Duration::from_secs(30), token.cancelled())
                    .await
                    .is_ok()
            }
        })
        .await;
    match result {
        Err(LeaseError::Lost {
            cause: LossCause::TakenOver { by },
            ..
        }) => assert_eq!(by.as_deref(), Some("thief")),
        other => panic!("expected the lease to be lost to the thief, got {other:?}"),
    }
    // Our release must not clear the thief's lease.
    let current = api.get(&lease_name(&host, 0)).await.unwrap();
    assert_eq!(spec(&current).holder_identity.as_deref(), Some("thief"));
    ns.delete().await;
}

#[tokio::test]
async fn a_dropped_guard_still_frees_its_slot() {
    let client = kube_support::client().await;
    let ns = ScratchNamespace::new(&client, "lease-drop").await;
    let host = host();
    let api: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let lease = HostLease::new(client.clone(), config(&ns.name, "dropper", 60, 2));
    let held = lease
        .acquire(&host, &CancellationToken::new())
        .await
        .unwrap();
    let token = held.work_token();
    let name = held.lease_name().to_owned();
    drop(held);
    assert!(token.is_cancelled());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lease = api.get(&name).await.unwrap();
        if spec(&lease).holder_identity.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dropped lease never released: {:?}",
            lease.spec
        );
        tokio::task::yield_now().await;
    }
    ns.delete().await;
}

#[tokio::test]
async fn processes_with_the_same_identity_still_exclude_each_other() {
    let client = kube_support::client().await;
    let ns = ScratchNamespace::new(&client, "lease-same").await;
    let host = host();
    let one = HostLease::new(client.clone(), config(&ns.name, "populate-same", 60, 1));
    let two = HostLease::new(client.clone(), config(&ns.name, "populate-same", 60, 1));
    let held = one.acquire(&host, &CancellationToken::new()).await.unwrap();
    let give_up = CancellationToken::new();
    let canceller = {
        let give_up = give_up.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            give_up.cancel();
        })
    };
    let outcome = two.acquire(&host, &give_up).await;
    assert!(
        matches!(outcome, Err(LeaseError::Cancelled { .. })),
        "second process got the only slot"
    );
    canceller.await.unwrap();
    held.release().await.unwrap();
    ns.delete().await;
}

#[tokio::test]
async fn a_missing_lease_namespace_fails_fast_with_the_namespace_named() {
    let client: Client = kube_support::client().await;
    let lease = HostLease::new(client, config("no-such-namespace-for-leases", "p", 10, 2));
    let err = timeout(
        Duration::from_secs(30),
        lease.acquire(&host(), &CancellationToken::new()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(err, LeaseError::Refused { .. }), "{err}");
    assert!(
        err.to_string().contains("no-such-namespace-for-leases"),
        "{err}"
    );
    assert!(err.to_string().contains("HOST_LEASE_NAMESPACE"), "{err}");
}
