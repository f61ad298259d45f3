//! `copy-offload lab demo --cluster`: the populator controller's whole flow on a real Kubernetes
//! API server, watchable by a newcomer.
//!
//! The demo starts the lab, then on the API server the kubeconfig names: installs the CRD if it is
//! missing, creates a scratch namespace with a StorageClass, the migration Secret, the CR and a
//! PVC whose `dataSource` names it, and runs the controller in-process, watching that namespace.
//! The parts of a cluster that have no binary here (the CSI provisioner and the kubelet) are the
//! lab's `co_lab::cluster` players; the kubelet runs this very binary as `copy-offload populate`.
//! The demo prints the CR's progress as the controller reports it, waits until the PVC is Bound,
//! compares the bound volume's bytes with the source disk, and removes everything it created —
//! also when cancelled by Ctrl-C, which deletes the namespace so the controller stops the copy the
//! way it does for a deleted PVC.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use co_api::{VSphereXcopyVolumePopulator, VSphereXcopyVolumePopulatorSpec};
use co_controller::Settings;
use co_lab::arrays::ontap::trident_lun_path;
use co_lab::cluster::Players;
use co_lab::lab::{Lab, RunningLab};
use co_lab::rig::WORKER_GROUP;
use co_populator::ExitCode;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolume, PersistentVolumeClaim, Secret, ServiceAccount,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::demo::{DemoArgs, DemoMethod, DemoVendor, DiskType};
use crate::lab_cmd::LabDir;

/// What to run when no API server answers.
const START_HINT: &str = "start a local one with `scripts/peers.sh start` and point \
                          `--kubeconfig` (or KUBECONFIG) at the file `scripts/peers.sh env` names";
/// How long the demo waits for the API server, the copy, and the namespace's removal.
const REACHABLE_DEADLINE: Duration = Duration::from_secs(10);
const COPY_DEADLINE: Duration = Duration::from_secs(600);
const CLEANUP_DEADLINE: Duration = Duration::from_secs(120);
/// The node the kubelet player binds pods to.
const NODE: &str = "copy-offload-demo-worker";
const SECRET: &str = "vsphere-ontap";
const CR: &str = "disk-1";
const PVC: &str = "vm-1-disk-1";

/// Runs `copy-offload lab demo --cluster`; `cancel` is fired by SIGINT/SIGTERM.
pub async fn run(args: DemoArgs, cancel: CancellationToken) -> ExitCode {
    if let Err(problem) = supported(&args) {
        eprintln!("lab demo --cluster: {problem}");
        return ExitCode::BadArguments;
    }
    let Some(kubeconfig) = args.kubeconfig.clone() else {
        eprintln!(
            "lab demo --cluster needs a Kubernetes API server: no --kubeconfig and no KUBECONFIG; {START_HINT}"
        );
        return ExitCode::BadArguments;
    };
    let client = match connect(&kubeconfig).await {
        Ok(client) => client,
        Err(problem) => {
            eprintln!("{problem}; {START_HINT}");
            return ExitCode::Permanent;
        }
    };
    let binary = match std::env::current_exe() {
        Ok(binary) => binary,
        Err(e) => {
            eprintln!(
                "cannot find this program's own binary (the kubelet runs it as `populate`): {e}"
            );
            return ExitCode::Internal;
        }
    };
    let dir = match LabDir::new(args.data_dir.as_deref()) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("cannot create the lab data directory: {e}; pass a writable --data-dir");
            return ExitCode::Permanent;
        }
    };
    let scenario = crate::demo::scenario(&args, None);
    let disk = crate::demo::DiskNames::of(&scenario, 0);
    let source = Source {
        vmdk: disk.vmdk,
        flat_file: PathBuf::from(&scenario.vms[0].name).join(format!("{}-flat.vmdk", disk.stem)),
        datastore: scenario.datastores[0].name.clone(),
    };
    let lab = match Lab::start(scenario, dir.path()).await {
        Ok(lab) => Arc::new(lab),
        Err(e) => {
            eprintln!("the lab did not start: {e}");
            return ExitCode::Permanent;
        }
    };
    let array = lab.arrays[0].name.clone();
    if let Err(e) = co_lab::cluster::create_worker_group(&lab, &array) {
        eprintln!("cannot create the worker's initiator group on the lab array: {e}");
        lab_shutdown(lab).await;
        return ExitCode::Internal;
    }
    let namespace = format!(
        "copy-offload-demo-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    println!(
        "copy-offload lab demo --cluster: API server of {}, namespace {namespace}, lab in {}",
        kubeconfig.display(),
        dir.path().display()
    );
    let demo = ClusterDemo {
        client,
        namespace,
        class: String::new(),
        lab: lab.clone(),
        players: Vec::new(),
        controller: None,
    };
    let code = demo
        .run(&args, &source, &kubeconfig, &binary, &array, &cancel)
        .await;
    lab_shutdown(lab).await;
    code
}

