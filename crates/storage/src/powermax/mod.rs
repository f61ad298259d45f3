//! Dell PowerMax through Unisphere for PowerMax REST (`https://<STORAGE_HOSTNAME>:8443/univmax/restapi`,
//! API version 100): HTTP Basic on every request, volumes of CSI PowerMax PVs by the device id at
//! the end of the volume handle, the ESXi host's initiators looked up among the initiators logged
//! in to the array (`POWERMAX_SYMMETRIX_ID`), the array host that holds them (or a host
//! `xcopy-<hostID>` created from them), and per target volume a storage group `xcopy-<device>-SG`
//! exposed to that host through a masking view `xcopy-<device>-MV` on the port group
//! `POWERMAX_PORT_GROUP_NAME`. Device names are `naa.` + the volume `wwn`.
//!
//! Differences from upstream: storage group and masking view are named after the target volume, so
//! a re-run finds (adopts) what an interrupted run made instead of leaking it, and `xcopy-*`
//! storage groups that upstream's random names left holding the volume are removed; the ESXi
//! initiators are checked against the array's logged-in initiators up front, with the remedy in
//! the error, and a host is created for them when none holds them (upstream failed); the host
//! copy-offload created is deleted once no masking view uses it; the storage group is created
//! without a service-level block (upstream sent `srpId "none"` with an empty service level);
//! `current_mappings` reports the volume's masking views and `restore` puts the volume back into
//! their storage groups (upstream reported nothing); 409 and 500 are retried a bounded number of
//! times as 503 is (upstream: 409 counted as success, 500 up to seven times), a create that
//! answers 409 adopts the object that exists; every call has the shared timeout instead of ten
//! minutes; a lone 401 is retried once after checking the credentials again.

mod preflight;
mod settings;

pub use settings::Settings;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::StorageApi;
use crate::error::StorageError;
use crate::http::{
    ApiRequest, Auth, ClientOptions, ConnectionSettings, EndpointDefaults, HttpClient, Reply,
    RequestObserver, RetryPolicy, Secret, SessionLogin,
};
use crate::model::{
    ArrayInfo, EsxiHostRef, GroupKind, GroupRef, GroupRelease, Initiator, InitiatorGroup, Mapping,
    PersistentVolumeRef, StorageProtocol, Volume,
};
use crate::naa;

/// CSI driver name of Dell's PowerMax driver, the provisioner of PowerMax-backed PVs.
pub const CSI_DRIVER: &str = "csi-powermax.dellemc.com";

/// `STORAGE_HOSTNAME` is the Unisphere server; its REST root is `/univmax/restapi` on port 8443.
pub const ENDPOINT: EndpointDefaults = EndpointDefaults {
    scheme: "https",
    port: Some(8443),
    base_path: "/univmax/restapi",
};

/// The Unisphere REST API version this client speaks (served by Unisphere 10.0 and later).
pub const API_VERSION: &str = "100";

/// Every change is asked to finish before the answer (no job to poll).
const SYNCHRONOUS: &str = "SYNCHRONOUS";

/// The storage group copy-offload exposes a target volume through.
pub fn storage_group_name(device: &str) -> String {
    format!("xcopy-{device}-SG")
}

/// The masking view copy-offload exposes a target volume through.
pub fn masking_view_name(device: &str) -> String {
    format!("xcopy-{device}-MV")
}

/// The device id of a CSI PowerMax PV: the text after the last `-` of the volume handle
/// (`csi-<prefix>-<name>-<symmetrix id>-<device id>`), 1 to 5 hex digits.
pub fn device_id(pv: &PersistentVolumeRef) -> Result<String, StorageError> {
    let device = pv
        .volume_handle
        .rsplit('-')
        .next()
        .map(str::trim)
        .unwrap_or_default();
    if device.is_empty() || device.len() > 5 || !device.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StorageError::config(format!(
            "PV {} has volume handle {:?}, which does not end in a PowerMax device id \
             (<name>-<symmetrix id>-<device id>); is it provisioned by {CSI_DRIVER}?",
            pv.name, pv.volume_handle
        )));
    }
    Ok(device.to_ascii_uppercase())
}

