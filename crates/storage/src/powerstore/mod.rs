//! Dell PowerStore over its REST API (`https://<STORAGE_HOSTNAME>/api/rest`): a session opened by
//! `GET /login_session` with HTTP Basic (cookie `auth_cookie` plus the `DELL-EMC-TOKEN` header on
//! every later request, one re-login when the array answers 401 or 403, `POST /logout` from
//! [`PowerStoreArray::logout`]), volumes of CSI PowerStore PVs by `volumeAttributes.Name` (or the volume id of the volume
//! handle), the ESXi host found by its initiators (mapped through its host group when it is in
//! one, since PowerStore refuses per-host attach for grouped hosts) or a host `xcopy-<hostID>`
//! (os_type `ESXi`) created for it, `POST /volume/{id}/attach|detach`, mappings from
//! `/host_volume_mapping`, and device names from the volume `wwn`.
//!
//! Differences from upstream: `STORAGE_HOSTNAME` may be a bare host or the `…/api/rest` URL;
//! adapters PowerStore has no initiator type for (`vmhbaN` of NVMe/SAS HBAs) are skipped instead
//! of aborting; `current_mappings` of an unmapped volume is empty, not an error; the
//! `xcopy-<hostID>` host is deleted once nothing is attached to it (also one upstream left
//! behind); the device name does not rely on the array's `naa.` prefix; every request has the
//! shared timeout, bounded retry and escaped query values.

mod preflight;
mod settings;

pub use settings::Settings;

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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

/// CSI driver name of Dell's PowerStore driver, the provisioner of PowerStore-backed PVs.
pub const CSI_DRIVER: &str = "csi-powerstore.dellemc.com";

/// `description` of hosts copy-offload creates.
pub const OWNER_DESCRIPTION: &str = "created by copy-offload; deleted when no volume is attached";

/// `STORAGE_HOSTNAME` is the cluster management address; the REST root is `/api/rest`. A URL
/// with that path (upstream's form) is taken as is.
pub const ENDPOINT: EndpointDefaults = EndpointDefaults {
    scheme: "https",
    port: None,
    base_path: "/api/rest",
};

/// The session's anti-forgery header.
pub const TOKEN_HEADER: &str = "DELL-EMC-TOKEN";

/// Items asked for per page (the array's maximum).
const PAGE_LIMIT: usize = 2000;

const VOLUME_FIELDS: &str = "id,name,wwn,size";
const HOST_FIELDS: &str = "id,name,host_group_id,host_initiators";
const MAPPING_FIELDS: &str =
    "host_id,host_group_id,logical_unit_number,host(name),host_group(name)";

/// A connected PowerStore cluster.
#[derive(Debug)]
pub struct PowerStoreArray {
    http: HttpClient,
    cluster_name: String,
    global_id: String,
}

// ---- wire shapes (field names from the *_instance models of the PowerStore REST API) ----

