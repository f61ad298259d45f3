//! Hitachi Vantara VSP over the Configuration Manager REST API the array embeds
//! (`https://<STORAGE_HOSTNAME>:<STORAGE_PORT>/ConfigurationManager/v1/objects/...`): a session
//! opened by `POST /sessions` with HTTP Basic (`Authorization: Session <token>` afterwards, one
//! re-login when the array answers 401, `DELETE /sessions/{id}` from [`VantaraArray::logout`]),
//! LDEVs of Hitachi CSI PVs by the LDEV id in the volume handle, the ESXi host's existing host
//! groups (FC) and iSCSI targets found by its WWPNs and IQNs on every port (or taken from
//! `HOSTGROUP_ID_LIST`), LU paths made and removed by async jobs polled until they complete, and
//! device names from the LDEV `naaId`; RDM disks copied on the array by a Thin Image clone pair
//! (`clone_pair`).
//!
//! Differences from upstream: the session is ended at exit; iSCSI host groups are discovered too,
//! not only FC logins; an ESXi host no host group admits is an error naming what to set up, not a
//! silent no-op; `map`/`unmap` act on the host groups they are given and `restore` re-creates each
//! journaled mapping on the host group it came from (upstream re-mapped the ESXi host groups);
//! device names are lower case whatever case the array answers; a PV handle naming another array
//! is refused; 429/503 are retried a bounded number of times (upstream retried 503 forever); jobs
//! are polled with a deadline; an array-side clone is followed to real completion and its pair
//! deleted (upstream declared success at `PSUP` and left the pair).

mod clone_pair;
mod preflight;
mod settings;

pub use settings::*;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderName, StatusCode};
use serde::{Deserialize, Serialize};

use crate::api::{ArrayCopy, StorageApi};
use crate::error::StorageError;
use crate::http::{
    Auth, ClientOptions, ConnectionSettings, EndpointDefaults, HttpClient, Reply, RequestObserver,
    Secret, SessionLogin, base_url,
};
use crate::model::{
    ArrayInfo, EsxiHostRef, GroupKind, GroupRef, GroupRelease, Initiator, InitiatorGroup, Mapping,
    PersistentVolumeRef, StorageProtocol, Volume,
};
use crate::naa;

/// CSI driver name of Hitachi Storage Plug-in for Containers, the provisioner of VSP-backed PVs.
pub const CSI_DRIVER: &str = "hspc.csi.hitachi.com";

/// The REST root on the array's management address.
pub const BASE_PATH: &str = "/ConfigurationManager/v1";

/// How long an LU path job may take before the copy gives up on it.
const JOB_DEADLINE: Duration = Duration::from_secs(600);

/// A connected VSP.
#[derive(Debug)]
pub struct VantaraArray {
    http: HttpClient,
    login: Arc<VantaraLogin>,
    settings: Settings,
    storage_device_id: String,
}

