//! IBM FlashSystem / Storage Virtualize over its REST API (`https://<STORAGE_HOSTNAME>:7443/rest/v1/
//! <command>[/<object>]`, every command a `POST` whose JSON body holds the CLI options): a token
//! from `POST /auth` (`X-Auth-Username` / `X-Auth-Password` → `X-Auth-Token`), held for the run
//! and renewed once when the array refuses it (401/403); IBM block CSI vdisks by `vdisk_UID`
//! (`volumeHandle` `SVC:<id>;<vdisk_UID>`); the ESXi host's FlashSystem host found by WWPN/IQN or
//! created as `xcopy-<hostID>` and deleted once nothing is mapped to it; vdisk-host maps; device
//! names `naa.` + `vdisk_UID`; and RDM disks copied on the array by a FlashCopy mapping.
//!
//! Differences from upstream: the token lives in the process for the run instead of a Kubernetes
//! Secret, so the populator needs no Secret RBAC; volume protection fails the copy only where it
//! would block unmapping (a XCOPY copy whose pool is protected), before anything is mapped, with
//! the command that lifts it (upstream refused to start whenever the system setting was on, even
//! for RDM copies that never unmap); NVMe and other adapters without a WWPN or IQN are refused by
//! name instead of being registered as iSCSI names; mapping always passes `force` (a PVC volume is
//! attached to its worker node) and lets the array pick the SCSI id; the original host maps are
//! reported and restored (upstream cleared its context, so its restore did nothing); `rmhost`
//! names the host in the path; the PV's CSI driver is checked; and the FlashCopy is complete only
//! when the mapping reports 100% copied (upstream declared success once started), after which
//! the mapping is removed.

mod preflight;
mod settings;

pub use settings::*;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderName, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

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

/// CSI driver of IBM block storage, which provisions FlashSystem PVs.
pub const CSI_DRIVER: &str = "block.csi.ibm.com";

/// `STORAGE_HOSTNAME` is the management address; the REST API listens on 7443 under `/rest/v1`.
pub const ENDPOINT: EndpointDefaults = EndpointDefaults {
    scheme: "https",
    port: Some(7443),
    base_path: "/rest/v1",
};

const TOKEN_HEADER: &str = "x-auth-token";

/// FlashCopy background copy rate (100 ≈ 64 MiB/s per mapping, the CLI's scale is 0..=150).
const COPY_RATE: u32 = 100;

/// How often a running FlashCopy's progress is read.
const COPY_POLL: Duration = Duration::from_secs(1);

/// CLI message codes the plugin acts on.
const OBJECT_MISSING: &str = "CMMVC5753E";
const ALREADY_MAPPED: &str = "CMMVC5878E";
const ALREADY_EXISTS: &str = "CMMVC6035E";
const ALREADY_COPYING: &str = "CMMVC5907E";
const HOST_HAS_MAPPINGS: &str = "CMMVC5871E";

/// A connected FlashSystem.
#[derive(Debug)]
pub struct FlashSystemArray {
    http: HttpClient,
}

// ---- wire shapes (CLI views; every field is a string) ----

#[derive(Debug, Deserialize)]
struct SystemRecord {
    #[serde(default)]
    product_name: String,
    #[serde(default)]
    code_level: String,
    #[serde(default)]
    vdisk_protection_enabled: String,
    #[serde(default)]
    vdisk_protection_time: String,
}

#[derive(Debug, Deserialize)]
struct PoolRecord {
    #[serde(default)]
    vdisk_protection_enabled: String,
}

#[derive(Debug, Deserialize)]
struct VdiskRecord {
    id: String,
    name: String,
    #[serde(rename = "vdisk_UID")]
    vdisk_uid: String,
    #[serde(default)]
    capacity: String,
    #[serde(default)]
    mdisk_grp_name: String,
}

#[derive(Debug, Deserialize)]
struct HostRecord {
    id: String,
}

#[derive(Debug, Deserialize)]
struct HostDetail {
    name: String,
    #[serde(default)]
    nodes: Vec<HostPortRecord>,
}