#[derive(Debug, Deserialize)]
struct ClusterRecord {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    global_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SoftwareRecord {
    #[serde(default)]
    release_version: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VolumeRecord {
    id: String,
    name: String,
    #[serde(default)]
    wwn: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
struct HostRecord {
    id: String,
    name: String,
    #[serde(default)]
    host_group_id: Option<String>,
    #[serde(default)]
    host_initiators: Vec<PortRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct PortRecord {
    port_name: String,
    port_type: String,
}

#[derive(Debug, Deserialize)]
struct MappingRecord {
    #[serde(default)]
    host_id: Option<String>,
    #[serde(default)]
    host_group_id: Option<String>,
    #[serde(default)]
    logical_unit_number: Option<u32>,
    #[serde(default)]
    host: Option<NameOnly>,
    #[serde(default)]
    host_group: Option<NameOnly>,
}

#[derive(Debug, Deserialize)]
struct NameOnly {
    #[serde(default)]
    name: Option<String>,
}

/// The answer of a create: `create_response`.
#[derive(Debug, Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Debug, Deserialize)]
struct IdName {
    id: String,
    name: String,
}

#[derive(Debug, Serialize)]
struct HostCreate<'a> {
    name: &'a str,
    description: &'a str,
    os_type: &'a str,
    initiators: &'a [PortRecord],
}

#[derive(Debug, Serialize)]
struct HostAddInitiators<'a> {
    add_initiators: &'a [PortRecord],
}

/// `POST /volume/{id}/attach|detach`: exactly one of the two.
#[derive(Debug, Serialize)]
struct AttachTarget<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    host_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host_group_id: Option<&'a str>,
}

impl<'a> AttachTarget<'a> {
    fn of(group: &'a GroupRef) -> Result<Self, StorageError> {
        match group.kind {
            GroupKind::Host => Ok(AttachTarget {
                host_id: Some(&group.id),
                host_group_id: None,
            }),
            GroupKind::HostGroup => Ok(AttachTarget {
                host_id: None,
                host_group_id: Some(&group.id),
            }),
            other => Err(StorageError::config(format!(
                "cannot map to {} ({other:?}) on PowerStore: only hosts and host groups exist there",
                group.name
            ))),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    messages: Vec<ErrorMessage>,
}

#[derive(Debug, Deserialize)]
struct ErrorMessage {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message_l10n: Option<String>,
}

/// PowerStore's `{"messages": [{"code", "message_l10n", …}]}`.
fn error_message(body: &[u8]) -> Option<String> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let texts: Vec<String> = parsed
        .messages
        .into_iter()
        .filter_map(|m| match (m.message_l10n, m.code) {
            (Some(text), Some(code)) => Some(format!("{text} (PowerStore error {code})")),
            (Some(text), None) => Some(text),
            (None, Some(code)) => Some(format!("PowerStore error {code}")),
            (None, None) => None,
        })
        .collect();
    (!texts.is_empty()).then(|| texts.join("; "))
}

// ---- pure rules ----

/// How the array finds the PV's volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeLookup {
    /// `volumeAttributes.Name`, the array's volume name.
    Name(String),
    /// The volume id from a `<volume-id>/<cluster global id>/<protocol>` (or bare id) handle,
    /// with the cluster it names.
    Id { id: String, cluster: Option<String> },
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
    let mut parts = pv.volume_handle.split('/');
    match (parts.next(), parts.next()) {
        (Some(id), cluster) if !id.trim().is_empty() => Ok(VolumeLookup::Id {
            id: id.trim().to_owned(),
            cluster: cluster.map(str::to_owned).filter(|c| !c.is_empty()),
        }),
        _ => Err(StorageError::config(format!(
            "PV {} has neither volumeAttributes.Name nor a volume handle, so its PowerStore volume \
             cannot be found; is it provisioned by {CSI_DRIVER}?",
            pv.name
        ))),
    }
}

/// How PowerStore spells an initiator: colon-separated lowercase WWPN for FC, the iSCSI name and
/// NQN as they are. `None` for adapters PowerStore has no initiator type for (`vmhbaN`).
pub fn port_of(initiator: &Initiator) -> Option<(String, &'static str)> {
    match initiator {
        Initiator::FibreChannel(fc) => Some((fc.wwpn.colon_lower(), "FC")),
        Initiator::Iscsi(name) => Some((name.clone(), "iSCSI")),
        Initiator::Nvme(nqn) => Some((nqn.clone(), "NVMe")),
        Initiator::Sdc(_) | Initiator::Other(_) => None,
    }
}

/// Whether two spellings name the same port (WWPNs ignore separators and case, names case).
fn same_port(a: &str, b: &str) -> bool {
    match (crate::fc::Wwn::parse(a), crate::fc::Wwn::parse(b)) {
        (Ok(x), Ok(y)) if a.contains(':') || b.contains(':') => x == y,
        _ => a.eq_ignore_ascii_case(b),
    }
}

fn protocol_of(ports: &[PortRecord]) -> StorageProtocol {
    let has = |kind: &str| ports.iter().any(|p| p.port_type == kind);
    match (has("FC"), has("iSCSI")) {
        (true, true) => StorageProtocol::Mixed,
        (true, false) => StorageProtocol::Fc,
        (false, true) => StorageProtocol::Iscsi,
        (false, false) => StorageProtocol::Nvme,
    }
}

/// Logs in with HTTP Basic and keeps the session's token; the cookie lives in the client's jar.
struct PowerStoreLogin {
    authorization: Secret,
}

#[async_trait]
impl SessionLogin for PowerStoreLogin {
    async fn login(&self, http: &HttpClient) -> Result<Vec<(HeaderName, Secret)>, StorageError> {
        let reply = http
            .get(&["login_session"])
            .query("select", "id,idle_timeout")
            .without_auth()
            .header(http::header::AUTHORIZATION, self.authorization.clone())
            .send()
            .await?
            .success()?;
        let token = reply
            .headers
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                StorageError::protocol(
                    reply.operation.clone(),
                    format!("the login answer carries no {TOKEN_HEADER} header"),
                )
            })?;
        Ok(vec![(
            HeaderName::from_static("dell-emc-token"),
            Secret::new(token),
        )])
    }

    /// An expired session answers 401; a session whose token the array no longer accepts, 403.
    fn relogin_on(&self, status: StatusCode) -> bool {
        matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
    }
}

