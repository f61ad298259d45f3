//! Wiring: starts every simulated endpoint of a scenario and hands out their addresses and credentials.
//!
//! [`Lab::start`] builds the SAN (arrays, one volume per VMFS datastore mapped to every host; NFS
//! datastores are only directories), writes the
//! VMs' disks with a known pattern, then serves the vCenter SOAP endpoint and each array's REST API over
//! HTTPS (one self-signed certificate per lab) on 127.0.0.1 with ephemeral ports, and one SSH endpoint
//! per host on the host's management IP (its own loopback address `127.0.0.<11+N>` by default) and
//! port 22 like ESXi, or an ephemeral port where 22 cannot be had (not root, already taken).
//! [`RunningLab::shutdown`] stops them all and waits for every task.

use std::io::{Seek, SeekFrom, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::arrays::ArraySideState;
use crate::arrays::flashsystem::FlashSystem;
use crate::arrays::infinibox::InfiniBox;
use crate::arrays::powerflex::PowerFlex;
use crate::arrays::powermax::PowerMax;
use crate::arrays::powerstore::PowerStore;
use crate::arrays::primera3par::Primera;
use crate::arrays::pure::FlashArray;
use crate::arrays::vantara::Vantara;
use crate::faults::FaultPlan;
use crate::host::{DatastorePaths, RescanKind, SimHost, random_uuid};
use crate::san::{ArrayVendor, San, SanError, stable_uuid};
use crate::scenario::{
    DatastoreKind, HostSpec, KernelModuleSpec, SCINI_GUID_OPTION, SCINI_MODULE, Scenario,
    ScenarioError, VendorSpec,
};
use crate::ssh::SshEndpoint;
use crate::vcenter::inventory::{
    DatastoreBacking, DatastoreEntry, Inventory, VmDisk, VmEntry, host_moid,
};
use crate::vcenter::{self, VcenterState};

/// Initiator group every host is in, on every array, for the datastore volumes.
pub const DATASTORE_GROUP: &str = "lab-esxi-datastores";

/// The NFS server every NFS datastore of the lab is exported from (`nas.remoteHost`).
pub const NFS_SERVER: &str = "nfs.lab.local";

/// Size of one pattern block; every MiB of a lab disk starts with one, the rest is a hole.
pub const PATTERN_BLOCK: usize = 4096;

/// The lab could not start.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("lab data directory {path}: {source}; choose a writable directory")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("building the lab SAN failed: {0}")]
    San(#[from] SanError),
    #[error("writing disk {path}: {source}")]
    Disk {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("could not listen on 127.0.0.1: {0}")]
    Listen(std::io::Error),
}

/// A simulated array's REST endpoint.
#[derive(Debug, Clone)]
pub struct ArrayEndpoint {
    pub name: String,
    pub vendor: VendorSpec,
    /// Base URL, e.g. `https://127.0.0.1:40123`.
    pub url: String,
    pub username: String,
    pub password: String,
    pub svm: String,
    /// What the array's facade holds of a copy beyond the SAN model (pairs, copy maps, …).
    pub array_side: ArraySideState,
}

/// A simulated ESXi host and its SSH endpoint.
#[derive(Debug)]
pub struct HostEndpoint {
    pub name: String,
    /// `host-NN`; the product's host id is `hostsystem-host-NN`.
    pub moid: String,
    pub ssh_addr: SocketAddr,
    /// Why the SSH endpoint is not on the scenario's `esxi_ssh_port` (not root, port taken), if it
    /// is not; `None` when it is or when the scenario asked for an ephemeral port.
    pub ssh_port_fallback: Option<String>,
    /// SSH host public key (OpenSSH format).
    pub ssh_host_key: String,
    pub sim: SimHost,
    ssh: SshEndpoint,
}

/// The router of a vendor's facade, and what the facade holds of copies read through `state`.
fn served<F: Send + Sync + 'static>(
    facade: F,
    router: impl FnOnce(&F) -> axum::Router,
    state: fn(&F) -> Vec<String>,
) -> (axum::Router, ArraySideState) {
    let router = router(&facade);
    (router, ArraySideState::new(move || state(&facade)))
}

