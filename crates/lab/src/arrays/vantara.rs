//! Hitachi Vantara VSP facade: the Configuration Manager REST API as the array's embedded
//! management server answers it (`/ConfigurationManager/v1/objects/...`, no `storages/{id}`
//! segment) over the lab SAN. LDEVs are the SAN model's volumes, host groups (FC) and iSCSI
//! targets (iSCSI) on the array's ports are SAN groups, LU paths are SAN mappings.
//!
//! Written from Hitachi's public "Configuration Manager REST API Reference Guide":
//! - **Sessions.** `POST /objects/sessions` with HTTP Basic answers `{token, sessionId}`; later
//!   requests send `Authorization: Session <token>` (Basic is accepted on every request too);
//!   `DELETE /objects/sessions/{sessionId}` ends one. An unknown or ended session is 401. The
//!   array keeps a bounded number of sessions: one more login than [`MAX_SESSIONS`] is refused
//!   with 503, so a client that never ends its sessions locks everyone out.
//! - **Errors** answer `{"errorSource", "messageId", "message", "cause", "solution"}` with the
//!   HTTP status (400 malformed, 401 credentials, 404 missing object, 409 conflict). The
//!   `messageId` values are the lab's own in the array's `KART...` style; only the status and body
//!   shape are the contract.
//! - **Async jobs.** Creating or deleting an LU path answers 202 with a job
//!   (`{jobId, self, status, state, affectedResources, error}`); `GET /objects/jobs/{jobId}` reports
//!   `status` `InProgress` and then `Completed` with `state` `Succeeded` or `Failed` (and the
//!   `error` object). The change is made when the job completes, not when it is submitted. With
//!   the request header `Response-Job-Status: Completed` the array answers only once the job ended.
//! - **Objects.** `GET /objects/ldevs/{ldevId}` answers an undefined LDEV with 200 and
//!   `emulationType: "NOT DEFINED"` (not 404); an LDEV's `naaId` is its serial, upper case; its
//!   `ports[]` are its LU paths. Request bodies take numbers as JSON numbers. A port's host groups
//!   are numbered per port (`hostGroupId` = `<portId>,<hostGroupNumber>`), an LU path's id is
//!   `<portId>,<hostGroupNumber>,<lun>`. FC initiators are upper-case WWNs without colons.
//! - **Rules**: the array chooses the LUN; an LDEV already on a host group cannot get a second
//!   path there (the job fails); host groups are made by the storage administrator, never by the
//!   API user here.
//! - **Thin Image pairs** (`/objects/snapshots`, `/objects/snapshot-groups`), with clone pairs
//!   that copy over time and reach the S-VOL only at completion: see [`pairs`].

mod pairs;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

use super::BasicCredentials;
use crate::san::{GroupSpec, San, SanError, Volume};

/// Where the API lives on the management address.
pub const BASE_PATH: &str = "/ConfigurationManager";

/// The REST API version `GET /configuration/version` reports.
pub const API_VERSION: &str = "1.9.0";

/// Sessions the array keeps open at once; one more login is refused.
pub const MAX_SESSIONS: usize = 64;

/// Model the facade reports.
pub const MODEL: &str = "VSP E990";

/// Microcode version the facade reports.
pub const DKC_MICRO_VERSION: &str = "93-06-21-80/00";

/// Every (method, path template) the facade serves, under [`BASE_PATH`].
pub const OPERATIONS: &[(&str, &str)] = &[
    ("GET", "/configuration/version"),
    ("POST", "/v1/objects/sessions"),
    ("DELETE", "/v1/objects/sessions/{sessionId}"),
    ("GET", "/v1/objects/storages/instance"),
    ("GET", "/v1/objects/ldevs/{ldevId}"),
    ("GET", "/v1/objects/ports"),
    ("GET", "/v1/objects/host-groups"),
    ("GET", "/v1/objects/host-wwns"),
    ("GET", "/v1/objects/host-iscsis"),
    ("GET", "/v1/objects/luns"),
    ("POST", "/v1/objects/luns"),
    ("DELETE", "/v1/objects/luns/{lunId}"),
    ("GET", "/v1/objects/jobs/{jobId}"),
    ("GET", "/v1/objects/snapshots"),
    ("POST", "/v1/objects/snapshots"),
    ("GET", "/v1/objects/snapshots/{snapshotId}"),
    ("DELETE", "/v1/objects/snapshots/{snapshotId}"),
    (
        "POST",
        "/v1/objects/snapshots/{snapshotId}/actions/{action}/invoke",
    ),
    ("GET", "/v1/objects/snapshot-groups"),
    ("GET", "/v1/objects/snapshot-groups/{snapshotGroupName}"),
    ("DELETE", "/v1/objects/snapshot-groups/{snapshotGroupName}"),
];