impl PowerStoreArray {
    /// Logs in and reads the cluster. Fails fast on refused credentials, untrusted TLS and
    /// unreachable arrays.
    pub async fn connect(
        settings: &ConnectionSettings,
        _vendor: &Settings,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<Self, StorageError> {
        let creds = &settings.credentials;
        if creds.username.is_empty() || creds.password.expose().is_empty() {
            return Err(StorageError::config(
                "PowerStore logs in with a user: set STORAGE_USERNAME and STORAGE_PASSWORD (STORAGE_TOKEN is not used)",
            ));
        }
        let basic = BASE64.encode(format!("{}:{}", creds.username, creds.password.expose()));
        let login = PowerStoreLogin {
            authorization: Secret::new(format!("Basic {basic}")),
        };
        let mut options = ClientOptions::new(ENDPOINT, Auth::Session(Arc::new(login)));
        options.observer = observer;
        options.error_message = error_message;
        options.default_headers.insert(
            HeaderName::from_static("application-type"),
            HeaderValue::from_static("copy-offload"),
        );
        let http = HttpClient::new(settings, options)?;
        let clusters: Vec<ClusterRecord> = http
            .get(&["cluster"])
            .query("select", "id,name,global_id")
            .send_json()
            .await?;
        let cluster = clusters.into_iter().next().ok_or_else(|| {
            StorageError::protocol("GET /api/rest/cluster", "the array lists no cluster")
        })?;
        let array = PowerStoreArray {
            http,
            cluster_name: cluster.name.unwrap_or_default(),
            global_id: cluster.global_id.unwrap_or_default(),
        };
        tracing::info!(cluster = %array.cluster_name, endpoint = %array.http.base(), "connected to PowerStore");
        Ok(array)
    }

    /// Ends the session on the array (sessions count against the array's limit until they idle
    /// out). Call once at exit; a later call logs in again.
    pub async fn logout(&self) -> Result<(), StorageError> {
        self.http.post(&["logout"]).send().await?.success()?;
        Ok(())
    }

    /// Every record of a collection, page by page.
    async fn list<T: DeserializeOwned>(
        &self,
        resource: &str,
        select: &str,
        filters: &[(&str, String)],
    ) -> Result<Vec<T>, StorageError> {
        let mut all = Vec::new();
        loop {
            let mut request = self
                .http
                .get(&[resource])
                .query("select", select)
                .query("limit", &PAGE_LIMIT.to_string())
                .query("offset", &all.len().to_string());
            for (field, condition) in filters {
                request = request.query(field, condition);
            }
            let reply = request.send().await?.success()?;
            let page: Vec<T> = reply.json()?;
            // `Content-Range: <first>-<last>/<total>` on a partial answer (206) says how many
            // there are; every page after the first is partial too, the last one included.
            let total = reply
                .headers
                .get(http::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|r| r.rsplit('/').next()?.trim().parse::<usize>().ok());
            let partial = reply.status == StatusCode::PARTIAL_CONTENT;
            let got = page.len();
            all.extend(page);
            let more = match total {
                Some(total) => all.len() < total,
                None => partial && got == PAGE_LIMIT,
            };
            if !more || got == 0 {
                return Ok(all);
            }
        }
    }

    async fn mappings_of(&self, volume_id: &str) -> Result<Vec<MappingRecord>, StorageError> {
        self.list(
            "host_volume_mapping",
            MAPPING_FIELDS,
            &[("volume_id", format!("eq.{volume_id}"))],
        )
        .await
    }

    async fn host_named(&self, name: &str) -> Result<Option<HostRecord>, StorageError> {
        let found: Vec<HostRecord> = self
            .list("host", HOST_FIELDS, &[("name", format!("eq.{name}"))])
            .await?;
        Ok(found.into_iter().find(|h| h.name == name))
    }

    /// Attaches or detaches; returns the array's answer whatever its status.
    async fn attach(
        &self,
        volume: &Volume,
        target: &GroupRef,
        attach: bool,
    ) -> Result<Reply, StorageError> {
        let action = if attach { "attach" } else { "detach" };
        self.http
            .post(&["volume", &volume.id, action])
            .json(&AttachTarget::of(target)?)?
            .send()
            .await
    }

    /// The LUN of `volume` on `target`, if attached there.
    async fn lun_on(
        &self,
        volume: &Volume,
        target: &GroupRef,
    ) -> Result<Option<u32>, StorageError> {
        Ok(self
            .mappings_of(&volume.id)
            .await?
            .into_iter()
            .find(|m| mapping_targets(m, target))
            .map(|m| m.logical_unit_number.unwrap_or(0)))
    }

    /// The same object looked up by name, for a journaled id the array no longer knows.
    async fn current_id(&self, target: &GroupRef) -> Result<Option<GroupRef>, StorageError> {
        let resource = match target.kind {
            GroupKind::Host => "host",
            GroupKind::HostGroup => "host_group",
            _ => return Ok(None),
        };
        let found: Vec<IdName> = self
            .list(
                resource,
                "id,name",
                &[("name", format!("eq.{}", target.name))],
            )
            .await?;
        Ok(found
            .into_iter()
            .find(|r| r.name == target.name && r.id != target.id)
            .map(|r| GroupRef {
                id: r.id,
                ..target.clone()
            }))
    }

    fn target(group: &InitiatorGroup) -> Result<&GroupRef, StorageError> {
        group.targets.first().ok_or_else(|| {
            StorageError::config(format!(
                "the initiator group of ESXi host {} names no PowerStore host",
                group.host.host_id
            ))
        })
    }

    /// Adds `ports` to the host (already free of ports other hosts hold).
    async fn add_ports(&self, host: &HostRecord, ports: &[PortRecord]) -> Result<(), StorageError> {
        if ports.is_empty() {
            return Ok(());
        }
        self.http
            .request(http::Method::PATCH, &["host", &host.id])
            .json(&HostAddInitiators {
                add_initiators: ports,
            })?
            .send()
            .await?
            .success()?;
        tracing::info!(host = %host.name, added = ports.len(), "added ESXi initiators to the PowerStore host");
        Ok(())
    }

    async fn create_host(
        &self,
        name: &str,
        ports: &[PortRecord],
    ) -> Result<Option<HostRecord>, StorageError> {
        let reply = self
            .http
            .post(&["host"])
            .json(&HostCreate {
                name,
                description: OWNER_DESCRIPTION,
                os_type: "ESXi",
                initiators: ports,
            })?
            .send()
            .await?;
        if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
            // A concurrent copy for the same ESXi host created it first (or took an initiator).
            return Ok(None);
        }
        let created: IdOnly = reply.success()?.json()?;
        tracing::info!(host = %name, id = %created.id, "created PowerStore host");
        Ok(Some(HostRecord {
            id: created.id,
            name: name.to_owned(),
            host_group_id: None,
            host_initiators: ports.to_vec(),
        }))
    }
}

