//! A cluster for the controller's tests: the shared kube-apiserver + kube-controller-manager peer
//! (`scripts/peers.sh start`), one scratch namespace per test, the lab (simulated vCenter, ESXi
//! hosts and ONTAP array), and the two parts of a cluster that have no binary here — the CSI
//! provisioner and the kubelet — played by the lab's `co_lab::cluster`.
//!
//! The binary is the `copy-offload` next to this test executable (`target/<profile>/`): build it
//! first with `cargo build -p copy-offload` (the workspace test command builds it anyway).
//! The controller runs in-process (`co_controller::run_with`) watching only the test's namespace,
//! so tests run in parallel against one API server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use co_api::{VSphereXcopyVolumePopulator, VSphereXcopyVolumePopulatorSpec};
use co_controller::Settings;
use co_lab::arrays::ontap::trident_lun_path;
use co_lab::cluster::{Players, Runs};
use co_lab::lab::{Lab, RunningLab};
use co_lab::scenario::Scenario;
use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, Pod, Secret, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use tokio::task::JoinHandle;

pub const ARRAY: &str = "ontap1";
pub use co_lab::rig::WORKER_GROUP;
pub const NODE: &str = "copy-offload-test-worker";
pub const SOURCE_VMDK: &str = "[ds1] vm-1/vm-1.vmdk";
pub const SOURCE_FLAT: &str = "vm-1/vm-1-flat.vmdk";
pub const SECRET: &str = "vsphere-ontap";
pub const IMAGE: &str = "copy-offload:test";
/// How long any one wait of a test may take.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// A client for the peer; fails with the command to start it when it is not running.
pub async fn client() -> Client {
    co_testpeers::kube_client()
        .await
        .unwrap_or_else(|error| panic!("kube-apiserver peer unavailable: {error:#}"))
}