pub use pairs::POOLS;

/// A port of the array: id and type (`FIBRE` or `ISCSI`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    pub id: &'static str,
    pub kind: &'static str,
}

/// The lab array's ports: two FC ports and one iSCSI port.
pub const PORTS: &[PortSpec] = &[
    PortSpec {
        id: "CL1-A",
        kind: "FIBRE",
    },
    PortSpec {
        id: "CL2-A",
        kind: "FIBRE",
    },
    PortSpec {
        id: "CL1-B",
        kind: "ISCSI",
    },
];

/// The LDEV id of a lab volume: the last four hex digits of its serial, as on the real array
/// (whose `naaId` ends in the LDEV number).
pub fn ldev_id(volume: &Volume) -> Option<u32> {
    let tail = volume.serial.get(volume.serial.len().checked_sub(4)?..)?;
    u32::from_str_radix(tail, 16).ok()
}

/// The array's serial number (six digits), derived from its name so that it is stable.
pub fn serial_number(array: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in array.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    400_000 + hash % 100_000
}

/// The `storageDeviceId` of the array (model code + serial), as Hitachi's CSI driver puts it in
/// volume handles.
pub fn storage_device_id(array: &str) -> String {
    format!("886000{:06}", serial_number(array))
}

/// The SAN group standing for host group `number` on `port`.
fn san_group(port: &str, number: u32) -> String {
    format!("{port}-hg{number}")
}

fn host_group_label(port: &str, number: u32) -> String {
    format!("{port},{number}")
}

/// iSCSI names (`iqn.`, `eui.`) go in iSCSI targets; everything else is a WWN.
fn is_iscsi_name(initiator: &str) -> bool {
    let lower = initiator.to_ascii_lowercase();
    lower.starts_with("iqn.") || lower.starts_with("eui.")
}

/// A host group (FC) or iSCSI target (iSCSI) on one port, as the storage administrator made it.
#[derive(Debug, Clone)]
struct HostGroup {
    port: String,
    number: u32,
    name: String,
    /// The SAN group standing for it.
    san_name: String,
}

#[derive(Debug, Clone)]
enum JobAction {
    Map {
        ldev: u32,
        port: String,
        number: u32,
    },
    Unmap {
        port: String,
        number: u32,
        lun: u32,
    },
    Pair(pairs::PairJob),
}

#[derive(Debug, Clone)]
enum JobState {
    Pending(JobAction),
    Succeeded(Vec<String>),
    Failed(Value),
}

struct Job {
    id: u64,
    state: JobState,
    /// Whether the job has been looked at since it was submitted.
    looked: bool,
}

#[derive(Default)]
struct Model {
    groups: Vec<HostGroup>,
    sessions: BTreeMap<u64, String>,
    jobs: BTreeMap<u64, Job>,
    /// Thin Image pairs by (P-VOL LDEV, MU number).
    pairs: BTreeMap<(u32, u32), pairs::Pair>,
}

struct Inner {
    san: San,
    array: String,
    credentials: BasicCredentials,
    next_id: AtomicU64,
    model: Mutex<Model>,
}

