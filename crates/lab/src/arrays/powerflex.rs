//! Dell PowerFlex REST gateway facade (`/api/...`, the 3.x gateway) over the lab SAN: one system whose
//! volumes are the SAN model's volumes and whose SDCs (the `scini` block clients on ESXi and Linux
//! hosts) are SAN groups holding the SDC's GUID, so a host sees a volume exactly while it is mapped
//! to that host's SDC.
//!
//! Written from Dell's "PowerFlex REST API Reference Guide" (3.x gateway) and the wire behaviour of
//! Dell's own client library PyPowerFlex:
//! - **Sessions.** `GET /api/login` with HTTP Basic user/password answers the token as a JSON
//!   string. Every later request carries HTTP Basic with the token as the password (the user part
//!   is not checked: goscaleio sends it empty, PyPowerFlex sends the user name). An unknown or
//!   expired token is 401. `GET /api/logout` ends the token's session.
//! - **Objects** live at `/api/types/<Type>/instances` (a JSON array, no paging: the 3.x API has
//!   none), `/api/instances/<Type>::<id>`, `/api/instances/<Type>::<id>/relationships/<Type>` and
//!   actions `POST /api/instances/<Type>::<id>/action/<action>` (answer `{}`) or
//!   `POST /api/types/<Type>/instances/action/<action>`.
//! - **Action bodies** spell booleans as strings (`"TRUE"`, `"true"`, `"True"` all accepted);
//!   unknown fields are 400.
//! - **Errors** answer `{"message", "httpStatusCode", "errorCode"}`: 400 malformed, 401 not
//!   logged in, 500 for a missing object or a request the system refuses (the gateway's habit).
//!   The `errorCode` values are the lab's own; only the HTTP status and body shape are the
//!   contract.
//! - **Rules** the client must respect: a volume is mapped to an SDC by `sdcId` or `guid`; mapping
//!   a volume that is already mapped to another SDC needs `allowMultipleMappings`; mapping twice to
//!   the same SDC or unmapping what is not mapped is refused; `removeMappedSdc` with `allSdcs`
//!   unmaps every SDC at once. A volume's `mappedSdcInfo` is `null` when it is mapped nowhere.
//!
//! Device names are `eui.` + system id + volume id (`san::ArrayVendor::PowerFlex`): the system id is
//! the first half of every volume serial of the array, the volume id the second half.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::BasicCredentials;
use crate::san::{San, SanError, Volume, stable_hash, stable_uuid};

/// Where the API lives on the gateway.
pub const BASE_PATH: &str = "/api";

/// The REST API version `GET /api/version` reports (a 3.x gateway: `/api/login` sessions).
pub const API_VERSION: &str = "3.6";

/// CSI driver name of Dell's PowerFlex driver: the `spec.csi.driver` of PVs on this system.
pub const CSI_DRIVER: &str = "csi-vxflexos.dellemc.com";

/// Prefix of the SAN group that stands for an SDC.
const SDC_GROUP_PREFIX: &str = "sdc-";

/// Every (method, path template) the facade serves, as Dell's REST reference spells them.
pub const OPERATIONS: &[(&str, &str)] = &[
    ("GET", "/api/login"),
    ("GET", "/api/logout"),
    ("GET", "/api/version"),
    ("GET", "/api/types/System/instances"),
    ("GET", "/api/types/Sdc/instances"),
    ("GET", "/api/types/Volume/instances"),
    ("POST", "/api/types/Volume/instances/action/queryIdByKey"),
    ("GET", "/api/instances/System::{id}"),
    ("GET", "/api/instances/System::{id}/relationships/Sdc"),
    ("GET", "/api/instances/Sdc::{id}"),
    ("GET", "/api/instances/Sdc::{id}/relationships/Volume"),
    ("GET", "/api/instances/Volume::{id}"),
    ("POST", "/api/instances/Volume::{id}/action/addMappedSdc"),
    ("POST", "/api/instances/Volume::{id}/action/removeMappedSdc"),
];