/// A running lab.
pub struct RunningLab {
    /// `https://127.0.0.1:<port>/sdk`.
    pub vcenter_url: String,
    pub vcenter_addr: SocketAddr,
    /// SHA-256 thumbprint of the lab certificate, colon-separated upper-case hex.
    pub thumbprint: String,
    /// The lab certificate (PEM), for clients that pin it.
    pub certificate_pem: String,
    pub username: String,
    pub password: String,
    pub datacenter: String,
    pub hosts: Vec<HostEndpoint>,
    pub arrays: Vec<ArrayEndpoint>,
    pub san: San,
    pub faults: FaultPlan,
    pub data_dir: PathBuf,
    vcenter: Arc<VcenterState>,
    servers: axum_server::Control,
    server_tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for RunningLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningLab")
            .field("vcenter_url", &self.vcenter_url)
            .field("thumbprint", &self.thumbprint)
            .field("hosts", &self.hosts)
            .field("arrays", &self.arrays)
            .finish_non_exhaustive()
    }
}

/// Entry point.
pub struct Lab;

fn vendor(spec: VendorSpec) -> ArrayVendor {
    match spec {
        VendorSpec::Ontap => ArrayVendor::Ontap,
        VendorSpec::PureFlashArray => ArrayVendor::PureFlashArray,
        VendorSpec::PowerStore => ArrayVendor::PowerStore,
        VendorSpec::FlashSystem => ArrayVendor::FlashSystem,
        VendorSpec::PowerMax => ArrayVendor::PowerMax,
        VendorSpec::InfiniBox => ArrayVendor::InfiniBox,
        VendorSpec::PowerFlex => ArrayVendor::PowerFlex,
        VendorSpec::Primera3Par => ArrayVendor::Primera3Par,
        VendorSpec::Vantara => ArrayVendor::Vantara,
    }
}

/// Gives a host without one a PowerFlex SDC: the `scini` module with a GUID stable for the host's
/// name, as the SDC's installation on ESXi sets it.
fn give_sdc(spec: &mut HostSpec) {
    if spec.kernel_modules.iter().any(|m| m.name == SCINI_MODULE) {
        return;
    }
    let guid = stable_uuid(&[&spec.name, "sdc"]).to_ascii_uppercase();
    spec.kernel_modules.push(KernelModuleSpec {
        name: SCINI_MODULE.to_owned(),
        options: format!("{SCINI_GUID_OPTION}={guid}"),
    });
}

/// The bytes of pattern block `index` of a lab disk (deterministic, so tests can verify copies).
pub fn pattern_block(index: u64) -> Vec<u8> {
    let mut block: Vec<u8> = (0..PATTERN_BLOCK as u64)
        .map(|j| ((index * 131 + j * 7) % 251) as u8)
        .collect();
    let label = format!("copy-offload lab block {index}\n");
    block[..label.len()].copy_from_slice(label.as_bytes());
    block
}

/// Writes a lab flat extent: sparse, with [`pattern_block`] `i` at the start of every MiB `i`.
pub fn write_pattern_disk(path: &Path, size_bytes: u64) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.set_len(size_bytes)?;
    let mib = 1024 * 1024;
    for index in 0..size_bytes.div_ceil(mib) {
        let offset = index * mib;
        let len = (size_bytes - offset).min(PATTERN_BLOCK as u64) as usize;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(&pattern_block(index)[..len])?;
    }
    file.sync_all()
}

/// An ESXi-style descriptor (`createType="vmfs"`) for a flat extent.
pub fn vmfs_descriptor(flat_name: &str, size_bytes: u64, uuid: &str) -> String {
    let sectors = size_bytes / 512;
    let cylinders = (sectors / (255 * 63)).max(1);
    let cid = &uuid.replace('-', "")[..8];
    format!(
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID={cid}\nparentCID=ffffffff\ncreateType=\"vmfs\"\n\n\
         # Extent description\nRW {sectors} VMFS \"{flat_name}\"\n\n# The Disk Data Base\n#DDB\n\n\
         ddb.adapterType = \"lsilogic\"\nddb.geometry.cylinders = \"{cylinders}\"\nddb.geometry.heads = \"255\"\n\
         ddb.geometry.sectors = \"63\"\nddb.uuid = \"{uuid}\"\nddb.virtualHWVersion = \"19\"\n"
    )
}

