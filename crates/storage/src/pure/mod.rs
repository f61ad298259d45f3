//! Pure Storage FlashArray over its REST 2.x API (`https://<STORAGE_HOSTNAME>/api/<2.x>/...`):
//! sessions from an API token (`STORAGE_TOKEN`, or one obtained from `STORAGE_USERNAME` and
//! `STORAGE_PASSWORD` through REST 1.x), Portworx FlashArray Direct Access volumes by id or by
//! `<PURE_CLUSTER_PREFIX>-<pv name>`, the ESXi host's FlashArray host (found by WWN/IQN, or
//! created as `xcopy-<hostID>`), host and host-group connections, device names `naa.624a9370` +
//! serial, and the array-side copy (`POST /volumes?overwrite=true` from a source) for vVol and
//! RDM disks.
//!
//! Differences from upstream: REST 1.x is needed only to trade a user name and password for a
//! token; the session is renewed once on 401 and ended with [`PureArray::logout`]; a failed lookup
//! other than "does not exist" is an error (upstream panicked); names in queries are escaped;
//! object names travel as query parameters and bodies carry attributes only, as the published
//! API and Pure's own client do (upstream sent `names` and `host_names` in bodies); the original
//! connections (hosts and host groups) are reported and restored; an ESXi host without a
//! FlashArray host gets one that is deleted once nothing is connected to it; a volume connected
//! to NVMe-oF hosts is refused before anything changes, since the array never connects one
//! volume over NVMe-oF and SCSI at once.

mod preflight;
mod settings;

pub use settings::Settings;

use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderName, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::{ArrayCopy, ArrayCopySession, ArrayCopySource, ProgressSink, StorageApi};
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

/// CSI driver of Portworx, which provisions FlashArray Direct Access PVs.
pub const PORTWORX_CSI_DRIVER: &str = "pxd.portworx.com";

/// Tag namespace and key under which the VASA provider records a vVol volume's vSphere id.
pub const VASA_NAMESPACE: &str = "vasa-integration.purestorage.com";
pub const VVOL_ID_TAG: &str = "PURE_VVOL_ID";

/// ESXi device names of FlashArray volumes start with this; the volume serial follows.
const NAA_PREFIX: &str = "naa.624a9370";

/// `STORAGE_HOSTNAME` is the array's management address; the REST root is `/api`.
pub const ENDPOINT: EndpointDefaults = EndpointDefaults {
    scheme: "https",
    port: None,
    base_path: "/api",
};

/// Host personality set on hosts copy-offload creates.
const ESXI_PERSONALITY: &str = "esxi";

const SESSION_HEADER: &str = "x-auth-token";

/// Items per page when listing whole collections (hosts; all volumes for a `vml.` RDM name): an
/// array with thousands of volumes answers in bounded pieces.
const PAGE_LIMIT: usize = 500;

/// The `body` of a request that has none.
const NO_BODY: Option<&()> = None;

/// A connected FlashArray.
#[derive(Debug)]
pub struct PureArray {
    http: HttpClient,
    /// The REST 2.x version all calls use (the highest the array offers).
    version: String,
    cluster_prefix: String,
}

// ---- wire shapes (FlashArray REST 2.x models: Host, Connection, Volume, Tag, Arrays, Controller) ----