/// The `copy-offload` binary built next to this test executable, or the one
/// `$COPY_OFFLOAD_BINARY` names (a release build for the benchmark's memory figure).
pub fn binary() -> PathBuf {
    if let Some(binary) = std::env::var_os("COPY_OFFLOAD_BINARY").filter(|b| !b.is_empty()) {
        let binary = PathBuf::from(binary);
        assert!(
            binary.is_file(),
            "COPY_OFFLOAD_BINARY={} does not exist",
            binary.display()
        );
        return binary;
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join("copy-offload");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build -p copy-offload` first (the kubelet of these tests runs it)",
        binary.display()
    );
    binary
}

/// Waits until `cond` holds for object `name`, failing the test after [`DEADLINE`].
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    cond: impl Fn(Option<&K>) -> bool,
) -> Option<K>
where
    K: Clone + std::fmt::Debug + Send + serde::de::DeserializeOwned + kube::Resource + 'static,
{
    match tokio::time::timeout(DEADLINE, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(object)) => object,
        Ok(Err(error)) => panic!("watching {name} for {what}: {error}"),
        Err(_) => panic!("{name}: {what} did not happen within {DEADLINE:?}"),
    }
}

pub async fn ensure_crd(client: &Client) {
    // The CRD as shipped (no status subresource), if no test installed it yet.
    co_testpeers::install_crd(client, &co_api::populator_crd())
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
}

/// A client acting as ServiceAccount `copy-offload-controller` of `namespace`, bound to a
/// ClusterRole (named after the namespace) with `rules`.
async fn controller_as_account(client: &Client, namespace: &str, rules: Vec<PolicyRule>) -> Client {
    let role = format!("{namespace}-controller");
    co_testpeers::client_as_account(client, namespace, "copy-offload-controller", &role, rules)
        .await
        .unwrap_or_else(|error| panic!("{error:#}"))
}

/// The rules of the controller's ClusterRole in `deploy/controller-rbac.yaml`.
pub fn shipped_controller_rules() -> Vec<PolicyRule> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/controller-rbac.yaml");
    co_testpeers::shipped_cluster_role_rules(&path).unwrap_or_else(|error| panic!("{error:#}"))
}

/// What a test can tune.
#[derive(Clone)]
pub struct Options {
    pub binding_mode: &'static str,
    pub settings: Settings,
    /// Run the controller as a ServiceAccount bound to these ClusterRole rules (impersonated),
    /// instead of as cluster-admin.
    pub controller_rules: Option<Vec<PolicyRule>>,
}

impl Default for Options {
    fn default() -> Self {
        let mut settings = Settings::defaults(IMAGE);
        settings.scrape_interval_seconds = 1;
        settings.scrape_timeout_seconds = 2;
        settings.retry_backoff_seconds = 1;
        Self {
            binding_mode: "Immediate",
            settings,
            controller_rules: None,
        }
    }
}

/// One test's cluster.
pub struct TestCluster {
    pub client: Client,
    pub namespace: String,
    pub class: String,
    pub lab: Arc<RunningLab>,
    /// The lab's files, removed when the cluster is dropped.
    _lab_dir: tempfile::TempDir,
    pub settings: Settings,
    controller_client: Client,
    controller: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
    sims: Vec<JoinHandle<()>>,
    /// Pods the kubelet ran, with their exit codes, in order.
    pub runs: Runs,
}

impl TestCluster {
    pub async fn start(prefix: &str, options: Options) -> TestCluster {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = client().await;
        ensure_crd(&client).await;
        co_lab::cluster::ensure_node(&client, NODE)
            .await
            .unwrap_or_else(|error| panic!("cannot create node {NODE}: {error}"));
        let namespace = co_testpeers::create_scratch_namespace(&client, prefix)
            .await
            .unwrap_or_else(|error| panic!("{error:#}"));
        let class = format!("san-{namespace}");
        co_lab::cluster::create_storage_class(&client, &class, options.binding_mode)
            .await
            .unwrap();
        let lab_dir = tempfile::tempdir().unwrap();
        let lab = Arc::new(
            Lab::start(Scenario::default_embedded(), lab_dir.path())
                .await
                .unwrap(),
        );
        co_lab::cluster::create_worker_group(&lab, ARRAY).unwrap();
        let controller_client = match &options.controller_rules {
            Some(rules) => controller_as_account(&client, &namespace, rules.clone()).await,
            None => client.clone(),
        };
        let mut cluster = TestCluster {
            controller_client,
            client,
            namespace,
            class,
            lab,
            _lab_dir: lab_dir,
            settings: Settings {
                watch_namespace: None,
                ..options.settings
            },
            controller: None,
            sims: Vec::new(),
            runs: Arc::new(Mutex::new(Vec::new())),
        };
        cluster.create_secret(SECRET, true).await;
        cluster.create_populator_account().await;
        let players = Players {
            namespace: cluster.namespace.clone(),
            array: ARRAY.into(),
            worker_group: WORKER_GROUP.into(),
            node: NODE.into(),
            binary: binary(),
            kubeconfig: co_testpeers::kubeconfig_path(),
        };
        cluster
            .sims
            .push(tokio::spawn(co_lab::cluster::csi_provisioner(
                cluster.client.clone(),
                players.clone(),
                cluster.lab.clone(),
            )));
        cluster.sims.push(tokio::spawn(co_lab::cluster::kubelet(
            cluster.client.clone(),
            players,
            cluster.runs.clone(),
        )));
        cluster.start_controller().await;
        cluster
    }

    /// Starts the controller in-process, watching this test's namespace only.
    pub async fn start_controller(&mut self) {
        assert!(
            self.controller.is_none(),
            "the controller is already running"
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let settings = Settings {
            watch_namespace: Some(self.namespace.clone()),
            ..self.settings.clone()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let client = self.controller_client.clone();
        let handle = tokio::spawn(async move {
            co_controller::run_with(client, settings, listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("the controller runs");
        });
        self.controller = Some((stop, handle));
    }

    /// Kills the controller (as a crash or a deleted controller pod would) and waits until it
    /// is gone.
    pub async fn stop_controller(&mut self) {
        let (_stop, handle) = self.controller.take().expect("the controller is running");
        handle.abort();
        let _ = handle.await;
    }

    pub async fn restart_controller(&mut self) {
        self.stop_controller().await;
        self.start_controller().await;
    }

    pub fn pvcs(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn crs(&self) -> Api<VSphereXcopyVolumePopulator> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The migration Secret as Forklift fills it, for the lab (`valid`: with the right password).
    pub async fn create_secret(&self, name: &str, valid: bool) {
        let mut data = co_lab::cluster::secret_data(&self.lab, &self.namespace);
        if !valid {
            data.insert("STORAGE_PASSWORD".into(), "wrong-password".into());
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        secrets
            .create(
                &PostParams::default(),
                &Secret {
                    metadata: ObjectMeta {
                        name: Some(name.into()),
                        ..Default::default()
                    },
                    string_data: Some(data),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }

    /// The `populator` ServiceAccount Forklift creates in each target namespace.
    pub async fn create_populator_account(&self) {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.namespace);
        accounts
            .create(
                &PostParams::default(),
                &ServiceAccount {
                    metadata: ObjectMeta {
                        name: Some("populator".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }

    /// A CR in upstream Forklift's dialect (`secretName`), pinned to the lab's first host.
    pub async fn create_cr(&self, name: &str, secret: &str) -> VSphereXcopyVolumePopulator {
        self.create_cr_on(name, secret, Some(self.lab.hosts[0].moid.clone()), None)
            .await
    }

    /// A CR with the given `migrationHost` and `sourceHost` label (Forklift sets the label).
    pub async fn create_cr_on(
        &self,
        name: &str,
        secret: &str,
        migration_host: Option<String>,
        source_host_label: Option<&str>,
    ) -> VSphereXcopyVolumePopulator {
        let mut cr = VSphereXcopyVolumePopulator::new(
            name,
            VSphereXcopyVolumePopulatorSpec {
                vmdk_path: SOURCE_VMDK.into(),
                secret_name: Some(secret.into()),
                storage_vendor_product: "ontap".into(),
                migration_host,
                ..Default::default()
            },
        );
        cr.metadata.namespace = Some(self.namespace.clone());
        if let Some(host) = source_host_label {
            cr.metadata.labels = Some(BTreeMap::from([("sourceHost".to_owned(), host.to_owned())]));
        }
        self.crs()
            .create(&PostParams::default(), &cr)
            .await
            .unwrap()
    }

    /// A Block PVC whose `dataSource` names the CR (the 1.20 server has no `dataSourceRef`).
    pub fn claim(&self, name: &str, cr: &str) -> PersistentVolumeClaim {
        co_lab::cluster::populated_claim(name, &self.class, "64Mi", cr)
    }

    pub async fn create_claim(&self, name: &str, cr: &str) -> PersistentVolumeClaim {
        self.pvcs()
            .create(&PostParams::default(), &self.claim(name, cr))
            .await
            .unwrap()
    }

    /// Waits until the PVC is Bound and returns it.
    pub async fn wait_bound(&self, name: &str) -> PersistentVolumeClaim {
        wait_for(&self.pvcs(), name, "PVC Bound", |pvc| {
            pvc.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Bound")
        })
        .await
        .unwrap()
    }

    /// Waits until the controller has cleaned up after a bound PVC: prime PVC deleted, finalizer
    /// removed.
    pub async fn wait_cleaned_up(&self, pvc: &str, uid: &str) {
        let prime = co_api::contract::names::prime_pvc_name(uid);
        wait_for(&self.pvcs(), &prime, "prime PVC deleted", |p| p.is_none()).await;
        wait_for(&self.pvcs(), pvc, "finalizer removed", |p| {
            p.is_some_and(|p| {
                !p.metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == co_controller::decide::FINALIZER)
            })
        })
        .await;
    }

    /// The source disk's bytes.
    pub fn source_bytes(&self) -> Vec<u8> {
        std::fs::read(self.lab.datastore_dir("ds1").join(SOURCE_FLAT)).unwrap()
    }

    /// The bytes of the LUN behind a PV the provisioner created.
    pub fn volume_bytes(&self, pv: &PersistentVolume) -> Vec<u8> {
        let flexvol = co_lab::cluster::pv_flexvol(pv).expect("a CSI PV from the provisioner");
        let volume = self
            .lab
            .san
            .volume(ARRAY, &trident_lun_path(flexvol))
            .unwrap();
        std::fs::read(volume.backing_path).unwrap_or_default()
    }

    /// The PV's LUN starts with the source disk, byte for byte.
    pub fn assert_copied(&self, pv: &PersistentVolume) {
        let source = self.source_bytes();
        let target = self.volume_bytes(pv);
        assert!(target.len() >= source.len(), "target shorter than source");
        assert!(
            target[..source.len()] == *source,
            "target bytes differ from the source disk"
        );
    }

    /// No copy-offload initiator group is left on the array and no device or task on any host.
    pub fn assert_lab_clean(&self) {
        let groups: Vec<String> = self
            .lab
            .san
            .groups(ARRAY)
            .into_iter()
            .map(|g| g.name)
            .filter(|n| n.starts_with("xcopy-"))
            .collect();
        assert!(groups.is_empty(), "initiator groups left: {groups:?}");
        for host in &self.lab.hosts {
            assert!(
                host.sim.task_ids().is_empty(),
                "clone tasks left on {}",
                host.name
            );
        }
        let mut files: Vec<String> = std::fs::read_dir(self.lab.datastore_dir("ds1").join("vm-1"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            ["vm-1-flat.vmdk", "vm-1.vmdk"],
            "files in the VM folder"
        );
    }

    /// Events on an object of the namespace, as `reason: message`.
    pub async fn events_for(&self, name: &str) -> Vec<(String, String, String)> {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), &self.namespace);
        events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Stops everything and removes the namespace, the class and the PVs it created.
    pub async fn finish(mut self) {
        if self.controller.is_some() {
            self.stop_controller().await;
        }
        for sim in &self.sims {
            sim.abort();
        }
        co_lab::cluster::remove_storage_class(&self.client, &self.class).await;
        co_testpeers::delete_cluster_role(&self.client, &format!("{}-controller", self.namespace))
            .await;
        co_lab::cluster::delete_scratch_namespace(&self.client, &self.namespace).await;
    }
}