/// An ESXi-style physical-compatibility RDM descriptor pointing at `mapping_name`.
pub fn rdm_descriptor(mapping_name: &str, size_bytes: u64, uuid: &str) -> String {
    let sectors = size_bytes / 512;
    let cid = &uuid.replace('-', "")[..8];
    format!(
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID={cid}\nparentCID=ffffffff\n\
         createType=\"vmfsPassthroughRawDeviceMap\"\n\n# Extent description\nRW {sectors} VMFSRDM \"{mapping_name}\"\n\n\
         # The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\nddb.uuid = \"{uuid}\"\nddb.virtualHWVersion = \"19\"\n"
    )
}

fn tls_config(
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
) -> Result<axum_server::tls_rustls::RustlsConfig, LabError> {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| LabError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .map_err(|e| LabError::Tls(e.to_string()))?;
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(config),
    ))
}

/// Colon-separated upper-case SHA-256 of a DER certificate, as vCenter shows thumbprints.
pub fn thumbprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

async fn array_faults(
    State((faults, array)): State<(FaultPlan, String)>,
    request: Request,
    next: Next,
) -> Response {
    let site = format!(
        "array:{array}:{} {}",
        request.method(),
        request.uri().path()
    );
    match faults.apply(&site).await {
        Ok(()) => next.run(request).await,
        Err(injected) => (
            axum::http::StatusCode::from_u16(injected.http_status())
                .unwrap_or(axum::http::StatusCode::SERVICE_UNAVAILABLE),
            injected.message,
        )
            .into_response(),
    }
}

/// The loopback address of the i-th host (from 0), `127.0.0.<11+i>`: every host gets its own address
/// so each can listen on the SSH port ESXi uses. Where only `127.0.0.1` is a loopback address (not
/// Linux), every host shares it.
fn host_loopback(index: usize) -> IpAddr {
    let own = IpAddr::from([
        127,
        0,
        0,
        11u8.saturating_add(u8::try_from(index).unwrap_or(u8::MAX)),
    ]);
    if std::net::TcpListener::bind((own, 0)).is_ok() {
        own
    } else {
        tracing::info!(%own, "no per-host loopback address; the lab's hosts share 127.0.0.1");
        IpAddr::from([127, 0, 0, 1])
    }
}

/// Starts a host's SSH endpoint on `ip:port`, or on an ephemeral port of `ip` when `port` cannot be
/// had, answering why in that case.
async fn start_ssh(
    host: &SimHost,
    faults: &FaultPlan,
    ip: IpAddr,
    port: u16,
) -> Result<(SshEndpoint, Option<String>), LabError> {
    let ephemeral = SocketAddr::new(ip, 0);
    if port == 0 {
        let ssh = SshEndpoint::start_at(host.clone(), faults.clone(), ephemeral).await;
        return Ok((ssh.map_err(LabError::Listen)?, None));
    }
    match SshEndpoint::start_at(host.clone(), faults.clone(), SocketAddr::new(ip, port)).await {
        Ok(ssh) => Ok((ssh, None)),
        Err(e) => {
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                "; a port below 1024 needs root"
            } else {
                ""
            };
            let reason = format!("port {port} on {ip} is not available ({e}){hint}");
            let ssh = SshEndpoint::start_at(host.clone(), faults.clone(), ephemeral)
                .await
                .map_err(LabError::Listen)?;
            tracing::info!(host = host.name(), addr = %ssh.addr, %reason, "ESXi SSH on an ephemeral port");
            Ok((ssh, Some(reason)))
        }
    }
}

