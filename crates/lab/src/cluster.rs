//! The two parts of a Kubernetes cluster that have no binary here, played against a real API
//! server (kube-apiserver + kube-controller-manager) so the populator controller runs end to end
//! on the lab, in one namespace:
//!
//! - the CSI provisioner: for each prime PVC (`prime-…`) it creates a Trident-style LUN on the
//!   lab's ONTAP array, mapped to a worker's initiator group, and a PV naming it, pre-bound to the
//!   prime PVC (the real PV controller finishes the binding);
//! - the kubelet (and scheduler): it binds each pod to a node, runs the pod's command as a local
//!   process — `copy-offload populate` with the pod's args and the environment of the Secrets its
//!   container takes `envFrom`, plus `--kubeconfig` in place of the service-account mount and
//!   `--http-endpoint=<pod IP>:8443` — reports the pod's IP, phase and exit code in its status,
//!   and on deletion sends SIGTERM, waits for the exit, then removes the pod.
//!
//! Each pod gets its own loopback address as its IP, so every populator can listen on 8443.
//! Failures to provision or to run are logged; the controller then sees what a real cluster would
//! show (a PVC left Pending, a pod that never starts).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStatus, Namespace, Node, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeSpec, Pod, PodStatus, Secret,
    TypedLocalObjectReference, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::arrays::ontap::{create_trident_volume, trident_lun_path};
use crate::lab::RunningLab;
use crate::rig::{WORKER_GROUP, WORKER_IQN};
use crate::san::{GroupSpec, SanError};

/// The CSI driver name the provisioner serves (NetApp Trident's).
pub const CSI_DRIVER: &str = "csi.trident.netapp.io";
/// The PV attribute naming the Trident volume (FlexVol) behind a PV.
pub const INTERNAL_NAME_ATTRIBUTE: &str = "internalName";
/// The size of a LUN for a prime PVC that requests none.
const DEFAULT_VOLUME_BYTES: u64 = 64 << 20;
/// Lines of a failed run's log kept as the container's termination message.
const LOG_TAIL_LINES: usize = 20;

/// Where the players act and what they run.
#[derive(Debug, Clone)]
pub struct Players {
    pub namespace: String,
    /// The lab array LUNs are created on.
    pub array: String,
    /// The array's initiator group of the worker node every LUN is mapped to.
    pub worker_group: String,
    /// The node every pod is bound to.
    pub node: String,
    /// The `copy-offload` binary the kubelet runs as `copy-offload populate`.
    pub binary: PathBuf,
    /// Given to each populate run as `--kubeconfig` in place of the service-account mount.
    pub kubeconfig: PathBuf,
}

/// The migration Secret's data as Forklift fills it, for the lab's first array and its vCenter:
/// VIB clone method, host leases in `namespace`, the lab's self-signed certificates not checked.
pub fn secret_data(lab: &RunningLab, namespace: &str) -> BTreeMap<String, String> {
    let array = &lab.arrays[0];
    BTreeMap::from(
        [
            ("STORAGE_HOSTNAME", array.url.as_str()),
            ("STORAGE_USERNAME", &array.username),
            ("STORAGE_PASSWORD", &array.password),
            ("STORAGE_SKIP_SSL_VERIFICATION", "true"),
            ("GOVMOMI_HOSTNAME", &lab.vcenter_url),
            ("GOVMOMI_USERNAME", &lab.username),
            ("GOVMOMI_PASSWORD", &lab.password),
            ("GOVMOMI_INSECURE", "true"),
            ("ESXI_CLONE_METHOD", "vib"),
            ("HOST_LEASE_NAMESPACE", namespace),
        ]
        .map(|(key, value)| (key.to_owned(), value.to_owned())),
    )
}

