//! Dell PowerFlex over its REST gateway (`https://<STORAGE_HOSTNAME>/api`): a session token from
//! `GET /api/login` with HTTP Basic, sent as the Basic password of every later request (one
//! re-login when the gateway answers 401, `GET /api/logout` from [`PowerFlexArray::logout`]), the
//! system `POWERFLEX_SYSTEM_ID`, volumes of CSI PowerFlex PVs by `volumeAttributes.Name` (or the
//! volume id of the `<system id>-<volume id>` handle), and the ESXi host's SDC (the `scini` client,
//! matched by its GUID) as the object a volume is mapped to. Nothing is created on the array: ESXi
//! reaches volumes through its SDC, not FC or iSCSI, and the copy is a host copy (no XCOPY).
//! Device names are `eui.` + system id + volume id.
//!
//! Differences from upstream: no 20 s sleep before reading the current mappings; unmapping removes
//! only the ESXi host's SDC, never every SDC (upstream's `allSdcs` unmapped the OpenShift node too
//! and had to map it back); an SDC is matched by GUID whatever the gateway reports as its OS type;
//! a volume lookup that fails says whether the volume is missing or the gateway refused, instead of
//! a bare count; a `POWERFLEX_SYSTEM_ID` the gateway does not know fails at connect with the ids it
//! does know; every request has the shared timeout (upstream: 10000 s) and bounded retry.

mod preflight;
mod settings;

pub use settings::*;

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderName, StatusCode};
use serde::{Deserialize, Serialize};

use crate::api::StorageApi;
use crate::error::StorageError;
use crate::http::{
    Auth, ClientOptions, ConnectionSettings, EndpointDefaults, HttpClient, RequestObserver, Secret,
    SessionLogin,
};
use crate::model::{
    ArrayInfo, EsxiHostRef, GroupKind, GroupRef, GroupRelease, Initiator, InitiatorGroup, Mapping,
    PersistentVolumeRef, StorageProtocol, Volume,
};
use crate::naa;

/// CSI driver name of Dell's PowerFlex driver, the provisioner of PowerFlex-backed PVs.
pub const CSI_DRIVER: &str = "csi-vxflexos.dellemc.com";

/// `STORAGE_HOSTNAME` is the gateway address; the REST root is `/api`.
pub const ENDPOINT: EndpointDefaults = EndpointDefaults {
    scheme: "https",
    port: None,
    base_path: "/api",
};

/// A connected PowerFlex system.
#[derive(Debug)]
pub struct PowerFlexArray {
    http: HttpClient,
    system_id: String,
    system_name: String,
}

// ---- wire shapes (field names of the PowerFlex REST reference) ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SystemRecord {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    system_version_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SdcRecord {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    sdc_guid: Option<String>,
    #[serde(default)]
    os_type: Option<String>,
    #[serde(default)]
    mdm_connection_state: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeRecord {
    id: String,
    name: String,
    #[serde(default)]
    size_in_kb: Option<u64>,
    /// `null` when the volume is mapped nowhere.
    #[serde(default)]
    mapped_sdc_info: Option<Vec<MappedSdc>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MappedSdc {
    sdc_id: String,
    #[serde(default)]
    sdc_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AddMappedSdc<'a> {
    sdc_id: &'a str,
    /// The worker node that attached the PVC keeps its mapping while ESXi gets one.
    allow_multiple_mappings: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RemoveMappedSdc<'a> {
    sdc_id: &'a str,
}

#[derive(Debug, Serialize)]
struct QueryIdByKey<'a> {
    name: &'a str,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_code: Option<i64>,
}

/// The gateway's `{"message", "httpStatusCode", "errorCode"}`.
fn error_message(body: &[u8]) -> Option<String> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    match (parsed.message, parsed.error_code) {
        (Some(text), Some(code)) => Some(format!("{text} (PowerFlex error {code})")),
        (Some(text), None) => Some(text),
        (None, Some(code)) => Some(format!("PowerFlex error {code}")),
        (None, None) => None,
    }
}

// ---- pure rules ----

/// How the gateway finds the PV's volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeLookup {
    /// `volumeAttributes.Name`, the array's volume name.
    Name(String),
    /// The volume id of a `<system id>-<volume id>` handle, with the system it names.
    Id { id: String, system: Option<String> },
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
    let handle = pv.volume_handle.trim();
    match handle.rsplit_once('-') {
        Some((system, id)) if !id.is_empty() && !system.is_empty() => Ok(VolumeLookup::Id {
            id: id.to_owned(),
            system: Some(system.to_owned()),
        }),
        _ if !handle.is_empty() && !handle.contains('-') => Ok(VolumeLookup::Id {
            id: handle.to_owned(),
            system: None,
        }),
        _ => Err(StorageError::config(format!(
            "PV {} has neither volumeAttributes.Name nor a <system id>-<volume id> volume handle, so \
             its PowerFlex volume cannot be found; is it provisioned by {CSI_DRIVER}?",
            pv.name
        ))),
    }
}