impl Lab {
    /// Builds and serves a scenario; `data_dir` receives the datastores and the SAN's volume files.
    pub async fn start(scenario: Scenario, data_dir: &Path) -> Result<RunningLab, LabError> {
        // Scenarios built in code skip `from_yaml`; the lab relies on their consistency all the same.
        scenario.validate()?;
        let dir_error = |source| LabError::DataDir {
            path: data_dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(data_dir.join("san")).map_err(dir_error)?;
        let faults = FaultPlan::new(scenario.faults.clone());
        let san = San::new(&data_dir.join("san"));
        for array in &scenario.arrays {
            san.add_array(&array.name, vendor(array.vendor))?;
        }
        let paths = Arc::new(DatastorePaths::new(
            data_dir,
            scenario
                .datastores
                .iter()
                .map(|d| (d.name.clone(), d.array.clone())),
        ));
        let has_powerflex = scenario
            .arrays
            .iter()
            .any(|a| a.vendor == VendorSpec::PowerFlex);
        let hosts: Vec<SimHost> = scenario
            .hosts
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut spec = spec.clone();
                if spec.management_ip.is_empty() {
                    spec.management_ip = host_loopback(i).to_string();
                }
                if has_powerflex {
                    give_sdc(&mut spec);
                }
                SimHost::new(spec, host_moid(i), i, san.clone(), paths.clone())
            })
            .collect();
        let all_initiators: Vec<String> = hosts.iter().flat_map(SimHost::initiators).collect();
        let mut datastores = Vec::new();
        for (i, ds) in scenario.datastores.iter().enumerate() {
            std::fs::create_dir_all(paths.dir(&ds.name)).map_err(|e| LabError::DataDir {
                path: paths.dir(&ds.name),
                source: e,
            })?;
            let capacity_bytes = ds.capacity_gib * 1024 * 1024 * 1024;
            // Validated: VMFS datastores, and only they, name an array.
            let (backing, capacity_bytes) = match &ds.array {
                Some(array) => {
                    let volume_name = DatastorePaths::volume_name(&ds.name);
                    let volume = san.create_volume(array, &volume_name, capacity_bytes)?;
                    san.ensure_group(array, DATASTORE_GROUP, &all_initiators)?;
                    san.map(array, &volume_name, DATASTORE_GROUP)?;
                    for vaai in scenario
                        .vaai_clone
                        .iter()
                        .filter(|v| v.datastore == ds.name)
                    {
                        san.set_vaai_clone_status(&volume.naa, vaai.status);
                    }
                    let backing = DatastoreBacking::Vmfs {
                        array: array.clone(),
                        naa: volume.naa,
                    };
                    (backing, volume.size_bytes)
                }
                None => {
                    let backing = DatastoreBacking::Nfs {
                        remote_host: NFS_SERVER.to_owned(),
                        remote_path: format!("/export/{}", ds.name),
                        nfs41: ds.kind == DatastoreKind::Nfs41,
                    };
                    (backing, capacity_bytes)
                }
            };
            datastores.push(DatastoreEntry {
                name: ds.name.clone(),
                moid: format!("datastore-{}", i + 30),
                backing,
                capacity_bytes,
            });
        }
        let mut vms = Vec::new();
        for (i, vm) in scenario.vms.iter().enumerate() {
            let host = scenario
                .hosts
                .iter()
                .position(|h| h.name == vm.host)
                .unwrap_or_default();
            let mut disks = Vec::new();
            for (d, disk) in vm.disks.iter().enumerate() {
                let stem = if d == 0 {
                    vm.name.clone()
                } else {
                    format!("{}_{d}", vm.name)
                };
                let descriptor = format!("{}/{stem}.vmdk", vm.name);
                let size = disk.size_mib * 1024 * 1024;
                let uuid = random_uuid();
                let vm_dir = paths.dir(&disk.datastore).join(&vm.name);
                std::fs::create_dir_all(&vm_dir).map_err(|source| LabError::Disk {
                    path: vm_dir.clone(),
                    source,
                })?;
                let (flat, rdm_naa) = match &disk.rdm_array {
                    None => {
                        let flat_name = format!("{stem}-flat.vmdk");
                        let flat_path = vm_dir.join(&flat_name);
                        let write = || {
                            write_pattern_disk(&flat_path, size)?;
                            std::fs::write(
                                vm_dir.join(format!("{stem}.vmdk")),
                                vmfs_descriptor(&flat_name, size, &uuid),
                            )
                        };
                        write().map_err(|source| LabError::Disk {
                            path: flat_path.clone(),
                            source,
                        })?;
                        (format!("{}/{flat_name}", vm.name), None)
                    }
                    Some(array) => {
                        let volume_name = format!("rdm-{}-{d}", vm.name);
                        let volume = san.create_volume(array, &volume_name, size)?;
                        san.ensure_group(array, DATASTORE_GROUP, &all_initiators)?;
                        san.map(array, &volume_name, DATASTORE_GROUP)?;
                        let mapping_name = format!("{stem}-rdmp.vmdk");
                        let mapping_path = vm_dir.join(&mapping_name);
                        let write = || {
                            write_pattern_disk(&volume.backing_path, size)?;
                            let mut mapping = std::fs::File::create(&mapping_path)?;
                            mapping.write_all(
                                crate::vmkfstools::rdm_mapping_contents(&volume.naa).as_bytes(),
                            )?;
                            mapping.set_len(size)?;
                            std::fs::write(
                                vm_dir.join(format!("{stem}.vmdk")),
                                rdm_descriptor(&mapping_name, size, &uuid),
                            )
                        };
                        write().map_err(|source| LabError::Disk {
                            path: mapping_path.clone(),
                            source,
                        })?;
                        (format!("{}/{mapping_name}", vm.name), Some(volume.naa))
                    }
                };
                let mut backing_object_id = disk.vvol.then(|| format!("rfc4122.{}", random_uuid()));
                if let (Some(vvol_id), Some(array)) =
                    (&mut backing_object_id, scenario.arrays.first())
                {
                    let volume =
                        san.create_volume(&array.name, &format!("vvol-{}-{d}", vm.name), size)?;
                    let flat_path = paths.dir(&disk.datastore).join(&flat);
                    std::fs::copy(&flat_path, &volume.backing_path).map_err(|source| {
                        LabError::Disk {
                            path: volume.backing_path.clone(),
                            source,
                        }
                    })?;
                    // Hitachi's VASA provider ends a vVol's id in its LDEV number.
                    if array.vendor == VendorSpec::Vantara
                        && let Some(ldev) = crate::arrays::vantara::ldev_id(&volume)
                    {
                        vvol_id.truncate(vvol_id.len() - 4);
                        vvol_id.push_str(&format!("{ldev:04x}"));
                    }
                    san.back_vvol(&array.name, &volume.name, vvol_id)?;
                }
                disks.push(VmDisk {
                    datastore: disk.datastore.clone(),
                    descriptor,
                    flat,
                    rdm_naa,
                    backing_object_id,
                    capacity_bytes: size,
                    key: 2000 + d as i32,
                    uuid,
                });
            }
            vms.push(VmEntry {
                name: vm.name.clone(),
                moid: format!("vm-{}", i + 40),
                host,
                uuid: random_uuid(),
                instance_uuid: random_uuid(),
                disks,
                snapshots: scenario
                    .snapshots
                    .iter()
                    .filter(|s| s.vm == vm.name)
                    .map(|s| s.name.clone())
                    .collect(),
            });
        }
        for host in &hosts {
            host.rescan(RescanKind::All);
            if host.spec.vib_installed {
                let root = crate::host_files::host_root(data_dir, host.name());
                crate::host_files::install_vib(&root, host.wrapper_version())
                    .map_err(|source| LabError::DataDir { path: root, source })?;
            }
        }