/// A Block PVC of `size` (a quantity) in `class` whose `dataSource` names the
/// `VSphereXcopyVolumePopulator` `cr` (`dataSource`, not `dataSourceRef`: the peers' 1.20 server
/// has only the former).
pub fn populated_claim(name: &str, class: &str, size: &str, cr: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            volume_mode: Some("Block".into()),
            storage_class_name: Some(class.into()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), Quantity(size.into()))])),
                ..Default::default()
            }),
            data_source: Some(TypedLocalObjectReference {
                api_group: Some(co_api::GROUP.into()),
                kind: "VSphereXcopyVolumePopulator".into(),
                name: cr.into(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The pods the kubelet ran, with their exit codes (`None`: killed by a signal), in order.
pub type Runs = Arc<Mutex<Vec<(String, Option<i32>)>>>;

/// Registers `name` as a node (no kubelet heartbeats: the scheduler is played too).
pub async fn ensure_node(client: &Client, name: &str) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
        Err(error) => Err(error),
    }
}

/// Creates the StorageClass the provisioner serves, with `binding_mode` (`Immediate` or
/// `WaitForFirstConsumer`); its volumes are retained, as their LUNs belong to the lab.
pub async fn create_storage_class(
    client: &Client,
    name: &str,
    binding_mode: &str,
) -> Result<(), kube::Error> {
    let classes: Api<StorageClass> = Api::all(client.clone());
    let class = StorageClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        provisioner: CSI_DRIVER.into(),
        volume_binding_mode: Some(binding_mode.into()),
        reclaim_policy: Some("Retain".into()),
        ..Default::default()
    };
    classes.create(&PostParams::default(), &class).await?;
    Ok(())
}

/// Deletes the PVs of StorageClass `name` (retained: nothing else removes them) and the class;
/// best effort, for cleanup.
pub async fn remove_storage_class(client: &Client, name: &str) {
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    if let Ok(list) = pvs.list(&Default::default()).await {
        for pv in list.items.iter().filter(|pv| {
            pv.spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref())
                == Some(name)
        }) {
            let _ = pvs.delete(&pv.name_any(), &DeleteParams::default()).await;
        }
    }
    let classes: Api<StorageClass> = Api::all(client.clone());
    let _ = classes.delete(name, &DeleteParams::default()).await;
}

/// Deletes a scratch namespace whose controller is already stopped: its PVCs first lose every
/// finalizer (the controller's would otherwise keep them, and the namespace, Terminating for good,
/// and the API server busy with them); best effort, for cleanup.
pub async fn delete_scratch_namespace(client: &Client, namespace: &str) {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    if let Ok(list) = pvcs.list(&Default::default()).await {
        let release = json!({"metadata": {"finalizers": null}});
        for pvc in list.items.iter().filter(|pvc| !pvc.finalizers().is_empty()) {
            let _ = pvcs
                .patch(
                    &pvc.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&release),
                )
                .await;
        }
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(namespace, &DeleteParams::default()).await;
}

/// Creates the worker's initiator group ([`WORKER_GROUP`]) on `array`, which the provisioner maps
/// every LUN to, as a CSI driver does for the node the volume is attached to.
pub fn create_worker_group(lab: &RunningLab, array: &str) -> Result<(), SanError> {
    lab.san
        .create_group(
            array,
            GroupSpec {
                name: WORKER_GROUP.into(),
                initiators: vec![WORKER_IQN.into()],
                protocol: Some("iscsi".into()),
                os_type: Some("linux".into()),
            },
        )
        .map(|_| ())
}

/// The Trident volume (FlexVol) behind a PV the provisioner created.
pub fn pv_flexvol(pv: &PersistentVolume) -> Option<&str> {
    pv.spec
        .as_ref()?
        .csi
        .as_ref()?
        .volume_attributes
        .as_ref()?
        .get(INTERNAL_NAME_ATTRIBUTE)
        .map(String::as_str)
}

/// The CSI provisioner: a LUN and a pre-bound PV for every prime PVC of the namespace. Runs until
/// the task is aborted.
pub async fn csi_provisioner(client: Client, players: Players, lab: Arc<RunningLab>) {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &players.namespace);
    let pvs: Api<PersistentVolume> = Api::all(client);
    let mut provisioned = HashSet::new();
    let claims = watcher::watcher(pvcs, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .filter_map(|event| {
            std::future::ready(match event {
                Ok(pvc) => Some(pvc),
                Err(error) => {
                    tracing::warn!(%error, namespace = %players.namespace, "watching PVCs");
                    None
                }
            })
        })
        .filter(|pvc| {
            let unbound = pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .is_none_or(str::is_empty);
            let wanted = pvc.name_any().starts_with("prime-")
                && unbound
                && pvc.metadata.deletion_timestamp.is_none()
                && provisioned.insert(pvc.uid().unwrap_or_default());
            std::future::ready(wanted)
        });
    // Several claims at once, as the CSI external-provisioner's workers take them.
    claims
        .for_each_concurrent(PROVISIONER_WORKERS, |pvc| {
            let (pvs, players, lab) = (&pvs, &players, &lab);
            async move {
                if let Err(error) = provision(pvs, players, lab, &pvc).await {
                    tracing::error!(pvc = %pvc.name_any(), %error, "the CSI provisioner could not provision a volume");
                }
            }
        })
        .await;
}

