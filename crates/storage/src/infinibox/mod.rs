//! Infinidat InfiniBox over its REST API (`https://<STORAGE_HOSTNAME>/api/rest`): a session opened
//! by `POST /users/login` (cookie; one re-login when the array answers 401, `POST /users/logout`
//! from [`InfiniBoxArray::logout`]), every answer in the `result`/`error`/`metadata` envelope and
//! every list read page by page (`page`/`page_size`, `pages_total`), volumes of InfiniBox CSI PVs
//! by `volumeAttributes.Name` (or the volume id of the `<id>$$<protocol>` handle), the ESXi host
//! found by its ports or a host `xcopy-<hostID>` (`host_type` `esxi`, tagged with metadata) created
//! for it, `POST /hosts/{id}/luns` and `DELETE /hosts/{id}/luns/lun/{lun}`, mappings from
//! `GET /volumes/{id}/luns` (hosts and host clusters), and device names `naa.6` + the volume serial.
//! Every non-GET request carries `approved=true`, as the array asks for destructive ones.
//!
//! Differences from upstream: `STORAGE_HOSTNAME` may be a bare host or a URL (upstream needed a
//! trailing `/`); TLS is verified unless `STORAGE_SKIP_SSL_VERIFICATION=true` (upstream never
//! verified) and every request has the shared timeout and bounded retry (upstream had none); every
//! list is paged (upstream read the first 1000 hosts only); a session replaces Basic on every
//! request and ends at exit; an ESXi host the array does not know gets a host of its own, deleted
//! once nothing is mapped to it (upstream failed); `current_mappings` of an unmapped volume is
//! empty, not an error, and lists host-cluster mappings (upstream skipped them) and every original
//! host (upstream kept the first), so `restore` maps each of them back; paths are built from
//! segments (upstream's unmap path had a double slash).

mod preflight;
mod settings;

pub use settings::Settings;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderName, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::StorageApi;
use crate::error::StorageError;
use crate::http::{
    ApiRequest, Auth, ClientOptions, ConnectionSettings, EndpointDefaults, HttpClient,
    RequestObserver, Secret, SessionLogin,
};
use crate::model::{
    ArrayInfo, EsxiHostRef, GroupKind, GroupRef, GroupRelease, Initiator, InitiatorGroup, Mapping,
    PersistentVolumeRef, StorageProtocol, Volume,
};
use crate::naa;

/// CSI driver name of Infinidat's InfiniBox CSI driver, the provisioner of InfiniBox-backed PVs.
pub const CSI_DRIVER: &str = "infinibox-csi-driver";

/// `STORAGE_HOSTNAME` is the system's management address; the REST root is `/api/rest`.
pub const ENDPOINT: EndpointDefaults = EndpointDefaults {
    scheme: "https",
    port: None,
    base_path: "/api/rest",
};

/// Metadata key and value copy-offload puts on the hosts it creates.
pub const OWNER_METADATA_KEY: &str = "created_by";
pub const OWNER_METADATA_VALUE: &str = "copy-offload";

/// Items asked for per page (the array's maximum).
pub const PAGE_SIZE: usize = 1000;

/// `clientid` of the login, so the array's session list names who holds the session.
const CLIENT_ID: &str = concat!("copy-offload/", env!("CARGO_PKG_VERSION"));

const HOST_FIELDS: &str = "id,name,ports,host_cluster_id";

/// A connected InfiniBox system.
#[derive(Debug)]
pub struct InfiniBoxArray {
    http: HttpClient,
    system_name: String,
}

// ---- wire shapes (field names of the InfiniBox REST API objects) ----

/// The envelope of every answer.
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    result: T,
    #[serde(default)]
    metadata: Option<PageMetadata>,
}