        let cert = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .map_err(|e| LabError::Tls(e.to_string()))?;
        let tls = tls_config(&cert)?;
        let servers = axum_server::Control::new();
        let mut stop_on_error = StopOnError(Some(servers.clone()));
        let mut server_tasks = Vec::new();
        let serve = |router: Router, tasks: &mut Vec<_>| -> Result<SocketAddr, LabError> {
            let listener =
                std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(LabError::Listen)?;
            let addr = listener.local_addr().map_err(LabError::Listen)?;
            let handle = axum_server::Handle::with_control(servers.clone());
            let server = axum_server::from_tcp_rustls(listener, tls.clone())
                .map_err(LabError::Listen)?
                .handle(handle);
            tasks.push(tokio::spawn(server.serve(router.into_make_service())));
            Ok(addr)
        };

        let inventory = Inventory {
            datacenter: scenario.datacenter.clone(),
            hosts: hosts.clone(),
            datastores,
            vms,
            paths: paths.clone(),
            data_dir: data_dir.to_owned(),
        };
        let vcenter = VcenterState::new(inventory, scenario.vcenter.clone(), faults.clone());
        let vcenter_addr = serve(vcenter::router(vcenter.clone()), &mut server_tasks)?;

        let mut arrays = Vec::new();
        for spec in &scenario.arrays {
            let (user, password) = (spec.username.as_str(), spec.password.as_str());
            let (router, array_side) = match spec.vendor {
                VendorSpec::Ontap => {
                    let router = crate::arrays::ontap::router(
                        san.clone(),
                        &spec.name,
                        &spec.svm,
                        user,
                        password,
                    );
                    (router, ArraySideState::none())
                }
                VendorSpec::PureFlashArray => {
                    let credentials = crate::arrays::pure::PureCredentials {
                        username: spec.username.clone(),
                        password: spec.password.clone(),
                        api_token: crate::arrays::pure::lab_api_token(&spec.name),
                    };
                    let array = FlashArray::new(san.clone(), &spec.name, credentials);
                    served(array, FlashArray::router, FlashArray::copy_leftovers)
                }
                VendorSpec::PowerStore => {
                    let array = PowerStore::new(san.clone(), &spec.name, user, password);
                    (array.router(), ArraySideState::none())
                }
                VendorSpec::FlashSystem => {
                    let array = FlashSystem::new(san.clone(), &spec.name, user, password);
                    served(array, FlashSystem::router, |array| {
                        let maps = array.fcmaps().into_iter();
                        maps.map(|m| format!("FlashCopy mapping {m}")).collect()
                    })
                }
                VendorSpec::PowerMax => {
                    let array = PowerMax::new(san.clone(), &spec.name, user, password);
                    served(array, PowerMax::router, PowerMax::leftovers)
                }
                VendorSpec::InfiniBox => {
                    let array = InfiniBox::new(san.clone(), &spec.name, user, password);
                    served(array, InfiniBox::router, InfiniBox::leftovers)
                }
                VendorSpec::Primera3Par => {
                    let array = Primera::new(san.clone(), &spec.name, user, password);
                    served(array, Primera::router, Primera::leftovers)
                }
                VendorSpec::PowerFlex => {
                    let array = PowerFlex::new(san.clone(), &spec.name, user, password);
                    for host in &hosts {
                        if let Some(guid) = host.spec.sdc_guid() {
                            array.register_sdc(host.name(), guid, "Esx")?;
                        }
                    }
                    (array.router(), ArraySideState::none())
                }
                VendorSpec::Vantara => {
                    let array = Vantara::new(san.clone(), &spec.name, user, password);
                    served(array, Vantara::router, |array| {
                        let pairs = array.pairs().into_iter();
                        pairs
                            .map(|(pvol, mu, svol, status)| {
                                format!("Thin Image pair {pvol}/{mu} -> {svol} ({status})")
                            })
                            .collect()
                    })
                }
            };
            let router = router.layer(axum::middleware::from_fn_with_state(
                (faults.clone(), spec.name.clone()),
                array_faults,
            ));
            let addr = serve(router, &mut server_tasks)?;
            arrays.push(ArrayEndpoint {
                name: spec.name.clone(),
                vendor: spec.vendor,
                url: format!("https://{addr}"),
                username: spec.username.clone(),
                password: spec.password.clone(),
                svm: spec.svm.clone(),
                array_side,
            });
        }