impl Inner {
    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The host groups, after adopting SAN groups of this array made outside the facade (the
    /// lab's datastore group of the ESXi hosts, a worker node's group): each becomes a host group
    /// on the first iSCSI port when it holds IQNs, else on the first FC port, named like the group.
    fn groups(&self) -> Vec<HostGroup> {
        let san_groups = self.san.groups(&self.array);
        let mut model = self.model();
        for group in san_groups {
            if model.groups.iter().any(|g| g.san_name == group.name) {
                continue;
            }
            let kind = if group.initiators.iter().any(|i| is_iscsi_name(i)) {
                "ISCSI"
            } else {
                "FIBRE"
            };
            let Some(port) = PORTS.iter().find(|p| p.kind == kind) else {
                continue;
            };
            let number = (1..)
                .find(|n| {
                    !model
                        .groups
                        .iter()
                        .any(|g| g.port == port.id && g.number == *n)
                })
                .unwrap_or(1);
            model.groups.push(HostGroup {
                port: port.id.to_owned(),
                number,
                name: group.name.clone(),
                san_name: group.name,
            });
        }
        model.groups.clone()
    }

    fn volume(&self, ldev: u32) -> Option<Volume> {
        self.san
            .volumes(&self.array)
            .into_iter()
            .find(|v| ldev_id(v) == Some(ldev))
    }
}

/// A VSP array over the SAN, with handles the lab uses to set up host groups and inject faults.
#[derive(Clone)]
pub struct Vantara {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Vantara {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vantara")
            .field("array", &self.inner.array)
            .finish_non_exhaustive()
    }
}

impl Vantara {
    pub fn new(san: San, array: &str, username: &str, password: &str) -> Vantara {
        Vantara {
            inner: Arc::new(Inner {
                san,
                array: array.to_owned(),
                credentials: BasicCredentials::new(username, password),
                next_id: AtomicU64::new(1),
                model: Mutex::new(Model::default()),
            }),
        }
    }

    /// Adds host group `number` named `name` on `port` holding `initiators` (WWNs for FC ports,
    /// IQNs for iSCSI ports), as the storage administrator does before copy-offload runs.
    pub fn add_host_group(
        &self,
        port: &str,
        number: u32,
        name: &str,
        initiators: &[String],
    ) -> Result<(), SanError> {
        let san_name = san_group(port, number);
        // Known before the SAN group exists, so it is never adopted under another number.
        self.inner.model().groups.push(HostGroup {
            port: port.to_owned(),
            number,
            name: name.to_owned(),
            san_name: san_name.clone(),
        });
        let created = self.inner.san.create_group(
            &self.inner.array,
            GroupSpec {
                name: san_name.clone(),
                initiators: initiators.to_vec(),
                protocol: None,
                os_type: Some("VMWARE_EX".into()),
            },
        );
        if let Err(e) = created {
            self.inner.model().groups.retain(|g| g.san_name != san_name);
            return Err(e);
        }
        Ok(())
    }

    /// Maps `ldev` to host group `number` on `port` directly (a mapping made outside copy-offload,
    /// e.g. the worker node's); answers the LUN.
    pub fn add_lu_path(&self, ldev: u32, port: &str, number: u32) -> Result<u32, SanError> {
        let volume = self
            .inner
            .volume(ldev)
            .ok_or_else(|| SanError::UnknownVolume {
                array: self.inner.array.clone(),
                volume: format!("LDEV {ldev}"),
            })?;
        let group = self
            .inner
            .groups()
            .into_iter()
            .find(|g| g.port == port && g.number == number)
            .ok_or_else(|| SanError::UnknownGroup {
                array: self.inner.array.clone(),
                group: host_group_label(port, number),
            })?;
        self.inner
            .san
            .map(&self.inner.array, &volume.name, &group.san_name)
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        self.inner.model().sessions.len()
    }

    /// The Thin Image pairs on the array now, as `(pvol, mu, svol, status)`.
    pub fn pairs(&self) -> Vec<(u32, u32, u32, &'static str)> {
        pairs::summary(&self.inner)
    }

    /// Ends every session, as an array restart or a session timeout does: the next request that
    /// carries one answers 401.
    pub fn expire_sessions(&self) {
        self.inner.model().sessions.clear();
    }

