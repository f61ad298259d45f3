//! Benchmark (run on demand, prints figures, asserts only correctness): time from creating 200
//! PVCs to 200 populator pods, and the controller's peak RSS, with the real `copy-offload
//! controller` process against the real API server. The CSI provisioner is played, as in a
//! cluster (the controller does not wait for it: a populator waits for its volume itself); no
//! kubelet: the pods stay Pending. The time is split into what the controller owns — from a user
//! PVC seen created to its pod seen created — and the test's own creates; when the provisioner and
//! the PV controller had bound the last prime PVC is printed for comparison.
//!
//! ```text
//! cargo build -p copy-offload
//! cargo test -p co-controller --test suite bench_fanout:: -- --ignored --nocapture
//! ```

use crate::cluster;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, ServiceAccount};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

const PVCS: usize = 200;

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

type FirstSeen = Arc<Mutex<HashMap<String, Instant>>>;

/// Watches `api` in a task of its own and records when each object `key` names (`None`: not yet)
/// was first seen; the receiver counts them.
fn first_seen<K>(
    api: Api<K>,
    key: impl Fn(&K) -> Option<String> + Send + 'static,
) -> (
    tokio::task::JoinHandle<()>,
    FirstSeen,
    watch::Receiver<usize>,
)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let seen: FirstSeen = Arc::default();
    let (count, counted) = watch::channel(0);
    let task = tokio::spawn({
        let seen = Arc::clone(&seen);
        async move {
            let mut objects =
                std::pin::pin!(watcher::watcher(api, watcher::Config::default()).applied_objects());
            while let Ok(Some(object)) = objects.try_next().await {
                if let Some(name) = key(&object) {
                    let mut seen = seen.lock().unwrap();
                    seen.entry(name).or_insert_with(Instant::now);
                    count.send_replace(seen.len());
                }
            }
        }
    });
    (task, seen, counted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn two_hundred_pvcs_to_two_hundred_pods() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = cluster::client().await;
    cluster::ensure_crd(&client).await;
    let namespace = format!(
        "ctl-bench-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    };
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: meta(&namespace),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // The CSI provisioner is played (a LUN on the lab array and a PV per prime PVC), as a cluster
    // has one working alongside; no kubelet, so the pods stay Pending.
    co_lab::cluster::ensure_node(&client, cluster::NODE)
        .await
        .unwrap();
    co_lab::cluster::create_storage_class(&client, &format!("san-{namespace}"), "Immediate")
        .await
        .unwrap();
    let lab_dir = tempfile::tempdir().unwrap();
    let lab = std::sync::Arc::new(
        co_lab::lab::Lab::start(
            co_lab::scenario::Scenario::default_embedded(),
            lab_dir.path(),
        )
        .await
        .unwrap(),
    );
    co_lab::cluster::create_worker_group(&lab, cluster::ARRAY).unwrap();
    let provisioner = tokio::spawn(co_lab::cluster::csi_provisioner(
        client.clone(),
        co_lab::cluster::Players {
            namespace: namespace.clone(),
            array: cluster::ARRAY.into(),
            worker_group: cluster::WORKER_GROUP.into(),
            node: cluster::NODE.into(),
            binary: cluster::binary(),
            kubeconfig: co_testpeers::kubeconfig_path(),
        },
        lab.clone(),
    ));
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta("populator"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut controller = tokio::process::Command::new(cluster::binary())
        .args([
            "controller",
            "--http-endpoint=127.0.0.1:0",
            "--max-populator-inflight=0",
        ])
        .arg(format!("--watch-namespace={namespace}"))
        .env("KUBECONFIG", co_testpeers::kubeconfig_path())
        .env("VSPHERE_XCOPY_VOLUME_POPULATOR_IMAGE", cluster::IMAGE)
        // `BENCH_CONTROLLER_LOG=co_controller=debug` shows each reconcile's decision.
        .env(
            "RUST_LOG",
            std::env::var("BENCH_CONTROLLER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = controller.id().unwrap();
    let crs: Api<co_api::VSphereXcopyVolumePopulator> = Api::namespaced(client.clone(), &namespace);
    let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    // When each user PVC was first seen (what the controller reacts to), each prime PVC first seen
    // bound to a PV, and each pod first seen, by the user PVC's UID (the prime PVC's and the
    // pod's names carry it). Watched by tasks of their own, so a timestamp is not delayed by the
    // creates.
    let (claim_watch, claimed_at, _) = first_seen(
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace),
        |claim| {
            let name = claim.metadata.name.as_deref()?;
            if name.starts_with("prime-") {
                return None;
            }
            claim.metadata.uid.clone()
        },
    );
    let (bound_watch, bound_at, mut bound_seen) = first_seen(
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace),
        |claim| {
            claim.spec.as_ref()?.volume_name.as_ref()?;
            claim
                .metadata
                .name
                .as_deref()?
                .strip_prefix("prime-")
                .map(str::to_owned)
        },
    );
    let (pod_watch, pods_at, mut pods_seen) = first_seen(pods, |pod: &Pod| {
        pod.metadata
            .name
            .as_deref()?
            .strip_prefix("populate-")
            .map(str::to_owned)
    });

    // Created by eight clients at once, as a plan's disks are.
    let start = Instant::now();
    futures::stream::iter(0..PVCS)
        .for_each_concurrent(8, |i| {
            let (crs, pvcs, namespace) = (crs.clone(), pvcs.clone(), namespace.clone());
            async move {
                let mut cr = co_api::VSphereXcopyVolumePopulator::new(
                    &format!("disk-{i}"),
                    co_api::VSphereXcopyVolumePopulatorSpec {
                        vmdk_path: cluster::SOURCE_VMDK.into(),
                        secret_name: Some(cluster::SECRET.into()),
                        storage_vendor_product: "ontap".into(),
                        ..Default::default()
                    },
                );
                cr.metadata.namespace = Some(namespace.clone());
                crs.create(&PostParams::default(), &cr).await.unwrap();
                let pvc = k8s_openapi::api::core::v1::PersistentVolumeClaim {
                    metadata: meta(&format!("disk-{i}")),
                    spec: Some(k8s_openapi::api::core::v1::PersistentVolumeClaimSpec {
                        access_modes: Some(vec!["ReadWriteOnce".into()]),
                        storage_class_name: Some(format!("san-{namespace}")),
                        resources: Some(k8s_openapi::api::core::v1::VolumeResourceRequirements {
                            requests: Some(
                                [(
                                    "storage".to_owned(),
                                    k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                                        "1Gi".into(),
                                    ),
                                )]
                                .into(),
                            ),
                            ..Default::default()
                        }),
                        data_source: Some(k8s_openapi::api::core::v1::TypedLocalObjectReference {
                            api_group: Some(co_api::GROUP.into()),
                            kind: "VSphereXcopyVolumePopulator".into(),
                            name: format!("disk-{i}"),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                pvcs.create(&PostParams::default(), &pvc).await.unwrap();
            }
        })
        .await;
    let created = start.elapsed();
    tokio::time::timeout(
        Duration::from_secs(300),
        pods_seen.wait_for(|seen| *seen >= PVCS),
    )
    .await
    .expect("200 pods within 300 s")
    .unwrap();
    let all_pods = start.elapsed();
    // The binding goes on after the pods exist; wait for it so its figure is complete.
    tokio::time::timeout(
        Duration::from_secs(300),
        bound_seen.wait_for(|seen| *seen >= PVCS),
    )
    .await
    .expect("200 prime PVCs bound within 300 s")
    .unwrap();
    // Peak memory over the whole fan-out, binding included.
    let rss = peak_rss_kib(pid);
    claim_watch.abort();
    bound_watch.abort();
    pod_watch.abort();
    let claimed_at = claimed_at.lock().unwrap().clone();
    let bound_at = bound_at.lock().unwrap().clone();
    let mut controller_latency: Vec<Duration> = pods_at
        .lock()
        .unwrap()
        .iter()
        .map(|(uid, created)| {
            let claimed = claimed_at
                .get(uid)
                .unwrap_or_else(|| panic!("pod of {uid} without its PVC seen"));
            created.saturating_duration_since(*claimed)
        })
        .collect();
    controller_latency.sort();
    let last_bound = bound_at.values().max().unwrap().duration_since(start);
    let percentile = |p: usize| controller_latency[(controller_latency.len() - 1) * p / 100];
    println!(
        "{PVCS} CRs + PVCs created in {:.2} s; last prime PVC bound {:.2} s and {PVCS} populator pods \
         {:.2} s after the first create; PVC created -> pod created: p50 {:.0} ms, p95 {:.0} ms, \
         max {:.0} ms; controller peak RSS {:.1} MiB",
        created.as_secs_f64(),
        last_bound.as_secs_f64(),
        all_pods.as_secs_f64(),
        percentile(50).as_secs_f64() * 1000.0,
        percentile(95).as_secs_f64() * 1000.0,
        percentile(100).as_secs_f64() * 1000.0,
        rss as f64 / 1024.0
    );
    let _ = controller.kill().await;
    provisioner.abort();
    co_lab::cluster::delete_scratch_namespace(&client, &namespace).await;
    co_lab::cluster::remove_storage_class(&client, &format!("san-{namespace}")).await;
}