        let mut host_endpoints = Vec::new();
        for host in hosts {
            let ip: IpAddr = host
                .spec
                .management_ip
                .parse()
                .unwrap_or(IpAddr::from([127, 0, 0, 1]));
            let (ssh, ssh_port_fallback) =
                start_ssh(&host, &faults, ip, scenario.esxi_ssh_port).await?;
            host_endpoints.push(HostEndpoint {
                name: host.name().to_owned(),
                moid: host.moid.clone(),
                ssh_addr: ssh.addr,
                ssh_port_fallback,
                ssh_host_key: ssh.host_key.clone(),
                sim: host,
                ssh,
            });
        }

        stop_on_error.0 = None;
        let lab = RunningLab {
            vcenter_url: format!("https://{vcenter_addr}/sdk"),
            vcenter_addr,
            thumbprint: thumbprint(cert.cert.der()),
            certificate_pem: cert.cert.pem(),
            username: scenario.vcenter.username.clone(),
            password: scenario.vcenter.password.clone(),
            datacenter: scenario.datacenter.clone(),
            hosts: host_endpoints,
            arrays,
            san,
            faults,
            data_dir: data_dir.to_owned(),
            vcenter,
            servers,
            server_tasks,
        };
        tracing::info!(vcenter = %lab.vcenter_url, thumbprint = %lab.thumbprint, "lab started");
        Ok(lab)
    }
}