    /// The Configuration Manager REST API, rooted at `/`.
    pub fn router(&self) -> Router {
        let objects = Router::new()
            .route("/sessions", post(login))
            .route("/sessions/{session_id}", delete(logout))
            .route("/storages/instance", get(storage))
            .route("/ldevs/{ldev_id}", get(ldev))
            .route("/ports", get(ports))
            .route("/host-groups", get(host_groups))
            .route("/host-wwns", get(host_wwns))
            .route("/host-iscsis", get(host_iscsis))
            .route("/luns", get(luns).post(create_lun))
            .route("/luns/{lun_id}", delete(delete_lun))
            .route("/jobs/{job_id}", get(job))
            .route("/snapshots", get(pairs::list).post(pairs::create))
            .route(
                "/snapshots/{snapshot_id}",
                get(pairs::one).delete(pairs::delete_one),
            )
            .route(
                "/snapshots/{snapshot_id}/actions/{action}/invoke",
                post(pairs::action),
            )
            .route("/snapshot-groups", get(pairs::groups))
            .route(
                "/snapshot-groups/{name}",
                get(pairs::group).delete(pairs::delete_group),
            )
            .fallback(|| async { ApiError::not_found("the resource path").into_response() })
            .layer(middleware::from_fn_with_state(
                self.inner.clone(),
                authenticate,
            ))
            .with_state(self.inner.clone());
        Router::new()
            .route(&format!("{BASE_PATH}/configuration/version"), get(version))
            .nest(&format!("{BASE_PATH}/v1/objects"), objects)
    }
}

/// The Configuration Manager REST API of `array` in `san`, for `username`/`password`.
pub fn router(san: San, array: &str, username: &str, password: &str) -> Router {
    Vantara::new(san, array, username, password).router()
}

/// An error answer in the array's shape.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message_id: &'static str,
    message: String,
    solution: &'static str,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message_id: "KART40038-E",
            message: message.into(),
            solution: "Correct the request and try again.",
        }
    }

    fn not_found(what: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message_id: "KART30000-E",
            message: format!("The specified {what} does not exist."),
            solution: "Specify an existing object.",
        }
    }

    fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message_id: "KART30005-E",
            message: "Authentication failed: the user name, password or session token is invalid."
                .into(),
            solution: "Log in again with valid credentials.",
        }
    }

    fn body(&self, source: &str) -> Value {
        json!({
            "errorSource": source,
            "messageId": self.message_id,
            "message": format!("{} {}", self.message_id, self.message),
            "cause": self.message,
            "solution": self.solution,
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body("");
        (self.status, axum::Json(body)).into_response()
    }
}

fn ok(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

async fn version() -> Response {
    ok(json!({
        "productName": "Configuration Manager REST",
        "productVersion": "10.9.0-00",
        "apiVersion": API_VERSION,
        "description": "Configuration Manager REST API (lab)",
    }))
}

/// Admits Basic credentials on every request, and session tokens everywhere but on login.
async fn authenticate(State(inner): State<Arc<Inner>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let session = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Session "))
        .map(str::to_owned);
    let is_login = request.method() == axum::http::Method::POST
        && request.uri().path().trim_end_matches('/') == "/sessions";
    let admitted = if inner.credentials.admits(headers) {
        true
    } else if let (Some(token), false) = (session, is_login) {
        inner.model().sessions.values().any(|t| *t == token)
    } else {
        false
    };
    if !admitted {
        let source = request.uri().path().to_owned();
        let error = ApiError::unauthorized();
        return (error.status, axum::Json(error.body(&source))).into_response();
    }
    next.run(request).await
}

async fn login(State(inner): State<Arc<Inner>>) -> Response {
    let mut model = inner.model();
    if model.sessions.len() >= MAX_SESSIONS {
        return ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message_id: "KART30074-E",
            message: format!("The number of sessions has reached the maximum ({MAX_SESSIONS})."),
            solution: "Discard sessions that are no longer used, then try again.",
        }
        .into_response();
    }
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let token = format!("{:016x}{:016x}", id.wrapping_mul(0x9e37_79b9_7f4a_7c15), id);
    model.sessions.insert(id, token.clone());
    ok(json!({"token": token, "sessionId": id}))
}

async fn logout(State(inner): State<Arc<Inner>>, Path(session_id): Path<String>) -> Response {
    let Ok(id) = session_id.parse::<u64>() else {
        return ApiError::bad_request(format!("{session_id:?} is not a session id"))
            .into_response();
    };
    if inner.model().sessions.remove(&id).is_none() {
        return ApiError::not_found("session").into_response();
    }
    ok(json!({"affectedResources": [format!("{BASE_PATH}/v1/objects/sessions/{id}")]}))
}

async fn storage(State(inner): State<Arc<Inner>>) -> Response {
    ok(json!({
        "storageDeviceId": storage_device_id(&inner.array),
        "model": MODEL,
        "serialNumber": serial_number(&inner.array),
        "dkcMicroVersion": DKC_MICRO_VERSION,
        "ctl1Ip": "127.0.0.1",
    }))
}

/// The LU paths of `volume` as `ports[]` entries.
fn lu_paths(inner: &Inner, groups: &[HostGroup], volume: &str) -> Vec<Value> {
    inner
        .san
        .mappings(&inner.array)
        .into_iter()
        .filter(|m| m.volume == volume)
        .filter_map(|m| {
            let group = groups.iter().find(|g| g.san_name == m.group)?;
            Some(json!({
                "portId": group.port,
                "hostGroupNumber": group.number,
                "hostGroupName": group.name,
                "lun": m.lun_id,
            }))
        })
        .collect()
}

async fn ldev(State(inner): State<Arc<Inner>>, Path(ldev_text): Path<String>) -> Response {
    let Ok(id) = ldev_text.parse::<u32>() else {
        return ApiError::bad_request(format!("{ldev_text:?} is not an LDEV number"))
            .into_response();
    };
    let Some(volume) = inner.volume(id) else {
        return ok(json!({
            "ldevId": id,
            "emulationType": "NOT DEFINED",
            "ssid": "0004",
            "resourceGroupId": 0,
        }));
    };
    let groups = inner.groups();
    let ports = lu_paths(&inner, &groups, &volume.name);
    let blocks = volume.size_bytes / 512;
    ok(json!({
        "ldevId": id,
        "clprId": 0,
        "emulationType": "OPEN-V-CVS",
        "byteFormatCapacity": format!("{:.2} G", volume.size_bytes as f64 / (1u64 << 30) as f64),
        "blockCapacity": blocks,
        "numOfPorts": ports.len(),
        "ports": ports,
        "attributes": ["CVS", "HDP"],
        "label": volume.name,
        "status": "NML",
        "poolId": 0,
        "naaId": volume.serial,
        "dataReductionMode": "disabled",
    }))
}

async fn ports(State(inner): State<Arc<Inner>>) -> Response {
    let serial = serial_number(&inner.array);
    let data: Vec<Value> = PORTS
        .iter()
        .enumerate()
        .map(|(index, port)| {
            let mut entry = json!({
                "portId": port.id,
                "portType": port.kind,
                "portAttributes": ["TAR", "MCU", "RCU", "ELUN"],
                "portSpeed": "AUT",
                "loopId": "EF",
                "fabricMode": true,
                "lunSecuritySetting": true,
            });
            if port.kind == "FIBRE" {
                entry["wwn"] = json!(format!("50060e80{serial:06x}{index:02x}"));
            } else {
                entry["ipv4Address"] = json!("127.0.0.1");
                entry["tcpPort"] = json!(3260);
            }
            entry
        })
        .collect();
    ok(json!({"data": data}))
}

/// The `portId` (required) and `hostGroupNumber` (optional) of a per-port listing.
fn port_filter(query: &BTreeMap<String, String>) -> Result<(String, Option<u32>), ApiError> {
    let port = query
        .get("portId")
        .ok_or_else(|| ApiError::bad_request("The query parameter portId is required."))?;
    if !PORTS.iter().any(|p| p.id == port) {
        return Err(ApiError::not_found("port"));
    }
    let number = match query.get("hostGroupNumber") {
        None => None,
        Some(text) => Some(text.parse::<u32>().map_err(|_| {
            ApiError::bad_request(format!("hostGroupNumber {text:?} is not a number"))
        })?),
    };
    Ok((port.clone(), number))
}

fn port_kind(port: &str) -> &'static str {
    PORTS
        .iter()
        .find(|p| p.id == port)
        .map_or("FIBRE", |p| p.kind)
}