fn mapping_targets(mapping: &MappingRecord, target: &GroupRef) -> bool {
    match target.kind {
        GroupKind::Host => mapping.host_id.as_deref() == Some(target.id.as_str()),
        GroupKind::HostGroup => mapping.host_group_id.as_deref() == Some(target.id.as_str()),
        _ => false,
    }
}

#[async_trait]
impl StorageApi for PowerStoreArray {
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
        let software: Vec<SoftwareRecord> = self
            .list(
                "software_installed",
                "release_version,is_cluster",
                &[("is_cluster", "eq.true".to_owned())],
            )
            .await?;
        Ok(ArrayInfo {
            vendor: "Dell".into(),
            product: "PowerStore".into(),
            model: self.cluster_name.clone(),
            version: software
                .into_iter()
                .find_map(|s| s.release_version)
                .unwrap_or_default(),
        })
    }

    async fn resolve_volume(&self, pv: &PersistentVolumeRef) -> Result<Volume, StorageError> {
        if let Some(driver) = pv.csi_driver.as_deref().filter(|d| *d != CSI_DRIVER) {
            return Err(StorageError::config(format!(
                "PV {} is provisioned by CSI driver {driver}, not Dell PowerStore ({CSI_DRIVER}); \
                 the storage map points this datastore at the wrong storage vendor",
                pv.name
            )));
        }
        let record: VolumeRecord = match volume_lookup(pv)? {
            VolumeLookup::Name(name) => {
                let found: Vec<VolumeRecord> = self
                    .list("volume", VOLUME_FIELDS, &[("name", format!("eq.{name}"))])
                    .await?;
                found.into_iter().find(|v| v.name == name).ok_or_else(|| {
                    StorageError::not_found(
                        format!("PowerStore volume {name} of PV {}", pv.name),
                        format!(
                            "cluster {} has no such volume; check STORAGE_HOSTNAME points at the cluster the PV was provisioned on",
                            self.cluster_name
                        ),
                    )
                })?
            }
            VolumeLookup::Id { id, cluster } => {
                if let Some(cluster) =
                    cluster.filter(|c| !self.global_id.is_empty() && *c != self.global_id)
                {
                    return Err(StorageError::config(format!(
                        "PV {} lives on PowerStore cluster {cluster}, but STORAGE_HOSTNAME is cluster {} ({}); \
                         point the storage secret at the PV's cluster",
                        pv.name, self.global_id, self.cluster_name
                    )));
                }
                let reply = self
                    .http
                    .get(&["volume", &id])
                    .query("select", VOLUME_FIELDS)
                    .send()
                    .await?;
                if reply.status == StatusCode::NOT_FOUND {
                    return Err(StorageError::not_found(
                        format!("PowerStore volume {id} of PV {}", pv.name),
                        format!("cluster {} has no volume with that id", self.cluster_name),
                    ));
                }
                reply.success()?.json()?
            }
        };
        let operation = "GET /api/rest/volume";
        let wwn = record.wwn.filter(|w| !w.is_empty()).ok_or_else(|| {
            StorageError::protocol(operation, format!("volume {} has no wwn", record.name))
        })?;
        let device =
            naa::powerstore(&wwn).map_err(|e| StorageError::protocol(operation, e.to_string()))?;
        Ok(Volume {
            id: record.id,
            name: record.name,
            serial: device.identifier().to_owned(),
            naa: device,
            size_bytes: record.size.unwrap_or(0),
        })
    }

    async fn ensure_initiator_group(
        &self,
        host: &EsxiHostRef,
    ) -> Result<InitiatorGroup, StorageError> {
        let wanted: Vec<PortRecord> = host
            .initiators
            .iter()
            .filter_map(port_of)
            .map(|(port_name, port_type)| PortRecord {
                port_name,
                port_type: port_type.to_owned(),
            })
            .collect();
        if wanted.is_empty() {
            let ids: Vec<String> = host.initiators.iter().map(Initiator::adapter_id).collect();
            return Err(StorageError::Unsupported {
                message: format!(
                    "ESXi host {} has no FC, iSCSI or NVMe initiator PowerStore can register (adapters: {}); \
                     the source datastore must be reached over FC, iSCSI or NVMe/TCP with a host NQN",
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
        let hosts: Vec<HostRecord> = self.list("host", HOST_FIELDS, &[]).await?;
        let holds = |h: &HostRecord, p: &PortRecord| {
            h.host_initiators
                .iter()
                .any(|q| same_port(&q.port_name, &p.port_name))
        };
        // The host that already holds most of the ESXi host's initiators: an administrator's
        // host for it, or ours from an earlier run.
        let holder = hosts
            .iter()
            .map(|h| (wanted.iter().filter(|p| holds(h, p)).count(), h))
            .filter(|(n, _)| *n > 0)
            .max_by_key(|(n, _)| *n)
            .map(|(_, h)| h.clone());
        let (record, owned) = match holder {
            Some(h) if h.name != own_name => (h, false),
            found => {
                let existing = match found {
                    Some(h) => Some(h),
                    None => hosts.iter().find(|h| h.name == own_name).cloned(),
                };
                let record = match existing {
                    Some(h) => h,
                    None => match self.create_host(&own_name, &wanted).await? {
                        Some(created) => created,
                        None => self.host_named(&own_name).await?.ok_or_else(|| {
                            StorageError::protocol(
                                "POST /api/rest/host",
                                format!("host {own_name} was refused and does not exist; another host may hold one of {}",
                                    wanted.iter().map(|p| p.port_name.as_str()).collect::<Vec<_>>().join(", ")),
                            )
                        })?,
                    },
                };
                // Complete our host with initiators no other host holds.
                let missing: Vec<PortRecord> = wanted
                    .iter()
                    .filter(|p| !hosts.iter().any(|h| holds(h, p)) && !holds(&record, p))
                    .cloned()
                    .collect();
                self.add_ports(&record, &missing).await?;
                (record, true)
            }
        };
        let protocol = protocol_of(
            &wanted
                .iter()
                .filter(|p| holds(&record, p) || owned)
                .cloned()
                .collect::<Vec<_>>(),
        );
        let host_ref = GroupRef {
            kind: GroupKind::Host,
            name: record.name.clone(),
            id: record.id.clone(),
        };
        let target = match &record.host_group_id {
            Some(group_id) => {
                let group: IdName = self
                    .http
                    .get(&["host_group", group_id])
                    .query("select", "id,name")
                    .send_json()
                    .await?;
                tracing::info!(host = %record.name, host_group = %group.name, "ESXi host is in a host group; mapping through the group");
                GroupRef {
                    kind: GroupKind::HostGroup,
                    name: group.name,
                    id: group.id,
                }
            }
            None => host_ref.clone(),
        };
        if !owned {
            tracing::info!(host = %record.name, "using the existing PowerStore host of the ESXi host");
        }
        Ok(InitiatorGroup {
            host: host.clone(),
            protocol,
            targets: vec![target],
            owned: if owned { vec![host_ref] } else { Vec::new() },
        })
    }

    async fn map(&self, volume: &Volume, group: &InitiatorGroup) -> Result<Mapping, StorageError> {
        let mut target = Self::target(group)?.clone();
        let mut reply = self.attach(volume, &target, true).await?;
        if reply.status == StatusCode::NOT_FOUND
            && let Some(current) = self.current_id(&target).await?
        {
            // Re-created under a new id since it was journaled.
            target = current;
            reply = self.attach(volume, &target, true).await?;
        } else if reply.status == StatusCode::NOT_FOUND
            && group.owned.iter().any(|o| o.name == target.name)
        {
            // A concurrent copy on the same ESXi host released our host in between: once more.
            tracing::info!(host = %target.name, "host disappeared before mapping; creating it again");
            let again = self.ensure_initiator_group(&group.host).await?;
            target = Self::target(&again)?.clone();
            reply = self.attach(volume, &target, true).await?;
        }
        if !reply.is_success() && reply.status != StatusCode::UNPROCESSABLE_ENTITY {
            return Err(reply.error());
        }
        // Attached now, or already before (422): the mapping collection has the LUN.
        match self.lun_on(volume, &target).await? {
            Some(lun) => Ok(Mapping {
                naa: volume.naa.clone(),
                lun_id: Some(lun),
            }),
            None if reply.is_success() => Err(StorageError::protocol(
                reply.operation.clone(),
                format!(
                    "PowerStore accepted the attach of {} to {} but lists no mapping",
                    volume.name, target.name
                ),
            )),
            None => Err(reply.error()),
        }
    }

    async fn unmap(&self, volume: &Volume, group: &InitiatorGroup) -> Result<(), StorageError> {
        let target = Self::target(group)?;
        let reply = self.attach(volume, target, false).await?;
        if reply.is_success() {
            return Ok(());
        }
        match reply.status {
            StatusCode::NOT_FOUND => match self.current_id(target).await? {
                // Re-created under a new id since it was journaled: detach there.
                Some(current) => {
                    let retry = self.attach(volume, &current, false).await?;
                    if retry.is_success() || self.lun_on(volume, &current).await?.is_none() {
                        Ok(())
                    } else {
                        Err(retry.error())
                    }
                }
                // Neither the object nor the volume holds a mapping any more.
                None => Ok(()),
            },
            StatusCode::UNPROCESSABLE_ENTITY if self.lun_on(volume, target).await?.is_none() => {
                Ok(())
            }
            _ => Err(reply.error()),
        }
    }

    async fn current_mappings(&self, volume: &Volume) -> Result<Vec<GroupRef>, StorageError> {
        Ok(self
            .mappings_of(&volume.id)
            .await?
            .into_iter()
            .filter_map(|m| match (m.host_id, m.host_group_id) {
                (Some(id), _) => Some(GroupRef {
                    kind: GroupKind::Host,
                    name: m.host.and_then(|h| h.name).unwrap_or_default(),
                    id,
                }),
                (None, Some(id)) => Some(GroupRef {
                    kind: GroupKind::HostGroup,
                    name: m.host_group.and_then(|g| g.name).unwrap_or_default(),
                    id,
                }),
                (None, None) => None,
            })
            .collect())
    }

    async fn restore(&self, volume: &Volume, groups: &[GroupRef]) -> Result<(), StorageError> {
        let mut wanted = Vec::new();
        for group in groups {
            if group.is_copy_offload_object() {
                tracing::info!(host = %group.name, volume = %volume.name, "not restoring a copy-offload host mapping");
            } else {
                AttachTarget::of(group)?;
                wanted.push(group);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let present = self.mappings_of(&volume.id).await?;
        for group in wanted {
            if present.iter().any(|m| mapping_targets(m, group)) {
                continue;
            }
            let mut target = group.clone();
            let mut reply = self.attach(volume, &target, true).await?;
            if reply.status == StatusCode::NOT_FOUND
                && let Some(current) = self.current_id(&target).await?
            {
                target = current;
                reply = self.attach(volume, &target, true).await?;
            }
            // 422 with the mapping in place: it was attached already.
            let attached = reply.is_success()
                || (reply.status == StatusCode::UNPROCESSABLE_ENTITY
                    && self.lun_on(volume, &target).await?.is_some());
            if !attached {
                return Err(reply.error());
            }
            tracing::info!(target = %target.name, volume = %volume.name, "original volume mapping restored");
        }
        Ok(())
    }

    async fn release_group(&self, group: &InitiatorGroup) -> Result<GroupRelease, StorageError> {
        let mut outcome = GroupRelease::NotOwned;
        for owned in group.owned.iter().filter(|g| g.kind == GroupKind::Host) {
            // By name: the journaled id may be stale.
            let Some(host) = self.host_named(&owned.name).await? else {
                outcome = GroupRelease::AlreadyGone;
                continue;
            };
            let in_use = !self
                .list::<MappingRecord>(
                    "host_volume_mapping",
                    "host_id",
                    &[("host_id", format!("eq.{}", host.id))],
                )
                .await?
                .is_empty();
            if in_use || host.host_group_id.is_some() {
                tracing::info!(host = %host.name, "host still has volumes attached or was put in a host group; keeping it");
                outcome = GroupRelease::InUse;
                continue;
            }
            let reply = self.http.delete(&["host", &host.id]).send().await?;
            outcome = match reply.status {
                s if s.is_success() => {
                    tracing::info!(host = %host.name, "deleted PowerStore host");
                    GroupRelease::Deleted
                }
                StatusCode::NOT_FOUND => GroupRelease::AlreadyGone,
                // A copy attached a volume between our check and the delete; the array refused.
                StatusCode::UNPROCESSABLE_ENTITY => GroupRelease::InUse,
                _ => return Err(reply.error()),
            };
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn pv(handle: &str, attrs: &[(&str, &str)]) -> PersistentVolumeRef {
        PersistentVolumeRef {
            name: "pv-1".into(),
            csi_driver: Some(CSI_DRIVER.into()),
            volume_handle: handle.into(),
            volume_attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn volumes_are_found_by_name_else_by_the_handle_id() {
        assert_eq!(
            volume_lookup(&pv("v1/PS1/scsi", &[("Name", "csivol-1")])).unwrap(),
            VolumeLookup::Name("csivol-1".into())
        );
        assert_eq!(
            volume_lookup(&pv("v1/PS1/scsi", &[])).unwrap(),
            VolumeLookup::Id {
                id: "v1".into(),
                cluster: Some("PS1".into())
            }
        );
        assert_eq!(
            volume_lookup(&pv("v1", &[("Name", " ")])).unwrap(),
            VolumeLookup::Id {
                id: "v1".into(),
                cluster: None
            }
        );
        let err = volume_lookup(&pv("", &[])).unwrap_err();
        assert!(err.to_string().contains(CSI_DRIVER), "{err}");
    }

    /// Upstream aborted the whole step on a `vmhbaN` id; such adapters are skipped now.
    #[test]
    fn initiators_use_powerstore_spelling_and_unknown_adapters_are_skipped() {
        let fc = Initiator::from_adapter_id("fc.20000025B5000001:21000025B5000001");
        assert_eq!(
            port_of(&fc).unwrap(),
            ("21:00:00:25:b5:00:00:01".to_owned(), "FC")
        );
        let iqn = Initiator::from_adapter_id("iqn.1998-01.com.vmware:esx7");
        assert_eq!(port_of(&iqn).unwrap().1, "iSCSI");
        let nqn = Initiator::from_adapter_id("nqn.2014-08.com.vmware:nvme:esx7");
        assert_eq!(port_of(&nqn).unwrap().1, "NVMe");
        assert!(port_of(&Initiator::from_adapter_id("vmhba64")).is_none());
        assert!(same_port(
            "21:00:00:25:B5:00:00:01",
            "21:00:00:25:b5:00:00:01"
        ));
        assert!(same_port(
            "IQN.1998-01.com.vmware:ESX7",
            "iqn.1998-01.com.vmware:esx7"
        ));
        assert!(!same_port(
            "21:00:00:25:b5:00:00:01",
            "21:00:00:25:b5:00:00:02"
        ));
    }

    #[test]
    fn powerstore_error_bodies_become_messages() {
        let body = br#"{"messages":[{"code":"0xE0A070010001","severity":"Error","message_l10n":"Volume is already attached.","arguments":[]}]}"#;
        assert_eq!(
            error_message(body).unwrap(),
            "Volume is already attached. (PowerStore error 0xE0A070010001)"
        );
        assert!(error_message(b"{\"messages\":[]}").is_none());
        assert!(error_message(b"<html>").is_none());
    }
}