/// What Dell's CSI driver puts in the PV of a volume it provisioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsiVolume {
    pub volume: Volume,
    /// `spec.csi.driver`.
    pub driver: &'static str,
    /// `spec.csi.volumeHandle`: `<system id>-<volume id>`.
    pub volume_handle: String,
    /// `spec.csi.volumeAttributes`: `Name` (the array's volume name).
    pub volume_attributes: BTreeMap<String, String>,
}

/// The system id of `array`: the array part of its volume serials.
pub fn system_id(array: &str) -> String {
    format!("{:016x}", stable_hash(&[array]) & 0xffff_ffff)
}

/// The PowerFlex volume id of a SAN volume: the second half of its serial.
pub fn volume_id(volume: &Volume) -> String {
    volume.serial.get(16..).unwrap_or(&volume.serial).to_owned()
}

/// The SDC id the facade gives an SDC with this GUID (16 hex digits, stable across runs).
pub fn sdc_id(array: &str, guid: &str) -> String {
    format!(
        "{:016x}",
        stable_hash(&[array, "sdc", &guid.to_ascii_uppercase()])
    )
}

/// Creates a volume as Dell's CSI driver does for a PVC, with the PV fields that name it.
pub fn create_csi_volume(
    san: &San,
    array: &str,
    name: &str,
    size_bytes: u64,
) -> Result<CsiVolume, SanError> {
    let volume = san.create_volume(array, name, size_bytes)?;
    Ok(CsiVolume {
        volume_handle: format!("{}-{}", system_id(array), volume_id(&volume)),
        volume_attributes: BTreeMap::from([("Name".to_owned(), volume.name.clone())]),
        driver: CSI_DRIVER,
        volume,
    })
}

/// The rig's view of PowerFlex: CSI PowerFlex volumes and `POWERFLEX_SYSTEM_ID`.
pub struct PowerFlexFacade;

impl crate::rig::ArrayFacade for PowerFlexFacade {
    fn product(&self) -> &'static str {
        "powerflex"
    }

    fn create_csi_volume(
        &self,
        san: &San,
        array: &crate::lab::ArrayEndpoint,
        name: &str,
        size_bytes: u64,
    ) -> Result<crate::rig::TargetVolume, SanError> {
        let csi = create_csi_volume(san, &array.name, name, size_bytes)?;
        Ok(crate::rig::TargetVolume::new(
            name,
            csi.volume,
            csi.volume_handle,
            csi.volume_attributes.into_iter().collect(),
        ))
    }

    fn vendor_flags(
        &self,
        array: &crate::lab::ArrayEndpoint,
    ) -> Vec<(co_api::contract::flags::Flag, String)> {
        vec![(
            co_api::contract::flags::POWERFLEX_SYSTEM_ID,
            system_id(&array.name),
        )]
    }
}

/// The PowerFlex REST API of `array` in `san`, for `username`/`password`.
pub fn router(san: San, array: &str, username: &str, password: &str) -> Router {
    PowerFlex::new(san, array, username, password).router()
}

/// A PowerFlex system over the SAN, with handles the lab uses to register SDCs and expire sessions.
#[derive(Clone)]
pub struct PowerFlex {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PowerFlex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerFlex")
            .field("array", &self.inner.array)
            .finish_non_exhaustive()
    }
}

struct Inner {
    san: San,
    array: String,
    credentials: BasicCredentials,
    system_id: String,
    state: Mutex<FacadeState>,
}

#[derive(Default)]
struct FacadeState {
    /// Live session tokens.
    sessions: BTreeSet<String>,
    /// SDC id → the SDC.
    sdcs: BTreeMap<String, Sdc>,
    counter: u64,
}

#[derive(Debug, Clone)]
struct Sdc {
    name: String,
    guid: String,
    os_type: String,
    ip: String,
    /// `mdmConnectionState`: `Connected` unless a test disconnected the SDC.
    connection: String,
}

impl PowerFlex {
    pub fn new(san: San, array: &str, username: &str, password: &str) -> PowerFlex {
        PowerFlex {
            inner: Arc::new(Inner {
                san,
                array: array.to_owned(),
                credentials: BasicCredentials::new(username, password),
                system_id: system_id(array),
                state: Mutex::new(FacadeState::default()),
            }),
        }
    }