fn listed_groups(
    inner: &Inner,
    query: &BTreeMap<String, String>,
) -> Result<Vec<HostGroup>, ApiError> {
    let (port, number) = port_filter(query)?;
    Ok(inner
        .groups()
        .into_iter()
        .filter(|g| g.port == port && number.is_none_or(|n| n == g.number))
        .collect())
}

async fn host_groups(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let data: Vec<Value> = listed_groups(&inner, &query)?
        .into_iter()
        .map(|g| {
            // The SAN group's personality is the host mode (an administrator's group for another OS).
            let host_mode = inner
                .san
                .group(&inner.array, &g.san_name)
                .and_then(|s| s.os_type)
                .unwrap_or_else(|| "VMWARE_EX".into());
            json!({
                "hostGroupId": format!("{},{}", g.port, g.number),
                "portId": g.port,
                "hostGroupNumber": g.number,
                "hostGroupName": g.name,
                "hostMode": host_mode,
                "hostModeOptions": [54, 63],
            })
        })
        .collect();
    Ok(ok(json!({"data": data})))
}

/// The initiators of the listed groups, for `host-wwns` (FC ports) or `host-iscsis` (iSCSI).
fn initiators(
    inner: &Inner,
    query: &BTreeMap<String, String>,
    kind: &'static str,
) -> Result<Response, ApiError> {
    let groups = listed_groups(inner, query)?;
    let mut data = Vec::new();
    for group in groups.iter().filter(|g| port_kind(&g.port) == kind) {
        let Some(san) = inner.san.group(&inner.array, &group.san_name) else {
            continue;
        };
        let on_port = san
            .initiators
            .into_iter()
            .filter(|i| is_iscsi_name(i) == (kind == "ISCSI"));
        for initiator in on_port {
            data.push(if kind == "FIBRE" {
                let wwn = initiator.replace(':', "").to_ascii_lowercase();
                json!({
                    "hostWwnId": format!("{},{},{wwn}", group.port, group.number),
                    "portId": group.port,
                    "hostGroupNumber": group.number,
                    "hostGroupName": group.name,
                    "hostWwn": wwn,
                    "wwnNickname": "-",
                })
            } else {
                json!({
                    "hostIscsiId": format!("{},{},{initiator}", group.port, group.number),
                    "portId": group.port,
                    "hostGroupNumber": group.number,
                    "hostGroupName": group.name,
                    "iscsiName": initiator,
                    "iscsiNickname": "-",
                })
            });
        }
    }
    Ok(ok(json!({"data": data})))
}