/// The SDC GUIDs among the ESXi host's initiators (adapters driven by `scini`).
fn sdc_guids(host: &EsxiHostRef) -> Vec<&str> {
    host.initiators
        .iter()
        .filter_map(|i| match i {
            Initiator::Sdc(guid) => Some(guid.as_str()),
            _ => None,
        })
        .collect()
}

/// Logs in with HTTP Basic and keeps the token as the Basic password of later requests.
struct PowerFlexLogin {
    username: String,
    authorization: Secret,
}

#[async_trait]
impl SessionLogin for PowerFlexLogin {
    async fn login(&self, http: &HttpClient) -> Result<Vec<(HeaderName, Secret)>, StorageError> {
        let reply = http
            .get(&["login"])
            .without_auth()
            .header(http::header::AUTHORIZATION, self.authorization.clone())
            .send()
            .await?
            .success()?;
        let token: String = reply.json()?;
        if token.is_empty() {
            return Err(StorageError::protocol(
                reply.operation.clone(),
                "the login answer carries an empty token",
            ));
        }
        let basic = BASE64.encode(format!("{}:{token}", self.username));
        Ok(vec![(
            http::header::AUTHORIZATION,
            Secret::new(format!("Basic {basic}")),
        )])
    }
}

impl PowerFlexArray {
    /// Logs in and finds the system `POWERFLEX_SYSTEM_ID`. Fails fast on refused credentials,
    /// untrusted TLS, unreachable gateways and unknown systems.
    pub async fn connect(
        settings: &ConnectionSettings,
        vendor: &Settings,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<Self, StorageError> {
        let creds = &settings.credentials;
        if creds.username.is_empty() || creds.password.expose().is_empty() {
            return Err(StorageError::config(
                "the PowerFlex gateway logs in with a user: set STORAGE_USERNAME and STORAGE_PASSWORD (STORAGE_TOKEN is not used)",
            ));
        }
        let basic = BASE64.encode(format!("{}:{}", creds.username, creds.password.expose()));
        let login = PowerFlexLogin {
            username: creds.username.clone(),
            authorization: Secret::new(format!("Basic {basic}")),
        };
        let mut options = ClientOptions::new(ENDPOINT, Auth::Session(Arc::new(login)));
        options.observer = observer;
        options.error_message = error_message;
        let http = HttpClient::new(settings, options)?;
        let systems: Vec<SystemRecord> = http
            .get(&["types", "System", "instances"])
            .send_json()
            .await?;
        let wanted = vendor.system_id.trim();
        let Some(system) = systems.iter().find(|s| s.id.eq_ignore_ascii_case(wanted)) else {
            let known: Vec<&str> = systems.iter().map(|s| s.id.as_str()).collect();
            return Err(StorageError::config(format!(
                "the PowerFlex gateway {} manages no system {wanted:?} (it knows {}); set \
                 POWERFLEX_SYSTEM_ID to the systemID of the CSI driver's vxflexos-config secret",
                http.base(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        };
        let array = PowerFlexArray {
            system_id: system.id.clone(),
            system_name: system
                .name
                .clone()
                .or_else(|| system.system_version_name.clone())
                .unwrap_or_default(),
            http,
        };
        tracing::info!(system = %array.system_id, endpoint = %array.http.base(), "connected to PowerFlex");
        Ok(array)
    }

    /// Ends the session on the gateway. Call once at exit; a later call logs in again.
    pub async fn logout(&self) -> Result<(), StorageError> {
        self.http.get(&["logout"]).send().await?.success()?;
        Ok(())
    }

    async fn volume(&self, id: &str) -> Result<VolumeRecord, StorageError> {
        let object = format!("Volume::{id}");
        self.http.get(&["instances", &object]).send_json().await
    }

    async fn volume_action<T: Serialize>(
        &self,
        volume: &Volume,
        action: &str,
        body: &T,
    ) -> Result<crate::http::Reply, StorageError> {
        let object = format!("Volume::{}", volume.id);
        self.http
            .post(&["instances", &object, "action", action])
            .json(body)?
            .send()
            .await
    }

    /// SDC ids `volume` is mapped to now.
    async fn mapped_sdcs(&self, volume: &Volume) -> Result<Vec<MappedSdc>, StorageError> {
        Ok(self
            .volume(&volume.id)
            .await?
            .mapped_sdc_info
            .unwrap_or_default())
    }

    async fn add_mapping(&self, volume: &Volume, sdc_id: &str) -> Result<(), StorageError> {
        let reply = self
            .volume_action(
                volume,
                "addMappedSdc",
                &AddMappedSdc {
                    sdc_id,
                    allow_multiple_mappings: "TRUE",
                },
            )
            .await?;
        self.settle(volume, sdc_id, reply, true).await
    }

    /// A map (`mapped`) or unmap the gateway refused is done all the same when the volume is
    /// already in the wanted state (an earlier run, a lost reply); otherwise the refusal stands.
    async fn settle(
        &self,
        volume: &Volume,
        sdc_id: &str,
        reply: crate::http::Reply,
        mapped: bool,
    ) -> Result<(), StorageError> {
        if reply.is_success() {
            return Ok(());
        }
        let now = self
            .mapped_sdcs(volume)
            .await?
            .iter()
            .any(|m| m.sdc_id == sdc_id);
        if now == mapped {
            return Ok(());
        }
        Err(reply.error())
    }

    fn sdc_of(group: &InitiatorGroup) -> Result<&GroupRef, StorageError> {
        group
            .targets
            .iter()
            .find(|t| t.kind == GroupKind::Sdc)
            .ok_or_else(|| {
                StorageError::config(format!(
                    "the initiator group of ESXi host {} names no PowerFlex SDC",
                    group.host.host_id
                ))
            })
    }

    /// The volume id of a name, telling a missing volume from a refused lookup.
    async fn volume_id_by_name(
        &self,
        name: &str,
        pv: &PersistentVolumeRef,
    ) -> Result<String, StorageError> {
        let reply = self
            .http
            .post(&["types", "Volume", "instances", "action", "queryIdByKey"])
            .json(&QueryIdByKey { name })?
            .send()
            .await?;
        if reply.is_success() {
            return reply.json();
        }
        // The gateway answers a missing name with a generic 500: find out which it is.
        let all: Vec<VolumeRecord> = self
            .http
            .get(&["types", "Volume", "instances"])
            .send_json()
            .await?;
        match all.into_iter().find(|v| v.name == name) {
            Some(found) => Ok(found.id),
            None => Err(StorageError::not_found(
                format!("PowerFlex volume {name} of PV {}", pv.name),
                format!(
                    "system {} has no such volume; check that STORAGE_HOSTNAME is the gateway of the system the PV was provisioned on",
                    self.system_id
                ),
            )),
        }
    }
}

#[async_trait]
impl StorageApi for PowerFlexArray {
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

    fn requires_sdc(&self) -> bool {
        true
    }

    async fn array_info(&self) -> Result<ArrayInfo, StorageError> {
        let version: String = self.http.get(&["version"]).send_json().await?;
        Ok(ArrayInfo {
            vendor: "Dell".into(),
            product: "PowerFlex".into(),
            model: self.system_name.clone(),
            version,
        })
    }

    async fn resolve_volume(&self, pv: &PersistentVolumeRef) -> Result<Volume, StorageError> {
        if let Some(driver) = pv.csi_driver.as_deref().filter(|d| *d != CSI_DRIVER) {
            return Err(StorageError::config(format!(
                "PV {} is provisioned by CSI driver {driver}, not Dell PowerFlex ({CSI_DRIVER}); \
                 the storage map points this datastore at the wrong storage vendor",
                pv.name
            )));
        }
        let id = match volume_lookup(pv)? {
            VolumeLookup::Name(name) => self.volume_id_by_name(&name, pv).await?,
            VolumeLookup::Id { id, system } => {
                if let Some(system) = system.filter(|s| !s.eq_ignore_ascii_case(&self.system_id)) {
                    return Err(StorageError::config(format!(
                        "PV {} lives on PowerFlex system {system}, but POWERFLEX_SYSTEM_ID is {}; \
                         point the storage secret at the PV's system",
                        pv.name, self.system_id
                    )));
                }
                id
            }
        };
        let object = format!("Volume::{id}");
        let reply = self.http.get(&["instances", &object]).send().await?;
        if !reply.is_success() {
            return Err(match reply.status {
                StatusCode::NOT_FOUND | StatusCode::INTERNAL_SERVER_ERROR => {
                    StorageError::not_found(
                        format!("PowerFlex volume {id} of PV {}", pv.name),
                        format!("system {} answered: {}", self.system_id, reply.message()),
                    )
                }
                _ => reply.error(),
            });
        }
        let record: VolumeRecord = reply.json()?;
        let device = naa::powerflex(&self.system_id, &record.id).map_err(|e| {
            StorageError::protocol(format!("GET /api/instances/{object}"), e.to_string())
        })?;
        Ok(Volume {
            serial: device.identifier().to_owned(),
            naa: device,
            id: record.id,
            name: record.name,
            size_bytes: record.size_in_kb.unwrap_or(0).saturating_mul(1024),
        })
    }

    async fn ensure_initiator_group(
        &self,
        host: &EsxiHostRef,
    ) -> Result<InitiatorGroup, StorageError> {
        let guids = sdc_guids(host);
        if guids.is_empty() {
            let ids: Vec<String> = host.initiators.iter().map(Initiator::adapter_id).collect();
            return Err(StorageError::Unsupported {
                message: format!(
                    "ESXi host {} has no PowerFlex SDC (no adapter driven by scini with an \
                     IoctlIniGuidStr GUID; adapters: {}); install and configure the PowerFlex SDC \
                     on the host, since PowerFlex volumes reach ESXi only through it",
                    host.host_id,
                    if ids.is_empty() {
                        "none".to_owned()
                    } else {
                        ids.join(", ")
                    }
                ),
            });
        }
        let system = format!("System::{}", self.system_id);
        let sdcs: Vec<SdcRecord> = self
            .http
            .get(&["instances", &system, "relationships", "Sdc"])
            .send_json()
            .await?;
        let found = sdcs.into_iter().find(|s| {
            s.sdc_guid
                .as_deref()
                .is_some_and(|g| guids.iter().any(|w| w.eq_ignore_ascii_case(g)))
        });
        let Some(sdc) = found else {
            return Err(StorageError::not_found(
                format!("the PowerFlex SDC of ESXi host {}", host.host_id),
                format!(
                    "system {} has no SDC with GUID {}; check that the host's SDC is registered \
                     with this system (scini IoctlMdmIPStr) and approved",
                    self.system_id,
                    guids.join(" or ")
                ),
            ));
        };
        if sdc
            .os_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("Esx"))
        {
            tracing::warn!(sdc = %sdc.id, os_type = ?sdc.os_type, "the SDC with the ESXi host's GUID does not report osType Esx; using it");
        }
        tracing::info!(sdc = %sdc.id, host = %host.host_id, "mapping through the ESXi host's SDC");
        Ok(InitiatorGroup {
            host: host.clone(),
            protocol: StorageProtocol::Sdc,
            targets: vec![GroupRef {
                kind: GroupKind::Sdc,
                name: sdc.name.unwrap_or_else(|| sdc.id.clone()),
                id: sdc.id,
            }],
            owned: Vec::new(),
        })
    }

    async fn map(&self, volume: &Volume, group: &InitiatorGroup) -> Result<Mapping, StorageError> {
        let sdc = Self::sdc_of(group)?;
        self.add_mapping(volume, &sdc.id).await?;
        Ok(Mapping {
            naa: volume.naa.clone(),
            lun_id: None,
        })
    }

    async fn unmap(&self, volume: &Volume, group: &InitiatorGroup) -> Result<(), StorageError> {
        let sdc = Self::sdc_of(group)?;
        // Only the ESXi host's SDC: the worker node's mapping is not ours to remove.
        let reply = self
            .volume_action(
                volume,
                "removeMappedSdc",
                &RemoveMappedSdc { sdc_id: &sdc.id },
            )
            .await?;
        self.settle(volume, &sdc.id, reply, false).await
    }

    async fn current_mappings(&self, volume: &Volume) -> Result<Vec<GroupRef>, StorageError> {
        Ok(self
            .mapped_sdcs(volume)
            .await?
            .into_iter()
            .map(|m| GroupRef {
                kind: GroupKind::Sdc,
                name: m.sdc_name.unwrap_or_else(|| m.sdc_id.clone()),
                id: m.sdc_id,
            })
            .collect())
    }

    async fn restore(&self, volume: &Volume, groups: &[GroupRef]) -> Result<(), StorageError> {
        let mut present: Option<Vec<MappedSdc>> = None;
        for group in groups {
            if group.kind != GroupKind::Sdc {
                return Err(StorageError::config(format!(
                    "cannot map {} ({:?}) on PowerFlex: volumes are mapped to SDCs only",
                    group.name, group.kind
                )));
            }
            if group.is_copy_offload_object() {
                continue;
            }
            let mapped = match &present {
                Some(p) => p,
                None => present.insert(self.mapped_sdcs(volume).await?),
            };
            if mapped.iter().any(|m| m.sdc_id == group.id) {
                continue;
            }
            self.add_mapping(volume, &group.id).await?;
            tracing::info!(sdc = %group.name, volume = %volume.name, "restored the SDC mapping");
        }
        Ok(())
    }

    /// PowerFlex SDCs are the hosts' own registrations: copy-offload creates none and deletes none.
    async fn release_group(&self, _group: &InitiatorGroup) -> Result<GroupRelease, StorageError> {
        Ok(GroupRelease::NotOwned)
    }
}
