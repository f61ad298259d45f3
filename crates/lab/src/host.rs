//! Simulated ESXi host state: storage adapters and their initiator ids, the devices the host discovered
//! (only after a rescan, from what the SAN maps to its initiators), device states, and the table of clone
//! tasks the vmkfstools wrapper runs (shared by the esxcli VIB namespace and the SSH endpoint).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use co_esxi::protocol::{
    CloneStarted, TaskStatus, WrapperCommand, accepts_client_task_id, is_task_id,
};
use tokio_util::sync::CancellationToken;

use crate::san::{ArrayVendor, San, VisibleLun};
use crate::scenario::{AdapterKind, HostSpec};
use crate::vmkfstools::{self, CloneRequest};

/// Version string the simulated wrapper reports: the one this build's wrapper scripts carry, so the
/// product's version checks pass against the lab as against a host with the current VIB/script.
pub use co_esxi::assets::WRAPPER_VERSION;

/// Where datastore files live on the machine running the lab: `/vmfs/volumes/<ds>/<p>` ⇔
/// `<data>/datastores/<ds>/<p>`. Every VMFS datastore is also a SAN volume `ds-<name>` on an array;
/// an NFS datastore is on none.
#[derive(Debug, Clone)]
pub struct DatastorePaths {
    root: PathBuf,
    arrays: BTreeMap<String, Option<String>>,
}

impl DatastorePaths {
    /// `datastore_arrays`: each datastore with the array of its volume (`None` for NFS).
    pub fn new(
        data_dir: &Path,
        datastore_arrays: impl IntoIterator<Item = (String, Option<String>)>,
    ) -> DatastorePaths {
        DatastorePaths {
            root: data_dir.join("datastores"),
            arrays: datastore_arrays.into_iter().collect(),
        }
    }

    /// Host directory of a datastore.
    pub fn dir(&self, datastore: &str) -> PathBuf {
        self.root.join(datastore)
    }

    /// Array backing a datastore (`None` for an NFS datastore or an unknown name).
    pub fn array_of(&self, datastore: &str) -> Option<&str> {
        self.arrays.get(datastore)?.as_deref()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.arrays.keys().map(String::as_str)
    }

    /// Name of the SAN volume that stands for a datastore's VMFS extent.
    pub fn volume_name(datastore: &str) -> String {
        format!("ds-{datastore}")
    }

    /// Resolves a datastore-relative path (`vm/disk.vmdk`), refusing anything that leaves the datastore.
    pub fn resolve(&self, datastore: &str, relative: &str) -> Option<PathBuf> {
        if !self.arrays.contains_key(datastore) {
            return None;
        }
        let mut path = self.dir(datastore);
        for part in relative.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if part == ".." || part.contains('\\') {
                return None;
            }
            path.push(part);
        }
        Some(path)
    }

    /// Resolves an ESXi path `/vmfs/volumes/<ds>/<p>` to (datastore, host path).
    pub fn resolve_esxi(&self, esxi_path: &str) -> Option<(String, PathBuf)> {
        let rest = esxi_path.strip_prefix("/vmfs/volumes/")?;
        let (datastore, relative) = rest.split_once('/').unwrap_or((rest, ""));
        Some((datastore.to_owned(), self.resolve(datastore, relative)?))
    }
}

/// A storage adapter of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adapter {
    /// `vmhba64` style device name.
    pub device: String,
    pub kind: AdapterKind,
    pub driver: String,
    /// iSCSI: the IQN.
    pub iscsi_name: Option<String>,
    /// FC: node and port WWNs.
    pub wwnn: Option<u64>,
    pub wwpn: Option<u64>,
    /// PowerFlex SDC: its GUID.
    pub sdc_guid: Option<String>,
}

/// The device name of the PowerFlex SDC's adapter.
pub const SDC_ADAPTER: &str = "vmhba33";

impl Adapter {
    /// The id the SAN sees: the IQN, `fc.<wwnn>:<wwpn>`, or the SDC's GUID.
    pub fn initiator_id(&self) -> String {
        match (self.kind, &self.iscsi_name, self.wwnn, self.wwpn) {
            (AdapterKind::Iscsi, Some(iqn), _, _) => iqn.clone(),
            (AdapterKind::Fc, _, Some(nn), Some(pn)) => format!("fc.{nn:016x}:{pn:016x}"),
            (AdapterKind::Sdc, ..) => self.sdc_guid.clone().unwrap_or_else(|| self.device.clone()),
            _ => self.device.clone(),
        }
    }