#[derive(Debug, Deserialize)]
struct HostPortRecord {
    #[serde(rename = "WWPN", default)]
    wwpn: Option<String>,
    #[serde(default)]
    iscsi_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HostMapRecord {
    #[serde(default)]
    host_id: String,
    #[serde(default)]
    host_name: String,
    #[serde(rename = "SCSI_id", default)]
    scsi_id: String,
}

#[derive(Debug, Deserialize)]
struct FcMapRecord {
    id: String,
    #[serde(default)]
    source_vdisk_name: String,
    #[serde(default)]
    target_vdisk_name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    progress: String,
}

#[derive(Debug, Deserialize)]
struct Created {
    id: String,
}

/// The `CMMVC<nnnn>E` code a failed command's message starts with.
fn cli_code(reply: &Reply) -> Option<String> {
    let message = reply.message();
    let code = message.split_whitespace().next()?;
    (code.starts_with("CMMVC") && code.len() == 10).then(|| code.to_owned())
}

fn fails_with(reply: &Reply, code: &str) -> bool {
    !reply.is_success() && cli_code(reply).as_deref() == Some(code)
}

/// How the FlashSystem spells an ESXi initiator: FC by WWPN (16 upper-case hex digits), iSCSI by
/// name; NVMe and adapters without a SCSI identity have no host port copy-offload can use.
pub fn host_port(initiator: &Initiator) -> Option<HostPort> {
    match initiator {
        Initiator::FibreChannel(fc) => Some(HostPort::Wwpn(fc.wwpn.hex_upper())),
        Initiator::Iscsi(name) => Some(HostPort::Iscsi(name.clone())),
        Initiator::Nvme(_) | Initiator::Sdc(_) | Initiator::Other(_) => None,
    }
}

/// One port of a FlashSystem host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPort {
    Wwpn(String),
    Iscsi(String),
}

impl HostPort {
    fn on(&self, host: &HostDetail) -> bool {
        host.nodes.iter().any(|node| match self {
            HostPort::Wwpn(wwpn) => node
                .wwpn
                .as_deref()
                .is_some_and(|w| w.replace(':', "").eq_ignore_ascii_case(wwpn)),
            HostPort::Iscsi(name) => node
                .iscsi_name
                .as_deref()
                .is_some_and(|i| i.eq_ignore_ascii_case(name)),
        })
    }
}

/// The `vdisk_UID` an IBM block CSI `volumeHandle` (`SVC:<id>;<vdisk_UID>`) names.
pub fn vdisk_uid_from_handle(handle: &str) -> Result<String, StorageError> {
    let parts: Vec<&str> = handle.split(';').collect();
    match parts.as_slice() {
        [_, uid] if is_vdisk_uid(uid) => Ok(uid.to_ascii_uppercase()),
        _ => Err(StorageError::config(format!(
            "volumeHandle {handle:?} is not an IBM block CSI handle (SVC:<vdisk id>;<32-hex vdisk_UID>); \
             the storage map points this datastore at the wrong storage vendor"
        ))),
    }
}

