//! NetApp ONTAP over its REST API (`https://<STORAGE_HOSTNAME>/api`, HTTP Basic): the SVM from
//! `ONTAP_SVM` (or the cluster's only SVM), LUNs of Trident volumes from `internalID` /
//! `internalName`, igroups `xcopy-<hostID>-<fcp|iscsi|mixed>` (os_type `vmware`), LUN maps, and
//! device names `naa.600a0980` + hex of the LUN serial.
//!
//! Differences from upstream: TLS is verified unless the user opts out; every call has the shared
//! timeout and retry; an igroup we create carries an ownership comment and is deleted on release
//! once no LUN is mapped to it; restore never re-maps a leftover `xcopy-...-<proto>` igroup; map
//! re-creates the igroup if a concurrent copy released it in between.

mod preflight;
mod settings;

pub use settings::Settings;

use std::sync::Arc;

use async_trait::async_trait;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::api::StorageApi;
use crate::error::StorageError;
use crate::http::{
    Auth, ClientOptions, ConnectionSettings, EndpointDefaults, HttpClient, Reply, RequestObserver,
};
use crate::model::{
    ArrayInfo, EsxiHostRef, GroupKind, GroupRef, GroupRelease, Initiator, InitiatorGroup, Mapping,
    PersistentVolumeRef, StorageProtocol, Volume,
};
use crate::naa;

/// CSI driver name of NetApp Trident, the provisioner of ONTAP-backed PVs.
pub const TRIDENT_CSI_DRIVER: &str = "csi.trident.netapp.io";

/// `comment` set on igroups copy-offload creates; marks them as safe to delete once empty,
/// also for a later run that did not create them itself.
pub const OWNER_COMMENT: &str = "created by copy-offload; deleted when no LUN is mapped";

/// `STORAGE_HOSTNAME` is the cluster (or SVM) management LIF; the REST root is `/api`.
pub const ENDPOINT: EndpointDefaults = EndpointDefaults {
    scheme: "https",
    port: None,
    base_path: "/api",
};

/// The SVM every call is scoped to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Svm {
    pub name: String,
    pub uuid: String,
}

/// A connected ONTAP cluster, scoped to one SVM.
#[derive(Debug)]
pub struct OntapArray {
    http: HttpClient,
    svm: Svm,
}

// ---- wire shapes (field names from ONTAP's models: Svm, Lun, Igroup, IgroupInitiator, LunMap) ----

#[derive(Debug, Deserialize)]
struct Records<T> {
    #[serde(default = "Vec::new")]
    records: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct SvmRecord {
    name: String,
    uuid: String,
}

#[derive(Debug, Deserialize)]
struct ClusterRecord {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<ClusterVersion>,
}

#[derive(Debug, Deserialize)]
struct ClusterVersion {
    #[serde(default)]
    full: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LunRecord {
    uuid: String,
    name: String,
    #[serde(default)]
    serial_number: Option<String>,
    #[serde(default)]
    space: Option<LunSpace>,
}

#[derive(Debug, Deserialize)]
struct LunSpace {
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
struct IgroupRecord {
    uuid: String,
    name: String,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    initiators: Vec<NameOnly>,
    /// Only present when requested with `fields=lun_maps`.
    #[serde(default)]
    lun_maps: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NameOnly {
    name: String,
}

#[derive(Debug, Serialize)]
struct UuidOnly<'a> {
    uuid: &'a str,
}

#[derive(Debug, Serialize)]
struct IgroupCreate<'a> {
    name: &'a str,
    protocol: &'a str,
    os_type: &'a str,
    comment: &'a str,
    svm: UuidOnly<'a>,
    initiators: Vec<NameOnly>,
}

#[derive(Debug, Serialize)]
struct LunMapCreate<'a> {
    igroup: NameRef<'a>,
    lun: LunRef<'a>,
    svm: UuidOnly<'a>,
}

#[derive(Debug, Serialize)]
struct NameRef<'a> {
    name: &'a str,
}

#[derive(Debug, Serialize)]
struct LunRef<'a> {
    name: &'a str,
    uuid: &'a str,
}

