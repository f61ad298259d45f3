//! IBM FlashSystem / Storage Virtualize REST facade (`/rest/...`, `/rest/v1/...`) over the lab
//! SAN: hosts are the SAN model's groups, vdisks its volumes, vdisk-host maps its mappings;
//! storage pools, volume protection and FlashCopy mappings are FlashSystem notions the SAN does
//! not have, so the facade keeps them.
//!
//! Shapes follow IBM's "Storage Virtualize RESTful API" documentation and the CLI reference of
//! each command (the REST API runs CLI commands):
//! - `POST /rest/[v1/]auth` with `X-Auth-Username` / `X-Auth-Password` answers `{"token"}`; every
//!   other call sends it as `X-Auth-Token`. A wrong user or password answers 403; a token the
//!   array no longer knows (it expired: 60 minutes by default) answers 403 too. There is no
//!   logout: tokens simply expire.
//! - Every command is a `POST /rest/[v1/]<command>[/<object>]` whose JSON body holds the CLI
//!   options (`{"filtervalue": "name=x", "bytes": true}`); values may be strings, numbers,
//!   booleans, or `null` for "not given" (IBM's Ansible collection sends `"scsi": null`).
//!   `ls*` commands answer a JSON array (concise view) or, with an object in the path, one JSON
//!   object (detailed view; `lshost/<h>` lists its ports under `nodes`). Every field is a string.
//!   There is no pagination: concise views answer every object at once.
//! - A failed command answers its CLI message as plain text, `CMMVC<nnnn>E <text>`: HTTP 409 for
//!   conflicts with existing objects (already mapped, name taken), 500 for everything else the
//!   command refuses (a missing object is `CMMVC5753E`); an unknown command answers 404 and an
//!   unknown option 400.
//! - Quirks kept: a WWPN or IQN belongs to at most one host; a vdisk maps to a second host only
//!   with `force`; FlashCopy needs source and target of the same size, copies in the background
//!   after `startfcmap` (each `lsfcmap` of a copying map shows more `progress`, the data itself
//!   is point-in-time at the start) and deletes an `autodelete` map once copied; volume
//!   protection (system-wide and per pool) refuses `rmvdiskhostmap` and `rmhost` for volumes
//!   that received I/O recently, which the lab takes to be every mapped volume.
//!
//! Every command served is listed in [`COMMANDS`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

use crate::san::{GroupSpec, InitiatorGroup, San, SanError, Volume};

/// CSI driver of IBM block storage (`block.csi.ibm.com`).
pub const CSI_DRIVER: &str = "block.csi.ibm.com";

/// `product_name` and `code_level` `lssystem` reports.
pub const PRODUCT_NAME: &str = "IBM FlashSystem 7300";
pub const CODE_LEVEL: &str = "8.6.0.4 (build 169.19.2404251040000)";

/// The one storage pool of a lab FlashSystem.
pub const POOL: &str = "Pool0";

/// Every command served.
pub const COMMANDS: &[&str] = &[
    "auth",
    "lssystem",
    "lsmdiskgrp",
    "lsvdisk",
    "lshost",
    "mkhost",
    "rmhost",
    "lsvdiskhostmap",
    "lshostvdiskmap",
    "mkvdiskhostmap",
    "rmvdiskhostmap",
    "lsfcmap",
    "mkfcmap",
    "prestartfcmap",
    "startfcmap",
    "stopfcmap",
    "rmfcmap",
    "registerplugin",
];

/// How much of a background copy each look at a copying map (`lsfcmap`) shows done.
const PROGRESS_STEP: u8 = 25;

/// One FlashSystem: its REST API over `array` of the SAN plus the state the SAN does not model.
/// Cheap to clone; clones share the array.
#[derive(Clone)]
pub struct FlashSystem {
    inner: Arc<Inner>,
}

struct Inner {
    san: San,
    array: String,
    username: String,
    password: String,
    next_token: AtomicU64,
    state: Mutex<ArrayState>,
}

#[derive(Default)]
struct ArrayState {
    tokens: BTreeSet<String>,
    /// Host name → id, given in order of first sight.
    host_ids: BTreeMap<String, u32>,
    next_host_id: u32,
    fcmaps: BTreeMap<u32, FcMap>,
    next_fcmap_id: u32,
    protection: Protection,
}

#[derive(Default, Clone, Copy)]
struct Protection {
    system: bool,
    pool: bool,
    minutes: u32,
}