/// The Symmetrix id in a CSI PowerMax volume handle (the part before the device id), if any.
fn handle_symmetrix(pv: &PersistentVolumeRef) -> Option<&str> {
    let mut parts = pv.volume_handle.rsplit('-');
    parts.next();
    parts
        .next()
        .filter(|s| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()))
}

/// The protocol of the port group masking views use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortProtocol {
    Fc,
    Iscsi,
}

impl PortProtocol {
    fn name(self) -> &'static str {
        match self {
            PortProtocol::Fc => "FC",
            PortProtocol::Iscsi => "iSCSI",
        }
    }
}

/// How PowerMax spells an ESXi initiator of `protocol`: the WWPN as 16 lower-case hex digits, or
/// the iSCSI name. `None` for initiators the port group cannot reach.
pub fn hba_of(initiator: &Initiator, protocol: PortProtocol) -> Option<String> {
    match (initiator, protocol) {
        (Initiator::FibreChannel(fc), PortProtocol::Fc) => Some(fc.wwpn.hex_lower().to_owned()),
        (Initiator::Iscsi(name), PortProtocol::Iscsi) => Some(name.to_ascii_lowercase()),
        _ => None,
    }
}

// ---- wire shapes (field names of Unisphere's sloprovisioning resources) ----

#[derive(Debug, Deserialize)]
struct VersionRecord {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    supported_api_versions: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct SymmetrixRecord {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    ucode: Option<String>,
    #[serde(default)]
    microcode: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SymmetrixList {
    #[serde(default, rename = "symmetrixId")]
    ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct PortGroupRecord {
    #[serde(default)]
    port_group_protocol: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PortGroupList {
    #[serde(default, rename = "portGroupId")]
    ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct VolumeRecord {
    #[serde(rename = "volumeId")]
    volume_id: String,
    #[serde(default)]
    volume_identifier: Option<String>,
    #[serde(default)]
    wwn: Option<String>,
    #[serde(default)]
    cap_mb: Option<f64>,
    #[serde(default, rename = "storageGroupId")]
    storage_groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct InitiatorList {
    #[serde(default, rename = "initiatorId")]
    ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct InitiatorRecord {
    #[serde(default)]
    host: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HostRecord {
    #[serde(default)]
    num_of_masking_views: u64,
}

#[derive(Debug, Deserialize)]
struct StorageGroupRecord {
    #[serde(default)]
    num_of_vols: u64,
    #[serde(default, rename = "maskingview")]
    masking_views: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct MaskingViewRecord {
    #[serde(default, rename = "hostId")]
    host: Option<String>,
    #[serde(default, rename = "portGroupId")]
    port_group: Option<String>,
    #[serde(default, rename = "storageGroupId")]
    storage_group: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Connections {
    #[serde(default, rename = "maskingViewConnection")]
    connections: Vec<Connection>,
}

#[derive(Debug, Deserialize)]
struct Connection {
    #[serde(default)]
    host_lun_address: Option<String>,
}

/// Unisphere's `{"message": "..."}`.
fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
}

/// Basic on every request. Unisphere keeps no session a client must open; "logging in" checks the
/// credentials and the API version once, and again (once) when a request is answered 401.
struct BasicCheck {
    authorization: Secret,
}

#[async_trait]
impl SessionLogin for BasicCheck {
    async fn login(&self, http: &HttpClient) -> Result<Vec<(HeaderName, Secret)>, StorageError> {
        let reply = http
            .get(&["version"])
            .without_auth()
            .header(http::header::AUTHORIZATION, self.authorization.clone())
            .send()
            .await?
            .success()?;
        let version: VersionRecord = reply.json()?;
        if !version.supported_api_versions.is_empty()
            && !version
                .supported_api_versions
                .iter()
                .any(|v| v == API_VERSION)
        {
            return Err(StorageError::Unsupported {
                message: format!(
                    "Unisphere {} serves REST API versions {} but not {API_VERSION}; \
                     copy-offload needs Unisphere for PowerMax 10.0 or later",
                    version.version.unwrap_or_default(),
                    version.supported_api_versions.join(", ")
                ),
            });
        }
        Ok(vec![(
            http::header::AUTHORIZATION,
            self.authorization.clone(),
        )])
    }
}

/// A connected PowerMax array.
#[derive(Debug)]
pub struct PowerMaxArray {
    http: HttpClient,
    symmetrix_id: String,
    port_group: String,
    protocol: PortProtocol,
    retry: RetryPolicy,
    model: String,
    ucode: String,
}

impl PowerMaxArray {
    /// Checks the credentials, the Symmetrix id and the port group. Fails fast on refused
    /// credentials, untrusted TLS, unreachable servers and unknown array or port group.
    pub async fn connect(
        settings: &ConnectionSettings,
        vendor: &Settings,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<Self, StorageError> {
        let creds = &settings.credentials;
        if creds.username.is_empty() || creds.password.expose().is_empty() {
            return Err(StorageError::config(
                "PowerMax authenticates with a Unisphere user: set STORAGE_USERNAME and STORAGE_PASSWORD (STORAGE_TOKEN is not used)",
            ));
        }
        let basic = BASE64.encode(format!("{}:{}", creds.username, creds.password.expose()));
        let login = BasicCheck {
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
        let mut array = PowerMaxArray {
            http,
            symmetrix_id: vendor.symmetrix_id.clone(),
            port_group: vendor.port_group_name.clone(),
            protocol: PortProtocol::Iscsi,
            retry: settings.retry,
            model: String::new(),
            ucode: String::new(),
        };
        let reply = array
            .send(|| {
                Ok(array
                    .http
                    .get(&[API_VERSION, "system", "symmetrix", &array.symmetrix_id]))
            })
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            let known: SymmetrixList = array
                .send(|| Ok(array.http.get(&[API_VERSION, "system", "symmetrix"])))
                .await?
                .success()?
                .json()?;
            return Err(StorageError::config(format!(
                "Unisphere at {} manages no array {}; set POWERMAX_SYMMETRIX_ID to one of: {}",
                array.http.base(),
                array.symmetrix_id,
                known.ids.join(", ")
            )));
        }
        let system: SymmetrixRecord = reply.success()?.json()?;
        array.model = system.model.unwrap_or_default();
        array.ucode = system.ucode.or(system.microcode).unwrap_or_default();
        let reply = array
            .send(|| {
                Ok(array
                    .http
                    .get(&array.provisioning(&["portgroup", &array.port_group])))
            })
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            let known: PortGroupList = array
                .send(|| Ok(array.http.get(&array.provisioning(&["portgroup"]))))
                .await?
                .success()?
                .json()?;
            return Err(StorageError::config(format!(
                "PowerMax {} has no port group {}; set POWERMAX_PORT_GROUP_NAME to one of: {}",
                array.symmetrix_id,
                array.port_group,
                known.ids.join(", ")
            )));
        }
        let port_group: PortGroupRecord = reply.success()?.json()?;
        array.protocol = match (
            port_group.port_group_protocol.as_deref(),
            port_group.kind.as_deref(),
        ) {
            (Some("SCSI_FC"), _) | (None, Some("Fibre")) => PortProtocol::Fc,
            (Some("iSCSI"), _) | (None, Some("iSCSI")) => PortProtocol::Iscsi,
            (protocol, kind) => {
                return Err(StorageError::Unsupported {
                    message: format!(
                        "port group {} of PowerMax {} speaks {}; copy-offload maps over FC or iSCSI: \
                         set POWERMAX_PORT_GROUP_NAME to an FC or iSCSI port group",
                        array.port_group,
                        array.symmetrix_id,
                        protocol.or(kind).unwrap_or("an unknown protocol")
                    ),
                });
            }
        };
        tracing::info!(symmetrix = %array.symmetrix_id, model = %array.model, port_group = %array.port_group,
            protocol = array.protocol.name(), endpoint = %array.http.base(), "connected to PowerMax");
        Ok(array)
    }

    /// `/100/sloprovisioning/symmetrix/{sid}/…`.
    fn provisioning<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut path = vec![
            API_VERSION,
            "sloprovisioning",
            "symmetrix",
            &self.symmetrix_id,
        ];
        path.extend_from_slice(rest);
        path
    }

    /// Sends what `build` makes, again after 409 (the object is locked by another change; not for
    /// creates, where 409 means "exists") and 500, at most the retry policy's attempts, waiting
    /// as the array's `Retry-After` asks. 429 and 503 the shared layer retries already.
    async fn send<'c>(
        &'c self,
        build: impl Fn() -> Result<ApiRequest<'c>, StorageError>,
    ) -> Result<Reply, StorageError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let request = build()?;
            let create = request.operation().starts_with("POST ");
            let reply = request.send().await?;
            let transient = reply.status == StatusCode::INTERNAL_SERVER_ERROR
                || (reply.status == StatusCode::CONFLICT && !create);
            if !transient {
                return Ok(reply);
            }
            if attempt >= self.retry.max_attempts.max(1) {
                return Err(StorageError::Unavailable {
                    operation: reply.operation.clone(),
                    status: reply.status.as_u16(),
                    attempts: attempt,
                    message: reply.message(),
                });
            }
            let delay = retry_delay(&self.retry, attempt, &reply);
            tracing::warn!(operation = %reply.operation, status = reply.status.as_u16(), attempt,
                delay_ms = delay.as_millis() as u64, "PowerMax busy with another change; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        rest: &[&str],
    ) -> Result<Option<T>, StorageError> {
        let reply = self
            .send(|| Ok(self.http.get(&self.provisioning(rest))))
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(reply.success()?.json()?))
    }

    /// DELETE that succeeds when the object is already gone.
    async fn delete(&self, rest: &[&str]) -> Result<bool, StorageError> {
        let reply = self
            .send(|| Ok(self.http.delete(&self.provisioning(rest))))
            .await?;
        match reply.status {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            _ => Err(reply.error()),
        }
    }

    /// POST a create; `false` when an object of that name exists already (409).
    async fn create(&self, resource: &str, body: &Value) -> Result<bool, StorageError> {
        let reply = self
            .send(|| self.http.post(&self.provisioning(&[resource])).json(body))
            .await?;
        if reply.status == StatusCode::CONFLICT {
            return Ok(false);
        }
        reply.success()?;
        Ok(true)
    }

    async fn volume(&self, device: &str) -> Result<VolumeRecord, StorageError> {
        self.get_json(&["volume", device]).await?.ok_or_else(|| {
            StorageError::not_found(
                format!("PowerMax device {device}"),
                format!("array {} has no such volume", self.symmetrix_id),
            )
        })
    }

    /// Adds (`true`) or removes the device to or from a storage group.
    async fn edit_storage_group(
        &self,
        group: &str,
        device: &str,
        add: bool,
    ) -> Result<(), StorageError> {
        let action = if add {
            json!({"expandStorageGroupParam": {"addSpecificVolumeParam": {"volumeId": [device]}}})
        } else {
            json!({"removeVolumeParam": {"volumeId": [device]}})
        };
        let body = json!({"editStorageGroupActionParam": action, "executionOption": SYNCHRONOUS});
        let reply = self
            .send(|| {
                self.http
                    .request(
                        http::Method::PUT,
                        &self.provisioning(&["storagegroup", group]),
                    )
                    .json(&body)
            })
            .await?;
        if reply.is_success() {
            return Ok(());
        }
        // Refused: done already by an earlier try whose answer was lost?
        let member = self
            .volume(device)
            .await?
            .storage_groups
            .iter()
            .any(|g| g == group);
        if member == add {
            Ok(())
        } else {
            Err(reply.error())
        }
    }

    /// Storage groups named like copy-offload's (or upstream's) that hold the volume but are not
    /// this run's: emptied of it and, once empty, deleted with their masking views.
    async fn remove_orphans(
        &self,
        device: &str,
        groups: &[String],
        ours: &str,
    ) -> Result<(), StorageError> {
        for group in groups
            .iter()
            .filter(|g| g.starts_with("xcopy-") && g.as_str() != ours)
        {
            let Some(record) = self
                .get_json::<StorageGroupRecord>(&["storagegroup", group])
                .await?
            else {
                continue;
            };
            tracing::info!(storage_group = %group, device, "removing a storage group an earlier copy left holding the volume");
            if record.num_of_vols <= 1 {
                for view in &record.masking_views {
                    self.delete(&["maskingview", view]).await?;
                }
            }
            self.edit_storage_group(group, device, false).await?;
            if record.num_of_vols <= 1 {
                self.delete(&["storagegroup", group]).await?;
            }
        }
        Ok(())
    }

    async fn lun_of(&self, view: &str, device: &str) -> Result<Option<u32>, StorageError> {
        let reply = self
            .send(|| {
                Ok(self
                    .http
                    .get(&self.provisioning(&["maskingview", view, "connections"]))
                    .query("volume_id", device))
            })
            .await?
            .success()?;
        let connections: Connections = reply.json()?;
        connections
            .connections
            .iter()
            .find_map(|c| c.host_lun_address.as_deref())
            .map(|address| {
                u32::from_str_radix(address, 16).map_err(|_| {
                    StorageError::protocol(
                        reply.operation.clone(),
                        format!("host_lun_address {address:?} is not hexadecimal"),
                    )
                })
            })
            .transpose()
    }

    fn target(group: &InitiatorGroup) -> Result<&GroupRef, StorageError> {
        group
            .targets
            .iter()
            .find(|t| t.kind == GroupKind::Host)
            .ok_or_else(|| {
                StorageError::config(format!(
                    "the initiator group of ESXi host {} names no PowerMax host",
                    group.host.host_id
                ))
            })
    }

    fn masking_view_body(&self, view: &str, host: &str, group: &str) -> Value {
        json!({
            "maskingViewId": view,
            "hostOrHostGroupSelection": {"useExistingHostParam": {"hostId": host}},
            "portGroupSelection": {"useExistingPortGroupParam": {"portGroupId": self.port_group}},
            "storageGroupSelection": {"useExistingStorageGroupParam": {"storageGroupId": group}},
            "executionOption": SYNCHRONOUS,
        })
    }
}

/// Exponential backoff with jitter from the retry policy, or the array's `Retry-After` (capped).
fn retry_delay(policy: &RetryPolicy, attempt: u32, reply: &Reply) -> Duration {
    let asked = reply
        .headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    if let Some(wait) = asked {
        return wait.min(policy.max_backoff);
    }
    let ceiling = policy
        .initial_backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(policy.max_backoff);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(millis / 2..=millis.max(1)))
}

#[async_trait]
impl StorageApi for PowerMaxArray {
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

    async fn array_info(&self) -> Result<ArrayInfo, StorageError> {
        Ok(ArrayInfo {
            vendor: "Dell".into(),
            product: "PowerMax".into(),
            model: self.model.clone(),
            version: self.ucode.clone(),
        })
    }

    async fn resolve_volume(&self, pv: &PersistentVolumeRef) -> Result<Volume, StorageError> {
        if let Some(driver) = pv.csi_driver.as_deref().filter(|d| *d != CSI_DRIVER) {
            return Err(StorageError::config(format!(
                "PV {} is provisioned by CSI driver {driver}, not Dell PowerMax ({CSI_DRIVER}); \
                 the storage map points this datastore at the wrong storage vendor",
                pv.name
            )));
        }
        let device = device_id(pv)?;
        if let Some(sid) = handle_symmetrix(pv).filter(|s| *s != self.symmetrix_id) {
            return Err(StorageError::config(format!(
                "PV {} lives on PowerMax {sid}, but POWERMAX_SYMMETRIX_ID is {}; \
                 point the storage secret at the PV's array",
                pv.name, self.symmetrix_id
            )));
        }
        let record = self.volume(&device).await.map_err(|e| match e {
            StorageError::NotFound { what, hint } => StorageError::NotFound {
                what: format!("{what} of PV {}", pv.name),
                hint,
            },
            other => other,
        })?;
        let operation = "GET /univmax/restapi/100/sloprovisioning/symmetrix/{sid}/volume/{id}";
        let wwn = record.wwn.filter(|w| !w.is_empty()).ok_or_else(|| {
            StorageError::protocol(operation, format!("device {device} has no wwn"))
        })?;
        let naa = naa::powermax(&wwn.to_ascii_lowercase())
            .map_err(|e| StorageError::protocol(operation, e.to_string()))?;
        Ok(Volume {
            id: record.volume_id,
            name: record.volume_identifier.unwrap_or_default(),
            serial: wwn,
            naa,
            size_bytes: record
                .cap_mb
                .map(|mb| (mb * 1024.0 * 1024.0).round() as u64)
                .unwrap_or(0),
        })
    }

    async fn ensure_initiator_group(
        &self,
        host: &EsxiHostRef,
    ) -> Result<InitiatorGroup, StorageError> {
        let hbas: Vec<String> = host
            .initiators
            .iter()
            .filter_map(|i| hba_of(i, self.protocol))
            .collect();
        let adapters = || {
            let ids: Vec<String> = host.initiators.iter().map(Initiator::adapter_id).collect();
            if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.join(", ")
            }
        };
        if hbas.is_empty() {
            return Err(StorageError::Unsupported {
                message: format!(
                    "ESXi host {} has no {} initiator for port group {} (adapters: {}); set \
                     POWERMAX_PORT_GROUP_NAME to a port group of the protocol the source datastore is reached over",
                    host.host_id,
                    self.protocol.name(),
                    self.port_group,
                    adapters()
                ),
            });
        }
        // Which of them the array has seen log in, and the host each belongs to.
        let mut known: Vec<(String, Option<String>)> = Vec::new();
        let mut unknown: Vec<String> = Vec::new();
        for hba in &hbas {
            let list: InitiatorList = self
                .send(|| {
                    Ok(self
                        .http
                        .get(&self.provisioning(&["initiator"]))
                        .query("initiator_hba", hba))
                })
                .await?
                .success()?
                .json()?;
            if list.ids.is_empty() {
                unknown.push(hba.clone());
            }
            for id in &list.ids {
                let record: Option<InitiatorRecord> = self.get_json(&["initiator", id]).await?;
                known.push((hba.clone(), record.and_then(|r| r.host)));
            }
        }
        if known.is_empty() {
            return Err(StorageError::config(format!(
                "none of the {} initiators of ESXi host {} ({}) is logged in to PowerMax {}: {} \
                 then rescan the host's adapters, and check that they appear under Hosts > Initiators in Unisphere",
                self.protocol.name(),
                host.host_id,
                hbas.join(", "),
                self.symmetrix_id,
                match self.protocol {
                    PortProtocol::Fc =>
                        "zone the host's FC ports to the front-end ports of port group ".to_owned()
                            + &self.port_group
                            + ",",
                    PortProtocol::Iscsi =>
                        "add the iSCSI targets of port group ".to_owned()
                            + &self.port_group
                            + " to the host's iSCSI adapter (dynamic discovery),",
                }
            )));
        }
        if !unknown.is_empty() {
            tracing::warn!(host = %host.host_id, initiators = %unknown.join(", "),
                "some ESXi initiators are not logged in to the array; mapping through the others");
        }
        let own_name = host.group_base_name();
        let mut holders: Vec<(String, usize)> = Vec::new();
        for name in known.iter().filter_map(|(_, h)| h.clone()) {
            match holders.iter_mut().find(|(h, _)| *h == name) {
                Some((_, n)) => *n += 1,
                None => holders.push((name, 1)),
            }
        }
        let holder = holders.into_iter().max_by_key(|(_, n)| *n).map(|(h, _)| h);
        let (name, owned) = match holder {
            Some(name) => {
                let owned = name == own_name;
                if !owned {
                    tracing::info!(host = %name, "using the existing PowerMax host of the ESXi host");
                }
                (name, owned)
            }
            None => {
                let free: Vec<&str> = known.iter().map(|(hba, _)| hba.as_str()).collect();
                let body = json!({"hostId": own_name, "initiatorId": free, "executionOption": SYNCHRONOUS});
                if self.create("host", &body).await? {
                    tracing::info!(host = %own_name, "created PowerMax host for the ESXi initiators");
                }
                (own_name, true)
            }
        };
        let target = GroupRef {
            kind: GroupKind::Host,
            name: name.clone(),
            id: name,
        };
        Ok(InitiatorGroup {
            host: host.clone(),
            protocol: match self.protocol {
                PortProtocol::Fc => StorageProtocol::Fc,
                PortProtocol::Iscsi => StorageProtocol::Iscsi,
            },
            owned: if owned {
                vec![target.clone()]
            } else {
                Vec::new()
            },
            targets: vec![target],
        })
    }

    async fn map(&self, volume: &Volume, group: &InitiatorGroup) -> Result<Mapping, StorageError> {
        let host = &Self::target(group)?.name;
        let device = volume.id.as_str();
        let storage_group = storage_group_name(device);
        let view = masking_view_name(device);
        let record = self.volume(device).await?;
        self.remove_orphans(device, &record.storage_groups, &storage_group)
            .await?;
        if !record.storage_groups.contains(&storage_group) {
            let body = json!({
                "storageGroupId": storage_group,
                "srpId": "None",
                "emulation": "FBA",
                "executionOption": SYNCHRONOUS,
            });
            if !self.create("storagegroup", &body).await? {
                tracing::info!(storage_group = %storage_group, "adopting the storage group of an earlier run");
            }
            self.edit_storage_group(&storage_group, device, true)
                .await?;
        }
        let existing: Option<MaskingViewRecord> = self.get_json(&["maskingview", &view]).await?;
        let fits = existing.as_ref().is_some_and(|v| {
            v.host.as_deref() == Some(host.as_str())
                && v.port_group.as_deref() == Some(self.port_group.as_str())
                && v.storage_group.as_deref() == Some(storage_group.as_str())
        });
        if existing.is_some() && !fits {
            // An earlier run's view to another ESXi host or port group.
            tracing::info!(masking_view = %view, "replacing a masking view of an earlier run");
            self.delete(&["maskingview", &view]).await?;
        }
        if !fits {
            let body = self.masking_view_body(&view, host, &storage_group);
            self.create("maskingview", &body).await?;
        }
        let lun = self.lun_of(&view, device).await?;
        if lun.is_none() {
            return Err(StorageError::protocol(
                format!("GET …/maskingview/{view}/connections"),
                format!(
                    "masking view {view} lists no connection of device {device} to host {host}; \
                     check that port group {} reaches the host's initiators",
                    self.port_group
                ),
            ));
        }
        Ok(Mapping {
            naa: volume.naa.clone(),
            lun_id: lun,
        })
    }

    async fn unmap(&self, volume: &Volume, _group: &InitiatorGroup) -> Result<(), StorageError> {
        let device = volume.id.as_str();
        let storage_group = storage_group_name(device);
        self.delete(&["maskingview", &masking_view_name(device)])
            .await?;
        let Some(record) = self
            .get_json::<StorageGroupRecord>(&["storagegroup", &storage_group])
            .await?
        else {
            return Ok(());
        };
        let member = self
            .volume(device)
            .await?
            .storage_groups
            .contains(&storage_group);
        if member {
            self.edit_storage_group(&storage_group, device, false)
                .await?;
        }
        let left = record.num_of_vols.saturating_sub(u64::from(member));
        if left == 0
            && record
                .masking_views
                .iter()
                .all(|v| v == &masking_view_name(device))
        {
            self.delete(&["storagegroup", &storage_group]).await?;
        }
        Ok(())
    }

    async fn current_mappings(&self, volume: &Volume) -> Result<Vec<GroupRef>, StorageError> {
        let record = self.volume(&volume.id).await?;
        let mut mappings = Vec::new();
        for group in &record.storage_groups {
            let Some(sg) = self
                .get_json::<StorageGroupRecord>(&["storagegroup", group])
                .await?
            else {
                continue;
            };
            mappings.extend(sg.masking_views.into_iter().map(|view| GroupRef {
                kind: GroupKind::MaskingView,
                name: view,
                id: group.clone(),
            }));
        }
        Ok(mappings)
    }

    async fn restore(&self, volume: &Volume, groups: &[GroupRef]) -> Result<(), StorageError> {
        let mut wanted = Vec::new();
        for group in groups {
            if group.is_copy_offload_object() {
                tracing::info!(masking_view = %group.name, volume = %volume.name, "not restoring a copy-offload masking view");
            } else if group.kind != GroupKind::MaskingView || group.id.is_empty() {
                return Err(StorageError::config(format!(
                    "cannot restore {} ({:?}) on PowerMax: volumes are exposed through masking views",
                    group.name, group.kind
                )));
            } else {
                wanted.push(group);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let present = self.volume(&volume.id).await?.storage_groups;
        for group in wanted {
            if present.contains(&group.id) {
                continue;
            }
            self.edit_storage_group(&group.id, &volume.id, true).await?;
            tracing::info!(storage_group = %group.id, masking_view = %group.name, volume = %volume.name,
                "original masking view restored");
        }
        Ok(())
    }

    async fn release_group(&self, group: &InitiatorGroup) -> Result<GroupRelease, StorageError> {
        let mut outcome = GroupRelease::NotOwned;
        for owned in group.owned.iter().filter(|g| g.kind == GroupKind::Host) {
            let Some(host) = self.get_json::<HostRecord>(&["host", &owned.name]).await? else {
                outcome = GroupRelease::AlreadyGone;
                continue;
            };
            if host.num_of_masking_views > 0 {
                tracing::info!(host = %owned.name, "host is still in a masking view; keeping it");
                outcome = GroupRelease::InUse;
                continue;
            }
            let reply = self
                .send(|| Ok(self.http.delete(&self.provisioning(&["host", &owned.name]))))
                .await?;
            outcome = match reply.status {
                s if s.is_success() => {
                    tracing::info!(host = %owned.name, "deleted PowerMax host");
                    GroupRelease::Deleted
                }
                StatusCode::NOT_FOUND => GroupRelease::AlreadyGone,
                // A copy created a masking view on it between the check and the delete.
                StatusCode::BAD_REQUEST
                    if self
                        .get_json::<HostRecord>(&["host", &owned.name])
                        .await?
                        .is_some_and(|h| h.num_of_masking_views > 0) =>
                {
                    GroupRelease::InUse
                }
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

    fn pv(handle: &str) -> PersistentVolumeRef {
        PersistentVolumeRef {
            name: "pv-1".into(),
            csi_driver: Some(CSI_DRIVER.into()),
            volume_handle: handle.into(),
            volume_attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn the_device_id_ends_the_volume_handle() {
        let handle = pv("csi-abc-pmax-1e2d3c-000197900123-00a1b");
        assert_eq!(device_id(&handle).unwrap(), "00A1B");
        assert_eq!(handle_symmetrix(&handle), Some("000197900123"));
        assert_eq!(device_id(&pv("0012F")).unwrap(), "0012F");
        assert_eq!(handle_symmetrix(&pv("0012F")), None);
        let err = device_id(&pv("csi-abc-pmax-volume")).unwrap_err();
        assert!(err.to_string().contains(CSI_DRIVER), "{err}");
    }

    #[test]
    fn initiators_use_powermax_spelling_for_the_port_group_protocol() {
        let fc = Initiator::from_adapter_id("fc.20000025B5000001:21000025B5000001");
        assert_eq!(
            hba_of(&fc, PortProtocol::Fc).as_deref(),
            Some("21000025b5000001")
        );
        assert_eq!(hba_of(&fc, PortProtocol::Iscsi), None);
        let iqn = Initiator::from_adapter_id("iqn.1998-01.com.VMware:esx7");
        assert_eq!(
            hba_of(&iqn, PortProtocol::Iscsi).as_deref(),
            Some("iqn.1998-01.com.vmware:esx7")
        );
        assert_eq!(
            hba_of(&Initiator::from_adapter_id("vmhba64"), PortProtocol::Fc),
            None
        );
    }

    #[test]
    fn unisphere_error_bodies_become_messages() {
        assert_eq!(
            error_message(br#"{"message":"Cannot find storagegroup x"}"#).as_deref(),
            Some("Cannot find storagegroup x")
        );
        assert!(error_message(b"<html>").is_none());
    }

    #[test]
    fn copy_offload_names_are_recognised_as_its_own() {
        let view = GroupRef {
            kind: GroupKind::MaskingView,
            name: masking_view_name("0001A"),
            id: storage_group_name("0001A"),
        };
        assert!(view.is_copy_offload_object());
    }
}