#[derive(Debug, Deserialize)]
struct LunMapRecord {
    #[serde(default)]
    igroup: Option<MapSide>,
    #[serde(default)]
    lun: Option<MapSide>,
    #[serde(default)]
    logical_unit_number: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct MapSide {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    uuid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// ONTAP's `{"error": {"message": ..., "code": ...}}`.
fn error_message(body: &[u8]) -> Option<String> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    match (parsed.error.message, parsed.error.code) {
        (Some(m), Some(c)) => Some(format!("{m} (ONTAP error {c})")),
        (Some(m), None) => Some(m),
        (None, Some(c)) => Some(format!("ONTAP error {c}")),
        (None, None) => None,
    }
}

// ---- pure rules ----

/// The LUN path of a Trident PV: `internalID` `/svm/<svm>/flexvol/<flexvol>/lun/<lun>`
/// (ontap-san-economy) gives `/vol/<flexvol>/<lun>`; otherwise `internalName` (ontap-san) gives
/// `/vol/<internalName>/lun0`.
pub fn lun_path(pv: &PersistentVolumeRef) -> Result<String, StorageError> {
    if let Some(id) = pv
        .volume_attributes
        .get("internalID")
        .filter(|v| !v.is_empty())
    {
        let parts: Vec<&str> = id.split('/').collect();
        return match parts.as_slice() {
            ["", "svm", svm, "flexvol", flexvol, "lun", lun]
                if !svm.is_empty() && !flexvol.is_empty() && !lun.is_empty() =>
            {
                Ok(format!("/vol/{flexvol}/{lun}"))
            }
            _ => Err(StorageError::config(format!(
                "PV {}: volumeAttributes.internalID {id:?} is not /svm/<svm>/flexvol/<flexvol>/lun/<lun>",
                pv.name
            ))),
        };
    }
    if let Some(name) = pv
        .volume_attributes
        .get("internalName")
        .filter(|v| !v.is_empty())
    {
        if name.contains('/') {
            return Err(StorageError::config(format!(
                "PV {}: volumeAttributes.internalName {name:?} must be a FlexVol name",
                pv.name
            )));
        }
        return Ok(format!("/vol/{name}/lun0"));
    }
    Err(StorageError::config(format!(
        "PV {} has neither volumeAttributes.internalID nor internalName, so its ONTAP LUN cannot be found; \
         is it provisioned by Trident's ontap-san or ontap-san-economy driver?",
        pv.name
    )))
}

/// The ONTAP igroup protocol for a host's initiators: `fcp`, `iscsi`, or `mixed` when it has both.
pub fn igroup_protocol(initiators: &[Initiator]) -> Option<(&'static str, StorageProtocol)> {
    let fc = initiators
        .iter()
        .any(|i| matches!(i, Initiator::FibreChannel(_)));
    let iscsi = initiators.iter().any(|i| matches!(i, Initiator::Iscsi(_)));
    match (fc, iscsi) {
        (true, true) => Some(("mixed", StorageProtocol::Mixed)),
        (true, false) => Some(("fcp", StorageProtocol::Fc)),
        (false, true) => Some(("iscsi", StorageProtocol::Iscsi)),
        (false, false) => None,
    }
}

/// `xcopy-<hostID>-<protocol>`, the igroup name upstream uses too, so its igroups are reused.
pub fn igroup_name(host: &EsxiHostRef, protocol: &str) -> String {
    format!("{}-{protocol}", host.group_base_name())
}

/// How ONTAP spells an initiator: WWPN `20:00:...` for FC, the iSCSI name as is; others have no
/// ONTAP form.
pub fn initiator_name(initiator: &Initiator) -> Option<String> {
    match initiator {
        Initiator::FibreChannel(fc) => Some(fc.wwpn.colon_lower()),
        Initiator::Iscsi(name) => Some(name.to_ascii_lowercase()),
        Initiator::Nvme(_) | Initiator::Sdc(_) | Initiator::Other(_) => None,
    }
}

fn same_initiator(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

const LUN_FIELDS: &str = "uuid,name,serial_number,space.size";
const IGROUP_FIELDS: &str = "uuid,name,protocol,comment,initiators.name";
const LUN_MAP_FIELDS: &str = "igroup.name,igroup.uuid,lun.name,lun.uuid,logical_unit_number";

impl OntapArray {
    /// Connects and resolves the SVM: `svm` (from `ONTAP_SVM`) by name, or the cluster's only SVM.
    /// Fails fast on refused credentials, untrusted TLS and ambiguous SVMs.
    pub async fn connect(
        settings: &ConnectionSettings,
        vendor: &Settings,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<Self, StorageError> {
        let svm = vendor.svm.as_deref();
        let creds = &settings.credentials;
        if creds.username.is_empty() || creds.password.expose().is_empty() {
            return Err(StorageError::config(
                "ONTAP authenticates with HTTP Basic: set STORAGE_USERNAME and STORAGE_PASSWORD (STORAGE_TOKEN is not used)",
            ));
        }
        let auth = Auth::Basic {
            username: creds.username.clone(),
            password: creds.password.clone(),
        };
        let mut options = ClientOptions::new(ENDPOINT, auth);
        options.observer = observer;
        options.error_message = error_message;
        let http = HttpClient::new(settings, options)?;
        let svm = resolve_svm(&http, svm.map(str::trim).filter(|s| !s.is_empty())).await?;
        tracing::info!(svm = %svm.name, endpoint = %http.base(), "connected to ONTAP");
        Ok(OntapArray { http, svm })
    }

    /// The SVM all calls are scoped to.
    pub fn svm(&self) -> &Svm {
        &self.svm
    }

    async fn find_igroup(&self, name: &str) -> Result<Option<IgroupRecord>, StorageError> {
        self.find_igroup_with(name, IGROUP_FIELDS).await
    }

    async fn find_igroup_with(
        &self,
        name: &str,
        fields: &str,
    ) -> Result<Option<IgroupRecord>, StorageError> {
        let found: Records<IgroupRecord> = self
            .http
            .get(&["protocols", "san", "igroups"])
            .query("svm.uuid", &self.svm.uuid)
            .query("name", name)
            .query("fields", fields)
            .send_json()
            .await?;
        Ok(found.records.into_iter().find(|r| r.name == name))
    }

    async fn create_igroup(
        &self,
        name: &str,
        protocol: &str,
        initiators: &[String],
    ) -> Result<Option<IgroupRecord>, StorageError> {
        let body = IgroupCreate {
            name,
            protocol,
            os_type: "vmware",
            comment: OWNER_COMMENT,
            svm: UuidOnly {
                uuid: &self.svm.uuid,
            },
            initiators: initiators
                .iter()
                .map(|n| NameOnly { name: n.clone() })
                .collect(),
        };
        let reply = self
            .http
            .post(&["protocols", "san", "igroups"])
            .query("return_records", "true")
            .json(&body)?
            .send()
            .await?;
        if reply.status == StatusCode::CONFLICT {
            // A concurrent copy for the same host created it first.
            return Ok(None);
        }
        let reply = reply.success()?;
        let created: Records<IgroupRecord> = reply.json().unwrap_or(Records {
            records: Vec::new(),
        });
        Ok(created.records.into_iter().find(|r| r.name == name))
    }

    async fn add_initiator(&self, igroup_uuid: &str, name: &str) -> Result<(), StorageError> {
        let reply = self
            .http
            .post(&["protocols", "san", "igroups", igroup_uuid, "initiators"])
            .json(&NameOnly {
                name: name.to_owned(),
            })?
            .send()
            .await?;
        if reply.is_success() || reply.status == StatusCode::CONFLICT {
            Ok(())
        } else {
            Err(reply.error())
        }
    }

    async fn find_lun_maps(
        &self,
        lun_name: Option<&str>,
        igroup_name: Option<&str>,
    ) -> Result<Vec<LunMapRecord>, StorageError> {
        let mut request = self
            .http
            .get(&["protocols", "san", "lun-maps"])
            .query("svm.uuid", &self.svm.uuid);
        if let Some(lun) = lun_name {
            request = request.query("lun.name", lun);
        }
        if let Some(igroup) = igroup_name {
            request = request.query("igroup.name", igroup);
        }
        let found: Records<LunMapRecord> =
            request.query("fields", LUN_MAP_FIELDS).send_json().await?;
        let side_is = |side: &Option<MapSide>, want: Option<&str>| match want {
            None => true,
            Some(want) => side
                .as_ref()
                .and_then(|s| s.name.as_deref())
                .is_none_or(|n| n == want),
        };
        Ok(found
            .records
            .into_iter()
            .filter(|m| side_is(&m.lun, lun_name) && side_is(&m.igroup, igroup_name))
            .collect())
    }

    /// Maps the LUN to the igroup named `igroup`, or finds the existing map. Returns the LUN id,
    /// or `Err(reply)` with the array's refusal when no map exists afterwards.
    async fn ensure_lun_map(
        &self,
        volume: &Volume,
        igroup: &str,
    ) -> Result<Result<u32, Reply>, StorageError> {
        let body = LunMapCreate {
            igroup: NameRef { name: igroup },
            lun: LunRef {
                name: &volume.name,
                uuid: &volume.id,
            },
            svm: UuidOnly {
                uuid: &self.svm.uuid,
            },
        };
        let reply = self
            .http
            .post(&["protocols", "san", "lun-maps"])
            .query("return_records", "true")
            .json(&body)?
            .send()
            .await?;
        if reply.is_success() {
            let created: Option<Records<LunMapRecord>> = reply.json().ok();
            if let Some(id) = created
                .and_then(|c| c.records.into_iter().next())
                .and_then(|m| m.logical_unit_number)
            {
                return Ok(Ok(id));
            }
        } else if !matches!(reply.status.as_u16(), 400 | 404 | 409) {
            return Err(reply.error());
        }
        // Either the answer lacked the number, or the map may already exist (ONTAP refuses a
        // duplicate map with 400/409): the lun-map collection is the truth.
        let existing = self.find_lun_maps(Some(&volume.name), Some(igroup)).await?;
        match existing.into_iter().find_map(|m| m.logical_unit_number) {
            Some(id) => Ok(Ok(id)),
            None if reply.is_success() => Err(StorageError::protocol(
                reply.operation.clone(),
                format!(
                    "ONTAP accepted the map of {} to {igroup} but does not list it",
                    volume.name
                ),
            )),
            None => Ok(Err(reply)),
        }
    }

    async fn delete_lun_map(
        &self,
        lun_uuid: &str,
        igroup_uuid: &str,
    ) -> Result<Reply, StorageError> {
        self.http
            .delete(&["protocols", "san", "lun-maps", lun_uuid, igroup_uuid])
            .send()
            .await
    }

    fn igroup_target(group: &InitiatorGroup) -> Result<&GroupRef, StorageError> {
        group
            .targets
            .iter()
            .find(|t| t.kind == GroupKind::Igroup)
            .ok_or_else(|| {
                StorageError::config(
                    "the initiator group has no ONTAP igroup; it was not made by the ONTAP plugin",
                )
            })
    }
}

async fn resolve_svm(http: &HttpClient, wanted: Option<&str>) -> Result<Svm, StorageError> {
    let mut request = http.get(&["svm", "svms"]).query("fields", "name,uuid");
    if let Some(name) = wanted {
        request = request.query("name", name);
    }
    let found: Records<SvmRecord> = request.send_json().await?;
    let mut svms: Vec<SvmRecord> = match wanted {
        Some(name) => found
            .records
            .into_iter()
            .filter(|s| s.name == name)
            .collect(),
        None => found.records,
    };
    match (wanted, svms.len()) {
        (_, 1) => {
            let s = svms.remove(0);
            Ok(Svm {
                name: s.name,
                uuid: s.uuid,
            })
        }
        (Some(name), _) => Err(StorageError::not_found(
            format!("SVM {name:?}"),
            "ONTAP_SVM names an SVM the cluster does not have (or the account cannot see); set ONTAP_SVM to the SVM that holds the Trident LUNs",
        )),
        (None, n) => {
            let names: Vec<&str> = svms.iter().map(|s| s.name.as_str()).collect();
            Err(StorageError::config(format!(
                "cannot derive SVM: the cluster has {n} SVMs ({}); set ONTAP_SVM in the storage secret",
                names.join(", ")
            )))
        }
    }
}

#[async_trait]
impl StorageApi for OntapArray {
    async fn readiness(
        &self,
        hosts: &[EsxiHostRef],
    ) -> Result<crate::api::ArrayReadiness, StorageError> {
        self.check_readiness(hosts).await
    }

    async fn holds_device(&self, device: &naa::DeviceName) -> Result<Option<bool>, StorageError> {
        self.lookup_device(device).await
    }

    async fn array_info(&self) -> Result<ArrayInfo, StorageError> {
        let cluster: ClusterRecord = self
            .http
            .get(&["cluster"])
            .query("fields", "name,version")
            .send_json()
            .await?;
        Ok(ArrayInfo {
            vendor: "NetApp".into(),
            product: "ONTAP".into(),
            model: cluster.name.unwrap_or_default(),
            version: cluster.version.and_then(|v| v.full).unwrap_or_default(),
        })
    }

    async fn resolve_volume(&self, pv: &PersistentVolumeRef) -> Result<Volume, StorageError> {
        if let Some(driver) = pv
            .csi_driver
            .as_deref()
            .filter(|d| *d != TRIDENT_CSI_DRIVER)
        {
            return Err(StorageError::config(format!(
                "PV {} is provisioned by CSI driver {driver}, not NetApp Trident ({TRIDENT_CSI_DRIVER}); \
                 the storage map points this datastore at the wrong storage vendor",
                pv.name
            )));
        }
        let path = lun_path(pv)?;
        let found: Records<LunRecord> = self
            .http
            .get(&["storage", "luns"])
            .query("svm.uuid", &self.svm.uuid)
            .query("name", &path)
            .query("fields", LUN_FIELDS)
            .send_json()
            .await?;
        let lun = found.records.into_iter().find(|l| l.name == path).ok_or_else(|| {
            StorageError::not_found(
                format!("LUN {path} of PV {}", pv.name),
                format!("SVM {} has no such LUN; check ONTAP_SVM and that Trident provisioned the PV on this cluster", self.svm.name),
            )
        })?;
        let operation = "GET /api/storage/luns";
        let serial = lun.serial_number.filter(|s| !s.is_empty()).ok_or_else(|| {
            StorageError::protocol(operation, format!("LUN {path} has no serial_number"))
        })?;
        let device =
            naa::ontap(&serial).map_err(|e| StorageError::protocol(operation, e.to_string()))?;
        Ok(Volume {
            id: lun.uuid,
            name: lun.name,
            naa: device,
            serial,
            size_bytes: lun.space.and_then(|s| s.size).unwrap_or(0),
        })
    }

    async fn ensure_initiator_group(
        &self,
        host: &EsxiHostRef,
    ) -> Result<InitiatorGroup, StorageError> {
        let Some((protocol_name, protocol)) = igroup_protocol(&host.initiators) else {
            let ids: Vec<String> = host.initiators.iter().map(Initiator::adapter_id).collect();
            return Err(StorageError::Unsupported {
                message: format!(
                    "ESXi host {} has no FC or iSCSI initiator ONTAP can put in an igroup (adapters: {}); \
                     the source datastore must be reached over FC or iSCSI",
                    host.host_id,
                    if ids.is_empty() {
                        "none".to_owned()
                    } else {
                        ids.join(", ")
                    }
                ),
            });
        };
        let name = igroup_name(host, protocol_name);
        let wanted: Vec<String> = host.initiators.iter().filter_map(initiator_name).collect();

        let mut created = false;
        let mut record = self.find_igroup(&name).await?;
        if record.is_none() {
            record = self.create_igroup(&name, protocol_name, &wanted).await?;
            created = record.is_some();
            if let Some(r) = &record {
                tracing::info!(igroup = %name, uuid = %r.uuid, "created ONTAP igroup");
            } else {
                // Conflict, or the answer omitted the record: read what is there now.
                record = self.find_igroup(&name).await?;
            }
        }
        let record = record.ok_or_else(|| {
            StorageError::protocol(
                "POST /api/protocols/san/igroups",
                format!("igroup {name} was accepted but cannot be read back"),
            )
        })?;

        let mut present: Vec<String> = record.initiators.iter().map(|i| i.name.clone()).collect();
        let mut last_failure = None;
        for initiator in &wanted {
            if present.iter().any(|p| same_initiator(p, initiator)) {
                continue;
            }
            match self.add_initiator(&record.uuid, initiator).await {
                Ok(()) => present.push(initiator.clone()),
                Err(e) => {
                    tracing::warn!(igroup = %name, initiator = %initiator, error = %e, "ONTAP did not add the initiator");
                    last_failure = Some(e);
                }
            }
        }
        if !wanted
            .iter()
            .any(|w| present.iter().any(|p| same_initiator(p, w)))
        {
            return Err(last_failure.unwrap_or_else(|| {
                StorageError::protocol(
                    "igroup initiators",
                    format!("igroup {name} holds none of {}", wanted.join(", ")),
                )
            }));
        }

        let target = GroupRef {
            kind: GroupKind::Igroup,
            name: record.name.clone(),
            id: record.uuid.clone(),
        };
        let owned = created || record.comment.as_deref() == Some(OWNER_COMMENT);
        Ok(InitiatorGroup {
            host: host.clone(),
            protocol,
            targets: vec![target.clone()],
            owned: if owned { vec![target] } else { Vec::new() },
        })
    }

    async fn map(&self, volume: &Volume, group: &InitiatorGroup) -> Result<Mapping, StorageError> {
        let igroup = Self::igroup_target(group)?;
        let refused = match self.ensure_lun_map(volume, &igroup.name).await? {
            Ok(lun_id) => {
                return Ok(Mapping {
                    naa: volume.naa.clone(),
                    lun_id: Some(lun_id),
                });
            }
            Err(reply) => reply,
        };
        // A concurrent copy on the same host may have released (deleted) the igroup after we
        // ensured it: re-create it once and retry.
        if self.find_igroup(&igroup.name).await?.is_none() {
            tracing::info!(igroup = %igroup.name, "igroup disappeared before mapping; creating it again");
            let again = self.ensure_initiator_group(&group.host).await?;
            let igroup = Self::igroup_target(&again)?;
            if let Ok(lun_id) = self.ensure_lun_map(volume, &igroup.name).await? {
                return Ok(Mapping {
                    naa: volume.naa.clone(),
                    lun_id: Some(lun_id),
                });
            }
        }
        Err(refused.error())
    }

    async fn unmap(&self, volume: &Volume, group: &InitiatorGroup) -> Result<(), StorageError> {
        let igroup = Self::igroup_target(group)?;
        let reply = self.delete_lun_map(&volume.id, &igroup.id).await?;
        if reply.is_success() {
            return Ok(());
        }
        // Not found by uuid: absent, or the igroup was re-created under a new uuid since the
        // group was journaled (see `map`). Names are stable, so ask by name.
        let maps = self
            .find_lun_maps(Some(&volume.name), Some(&igroup.name))
            .await?;
        let Some(current) = maps.iter().find_map(|m| m.igroup.as_ref()?.uuid.clone()) else {
            return Ok(());
        };
        if current == igroup.id {
            return Err(reply.error());
        }
        let retry = self.delete_lun_map(&volume.id, &current).await?;
        if retry.is_success() || retry.status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(retry.error())
        }
    }

    async fn current_mappings(&self, volume: &Volume) -> Result<Vec<GroupRef>, StorageError> {
        let maps = self.find_lun_maps(Some(&volume.name), None).await?;
        Ok(maps
            .into_iter()
            .filter_map(|m| m.igroup)
            .filter_map(|g| {
                Some(GroupRef {
                    kind: GroupKind::Igroup,
                    name: g.name?,
                    id: g.uuid.unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn restore(&self, volume: &Volume, groups: &[GroupRef]) -> Result<(), StorageError> {
        let mut wanted = Vec::new();
        for group in groups {
            if group.is_copy_offload_object() {
                tracing::info!(igroup = %group.name, lun = %volume.name, "not restoring a copy-offload igroup mapping");
            } else if group.kind != GroupKind::Igroup {
                return Err(StorageError::config(format!(
                    "cannot restore a mapping to {} {:?} on ONTAP: only igroups exist there",
                    group.name, group.kind
                )));
            } else {
                wanted.push(group);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        // One read usually shows every original map still in place (copy-offload never removes them).
        let present: Vec<String> = self
            .find_lun_maps(Some(&volume.name), None)
            .await?
            .into_iter()
            .filter_map(|m| m.igroup.and_then(|g| g.name))
            .collect();
        for group in wanted.into_iter().filter(|g| !present.contains(&g.name)) {
            if let Err(reply) = self.ensure_lun_map(volume, &group.name).await? {
                return Err(reply.error());
            }
            tracing::info!(igroup = %group.name, lun = %volume.name, "original LUN mapping restored");
        }
        Ok(())
    }

    async fn release_group(&self, group: &InitiatorGroup) -> Result<GroupRelease, StorageError> {
        let mut outcome = GroupRelease::NotOwned;
        for owned in group.owned.iter().filter(|g| g.kind == GroupKind::Igroup) {
            // By name, not the journaled uuid: `map` may have re-created the igroup since.
            let Some(igroup) = self
                .find_igroup_with(&owned.name, "uuid,name,lun_maps")
                .await?
            else {
                outcome = GroupRelease::AlreadyGone;
                continue;
            };
            if !igroup.lun_maps.is_empty() {
                tracing::info!(igroup = %igroup.name, "igroup still has LUN maps; keeping it");
                outcome = GroupRelease::InUse;
                continue;
            }
            let reply = self
                .http
                .delete(&["protocols", "san", "igroups", &igroup.uuid])
                .send()
                .await?;
            outcome = if reply.is_success() {
                tracing::info!(igroup = %igroup.name, "deleted empty ONTAP igroup");
                GroupRelease::Deleted
            } else if reply.status == StatusCode::NOT_FOUND {
                GroupRelease::AlreadyGone
            } else if !self
                .find_lun_maps(None, Some(&igroup.name))
                .await?
                .is_empty()
            {
                // A copy mapped a LUN between our check and the delete; ONTAP refused. Fine.
                GroupRelease::InUse
            } else {
                return Err(reply.error());
            };
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn pv(attrs: &[(&str, &str)]) -> PersistentVolumeRef {
        PersistentVolumeRef {
            name: "pvc-1".into(),
            csi_driver: Some(TRIDENT_CSI_DRIVER.into()),
            volume_handle: "pvc-1".into(),
            volume_attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn lun_path_follows_trident_conventions() {
        assert_eq!(
            lun_path(&pv(&[("internalName", "trident_pvc_1")])).unwrap(),
            "/vol/trident_pvc_1/lun0"
        );
        assert_eq!(
            lun_path(&pv(&[
                (
                    "internalID",
                    "/svm/svm1/flexvol/trident_lun_pool_x/lun/pvc_1"
                ),
                ("internalName", "ignored")
            ]))
            .unwrap(),
            "/vol/trident_lun_pool_x/pvc_1"
        );
        for bad in [
            "/svm/svm1/flexvol/fv/lun",
            "svm/svm1/flexvol/fv/lun/l",
            "/svm//flexvol/fv/lun/l",
            "/x/y",
        ] {
            assert!(lun_path(&pv(&[("internalID", bad)])).is_err(), "{bad}");
        }
        let err = lun_path(&pv(&[])).unwrap_err();
        assert!(
            err.to_string().contains("internalID nor internalName"),
            "{err}"
        );
        assert!(lun_path(&pv(&[("internalName", "a/b")])).is_err());
    }

    #[test]
    fn igroup_names_carry_the_protocol() {
        let host = |ids: &[&str]| EsxiHostRef {
            host_id: "hostsystem-host-7".into(),
            initiators: ids.iter().map(|i| Initiator::from_adapter_id(i)).collect(),
        };
        let fc = host(&["fc.20000025b5000001:21000025b5000001", "vmhba64"]);
        let (p, proto) = igroup_protocol(&fc.initiators).unwrap();
        assert_eq!((p, proto), ("fcp", StorageProtocol::Fc));
        assert_eq!(igroup_name(&fc, p), "xcopy-hostsystem-host-7-fcp");
        let iscsi = host(&["iqn.1998-01.com.vmware:esx7"]);
        assert_eq!(igroup_protocol(&iscsi.initiators).unwrap().0, "iscsi");
        let both = host(&[
            "iqn.1998-01.com.vmware:esx7",
            "fc.20000025b5000001:21000025b5000001",
        ]);
        assert_eq!(igroup_protocol(&both.initiators).unwrap().0, "mixed");
        assert!(
            igroup_protocol(&host(&["vmhba64", "nqn.2014-08.org.nvmexpress:x"]).initiators)
                .is_none()
        );
    }

    #[test]
    fn initiators_use_ontap_spelling() {
        let fc = Initiator::from_adapter_id("fc.20000025B5000001:21000025B5000001");
        assert_eq!(initiator_name(&fc).unwrap(), "21:00:00:25:b5:00:00:01");
        let iqn = Initiator::from_adapter_id("iqn.1998-01.com.vmware:ESX7");
        assert_eq!(initiator_name(&iqn).unwrap(), "iqn.1998-01.com.vmware:esx7");
        assert!(initiator_name(&Initiator::from_adapter_id("vmhba3")).is_none());
    }

    #[test]
    fn ontap_error_bodies_become_messages() {
        let body = br#"{"error":{"message":"entry doesn't exist","code":"4"}}"#;
        assert_eq!(
            error_message(body).unwrap(),
            "entry doesn't exist (ONTAP error 4)"
        );
        assert!(error_message(b"<html>").is_none());
    }
}