    /// The router serving `/api/...`.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/login", get(login))
            .route("/logout", get(logout))
            .route("/version", get(|| async { axum::Json(API_VERSION) }))
            .route("/types/{kind}/instances", get(list_type))
            .route("/types/{kind}/instances/action/{action}", post(type_action))
            .route("/instances/{object}", get(instance))
            .route("/instances/{object}/relationships/{related}", get(related))
            .route("/instances/{object}/action/{action}", post(instance_action))
            .fallback(|| async { ApiError::bad_request("Unknown resource path").into_response() })
            .layer(middleware::from_fn_with_state(
                self.inner.clone(),
                authenticate,
            ))
            .with_state(self.inner.clone());
        Router::new().nest(BASE_PATH, api)
    }

    /// The system's id (the `eui.` device prefix after `eui.`).
    pub fn system_id(&self) -> &str {
        &self.inner.system_id
    }

    /// Registers an SDC, as the `scini` driver of a host does when it connects to the system.
    /// Returns its id; registering the same GUID again returns the same id.
    pub fn register_sdc(&self, name: &str, guid: &str, os_type: &str) -> Result<String, SanError> {
        let id = sdc_id(&self.inner.array, guid);
        if self.inner.state().sdcs.contains_key(&id) {
            return Ok(id);
        }
        self.inner.san.ensure_group(
            &self.inner.array,
            &format!("{SDC_GROUP_PREFIX}{id}"),
            &[guid.to_owned()],
        )?;
        let ip = format!(
            "10.0.{}.{}",
            (stable_hash(&[guid]) >> 8) & 0xff,
            stable_hash(&[guid]) & 0xff
        );
        self.inner.state().sdcs.insert(
            id.clone(),
            Sdc {
                name: name.to_owned(),
                guid: guid.to_owned(),
                os_type: os_type.to_owned(),
                ip,
                connection: "Connected".into(),
            },
        );
        Ok(id)
    }

    /// Sets the `mdmConnectionState` the SDC with `guid` reports (`Disconnected`: its host lost
    /// the MDMs). Returns false when no SDC has that GUID.
    pub fn set_sdc_connection(&self, guid: &str, state: &str) -> bool {
        let mut facade = self.inner.state();
        let Some(sdc) = facade
            .sdcs
            .values_mut()
            .find(|s| s.guid.eq_ignore_ascii_case(guid))
        else {
            return false;
        };
        sdc.connection = state.to_owned();
        true
    }

    /// Creates a volume as Dell's CSI driver does for a PVC, with the PV fields that name it.
    pub fn create_csi_volume(&self, name: &str, size_bytes: u64) -> Result<CsiVolume, SanError> {
        create_csi_volume(&self.inner.san, &self.inner.array, name, size_bytes)
    }

    /// SDC ids `volume` (by name) is mapped to now.
    pub fn mapped_sdcs(&self, volume: &str) -> Vec<String> {
        self.inner
            .san
            .mappings(&self.inner.array)
            .into_iter()
            .filter(|m| m.volume == volume)
            .filter_map(|m| m.group.strip_prefix(SDC_GROUP_PREFIX).map(str::to_owned))
            .collect()
    }

    /// Ends every session, as a gateway restart or token expiry does.
    pub fn expire_sessions(&self) {
        self.inner.state().sessions.clear();
    }

    /// How many sessions are open (a client that logs out leaves none).
    pub fn open_sessions(&self) -> usize {
        self.inner.state().sessions.len()
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, FacadeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn sdc_record(&self, id: &str, sdc: &Sdc) -> Value {
        json!({
            "id": id,
            "name": sdc.name,
            "sdcGuid": sdc.guid,
            "sdcIp": sdc.ip,
            "osType": sdc.os_type,
            "systemId": self.system_id,
            "mdmConnectionState": sdc.connection,
            "sdcApproved": true,
            "links": [{"rel": "self", "href": format!("/api/instances/Sdc::{id}")}],
        })
    }

    /// The registered SDCs. An SDC whose SAN group no longer holds its GUID (a test removed the
    /// initiator to model a host whose SDC never registered) is not listed.
    fn sdc_records(&self) -> Vec<Value> {
        let state = self.state();
        state
            .sdcs
            .iter()
            .filter(|(id, sdc)| {
                self.san
                    .group(&self.array, &format!("{SDC_GROUP_PREFIX}{id}"))
                    .is_some_and(|g| {
                        g.initiators
                            .iter()
                            .any(|i| i.eq_ignore_ascii_case(&sdc.guid))
                    })
            })
            .map(|(id, sdc)| self.sdc_record(id, sdc))
            .collect()
    }

    fn volume_record(&self, volume: &Volume) -> Value {
        let id = volume_id(volume);
        let sdcs = self.state().sdcs.clone();
        let mapped: Vec<Value> = self
            .san
            .mappings(&self.array)
            .into_iter()
            .filter(|m| m.volume == volume.name)
            .filter_map(|m| {
                let sdc_id = m.group.strip_prefix(SDC_GROUP_PREFIX)?.to_owned();
                let sdc = sdcs.get(&sdc_id)?;
                Some(json!({
                    "sdcId": sdc_id,
                    "sdcIp": sdc.ip,
                    "sdcName": sdc.name,
                    "limitIops": 0,
                    "limitBwInMbps": 0,
                    "accessMode": "ReadWrite",
                    "isDirectBufferMapping": false,
                }))
            })
            .collect();
        json!({
            "id": id,
            "name": volume.name,
            "sizeInKb": volume.size_bytes / 1024,
            "volumeType": "ThinProvisioned",
            "storagePoolId": format!("{:016x}", stable_hash(&[&self.array, "pool"])),
            "vtreeId": format!("{:016x}", stable_hash(&[&self.array, "vtree", &id])),
            "ancestorVolumeId": null,
            "mappingToAllSdcsEnabled": false,
            "mappedSdcInfo": if mapped.is_empty() { Value::Null } else { Value::Array(mapped) },
            "links": [{"rel": "self", "href": format!("/api/instances/Volume::{id}")}],
        })
    }

    fn volume_by_id(&self, id: &str) -> Option<Volume> {
        self.san
            .volumes(&self.array)
            .into_iter()
            .find(|v| volume_id(v) == id)
    }

    fn system_record(&self) -> Value {
        json!({
            "id": self.system_id,
            "name": self.array,
            "systemVersionName": "DellEMC PowerFlex Version: R3_6.0.0",
            "mdmClusterState": "ClusteredNormal",
            "installId": stable_uuid(&[&self.array, "install"]),
            "links": [{"rel": "self", "href": format!("/api/instances/System::{}", self.system_id)}],
        })
    }
}