    /// Whether a volume of an array of `vendor` can be reached through this adapter: PowerFlex
    /// volumes only through the SDC, every other volume only through a SCSI transport.
    pub fn reaches(&self, vendor: ArrayVendor) -> bool {
        (self.kind == AdapterKind::Sdc) == vendor.reached_through_sdc()
    }
}

/// What ESXi reports as a device's `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    On,
    /// Administratively detached (`device set --state off`).
    Off,
    /// Still known but no longer mapped by the array.
    DeadTimeout,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::On => "on",
            DeviceState::Off => "off",
            DeviceState::DeadTimeout => "dead timeout",
        }
    }
}

/// A SCSI device the host discovered.
#[derive(Debug, Clone)]
pub struct Device {
    pub lun: VisibleLun,
    pub state: DeviceState,
}

/// Which way a rescan may change the device list (`esxcli storage core adapter rescan -t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescanKind {
    /// Discover new devices and notice vanished ones (they go `dead timeout`).
    All,
    /// Only discover new devices.
    Add,
    /// Notice vanished devices and drop them.
    Delete,
}

/// An error answered by the simulated wrapper: its exit status and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("wrapper status {status}: {message}")]
pub struct WrapperError {
    pub status: i32,
    pub message: String,
}

impl WrapperError {
    fn new(message: impl Into<String>) -> WrapperError {
        WrapperError {
            status: 1,
            message: message.into(),
        }
    }
}

#[derive(Debug)]
struct CloneTask {
    pid: u32,
    source: String,
    target_naa: String,
    clone_writes_at_start: u64,
    rdm_descriptor: PathBuf,
    last_line: String,
    exit_code: Option<i32>,
    std_err: String,
    cancel: CancellationToken,
    handle: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct HostState {
    devices: BTreeMap<String, Device>,
    tasks: HashMap<String, CloneTask>,
    authorized_keys: Vec<String>,
    /// Every wrapper operation the host received, in order (what went over the wire).
    wrapper_commands: Vec<WrapperCommand>,
}

/// One simulated ESXi host. Cheap to clone.
#[derive(Clone)]
pub struct SimHost {
    pub spec: Arc<HostSpec>,
    /// Managed object id of the HostSystem (`host-NN`).
    pub moid: String,
    pub adapters: Arc<Vec<Adapter>>,
    san: San,
    paths: Arc<DatastorePaths>,
    state: Arc<Mutex<HostState>>,
    next_pid: Arc<AtomicU32>,
    /// How many of the next clones stay running without copying until aborted (tests).
    clones_to_hold: Arc<AtomicU32>,
}

impl std::fmt::Debug for SimHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHost")
            .field("name", &self.spec.name)
            .field("moid", &self.moid)
            .finish()
    }
}

/// Random bytes from the process's hash seeds (OS randomness), for lab keys and ids.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let state = std::collections::hash_map::RandomState::new();
    let mut out = [0u8; N];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut hasher = state.build_hasher();
        hasher.write_usize(i);
        let bytes = hasher.finish().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    out
}