/// Claims the played provisioner works on at once.
const PROVISIONER_WORKERS: usize = 16;

async fn provision(
    pvs: &Api<PersistentVolume>,
    players: &Players,
    lab: &RunningLab,
    pvc: &PersistentVolumeClaim,
) -> Result<(), String> {
    let name = pvc.name_any();
    let uid = pvc.uid().unwrap_or_default();
    let spec = pvc.spec.clone().unwrap_or_default();
    let requests = spec.resources.as_ref().and_then(|r| r.requests.clone());
    let size = requests
        .as_ref()
        .and_then(|r| r.get("storage"))
        .and_then(|q| co_api::parse_quantity_bytes(&q.0))
        .unwrap_or(DEFAULT_VOLUME_BYTES);
    let flexvol = format!("trident_{}", uid.replace('-', "_"));
    create_trident_volume(&lab.san, &players.array, &flexvol, size)
        .map_err(|e| format!("creating volume {flexvol}: {e}"))?;
    lab.san
        .map(
            &players.array,
            &trident_lun_path(&flexvol),
            &players.worker_group,
        )
        .map_err(|e| format!("mapping {flexvol} to {}: {e}", players.worker_group))?;
    let pv = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(format!("pvc-{uid}")),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: spec.access_modes.clone(),
            capacity: requests,
            volume_mode: spec.volume_mode.clone(),
            storage_class_name: spec.storage_class_name.clone(),
            persistent_volume_reclaim_policy: Some("Retain".into()),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: Some(players.namespace.clone()),
                name: Some(name.clone()),
                uid: Some(uid.clone()),
                ..Default::default()
            }),
            csi: Some(CSIPersistentVolumeSource {
                driver: CSI_DRIVER.into(),
                volume_handle: format!("pvc-{flexvol}"),
                volume_attributes: Some(BTreeMap::from([(
                    INTERNAL_NAME_ATTRIBUTE.into(),
                    flexvol.clone(),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    pvs.create(&PostParams::default(), &pv)
        .await
        .map_err(|e| format!("creating PV pvc-{uid}: {e}"))?;
    tracing::info!(pvc = %name, volume = %flexvol, "provisioned");
    Ok(())
}

/// Loopback addresses for pod IPs: each pod gets its own, so every populator can listen on 8443.
fn next_pod_ip() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let base = std::process::id() % 200 + 20;
    format!("127.{base}.{}.{}", (n / 250) % 250, n % 250 + 1)
}

struct Process {
    pid: u32,
    terminating: Arc<AtomicBool>,
    exited: Arc<AtomicBool>,
}

async fn delete_now(pods: &Api<Pod>, name: &str) {
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    if let Err(error) = pods.delete(name, &now).await {
        tracing::debug!(pod = %name, %error, "removing the pod");
    }
}

/// The kubelet (and scheduler) of the namespace. Runs until the task is aborted; a process it
/// started runs on until its pod is deleted (SIGTERM) or it exits.
pub async fn kubelet(client: Client, players: Players, runs: Runs) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &players.namespace);
    let secrets: Api<Secret> = Api::namespaced(client, &players.namespace);
    let mut running: HashMap<String, Process> = HashMap::new();
    let mut started = HashSet::new();
    let mut stream = std::pin::pin!(
        watcher::watcher(pods.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects()
    );
    loop {
        let pod = match stream.try_next().await {
            Ok(Some(pod)) => pod,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, namespace = %players.namespace, "watching pods");
                continue;
            }
        };
        let name = pod.name_any();
        let uid = pod.uid().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            match running.get(&uid) {
                Some(process) => {
                    let first = !process.terminating.swap(true, Ordering::SeqCst);
                    if process.exited.load(Ordering::SeqCst) {
                        delete_now(&pods, &name).await;
                    } else if first {
                        // SIGTERM, as the kubelet does on a graceful delete; the pod goes once
                        // the process has exited.
                        let _ = std::process::Command::new("kill")
                            .args(["-TERM", &process.pid.to_string()])
                            .status();
                    }
                }
                None => delete_now(&pods, &name).await,
            }
            continue;
        }
        if spec.node_name.is_none() {
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": players.node},
            });
            let bound: Result<serde_json::Value, _> = pods
                .create_subresource("binding", &name, &PostParams::default(), &binding)
                .await;
            if let Err(error) = bound {
                tracing::warn!(pod = %name, %error, "binding the pod to {}", players.node);
            }
            continue;
        }
        if !started.insert(uid.clone()) {
            continue;
        }
        let Some(container) = spec.containers.first().cloned() else {
            continue;
        };
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for source in container.env_from.iter().flatten() {
            if let Some(secret_ref) = &source.secret_ref {
                match secrets.get(&secret_ref.name).await {
                    Ok(secret) => {
                        for (key, value) in secret.data.unwrap_or_default() {
                            env.insert(key, String::from_utf8_lossy(&value.0).into_owned());
                        }
                    }
                    Err(error) => {
                        tracing::warn!(pod = %name, secret = %secret_ref.name, %error, "reading the pod's Secret")
                    }
                }
            }
        }
        let ip = next_pod_ip();
        let mut command = tokio::process::Command::new(&players.binary);
        command
            .arg("populate")
            .args(container.args.clone().unwrap_or_default())
            .arg(format!("--kubeconfig={}", players.kubeconfig.display()))
            .arg(format!("--http-endpoint={ip}:8443"))
            .env_clear()
            .envs(&env)
            // Injected by every kubelet; it also tells the populator a controller scrapes it.
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("COPY_OFFLOAD_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                tracing::error!(pod = %name, binary = %players.binary.display(), %error, "cannot run the pod's command");
                continue;
            }
        };
        let terminating = Arc::new(AtomicBool::new(false));
        let exited = Arc::new(AtomicBool::new(false));
        running.insert(
            uid.clone(),
            Process {
                pid: child.id().unwrap_or_default(),
                terminating: terminating.clone(),
                exited: exited.clone(),
            },
        );
        let image = container.image.clone().unwrap_or_default();
        let status = json!({"status": PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(ip.clone()),
            container_statuses: Some(vec![ContainerStatus {
                name: container.name.clone(),
                ready: true,
                image: image.clone(),
                state: Some(ContainerState { running: Some(ContainerStateRunning::default()), ..Default::default() }),
                ..Default::default()
            }]),
            ..Default::default()
        }});
        if let Err(error) = pods
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            tracing::warn!(pod = %name, %error, "reporting the pod Running");
        }
        let pods = pods.clone();
        let runs = runs.clone();
        let stderr = child.stderr.take();
        tokio::spawn(async move {
            let mut tail: Vec<String> = Vec::new();
            if let Some(stderr) = stderr {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tail.push(line);
                    if tail.len() > LOG_TAIL_LINES {
                        tail.remove(0);
                    }
                }
            }
            let code = child.wait().await.ok().and_then(|s| s.code());
            if let Ok(mut runs) = runs.lock() {
                runs.push((name.clone(), code));
            }
            // Killed by a signal: reported as SIGKILL's 128 + 9, as a container runtime does.
            let exit = code.unwrap_or(137);
            let status = json!({"status": PodStatus {
                phase: Some(if exit == 0 { "Succeeded" } else { "Failed" }.into()),
                pod_ip: Some(ip),
                container_statuses: Some(vec![ContainerStatus {
                    name: container.name.clone(),
                    image,
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: exit,
                            // FallbackToLogsOnError: the log's tail for a failed run.
                            message: (exit != 0).then(|| tail.join("\n")),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }});
            if let Err(error) = pods
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
            {
                tracing::warn!(pod = %name, %error, "reporting the pod's exit");
            }
            exited.store(true, Ordering::SeqCst);
            if terminating.load(Ordering::SeqCst) {
                delete_now(&pods, &name).await;
            }
        });
    }
}