// ---- errors ----

/// A PowerFlex error response.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

/// `errorCode` values (the lab's own).
mod code {
    pub const GENERIC: u32 = 0;
    pub const BAD_REQUEST: u32 = 1;
    pub const NOT_FOUND: u32 = 79;
    pub const ALREADY_MAPPED: u32 = 81;
    pub const NOT_MAPPED: u32 = 82;
    pub const MULTIPLE_MAPPINGS: u32 = 83;
}

impl ApiError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code::BAD_REQUEST, message)
    }

    fn refused(code: u32, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, message)
    }

    fn not_found(what: &str) -> ApiError {
        ApiError::refused(code::NOT_FOUND, format!("Could not find the {what}"))
    }

    fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code::GENERIC, "Unauthorized")
    }
}

impl From<SanError> for ApiError {
    fn from(error: SanError) -> ApiError {
        ApiError::refused(code::GENERIC, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({
                "message": self.message,
                "httpStatusCode": self.status.as_u16(),
                "errorCode": self.code,
            })),
        )
            .into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

// ---- sessions ----

/// The password of a Basic `Authorization` header.
fn basic_password(headers: &HeaderMap) -> Option<String> {
    let encoded = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

async fn authenticate(State(inner): State<Arc<Inner>>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/login" {
        return next.run(request).await;
    }
    let known =
        basic_password(request.headers()).is_some_and(|t| inner.state().sessions.contains(&t));
    if !known {
        return ApiError::unauthorized().into_response();
    }
    next.run(request).await
}

async fn login(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> ApiResult {
    if !inner.credentials.admits(&headers) {
        return Err(ApiError::unauthorized());
    }
    let token = {
        let mut state = inner.state();
        state.counter += 1;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            .to_string();
        let token = STANDARD.encode(stable_uuid(&[
            &inner.array,
            "token",
            &state.counter.to_string(),
            &nanos,
        ]));
        state.sessions.insert(token.clone());
        token
    };
    Ok(axum::Json(token).into_response())
}

async fn logout(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> ApiResult {
    if let Some(token) = basic_password(&headers) {
        inner.state().sessions.remove(&token);
    }
    Ok(StatusCode::OK.into_response())
}

// ---- reads ----

/// `Volume::abc` → (`Volume`, `abc`).
fn object_ref(object: &str) -> Result<(&str, &str), ApiError> {
    object
        .split_once("::")
        .filter(|(_, id)| !id.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid object reference {object}: expected <Type>::<id>"
            ))
        })
}