// ---- wire shapes (objects of the Configuration Manager REST API Reference Guide) ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionRecord {
    token: String,
    session_id: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StorageRecord {
    #[serde(default)]
    storage_device_id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    dkc_micro_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LdevRecord {
    ldev_id: u32,
    #[serde(default)]
    emulation_type: Option<String>,
    #[serde(default)]
    naa_id: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    block_capacity: Option<u64>,
    #[serde(default)]
    pool_id: Option<u32>,
    #[serde(default)]
    ports: Vec<LuPathRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LuPathRecord {
    port_id: String,
    host_group_number: u32,
    #[serde(default)]
    host_group_name: Option<String>,
    lun: u32,
}

#[derive(Debug, Deserialize)]
struct DataList<T> {
    data: Vec<T>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PortRecord {
    port_id: String,
    #[serde(default)]
    port_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HostGroupRecord {
    port_id: String,
    host_group_number: u32,
    #[serde(default)]
    host_group_name: Option<String>,
}

/// One registered initiator of a host group: a `host-wwns` (`hostWwn`) or `host-iscsis`
/// (`iscsiName`) entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HostInitiatorRecord {
    port_id: String,
    host_group_number: u32,
    #[serde(default)]
    host_group_name: Option<String>,
    #[serde(alias = "hostWwn", alias = "iscsiName")]
    initiator: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LuPathCreate<'a> {
    ldev_id: u32,
    port_id: &'a str,
    host_group_number: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobRecord {
    job_id: u64,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    solution: Option<String>,
}

impl ErrorBody {
    fn text(&self) -> Option<String> {
        match (&self.message, &self.solution) {
            (Some(message), Some(solution)) => Some(format!("{message} ({solution})")),
            (Some(message), None) => Some(message.clone()),
            (None, Some(solution)) => Some(solution.clone()),
            (None, None) => None,
        }
    }
}

/// The array's `{"errorSource", "messageId", "message", "cause", "solution"}`.
fn error_message(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(body).ok()?.text()
}

// ---- pure rules ----

/// What a Hitachi CSI volume handle says: `01--<protocol>--<storageDeviceId>--<ldevId>--<nickname>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeHandle {
    pub protocol: String,
    pub storage_device_id: String,
    pub ldev_id: u32,
    pub nickname: String,
}

/// Parses a Hitachi CSI volume handle.
pub fn parse_volume_handle(pv: &PersistentVolumeRef) -> Result<VolumeHandle, StorageError> {
    let parts: Vec<&str> = pv.volume_handle.split("--").collect();
    let refuse = |why: &str| {
        StorageError::config(format!(
            "PV {} has volume handle {:?}, which is not a Hitachi CSI handle \
             (01--<protocol>--<storageDeviceId>--<ldevId>--<nickname>): {why}; is it provisioned by {CSI_DRIVER}?",
            pv.name, pv.volume_handle
        ))
    };
    let [version, protocol, device, ldev, nickname] = parts.as_slice() else {
        return Err(refuse("it does not have five parts separated by \"--\""));
    };
    if *version != "01" {
        return Err(refuse("its first part is not 01"));
    }
    let ldev_id = ldev
        .parse::<u32>()
        .map_err(|_| refuse("its LDEV id is not a decimal number"))?;
    Ok(VolumeHandle {
        protocol: (*protocol).to_owned(),
        storage_device_id: (*device).to_owned(),
        ldev_id,
        nickname: (*nickname).to_owned(),
    })
}

/// A host group as the array addresses it: `<portId>,<hostGroupNumber>`.
pub fn host_group_id(port: &str, number: u32) -> String {
    format!("{port},{number}")
}

/// `<portId>,<hostGroupNumber>` back into its parts.
fn parse_host_group_id(id: &str) -> Option<(&str, u32)> {
    let (port, number) = id.split_once(',')?;
    Some((port, number.parse().ok()?))
}

fn group_ref(port: &str, number: u32, name: Option<&str>) -> GroupRef {
    let id = host_group_id(port, number);
    GroupRef {
        kind: GroupKind::HostGroup,
        name: name.filter(|n| !n.is_empty()).unwrap_or(&id).to_owned(),
        id,
    }
}

/// Whether a host group's registered WWN is this FC initiator's port name.
fn wwn_matches(initiator: &Initiator, registered: &str) -> bool {
    matches!(initiator, Initiator::FibreChannel(fc) if fc.wwpn.matches(registered))
}

fn iscsi_matches(initiator: &Initiator, registered: &str) -> bool {
    matches!(initiator, Initiator::Iscsi(name) if name.eq_ignore_ascii_case(registered))
}

// ---- sessions ----

/// Logs in with HTTP Basic; keeps the session id so [`VantaraArray::logout`] can end it.
struct VantaraLogin {
    authorization: Secret,
    session_id: Mutex<Option<u64>>,
}

impl std::fmt::Debug for VantaraLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VantaraLogin").finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionLogin for VantaraLogin {
    async fn login(&self, http: &HttpClient) -> Result<Vec<(HeaderName, Secret)>, StorageError> {
        let reply = http
            .post(&["objects", "sessions"])
            .json(&serde_json::json!({}))?
            .without_auth()
            .header(http::header::AUTHORIZATION, self.authorization.clone())
            .send()
            .await?
            .success()?;
        let session: SessionRecord = reply.json()?;
        *self
            .session_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(session.session_id);
        Ok(vec![(
            http::header::AUTHORIZATION,
            Secret::new(format!("Session {}", session.token)),
        )])
    }
}

/// Settings with `STORAGE_PORT` applied to `STORAGE_HOSTNAME` (which must not name another port).
fn with_port(
    connection: &ConnectionSettings,
    port: u16,
) -> Result<ConnectionSettings, StorageError> {
    let defaults = EndpointDefaults {
        scheme: "https",
        port: Some(port),
        base_path: BASE_PATH,
    };
    let mut url = base_url(&connection.hostname, &defaults)?;
    match url.port() {
        Some(given) if given != port => {
            return Err(StorageError::config(format!(
                "STORAGE_HOSTNAME={:?} names port {given} but STORAGE_PORT is {port}; \
                 give the port once, in STORAGE_PORT",
                connection.hostname
            )));
        }
        Some(_) => {}
        None => {
            url.set_port(Some(port)).map_err(|()| {
                StorageError::config(format!(
                    "STORAGE_HOSTNAME={:?} cannot carry a port",
                    connection.hostname
                ))
            })?;
        }
    }
    let mut settings = connection.clone();
    settings.hostname = url.to_string();
    Ok(settings)
}

impl VantaraArray {
    /// Logs in and reads the array's identity. Fails fast on refused credentials, untrusted TLS
    /// and unreachable arrays.
    pub async fn connect(
        connection: &ConnectionSettings,
        settings: &Settings,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<Self, StorageError> {
        let creds = &connection.credentials;
        if creds.username.is_empty() || creds.password.expose().is_empty() {
            return Err(StorageError::config(
                "Hitachi Vantara logs in with a user: set STORAGE_USERNAME and STORAGE_PASSWORD (STORAGE_TOKEN is not used)",
            ));
        }
        let connection = with_port(connection, settings.port)?;
        let basic = BASE64.encode(format!("{}:{}", creds.username, creds.password.expose()));
        let login = Arc::new(VantaraLogin {
            authorization: Secret::new(format!("Basic {basic}")),
            session_id: Mutex::new(None),
        });
        let defaults = EndpointDefaults {
            scheme: "https",
            port: Some(settings.port),
            base_path: BASE_PATH,
        };
        let mut options = ClientOptions::new(defaults, Auth::Session(login.clone()));
        options.observer = observer;
        options.error_message = error_message;
        let http = HttpClient::new(&connection, options)?;
        let storage: StorageRecord = http
            .get(&["objects", "storages", "instance"])
            .send_json()
            .await?;
        let storage_device_id = storage.storage_device_id.unwrap_or_default();
        if let Some(wanted) = settings
            .storage_id
            .as_deref()
            .filter(|id| !storage_device_id.is_empty() && *id != storage_device_id)
        {
            return Err(StorageError::config(format!(
                "STORAGE_ID is {wanted} but the array at {} is storage {storage_device_id}; \
                 point STORAGE_HOSTNAME at the array the PVs live on or correct STORAGE_ID",
                http.base()
            )));
        }
        tracing::info!(storage = %storage_device_id, endpoint = %http.base(), "connected to Hitachi Vantara");
        Ok(VantaraArray {
            http,
            login,
            settings: settings.clone(),
            storage_device_id,
        })
    }

    /// Ends the session on the array (the array keeps a bounded number of them). Call once at exit.
    pub async fn logout(&self) -> Result<(), StorageError> {
        let id = self
            .login
            .session_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(id) = id else {
            return Ok(());
        };
        let reply = self
            .http
            .delete(&["objects", "sessions", &id.to_string()])
            .json(&serde_json::json!({}))?
            .send()
            .await?;
        if reply.status != StatusCode::NOT_FOUND {
            reply.success()?;
        }
        tracing::debug!(session = id, "ended the Configuration Manager session");
        Ok(())
    }

    async fn ldev(&self, ldev_id: u32) -> Result<LdevRecord, StorageError> {
        self.http
            .get(&["objects", "ldevs", &ldev_id.to_string()])
            .send_json()
            .await
    }

    /// Waits for the job a 202 answer started; fails with the job's error when it failed.
    async fn await_job(&self, reply: Reply) -> Result<(), StorageError> {
        let operation = reply.operation.clone();
        let mut job: JobRecord = reply.success()?.json()?;
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(100);
        while job.status.as_deref() != Some("Completed") {
            if started.elapsed() > JOB_DEADLINE {
                return Err(StorageError::protocol(
                    operation,
                    format!(
                        "job {} did not complete within {} s; check the array's job list",
                        job.job_id,
                        JOB_DEADLINE.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
            job = self
                .http
                .get(&["objects", "jobs", &job.job_id.to_string()])
                .send_json()
                .await?;
        }
        if job.state.as_deref() == Some("Failed") {
            let detail = job
                .error
                .as_ref()
                .and_then(ErrorBody::text)
                .unwrap_or_else(|| "no error detail".to_owned());
            return Err(StorageError::protocol(
                operation,
                format!("job {} failed: {detail}", job.job_id),
            ));
        }
        Ok(())
    }

    /// Makes an LU path from `ldev` to host group `port,number` unless one exists; answers its LUN.
    async fn add_path(&self, ldev_id: u32, port: &str, number: u32) -> Result<u32, StorageError> {
        let path_on = |ldev: &LdevRecord| {
            ldev.ports
                .iter()
                .find(|p| p.port_id == port && p.host_group_number == number)
                .map(|p| p.lun)
        };
        if let Some(lun) = path_on(&self.ldev(ldev_id).await?) {
            return Ok(lun);
        }
        let reply = self
            .http
            .post(&["objects", "luns"])
            .json(&LuPathCreate {
                ldev_id,
                port_id: port,
                host_group_number: number,
            })?
            .send()
            .await?;
        let created = self.await_job(reply).await;
        // Read back: also right when a concurrent copy made the same path first (its job fails).
        match (path_on(&self.ldev(ldev_id).await?), created) {
            (Some(lun), _) => {
                tracing::info!(ldev = ldev_id, host_group = %host_group_id(port, number), lun, "mapped LDEV");
                Ok(lun)
            }
            (None, Err(e)) => Err(e),
            (None, Ok(())) => Err(StorageError::protocol(
                "POST /objects/luns",
                format!(
                    "the job completed but LDEV {ldev_id} has no path on {}",
                    host_group_id(port, number)
                ),
            )),
        }
    }

    /// Removes the LU path from `ldev` to `port,number` if there is one.
    async fn remove_path(&self, ldev_id: u32, port: &str, number: u32) -> Result<(), StorageError> {
        let ldev = self.ldev(ldev_id).await?;
        let Some(path) = ldev
            .ports
            .iter()
            .find(|p| p.port_id == port && p.host_group_number == number)
        else {
            return Ok(());
        };
        let lun_id = format!("{port},{number},{}", path.lun);
        if self.delete_object(&["objects", "luns", &lun_id]).await? {
            tracing::info!(ldev = ldev_id, lu_path = %lun_id, "unmapped LDEV");
        }
        Ok(())
    }

    /// Deletes the object at `segments` and waits for the job; answers false when it was already
    /// gone (404).
    async fn delete_object(&self, segments: &[&str]) -> Result<bool, StorageError> {
        let reply = self
            .http
            .delete(segments)
            .json(&serde_json::json!({}))?
            .send()
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        self.await_job(reply).await?;
        Ok(true)
    }

    fn ldev_of(volume: &Volume) -> Result<u32, StorageError> {
        volume.id.parse().map_err(|_| {
            StorageError::config(format!(
                "volume {} has id {:?}, not an LDEV number",
                volume.name, volume.id
            ))
        })
    }

    fn target_parts(target: &GroupRef) -> Result<(&str, u32), StorageError> {
        parse_host_group_id(&target.id).ok_or_else(|| {
            StorageError::config(format!(
                "{} ({}) is not a Vantara host group <portId>,<hostGroupNumber>",
                target.name, target.id
            ))
        })
    }

    /// The host groups named in `HOSTGROUP_ID_LIST`, each checked to exist.
    async fn configured_groups(&self) -> Result<Vec<GroupRef>, StorageError> {
        let mut targets = Vec::new();
        for group in &self.settings.host_groups {
            let listed: DataList<HostGroupRecord> = self
                .http
                .get(&["objects", "host-groups"])
                .query("portId", &group.port)
                .query("hostGroupNumber", &group.number.to_string())
                .send_json()
                .await?;
            let record = listed
                .data
                .into_iter()
                .find(|g| g.port_id == group.port && g.host_group_number == group.number)
                .ok_or_else(|| {
                    StorageError::config(format!(
                        "HOSTGROUP_ID_LIST names host group {} but the array has none there; \
                         correct HOSTGROUP_ID_LIST or create the host group",
                        host_group_id(&group.port, group.number)
                    ))
                })?;
            targets.push(group_ref(
                &record.port_id,
                record.host_group_number,
                record.host_group_name.as_deref(),
            ));
        }
        Ok(targets)
    }

    /// Every host group (FC) or iSCSI target on every port that admits one of `initiators`.
    async fn discovered_groups(
        &self,
        initiators: &[Initiator],
    ) -> Result<(Vec<GroupRef>, StorageProtocol), StorageError> {
        let ports: DataList<PortRecord> = self.http.get(&["objects", "ports"]).send_json().await?;
        let mut targets: Vec<GroupRef> = Vec::new();
        let (mut fc, mut iscsi) = (false, false);
        for port in &ports.data {
            // FC ports list their host groups' WWNs, iSCSI ports their targets' iSCSI names.
            let (resource, matches, iscsi_port): (&str, fn(&Initiator, &str) -> bool, bool) =
                match port.port_type.as_deref() {
                    Some("FIBRE") => ("host-wwns", wwn_matches, false),
                    Some("ISCSI") => ("host-iscsis", iscsi_matches, true),
                    _ => continue,
                };
            let wanted = initiators.iter().any(|i| {
                matches!(
                    (i, iscsi_port),
                    (Initiator::FibreChannel(_), false) | (Initiator::Iscsi(_), true)
                )
            });
            if !wanted {
                continue;
            }
            let registered: DataList<HostInitiatorRecord> = self
                .http
                .get(&["objects", resource])
                .query("portId", &port.port_id)
                .send_json()
                .await?;
            for record in registered
                .data
                .iter()
                .filter(|r| initiators.iter().any(|i| matches(i, &r.initiator)))
            {
                if iscsi_port {
                    iscsi = true;
                } else {
                    fc = true;
                }
                targets.push(group_ref(
                    &record.port_id,
                    record.host_group_number,
                    record.host_group_name.as_deref(),
                ));
            }
        }
        targets.dedup_by(|a, b| a.id == b.id);
        let protocol = match (fc, iscsi) {
            (true, true) => StorageProtocol::Mixed,
            (false, true) => StorageProtocol::Iscsi,
            _ => StorageProtocol::Fc,
        };
        Ok((targets, protocol))
    }
}

#[async_trait]
impl StorageApi for VantaraArray {
    async fn readiness(
        &self,
        hosts: &[EsxiHostRef],
    ) -> Result<crate::api::ArrayReadiness, StorageError> {
        self.check_readiness(hosts).await
    }

    async fn close(&self) -> Result<(), StorageError> {
        self.logout().await
    }

    async fn array_info(&self) -> Result<ArrayInfo, StorageError> {
        let storage: StorageRecord = self
            .http
            .get(&["objects", "storages", "instance"])
            .send_json()
            .await?;
        Ok(ArrayInfo {
            vendor: "Hitachi".into(),
            product: "Vantara".into(),
            model: storage.model.unwrap_or_default(),
            version: storage.dkc_micro_version.unwrap_or_default(),
        })
    }

    async fn resolve_volume(&self, pv: &PersistentVolumeRef) -> Result<Volume, StorageError> {
        if let Some(driver) = pv.csi_driver.as_deref().filter(|d| *d != CSI_DRIVER) {
            return Err(StorageError::config(format!(
                "PV {} is provisioned by CSI driver {driver}, not Hitachi ({CSI_DRIVER}); \
                 the storage map points this datastore at the wrong storage vendor",
                pv.name
            )));
        }
        let handle = parse_volume_handle(pv)?;
        if !self.storage_device_id.is_empty() && handle.storage_device_id != self.storage_device_id
        {
            return Err(StorageError::config(format!(
                "PV {} lives on storage {}, but STORAGE_HOSTNAME is storage {}; \
                 point the storage secret at the PV's array",
                pv.name, handle.storage_device_id, self.storage_device_id
            )));
        }
        let ldev = self.ldev(handle.ldev_id).await?;
        let operation = format!("GET {BASE_PATH}/objects/ldevs/{}", handle.ldev_id);
        if ldev.emulation_type.as_deref() == Some("NOT DEFINED") {
            return Err(StorageError::not_found(
                format!("LDEV {} of PV {}", handle.ldev_id, pv.name),
                format!(
                    "storage {} has no such LDEV defined; was the volume deleted?",
                    self.storage_device_id
                ),
            ));
        }
        let naa_id = ldev.naa_id.filter(|n| !n.is_empty()).ok_or_else(|| {
            StorageError::protocol(&operation, format!("LDEV {} has no naaId", ldev.ldev_id))
        })?;
        let device =
            naa::vantara(&naa_id).map_err(|e| StorageError::protocol(&operation, e.to_string()))?;
        Ok(Volume {
            id: ldev.ldev_id.to_string(),
            name: ldev.label.unwrap_or(handle.nickname),
            serial: naa_id,
            naa: device,
            size_bytes: ldev.block_capacity.unwrap_or(0) * 512,
        })
    }

    async fn ensure_initiator_group(
        &self,
        host: &EsxiHostRef,
    ) -> Result<InitiatorGroup, StorageError> {
        let (targets, protocol) = if self.settings.host_groups.is_empty() {
            self.discovered_groups(&host.initiators).await?
        } else {
            let protocol = host
                .initiators
                .iter()
                .find_map(Initiator::protocol)
                .unwrap_or(StorageProtocol::Fc);
            (self.configured_groups().await?, protocol)
        };
        if targets.is_empty() {
            let ids: Vec<String> = host.initiators.iter().map(Initiator::adapter_id).collect();
            return Err(StorageError::not_found(
                format!("a host group of ESXi host {}", host.host_id),
                format!(
                    "no host group or iSCSI target on any port of storage {} holds its initiators ({}); \
                     register them in a host group (host mode VMWARE_EX, host mode options 54 and 63) \
                     or name the host groups in HOSTGROUP_ID_LIST",
                    self.storage_device_id,
                    if ids.is_empty() {
                        "none".to_owned()
                    } else {
                        ids.join(", ")
                    }
                ),
            ));
        }
        tracing::info!(host = %host.host_id, host_groups = ?targets.iter().map(|t| &t.id).collect::<Vec<_>>(), "using the ESXi host's host groups");
        Ok(InitiatorGroup {
            host: host.clone(),
            protocol,
            targets,
            owned: Vec::new(),
        })
    }

    async fn map(&self, volume: &Volume, group: &InitiatorGroup) -> Result<Mapping, StorageError> {
        let ldev = Self::ldev_of(volume)?;
        let mut first = None;
        for target in &group.targets {
            let (port, number) = Self::target_parts(target)?;
            let lun = self.add_path(ldev, port, number).await?;
            first.get_or_insert(lun);
        }
        Ok(Mapping {
            naa: volume.naa.clone(),
            lun_id: first,
        })
    }

    async fn unmap(&self, volume: &Volume, group: &InitiatorGroup) -> Result<(), StorageError> {
        let ldev = Self::ldev_of(volume)?;
        for target in &group.targets {
            let (port, number) = Self::target_parts(target)?;
            self.remove_path(ldev, port, number).await?;
        }
        Ok(())
    }

    async fn current_mappings(&self, volume: &Volume) -> Result<Vec<GroupRef>, StorageError> {
        let ldev = self.ldev(Self::ldev_of(volume)?).await?;
        Ok(ldev
            .ports
            .iter()
            .map(|p| {
                group_ref(
                    &p.port_id,
                    p.host_group_number,
                    p.host_group_name.as_deref(),
                )
            })
            .collect())
    }

    async fn restore(&self, volume: &Volume, groups: &[GroupRef]) -> Result<(), StorageError> {
        let ldev = Self::ldev_of(volume)?;
        for group in groups.iter().filter(|g| !g.is_copy_offload_object()) {
            let (port, number) = Self::target_parts(group)?;
            self.add_path(ldev, port, number).await?;
        }
        Ok(())
    }

    async fn release_group(&self, _group: &InitiatorGroup) -> Result<GroupRelease, StorageError> {
        // Host groups are the storage administrator's; copy-offload never creates one.
        Ok(GroupRelease::NotOwned)
    }

    fn array_copy(&self) -> Option<&dyn ArrayCopy> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn pv(handle: &str) -> PersistentVolumeRef {
        PersistentVolumeRef {
            name: "pv-1".into(),
            csi_driver: Some(CSI_DRIVER.into()),
            volume_handle: handle.into(),
            volume_attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn volume_handles_parse_or_are_refused_with_the_expected_shape() {
        assert_eq!(
            parse_volume_handle(&pv("01--fc--886000412345--42--pvc-1")).unwrap(),
            VolumeHandle {
                protocol: "fc".into(),
                storage_device_id: "886000412345".into(),
                ldev_id: 42,
                nickname: "pvc-1".into(),
            }
        );
        for bad in [
            "02--fc--1--2--n",
            "01--fc--1--x--n",
            "01--fc--1--2",
            "pvc-1",
        ] {
            let message = parse_volume_handle(&pv(bad)).unwrap_err().to_string();
            assert!(message.contains("01--<protocol>"), "{bad}: {message}");
        }
    }

    #[test]
    fn host_group_ids_round_trip() {
        assert_eq!(
            parse_host_group_id(&host_group_id("CL1-A", 3)),
            Some(("CL1-A", 3))
        );
        assert_eq!(parse_host_group_id("CL1-A"), None);
    }

    #[test]
    fn storage_port_is_applied_and_a_conflicting_one_refused() {
        let credentials = crate::http::Credentials {
            username: "u".into(),
            password: Secret::new("p"),
            token: None,
        };
        let settings = with_port(
            &ConnectionSettings::new("10.0.0.5", credentials.clone()),
            23451,
        )
        .unwrap();
        assert_eq!(
            settings.hostname,
            "https://10.0.0.5:23451/ConfigurationManager/v1"
        );
        let named = ConnectionSettings::new("vsp.example.com:8443", credentials);
        let message = with_port(&named, 23451).unwrap_err().to_string();
        assert!(message.contains("STORAGE_PORT"), "{message}");
    }
}