/// A UUID-shaped random id, as the wrapper generates from 16 random bytes.
pub(crate) fn random_uuid() -> String {
    let hex = hex_string(&random_bytes::<16>());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Normalises a path argument the way the wrapper does and checks it stays in the allowed trees.
pub fn validate_wrapper_path(raw: &str) -> Result<String, WrapperError> {
    let mut path = raw.to_owned();
    while path.contains("//") {
        path = path.replace("//", "/");
    }
    while path.contains("/./") {
        path = path.replace("/./", "/");
    }
    while path.len() > 1 && path.ends_with('/') {
        path.pop();
    }
    let error = |why: &str| WrapperError::new(format!("Path validation error: {why}: {raw}"));
    if path.contains("..") {
        return Err(error("path traversal is not allowed"));
    }
    const ALLOWED: [&str; 3] = ["/vmfs/volumes/", "/vmfs/devices/disks/", "/tmp/"];
    if !ALLOWED.iter().any(|p| path.starts_with(p)) {
        return Err(error(
            "path is outside /vmfs/volumes/, /vmfs/devices/disks/ and /tmp/",
        ));
    }
    Ok(path)
}

impl SimHost {
    /// Builds a host; `index` (0-based) makes its adapter identities unique within the lab.
    pub fn new(
        spec: HostSpec,
        moid: String,
        index: usize,
        san: San,
        paths: Arc<DatastorePaths>,
    ) -> SimHost {
        let short = spec.name.split('.').next().unwrap_or(&spec.name).to_owned();
        let n = index as u64 + 1;
        let adapter = match spec.adapter {
            AdapterKind::Iscsi => Adapter {
                device: "vmhba64".into(),
                kind: AdapterKind::Iscsi,
                driver: "iscsi_vmk".into(),
                iscsi_name: Some(format!(
                    "iqn.1998-01.com.vmware:{short}-{:08x}",
                    0x4f3c_2a00 + n
                )),
                wwnn: None,
                wwpn: None,
                sdc_guid: None,
            },
            AdapterKind::Fc => Adapter {
                device: "vmhba2".into(),
                kind: AdapterKind::Fc,
                driver: "qlnativefc".into(),
                iscsi_name: None,
                wwnn: Some(0x2000_0025_b500_a000 + n),
                wwpn: Some(0x2000_0025_b500_b000 + n),
                sdc_guid: None,
            },
            // Never a scenario's adapter (not deserialized): the SDC comes from the module below.
            AdapterKind::Local | AdapterKind::Sdc => Adapter {
                device: "vmhba0".into(),
                kind: AdapterKind::Local,
                driver: "vmw_ahci".into(),
                iscsi_name: None,
                wwnn: None,
                wwpn: None,
                sdc_guid: None,
            },
        };
        let sdc = spec.sdc_guid().map(|guid| Adapter {
            device: SDC_ADAPTER.into(),
            kind: AdapterKind::Sdc,
            driver: crate::scenario::SCINI_MODULE.into(),
            iscsi_name: None,
            wwnn: None,
            wwpn: None,
            sdc_guid: Some(guid.to_owned()),
        });
        let state = HostState {
            authorized_keys: spec.authorized_keys.clone(),
            ..HostState::default()
        };
        SimHost {
            spec: Arc::new(spec),
            moid,
            adapters: Arc::new(std::iter::once(adapter).chain(sdc).collect()),
            san,
            paths,
            state: Arc::new(Mutex::new(state)),
            next_pid: Arc::new(AtomicU32::new(2_100_000 + 1000 * index as u32)),
            clones_to_hold: Arc::new(AtomicU32::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HostState> {
        // State updates are single assignments; a panic elsewhere cannot leave them torn.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn paths(&self) -> &DatastorePaths {
        &self.paths
    }

    pub fn san(&self) -> &San {
        &self.san
    }

    /// Initiator ids of the SAN adapters, as the SAN matches them.
    pub fn initiators(&self) -> Vec<String> {
        self.adapters
            .iter()
            .filter(|a| a.kind != AdapterKind::Local)
            .map(Adapter::initiator_id)
            .collect()
    }

    /// The adapters through which this host reaches `lun` when the array maps it to one of their
    /// initiators (the SDC for PowerFlex volumes, the SCSI adapters for the rest).
    pub fn adapters_to(&self, lun: &VisibleLun) -> Vec<&Adapter> {
        let Some(vendor) = self.san.array_vendor(&lun.volume.array) else {
            return Vec::new();
        };
        self.adapters
            .iter()
            .filter(|a| a.kind != AdapterKind::Local && a.reaches(vendor))
            .collect()
    }

    /// What a rescan would find now: every volume mapped to one of the host's initiators through
    /// an adapter that reaches that volume's array.
    fn visible_luns(&self) -> Vec<VisibleLun> {
        let mut visible: BTreeMap<String, VisibleLun> = BTreeMap::new();
        for adapter in self
            .adapters
            .iter()
            .filter(|a| a.kind != AdapterKind::Local)
        {
            for lun in self.san.visible_luns(&[adapter.initiator_id()]) {
                let reached = self
                    .san
                    .array_vendor(&lun.volume.array)
                    .is_some_and(|vendor| adapter.reaches(vendor));
                if !reached {
                    continue;
                }
                visible
                    .entry(lun.naa.clone())
                    .and_modify(|known| {
                        if lun.lun_id < known.lun_id {
                            *known = lun.clone();
                        }
                    })
                    .or_insert(lun);
            }
        }
        visible.into_values().collect()
    }

    /// Rescans the SAN: new mappings appear as `on` devices, vanished ones go `dead timeout`
    /// (and are dropped by a delete rescan).
    pub fn rescan(&self, kind: RescanKind) {
        let visible = self.visible_luns();
        let visible_naas: BTreeSet<String> = visible.iter().map(|l| l.naa.clone()).collect();
        let mut state = self.lock();
        if kind != RescanKind::Delete {
            for lun in visible {
                match state.devices.get_mut(&lun.naa) {
                    Some(device) => {
                        if device.state == DeviceState::DeadTimeout {
                            device.state = DeviceState::On;
                        }
                        device.lun = lun;
                    }
                    None => {
                        state.devices.insert(
                            lun.naa.clone(),
                            Device {
                                lun,
                                state: DeviceState::On,
                            },
                        );
                    }
                }
            }
        }
        for (naa, device) in state.devices.iter_mut() {
            if !visible_naas.contains(naa) && device.state == DeviceState::On {
                device.state = DeviceState::DeadTimeout;
            }
        }
        if kind == RescanKind::Delete {
            state
                .devices
                .retain(|naa, d| visible_naas.contains(naa) || d.state == DeviceState::Off);
        }
    }

    /// Discovered devices, ordered by NAA.
    pub fn devices(&self) -> Vec<Device> {
        self.lock().devices.values().cloned().collect()
    }

    pub fn device(&self, naa: &str) -> Option<Device> {
        self.lock().devices.get(naa).cloned()
    }

    /// `esxcli storage core device set --state on|off`. Like ESXi, a device a clone still writes
    /// to (an open handle) cannot be set off.
    pub fn set_device_state(&self, naa: &str, on: bool) -> Result<(), String> {
        let mut state = self.lock();
        if !on
            && state
                .tasks
                .values()
                .any(|t| t.target_naa == naa && t.exit_code.is_none())
        {
            return Err(device_busy(naa));
        }
        let device = state
            .devices
            .get_mut(naa)
            .ok_or_else(|| format!("Unable to find device {naa}"))?;
        device.state = if on {
            DeviceState::On
        } else {
            DeviceState::Off
        };
        Ok(())
    }

    /// `esxcli storage core device detached remove -d`: forgets a detached device.
    pub fn remove_detached(&self, naa: &str) -> Result<(), String> {
        let mut state = self.lock();
        match state.devices.get(naa) {
            Some(d) if d.state != DeviceState::On => {
                state.devices.remove(naa);
                Ok(())
            }
            Some(_) => Err(format!("Device {naa} is not in the detached device list")),
            None => Err(format!("Unable to find detached device {naa}")),
        }
    }

    pub fn authorized_keys(&self) -> Vec<String> {
        self.lock().authorized_keys.clone()
    }

    /// Replaces root's authorized_keys (the lab's SSH key slot).
    pub fn set_authorized_keys(&self, lines: Vec<String>) {
        self.lock().authorized_keys = lines;
    }

    /// Makes the next clone started on this host stay running without writing anything until it
    /// is aborted or cleaned: a clone that is still writing, for as long as a test needs one.
    pub fn hold_next_clone(&self) {
        self.clones_to_hold.fetch_add(1, Ordering::SeqCst);
    }

    /// Version the host's wrapper reports.
    pub fn wrapper_version(&self) -> &str {
        self.spec
            .wrapper_version
            .as_deref()
            .unwrap_or(WRAPPER_VERSION)
    }

    /// Records a wrapper operation as received (see [`SimHost::wrapper_commands`]).
    pub fn record_wrapper_command(&self, command: &WrapperCommand) {
        self.lock().wrapper_commands.push(command.clone());
    }

    /// Every wrapper operation this host received, in order.
    pub fn wrapper_commands(&self) -> Vec<WrapperCommand> {
        self.lock().wrapper_commands.clone()
    }

    /// Wrapper `--clone -s <source vmdk> -t <target device> [-i <task id>]`. With a task id the
    /// task gets that id, and a start naming an existing task answers it without starting a
    /// second clone, as wrapper 1.1.0 does; a wrapper before 1.1.0 refuses the option.
    pub fn start_clone(
        &self,
        source: &str,
        target: &str,
        task_id: Option<&str>,
    ) -> Result<CloneStarted, WrapperError> {
        if task_id.is_some() && !accepts_client_task_id(self.wrapper_version()) {
            return Err(WrapperError::new("Unknown option: -i"));
        }
        if task_id.is_some_and(|id| !is_task_id(id)) {
            return Err(WrapperError::new("task id must be a lowercase UUID"));
        }
        let source = validate_wrapper_path(source)?;
        let target = validate_wrapper_path(target)?;
        let (datastore, source_path) = self.paths.resolve_esxi(&source).ok_or_else(|| {
            WrapperError::new(format!(
                "source {source} is not on a datastore of this host"
            ))
        })?;
        if !source_path.is_file() {
            return Err(WrapperError::new(format!("source {source} does not exist")));
        }
        let naa = target
            .strip_prefix("/vmfs/devices/disks/")
            .ok_or_else(|| WrapperError::new(format!("target {target} is not a device path")))?
            .to_owned();
        let device = self
            .device(&naa)
            .filter(|d| d.state == DeviceState::On)
            .ok_or_else(|| {
                WrapperError::new(format!(
                    "target device {naa} is not attached to this host (rescan after mapping)"
                ))
            })?;
        let writes_at_start = self.san.clone_counters(&naa).clone_write_ops;
        let mut state = self.lock();
        if let Some(id) = task_id
            && let Some(existing) = state.tasks.get(id)
        {
            if existing.source != source || existing.target_naa != naa {
                return Err(WrapperError::new(format!(
                    "task id {id} already names the clone of {} onto /vmfs/devices/disks/{}; \
                     choose a new id for another clone",
                    existing.source, existing.target_naa
                )));
            }
            tracing::info!(host = %self.spec.name, task_id = id, "clone task already started: not starting it again");
            return Ok(CloneStarted {
                task_id: id.to_owned(),
                pid: i64::from(existing.pid),
                xcopy_used: false,
            });
        }
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        let task_id = task_id.map_or_else(random_uuid, str::to_owned);
        let held = self
            .clones_to_hold
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let mut rdm = source_path.clone().into_os_string();
        rdm.push(format!("-rdmdisk-{pid}"));
        let rdm_descriptor = PathBuf::from(rdm);
        let request = CloneRequest {
            source_descriptor: source_path,
            target: device.lun.volume.clone(),
            rdm_descriptor: rdm_descriptor.clone(),
            source_array: self.paths.array_of(&datastore).map(str::to_owned),
            source_lun: self
                .paths
                .array_of(&datastore)
                .and_then(|array| {
                    self.san
                        .volume(array, &DatastorePaths::volume_name(&datastore))
                })
                .map(|volume| volume.naa),
            san: self.san.clone(),
        };
        let cancel = CancellationToken::new();
        // Registered under the same lock as the lookup: two starts with one id make one task.
        state.tasks.insert(
            task_id.clone(),
            CloneTask {
                pid,
                source,
                target_naa: naa,
                clone_writes_at_start: writes_at_start,
                rdm_descriptor,
                last_line: String::new(),
                exit_code: None,
                std_err: String::new(),
                cancel: cancel.clone(),
                handle: None,
            },
        );
        drop(state);
        let host = self.clone();
        let id = task_id.clone();
        let handle = tokio::spawn(async move {
            let progress_host = host.clone();
            let progress_id = id.clone();
            let progress = move |percent: u8| {
                if let Some(task) = progress_host.lock().tasks.get_mut(&progress_id) {
                    task.last_line = format!("Clone: {percent}% done.");
                }
            };
            let outcome = if held {
                cancel.cancelled().await;
                Err(vmkfstools::VmkfstoolsError::Cancelled)
            } else {
                vmkfstools::clone(request, progress, cancel).await
            };
            let mut state = host.lock();
            if let Some(task) = state.tasks.get_mut(&id) {
                match outcome {
                    Ok(_) => task.exit_code = Some(0),
                    Err(e) => {
                        task.exit_code = Some(1);
                        task.std_err = format!("Failed to clone disk: {e}\n");
                    }
                }
            }
        });
        if let Some(task) = self.lock().tasks.get_mut(&task_id) {
            task.handle = Some(handle);
        }
        tracing::info!(host = %self.spec.name, task_id, pid, "clone task started");
        Ok(CloneStarted {
            task_id,
            pid: i64::from(pid),
            xcopy_used: false,
        })
    }

    /// Wrapper `--task-get -i <id>`.
    pub fn task_status(&self, task_id: &str) -> Result<TaskStatus, WrapperError> {
        let state = self.lock();
        let task = state
            .tasks
            .get(task_id)
            .ok_or_else(|| missing_task(task_id))?;
        let writes = self.san.clone_counters(&task.target_naa).clone_write_ops;
        Ok(TaskStatus {
            task_id: task_id.to_owned(),
            pid: i64::from(task.pid),
            exit_code: task.exit_code,
            last_line: task.last_line.clone(),
            xcopy_used: Some(writes > task.clone_writes_at_start),
            std_err: task.std_err.clone(),
        })
    }

    /// Wrapper `--task-abort -i <id>`: cancels a running clone (no-op once it finished) and answers the
    /// task's status as task-get does.
    pub fn abort_task(&self, task_id: &str) -> Result<TaskStatus, WrapperError> {
        self.lock()
            .tasks
            .get(task_id)
            .ok_or_else(|| missing_task(task_id))?
            .cancel
            .cancel();
        self.task_status(task_id)
    }

    /// Wrapper `--task-clean -i <id>`: stops the task if needed, removes the RDM descriptor it wrote and
    /// forgets the task.
    pub async fn clean_task(&self, task_id: &str) -> Result<(), WrapperError> {
        let task = self
            .lock()
            .tasks
            .remove(task_id)
            .ok_or_else(|| missing_task(task_id))?;
        task.cancel.cancel();
        if let Some(handle) = task.handle {
            let _ = handle.await;
        }
        // As the wrapper does: the descriptor's VMFSRDM extent names the mapping file; both go.
        let mut doomed = Vec::new();
        if let Ok(text) = tokio::fs::read(&task.rdm_descriptor).await {
            if let Ok(descriptor) = vmkfstools::parse_descriptor(&text) {
                let mappings = descriptor
                    .extents
                    .iter()
                    .filter(|e| e.kind == vmkfstools::ExtentKind::VmfsRdm);
                doomed.extend(
                    mappings
                        .filter_map(|e| e.file.as_ref())
                        .filter(|f| !f.contains('/'))
                        .map(|f| task.rdm_descriptor.with_file_name(f)),
                );
            }
            doomed.push(task.rdm_descriptor.clone());
        }
        for path in doomed {
            if let Err(e) = tokio::fs::remove_file(&path).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "could not remove RDM file");
            }
        }
        Ok(())
    }

    /// Task ids currently in the table (running or finished, not cleaned).
    pub fn task_ids(&self) -> Vec<String> {
        self.lock().tasks.keys().cloned().collect()
    }

    /// Asks every clone task to stop, without waiting (for drop paths).
    pub fn cancel_tasks(&self) {
        for task in self.lock().tasks.values() {
            task.cancel.cancel();
        }
    }

    /// Cancels and awaits every clone task (lab shutdown).
    pub async fn stop_tasks(&self) {
        self.cancel_tasks();
        let handles: Vec<_> = {
            let mut state = self.lock();
            state
                .tasks
                .values_mut()
                .filter_map(|t| t.handle.take())
                .collect()
        };
        for handle in handles {
            let _ = handle.await;
        }
    }
}

/// ESXi's refusal to detach a device with open handles (here: a clone task writing to it).
fn device_busy(naa: &str) -> String {
    format!(
        "Unable to set device state for {naa}: Sysinfo error: Busy. The device is in use: a \
         process on the host has I/O outstanding on it (see the VMkernel log for details)"
    )
}

fn missing_task(task_id: &str) -> WrapperError {
    if task_id.is_empty() {
        WrapperError::new("-i (task-id) is required")
    } else {
        WrapperError::new(format!(
            "Task directory /tmp/vmkfstools-wrapper-{task_id} not found"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_paths_are_normalised_and_confined() {
        assert_eq!(
            validate_wrapper_path("/vmfs//volumes/ds1/./vm/x.vmdk/").unwrap(),
            "/vmfs/volumes/ds1/vm/x.vmdk"
        );
        assert!(validate_wrapper_path("/vmfs/volumes/ds1/../../etc/passwd").is_err());
        assert!(validate_wrapper_path("/etc/shadow").is_err());
        assert_eq!(
            validate_wrapper_path("/vmfs/devices/disks/naa.1").unwrap(),
            "/vmfs/devices/disks/naa.1"
        );
    }

    #[test]
    fn datastore_paths_map_both_ways_and_refuse_escapes() {
        let paths = DatastorePaths::new(
            Path::new("/data"),
            [("ds1".to_owned(), Some("a".to_owned()))],
        );
        let (ds, p) = paths.resolve_esxi("/vmfs/volumes/ds1/vm/vm.vmdk").unwrap();
        assert_eq!(ds, "ds1");
        assert_eq!(p, Path::new("/data/datastores/ds1/vm/vm.vmdk"));
        assert!(paths.resolve_esxi("/vmfs/volumes/ds1/../x").is_none());
        assert!(paths.resolve_esxi("/vmfs/volumes/ds2/x").is_none());
    }

    #[test]
    fn random_ids_are_uuid_shaped_and_distinct() {
        let a = random_uuid();
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_ne!(a, random_uuid());
    }
}
