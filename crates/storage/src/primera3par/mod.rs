//! HPE Primera / 3PAR over the Web Services API (`https://<STORAGE_HOSTNAME>/api/v1`): a session
//! key from `POST /credentials` sent as `X-HP3PAR-WSAPI-SessionKey` (one re-login when the array
//! answers 401 or 403, the key deleted by [`StorageApi::close`]), the volume of an HPE CSI PV by
//! name, the ESXi host's array hosts found by their paths (`FCPaths`/`iSCSIPaths` query) or one
//! host `xcopy-<hostID>` created for paths no host holds (persona VMware), all of them put in the
//! host set `xcopy-<hostID>` the volume is exported to (`set:<name>` VLUNs), VLUNs listed per
//! volume, and device names from the volume `wwn`.
//!
//! No array-side copy: vVol and RDM disks take XCOPY. The WSAPI's copies cannot write the PVC's
//! volume while the CSI driver has it exported to the worker node — an offline physical copy
//! refuses an exported destination, an online one creates a new volume, and promoting a snapshot
//! reverts the snapshot's parent (upstream's path, which left the PVC's volume a snapshot
//! depending on the source). `docs/vendors.md` has the reasoning.
//!
//! Differences from upstream: `STORAGE_HOSTNAME` may be a host, `host:port` or a URL with or
//! without `/api/v1`; the session key is deleted at exit instead of leaking one key per three
//! minutes; the created host gets the WSAPI's VMware persona (8), not 11 (Windows Server in the
//! WSAPI's numbering); one host per ESXi host with a name derived from the host, not a random
//! name per adapter; host and host set names always fit the array's limits (31 and 27); VLUNs are
//! queried per volume instead of listing the whole array; mappings to plain hosts are restored
//! to the host, not to a `set:` of its name; the host set and host copy-offload created are
//! deleted once nothing is exported to them; every request has the shared timeout, bounded retry
//! and escaped path segments.

mod preflight;
mod settings;