async fn lab_shutdown(lab: Arc<RunningLab>) {
    match Arc::try_unwrap(lab) {
        Ok(lab) => lab.shutdown().await,
        Err(_) => tracing::warn!("the lab is still referenced; it stops with the process"),
    }
}

/// The combinations the cluster demo's players serve: Trident's ONTAP volumes, one flat VMDK,
/// cloned through the VIB.
fn supported(args: &DemoArgs) -> Result<(), String> {
    if args.vendor != DemoVendor::Ontap {
        return Err("only --vendor ontap (the CSI provisioner plays NetApp Trident)".into());
    }
    if args.method != DemoMethod::Vib || args.disk_type != DiskType::Vmdk || args.disks != 1 {
        return Err(
            "only one flat VMDK disk cloned with the VIB (--method vib --disk-type vmdk --disks 1)"
                .into(),
        );
    }
    if args.keep {
        return Err("--keep is not supported with --cluster".into());
    }
    Ok(())
}

async fn connect(kubeconfig: &Path) -> Result<Client, String> {
    let config = Kubeconfig::read_from(kubeconfig)
        .map_err(|e| format!("cannot read kubeconfig {}: {e}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("kubeconfig {}: {e}", kubeconfig.display()))?;
    let server = config.cluster_url.to_string();
    let client =
        Client::try_from(config).map_err(|e| format!("cannot build a client for {server}: {e}"))?;
    match tokio::time::timeout(REACHABLE_DEADLINE, client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(format!("no Kubernetes API server answers at {server}: {e}")),
        Err(_) => Err(format!(
            "no Kubernetes API server answered at {server} within {REACHABLE_DEADLINE:?}"
        )),
    }
}

/// The disk the demo copies.
struct Source {
    /// As the CR names it: `[ds1] vm-1/vm-1.vmdk`.
    vmdk: String,
    datastore: String,
    /// Its flat extent, relative to the datastore's directory.
    flat_file: PathBuf,
}

struct ClusterDemo {
    client: Client,
    namespace: String,
    class: String,
    lab: Arc<RunningLab>,
    players: Vec<tokio::task::JoinHandle<()>>,
    controller: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl ClusterDemo {
    async fn run(
        mut self,
        args: &DemoArgs,
        source: &Source,
        kubeconfig: &Path,
        binary: &Path,
        array: &str,
        cancel: &CancellationToken,
    ) -> ExitCode {
        let code = match self.stage(args, source, kubeconfig, binary, array).await {
            Ok(()) => self.watch_and_verify(source, cancel).await,
            Err(problem) => {
                eprintln!("setting up the demo failed: {problem}");
                ExitCode::Permanent
            }
        };
        self.clean_up().await;
        code
    }

    /// Everything the demo creates, in the order a user and Forklift would.
    async fn stage(
        &mut self,
        args: &DemoArgs,
        source: &Source,
        kubeconfig: &Path,
        binary: &Path,
        array: &str,
    ) -> Result<(), String> {
        let post = PostParams::default();
        install_crd(&self.client).await?;
        co_lab::cluster::ensure_node(&self.client, NODE)
            .await
            .map_err(|e| format!("registering node {NODE}: {e}"))?;
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .create(
                &post,
                &Namespace {
                    metadata: named(&self.namespace),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("creating namespace {}: {e}", self.namespace))?;
        println!("created namespace {}", self.namespace);
        let class = format!("san-{}", self.namespace);
        co_lab::cluster::create_storage_class(&self.client, &class, "Immediate")
            .await
            .map_err(|e| format!("creating StorageClass {class}: {e}"))?;
        self.class = class;

        let players = Players {
            namespace: self.namespace.clone(),
            array: array.to_owned(),
            worker_group: WORKER_GROUP.into(),
            node: NODE.into(),
            binary: binary.to_owned(),
            kubeconfig: kubeconfig.to_owned(),
        };
        self.players
            .push(tokio::spawn(co_lab::cluster::csi_provisioner(
                self.client.clone(),
                players.clone(),
                self.lab.clone(),
            )));
        self.players.push(tokio::spawn(co_lab::cluster::kubelet(
            self.client.clone(),
            players,
            Arc::new(Mutex::new(Vec::new())),
        )));
        self.start_controller().await?;

        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        secrets
            .create(
                &post,
                &Secret {
                    metadata: named(SECRET),
                    string_data: Some(co_lab::cluster::secret_data(&self.lab, &self.namespace)),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("creating Secret {SECRET}: {e}"))?;
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.namespace);
        accounts
            .create(
                &post,
                &ServiceAccount {
                    metadata: named("populator"),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("creating ServiceAccount populator: {e}"))?;
        let mut cr = VSphereXcopyVolumePopulator::new(
            CR,
            VSphereXcopyVolumePopulatorSpec {
                vmdk_path: source.vmdk.clone(),
                secret_name: Some(SECRET.into()),
                storage_vendor_product: "ontap".into(),
                migration_host: Some(self.lab.hosts[0].moid.clone()),
                ..Default::default()
            },
        );
        cr.metadata.namespace = Some(self.namespace.clone());
        self.crs()
            .create(&post, &cr)
            .await
            .map_err(|e| format!("creating {CR}: {e}"))?;
        println!("created Secret {SECRET} and VSphereXcopyVolumePopulator {CR}");
        self.pvcs()
            .create(
                &post,
                &co_lab::cluster::populated_claim(PVC, &self.class, &args.size.to_string(), CR),
            )
            .await
            .map_err(|e| format!("creating PVC {PVC}: {e}"))?;
        println!("created PVC {PVC} (dataSource: {CR}); waiting for the controller");
        Ok(())
    }

    async fn start_controller(&mut self) -> Result<(), String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("binding the controller's metrics port: {e}"))?;
        let mut settings = Settings::defaults("copy-offload:demo");
        settings.watch_namespace = Some(self.namespace.clone());
        settings.scrape_interval_seconds = 1;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let client = self.client.clone();
        let handle = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = co_controller::run_with(client, settings, listener, shutdown).await {
                eprintln!("the controller stopped: {e}");
            }
        });
        self.controller = Some((stop, handle));
        Ok(())
    }

    fn crs(&self) -> Api<VSphereXcopyVolumePopulator> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn pvcs(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Prints the CR's status as the controller reports it until the PVC is Bound, then checks
    /// the bound volume's bytes.
    async fn watch_and_verify(&self, source: &Source, cancel: &CancellationToken) -> ExitCode {
        let bound = await_condition(self.pvcs(), PVC, |pvc: Option<&PersistentVolumeClaim>| {
            pvc.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Bound")
        });
        let progress = async {
            let mut last = String::new();
            let config = watcher::Config::default().fields(&format!("metadata.name={CR}"));
            let mut stream = std::pin::pin!(
                watcher::watcher(self.crs(), config)
                    .default_backoff()
                    .applied_objects()
            );
            while let Ok(Some(cr)) = stream.try_next().await {
                let line = progress_line(&cr);
                if !line.is_empty() && line != last {
                    println!("  {line}");
                    last = line;
                }
            }
            std::future::pending::<()>().await
        };
        let pvc = tokio::select! {
            _ = cancel.cancelled() => {
                eprintln!("cancelled: deleting namespace {} (the controller stops the copy)", self.namespace);
                return ExitCode::Cancelled;
            }
            _ = tokio::time::sleep(COPY_DEADLINE) => {
                eprintln!("PVC {PVC} was not Bound within {COPY_DEADLINE:?}; see `kubectl -n {} get events`", self.namespace);
                return ExitCode::Permanent;
            }
            _ = progress => unreachable!("the progress watch never ends"),
            bound = bound => match bound {
                Ok(Some(pvc)) => pvc,
                Ok(None) | Err(_) => {
                    eprintln!("lost the watch on PVC {PVC}");
                    return ExitCode::Retryable;
                }
            },
        };
        let volume = pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        println!("PVC {PVC} is Bound to PV {volume}");
        match self.verify(source, &volume).await {
            Ok(summary) => {
                println!("bytes verified: {summary}");
                ExitCode::Success
            }
            Err(problem) => {
                eprintln!("verification failed: {problem}");
                ExitCode::Permanent
            }
        }
    }

    /// Compares the source disk with the start of the LUN behind PV `volume`.
    async fn verify(&self, source: &Source, volume: &str) -> Result<String, String> {
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let pv = pvs
            .get(volume)
            .await
            .map_err(|e| format!("reading PV {volume}: {e}"))?;
        let flexvol = co_lab::cluster::pv_flexvol(&pv)
            .ok_or_else(|| format!("PV {volume} names no Trident volume"))?;
        let array = &self.lab.arrays[0].name;
        let target = self
            .lab
            .san
            .volume(array, &trident_lun_path(flexvol))
            .ok_or_else(|| format!("no volume {flexvol} on the lab's array {array}"))?;
        let source = self
            .lab
            .datastore_dir(&source.datastore)
            .join(&source.flat_file);
        let size = std::fs::metadata(&source)
            .map_err(|e| format!("{}: {e}", source.display()))?
            .len();
        let sums = crate::demo::checksums(
            "source and volume",
            [(source, size), (target.backing_path, size)].into_iter(),
        )
        .await?;
        let (source_sum, target_sum) = (&sums[0], &sums[1]);
        if source_sum != target_sum {
            return Err(format!(
                "the volume's first {size} bytes (sha256 {target_sum}) differ from the source disk (sha256 {source_sum})"
            ));
        }
        Ok(format!(
            "{size} bytes, sha256 {source_sum}, equal to the source disk"
        ))
    }

    /// Deletes the namespace (the controller and the kubelet stay up until it is gone, so a copy
    /// still running is stopped and cleaned up), then the StorageClass and its PVs.
    async fn clean_up(mut self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let gone = match namespaces
            .delete(&self.namespace, &DeleteParams::default())
            .await
        {
            Ok(_) => tokio::time::timeout(
                CLEANUP_DEADLINE,
                await_condition(namespaces, &self.namespace, |ns: Option<&Namespace>| {
                    ns.is_none()
                }),
            )
            .await
            .is_ok(),
            Err(kube::Error::Api(status)) if status.code == 404 => true,
            Err(e) => {
                eprintln!("deleting namespace {}: {e}", self.namespace);
                false
            }
        };
        if let Some((stop, handle)) = self.controller.take() {
            let _ = stop.send(());
            let _ = handle.await;
        }
        for player in self.players.drain(..) {
            player.abort();
            // Awaited so the players' hold on the lab is released before it shuts down.
            let _ = player.await;
        }
        if !self.class.is_empty() {
            co_lab::cluster::remove_storage_class(&self.client, &self.class).await;
        }
        if gone {
            println!("namespace {} removed", self.namespace);
        } else {
            eprintln!(
                "namespace {} is not gone yet; remove it with `kubectl delete namespace {}`",
                self.namespace, self.namespace
            );
        }
    }
}

fn named(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

/// Installs the CRD as shipped unless the server has it, and waits until it is served.
async fn install_crd(client: &Client) -> Result<(), String> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = co_api::populator_crd();
    let name = crd.name_any();
    match crds.create(&PostParams::default(), &crd).await {
        Ok(_) => println!("installed CRD {name}"),
        Err(kube::Error::Api(status)) if status.is_already_exists() => {}
        Err(e) => return Err(format!("installing CRD {name}: {e}")),
    }
    tokio::time::timeout(
        REACHABLE_DEADLINE,
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    .map_err(|_| format!("CRD {name} was not established within {REACHABLE_DEADLINE:?}"))?
    .map_err(|e| format!("watching CRD {name}: {e}"))?;
    Ok(())
}

/// The CR's status in one line: phase, progress and how the copy ran.
fn progress_line(cr: &VSphereXcopyVolumePopulator) -> String {
    let Some(status) = &cr.status else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(phase) = &status.phase {
        parts.push(format!("phase {phase:?}"));
    }
    if let Some(progress) = &status.progress {
        parts.push(format!("{progress}%"));
    }
    if let Some(method) = &status.clone_method {
        parts.push(format!("clone method {method}"));
    }
    if let Some(xcopy) = &status.xcopy_used {
        parts.push(format!("xcopyUsed {xcopy}"));
    }
    if let Some(result) = &status.result {
        parts.push(format!("result {result}"));
    }
    parts.join(", ")
}