async fn list_type(State(inner): State<Arc<Inner>>, Path(kind): Path<String>) -> ApiResult {
    let items = match kind.as_str() {
        "System" => vec![inner.system_record()],
        "Sdc" => inner.sdc_records(),
        "Volume" => inner
            .san
            .volumes(&inner.array)
            .iter()
            .map(|v| inner.volume_record(v))
            .collect(),
        other => return Err(ApiError::bad_request(format!("Unknown type {other}"))),
    };
    Ok(axum::Json(Value::Array(items)).into_response())
}

async fn instance(State(inner): State<Arc<Inner>>, Path(object): Path<String>) -> ApiResult {
    let (kind, id) = object_ref(&object)?;
    let record = match kind {
        "System" if id == inner.system_id => inner.system_record(),
        "System" => return Err(ApiError::not_found("system")),
        "Sdc" => {
            let sdc = inner.state().sdcs.get(id).cloned();
            let sdc = sdc.ok_or_else(|| ApiError::not_found("SDC"))?;
            inner.sdc_record(id, &sdc)
        }
        "Volume" => {
            let volume = inner
                .volume_by_id(id)
                .ok_or_else(|| ApiError::not_found("volume"))?;
            inner.volume_record(&volume)
        }
        other => return Err(ApiError::bad_request(format!("Unknown type {other}"))),
    };
    Ok(axum::Json(record).into_response())
}

async fn related(
    State(inner): State<Arc<Inner>>,
    Path((object, related)): Path<(String, String)>,
) -> ApiResult {
    let (kind, id) = object_ref(&object)?;
    let items = match (kind, related.as_str()) {
        ("System", "Sdc") if id == inner.system_id => inner.sdc_records(),
        ("System", _) if id != inner.system_id => return Err(ApiError::not_found("system")),
        ("Sdc", "Volume") => {
            if !inner.state().sdcs.contains_key(id) {
                return Err(ApiError::not_found("SDC"));
            }
            let group = format!("{SDC_GROUP_PREFIX}{id}");
            let names: BTreeSet<String> = inner
                .san
                .mappings(&inner.array)
                .into_iter()
                .filter(|m| m.group == group)
                .map(|m| m.volume)
                .collect();
            inner
                .san
                .volumes(&inner.array)
                .iter()
                .filter(|v| names.contains(&v.name))
                .map(|v| inner.volume_record(v))
                .collect()
        }
        (kind, related) => {
            return Err(ApiError::bad_request(format!(
                "Unknown relationship {related} of {kind}"
            )));
        }
    };
    Ok(axum::Json(Value::Array(items)).into_response())
}

// ---- actions ----

/// The JSON object body of an action, refusing fields the action does not know.
fn body_object(body: &Bytes, allowed: &[&str]) -> Result<Map<String, Value>, ApiError> {
    let text = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(text) else {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object",
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Unknown parameter {unknown}"
        )));
    }
    Ok(map)
}

/// A boolean as the gateway takes it: a string (`"TRUE"`, `"true"`, `"True"`) or a JSON bool.
fn flag(map: &Map<String, Value>, field: &str) -> Result<bool, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid value {other} for {field}: expected TRUE or FALSE"
        ))),
    }
}

fn text<'m>(map: &'m Map<String, Value>, field: &str) -> Option<&'m str> {
    map.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