pub use settings::*;

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use http::{HeaderName, Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::api::StorageApi;
use crate::error::StorageError;
use crate::http::{
    Auth, ClientOptions, ConnectionSettings, EndpointDefaults, HttpClient, Reply, RequestObserver,
    Secret, SessionLogin,
};
use crate::model::{
    ArrayInfo, EsxiHostRef, GroupKind, GroupRef, GroupRelease, Initiator, InitiatorGroup, Mapping,
    PersistentVolumeRef, StorageProtocol, Volume,
};
use crate::naa;

/// CSI driver name of HPE's CSI driver, the provisioner of Primera/3PAR-backed PVs.
pub const CSI_DRIVER: &str = "csi.hpe.com";

/// The WSAPI root. A bare host is completed with `https` and port 443 (Primera, Alletra; a 3PAR
/// serves the WSAPI on 8080, given as `host:8080`).
pub const ENDPOINT: EndpointDefaults = EndpointDefaults {
    scheme: "https",
    port: Some(443),
    base_path: "/api/v1",
};

/// The session key header.
pub const SESSION_HEADER: &str = "X-HP3PAR-WSAPI-SessionKey";

/// The WSAPI's host persona for ESXi hosts (`hostPersonaEnum` 8 = VMware).
pub const PERSONA_VMWARE: u64 = 8;

/// Longest host (and volume) name the array accepts.
pub const MAX_HOST_NAME: usize = 31;
/// Longest host set name the array accepts.
pub const MAX_SET_NAME: usize = 27;

/// Comment of hosts and host sets copy-offload creates.
pub const OWNER_COMMENT: &str = "created by copy-offload; deleted when nothing is exported to it";

/// `setmembers` action adding hosts to a host set.
const SET_MEMBER_ADD: u64 = 1;
/// `pathOperation` adding paths to a host.
const PATH_ADD: u64 = 1;

/// A connected Primera/3PAR array.
pub struct Primera3ParArray {
    http: HttpClient,
    session: Arc<SessionKey>,
}

impl std::fmt::Debug for Primera3ParArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Primera3ParArray")
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

// ---- wire shapes (member names of the WSAPI guide) ----

#[derive(Debug, Deserialize)]
struct Members<T> {
    #[serde(default = "Vec::new")]
    members: Vec<T>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SystemRecord {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    system_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeRecord {
    id: u64,
    name: String,
    #[serde(default)]
    wwn: Option<String>,
    #[serde(default, rename = "sizeMiB")]
    size_mib: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
struct HostRecord {
    name: String,
    #[serde(default, rename = "FCPaths")]
    fc_paths: Vec<FcPath>,
    #[serde(default, rename = "iSCSIPaths")]
    iscsi_paths: Vec<IscsiPath>,
}

#[derive(Debug, Clone, Deserialize)]
struct FcPath {
    wwn: String,
}

#[derive(Debug, Clone, Deserialize)]
struct IscsiPath {
    name: String,
}

#[derive(Debug, Deserialize)]
struct HostSetRecord {
    #[serde(default)]
    setmembers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VlunRecord {
    lun: u32,
    volume_name: String,
    hostname: String,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<u64>,
    #[serde(default)]
    desc: Option<String>,
}

/// The WSAPI's `{"code": <n>, "desc": "<text>"}`.
fn error_message(body: &[u8]) -> Option<String> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    match (parsed.desc, parsed.code) {
        (Some(desc), Some(code)) => Some(format!("{desc} (WSAPI error {code})")),
        (Some(desc), None) => Some(desc),
        (None, Some(code)) => Some(format!("WSAPI error {code}")),
        (None, None) => None,
    }
}

// ---- pure rules ----

/// `STORAGE_HOSTNAME` without a trailing `/api/v1` (or `/api`), so the WSAPI root is added once
/// whatever shape the user wrote.
pub fn endpoint_hostname(hostname: &str) -> String {
    let text = hostname.trim().trim_end_matches('/');
    let text = text
        .strip_suffix("/api/v1")
        .or_else(|| text.strip_suffix("/api"))
        .unwrap_or(text);
    text.to_owned()
}

/// The array's name for the volume of `pv`: the CSI volume handle cut to 31 characters.
pub fn volume_name(pv: &PersistentVolumeRef) -> Result<String, StorageError> {
    let handle = pv.volume_handle.trim();
    if handle.is_empty() {
        return Err(StorageError::config(format!(
            "PV {} has no volume handle, so its Primera/3PAR volume cannot be found; is it \
             provisioned by {CSI_DRIVER}?",
            pv.name
        )));
    }
    Ok(handle.chars().take(MAX_HOST_NAME).collect())
}

/// `base` when it fits in `limit` characters, else `xcopy-` and the start of the SHA-256 of the
/// host id in hex: deterministic, so a re-run finds the same object.
pub fn bounded_name(host: &EsxiHostRef, limit: usize) -> String {
    let base = host.group_base_name();
    if base.chars().count() <= limit {
        return base;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, host.host_id.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let prefix = crate::model::OBJECT_NAME_PREFIX;
    format!("{prefix}{}", &hex[..limit - prefix.len()])
}

/// An ESXi initiator as the WSAPI spells a host path: FC WWPN as 16 upper-case hex digits,
/// iSCSI names as they are. `None` for adapters a 3PAR host has no path type for.
pub fn path_of(initiator: &Initiator) -> Option<HostPath> {
    match initiator {
        Initiator::FibreChannel(fc) => Some(HostPath::Fc(fc.wwpn.hex_upper())),
        Initiator::Iscsi(name) => Some(HostPath::Iscsi(name.clone())),
        Initiator::Nvme(_) | Initiator::Sdc(_) | Initiator::Other(_) => None,
    }
}

/// One host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPath {
    Fc(String),
    Iscsi(String),
}

impl HostPath {
    fn held_by(&self, host: &HostRecord) -> bool {
        match self {
            HostPath::Fc(wwn) => host
                .fc_paths
                .iter()
                .any(|p| p.wwn.eq_ignore_ascii_case(wwn)),
            HostPath::Iscsi(name) => host
                .iscsi_paths
                .iter()
                .any(|p| p.name.eq_ignore_ascii_case(name)),
        }
    }

    /// The `query` term matching hosts with this path.
    fn query_term(&self) -> String {
        match self {
            HostPath::Fc(wwn) => format!("FCPaths[wwn EQ {wwn}]"),
            HostPath::Iscsi(name) => format!("iSCSIPaths[name EQ {name}]"),
        }
    }
}

/// A `query` parameter value: the expression in double quotes, as the WSAPI wants it.
fn query(expression: &str) -> String {
    format!("\"{expression}\"")
}

/// The VLUN `hostname` of a group: `set:<name>` for a host set.
fn vlun_hostname(group: &GroupRef) -> Result<String, StorageError> {
    match group.kind {
        GroupKind::HostSet => Ok(format!("set:{}", group.name)),
        GroupKind::Host => Ok(group.name.clone()),
        other => Err(StorageError::config(format!(
            "cannot export to {} ({other:?}) on Primera/3PAR: only hosts and host sets exist there",
            group.name
        ))),
    }
}

fn group_of_vlun(hostname: &str) -> GroupRef {
    match hostname.strip_prefix("set:") {
        Some(set) => GroupRef {
            kind: GroupKind::HostSet,
            name: set.to_owned(),
            id: String::new(),
        },
        None => GroupRef {
            kind: GroupKind::Host,
            name: hostname.to_owned(),
            id: String::new(),
        },
    }
}

/// The LUN of a created VLUN from its `Location` (`/api/v1/vluns/<vol>,<lun>,<host>`).
fn lun_from_location(reply: &Reply) -> Option<u32> {
    let location = reply.headers.get(http::header::LOCATION)?.to_str().ok()?;
    let id = location.rsplit('/').next()?;
    id.split(',').nth(1)?.parse().ok()
}

/// The session key in use, kept so [`StorageApi::close`] can delete it.
#[derive(Default)]
struct SessionKey(Mutex<Option<Secret>>);

impl SessionKey {
    fn set(&self, key: Option<Secret>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = key;
    }

    fn take(&self) -> Option<Secret> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Logs in with `POST /credentials` and keeps the key.
struct WsapiLogin {
    username: String,
    password: Secret,
    key: Arc<SessionKey>,
}

#[async_trait]
impl SessionLogin for WsapiLogin {
    async fn login(&self, http: &HttpClient) -> Result<Vec<(HeaderName, Secret)>, StorageError> {
        #[derive(Deserialize)]
        struct Key {
            key: String,
        }
        let reply = http
            .post(&["credentials"])
            .json(&json!({"user": self.username, "password": self.password.expose()}))?
            .sensitive()
            .without_auth()
            .send()
            .await?
            .success()?;
        let key: Key = reply.json()?;
        let secret = Secret::new(key.key);
        self.key.set(Some(secret.clone()));
        Ok(vec![(
            HeaderName::from_static("x-hp3par-wsapi-sessionkey"),
            secret,
        )])
    }

    /// The WSAPI answers an expired or unknown key with 401, and some releases with 403; HPE's own
    /// client logs in again on both.
    fn relogin_on(&self, status: StatusCode) -> bool {
        matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
    }
}

impl Primera3ParArray {
    /// Logs in and reads the system. Fails fast on refused credentials, untrusted TLS and
    /// unreachable arrays.
    pub async fn connect(
        settings: &ConnectionSettings,
        _vendor: &Settings,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<Self, StorageError> {
        let creds = &settings.credentials;
        if creds.username.is_empty() || creds.password.expose().is_empty() {
            return Err(StorageError::config(
                "Primera/3PAR logs in with a user: set STORAGE_USERNAME and STORAGE_PASSWORD (STORAGE_TOKEN is not used)",
            ));
        }
        let session = Arc::new(SessionKey::default());
        let login = WsapiLogin {
            username: creds.username.clone(),
            password: creds.password.clone(),
            key: session.clone(),
        };
        let mut options = ClientOptions::new(ENDPOINT, Auth::Session(Arc::new(login)));
        options.observer = observer;
        options.error_message = error_message;
        let mut settings = settings.clone();
        settings.hostname = endpoint_hostname(&settings.hostname);
        let http = HttpClient::new(&settings, options)?;
        let array = Primera3ParArray { http, session };
        let system = array.system().await?;
        tracing::info!(
            system = %system.name.unwrap_or_default(),
            endpoint = %array.http.base(),
            "connected to Primera/3PAR"
        );
        Ok(array)
    }

    /// Deletes the session key on the array (the WSAPI limits sessions per user). Call once at
    /// exit; a later request logs in again.
    pub async fn logout(&self) -> Result<(), StorageError> {
        let Some(key) = self.session.take() else {
            return Ok(());
        };
        let reply = self
            .http
            .delete(&["credentials", key.expose()])
            .secret_last_segment()
            .send()
            .await?;
        // 404: the array already dropped it (expired).
        if reply.is_success() || reply.status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(reply.error())
        }
    }

    async fn system(&self) -> Result<SystemRecord, StorageError> {
        self.http.get(&["system"]).send_json().await
    }

    fn put(&self, segments: &[&str]) -> crate::http::ApiRequest<'_> {
        self.http.request(Method::PUT, segments)
    }

    async fn vluns(&self, expression: &str) -> Result<Vec<VlunRecord>, StorageError> {
        let page: Members<VlunRecord> = self
            .http
            .get(&["vluns"])
            .query("query", &query(expression))
            .send_json()
            .await?;
        Ok(page.members)
    }

    async fn vluns_of(&self, volume: &Volume) -> Result<Vec<VlunRecord>, StorageError> {
        Ok(self
            .vluns(&format!("volumeName EQ {}", volume.name))
            .await?
            .into_iter()
            .filter(|v| v.volume_name == volume.name)
            .collect())
    }

    /// Whether anything is exported to `hostname` (a host, or `set:<name>`).
    async fn exported_to(&self, hostname: &str) -> Result<bool, StorageError> {
        Ok(self
            .vluns(&format!("hostname EQ {hostname}"))
            .await?
            .iter()
            .any(|v| v.hostname == hostname))
    }

    async fn host(&self, name: &str) -> Result<Option<HostRecord>, StorageError> {
        let reply = self.http.get(&["hosts", name]).send().await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        reply.success()?.json().map(Some)
    }

    async fn host_set(&self, name: &str) -> Result<Option<HostSetRecord>, StorageError> {
        let reply = self.http.get(&["hostsets", name]).send().await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        reply.success()?.json().map(Some)
    }

    /// Hosts holding any of `paths`.
    async fn hosts_with(&self, paths: &[HostPath]) -> Result<Vec<HostRecord>, StorageError> {
        let expression = paths
            .iter()
            .map(HostPath::query_term)
            .collect::<Vec<_>>()
            .join(" OR ");
        let found: Members<HostRecord> = self
            .http
            .get(&["hosts"])
            .query("query", &query(&expression))
            .send_json()
            .await?;
        Ok(found
            .members
            .into_iter()
            .filter(|h| paths.iter().any(|p| p.held_by(h)))
            .collect())
    }

    /// Makes host `name` (ours) exist with `paths`.
    async fn ensure_own_host(&self, name: &str, paths: &[HostPath]) -> Result<(), StorageError> {
        let split = |fc: bool| -> Vec<&str> {
            paths
                .iter()
                .filter_map(|p| match (p, fc) {
                    (HostPath::Fc(w), true) => Some(w.as_str()),
                    (HostPath::Iscsi(n), false) => Some(n.as_str()),
                    _ => None,
                })
                .collect()
        };
        let (fc, iscsi) = (split(true), split(false));
        if self.host(name).await?.is_none() {
            let mut body = json!({
                "name": name,
                "persona": PERSONA_VMWARE,
                "descriptors": {"comment": OWNER_COMMENT},
            });
            if !fc.is_empty() {
                body["FCWWNs"] = json!(fc);
            }
            if !iscsi.is_empty() {
                body["iSCSINames"] = json!(iscsi);
            }
            let reply = self.http.post(&["hosts"]).json(&body)?.send().await?;
            if reply.is_success() {
                tracing::info!(host = %name, "created Primera/3PAR host");
                return Ok(());
            }
            // 409: a concurrent copy for the same ESXi host created it first; complete it below.
            if reply.status != StatusCode::CONFLICT || self.host(name).await?.is_none() {
                return Err(reply.error());
            }
        }
        for (key, list) in [("FCWWNs", fc), ("iSCSINames", iscsi)] {
            if list.is_empty() {
                continue;
            }
            self.put(&["hosts", name])
                .json(&json!({"pathOperation": PATH_ADD, key: list}))?
                .send()
                .await?
                .success()?;
            tracing::info!(host = %name, added = list.len(), "added ESXi paths to the Primera/3PAR host");
        }
        Ok(())
    }

    /// Makes host set `name` exist and hold `members`.
    async fn ensure_host_set(&self, name: &str, members: &[String]) -> Result<(), StorageError> {
        let present = match self.host_set(name).await? {
            Some(set) => set.setmembers,
            None => {
                let reply = self
                    .http
                    .post(&["hostsets"])
                    .json(&json!({"name": name, "comment": OWNER_COMMENT, "setmembers": members}))?
                    .send()
                    .await?;
                if reply.is_success() {
                    tracing::info!(host_set = %name, "created Primera/3PAR host set");
                    return Ok(());
                }
                if reply.status != StatusCode::CONFLICT {
                    return Err(reply.error());
                }
                self.host_set(name)
                    .await?
                    .map(|s| s.setmembers)
                    .unwrap_or_default()
            }
        };
        for member in members.iter().filter(|m| !present.contains(m)) {
            let reply = self
                .put(&["hostsets", name])
                .json(&json!({"action": SET_MEMBER_ADD, "setmembers": [member]}))?
                .send()
                .await?;
            // 409: already a member (a concurrent copy added it).
            if !reply.is_success() && reply.status != StatusCode::CONFLICT {
                return Err(reply.error());
            }
        }
        Ok(())
    }

    /// Exports `volume` to `hostname` at the lowest free LUN; returns the LUN, also when the
    /// export existed already.
    async fn export(&self, volume: &Volume, hostname: &str) -> Result<Reply, StorageError> {
        self.http
            .post(&["vluns"])
            .json(&json!({
                "volumeName": volume.name,
                "hostname": hostname,
                "lun": 0,
                "autoLun": true,
                "maxAutoLun": 0,
            }))?
            .send()
            .await
    }

    fn target(group: &InitiatorGroup) -> Result<&GroupRef, StorageError> {
        group.targets.first().ok_or_else(|| {
            StorageError::config(format!(
                "the initiator group of ESXi host {} names no Primera/3PAR host set",
                group.host.host_id
            ))
        })
    }

    async fn lun_on(&self, volume: &Volume, hostname: &str) -> Result<Option<u32>, StorageError> {
        Ok(self
            .vluns_of(volume)
            .await?
            .into_iter()
            .find(|v| v.hostname == hostname)
            .map(|v| v.lun))
    }

    async fn delete_object(&self, kind: &str, name: &str) -> Result<GroupRelease, StorageError> {
        let reply = self.http.delete(&[kind, name]).send().await?;
        match reply.status {
            s if s.is_success() => {
                tracing::info!(object = %name, kind, "deleted Primera/3PAR object");
                Ok(GroupRelease::Deleted)
            }
            StatusCode::NOT_FOUND => Ok(GroupRelease::AlreadyGone),
            // Exported to, or (a host) in a set, since the check: the array refused.
            StatusCode::CONFLICT => Ok(GroupRelease::InUse),
            _ => Err(reply.error()),
        }
    }
}

#[async_trait]
impl StorageApi for Primera3ParArray {
    async fn readiness(
        &self,
        hosts: &[EsxiHostRef],
    ) -> Result<crate::api::ArrayReadiness, StorageError> {
        self.check_readiness(hosts).await
    }

    async fn holds_device(
        &self,
        device: &crate::naa::DeviceName,
    ) -> Result<Option<bool>, StorageError> {
        self.lookup_device(device).await
    }

    async fn close(&self) -> Result<(), StorageError> {
        self.logout().await
    }

    async fn array_info(&self) -> Result<ArrayInfo, StorageError> {
        let system = self.system().await?;
        Ok(ArrayInfo {
            vendor: "HPE".into(),
            product: "Primera/3PAR".into(),
            model: system.model.unwrap_or_default(),
            version: system.system_version.unwrap_or_default(),
        })
    }

    async fn resolve_volume(&self, pv: &PersistentVolumeRef) -> Result<Volume, StorageError> {
        if let Some(driver) = pv.csi_driver.as_deref().filter(|d| *d != CSI_DRIVER) {
            return Err(StorageError::config(format!(
                "PV {} is provisioned by CSI driver {driver}, not HPE's ({CSI_DRIVER}); \
                 the storage map points this datastore at the wrong storage vendor",
                pv.name
            )));
        }
        let name = volume_name(pv)?;
        let reply = self.http.get(&["volumes", &name]).send().await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(StorageError::not_found(
                format!("Primera/3PAR volume {name} of PV {}", pv.name),
                "the array has no such volume; check STORAGE_HOSTNAME points at the array the PV was provisioned on",
            ));
        }
        let record: VolumeRecord = reply.success()?.json()?;
        let operation = "GET /api/v1/volumes";
        let wwn = record.wwn.filter(|w| !w.is_empty()).ok_or_else(|| {
            StorageError::protocol(operation, format!("volume {} has no wwn", record.name))
        })?;
        let device =
            naa::primera3par(&wwn).map_err(|e| StorageError::protocol(operation, e.to_string()))?;
        Ok(Volume {
            id: record.id.to_string(),
            name: record.name,
            serial: wwn.to_ascii_uppercase(),
            naa: device,
            size_bytes: record.size_mib.unwrap_or(0) * 1024 * 1024,
        })
    }

    async fn ensure_initiator_group(
        &self,
        host: &EsxiHostRef,
    ) -> Result<InitiatorGroup, StorageError> {
        let paths: Vec<HostPath> = host.initiators.iter().filter_map(path_of).collect();
        if paths.is_empty() {
            let ids: Vec<String> = host.initiators.iter().map(Initiator::adapter_id).collect();
            return Err(StorageError::Unsupported {
                message: format!(
                    "ESXi host {} has no FC or iSCSI initiator a Primera/3PAR host can hold (adapters: {}); \
                     the source datastore must be reached over FC or iSCSI",
                    host.host_id,
                    if ids.is_empty() {
                        "none".to_owned()
                    } else {
                        ids.join(", ")
                    }
                ),
            });
        }
        let own_host = bounded_name(host, MAX_HOST_NAME);
        let set = bounded_name(host, MAX_SET_NAME);
        let holders = self.hosts_with(&paths).await?;
        let free: Vec<HostPath> = paths
            .iter()
            .filter(|p| !holders.iter().any(|h| p.held_by(h)))
            .cloned()
            .collect();
        let mut members: Vec<String> = holders.iter().map(|h| h.name.clone()).collect();
        let own_used = !free.is_empty() || members.contains(&own_host);
        if !free.is_empty() {
            self.ensure_own_host(&own_host, &free).await?;
            members.push(own_host.clone());
        }
        members.sort();
        members.dedup();
        for admin in members.iter().filter(|m| **m != own_host) {
            tracing::info!(host = %admin, "using the existing Primera/3PAR host of the ESXi host");
        }
        self.ensure_host_set(&set, &members).await?;
        let has = |fc: bool| {
            paths.iter().any(|p| {
                matches!(
                    (p, fc),
                    (HostPath::Fc(_), true) | (HostPath::Iscsi(_), false)
                )
            })
        };
        let protocol = match (has(true), has(false)) {
            (true, true) => StorageProtocol::Mixed,
            (true, false) => StorageProtocol::Fc,
            _ => StorageProtocol::Iscsi,
        };
        let set_ref = GroupRef {
            kind: GroupKind::HostSet,
            name: set,
            id: String::new(),
        };
        let mut owned = vec![set_ref.clone()];
        if own_used {
            owned.push(GroupRef {
                kind: GroupKind::Host,
                name: own_host,
                id: String::new(),
            });
        }
        Ok(InitiatorGroup {
            host: host.clone(),
            protocol,
            targets: vec![set_ref],
            owned,
        })
    }

    async fn map(&self, volume: &Volume, group: &InitiatorGroup) -> Result<Mapping, StorageError> {
        let hostname = vlun_hostname(Self::target(group)?)?;
        let mapping = |lun| Mapping {
            naa: volume.naa.clone(),
            lun_id: Some(lun),
        };
        if let Some(lun) = self.lun_on(volume, &hostname).await? {
            return Ok(mapping(lun));
        }
        let mut reply = self.export(volume, &hostname).await?;
        if reply.status == StatusCode::NOT_FOUND
            && self.host_set(&group.targets[0].name).await?.is_none()
        {
            // A concurrent copy on the same ESXi host released our host set in between.
            tracing::info!(host_set = %group.targets[0].name, "host set disappeared before export; creating it again");
            self.ensure_initiator_group(&group.host).await?;
            reply = self.export(volume, &hostname).await?;
        }
        if reply.is_success()
            && let Some(lun) = lun_from_location(&reply)
        {
            return Ok(mapping(lun));
        }
        // Exported (without a Location), or already exported by a concurrent run (409).
        match self.lun_on(volume, &hostname).await? {
            Some(lun) => Ok(mapping(lun)),
            None if reply.is_success() => Err(StorageError::protocol(
                reply.operation.clone(),
                format!(
                    "the array accepted the export of {} to {hostname} but lists no VLUN",
                    volume.name
                ),
            )),
            None => Err(reply.error()),
        }
    }

    async fn unmap(&self, volume: &Volume, group: &InitiatorGroup) -> Result<(), StorageError> {
        let hostname = vlun_hostname(Self::target(group)?)?;
        for vlun in self
            .vluns_of(volume)
            .await?
            .into_iter()
            .filter(|v| v.hostname == hostname)
        {
            let id = format!("{},{},{}", vlun.volume_name, vlun.lun, vlun.hostname);
            let reply = self.http.delete(&["vluns", &id]).send().await?;
            if !reply.is_success() && reply.status != StatusCode::NOT_FOUND {
                return Err(reply.error());
            }
        }
        Ok(())
    }

    async fn current_mappings(&self, volume: &Volume) -> Result<Vec<GroupRef>, StorageError> {
        let mut groups: Vec<GroupRef> = self
            .vluns_of(volume)
            .await?
            .iter()
            .map(|v| group_of_vlun(&v.hostname))
            .collect();
        groups.dedup();
        Ok(groups)
    }

    async fn restore(&self, volume: &Volume, groups: &[GroupRef]) -> Result<(), StorageError> {
        let present = self.vluns_of(volume).await?;
        for group in groups {
            if group.is_copy_offload_object() {
                tracing::info!(object = %group.name, volume = %volume.name, "not restoring a copy-offload export");
                continue;
            }
            let hostname = vlun_hostname(group)?;
            if present.iter().any(|v| v.hostname == hostname) {
                continue;
            }
            let reply = self.export(volume, &hostname).await?;
            if !reply.is_success() && self.lun_on(volume, &hostname).await?.is_none() {
                return Err(reply.error());
            }
            tracing::info!(target = %hostname, volume = %volume.name, "original export restored");
        }
        Ok(())
    }

    async fn release_group(&self, group: &InitiatorGroup) -> Result<GroupRelease, StorageError> {
        let mut outcome = GroupRelease::NotOwned;
        for set in group.owned.iter().filter(|g| g.kind == GroupKind::HostSet) {
            if self.host_set(&set.name).await?.is_none() {
                outcome = GroupRelease::AlreadyGone;
                continue;
            }
            if self.exported_to(&format!("set:{}", set.name)).await? {
                tracing::info!(host_set = %set.name, "host set still has volumes exported; keeping it");
                return Ok(GroupRelease::InUse);
            }
            outcome = self.delete_object("hostsets", &set.name).await?;
            if outcome == GroupRelease::InUse {
                return Ok(outcome);
            }
        }
        for host in group.owned.iter().filter(|g| g.kind == GroupKind::Host) {
            if self.host(&host.name).await?.is_none() {
                continue;
            }
            let sets: Members<serde_json::Value> = self.http.get(&["hostsets"]).send_json().await?;
            let in_a_set = sets.members.iter().any(|s| {
                s["setmembers"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|n| n.as_str() == Some(host.name.as_str())))
            });
            if in_a_set || self.exported_to(&host.name).await? {
                tracing::info!(host = %host.name, "host is still in a host set or has volumes exported; keeping it");
                continue;
            }
            self.delete_object("hosts", &host.name).await?;
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn esx(host_id: &str) -> EsxiHostRef {
        EsxiHostRef {
            host_id: host_id.into(),
            initiators: vec![],
        }
    }

    /// Upstream needed `https://host:port`; every shape a user writes reaches the same root.
    #[test]
    fn every_hostname_shape_reaches_the_wsapi_root() {
        for (given, root) in [
            ("array.example.com", "https://array.example.com/api/v1"),
            (
                "array.example.com:8080",
                "https://array.example.com:8080/api/v1",
            ),
            (
                "https://array.example.com:8080",
                "https://array.example.com:8080/api/v1",
            ),
            (
                "https://array.example.com:8080/api/v1",
                "https://array.example.com:8080/api/v1",
            ),
            (
                "https://array.example.com/api/v1/",
                "https://array.example.com/api/v1",
            ),
            ("10.0.0.5", "https://10.0.0.5/api/v1"),
        ] {
            let url = crate::http::base_url(&endpoint_hostname(given), &ENDPOINT).unwrap();
            assert_eq!(url.as_str(), root, "{given}");
        }
    }

    /// Host names stay within 31 characters and host set names within 27, deterministically.
    #[test]
    fn object_names_fit_the_array_limits() {
        let short = esx("hostsystem-host-12");
        assert_eq!(
            bounded_name(&short, MAX_SET_NAME),
            "xcopy-hostsystem-host-12"
        );
        let long = esx("hostsystem-host-1234567890123");
        let set = bounded_name(&long, MAX_SET_NAME);
        let host = bounded_name(&long, MAX_HOST_NAME);
        assert_eq!(set.len(), MAX_SET_NAME, "{set}");
        assert_eq!(host.len(), MAX_HOST_NAME, "{host}");
        assert!(
            set.starts_with("xcopy-") && host.starts_with(&set[..]),
            "{set} {host}"
        );
        assert_eq!(set, bounded_name(&long, MAX_SET_NAME), "deterministic");
    }

    #[test]
    fn volume_names_are_the_handle_cut_to_31_characters() {
        let pv = PersistentVolumeRef {
            name: "pv-1".into(),
            csi_driver: Some(CSI_DRIVER.into()),
            volume_handle: "pvc-8f3a2c1e-5b7d-4e9f-a1b2-c3d4e5f60718".into(),
            volume_attributes: BTreeMap::new(),
        };
        assert_eq!(volume_name(&pv).unwrap(), "pvc-8f3a2c1e-5b7d-4e9f-a1b2-c3d");
        let empty = PersistentVolumeRef {
            volume_handle: " ".into(),
            ..pv
        };
        assert!(
            volume_name(&empty)
                .unwrap_err()
                .to_string()
                .contains(CSI_DRIVER)
        );
    }

    #[test]
    fn paths_use_wsapi_spelling_and_other_adapters_are_skipped() {
        let fc = Initiator::from_adapter_id("fc.20000025b5000001:21000025b5000001");
        assert_eq!(path_of(&fc), Some(HostPath::Fc("21000025B5000001".into())));
        let iqn = Initiator::from_adapter_id("iqn.1998-01.com.vmware:esx7");
        assert_eq!(
            path_of(&iqn),
            Some(HostPath::Iscsi("iqn.1998-01.com.vmware:esx7".into()))
        );
        assert!(path_of(&Initiator::from_adapter_id("vmhba64")).is_none());
    }

    #[test]
    fn wsapi_error_bodies_become_messages() {
        assert_eq!(
            error_message(br#"{"code": 29, "desc": "VLUN already exists"}"#).unwrap(),
            "VLUN already exists (WSAPI error 29)"
        );
        assert!(error_message(b"<html>").is_none());
    }

    #[test]
    fn restores_to_plain_hosts_keep_their_name() {
        let host = group_of_vlun("ocp-worker-1");
        assert_eq!(host.kind, GroupKind::Host);
        assert_eq!(vlun_hostname(&host).unwrap(), "ocp-worker-1");
        let set = group_of_vlun("set:esx-cluster");
        assert_eq!(set.kind, GroupKind::HostSet);
        assert_eq!(vlun_hostname(&set).unwrap(), "set:esx-cluster");
    }
}