impl Protection {
    fn active(self) -> bool {
        self.system && self.pool
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FcStatus {
    IdleOrCopied,
    Prepared,
    Copying,
    Stopped,
}

impl FcStatus {
    fn wire(&self) -> &'static str {
        match self {
            FcStatus::IdleOrCopied => "idle_or_copied",
            FcStatus::Prepared => "prepared",
            FcStatus::Copying => "copying",
            FcStatus::Stopped => "stopped",
        }
    }
}

/// A FlashCopy mapping.
#[derive(Debug, Clone)]
struct FcMap {
    id: u32,
    name: String,
    source: String,
    target: String,
    status: FcStatus,
    progress: u8,
    copy_rate: u32,
    autodelete: bool,
}

/// `/rest/...` of `array` in `san`, accepting `username` / `password`.
pub fn router(san: San, array: &str, username: &str, password: &str) -> Router {
    FlashSystem::new(san, array, username, password).router()
}

/// The PV `volumeHandle` IBM block CSI gives a vdisk: `SVC:<vdisk id>;<vdisk_UID>`.
pub fn csi_volume_handle(volume: &Volume) -> String {
    format!("SVC:{};{}", vdisk_id(volume), volume.serial)
}

/// A vdisk's id: the SAN's per-array creation sequence, which its serial (`vdisk_UID`) ends with,
/// so every view of the SAN derives the same id.
pub fn vdisk_id(volume: &Volume) -> u64 {
    let tail = volume
        .serial
        .get(volume.serial.len().saturating_sub(16)..)
        .unwrap_or_default();
    u64::from_str_radix(tail, 16).unwrap_or(0)
}

/// FlashSystem in the lab rig: IBM block CSI names the vdisk after the PV and puts
/// `SVC:<id>;<vdisk_UID>` in the PV's `volumeHandle`; `populate` needs no key of FlashSystem's own.
pub struct FlashSystemFacade;

impl crate::rig::ArrayFacade for FlashSystemFacade {
    fn product(&self) -> &'static str {
        "flashsystem"
    }

    fn create_csi_volume(
        &self,
        san: &San,
        array: &crate::lab::ArrayEndpoint,
        name: &str,
        size_bytes: u64,
    ) -> Result<crate::rig::TargetVolume, SanError> {
        let volume = san.create_volume(&array.name, name, size_bytes)?;
        Ok(crate::rig::TargetVolume {
            pvc: name.to_owned(),
            array: array.name.clone(),
            volume_handle: csi_volume_handle(&volume),
            attributes: Vec::new(),
            name: volume.name,
            naa: volume.naa,
            backing_path: volume.backing_path,
            size_bytes,
        })
    }

    fn vendor_flags(
        &self,
        _: &crate::lab::ArrayEndpoint,
    ) -> Vec<(co_api::contract::flags::Flag, String)> {
        Vec::new()
    }
}

impl FlashSystem {
    pub fn new(san: San, array: &str, username: &str, password: &str) -> FlashSystem {
        FlashSystem {
            inner: Arc::new(Inner {
                san,
                array: array.to_owned(),
                username: username.to_owned(),
                password: password.to_owned(),
                next_token: AtomicU64::new(1),
                state: Mutex::new(ArrayState::default()),
            }),
        }
    }