fn is_vdisk_uid(text: &str) -> bool {
    text.len() == 32 && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// The `vdisk_UID` behind an RDM: the backing's `naa.` device name, else characters 10..42 of
/// its `lunUuid` (the NAA inside the SCSI identifier).
pub fn rdm_vdisk_uid(device_name: &str, lun_uuid: &str) -> Option<String> {
    let lower = device_name.to_ascii_lowercase();
    if let Some(uid) = lower.strip_prefix("naa.").filter(|u| is_vdisk_uid(u)) {
        return Some(uid.to_ascii_uppercase());
    }
    lun_uuid
        .get(10..42)
        .filter(|u| is_vdisk_uid(u))
        .map(str::to_ascii_uppercase)
}

fn to_volume(record: VdiskRecord, operation: &str) -> Result<Volume, StorageError> {
    let device = naa::flashsystem(&record.vdisk_uid)
        .map_err(|e| StorageError::protocol(operation, e.to_string()))?;
    Ok(Volume {
        id: record.id,
        name: record.name,
        naa: device,
        serial: record.vdisk_uid,
        size_bytes: record.capacity.parse().unwrap_or(0),
    })
}

// ---- session ----

/// `POST /auth` with the user name and password in headers; the token goes in `X-Auth-Token`.
struct TokenLogin {
    username: String,
    password: Secret,
}

#[async_trait]
impl SessionLogin for TokenLogin {
    async fn login(&self, http: &HttpClient) -> Result<Vec<(HeaderName, Secret)>, StorageError> {
        #[derive(Deserialize)]
        struct Token {
            token: String,
        }
        let reply = http
            .post(&["auth"])
            .without_auth()
            .header(
                HeaderName::from_static("x-auth-username"),
                Secret::new(self.username.clone()),
            )
            .header(
                HeaderName::from_static("x-auth-password"),
                self.password.clone(),
            )
            .send()
            .await?
            .success()?;
        let token: Token = reply.json()?;
        Ok(vec![(
            HeaderName::from_static(TOKEN_HEADER),
            Secret::new(token.token),
        )])
    }

    /// Storage Virtualize answers 403 to an expired token (401 on some code levels).
    fn relogin_on(&self, status: StatusCode) -> bool {
        status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
    }
}

impl FlashSystemArray {
    /// Connects: obtains a token and reads the system once, so refused credentials, untrusted
    /// TLS and unreachable arrays fail here.
    pub async fn connect(
        settings: &ConnectionSettings,
        _vendor: &Settings,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<Self, StorageError> {
        let creds = &settings.credentials;
        if creds.username.is_empty() || creds.password.expose().is_empty() {
            return Err(StorageError::config(
                "IBM FlashSystem needs STORAGE_USERNAME and STORAGE_PASSWORD (its REST API trades them for a token)",
            ));
        }
        let login = TokenLogin {
            username: creds.username.clone(),
            password: creds.password.clone(),
        };
        let mut options = ClientOptions::new(ENDPOINT, Auth::Session(Arc::new(login)));
        options.observer = observer;
        let http = HttpClient::new(settings, options)?;
        let array = FlashSystemArray { http };
        let system: SystemRecord = array.info("lssystem", None, json!({})).await?;
        tracing::info!(endpoint = %array.http.base(), product = %system.product_name,
            code_level = %system.code_level, "connected to IBM FlashSystem");
        Ok(array)
    }

    /// Runs a CLI command; the reply may be a refusal.
    async fn run(
        &self,
        command: &str,
        object: Option<&str>,
        opts: Value,
    ) -> Result<Reply, StorageError> {
        let mut segments = vec![command];
        segments.extend(object);
        self.http.post(&segments).json(&opts)?.send().await
    }

    /// Runs an `ls` command and decodes its view.
    async fn info<T: DeserializeOwned>(
        &self,
        command: &str,
        object: Option<&str>,
        opts: Value,
    ) -> Result<T, StorageError> {
        self.run(command, object, opts).await?.success()?.json()
    }

    /// Like [`FlashSystemArray::info`], `None` when the object does not exist.
    async fn info_of<T: DeserializeOwned>(
        &self,
        command: &str,
        object: &str,
    ) -> Result<Option<T>, StorageError> {
        let reply = self.run(command, Some(object), json!({})).await?;
        if fails_with(&reply, OBJECT_MISSING) {
            return Ok(None);
        }
        reply.success()?.json().map(Some)
    }

    async fn vdisk_by_uid(&self, uid: &str) -> Result<Option<Volume>, StorageError> {
        let mut found: Vec<VdiskRecord> = self
            .info(
                "lsvdisk",
                None,
                json!({"filtervalue": format!("vdisk_UID={uid}"), "bytes": true}),
            )
            .await?;
        match found.len() {
            0 => Ok(None),
            1 => to_volume(found.remove(0), "lsvdisk").map(Some),
            n => Err(StorageError::protocol(
                "lsvdisk",
                format!("{n} vdisks carry vdisk_UID {uid}; a UID must be unique"),
            )),
        }
    }

    async fn host_maps(&self, volume: &Volume) -> Result<Vec<HostMapRecord>, StorageError> {
        self.info("lsvdiskhostmap", Some(&volume.id), json!({}))
            .await
    }

    /// Fails before anything is mapped when volume protection would keep the array from
    /// removing the ESXi host's mapping after the copy (protection must be on for the system and
    /// for the vdisk's pool to apply).
    async fn refuse_protected(&self, volume: &Volume) -> Result<(), StorageError> {
        let system: SystemRecord = self.info("lssystem", None, json!({})).await?;
        if system.vdisk_protection_enabled != "yes" {
            return Ok(());
        }
        let pool = self.vdisk_pool(volume).await?;
        let Some(record) = self.info_of::<PoolRecord>("lsmdiskgrp", &pool).await? else {
            return Ok(());
        };
        if record.vdisk_protection_enabled != "yes" {
            return Ok(());
        }
        Err(protection_error(
            &volume.name,
            &pool,
            &system.vdisk_protection_time,
        ))
    }

    async fn vdisk_pool(&self, volume: &Volume) -> Result<String, StorageError> {
        let record: VdiskRecord = self
            .info("lsvdisk", Some(&volume.id), json!({"bytes": true}))
            .await?;
        Ok(record.mdisk_grp_name)
    }

    /// Hosts holding any of `ports` (a port belongs to one host only).
    async fn hosts_with(&self, ports: &[HostPort]) -> Result<Vec<String>, StorageError> {
        let hosts: Vec<HostRecord> = self.info("lshost", None, json!({})).await?;
        let mut matching = Vec::new();
        for host in hosts {
            let Some(detail) = self.info_of::<HostDetail>("lshost", &host.id).await? else {
                continue; // deleted between the two calls
            };
            if ports.iter().any(|p| p.on(&detail)) {
                matching.push(detail.name);
            }
        }
        Ok(matching)
    }

    /// Creates host `name` with `ports`; false when the name was taken meanwhile.
    async fn create_host(&self, name: &str, ports: &[HostPort]) -> Result<bool, StorageError> {
        let wwpns: Vec<&str> = ports
            .iter()
            .filter_map(|p| match p {
                HostPort::Wwpn(w) => Some(w.as_str()),
                HostPort::Iscsi(_) => None,
            })
            .collect();
        let iqns: Vec<&str> = ports
            .iter()
            .filter_map(|p| match p {
                HostPort::Iscsi(i) => Some(i.as_str()),
                HostPort::Wwpn(_) => None,
            })
            .collect();
        let mut opts = json!({"name": name, "protocol": "scsi", "type": "generic", "force": true});
        if !wwpns.is_empty() {
            opts["fcwwpn"] = wwpns.join(":").into();
        }
        if !iqns.is_empty() {
            opts["iscsiname"] = iqns.join(",").into();
        }
        let reply = self.run("mkhost", None, opts).await?;
        if fails_with(&reply, ALREADY_EXISTS) {
            return Ok(false);
        }
        let created: Created = reply.success()?.json()?;
        tracing::info!(host = %name, id = %created.id, "created FlashSystem host for the ESXi host");
        Ok(true)
    }

    /// Maps `volume` to `host`; the SCSI id, existing or new.
    async fn map_to(
        &self,
        volume: &Volume,
        host: &str,
    ) -> Result<Result<u32, Reply>, StorageError> {
        let reply = self
            .run(
                "mkvdiskhostmap",
                Some(&volume.id),
                json!({"host": host, "force": true}),
            )
            .await?;
        if reply.is_success() {
            let created: Created = reply.json()?;
            return Ok(Ok(created.id.parse().unwrap_or(0)));
        }
        if fails_with(&reply, ALREADY_MAPPED) {
            let lun = self
                .host_maps(volume)
                .await?
                .into_iter()
                .find(|m| m.host_name == host)
                .and_then(|m| m.scsi_id.parse().ok())
                .unwrap_or(0);
            return Ok(Ok(lun));
        }
        Ok(Err(reply))
    }

    async fn fcmap_named(&self, name: &str) -> Result<Option<FcMapRecord>, StorageError> {
        let mut maps: Vec<FcMapRecord> = self
            .info(
                "lsfcmap",
                None,
                json!({"filtervalue": format!("name={name}")}),
            )
            .await?;
        Ok((!maps.is_empty()).then(|| maps.remove(0)))
    }

    async fn rdm_source(&self, device_name: &str, lun_uuid: &str) -> Result<Volume, StorageError> {
        let uid =
            rdm_vdisk_uid(device_name, lun_uuid).ok_or_else(|| StorageError::Unsupported {
                message: format!(
                    "the RDM disk {device_name} (lunUuid {lun_uuid}) names no FlashSystem vdisk_UID"
                ),
            })?;
        self.vdisk_by_uid(&uid).await?.ok_or_else(|| {
            StorageError::not_found(
                format!("FlashSystem vdisk of RDM disk {device_name}"),
                format!("no vdisk has vdisk_UID {uid}; the RDM LUN is on another array"),
            )
        })
    }
}

fn protection_error(volume: &str, pool: &str, minutes: &str) -> StorageError {
    StorageError::config(format!(
        "volume protection is enabled on this FlashSystem and its pool {pool} (vdisk_protection_time \
         {minutes} minutes): after ESXi writes to vdisk {volume}, the array refuses to remove the \
         ESXi host's mapping for that long. Disable it for the pool (chmdiskgrp \
         -vdiskprotectionenabled no {pool}) or the system (chsystem -vdiskprotectionenabled no), \
         then run the migration again"
    ))
}

#[async_trait]
impl StorageApi for FlashSystemArray {
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
        let system: SystemRecord = self.info("lssystem", None, json!({})).await?;
        Ok(ArrayInfo {
            vendor: "IBM".into(),
            product: "FlashSystem".into(),
            model: system.product_name,
            version: system
                .code_level
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned(),
        })
    }

    async fn resolve_volume(&self, pv: &PersistentVolumeRef) -> Result<Volume, StorageError> {
        if let Some(driver) = pv.csi_driver.as_deref().filter(|d| *d != CSI_DRIVER) {
            return Err(StorageError::config(format!(
                "PV {} is provisioned by CSI driver {driver}, not IBM block CSI ({CSI_DRIVER}); \
                 the storage map points this datastore at the wrong storage vendor",
                pv.name
            )));
        }
        let uid = vdisk_uid_from_handle(&pv.volume_handle)?;
        self.vdisk_by_uid(&uid).await?.ok_or_else(|| {
            StorageError::not_found(
                format!("FlashSystem vdisk of PV {}", pv.name),
                format!(
                    "no vdisk has vdisk_UID {uid}; check that STORAGE_HOSTNAME is the FlashSystem that holds the PV"
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
                    "ESXi host {} has no FC or iSCSI initiator a FlashSystem host can hold (adapters: {}); \
                     copy-offload maps FlashSystem volumes over FC or iSCSI only, not NVMe",
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
            ports.iter().any(|p| matches!(p, HostPort::Wwpn(_))),
            ports.iter().any(|p| matches!(p, HostPort::Iscsi(_))),
        ) {
            (true, true) => StorageProtocol::Mixed,
            (true, false) => StorageProtocol::Fc,
            _ => StorageProtocol::Iscsi,
        };
        let name = host.group_base_name();
        let mut matching = self.hosts_with(&ports).await?;
        let mut created = false;
        if matching.is_empty() {
            created = self.create_host(&name, &ports).await?;
            if !created {
                // Another copy for the same ESXi host created it in between.
                matching = self.hosts_with(&ports).await?;
                if matching.is_empty() {
                    return Err(StorageError::config(format!(
                        "FlashSystem host {name} exists but holds none of ESXi host {}'s ports; \
                         delete it or add the ports (addhostport)",
                        host.host_id
                    )));
                }
            } else {
                matching = vec![name];
            }
        }
        let targets: Vec<GroupRef> = matching
            .into_iter()
            .map(|name| GroupRef {
                kind: GroupKind::Host,
                name,
                id: String::new(),
            })
            .collect();
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
        self.refuse_protected(volume).await?;
        let mut lun_id = None;
        for host in &group.targets {
            let mut outcome = self.map_to(volume, &host.name).await?;
            if let Err(reply) = &outcome
                && fails_with(reply, OBJECT_MISSING)
                && host.is_copy_offload_object()
            {
                tracing::info!(host = %host.name, "FlashSystem host disappeared before mapping; creating it again");
                self.ensure_initiator_group(&group.host).await?;
                outcome = self.map_to(volume, &host.name).await?;
            }
            let lun = outcome.map_err(|reply| reply.error())?;
            lun_id = lun_id.or(Some(lun));
        }
        Ok(Mapping {
            naa: volume.naa.clone(),
            lun_id,
        })
    }

    async fn unmap(&self, volume: &Volume, group: &InitiatorGroup) -> Result<(), StorageError> {
        for host in &group.targets {
            let reply = self
                .run(
                    "rmvdiskhostmap",
                    Some(&volume.id),
                    json!({"host": host.name}),
                )
                .await?;
            if reply.is_success() || fails_with(&reply, OBJECT_MISSING) {
                continue;
            }
            if reply.message().contains("volume protection") {
                let system: SystemRecord = self.info("lssystem", None, json!({})).await?;
                let pool = self.vdisk_pool(volume).await?;
                return Err(protection_error(
                    &volume.name,
                    &pool,
                    &system.vdisk_protection_time,
                ));
            }
            return Err(reply.error());
        }
        Ok(())
    }

    async fn current_mappings(&self, volume: &Volume) -> Result<Vec<GroupRef>, StorageError> {
        let mut groups: Vec<GroupRef> = Vec::new();
        for map in self.host_maps(volume).await? {
            let group = GroupRef {
                kind: GroupKind::Host,
                name: map.host_name,
                id: map.host_id,
            };
            if !groups.iter().any(|g| g.name == group.name) {
                groups.push(group);
            }
        }
        Ok(groups)
    }

    async fn restore(&self, volume: &Volume, groups: &[GroupRef]) -> Result<(), StorageError> {
        let present = self.current_mappings(volume).await?;
        for group in groups {
            if group.is_copy_offload_object() {
                tracing::info!(host = %group.name, volume = %volume.name, "not restoring a copy-offload host mapping");
                continue;
            }
            if group.kind != GroupKind::Host {
                return Err(StorageError::config(format!(
                    "cannot restore a mapping to {} {:?} on a FlashSystem: volumes map to hosts there",
                    group.name, group.kind
                )));
            }
            if present.iter().any(|p| p.name == group.name) {
                continue;
            }
            self.map_to(volume, &group.name)
                .await?
                .map_err(|reply| reply.error())?;
            tracing::info!(host = %group.name, volume = %volume.name, "original FlashSystem host mapping restored");
        }
        Ok(())
    }

    async fn release_group(&self, group: &InitiatorGroup) -> Result<GroupRelease, StorageError> {
        let mut outcome = GroupRelease::NotOwned;
        for owned in group.owned.iter().filter(|g| g.kind == GroupKind::Host) {
            let reply = self
                .run("lshostvdiskmap", Some(&owned.name), json!({}))
                .await?;
            if fails_with(&reply, OBJECT_MISSING) {
                outcome = GroupRelease::AlreadyGone;
                continue;
            }
            let maps: Vec<Value> = reply.success()?.json()?;
            if !maps.is_empty() {
                tracing::info!(host = %owned.name, "FlashSystem host still has mappings; keeping it");
                outcome = GroupRelease::InUse;
                continue;
            }
            let reply = self.run("rmhost", Some(&owned.name), json!({})).await?;
            outcome = if reply.is_success() {
                tracing::info!(host = %owned.name, "deleted FlashSystem host copy-offload created");
                GroupRelease::Deleted
            } else if fails_with(&reply, OBJECT_MISSING) {
                GroupRelease::AlreadyGone
            } else if fails_with(&reply, HOST_HAS_MAPPINGS) {
                // A copy mapped a volume between our check and the delete.
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
impl ArrayCopy for FlashSystemArray {
    fn supports(&self, source: &ArrayCopySource) -> bool {
        matches!(source, ArrayCopySource::Rdm { .. })
    }

    /// A FlashCopy mapping named after the session from the RDM vdisk onto the target, started
    /// with prepare, followed until it reports 100% copied. A mapping of an earlier run is adopted.
    async fn copy(
        &self,
        session: &ArrayCopySession,
        progress: ProgressSink<'_>,
    ) -> Result<(), StorageError> {
        let ArrayCopySource::Rdm {
            device_name,
            lun_uuid,
        } = &session.source
        else {
            return Err(StorageError::Unsupported {
                message:
                    "IBM FlashSystem copies RDM disks on the array; vVol disks go through XCOPY"
                        .into(),
            });
        };
        let source = self.rdm_source(device_name, lun_uuid).await?;
        let target = &session.target;
        if source.name == target.name {
            return Err(StorageError::config(format!(
                "the RDM disk and the target PVC volume are the same FlashSystem vdisk ({})",
                target.name
            )));
        }
        if source.size_bytes != target.size_bytes {
            return Err(StorageError::config(format!(
                "RDM vdisk {} has {} bytes and the target PVC vdisk {} has {} bytes; a FlashCopy \
                 needs both the same size, so request the PVC with exactly the RDM's size",
                source.name, source.size_bytes, target.name, target.size_bytes
            )));
        }
        progress(0);
        let map = match self.fcmap_named(&session.name).await? {
            Some(map) => {
                if map.source_vdisk_name != source.name || map.target_vdisk_name != target.name {
                    return Err(StorageError::config(format!(
                        "FlashCopy mapping {} exists from {} to {}, not from {} to {}; remove it (rmfcmap)",
                        session.name,
                        map.source_vdisk_name,
                        map.target_vdisk_name,
                        source.name,
                        target.name
                    )));
                }
                tracing::info!(map = %session.name, status = %map.status, "adopting the FlashCopy mapping of an earlier run");
                map
            }
            None => {
                let created: Created = self
                    .run(
                        "mkfcmap",
                        None,
                        json!({"source": source.name, "target": target.name,
                               "name": session.name, "copyrate": COPY_RATE}),
                    )
                    .await?
                    .success()?
                    .json()?;
                FcMapRecord {
                    id: created.id,
                    source_vdisk_name: source.name.clone(),
                    target_vdisk_name: target.name.clone(),
                    status: "idle_or_copied".into(),
                    progress: "0".into(),
                }
            }
        };
        let finished = |m: &FcMapRecord| m.status == "idle_or_copied" && m.progress == "100";
        if !finished(&map) && map.status != "copying" {
            let reply = self
                .run("startfcmap", Some(&map.id), json!({"prep": true}))
                .await?;
            if !reply.is_success() && !fails_with(&reply, ALREADY_COPYING) {
                return Err(reply.error());
            }
            tracing::info!(map = %session.name, source = %source.name, target = %target.name, "FlashCopy started");
        }
        let mut shown = 0u8;
        loop {
            let Some(now) = self.info_of::<FcMapRecord>("lsfcmap", &map.id).await? else {
                return Err(StorageError::protocol(
                    "lsfcmap",
                    format!(
                        "FlashCopy mapping {} disappeared while copying",
                        session.name
                    ),
                ));
            };
            let percent = now.progress.parse::<u8>().unwrap_or(0).min(100);
            if percent > shown {
                shown = percent;
                progress(shown);
            }
            if finished(&now) {
                break;
            }
            if now.status != "copying" {
                return Err(StorageError::protocol(
                    "lsfcmap",
                    format!(
                        "FlashCopy mapping {} stopped at {percent}% with status {}",
                        session.name, now.status
                    ),
                ));
            }
            tokio::time::sleep(COPY_POLL).await;
        }
        tracing::info!(map = %session.name, "FlashCopy complete");
        progress(100);
        Ok(())
    }

    async fn end(&self, session: &ArrayCopySession) -> Result<(), StorageError> {
        let Some(map) = self.fcmap_named(&session.name).await? else {
            return Ok(());
        };
        if map.status == "copying" || map.status == "prepared" {
            let reply = self
                .run("stopfcmap", Some(&map.id), json!({"force": true}))
                .await?;
            if !reply.is_success() && !fails_with(&reply, OBJECT_MISSING) {
                return Err(reply.error());
            }
        }
        let reply = self
            .run("rmfcmap", Some(&map.id), json!({"force": true}))
            .await?;
        if reply.is_success() || fails_with(&reply, OBJECT_MISSING) {
            tracing::info!(map = %session.name, "FlashCopy mapping removed");
            return Ok(());
        }
        Err(reply.error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csi_handles_give_the_vdisk_uid() {
        assert_eq!(
            vdisk_uid_from_handle("SVC:12;60050768108101c7c0000000000000ab").unwrap(),
            "60050768108101C7C0000000000000AB"
        );
        assert!(vdisk_uid_from_handle("12;6005").is_err());
        assert!(vdisk_uid_from_handle("pvc-1").is_err());
    }

    #[test]
    fn rdm_backings_give_the_vdisk_uid() {
        let uid = "60050768108101C7C0000000000000AB";
        assert_eq!(
            rdm_vdisk_uid(&format!("naa.{}", uid.to_ascii_lowercase()), "").as_deref(),
            Some(uid)
        );
        let lun_uuid = format!("0200000000{}323134352020", uid.to_ascii_lowercase());
        assert_eq!(rdm_vdisk_uid("vml.0200", &lun_uuid).as_deref(), Some(uid));
        assert!(rdm_vdisk_uid("vml.02", "short").is_none());
    }

    #[test]
    fn nvme_adapters_are_not_iscsi_names() {
        let fc = Initiator::from_adapter_id("fc.20000025b5000001:21000025b5000001");
        assert_eq!(
            host_port(&fc),
            Some(HostPort::Wwpn("21000025B5000001".into()))
        );
        assert!(host_port(&Initiator::from_adapter_id("nqn.2014-08.org.nvmexpress:x")).is_none());
        assert!(host_port(&Initiator::from_adapter_id("vmhba64")).is_none());
    }
}