#[derive(Debug, Deserialize)]
struct PageMetadata {
    #[serde(default)]
    pages_total: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct SystemRecord {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VolumeRecord {
    id: u64,
    name: String,
    #[serde(default)]
    serial: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
struct HostRecord {
    id: u64,
    name: String,
    #[serde(default)]
    ports: Vec<PortRecord>,
    #[serde(default)]
    host_cluster_id: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct PortRecord {
    #[serde(rename = "type")]
    kind: String,
    address: String,
}

#[derive(Debug, Clone, Deserialize)]
struct LunRecord {
    lun: u32,
    #[serde(default)]
    clustered: bool,
    #[serde(default)]
    host_cluster_id: Option<u64>,
    #[serde(default)]
    host_id: Option<u64>,
    volume_id: u64,
}

#[derive(Debug, Deserialize)]
struct IdName {
    id: u64,
    name: String,
}

#[derive(Debug, Serialize)]
struct HostCreate<'a> {
    name: &'a str,
    host_type: &'a str,
}

#[derive(Debug, Serialize)]
struct LunCreate {
    volume_id: u64,
}

#[derive(Debug, Serialize)]
struct Login<'a> {
    username: &'a str,
    password: &'a str,
    clientid: &'a str,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: Option<ErrorBody>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// InfiniBox's `{"error": {"code", "message", …}}`.
fn error_message(body: &[u8]) -> Option<String> {
    let error = serde_json::from_slice::<ErrorEnvelope>(body).ok()?.error?;
    match (error.message, error.code) {
        (Some(text), Some(code)) => Some(format!("{text} (InfiniBox error {code})")),
        (Some(text), None) => Some(text),
        (None, Some(code)) => Some(format!("InfiniBox error {code}")),
        (None, None) => None,
    }
}

// ---- pure rules ----

/// How the array finds the PV's volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeLookup {
    /// `volumeAttributes.Name`, the array's volume name.
    Name(String),
    /// The volume id of a `<volume id>$$<protocol>` handle.
    Id(u64),
}

/// `volumeAttributes.Name` when present, else the volume id of the CSI volume handle.
pub fn volume_lookup(pv: &PersistentVolumeRef) -> Result<VolumeLookup, StorageError> {
    if let Some(name) = pv
        .volume_attributes
        .get("Name")
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
    {
        return Ok(VolumeLookup::Name(name.to_owned()));
    }
    let id = pv
        .volume_handle
        .split("$$")
        .next()
        .unwrap_or_default()
        .trim();
    id.parse::<u64>().map(VolumeLookup::Id).map_err(|_| {
        StorageError::config(format!(
            "PV {} has neither volumeAttributes.Name nor a volume handle of the form \
             <volume id>$$<protocol> (it has {:?}), so its InfiniBox volume cannot be found; \
             is it provisioned by {CSI_DRIVER}?",
            pv.name, pv.volume_handle
        ))
    })
}

/// How InfiniBox spells an initiator as a host port: `fc` with the WWPN as 16 lower-case hex
/// digits, `iscsi` and `nvme` with the name as it is. `None` for adapters InfiniBox has no port
/// type for (`vmhbaN`, SDC).
fn port_of(initiator: &Initiator) -> Option<PortRecord> {
    let (kind, address) = match initiator {
        Initiator::FibreChannel(fc) => ("fc", fc.wwpn.hex_lower().to_owned()),
        Initiator::Iscsi(name) => ("iscsi", name.clone()),
        Initiator::Nvme(nqn) => ("nvme", nqn.clone()),
        Initiator::Sdc(_) | Initiator::Other(_) => return None,
    };
    Some(PortRecord {
        kind: kind.to_owned(),
        address,
    })
}

/// Whether two port records name the same port (WWPNs ignore separators and case, names case).
fn same_port(a: &PortRecord, b: &PortRecord) -> bool {
    if !a.kind.eq_ignore_ascii_case(&b.kind) {
        return false;
    }
    if a.kind.eq_ignore_ascii_case("fc") {
        return crate::fc::Wwn::parse(&a.address).is_ok_and(|w| w.matches(&b.address));
    }
    a.address.eq_ignore_ascii_case(&b.address)
}

fn protocol_of(ports: &[PortRecord]) -> StorageProtocol {
    let has = |kind: &str| ports.iter().any(|p| p.kind.eq_ignore_ascii_case(kind));
    match (has("fc"), has("iscsi")) {
        (true, true) => StorageProtocol::Mixed,
        (true, false) => StorageProtocol::Fc,
        (false, true) => StorageProtocol::Iscsi,
        (false, false) => StorageProtocol::Nvme,
    }
}

/// A journaled object id as the number the API addresses it by.
fn numeric_id(group: &GroupRef) -> Result<u64, StorageError> {
    group.id.parse().map_err(|_| {
        StorageError::config(format!(
            "InfiniBox object {} has the id {:?}, which is not a number; the journal does not \
             belong to an InfiniBox run",
            group.name, group.id
        ))
    })
}

/// The collection a host or host cluster lives in.
fn collection_of(group: &GroupRef) -> Result<&'static str, StorageError> {
    match group.kind {
        GroupKind::Host => Ok("hosts"),
        GroupKind::HostGroup => Ok("clusters"),
        other => Err(StorageError::config(format!(
            "cannot map to {} ({other:?}) on InfiniBox: only hosts and host clusters exist there",
            group.name
        ))),
    }
}

fn is_target_of(lun: &LunRecord, group: &GroupRef, id: u64) -> bool {
    match group.kind {
        GroupKind::Host => !lun.clustered && lun.host_id == Some(id),
        GroupKind::HostGroup => lun.clustered && lun.host_cluster_id == Some(id),
        _ => false,
    }
}

/// Logs in with user name and password; the session lives in the client's cookie jar.
struct InfiniBoxLogin {
    username: String,
    password: Secret,
}

#[async_trait]
impl SessionLogin for InfiniBoxLogin {
    async fn login(&self, http: &HttpClient) -> Result<Vec<(HeaderName, Secret)>, StorageError> {
        http.post(&["users", "login"])
            .query("approved", "true")
            .json(&Login {
                username: &self.username,
                password: self.password.expose(),
                clientid: CLIENT_ID,
            })?
            .sensitive()
            .without_auth()
            .send()
            .await?
            .success()?;
        Ok(Vec::new())
    }
}

impl InfiniBoxArray {
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
                "InfiniBox logs in with a user: set STORAGE_USERNAME and STORAGE_PASSWORD (STORAGE_TOKEN is not used)",
            ));
        }
        let login = InfiniBoxLogin {
            username: creds.username.clone(),
            password: creds.password.clone(),
        };
        let mut options = ClientOptions::new(ENDPOINT, Auth::Session(Arc::new(login)));
        options.observer = observer;
        options.error_message = error_message;
        let http = HttpClient::new(settings, options)?;
        let array = InfiniBoxArray {
            http,
            system_name: String::new(),
        };
        let system = array.system().await?;
        let array = InfiniBoxArray {
            system_name: system.name.unwrap_or_default(),
            ..array
        };
        tracing::info!(system = %array.system_name, endpoint = %array.http.base(), "connected to InfiniBox");
        Ok(array)
    }

    /// Ends the session on the array (sessions count against the array's limit until they idle
    /// out). Call once at exit; a later call logs in again.
    pub async fn logout(&self) -> Result<(), StorageError> {
        self.write(self.http.post(&["users", "logout"]))
            .json(&serde_json::json!({}))?
            .send()
            .await?
            .success()?;
        Ok(())
    }

    async fn system(&self) -> Result<SystemRecord, StorageError> {
        let envelope: Envelope<SystemRecord> = self
            .http
            .get(&["system"])
            .query("fields", "name,model,version,serial_number")
            .send_json()
            .await?;
        Ok(envelope.result)
    }

    /// Marks a mutating request approved, as the array requires of destructive ones.
    fn write<'a>(&self, request: ApiRequest<'a>) -> ApiRequest<'a> {
        request.query("approved", "true")
    }

    /// Every record of a collection, page by page.
    async fn list<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        fields: Option<&str>,
        filters: &[(&str, String)],
    ) -> Result<Vec<T>, StorageError> {
        let mut all = Vec::new();
        let mut page: u64 = 1;
        loop {
            let mut request = self
                .http
                .get(segments)
                .query("page", &page.to_string())
                .query("page_size", &PAGE_SIZE.to_string());
            if let Some(fields) = fields {
                request = request.query("fields", fields);
            }
            for (field, value) in filters {
                request = request.query(field, &format!("eq:{value}"));
            }
            let envelope: Envelope<Vec<T>> = request.send_json().await?;
            let got = envelope.result.len();
            all.extend(envelope.result);
            let pages = envelope
                .metadata
                .and_then(|m| m.pages_total)
                .unwrap_or(page);
            if page >= pages || got == 0 {
                return Ok(all);
            }
            page += 1;
        }
    }

    /// One object of a collection; `None` when the array does not know it (404).
    async fn one<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        fields: &str,
    ) -> Result<Option<T>, StorageError> {
        let reply = self
            .http
            .get(segments)
            .query("fields", fields)
            .send()
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let envelope: Envelope<T> = reply.success()?.json()?;
        Ok(Some(envelope.result))
    }

    async fn luns_of_volume(&self, volume: &Volume) -> Result<Vec<LunRecord>, StorageError> {
        let id = volume_id(volume)?;
        self.list(&["volumes", &id.to_string(), "luns"], None, &[])
            .await
    }

    async fn named(&self, collection: &str, name: &str) -> Result<Option<IdName>, StorageError> {
        let found: Vec<IdName> = self
            .list(&[collection], Some("id,name"), &[("name", name.to_owned())])
            .await?;
        Ok(found.into_iter().find(|r| r.name == name))
    }

    /// The object `group` names as the array knows it now: by its journaled id, else (deleted and
    /// created again since) by name. `None` when it no longer exists.
    async fn current(&self, group: &GroupRef) -> Result<Option<u64>, StorageError> {
        let collection = collection_of(group)?;
        let id = numeric_id(group)?;
        let by_id: Option<IdName> = self.one(&[collection, &id.to_string()], "id,name").await?;
        if by_id.is_some_and(|r| r.name == group.name) {
            return Ok(Some(id));
        }
        Ok(self.named(collection, &group.name).await?.map(|r| r.id))
    }

    /// `POST /<hosts|clusters>/{id}/luns`; the LUN of `volume` there, whether new or mapped before.
    async fn map_to(
        &self,
        volume: &Volume,
        group: &GroupRef,
        id: u64,
    ) -> Result<Option<u32>, StorageError> {
        let collection = collection_of(group)?;
        let reply = self
            .write(self.http.post(&[collection, &id.to_string(), "luns"]))
            .json(&LunCreate {
                volume_id: volume_id(volume)?,
            })?
            .send()
            .await?;
        match reply.status {
            s if s.is_success() => {
                let envelope: Envelope<LunRecord> = reply.json()?;
                Ok(Some(envelope.result.lun))
            }
            StatusCode::NOT_FOUND => Ok(None),
            // Mapped already (an earlier run, or the original mapping): read its LUN.
            StatusCode::CONFLICT => {
                let lun = self
                    .luns_of_volume(volume)
                    .await?
                    .into_iter()
                    .find(|l| is_target_of(l, group, id))
                    .map(|l| l.lun);
                lun.map(Some).ok_or_else(|| reply.error())
            }
            _ => Err(reply.error()),
        }
    }

    /// Exposes `volume` to `group`, following a journaled id to the object's current one.
    async fn map_group(
        &self,
        volume: &Volume,
        group: &GroupRef,
    ) -> Result<Option<u32>, StorageError> {
        let id = numeric_id(group)?;
        if let Some(lun) = self.map_to(volume, group, id).await? {
            return Ok(Some(lun));
        }
        match self.current(group).await? {
            Some(current) if current != id => self.map_to(volume, group, current).await,
            _ => Ok(None),
        }
    }

    async fn create_host(&self, name: &str) -> Result<HostRecord, StorageError> {
        let reply = self
            .write(self.http.post(&["hosts"]))
            .json(&HostCreate {
                name,
                host_type: "esxi",
            })?
            .send()
            .await?;
        if reply.status == StatusCode::CONFLICT {
            // A concurrent copy for the same ESXi host created it first.
            let existing = self
                .named("hosts", name)
                .await?
                .ok_or_else(|| reply.error())?;
            return Ok(HostRecord {
                id: existing.id,
                name: existing.name,
                ports: Vec::new(),
                host_cluster_id: None,
            });
        }
        let envelope: Envelope<HostRecord> = reply.success()?.json()?;
        tracing::info!(host = %name, id = envelope.result.id, "created InfiniBox host");
        Ok(envelope.result)
    }

    /// Tags a host copy-offload created, so administrators see who owns it (idempotent).
    async fn tag(&self, host: &HostRecord, esxi: &EsxiHostRef) -> Result<(), StorageError> {
        let mut tags = BTreeMap::new();
        tags.insert(OWNER_METADATA_KEY, OWNER_METADATA_VALUE);
        tags.insert("esxi_host", esxi.host_id.as_str());
        self.write(
            self.http
                .request(http::Method::PUT, &["metadata", &host.id.to_string()]),
        )
        .json(&tags)?
        .send()
        .await?
        .success()?;
        Ok(())
    }

    async fn add_ports(&self, host: &HostRecord, ports: &[PortRecord]) -> Result<(), StorageError> {
        for port in ports {
            let reply = self
                .write(self.http.post(&["hosts", &host.id.to_string(), "ports"]))
                .json(port)?
                .send()
                .await?;
            // 409: the port was registered in between (by us, or another host took it).
            if !reply.is_success() && reply.status != StatusCode::CONFLICT {
                return Err(reply.error());
            }
        }
        if !ports.is_empty() {
            tracing::info!(host = %host.name, added = ports.len(), "added ESXi ports to the InfiniBox host");
        }
        Ok(())
    }

    /// The names of the hosts and host clusters `luns` are mapped to.
    async fn groups_of(&self, luns: Vec<LunRecord>) -> Result<Vec<GroupRef>, StorageError> {
        let mut groups: Vec<GroupRef> = Vec::new();
        for lun in luns {
            let (kind, collection, id) = match (lun.clustered, lun.host_cluster_id, lun.host_id) {
                (true, Some(cluster), _) => (GroupKind::HostGroup, "clusters", cluster),
                (false, _, Some(host)) => (GroupKind::Host, "hosts", host),
                _ => continue,
            };
            if groups
                .iter()
                .any(|g| g.kind == kind && g.id == id.to_string())
            {
                continue;
            }
            let record: Option<IdName> =
                self.one(&[collection, &id.to_string()], "id,name").await?;
            let Some(record) = record else { continue };
            groups.push(GroupRef {
                kind,
                name: record.name,
                id: record.id.to_string(),
            });
        }
        Ok(groups)
    }
}