    /// The REST API; serve it over HTTPS (the vendor's clients only speak HTTPS).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/rest/{*command}", post(command))
            .with_state(self.clone())
    }

    fn state(&self) -> MutexGuard<'_, ArrayState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets every token, as their expiry or a restart of the configuration node does.
    pub fn expire_tokens(&self) {
        self.state().tokens.clear();
    }

    /// Tokens handed out and not expired.
    pub fn live_tokens(&self) -> usize {
        self.state().tokens.len()
    }

    /// Turns volume protection on or off, system-wide (`chsystem -vdiskprotectionenabled`) and for
    /// the pool (`chmdiskgrp -vdiskprotectionenabled`); both must be on for it to apply.
    pub fn set_volume_protection(&self, system: bool, pool: bool, minutes: u32) {
        self.state().protection = Protection {
            system,
            pool,
            minutes,
        };
    }

    /// FlashCopy mappings present, as `name source->target status`.
    pub fn fcmaps(&self) -> Vec<String> {
        self.state()
            .fcmaps
            .values()
            .map(|m| format!("{} {}->{} {}", m.name, m.source, m.target, m.status.wire()))
            .collect()
    }

    fn san(&self) -> &San {
        &self.inner.san
    }

    fn array(&self) -> &str {
        &self.inner.array
    }

    fn host_id(&self, state: &mut ArrayState, name: &str) -> u32 {
        if let Some(id) = state.host_ids.get(name) {
            return *id;
        }
        let id = state.next_host_id;
        state.next_host_id += 1;
        state.host_ids.insert(name.to_owned(), id);
        id
    }

    /// Hosts in id order, ids given to hosts seen for the first time.
    fn hosts(&self, state: &mut ArrayState) -> Vec<(u32, InitiatorGroup)> {
        let mut hosts: Vec<(u32, InitiatorGroup)> = self
            .san()
            .groups(self.array())
            .into_iter()
            .map(|g| (self.host_id(state, &g.name), g))
            .collect();
        hosts.sort_by_key(|(id, _)| *id);
        hosts
    }

    /// The host an object argument names (id or name).
    fn host(
        &self,
        state: &mut ArrayState,
        object: &str,
    ) -> Result<(u32, InitiatorGroup), CliError> {
        self.hosts(state)
            .into_iter()
            .find(|(id, g)| g.name == object || id.to_string() == object)
            .ok_or_else(CliError::missing)
    }

    fn vdisk(&self, object: &str) -> Result<Volume, CliError> {
        self.san()
            .volumes(self.array())
            .into_iter()
            .find(|v| v.name == object || vdisk_id(v).to_string() == object)
            .ok_or_else(CliError::missing)
    }

    fn vdisk_view(&self, state: &ArrayState, volume: &Volume, bytes: bool) -> Value {
        let maps = state
            .fcmaps
            .values()
            .filter(|m| m.source == volume.name || m.target == volume.name)
            .collect::<Vec<_>>();
        let (fc_id, fc_name) = match maps.as_slice() {
            [] => (String::new(), String::new()),
            [one] => (one.id.to_string(), one.name.clone()),
            _ => ("many".to_owned(), "many".to_owned()),
        };
        json!({
            "id": vdisk_id(volume).to_string(),
            "name": volume.name,
            "IO_group_id": "0",
            "IO_group_name": "io_grp0",
            "status": "online",
            "mdisk_grp_id": "0",
            "mdisk_grp_name": POOL,
            "capacity": capacity(volume.size_bytes, bytes),
            "type": "striped",
            "FC_id": fc_id,
            "FC_name": fc_name,
            "RC_id": "",
            "RC_name": "",
            "vdisk_UID": volume.serial,
            "fc_map_count": maps.len().to_string(),
            "copy_count": "1",
            "fast_write_state": "empty",
            "se_copy_count": "1",
            "RC_change": "no",
            "compressed_copy_count": "0",
            "parent_mdisk_grp_id": "0",
            "parent_mdisk_grp_name": POOL,
            "formatting": "no",
            "encrypt": "no",
            "volume_id": vdisk_id(volume).to_string(),
            "volume_name": volume.name,
            "function": "",
            "protocol": "",
        })
    }

    fn host_view(&self, id: u32, host: &InitiatorGroup, detailed: bool) -> Value {
        let mapped = self
            .san()
            .mappings(self.array())
            .iter()
            .any(|m| m.group == host.name);
        let mut view = json!({
            "id": id.to_string(),
            "name": host.name,
            "port_count": host.initiators.len().to_string(),
            "iogrp_count": "4",
            "status": if host.initiators.is_empty() { "offline" } else { "online" },
            "site_id": "",
            "site_name": "",
            "host_cluster_id": "",
            "host_cluster_name": "",
            "protocol": host.protocol.clone().unwrap_or_else(|| "scsi".to_owned()),
            "owner_id": "",
            "owner_name": "",
            "portset_id": "64",
            "portset_name": "portset64",
        });
        if detailed && let Some(object) = view.as_object_mut() {
            object.insert(
                "type".into(),
                host.os_type
                    .clone()
                    .unwrap_or_else(|| "generic".into())
                    .into(),
            );
            object.insert("mask".into(), "1".repeat(64).into());
            object.insert(
                "status_policy".into(),
                if mapped { "redundant" } else { "complete" }.into(),
            );
            let nodes: Vec<Value> = host
                .initiators
                .iter()
                .map(|port| {
                    if is_iscsi_name(port) {
                        json!({"iscsi_name": port, "node_logged_in_count": "1", "state": "active"})
                    } else {
                        json!({"WWPN": port.replace(':', "").to_ascii_uppercase(),
                               "node_logged_in_count": "2", "state": "active"})
                    }
                })
                .collect();
            object.insert("nodes".into(), Value::Array(nodes));
        }
        view
    }

    fn fcmap_view(&self, map: &FcMap) -> Value {
        let id_of = |name: &str| {
            self.san()
                .volume(self.array(), name)
                .map(|v| vdisk_id(&v).to_string())
                .unwrap_or_default()
        };
        json!({
            "id": map.id.to_string(),
            "name": map.name,
            "source_vdisk_id": id_of(&map.source),
            "source_vdisk_name": map.source,
            "target_vdisk_id": id_of(&map.target),
            "target_vdisk_name": map.target,
            "group_id": "",
            "group_name": "",
            "status": map.status.wire(),
            "progress": map.progress.to_string(),
            "copy_rate": map.copy_rate.to_string(),
            "clean_progress": "100",
            "incremental": "off",
            "partner_FC_id": "",
            "partner_FC_name": "",
            "restoring": "no",
            "start_time": "",
            "rc_controlled": "no",
            "autodelete": if map.autodelete { "on" } else { "off" },
        })
    }

    /// Lets a copying map advance by one step; a finished `autodelete` map disappears.
    fn advance(&self, state: &mut ArrayState, id: u32) {
        let Some(map) = state.fcmaps.get_mut(&id) else {
            return;
        };
        if map.status != FcStatus::Copying {
            return;
        }
        map.progress = map.progress.saturating_add(PROGRESS_STEP).min(100);
        if map.progress == 100 {
            map.status = FcStatus::IdleOrCopied;
            if map.autodelete {
                state.fcmaps.remove(&id);
            }
        }
    }

    fn fcmap_id(&self, state: &ArrayState, object: &str) -> Result<u32, CliError> {
        state
            .fcmaps
            .values()
            .find(|m| m.name == object || m.id.to_string() == object)
            .map(|m| m.id)
            .ok_or_else(CliError::missing)
    }

    fn run(&self, command: &str, args: &[String], opts: &Options) -> Result<Value, CliError> {
        let object = args
            .iter()
            .find(|a| !a.starts_with('-'))
            .map(String::as_str);
        let mut state = self.state();
        match command {
            "lssystem" => {
                opts.allow(&[])?;
                let p = state.protection;
                Ok(json!({
                    "id": "0000020421400428",
                    "name": self.array(),
                    "location": "local",
                    "product_name": PRODUCT_NAME,
                    "code_level": CODE_LEVEL,
                    "vdisk_protection_time": p.minutes.max(15).to_string(),
                    "vdisk_protection_enabled": yes_no(p.system),
                }))
            }
            "lsmdiskgrp" => {
                opts.allow(&["filtervalue", "bytes"])?;
                let pool = json!({
                    "id": "0", "name": POOL, "status": "online", "vdisk_count":
                    self.san().volumes(self.array()).len().to_string(),
                    "vdisk_protection_enabled": yes_no(state.protection.pool),
                });
                match object {
                    Some("0") | Some(POOL) => Ok(pool),
                    Some(_) => Err(CliError::missing()),
                    None => Ok(filtered(vec![pool], opts)?),
                }
            }
            "lsvdisk" => {
                opts.allow(&["filtervalue", "bytes"])?;
                let bytes = opts.flag("bytes");
                match object {
                    Some(object) => {
                        let volume = self.vdisk(object)?;
                        Ok(self.vdisk_view(&state, &volume, bytes))
                    }
                    None => {
                        let mut volumes = self.san().volumes(self.array());
                        volumes.sort_by_key(vdisk_id);
                        let views = volumes
                            .iter()
                            .map(|v| self.vdisk_view(&state, v, bytes))
                            .collect();
                        filtered(views, opts)
                    }
                }
            }
            "lshost" => {
                opts.allow(&["filtervalue"])?;
                match object {
                    Some(object) => {
                        let (id, host) = self.host(&mut state, object)?;
                        Ok(self.host_view(id, &host, true))
                    }
                    None => {
                        let views = self
                            .hosts(&mut state)
                            .iter()
                            .map(|(id, h)| self.host_view(*id, h, false))
                            .collect();
                        filtered(views, opts)
                    }
                }
            }
            "mkhost" => {
                opts.allow(&[
                    "name",
                    "fcwwpn",
                    "iscsiname",
                    "protocol",
                    "type",
                    "force",
                    "iogrp",
                    "portset",
                ])?;
                self.mkhost(&mut state, opts)
            }
            "rmhost" => {
                opts.allow(&["force"])?;
                let (_, host) = self.host(&mut state, required_object(object)?)?;
                let volumes: Vec<String> = self
                    .san()
                    .mappings(self.array())
                    .into_iter()
                    .filter(|m| m.group == host.name)
                    .map(|m| m.volume)
                    .collect();
                if !volumes.is_empty() {
                    if state.protection.active() {
                        return Err(CliError::protected(state.protection));
                    }
                    if !opts.flag("force") {
                        return Err(CliError::failed(
                            "CMMVC5871E The action failed because one or more of the configured \
                             volumes is mapped to the host.",
                        ));
                    }
                    for volume in volumes {
                        self.san()
                            .unmap(self.array(), &volume, &host.name)
                            .map_err(san_error)?;
                    }
                }
                self.san()
                    .delete_group(self.array(), &host.name)
                    .map_err(san_error)?;
                state.host_ids.remove(&host.name);
                Ok(Value::String(String::new()))
            }
            "lsvdiskhostmap" => {
                opts.allow(&[])?;
                let volume = self.vdisk(required_object(object)?)?;
                let mut rows = Vec::new();
                for mapping in self.san().mappings(self.array()) {
                    if mapping.volume != volume.name {
                        continue;
                    }
                    let host_id = self.host_id(&mut state, &mapping.group);
                    rows.push(map_row(
                        (vdisk_id(&volume).to_string(), volume.name.clone()),
                        &volume,
                        host_id,
                        &mapping.group,
                        mapping.lun_id,
                    ));
                }
                Ok(Value::Array(rows))
            }
            "lshostvdiskmap" => {
                opts.allow(&["filtervalue"])?;
                let hosts: Vec<(u32, InitiatorGroup)> = match object {
                    Some(object) => vec![self.host(&mut state, object)?],
                    None => self.hosts(&mut state),
                };
                let mut rows = Vec::new();
                for (host_id, host) in hosts {
                    for mapping in self.san().mappings(self.array()) {
                        if mapping.group != host.name {
                            continue;
                        }
                        let Some(volume) = self.san().volume(self.array(), &mapping.volume) else {
                            continue;
                        };
                        let mut row = map_row(
                            (host_id.to_string(), host.name.clone()),
                            &volume,
                            host_id,
                            &host.name,
                            mapping.lun_id,
                        );
                        if let Some(row) = row.as_object_mut() {
                            row.insert("vdisk_id".into(), vdisk_id(&volume).to_string().into());
                            row.insert("vdisk_name".into(), volume.name.clone().into());
                        }
                        rows.push(row);
                    }
                }
                filtered(rows, opts)
            }
            "mkvdiskhostmap" => {
                opts.allow(&["host", "scsi", "force", "iogrp", "allowmismatchedscsiids"])?;
                let volume = self.vdisk(required_object(object)?)?;
                let host = opts
                    .string("host")
                    .ok_or_else(|| CliError::bad("CMMVC5707E Required parameters are missing."))?;
                let (_, host) = self.host(&mut state, &host)?;
                let mappings = self.san().mappings(self.array());
                let others: Vec<&str> = mappings
                    .iter()
                    .filter(|m| m.volume == volume.name)
                    .map(|m| m.group.as_str())
                    .collect();
                if others.contains(&host.name.as_str()) {
                    return Err(CliError::conflict(
                        "CMMVC5878E The virtual disk (VDisk) is already mapped to this host.",
                    ));
                }
                if !others.is_empty() && !opts.flag("force") {
                    return Err(CliError::conflict(
                        "CMMVC6071E The VDisk-to-host mapping was not created because the VDisk \
                         is already mapped to a host.",
                    ));
                }
                let scsi =
                    match opts.string("scsi") {
                        Some(text) => Some(text.parse::<u32>().map_err(|_| {
                            CliError::bad("CMMVC5711E The -scsi value is not valid.")
                        })?),
                        None => None,
                    };
                let lun = self
                    .san()
                    .map_at(self.array(), &volume.name, &host.name, scsi)
                    .map_err(san_error)?;
                Ok(json!({
                    "id": lun.to_string(),
                    "message": format!("Virtual Disk to Host map, id [{lun}], successfully created"),
                }))
            }
            "rmvdiskhostmap" => {
                opts.allow(&["host"])?;
                let volume = self.vdisk(required_object(object)?)?;
                let host = opts
                    .string("host")
                    .ok_or_else(|| CliError::bad("CMMVC5707E Required parameters are missing."))?;
                let (_, host) = self.host(&mut state, &host)?;
                let mapped = self
                    .san()
                    .mappings(self.array())
                    .iter()
                    .any(|m| m.volume == volume.name && m.group == host.name);
                if !mapped {
                    return Err(CliError::missing());
                }
                if state.protection.active() {
                    return Err(CliError::protected(state.protection));
                }
                self.san()
                    .unmap(self.array(), &volume.name, &host.name)
                    .map_err(san_error)?;
                Ok(Value::String(String::new()))
            }
            "lsfcmap" => {
                opts.allow(&["filtervalue"])?;
                match object {
                    Some(object) => {
                        let id = self.fcmap_id(&state, object)?;
                        self.advance(&mut state, id);
                        match state.fcmaps.get(&id) {
                            Some(map) => Ok(self.fcmap_view(map)),
                            None => Err(CliError::missing()),
                        }
                    }
                    None => {
                        let ids: Vec<u32> = state.fcmaps.keys().copied().collect();
                        for id in ids {
                            self.advance(&mut state, id);
                        }
                        let views = state.fcmaps.values().map(|m| self.fcmap_view(m)).collect();
                        filtered(views, opts)
                    }
                }
            }
            "mkfcmap" => {
                opts.allow(&[
                    "source",
                    "target",
                    "name",
                    "copyrate",
                    "cleanrate",
                    "autodelete",
                    "grainsize",
                    "consistgrp",
                    "incremental",
                ])?;
                let missing = || CliError::bad("CMMVC5707E Required parameters are missing.");
                let source = self.vdisk(&opts.string("source").ok_or_else(missing)?)?;
                let target = self.vdisk(&opts.string("target").ok_or_else(missing)?)?;
                if source.size_bytes != target.size_bytes {
                    return Err(CliError::failed(
                        "CMMVC5924E The FlashCopy mapping was not created because the source and \
                         target virtual disks (VDisks) are different sizes.",
                    ));
                }
                if source.name == target.name {
                    return Err(CliError::failed(
                        "CMMVC5923E The FlashCopy mapping was not created because the source and \
                         target virtual disks (VDisks) are the same.",
                    ));
                }
                let id = state.next_fcmap_id;
                let name = opts.string("name").unwrap_or_else(|| format!("fcmap{id}"));
                if state.fcmaps.values().any(|m| m.name == name) {
                    return Err(CliError::conflict(
                        "CMMVC6035E The action failed as the object already exists.",
                    ));
                }
                let copy_rate = match opts.string("copyrate") {
                    Some(rate) => {
                        rate.parse::<u32>()
                            .ok()
                            .filter(|r| *r <= 150)
                            .ok_or_else(|| {
                                CliError::bad("CMMVC5711E The -copyrate value is not valid.")
                            })?
                    }
                    None => 50,
                };
                state.next_fcmap_id += 1;
                state.fcmaps.insert(
                    id,
                    FcMap {
                        id,
                        name,
                        source: source.name,
                        target: target.name,
                        status: FcStatus::IdleOrCopied,
                        progress: 0,
                        copy_rate,
                        autodelete: opts.flag("autodelete"),
                    },
                );
                Ok(json!({
                    "id": id.to_string(),
                    "message": format!("FlashCopy Mapping, id [{id}], successfully created"),
                }))
            }
            "prestartfcmap" => {
                opts.allow(&["restore"])?;
                let id = self.fcmap_id(&state, required_object(object)?)?;
                let map = state.fcmaps.get_mut(&id).ok_or_else(CliError::missing)?;
                if map.status == FcStatus::Copying {
                    return Err(CliError::failed(ALREADY_COPYING));
                }
                map.status = FcStatus::Prepared;
                Ok(Value::String(String::new()))
            }
            "startfcmap" => {
                opts.allow(&["prep", "restore", "force"])?;
                let id = self.fcmap_id(&state, required_object(object)?)?;
                let map = state.fcmaps.get_mut(&id).ok_or_else(CliError::missing)?;
                if map.status == FcStatus::Copying {
                    return Err(CliError::failed(ALREADY_COPYING));
                }
                if map.status != FcStatus::Prepared && !opts.flag("prep") {
                    return Err(CliError::failed(
                        "CMMVC5911E The FlashCopy mapping or consistency group was not started \
                         because it is not prepared.",
                    ));
                }
                let source = self.vdisk(&map.source)?;
                let target = self.vdisk(&map.target)?;
                super::overwrite_blocks(&source, &target).map_err(|e| {
                    CliError::failed(format!("CMMVC5999E The copy could not be made: {e}"))
                })?;
                map.status = FcStatus::Copying;
                map.progress = 0;
                Ok(Value::String(String::new()))
            }
            "stopfcmap" => {
                opts.allow(&["force", "split"])?;
                let id = self.fcmap_id(&state, required_object(object)?)?;
                let map = state.fcmaps.get_mut(&id).ok_or_else(CliError::missing)?;
                if map.status == FcStatus::Copying || map.status == FcStatus::Prepared {
                    map.status = FcStatus::Stopped;
                }
                Ok(Value::String(String::new()))
            }
            "rmfcmap" => {
                opts.allow(&["force"])?;
                let id = self.fcmap_id(&state, required_object(object)?)?;
                let copying = state
                    .fcmaps
                    .get(&id)
                    .is_some_and(|m| m.status == FcStatus::Copying);
                if copying && !opts.flag("force") {
                    return Err(CliError::failed(
                        "CMMVC5920E The FlashCopy mapping was not deleted because it is copying; \
                         stop it first or specify -force.",
                    ));
                }
                state.fcmaps.remove(&id);
                Ok(Value::String(String::new()))
            }
            "registerplugin" => {
                // Clients announce themselves after `auth` (IBM's Ansible collection does).
                opts.allow(&["name", "uniquekey", "version", "metadata"])?;
                Ok(Value::String(String::new()))
            }
            _ => Err(CliError {
                status: StatusCode::NOT_FOUND,
                message: format!("CMMVC5786E The command {command} is not known."),
            }),
        }
    }

    fn mkhost(&self, state: &mut ArrayState, opts: &Options) -> Result<Value, CliError> {
        let fc: Vec<String> = opts
            .string("fcwwpn")
            .map(|list| {
                list.split(':')
                    .filter(|p| !p.is_empty())
                    .map(str::to_ascii_uppercase)
                    .collect()
            })
            .unwrap_or_default();
        let iscsi: Vec<String> = opts
            .string("iscsiname")
            .map(|list| {
                list.split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if fc.is_empty() && iscsi.is_empty() {
            return Err(CliError::bad("CMMVC5707E Required parameters are missing."));
        }
        if let Some(bad) = fc
            .iter()
            .find(|w| w.len() != 16 || !w.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(CliError::failed(format!(
                "CMMVC5867E The action failed because the worldwide port name {bad} is already \
                 assigned or is not valid."
            )));
        }
        let protocol = opts.string("protocol").unwrap_or_else(|| "scsi".into());
        if ![
            "scsi", "fcscsi", "iscsi", "sas", "fcnvme", "rdmanvme", "tcpnvme",
        ]
        .contains(&protocol.as_str())
        {
            return Err(CliError::bad(
                "CMMVC5711E The -protocol value is not valid.",
            ));
        }
        let hosts = self.hosts(state);
        for port in fc.iter().chain(&iscsi) {
            let taken = hosts
                .iter()
                .any(|(_, h)| h.initiators.iter().any(|p| same_port(p, port)));
            if taken {
                return Err(CliError::failed(if is_iscsi_name(port) {
                    format!(
                        "CMMVC6581E The command has failed because the iSCSI name {port} is \
                         already assigned to another host."
                    )
                } else {
                    format!(
                        "CMMVC5867E The action failed because the worldwide port name {port} is \
                         already assigned or is not valid."
                    )
                }));
            }
        }
        let name = match opts.string("name") {
            Some(name) => name,
            None => format!("host{}", state.next_host_id),
        };
        if hosts.iter().any(|(_, h)| h.name == name) {
            return Err(CliError::conflict(
                "CMMVC6035E The action failed as the object already exists.",
            ));
        }
        self.san()
            .create_group(
                self.array(),
                GroupSpec {
                    name: name.clone(),
                    initiators: fc.into_iter().chain(iscsi).collect(),
                    protocol: Some(protocol),
                    os_type: Some(opts.string("type").unwrap_or_else(|| "generic".into())),
                },
            )
            .map_err(san_error)?;
        let id = self.host_id(state, &name);
        Ok(json!({
            "id": id.to_string(),
            "message": format!("Host, id [{id}], successfully created"),
        }))
    }
}

const ALREADY_COPYING: &str = "CMMVC5907E The FlashCopy mapping or consistency group was not \
                               started because the mapping or consistency group is already in \
                               the copying state.";

fn map_row(
    (id, name): (String, String),
    volume: &Volume,
    host_id: u32,
    host: &str,
    lun: u32,
) -> Value {
    json!({
        "id": id,
        "name": name,
        "SCSI_id": lun.to_string(),
        "host_id": host_id.to_string(),
        "host_name": host,
        "vdisk_UID": volume.serial,
        "IO_group_id": "0",
        "IO_group_name": "io_grp0",
        "mapping_type": "private",
        "host_cluster_id": "",
        "host_cluster_name": "",
        "protocol": "scsi",
    })
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn is_iscsi_name(port: &str) -> bool {
    let lower = port.to_ascii_lowercase();
    lower.starts_with("iqn.") || lower.starts_with("eui.")
}

fn same_port(a: &str, b: &str) -> bool {
    let bare = |s: &str| s.replace(':', "").to_ascii_lowercase();
    bare(a) == bare(b)
}

/// `capacity` as the CLI shows it: bytes with `-bytes`, else the largest unit with 2 decimals.
fn capacity(bytes: u64, exact: bool) -> String {
    if exact {
        return bytes.to_string();
    }
    let units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2}{}", units[unit])
}

/// Applies `filtervalue` (`attr=value[:attr=value]`, a trailing `*` matching any rest) to a
/// concise view.
fn filtered(rows: Vec<Value>, opts: &Options) -> Result<Value, CliError> {
    let Some(filter) = opts.string("filtervalue") else {
        return Ok(Value::Array(rows));
    };
    let mut terms = Vec::new();
    for term in filter.split(':') {
        let (attr, value) = term
            .split_once('=')
            .ok_or_else(|| CliError::bad("CMMVC5740E The filter flag is not valid."))?;
        terms.push((attr.to_owned(), value.to_owned()));
    }
    for (attr, _) in &terms {
        if rows.first().is_some_and(|r| r.get(attr).is_none()) {
            return Err(CliError::bad(format!(
                "CMMVC5741E The filter value {attr} is not valid."
            )));
        }
    }
    let matches = |row: &Value| {
        terms.iter().all(|(attr, value)| {
            let field = row.get(attr).and_then(Value::as_str).unwrap_or_default();
            match value.strip_suffix('*') {
                Some(prefix) => field.starts_with(prefix),
                None => field == value,
            }
        })
    };
    Ok(Value::Array(rows.into_iter().filter(matches).collect()))
}

fn required_object(object: Option<&str>) -> Result<&str, CliError> {
    object.ok_or_else(|| CliError::bad("CMMVC5707E Required parameters are missing."))
}

/// The CLI options of one command.
struct Options(Map<String, Value>);

impl Options {
    fn parse(body: &Bytes) -> Result<Options, CliError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Options(Map::new()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Options(
                map.into_iter().filter(|(_, v)| !v.is_null()).collect(),
            )),
            Ok(Value::Null) => Ok(Options(Map::new())),
            _ => Err(CliError::bad(
                "CMMVC5709E The request body is not a JSON object of command options.",
            )),
        }
    }

    fn allow(&self, known: &[&str]) -> Result<(), CliError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(unknown) => Err(CliError::bad(format!(
                "CMMVC5709E [-{unknown}] is not a supported parameter."
            ))),
            None => Ok(()),
        }
    }

    fn string(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn flag(&self, key: &str) -> bool {
        match self.0.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.is_empty() || s == "true" || s == "yes",
            _ => false,
        }
    }
}