#[derive(Debug, Deserialize)]
struct ApiVersions {
    version: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
    #[serde(default)]
    continuation_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ApiTokenReply {
    api_token: String,
}

#[derive(Debug, Clone, Deserialize)]
struct HostRecord {
    name: String,
    #[serde(default)]
    iqns: Vec<String>,
    #[serde(default)]
    wwns: Vec<String>,
    #[serde(default)]
    nqns: Vec<String>,
    #[serde(default)]
    connection_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct NameRef {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ConnectionRecord {
    #[serde(default)]
    host: Option<NameRef>,
    #[serde(default)]
    host_group: Option<NameRef>,
    #[serde(default)]
    lun: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct VolumeRecord {
    id: String,
    name: String,
    serial: String,
    #[serde(default)]
    provisioned: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct TagRecord {
    resource: NameRef,
}

#[derive(Debug, Deserialize)]
struct ArrayRecord {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ControllerRecord {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    mode: Option<String>,
}

#[derive(Debug, Serialize)]
struct HostCreate<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    iqns: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    wwns: &'a [String],
    personality: &'a str,
}

#[derive(Debug, Serialize)]
struct HostAddPorts<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    add_iqns: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    add_wwns: &'a [String],
}

#[derive(Debug, Serialize)]
struct VolumeCopy<'a> {
    source: SourceRef<'a>,
}

#[derive(Debug, Serialize)]
struct SourceRef<'a> {
    name: &'a str,
}

#[derive(Debug, Serialize)]
struct Credentials1x<'a> {
    username: &'a str,
    password: &'a str,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// FlashArray error bodies: REST 2.x `{"errors": [{"context", "message"}]}`, the API gateway's
/// `{"message"}` (403/429), REST 1.x `[{"msg"}]`.
fn error_message(body: &[u8]) -> Option<String> {
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        let messages: Vec<String> = parsed
            .errors
            .into_iter()
            .filter_map(|e| match (e.message, e.context) {
                (Some(m), Some(c)) if !c.is_empty() => Some(format!("{m} ({c})")),
                (Some(m), _) => Some(m),
                (None, _) => None,
            })
            .collect();
        if !messages.is_empty() {
            return Some(messages.join("; "));
        }
        return parsed.message;
    }
    let legacy: Vec<serde_json::Value> = serde_json::from_slice(body).ok()?;
    let messages: Vec<&str> = legacy
        .iter()
        .filter_map(|e| e.get("msg").and_then(|m| m.as_str()))
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

/// True for the array's answer to a lookup of an object that does not exist.
fn is_missing(reply: &Reply) -> bool {
    reply.status == StatusCode::BAD_REQUEST && reply.message().contains("does not exist")
}

fn already_exists(reply: &Reply) -> bool {
    reply.status == StatusCode::BAD_REQUEST && reply.message().contains("already exists")
}

// ---- pure rules ----

/// Orders `1.19` / `2.16` style versions numerically; `None` for other shapes.
fn version_key(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The highest `major.x` the array lists.
pub fn highest_version(versions: &[String], major: u32) -> Option<String> {
    versions
        .iter()
        .filter_map(|v| version_key(v).map(|k| (k, v)))
        .filter(|((m, _), _)| *m == major)
        .max_by_key(|(k, _)| *k)
        .map(|(_, v)| v.clone())
}

/// How the FlashArray spells an ESXi initiator: FC by WWPN (16 upper-case hex digits), iSCSI by
/// name; NVMe and adapters without a SCSI identity have no host port copy-offload can use.
pub fn host_port(initiator: &Initiator) -> Option<HostPort> {
    match initiator {
        Initiator::FibreChannel(fc) => Some(HostPort::Wwn(fc.wwpn.hex_upper())),
        Initiator::Iscsi(name) => Some(HostPort::Iqn(name.clone())),
        Initiator::Nvme(_) | Initiator::Sdc(_) | Initiator::Other(_) => None,
    }
}

/// One port of a FlashArray host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPort {
    Wwn(String),
    Iqn(String),
}

impl HostPort {
    /// Whether `host` lists this port (WWNs compared without separators or case, IQNs without case).
    fn on(&self, host: &HostRecord) -> bool {
        match self {
            HostPort::Wwn(wwn) => host.wwns.iter().any(|w| same_wwn(w, wwn)),
            HostPort::Iqn(iqn) => host.iqns.iter().any(|i| i.eq_ignore_ascii_case(iqn)),
        }
    }
}

fn same_wwn(a: &str, b: &str) -> bool {
    let bare = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_hexdigit())
            .collect::<String>()
            .to_ascii_uppercase()
    };
    bare(a) == bare(b)
}

/// The serial an ESXi device name carries, when it is a FlashArray `naa.624a9370…` name.
pub fn serial_from_device_name(device: &str) -> Option<String> {
    let lower = device.to_ascii_lowercase();
    let serial = lower.strip_prefix(NAA_PREFIX)?;
    (serial.len() == 24 && serial.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| serial.to_ascii_uppercase())
}

/// A `filter=` string literal; FlashArray filters quote with `'` and cannot escape it.
fn filter_literal(value: &str, what: &str) -> Result<String, StorageError> {
    if value.contains('\'') {
        return Err(StorageError::config(format!(
            "{what} {value:?} contains a single quote, which a FlashArray filter cannot express"
        )));
    }
    Ok(format!("'{value}'"))
}

fn to_volume(record: VolumeRecord, operation: &str) -> Result<Volume, StorageError> {
    let device =
        naa::pure(&record.serial).map_err(|e| StorageError::protocol(operation, e.to_string()))?;
    Ok(Volume {
        id: record.id,
        name: record.name,
        naa: device,
        serial: record.serial,
        size_bytes: record.provisioned.unwrap_or(0),
    })
}

// ---- session ----

/// REST 2.x login: the API token in the `api-token` header, the session in `x-auth-token`.
struct PureLogin {
    version: String,
    api_token: Secret,
}