fn volume_id(volume: &Volume) -> Result<u64, StorageError> {
    volume.id.parse().map_err(|_| {
        StorageError::config(format!(
            "InfiniBox volume {} has the id {:?}, which is not a number; the journal does not \
             belong to an InfiniBox run",
            volume.name, volume.id
        ))
    })
}

fn target(group: &InitiatorGroup) -> Result<&GroupRef, StorageError> {
    group.targets.first().ok_or_else(|| {
        StorageError::config(format!(
            "the initiator group of ESXi host {} names no InfiniBox host",
            group.host.host_id
        ))
    })
}

#[async_trait]
impl StorageApi for InfiniBoxArray {
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
            vendor: "Infinidat".into(),
            product: "InfiniBox".into(),
            model: system.model.unwrap_or_default(),
            version: system.version.unwrap_or_default(),
        })
    }

    async fn resolve_volume(&self, pv: &PersistentVolumeRef) -> Result<Volume, StorageError> {
        if let Some(driver) = pv.csi_driver.as_deref().filter(|d| *d != CSI_DRIVER) {
            return Err(StorageError::config(format!(
                "PV {} is provisioned by CSI driver {driver}, not Infinidat InfiniBox ({CSI_DRIVER}); \
                 the storage map points this datastore at the wrong storage vendor",
                pv.name
            )));
        }
        const FIELDS: &str = "id,name,serial,size";
        let record: VolumeRecord = match volume_lookup(pv)? {
            VolumeLookup::Name(name) => {
                let found: Vec<VolumeRecord> = self
                    .list(&["volumes"], Some(FIELDS), &[("name", name.clone())])
                    .await?;
                found.into_iter().find(|v| v.name == name)
            }
            VolumeLookup::Id(id) => self.one(&["volumes", &id.to_string()], FIELDS).await?,
        }
        .ok_or_else(|| {
            StorageError::not_found(
                format!("InfiniBox volume of PV {}", pv.name),
                format!(
                    "system {} has no such volume (PV handle {:?}); check STORAGE_HOSTNAME points at the system the PV was provisioned on",
                    self.system_name, pv.volume_handle
                ),
            )
        })?;
        let operation = "GET /api/rest/volumes";
        let serial = record.serial.filter(|s| !s.is_empty()).ok_or_else(|| {
            StorageError::protocol(operation, format!("volume {} has no serial", record.name))
        })?;
        let device = naa::infinibox(&serial)
            .map_err(|e| StorageError::protocol(operation, e.to_string()))?;
        Ok(Volume {
            id: record.id.to_string(),
            name: record.name,
            serial,
            naa: device,
            size_bytes: record.size.unwrap_or(0),
        })
    }

    async fn ensure_initiator_group(
        &self,
        host: &EsxiHostRef,
    ) -> Result<InitiatorGroup, StorageError> {
        let wanted: Vec<PortRecord> = host.initiators.iter().filter_map(port_of).collect();
        if wanted.is_empty() {
            let ids: Vec<String> = host.initiators.iter().map(Initiator::adapter_id).collect();
            return Err(StorageError::Unsupported {
                message: format!(
                    "ESXi host {} has no FC, iSCSI or NVMe initiator InfiniBox can register as a host port (adapters: {}); \
                     the source datastore must be reached over FC, iSCSI or NVMe",
                    host.host_id,
                    if ids.is_empty() {
                        "none".to_owned()
                    } else {
                        ids.join(", ")
                    }
                ),
            });
        }
        let own_name = host.group_base_name();
        let hosts: Vec<HostRecord> = self.list(&["hosts"], Some(HOST_FIELDS), &[]).await?;
        let holds = |h: &HostRecord, p: &PortRecord| h.ports.iter().any(|q| same_port(q, p));
        // The host that already holds most of the ESXi host's ports: an administrator's host for
        // it, or ours from an earlier run.
        let holder = hosts
            .iter()
            .map(|h| (wanted.iter().filter(|p| holds(h, p)).count(), h))
            .filter(|(n, _)| *n > 0)
            .max_by_key(|(n, _)| *n)
            .map(|(_, h)| h.clone());
        let (record, owned) = match holder {
            Some(h) if h.name != own_name => {
                tracing::info!(host = %h.name, "using the existing InfiniBox host of the ESXi host");
                (h, false)
            }
            found => {
                let record =
                    match found.or_else(|| hosts.iter().find(|h| h.name == own_name).cloned()) {
                        Some(h) => h,
                        None => self.create_host(&own_name).await?,
                    };
                self.tag(&record, host).await?;
                // Complete our host with ports no other host holds.
                let missing: Vec<PortRecord> = wanted
                    .iter()
                    .filter(|p| !hosts.iter().any(|h| holds(h, p)) && !holds(&record, p))
                    .cloned()
                    .collect();
                self.add_ports(&record, &missing).await?;
                (record, true)
            }
        };
        let reachable: Vec<PortRecord> = wanted
            .iter()
            .filter(|p| owned || holds(&record, p))
            .cloned()
            .collect();
        let host_ref = GroupRef {
            kind: GroupKind::Host,
            name: record.name.clone(),
            id: record.id.to_string(),
        };
        Ok(InitiatorGroup {
            host: host.clone(),
            protocol: protocol_of(&reachable),
            targets: vec![host_ref.clone()],
            owned: if owned { vec![host_ref] } else { Vec::new() },
        })
    }

    async fn map(&self, volume: &Volume, group: &InitiatorGroup) -> Result<Mapping, StorageError> {
        let mut host = target(group)?.clone();
        let mut lun = self.map_group(volume, &host).await?;
        if lun.is_none() && group.owned.iter().any(|o| o.name == host.name) {
            // A concurrent copy on the same ESXi host released our host in between: once more.
            tracing::info!(host = %host.name, "host disappeared before mapping; creating it again");
            let again = self.ensure_initiator_group(&group.host).await?;
            host = target(&again)?.clone();
            lun = self.map_group(volume, &host).await?;
        }
        let lun = lun.ok_or_else(|| {
            StorageError::not_found(
                format!("InfiniBox host {}", host.name),
                "it was deleted since the initiator group was set up; run the copy again",
            )
        })?;
        Ok(Mapping {
            naa: volume.naa.clone(),
            lun_id: Some(lun),
        })
    }

    async fn unmap(&self, volume: &Volume, group: &InitiatorGroup) -> Result<(), StorageError> {
        let host = target(group)?;
        let Some(id) = self.current(host).await? else {
            // The host is gone, and its mappings with it.
            return Ok(());
        };
        let luns: Vec<LunRecord> = self
            .list(&["hosts", &id.to_string(), "luns"], None, &[])
            .await?;
        let wanted = volume_id(volume)?;
        let Some(lun) = luns
            .into_iter()
            .find(|l| !l.clustered && l.volume_id == wanted)
        else {
            return Ok(());
        };
        let reply = self
            .write(self.http.delete(&[
                "hosts",
                &id.to_string(),
                "luns",
                "lun",
                &lun.lun.to_string(),
            ]))
            .send()
            .await?;
        if reply.is_success() || reply.status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(reply.error())
        }
    }

    async fn current_mappings(&self, volume: &Volume) -> Result<Vec<GroupRef>, StorageError> {
        let luns = self.luns_of_volume(volume).await?;
        self.groups_of(luns).await
    }

    async fn restore(&self, volume: &Volume, groups: &[GroupRef]) -> Result<(), StorageError> {
        let mut wanted = Vec::new();
        for group in groups {
            if group.is_copy_offload_object() {
                tracing::info!(host = %group.name, volume = %volume.name, "not restoring a copy-offload host mapping");
            } else {
                collection_of(group)?;
                wanted.push(group);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let present = self.luns_of_volume(volume).await?;
        for group in wanted {
            let id = numeric_id(group)?;
            if present.iter().any(|l| is_target_of(l, group, id)) {
                continue;
            }
            if self.map_group(volume, group).await?.is_none() {
                return Err(StorageError::not_found(
                    format!("InfiniBox {} {}", collection_of(group)?, group.name),
                    format!(
                        "volume {} was mapped to it before the copy, but it no longer exists; map the volume where it belongs",
                        volume.name
                    ),
                ));
            }
            tracing::info!(target = %group.name, volume = %volume.name, "original volume mapping restored");
        }
        Ok(())
    }

    async fn release_group(&self, group: &InitiatorGroup) -> Result<GroupRelease, StorageError> {
        let mut outcome = GroupRelease::NotOwned;
        for owned in group.owned.iter().filter(|g| g.kind == GroupKind::Host) {
            // By name: the journaled id may be stale.
            let found: Vec<HostRecord> = self
                .list(
                    &["hosts"],
                    Some(HOST_FIELDS),
                    &[("name", owned.name.clone())],
                )
                .await?;
            let Some(host) = found.into_iter().find(|h| h.name == owned.name) else {
                outcome = GroupRelease::AlreadyGone;
                continue;
            };
            let luns: Vec<LunRecord> = self
                .list(&["hosts", &host.id.to_string(), "luns"], None, &[])
                .await?;
            if !luns.is_empty() || host.host_cluster_id.is_some_and(|c| c != 0) {
                tracing::info!(host = %host.name, "host still has volumes mapped or was put in a host cluster; keeping it");
                outcome = GroupRelease::InUse;
                continue;
            }
            let reply = self
                .write(self.http.delete(&["hosts", &host.id.to_string()]))
                .send()
                .await?;
            outcome = match reply.status {
                s if s.is_success() => {
                    tracing::info!(host = %host.name, "deleted InfiniBox host");
                    GroupRelease::Deleted
                }
                StatusCode::NOT_FOUND => GroupRelease::AlreadyGone,
                // A copy mapped a volume between our check and the delete; the array refused.
                StatusCode::CONFLICT => GroupRelease::InUse,
                _ => return Err(reply.error()),
            };
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(handle: &str, attrs: &[(&str, &str)]) -> PersistentVolumeRef {
        PersistentVolumeRef {
            name: "pv-1".into(),
            csi_driver: Some(CSI_DRIVER.into()),
            volume_handle: handle.into(),
            volume_attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn volumes_are_found_by_name_else_by_the_handle_id() {
        assert_eq!(
            volume_lookup(&pv("17$$iscsi", &[("Name", "csi-abc")])).unwrap(),
            VolumeLookup::Name("csi-abc".into())
        );
        assert_eq!(
            volume_lookup(&pv("17$$iscsi", &[])).unwrap(),
            VolumeLookup::Id(17)
        );
        assert_eq!(
            volume_lookup(&pv("17", &[("Name", " ")])).unwrap(),
            VolumeLookup::Id(17)
        );
        let err = volume_lookup(&pv("", &[])).unwrap_err();
        assert!(err.to_string().contains(CSI_DRIVER), "{err}");
    }

    #[test]
    fn initiators_use_the_arrays_port_spelling() {
        let fc = port_of(&Initiator::from_adapter_id(
            "fc.20000025B5000001:21000025B5000001",
        ))
        .unwrap();
        assert_eq!(
            (fc.kind.as_str(), fc.address.as_str()),
            ("fc", "21000025b5000001")
        );
        let iqn = port_of(&Initiator::from_adapter_id("iqn.1998-01.com.vmware:esx7")).unwrap();
        assert_eq!(iqn.kind, "iscsi");
        assert!(port_of(&Initiator::from_adapter_id("vmhba64")).is_none());
        let colon = PortRecord {
            kind: "FC".into(),
            address: "21:00:00:25:B5:00:00:01".into(),
        };
        assert!(same_port(&fc, &colon));
        assert!(!same_port(&fc, &iqn));
    }

    #[test]
    fn infinibox_error_bodies_become_messages() {
        let body = br#"{"result":null,"error":{"code":"HOST_NOT_FOUND","message":"Host 3 not found","reasons":[]},"metadata":{"ready":true}}"#;
        assert_eq!(
            error_message(body).unwrap(),
            "Host 3 not found (InfiniBox error HOST_NOT_FOUND)"
        );
        assert!(error_message(br#"{"result":[],"error":null}"#).is_none());
        assert!(error_message(b"<html>").is_none());
    }
}