/// A failed command: its HTTP status and CLI message.
#[derive(Debug)]
struct CliError {
    status: StatusCode,
    message: String,
}

impl CliError {
    fn failed(message: impl Into<String>) -> CliError {
        CliError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    fn conflict(message: impl Into<String>) -> CliError {
        CliError {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> CliError {
        CliError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn missing() -> CliError {
        CliError::failed(
            "CMMVC5753E The specified object does not exist or is not a suitable candidate.",
        )
    }

    fn protected(protection: Protection) -> CliError {
        CliError::failed(format!(
            "CMMVC8019E The command failed because volume protection is enabled and the volume \
             has received I/O within the last {} minutes.",
            protection.minutes
        ))
    }
}

impl IntoResponse for CliError {
    fn into_response(self) -> Response {
        (self.status, self.message).into_response()
    }
}

fn san_error(error: SanError) -> CliError {
    match error {
        SanError::UnknownVolume { .. } | SanError::UnknownGroup { .. } => CliError::missing(),
        SanError::LunIdInUse { .. } => CliError::failed(
            "CMMVC5879E The VDisk-to-host mapping was not created because a VDisk is already \
             mapped to this host with this SCSI LUN.",
        ),
        other => CliError::failed(format!("CMMVC5999E {other}")),
    }
}

async fn command(
    State(array): State<FlashSystem>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut parts: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if parts.first().is_some_and(|p| p == "v1") {
        parts.remove(0);
    }
    let Some(command) = parts.first().cloned() else {
        return CliError {
            status: StatusCode::NOT_FOUND,
            message: "no command".into(),
        }
        .into_response();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if command == "auth" {
        let admitted = header("x-auth-username") == Some(array.inner.username.as_str())
            && header("x-auth-password") == Some(array.inner.password.as_str());
        if !admitted {
            return (StatusCode::FORBIDDEN, "Authentication failed").into_response();
        }
        let token = format!(
            "lab-token-{}-{}",
            array.inner.array,
            array.inner.next_token.fetch_add(1, Ordering::Relaxed)
        );
        array.state().tokens.insert(token.clone());
        return axum::Json(json!({ "token": token })).into_response();
    }
    let known = header("x-auth-token").is_some_and(|t| array.state().tokens.contains(t));
    if !known {
        return (
            StatusCode::FORBIDDEN,
            "Forbidden: the token is not valid or has expired",
        )
            .into_response();
    }
    let options = match Options::parse(&body) {
        Ok(options) => options,
        Err(e) => return e.into_response(),
    };
    match array.run(&command, &parts[1..], &options) {
        Ok(Value::String(s)) if s.is_empty() => (StatusCode::OK, "").into_response(),
        Ok(value) => axum::Json(value).into_response(),
        Err(e) => e.into_response(),
    }
}