async fn host_wwns(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    initiators(&inner, &query, "FIBRE")
}

async fn host_iscsis(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    initiators(&inner, &query, "ISCSI")
}

async fn luns(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let groups = listed_groups(&inner, &query)?;
    let volumes = inner.san.volumes(&inner.array);
    let data: Vec<Value> = inner
        .san
        .mappings(&inner.array)
        .into_iter()
        .filter_map(|m| {
            let group = groups
                .iter()
                .find(|g| g.san_name == m.group)?;
            let ldev = volumes
                .iter()
                .find(|v| v.name == m.volume)
                .and_then(ldev_id)?;
            Some(json!({
                "lunId": format!("{},{},{}", group.port, group.number, m.lun_id),
                "portId": group.port,
                "hostGroupNumber": group.number,
                "hostMode": "VMWARE_EX",
                "lun": m.lun_id,
                "ldevId": ldev,
                "isCommandDevice": false,
                "luHostReserve": {"openSystem": false, "persistent": false, "pgrKey": false, "mainframe": false, "acaReserve": false},
                "hostModeOptions": [54, 63],
            }))
        })
        .collect();
    Ok(ok(json!({"data": data})))
}

fn number_field(body: &Value, field: &str) -> Result<u32, ApiError> {
    match body.get(field) {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| ApiError::bad_request(format!("{field} must be a positive integer"))),
        Some(other) => Err(ApiError::bad_request(format!(
            "The value of {field} is invalid ({other}): a number is required."
        ))),
        None => Err(ApiError::bad_request(format!(
            "The request body lacks the required field {field}."
        ))),
    }
}