async fn type_action(
    State(inner): State<Arc<Inner>>,
    Path((kind, action)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    if kind != "Volume" || action != "queryIdByKey" {
        return Err(ApiError::bad_request(format!(
            "Unknown action {action} of type {kind}"
        )));
    }
    let map = body_object(&body, &["name"])?;
    let name = text(&map, "name").ok_or_else(|| ApiError::bad_request("name is required"))?;
    let volume = inner
        .san
        .volume(&inner.array, name)
        .ok_or_else(|| ApiError::not_found("volume"))?;
    Ok(axum::Json(volume_id(&volume)).into_response())
}

async fn instance_action(
    State(inner): State<Arc<Inner>>,
    Path((object, action)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let (kind, id) = object_ref(&object)?;
    if kind != "Volume" {
        return Err(ApiError::bad_request(format!(
            "Unknown action {action} of type {kind}"
        )));
    }
    let volume = inner
        .volume_by_id(id)
        .ok_or_else(|| ApiError::not_found("volume"))?;
    match action.as_str() {
        "addMappedSdc" => {
            let map = body_object(
                &body,
                &[
                    "sdcId",
                    "guid",
                    "allowMultipleMappings",
                    "allowOnExtManagedVol",
                    "accessMode",
                    "volumeClass",
                ],
            )?;
            let sdc = inner.sdc_of(&map)?;
            let allow_multiple = flag(&map, "allowMultipleMappings")?;
            let current = mapped_groups(&inner, &volume.name);
            let group = format!("{SDC_GROUP_PREFIX}{sdc}");
            if current.contains(&group) {
                return Err(ApiError::refused(
                    code::ALREADY_MAPPED,
                    "The volume is already mapped to this SDC",
                ));
            }
            if !current.is_empty() && !allow_multiple {
                return Err(ApiError::refused(
                    code::MULTIPLE_MAPPINGS,
                    "The volume is already mapped to another SDC; set allowMultipleMappings to map it to more than one",
                ));
            }
            inner.san.map(&inner.array, &volume.name, &group)?;
        }
        "removeMappedSdc" => {
            let map = body_object(
                &body,
                &[
                    "sdcId",
                    "guid",
                    "allSdcs",
                    "skipApplianceValidation",
                    "allowOnExtManagedVol",
                    "volumeClass",
                ],
            )?;
            let current = mapped_groups(&inner, &volume.name);
            if flag(&map, "allSdcs")? {
                if text(&map, "sdcId").is_some() || text(&map, "guid").is_some() {
                    return Err(ApiError::bad_request("allSdcs excludes sdcId and guid"));
                }
                for group in current {
                    inner.san.unmap(&inner.array, &volume.name, &group)?;
                }
            } else {
                let group = format!("{SDC_GROUP_PREFIX}{}", inner.sdc_of(&map)?);
                if !current.contains(&group) {
                    return Err(ApiError::refused(
                        code::NOT_MAPPED,
                        "The volume is not mapped to this SDC",
                    ));
                }
                inner.san.unmap(&inner.array, &volume.name, &group)?;
            }
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "Unknown action {other} of type Volume"
            )));
        }
    }
    Ok(axum::Json(json!({})).into_response())
}

fn mapped_groups(inner: &Inner, volume: &str) -> Vec<String> {
    inner
        .san
        .mappings(&inner.array)
        .into_iter()
        .filter(|m| m.volume == volume && m.group.starts_with(SDC_GROUP_PREFIX))
        .map(|m| m.group)
        .collect()
}

impl Inner {
    /// The SDC an action names by `sdcId` or `guid` (exactly one).
    fn sdc_of(&self, map: &Map<String, Value>) -> Result<String, ApiError> {
        let state = self.state();
        match (text(map, "sdcId"), text(map, "guid")) {
            (Some(id), None) => state
                .sdcs
                .contains_key(id)
                .then(|| id.to_owned())
                .ok_or_else(|| ApiError::not_found("SDC")),
            (None, Some(guid)) => state
                .sdcs
                .iter()
                .find(|(_, sdc)| sdc.guid.eq_ignore_ascii_case(guid))
                .map(|(id, _)| id.clone())
                .ok_or_else(|| ApiError::not_found("SDC")),
            _ => Err(ApiError::bad_request(
                "Exactly one of sdcId and guid is required",
            )),
        }
    }
}