#[async_trait]
impl SessionLogin for PureLogin {
    async fn login(&self, http: &HttpClient) -> Result<Vec<(HeaderName, Secret)>, StorageError> {
        let reply = http
            .post(&[&self.version, "login"])
            .without_auth()
            .header(HeaderName::from_static("api-token"), self.api_token.clone())
            .send()
            .await?
            .success()?;
        let token = reply
            .headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                StorageError::protocol(
                    reply.operation.clone(),
                    "the login answer has no x-auth-token header",
                )
            })?;
        Ok(vec![(
            HeaderName::from_static(SESSION_HEADER),
            Secret::new(token),
        )])
    }
}

impl PureArray {
    /// Connects: picks the REST versions, obtains the API token (from `STORAGE_TOKEN`, or from
    /// user name and password over REST 1.x), logs in and reads the array once, so refused
    /// credentials, untrusted TLS and unreachable arrays fail here.
    pub async fn connect(
        settings: &ConnectionSettings,
        vendor: &Settings,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<Self, StorageError> {
        let creds = &settings.credentials;
        let token = creds
            .token
            .as_ref()
            .filter(|t| !t.expose().trim().is_empty());
        if token.is_none() && (creds.username.is_empty() || creds.password.expose().is_empty()) {
            return Err(StorageError::config(
                "Pure FlashArray needs STORAGE_TOKEN (an API token), or STORAGE_USERNAME and STORAGE_PASSWORD",
            ));
        }
        // The probe and token exchange run unauthenticated on a client of their own.
        let mut probe_options = ClientOptions::new(ENDPOINT, Auth::None);
        probe_options.observer = observer.clone();
        probe_options.error_message = error_message;
        let probe = HttpClient::new(settings, probe_options)?;
        let versions: ApiVersions = probe.get(&["api_version"]).send_json().await?;
        let version = highest_version(&versions.version, 2).ok_or_else(|| {
            StorageError::Unsupported {
                message: format!(
                    "the FlashArray at {} offers no REST 2.x API (versions: {}); Purity//FA 6.x or later is needed",
                    probe.base(),
                    versions.version.join(", ")
                ),
            }
        })?;
        let api_token = match token {
            Some(token) => token.clone(),
            None => {
                let v1 = highest_version(&versions.version, 1).ok_or_else(|| {
                    StorageError::config(format!(
                        "the FlashArray at {} offers no REST 1.x API to trade STORAGE_USERNAME and \
                         STORAGE_PASSWORD for a token; set STORAGE_TOKEN to an API token instead",
                        probe.base()
                    ))
                })?;
                let reply = probe
                    .post(&[&v1, "auth", "apitoken"])
                    .json(&Credentials1x {
                        username: &creds.username,
                        password: creds.password.expose(),
                    })?
                    .sensitive()
                    .send()
                    .await?;
                let answer: ApiTokenReply = reply.success()?.json()?;
                Secret::new(answer.api_token)
            }
        };
        let login = PureLogin {
            version: version.clone(),
            api_token,
        };
        let mut options = ClientOptions::new(ENDPOINT, Auth::Session(Arc::new(login)));
        options.observer = observer;
        options.error_message = error_message;
        let http = HttpClient::new(settings, options)?;
        let array = PureArray {
            http,
            version,
            cluster_prefix: vendor.cluster_prefix.clone(),
        };
        let _: Page<ArrayRecord> = array.get("arrays", &[]).await?;
        tracing::info!(endpoint = %array.http.base(), version = %array.version, "connected to Pure FlashArray");
        Ok(array)
    }

    /// The REST 2.x version in use.
    pub fn rest_version(&self) -> &str {
        &self.version
    }

    /// Ends the session on the array (sessions otherwise linger until the array's idle timeout).
    pub async fn logout(&self) -> Result<(), StorageError> {
        self.http
            .post(&[&self.version, "logout"])
            .send()
            .await?
            .success()
            .map(|_| ())
    }

    fn path<'a>(&'a self, resource: &'a str) -> Vec<&'a str> {
        let mut segments = vec![self.version.as_str()];
        segments.extend(resource.split('/'));
        segments
    }

    async fn send<B: Serialize + Sync>(
        &self,
        method: http::Method,
        resource: &str,
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<Reply, StorageError> {
        let mut request = self.http.request(method, &self.path(resource));
        for (key, value) in query {
            request = request.query(key, value);
        }
        if let Some(body) = body {
            request = request.json(body)?;
        }
        request.send().await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        resource: &str,
        query: &[(&str, &str)],
    ) -> Result<Page<T>, StorageError> {
        self.send(http::Method::GET, resource, query, NO_BODY)
            .await?
            .success()?
            .json()
    }

    /// Every item of a collection, [`PAGE_LIMIT`] at a time, following continuation tokens.
    async fn list<T: DeserializeOwned>(
        &self,
        resource: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, StorageError> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        let limit = PAGE_LIMIT.to_string();
        loop {
            let mut pairs = query.to_vec();
            pairs.push(("limit", &limit));
            if let Some(token) = &token {
                pairs.push(("continuation_token", token));
            }
            let page: Page<T> = self.get(resource, &pairs).await?;
            all.extend(page.items);
            match page.continuation_token.filter(|t| !t.is_empty()) {
                Some(next) if token.as_deref() != Some(next.as_str()) => token = Some(next),
                _ => return Ok(all),
            }
        }
    }

    /// The items a by-name/by-id lookup finds; empty when the array says they do not exist.
    async fn lookup<T: DeserializeOwned>(
        &self,
        resource: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, StorageError> {
        let reply = self
            .send(http::Method::GET, resource, query, NO_BODY)
            .await?;
        if is_missing(&reply) {
            return Ok(Vec::new());
        }
        let page: Page<T> = reply.success()?.json()?;
        Ok(page.items)
    }

    async fn volume_by(&self, key: &str, value: &str) -> Result<Option<Volume>, StorageError> {
        let found: Vec<VolumeRecord> = self.lookup("volumes", &[(key, value)]).await?;
        let operation = "GET /api/<2.x>/volumes";
        found
            .into_iter()
            .next()
            .map(|r| to_volume(r, operation))
            .transpose()
    }

    /// The connections of one volume (a handful: one answer, no paging).
    async fn connections_of(&self, volume: &str) -> Result<Vec<ConnectionRecord>, StorageError> {
        self.lookup("connections", &[("volume_names", volume)])
            .await
    }

    async fn connection(
        &self,
        volume: &str,
        host: &str,
    ) -> Result<Option<ConnectionRecord>, StorageError> {
        let found: Vec<ConnectionRecord> = self
            .lookup(
                "connections",
                &[("host_names", host), ("volume_names", volume)],
            )
            .await?;
        Ok(found.into_iter().next())
    }

    async fn host(&self, name: &str) -> Result<Option<HostRecord>, StorageError> {
        let found: Vec<HostRecord> = self.lookup("hosts", &[("names", name)]).await?;
        Ok(found.into_iter().find(|h| h.name == name))
    }

    /// Connects `volume` to `host` (or finds the connection); returns the LUN. `Ok(Err(reply))`
    /// carries the array's refusal.
    async fn connect_host(
        &self,
        volume: &Volume,
        host: &str,
    ) -> Result<Result<Option<u32>, Reply>, StorageError> {
        let reply = self
            .send(
                http::Method::POST,
                "connections",
                &[("host_names", host), ("volume_names", &volume.name)],
                NO_BODY,
            )
            .await?;
        if reply.is_success() {
            let created: Option<Page<ConnectionRecord>> = reply.json().ok();
            if let Some(lun) = created
                .and_then(|p| p.items.into_iter().next())
                .and_then(|c| c.lun)
            {
                return Ok(Ok(Some(lun)));
            }
        } else if !already_exists(&reply) {
            return Ok(Err(reply));
        }
        Ok(Ok(self
            .connection(&volume.name, host)
            .await?
            .and_then(|c| c.lun)))
    }

    async fn disconnect_host(&self, volume: &Volume, host: &str) -> Result<(), StorageError> {
        let reply = self
            .send(
                http::Method::DELETE,
                "connections",
                &[("host_names", host), ("volume_names", &volume.name)],
                NO_BODY,
            )
            .await?;
        if reply.is_success() || self.connection(&volume.name, host).await?.is_none() {
            return Ok(());
        }
        Err(reply.error())
    }

    /// Refuses to map `volume` over FC/iSCSI while NVMe-oF hosts are connected to it: the array
    /// would refuse the connection, and nothing must be half-mapped.
    async fn refuse_nvme_conflict(
        &self,
        volume: &Volume,
        group: &InitiatorGroup,
    ) -> Result<(), StorageError> {
        let connections = self.connections_of(&volume.name).await?;
        let mut nvme_hosts = Vec::new();
        for host in connections
            .iter()
            .filter_map(|c| c.host.as_ref()?.name.clone())
        {
            if group.targets.iter().any(|t| t.name == host) {
                continue;
            }
            if let Some(record) = self.host(&host).await?
                && !record.nqns.is_empty()
            {
                nvme_hosts.push(host);
            }
        }
        if nvme_hosts.is_empty() {
            return Ok(());
        }
        Err(StorageError::Unsupported {
            message: format!(
                "volume {} is connected to NVMe-oF host(s) {}; a FlashArray volume cannot be connected over \
                 NVMe-oF and FC/iSCSI at once, so it cannot be mapped to ESXi host {} for the copy. \
                 Migrate this disk without copy offload, or give the PVC a storage class that attaches over iSCSI or FC",
                volume.name,
                nvme_hosts.join(", "),
                group.host.host_id
            ),
        })
    }

    async fn create_host(&self, name: &str, ports: &[HostPort]) -> Result<bool, StorageError> {
        let (iqns, wwns) = split_ports(ports);
        let body = HostCreate {
            iqns: &iqns,
            wwns: &wwns,
            personality: ESXI_PERSONALITY,
        };
        let reply = self
            .send(http::Method::POST, "hosts", &[("names", name)], Some(&body))
            .await?;
        if reply.is_success() {
            tracing::info!(host = %name, "created FlashArray host");
            return Ok(true);
        }
        if already_exists(&reply) {
            return Ok(false);
        }
        Err(reply.error())
    }

    async fn add_ports(&self, host: &HostRecord, ports: &[HostPort]) -> Result<(), StorageError> {
        let missing: Vec<HostPort> = ports.iter().filter(|p| !p.on(host)).cloned().collect();
        if missing.is_empty() {
            return Ok(());
        }
        let (iqns, wwns) = split_ports(&missing);
        let body = HostAddPorts {
            add_iqns: &iqns,
            add_wwns: &wwns,
        };
        self.send(
            http::Method::PATCH,
            "hosts",
            &[("names", &host.name)],
            Some(&body),
        )
        .await?
        .success()
        .map(|_| ())
    }

    fn host_targets(group: &InitiatorGroup) -> Result<Vec<&GroupRef>, StorageError> {
        let hosts: Vec<&GroupRef> = group
            .targets
            .iter()
            .filter(|t| t.kind == GroupKind::Host)
            .collect();
        if hosts.is_empty() || hosts.len() != group.targets.len() {
            return Err(StorageError::config(format!(
                "initiator group of ESXi host {} does not name FlashArray hosts: {:?}",
                group.host.host_id, group.targets
            )));
        }
        Ok(hosts)
    }

    /// Looks up the RDM source volume from the RDM's device name.
    async fn rdm_source(&self, device_name: &str) -> Result<Volume, StorageError> {
        if let Some(serial) = serial_from_device_name(device_name) {
            let filter = format!("serial={}", filter_literal(&serial, "serial")?);
            if let Some(volume) = self.volume_by("filter", &filter).await? {
                return Ok(volume);
            }
        } else {
            // A `vml.` name embeds the NAA identifier; match it against every volume's.
            let lower = device_name.to_ascii_lowercase();
            let all: Vec<VolumeRecord> = self.list("volumes", &[]).await?;
            let operation = "GET /api/<2.x>/volumes";
            for record in all {
                let id = format!("{}{}", &NAA_PREFIX[4..], record.serial.to_ascii_lowercase());
                if lower.contains(&id) {
                    return to_volume(record, operation);
                }
            }
        }
        Err(StorageError::not_found(
            format!("FlashArray volume behind RDM device {device_name}"),
            "the RDM's LUN is not a volume of this array; check that STORAGE_HOSTNAME names the array that serves the RDM",
        ))
    }

    async fn vvol_source(&self, vvol_id: &str) -> Result<Volume, StorageError> {
        let filter = format!(
            "key={} AND value={}",
            filter_literal(VVOL_ID_TAG, "tag key")?,
            filter_literal(vvol_id, "vVol id")?
        );
        let tags: Vec<TagRecord> = self
            .list(
                "volumes/tags",
                &[
                    ("resource_destroyed", "False"),
                    ("namespaces", VASA_NAMESPACE),
                    ("filter", &filter),
                ],
            )
            .await?;
        let name = tags
            .into_iter()
            .find_map(|t| t.resource.name)
            .ok_or_else(|| {
                StorageError::not_found(
                    format!("FlashArray volume of vVol {vvol_id}"),
                    format!("no volume carries the {VASA_NAMESPACE} tag {VVOL_ID_TAG}={vvol_id}; is the vVol datastore on this array?"),
                )
            })?;
        self.volume_by("names", &name).await?.ok_or_else(|| {
            StorageError::not_found(
                format!("FlashArray volume {name} of vVol {vvol_id}"),
                "the tag names a volume that no longer exists",
            )
        })
    }
}

fn split_ports(ports: &[HostPort]) -> (Vec<String>, Vec<String>) {
    let mut iqns = Vec::new();
    let mut wwns = Vec::new();
    for port in ports {
        match port {
            HostPort::Iqn(i) => iqns.push(i.clone()),
            HostPort::Wwn(w) => wwns.push(w.clone()),
        }
    }
    (iqns, wwns)
}

#[async_trait]
impl StorageApi for PureArray {
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
        let arrays: Page<ArrayRecord> = self.get("arrays", &[]).await?;
        let controllers: Page<ControllerRecord> = self.get("controllers", &[]).await?;
        let array = arrays.items.into_iter().next();
        let model = controllers
            .items
            .iter()
            .find(|c| c.mode.as_deref() == Some("primary"))
            .or(controllers.items.first())
            .and_then(|c| c.model.clone())
            .unwrap_or_default();
        Ok(ArrayInfo {
            vendor: "Pure Storage".into(),
            product: array
                .as_ref()
                .and_then(|a| a.os.clone())
                .unwrap_or_else(|| "FlashArray".into()),
            model,
            version: array.and_then(|a| a.version).unwrap_or_default(),
        })
    }

    async fn resolve_volume(&self, pv: &PersistentVolumeRef) -> Result<Volume, StorageError> {
        if let Some(driver) = pv
            .csi_driver
            .as_deref()
            .filter(|d| *d != PORTWORX_CSI_DRIVER)
        {
            return Err(StorageError::config(format!(
                "PV {} is provisioned by CSI driver {driver}, not Portworx ({PORTWORX_CSI_DRIVER}); \
                 the storage map points this datastore at the wrong storage vendor",
                pv.name
            )));
        }
        if !pv.volume_handle.is_empty()
            && let Some(volume) = self.volume_by("ids", &pv.volume_handle).await?
        {
            return Ok(volume);
        }
        let name = format!("{}-{}", self.cluster_prefix, pv.name);
        self.volume_by("names", &name).await?.ok_or_else(|| {
            StorageError::not_found(
                format!("FlashArray volume of PV {}", pv.name),
                format!(
                    "neither a volume with id {:?} nor one named {name} exists; check PURE_CLUSTER_PREFIX \
                     (px_<first 8 characters of the StorageCluster uid>) and that Portworx provisioned the PV on this array",
                    pv.volume_handle
                ),
            )
        })
    }

    async fn ensure_initiator_group(
        &self,
        host: &EsxiHostRef,
    ) -> Result<InitiatorGroup, StorageError> {
        let ports: Vec<HostPort> = host.initiators.iter().filter_map(host_port).collect();
        if ports.is_empty() {
            let ids: Vec<String> = host.initiators.iter().map(Initiator::adapter_id).collect();
            return Err(StorageError::Unsupported {
                message: format!(
                    "ESXi host {} has no FC or iSCSI initiator a FlashArray host can hold (adapters: {}); \
                     copy-offload maps FlashArray volumes over FC or iSCSI only, not NVMe-oF",
                    host.host_id,
                    if ids.is_empty() {
                        "none".to_owned()
                    } else {
                        ids.join(", ")
                    }
                ),
            });
        }
        let protocol = match (
            ports.iter().any(|p| matches!(p, HostPort::Wwn(_))),
            ports.iter().any(|p| matches!(p, HostPort::Iqn(_))),
        ) {
            (true, true) => StorageProtocol::Mixed,
            (true, false) => StorageProtocol::Fc,
            _ => StorageProtocol::Iscsi,
        };
        let hosts: Vec<HostRecord> = self.list("hosts", &[]).await?;
        let matching: Vec<&HostRecord> = hosts
            .iter()
            .filter(|h| ports.iter().any(|p| p.on(h)))
            .collect();
        let name = host.group_base_name();
        let mut created = false;
        let targets: Vec<GroupRef> = if matching.is_empty() {
            // A port belongs to one host only, so a host of ours that lacks them can take them.
            match hosts.iter().find(|h| h.name == name) {
                Some(existing) => self.add_ports(existing, &ports).await?,
                None => {
                    created = self.create_host(&name, &ports).await?;
                    if !created && let Some(existing) = self.host(&name).await? {
                        self.add_ports(&existing, &ports).await?;
                    }
                }
            }
            vec![GroupRef {
                kind: GroupKind::Host,
                name: name.clone(),
                id: String::new(),
            }]
        } else {
            matching
                .iter()
                .map(|h| GroupRef {
                    kind: GroupKind::Host,
                    name: h.name.clone(),
                    id: String::new(),
                })
                .collect()
        };
        let owned = targets
            .iter()
            .filter(|t| created || t.is_copy_offload_object())
            .cloned()
            .collect();
        Ok(InitiatorGroup {
            host: host.clone(),
            protocol,
            targets,
            owned,
        })
    }

    async fn map(&self, volume: &Volume, group: &InitiatorGroup) -> Result<Mapping, StorageError> {
        let hosts = Self::host_targets(group)?;
        self.refuse_nvme_conflict(volume, group).await?;
        let mut lun_id = None;
        let mut connected: Vec<&str> = Vec::new();
        for host in &hosts {
            let mut outcome = self.connect_host(volume, &host.name).await?;
            if let Err(reply) = &outcome
                && is_missing(reply)
                && host.is_copy_offload_object()
            {
                // A concurrent copy on the same ESXi host released our host in between.
                tracing::info!(host = %host.name, "FlashArray host disappeared before mapping; creating it again");
                self.ensure_initiator_group(&group.host).await?;
                outcome = self.connect_host(volume, &host.name).await?;
            }
            match outcome {
                Ok(lun) => {
                    lun_id = lun_id.or(lun);
                    connected.push(&host.name);
                }
                Err(reply) => {
                    // Never leave the volume connected to some of the ESXi host's ports only.
                    for done in connected {
                        if let Err(e) = self.disconnect_host(volume, done).await {
                            tracing::warn!(host = %done, error = %e, "could not undo a partial FlashArray connection");
                        }
                    }
                    return Err(reply.error());
                }
            }
        }
        Ok(Mapping {
            naa: volume.naa.clone(),
            lun_id,
        })
    }

    async fn unmap(&self, volume: &Volume, group: &InitiatorGroup) -> Result<(), StorageError> {
        for host in Self::host_targets(group)? {
            self.disconnect_host(volume, &host.name).await?;
        }
        Ok(())
    }

    async fn current_mappings(&self, volume: &Volume) -> Result<Vec<GroupRef>, StorageError> {
        let mut groups: Vec<GroupRef> = Vec::new();
        for connection in self.connections_of(&volume.name).await? {
            let group = match (
                connection.host_group.and_then(|g| g.name),
                connection.host.and_then(|h| h.name),
            ) {
                (Some(host_group), _) => GroupRef {
                    kind: GroupKind::HostGroup,
                    name: host_group,
                    id: String::new(),
                },
                (None, Some(host)) => GroupRef {
                    kind: GroupKind::Host,
                    name: host,
                    id: String::new(),
                },
                (None, None) => continue,
            };
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        Ok(groups)
    }

    async fn restore(&self, volume: &Volume, groups: &[GroupRef]) -> Result<(), StorageError> {
        let present = self.current_mappings(volume).await?;
        for group in groups {
            if group.is_copy_offload_object() {
                tracing::info!(host = %group.name, volume = %volume.name, "not restoring a copy-offload host connection");
                continue;
            }
            if present.contains(group) {
                continue;
            }
            let key = match group.kind {
                GroupKind::Host => "host_names",
                GroupKind::HostGroup => "host_group_names",
                other => {
                    return Err(StorageError::config(format!(
                        "cannot restore a connection to {} {other:?} on a FlashArray: only hosts and host groups exist there",
                        group.name
                    )));
                }
            };
            let reply = self
                .send(
                    http::Method::POST,
                    "connections",
                    &[(key, &group.name), ("volume_names", &volume.name)],
                    NO_BODY,
                )
                .await?;
            if !reply.is_success() && !already_exists(&reply) {
                return Err(reply.error());
            }
            tracing::info!(target = %group.name, volume = %volume.name, "original FlashArray connection restored");
        }
        Ok(())
    }

    async fn release_group(&self, group: &InitiatorGroup) -> Result<GroupRelease, StorageError> {
        let mut outcome = GroupRelease::NotOwned;
        for owned in group.owned.iter().filter(|g| g.kind == GroupKind::Host) {
            let Some(host) = self.host(&owned.name).await? else {
                outcome = GroupRelease::AlreadyGone;
                continue;
            };
            if host.connection_count.unwrap_or(0) > 0 {
                tracing::info!(host = %host.name, "FlashArray host still has connections; keeping it");
                outcome = GroupRelease::InUse;
                continue;
            }
            let reply = self
                .send(
                    http::Method::DELETE,
                    "hosts",
                    &[("names", &host.name)],
                    NO_BODY,
                )
                .await?;
            outcome = if reply.is_success() {
                tracing::info!(host = %host.name, "deleted FlashArray host copy-offload created");
                GroupRelease::Deleted
            } else if is_missing(&reply) {
                GroupRelease::AlreadyGone
            } else if self
                .host(&host.name)
                .await?
                .is_some_and(|h| h.connection_count.unwrap_or(0) > 0)
            {
                // A copy connected a volume between our check and the delete; the array refused.
                GroupRelease::InUse
            } else {
                return Err(reply.error());
            };
        }
        Ok(outcome)
    }

    fn array_copy(&self) -> Option<&dyn ArrayCopy> {
        Some(self)
    }
}

#[async_trait]
impl ArrayCopy for PureArray {
    fn supports(&self, _source: &ArrayCopySource) -> bool {
        true
    }

    /// `POST /volumes?names=<target>&overwrite=true` from the source: the array copies
    /// synchronously and creates no other object, so a repeated call simply copies again.
    async fn copy(
        &self,
        session: &ArrayCopySession,
        progress: ProgressSink<'_>,
    ) -> Result<(), StorageError> {
        let source = match &session.source {
            ArrayCopySource::VVol { vvol_id } => self.vvol_source(vvol_id).await?,
            ArrayCopySource::Rdm { device_name, .. } => self.rdm_source(device_name).await?,
        };
        let target = &session.target;
        if source.id == target.id || source.name == target.name {
            return Err(StorageError::config(format!(
                "the copy source and the target PVC volume are the same FlashArray volume ({})",
                target.name
            )));
        }
        if source.size_bytes > target.size_bytes && target.size_bytes > 0 {
            return Err(StorageError::config(format!(
                "source volume {} ({} bytes) is larger than the target PVC volume {} ({} bytes); \
                 the PVC must be at least as large as the disk",
                source.name, source.size_bytes, target.name, target.size_bytes
            )));
        }
        progress(0);
        let body = VolumeCopy {
            source: SourceRef { name: &source.name },
        };
        self.send(
            http::Method::POST,
            "volumes",
            &[("names", &target.name), ("overwrite", "true")],
            Some(&body),
        )
        .await?
        .success()?;
        tracing::info!(source = %source.name, target = %target.name, "FlashArray volume copied");
        progress(100);
        Ok(())
    }

    async fn end(&self, _session: &ArrayCopySession) -> Result<(), StorageError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_version_of_each_major_is_picked() {
        let versions: Vec<String> = ["1.2", "1.19", "1.9", "2.0", "2.16", "2.9", "x"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(highest_version(&versions, 1).as_deref(), Some("1.19"));
        assert_eq!(highest_version(&versions, 2).as_deref(), Some("2.16"));
        assert_eq!(highest_version(&versions, 3), None);
    }

    #[test]
    fn initiators_use_flasharray_spelling() {
        let fc = Initiator::from_adapter_id("fc.20000025b5000001:21000025b5000001");
        assert_eq!(
            host_port(&fc),
            Some(HostPort::Wwn("21000025B5000001".into()))
        );
        let host = HostRecord {
            name: "h".into(),
            iqns: vec!["IQN.1998-01.com.vmware:ESX".into()],
            wwns: vec!["21:00:00:25:b5:00:00:01".into()],
            nqns: vec![],
            connection_count: None,
        };
        assert!(host_port(&fc).unwrap().on(&host));
        assert!(HostPort::Iqn("iqn.1998-01.com.vmware:esx".into()).on(&host));
        assert!(host_port(&Initiator::from_adapter_id("nqn.2014-08.org.nvmexpress:x")).is_none());
        assert!(host_port(&Initiator::from_adapter_id("vmhba64")).is_none());
    }

    #[test]
    fn rdm_device_names_give_the_serial() {
        assert_eq!(
            serial_from_device_name("naa.624a93704d2c4e3a0000000000001234").as_deref(),
            Some("4D2C4E3A0000000000001234")
        );
        assert!(serial_from_device_name("naa.600a0980383030").is_none());
        assert!(serial_from_device_name("vml.0200000000624a9370").is_none());
    }

    #[test]
    fn error_bodies_of_every_api_generation_become_messages() {
        let v2 = br#"{"errors":[{"context":"vol1","message":"Volume does not exist."}]}"#;
        assert_eq!(error_message(v2).unwrap(), "Volume does not exist. (vol1)");
        assert_eq!(
            error_message(br#"{"message":"Too many requests"}"#).unwrap(),
            "Too many requests"
        );
        assert_eq!(
            error_message(br#"[{"msg":"invalid credentials"}]"#).unwrap(),
            "invalid credentials"
        );
        assert!(error_message(b"<html>").is_none());
    }

    #[test]
    fn filter_literals_refuse_quotes() {
        assert_eq!(filter_literal("abc", "x").unwrap(), "'abc'");
        assert!(filter_literal("a'b", "x").is_err());
    }
}