impl HostEndpoint {
    /// Gives the host a new SSH host key (a re-installed host, or an impostor on its address);
    /// returns it, OpenSSH format.
    pub fn replace_ssh_host_key(&mut self) -> std::io::Result<String> {
        self.ssh_host_key = self.ssh.replace_host_key()?;
        Ok(self.ssh_host_key.clone())
    }
}

impl RunningLab {
    /// The host endpoint with this name.
    pub fn host(&self, name: &str) -> Option<&HostEndpoint> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Number of live vCenter sessions.
    pub fn vcenter_sessions(&self) -> usize {
        self.vcenter.session_count()
    }

    /// Host directory of a datastore.
    pub fn datastore_dir(&self, datastore: &str) -> PathBuf {
        self.data_dir.join("datastores").join(datastore)
    }

    /// A human-readable summary of the endpoints (what `lab serve` prints). Never includes passwords.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "vCenter   {}  user {}  thumbprint {}\n",
            self.vcenter_url, self.username, self.thumbprint
        );
        for host in &self.hosts {
            out.push_str(&format!(
                "ESXi      {} ({})  ssh {}  host key {}\n",
                host.name, host.moid, host.ssh_addr, host.ssh_host_key
            ));
            if let Some(reason) = &host.ssh_port_fallback {
                out.push_str(&format!("          ssh on an ephemeral port: {reason}\n"));
            }
        }
        for array in &self.arrays {
            out.push_str(&format!(
                "array     {} ({:?})  {}  user {}\n",
                array.name, array.vendor, array.url, array.username
            ));
        }
        out
    }

    /// Stops every endpoint and clone task and waits until they have all ended.
    pub async fn shutdown(mut self) {
        self.servers.shutdown();
        for task in std::mem::take(&mut self.server_tasks) {
            if let Ok(Err(e)) = task.await {
                tracing::warn!(error = %e, "lab server ended with an error");
            }
        }
        for host in std::mem::take(&mut self.hosts) {
            host.ssh.shutdown().await;
            host.sim.stop_tasks().await;
        }
    }
}

impl Drop for RunningLab {
    /// Dropping a lab without [`RunningLab::shutdown`] (a panicking test, an interrupted demo) still
    /// stops its servers and clones; only the waiting is skipped.
    fn drop(&mut self) {
        self.servers.shutdown();
        for host in &self.hosts {
            host.sim.cancel_tasks();
        }
    }
}

/// Stops the servers started so far if [`Lab::start`] fails half-way.
struct StopOnError(Option<axum_server::Control>);

impl Drop for StopOnError {
    fn drop(&mut self) {
        if let Some(servers) = self.0.take() {
            servers.shutdown();
        }
    }
}