async fn create_lun(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("The request body is not JSON: {e}")))?;
    let Some(fields) = body.as_object() else {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        ));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "ldevId" | "portId" | "hostGroupNumber" | "lun"))
    {
        return Err(ApiError::bad_request(format!(
            "The request body has an unknown field {unknown}."
        )));
    }
    let ldev = number_field(&body, "ldevId")?;
    let number = number_field(&body, "hostGroupNumber")?;
    let port = match body.get("portId") {
        Some(Value::String(port)) => port.clone(),
        _ => return Err(ApiError::bad_request("portId must be a port id string.")),
    };
    Ok(submit(
        &inner,
        &headers,
        JobAction::Map { ldev, port, number },
    ))
}

async fn delete_lun(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(lun_id): Path<String>,
) -> Result<Response, ApiError> {
    let parts: Vec<&str> = lun_id.split(',').collect();
    let [port, number, lun] = parts.as_slice() else {
        return Err(ApiError::bad_request(format!(
            "{lun_id:?} is not an LU path id (<portId>,<hostGroupNumber>,<lun>)"
        )));
    };
    let (Ok(number), Ok(lun)) = (number.parse::<u32>(), lun.parse::<u32>()) else {
        return Err(ApiError::bad_request(format!(
            "{lun_id:?} is not an LU path id"
        )));
    };
    let Some(group) = inner
        .groups()
        .into_iter()
        .find(|g| g.port == *port && g.number == number)
        .map(|g| g.san_name)
    else {
        return Err(ApiError::not_found("LU path"));
    };
    if !inner
        .san
        .mappings(&inner.array)
        .iter()
        .any(|m| m.group == group && m.lun_id == lun)
    {
        return Err(ApiError::not_found("LU path"));
    }
    Ok(submit(
        &inner,
        &headers,
        JobAction::Unmap {
            port: (*port).to_owned(),
            number,
            lun,
        },
    ))
}

/// Queues `action` as a job: 202 with the job, finished first when the client asked to wait.
fn submit(inner: &Inner, headers: &HeaderMap, action: JobAction) -> Response {
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let wait = headers
        .get("Response-Job-Status")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("Completed"));
    let state = if wait {
        run(inner, &action)
    } else {
        JobState::Pending(action)
    };
    let job = Job {
        id,
        state,
        looked: false,
    };
    let body = job_body(&job);
    inner.model().jobs.insert(id, job);
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}

/// A failed job of `resource`, with the error in the array's body shape.
fn failed_job(resource: &str, message_id: &str, message: String, solution: &str) -> JobState {
    JobState::Failed(json!({
        "errorSource": format!("{BASE_PATH}/v1/objects/{resource}"),
        "messageId": message_id,
        "message": format!("{message_id} {message}"),
        "cause": message,
        "solution": solution,
    }))
}

/// Performs a pending job's change; answers its final state.
fn run(inner: &Inner, action: &JobAction) -> JobState {
    let groups = inner.groups();
    let san_name = |port: &str, number: u32| {
        groups
            .iter()
            .find(|g| g.port == port && g.number == number)
            .map(|g| g.san_name.clone())
    };
    let failed = |message_id: &str, message: String| {
        failed_job(
            "luns",
            message_id,
            message,
            "Correct the request and try again.",
        )
    };
    match action {
        JobAction::Pair(job) => pairs::run(inner, job),
        JobAction::Map { ldev, port, number } => {
            let Some(group) = san_name(port, *number) else {
                return failed(
                    "KART40052-E",
                    format!("Host group {port},{number} does not exist."),
                );
            };
            let Some(volume) = inner.volume(*ldev) else {
                return failed("KART40051-E", format!("LDEV {ldev} is not defined."));
            };
            match inner.san.map(&inner.array, &volume.name, &group) {
                Ok(lun) => JobState::Succeeded(vec![format!(
                    "{BASE_PATH}/v1/objects/luns/{port},{number},{lun}"
                )]),
                Err(SanError::AlreadyMapped { lun_id, .. }) => failed(
                    "KART40055-E",
                    format!(
                        "An LU path of LDEV {ldev} is already defined on {port},{number} as LUN {lun_id}."
                    ),
                ),
                Err(e) => failed("KART40000-E", e.to_string()),
            }
        }
        JobAction::Unmap { port, number, lun } => {
            let group = san_name(port, *number).unwrap_or_default();
            let Some(mapping) = inner
                .san
                .mappings(&inner.array)
                .into_iter()
                .find(|m| m.group == group && m.lun_id == *lun)
            else {
                return failed(
                    "KART30000-E",
                    format!("LU path {port},{number},{lun} does not exist."),
                );
            };
            match inner.san.unmap(&inner.array, &mapping.volume, &group) {
                Ok(()) => JobState::Succeeded(vec![format!(
                    "{BASE_PATH}/v1/objects/luns/{port},{number},{lun}"
                )]),
                Err(e) => failed("KART40000-E", e.to_string()),
            }
        }
    }
}

fn job_body(job: &Job) -> Value {
    let (status, state, resources, error) = match &job.state {
        JobState::Pending(_) => ("InProgress", "Started", Vec::new(), Value::Null),
        JobState::Succeeded(resources) => {
            ("Completed", "Succeeded", resources.clone(), Value::Null)
        }
        JobState::Failed(error) => ("Completed", "Failed", Vec::new(), error.clone()),
    };
    let mut body = json!({
        "jobId": job.id,
        "self": format!("{BASE_PATH}/v1/objects/jobs/{}", job.id),
        "userId": "",
        "status": status,
        "state": state,
        "createdTime": "2026-01-01T00:00:00Z",
        "updatedTime": "2026-01-01T00:00:00Z",
        "affectedResources": resources,
    });
    if !error.is_null() {
        body["error"] = error;
    }
    body
}

/// A job is in progress at its first look and done at the next, so a client must poll it.
async fn job(State(inner): State<Arc<Inner>>, Path(job_text): Path<String>) -> Response {
    let Ok(id) = job_text.parse::<u64>() else {
        return ApiError::bad_request(format!("{job_text:?} is not a job id")).into_response();
    };
    let due = {
        let mut model = inner.model();
        let Some(job) = model.jobs.get_mut(&id) else {
            return ApiError::not_found("job").into_response();
        };
        match &job.state {
            JobState::Pending(action) if job.looked => Some(action.clone()),
            JobState::Pending(_) => {
                job.looked = true;
                return ok(job_body(job));
            }
            _ => None,
        }
    };
    let finished = due.map(|action| run(&inner, &action));
    let mut model = inner.model();
    let Some(job) = model.jobs.get_mut(&id) else {
        return ApiError::not_found("job").into_response();
    };
    if let Some(state) = finished {
        job.state = state;
    }
    ok(job_body(job))
}

/// Vantara in the lab rig: Hitachi's CSI driver (HSPC) puts
/// `01--<protocol>--<storageDeviceId>--<ldevId>--<nickname>` in the PV's `volumeHandle`.
pub struct VantaraFacade;

/// The host group the lab makes for the ESXi host (FC port `CL1-A`, number 1).
pub const LAB_ESXI_HOST_GROUP: (&str, u32) = ("CL1-A", 1);

impl crate::rig::ArrayFacade for VantaraFacade {
    fn product(&self) -> &'static str {
        "vantara"
    }

    fn create_csi_volume(
        &self,
        san: &San,
        array: &crate::lab::ArrayEndpoint,
        name: &str,
        size_bytes: u64,
    ) -> Result<crate::rig::TargetVolume, SanError> {
        let volume = san.create_volume(&array.name, name, size_bytes)?;
        let ldev = ldev_id(&volume).unwrap_or_default();
        Ok(crate::rig::TargetVolume {
            pvc: name.to_owned(),
            array: array.name.clone(),
            volume_handle: format!(
                "01--fc--{}--{ldev}--{}",
                storage_device_id(&array.name),
                volume.name
            ),
            attributes: Vec::new(),
            name: volume.name,
            naa: volume.naa,
            backing_path: volume.backing_path,
            size_bytes,
        })
    }

    /// `STORAGE_PORT` is the port of the array's URL (which is also `STORAGE_HOSTNAME`).
    fn vendor_flags(
        &self,
        array: &crate::lab::ArrayEndpoint,
    ) -> Vec<(co_api::contract::flags::Flag, String)> {
        let port = array
            .url
            .rsplit(':')
            .next()
            .map(|p| p.trim_end_matches('/').to_owned())
            .unwrap_or_default();
        vec![(co_api::contract::flags::VANTARA_STORAGE_PORT, port)]
    }
}
