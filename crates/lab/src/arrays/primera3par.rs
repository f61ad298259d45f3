//! HPE Primera / 3PAR Web Services API facade (`/api/v1/...`) over the lab SAN: one array whose
//! volumes, hosts, host sets and VLUNs are the SAN model's volumes, groups and mappings.
//!
//! Written from HPE's "WSAPI Developer Guide" (Primera / 3PAR OS) and the wire behaviour of HPE's
//! own client library (`python-3parclient`, `hpe3parclient`):
//! - **Sessions.** `POST /api/v1/credentials` with `{user, password}` answers 201 `{"key"}`; every
//!   later request carries it in `X-HP3PAR-WSAPI-SessionKey`. A missing, unknown or expired key is
//!   401 (`code` 6); wrong credentials at login are 403 (`code` 5). `DELETE /api/v1/credentials/{key}`
//!   ends the session. `GET /api` (no session) answers the WSAPI version and `build`.
//! - **Collections** answer `{"total", "members": [...]}`; `?query="<expr>"` filters with the WSAPI
//!   query language (`name EQ x`, `wwn EQ x`, `volumeName EQ x`, `FCPaths[wwn EQ x OR wwn EQ y]`,
//!   `iSCSIPaths[name EQ x]`, terms joined with `OR`; `==` is accepted as `EQ`). An unknown field
//!   in a query or a body is 400.
//! - **Errors** answer `{"code": <int>, "desc": "<text>"}`: 400 invalid input, 404 missing object,
//!   409 conflicts (existing object, exported volume, object in use). The numeric codes are the
//!   lab's own; only the HTTP status and the body's shape are the contract.
//! - **Creates** answer 201 with a `Location` header naming the new object
//!   (`/api/v1/hosts/<name>`, `/api/v1/hostsets/<name>`, `/api/v1/vluns/<vol>,<lun>,<host>`).
//! - **Array rules** the client must respect: names of hosts and volumes at most 31 characters, of
//!   host sets at most 27; a WWN or iSCSI name belongs to at most one host; a host in a set, or
//!   with VLUNs, cannot be deleted; a host set with VLUNs cannot be deleted; exporting a volume
//!   twice to the same host or set is 409; removing a VLUN that does not exist is 404. Host
//!   personas are the WSAPI's numbering (`8` = VMware, `11` = Windows Server).
//!
//! A host is a SAN group holding its paths (FC WWNs, iSCSI names); a host set is a SAN group named
//! `<set name>.set` holding every member host's paths, so a VLUN to a set reaches each member.
//! Set membership, host personas and comments are kept here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query as QueryParams, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::san::{GroupSpec, InitiatorId, San, SanError, Volume, stable_hash};

mod copies;

pub use copies::{PROMOTE_VIRTUAL_COPY, VIRTUAL_COPY, task_status};

/// Where the API lives on the management address.
pub const BASE_PATH: &str = "/api/v1";

/// The session key header.
pub const SESSION_HEADER: &str = "X-HP3PAR-WSAPI-SessionKey";

/// The WSAPI build the facade reports in `GET /api` (a Primera 4.5 build: at or above the first
/// Primera build the vendor's library recognises).
pub const WSAPI_BUILD: u64 = 40_500_101;

/// The OS version `GET /api/v1/system` reports.
pub const SYSTEM_VERSION: &str = "4.5.0.101";

/// The model `GET /api/v1/system` reports.
pub const MODEL: &str = "HPE Primera 650";

/// WSAPI host persona numbers (`hostPersonaEnum`).
pub mod persona {
    pub const GENERIC_ALUA: u64 = 2;
    pub const VMWARE: u64 = 8;
    pub const WINDOWS_SERVER: u64 = 11;
}

/// Longest host and volume name the array accepts.
pub const MAX_NAME: usize = 31;
/// Longest set name the array accepts.
pub const MAX_SET_NAME: usize = 27;

/// VLUN `type` values.
const VLUN_TYPE_HOST: u64 = 3;
const VLUN_TYPE_HOST_SET: u64 = 5;

/// Suffix of the SAN group standing for a host set.
const SET_GROUP_SUFFIX: &str = ".set";

/// Every (method, path template) the facade serves, as the WSAPI guide spells them.
pub const OPERATIONS: &[(&str, &str)] = &[
    ("GET", "/api"),
    ("POST", "/api/v1/credentials"),
    ("DELETE", "/api/v1/credentials/{key}"),
    ("GET", "/api/v1/system"),
    ("GET", "/api/v1/volumes"),
    ("GET", "/api/v1/volumes/{name}"),
    ("POST", "/api/v1/volumes/{name}"),
    ("PUT", "/api/v1/volumes/{name}"),
    ("DELETE", "/api/v1/volumes/{name}"),
    ("GET", "/api/v1/tasks"),
    ("GET", "/api/v1/tasks/{id}"),
    ("GET", "/api/v1/hosts"),
    ("POST", "/api/v1/hosts"),
    ("GET", "/api/v1/hosts/{name}"),
    ("PUT", "/api/v1/hosts/{name}"),
    ("DELETE", "/api/v1/hosts/{name}"),
    ("GET", "/api/v1/hostsets"),
    ("POST", "/api/v1/hostsets"),
    ("GET", "/api/v1/hostsets/{name}"),
    ("PUT", "/api/v1/hostsets/{name}"),
    ("DELETE", "/api/v1/hostsets/{name}"),
    ("GET", "/api/v1/vluns"),
    ("POST", "/api/v1/vluns"),
    ("DELETE", "/api/v1/vluns/{id}"),
];

/// CSI driver name of HPE's CSI driver: the `spec.csi.driver` of PVs on this array.
pub const CSI_DRIVER: &str = "csi.hpe.com";

/// The array's name for the volume of a PV: the PV name cut to the array's 31 characters (the
/// HPE CSI driver's rule, which upstream's plugin relies on).
pub fn csi_volume_name(pv_name: &str) -> String {
    pv_name.chars().take(MAX_NAME).collect()
}

/// Primera/3PAR in the lab rig: the volume is named after the PV (cut to 31 characters) and the
/// PV's `volumeHandle` is that name; `populate` needs no key of the vendor's own.
pub struct Primera3ParFacade;

impl crate::rig::ArrayFacade for Primera3ParFacade {
    fn product(&self) -> &'static str {
        "primera3par"
    }

    fn create_csi_volume(
        &self,
        san: &San,
        array: &crate::lab::ArrayEndpoint,
        name: &str,
        size_bytes: u64,
    ) -> Result<crate::rig::TargetVolume, SanError> {
        let volume = san.create_volume(&array.name, &csi_volume_name(name), size_bytes)?;
        Ok(crate::rig::TargetVolume {
            pvc: name.to_owned(),
            array: array.name.clone(),
            volume_handle: volume.name.clone(),
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

/// The WSAPI of `array` in `san`, for `username`/`password`.
pub fn router(san: San, array: &str, username: &str, password: &str) -> Router {
    Primera::new(san, array, username, password).router()
}

/// One Primera/3PAR array over the SAN, with handles the lab uses to inject session faults.
#[derive(Clone)]
pub struct Primera {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Primera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Primera")
            .field("array", &self.inner.array)
            .finish_non_exhaustive()
    }
}

struct Inner {
    san: San,
    array: String,
    username: String,
    password: String,
    state: Mutex<FacadeState>,
}

#[derive(Default)]
struct FacadeState {
    sessions: Vec<String>,
    counter: u64,
    /// Host name → persona and comment given at creation.
    hosts: BTreeMap<String, HostMeta>,
    /// Host set name → set.
    sets: BTreeMap<String, HostSet>,
    /// Volumes made through the WSAPI (snapshots, online copies) → what they were made from.
    made: BTreeMap<String, copies::Made>,
    tasks: Vec<copies::Task>,
}

#[derive(Debug, Clone)]
struct HostMeta {
    persona: u64,
    comment: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct HostSet {
    comment: Option<String>,
    members: Vec<String>,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, FacadeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Primera {
    pub fn new(san: San, array: &str, username: &str, password: &str) -> Primera {
        Primera {
            inner: Arc::new(Inner {
                san,
                array: array.to_owned(),
                username: username.to_owned(),
                password: password.to_owned(),
                state: Mutex::new(FacadeState::default()),
            }),
        }
    }

    /// The router serving `/api` and `/api/v1/...`.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/system", get(system))
            .route("/volumes", get(volumes_get))
            .route(
                "/volumes/{name}",
                get(volume_get)
                    .post(copies::volume_action)
                    .put(copies::volume_modify)
                    .delete(copies::volume_delete),
            )
            .route("/tasks", get(copies::tasks_get))
            .route("/tasks/{id}", get(copies::task_get))
            .route("/hosts", get(hosts_get).post(host_create))
            .route(
                "/hosts/{name}",
                get(host_get).put(host_modify).delete(host_delete),
            )
            .route("/hostsets", get(sets_get).post(set_create))
            .route(
                "/hostsets/{name}",
                get(set_get).put(set_modify).delete(set_delete),
            )
            .route("/vluns", get(vluns_get).post(vlun_create))
            .route("/vluns/{id}", axum::routing::delete(vlun_delete))
            .route("/credentials/{key}", axum::routing::delete(logout))
            .layer(middleware::from_fn_with_state(
                self.inner.clone(),
                authenticate,
            ))
            .route("/credentials", post(login))
            .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, 404, "resource not found") })
            .with_state(self.inner.clone());
        Router::new()
            .route("/api", get(api_version))
            .nest(BASE_PATH, api)
    }

    /// Creates a volume as HPE's CSI driver does for a PV named `pv_name`.
    pub fn create_csi_volume(&self, pv_name: &str, size_bytes: u64) -> Result<Volume, SanError> {
        self.inner
            .san
            .create_volume(&self.inner.array, &csi_volume_name(pv_name), size_bytes)
    }

    /// What a copy may have left on the array: hosts and host sets named `xcopy-…`, every VLUN
    /// to them, and every snapshot or copy made through the WSAPI. Empty after a clean run.
    pub fn leftovers(&self) -> Vec<String> {
        let array = &self.inner.array;
        let ours = |name: &str| name.starts_with("xcopy-");
        let mut found: Vec<String> = self
            .inner
            .san
            .groups(array)
            .into_iter()
            .filter(|g| ours(&g.name))
            .map(|g| match g.name.strip_suffix(SET_GROUP_SUFFIX) {
                Some(set) => format!("host set {set}"),
                None => format!("host {}", g.name),
            })
            .collect();
        found.extend(
            self.inner
                .san
                .mappings(array)
                .into_iter()
                .filter(|m| ours(&m.group))
                .map(|m| format!("VLUN of {} to {}", m.volume, vlun_hostname(&m.group))),
        );
        found.extend(copies::leftovers(&self.inner));
        found
    }

    /// The snapshots of volume `name` (volumes whose `copyOf` it is).
    pub fn snapshots_of(&self, name: &str) -> Vec<String> {
        copies::snapshots_of(&self.inner, name)
    }

    /// Ends every session, as the array's idle timeout or a WSAPI restart does.
    pub fn expire_sessions(&self) {
        self.inner.state().sessions.clear();
    }

    /// How many sessions are open (a client that logs out leaves none).
    pub fn open_sessions(&self) -> usize {
        self.inner.state().sessions.len()
    }

    /// The persona of host `name`, if the host exists.
    pub fn host_persona(&self, name: &str) -> Option<u64> {
        let group = self.inner.san.group(&self.inner.array, name)?;
        Some(persona_of(&self.inner.state(), &group))
    }

    /// The members of host set `name`, if it exists.
    pub fn host_set_members(&self, name: &str) -> Option<Vec<String>> {
        self.inner.state().sets.get(name).map(|s| s.members.clone())
    }

    /// An administrator's host set (e.g. an ESXi cluster's) with these member hosts.
    pub fn create_host_set(&self, name: &str, members: &[&str]) -> Result<(), String> {
        let members: Vec<String> = members.iter().map(|m| (*m).to_owned()).collect();
        create_set(&self.inner, name, None, members).map_err(|e| e.desc)
    }

    /// Exports `volume` to host set `set` (an administrator's export), at the lowest free LUN.
    pub fn export_to_host_set(&self, volume: &str, set: &str) -> Result<u32, String> {
        self.inner
            .san
            .map(&self.inner.array, volume, &set_group(set))
            .map_err(|e| e.to_string())
    }
}

// ---- errors ----

/// A WSAPI error response: `{code, desc}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: u64,
    desc: String,
}

/// `code` values (the lab's own numbering, in the WSAPI's style).
mod code {
    pub const INV_INPUT: u64 = 1;
    pub const INVALID_LOGIN: u64 = 5;
    pub const INVALID_SESSION: u64 = 6;
    pub const EXCEEDS_LENGTH: u64 = 10;
    pub const EXISTENT_HOST: u64 = 16;
    pub const NON_EXISTENT_HOST: u64 = 17;
    pub const NON_EXISTENT_VLUN: u64 = 19;
    pub const NON_EXISTENT_VOL: u64 = 23;
    pub const IN_USE: u64 = 26;
    pub const EXISTENT_VLUN: u64 = 29;
    pub const EXISTENT_PATH: u64 = 32;
    pub const LUN_IN_USE: u64 = 73;
    pub const HOST_IN_SET: u64 = 77;
    pub const EXISTENT_SET: u64 = 101;
    pub const NON_EXISTENT_SET: u64 = 102;
    pub const MEMBER_IN_SET: u64 = 104;
    pub const MEMBER_NOT_IN_SET: u64 = 105;
    pub const INTERNAL: u64 = 250;
    pub const EXISTENT_VOL: u64 = 22;
    pub const HAS_CHILD: u64 = 34;
    pub const NON_EXISTENT_TASK: u64 = 61;
    pub const ONE_REQUIRED: u64 = 78;
    pub const NON_BASE_VOLUME: u64 = 140;
    pub const VV_EXPORTED: u64 = 141;
    pub const COPY_TO_SELF: u64 = 142;
    pub const COPY_PARENT_TOO_BIG: u64 = 143;
    pub const BASE_VOLUME_PROMOTE: u64 = 144;
    pub const PARENT_VV_EXPORTED: u64 = 145;
}

impl ApiError {
    fn new(status: StatusCode, code: u64, desc: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            desc: desc.into(),
        }
    }

    fn bad(desc: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code::INV_INPUT, desc)
    }

    fn missing(code: u64, desc: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, desc)
    }

    fn conflict(code: u64, desc: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, desc)
    }
}

impl From<SanError> for ApiError {
    fn from(error: SanError) -> ApiError {
        let (status, code) = match &error {
            SanError::InvalidName { .. }
            | SanError::InvalidSize { .. }
            | SanError::InvalidInitiator { .. }
            | SanError::LunIdOutOfRange { .. } => (StatusCode::BAD_REQUEST, code::INV_INPUT),
            SanError::UnknownVolume { .. } => (StatusCode::NOT_FOUND, code::NON_EXISTENT_VOL),
            SanError::UnknownGroup { .. } => (StatusCode::NOT_FOUND, code::NON_EXISTENT_HOST),
            SanError::NotMapped { .. } => (StatusCode::NOT_FOUND, code::NON_EXISTENT_VLUN),
            SanError::AlreadyMapped { .. } => (StatusCode::CONFLICT, code::EXISTENT_VLUN),
            SanError::LunIdInUse { .. } => (StatusCode::CONFLICT, code::LUN_IN_USE),
            SanError::UnknownArray { .. } | SanError::Backing { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL)
            }
            _ => (StatusCode::CONFLICT, code::IN_USE),
        };
        ApiError::new(status, code, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"code": self.code, "desc": self.desc})),
        )
            .into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(body: Value) -> ApiResult {
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

fn created(location: String) -> ApiResult {
    let mut response = StatusCode::CREATED.into_response();
    let value = HeaderValue::from_str(&location)
        .map_err(|_| ApiError::bad(format!("cannot name {location} in a Location header")))?;
    response.headers_mut().insert(header::LOCATION, value);
    Ok(response)
}

fn members(all: Vec<Value>) -> ApiResult {
    ok(json!({"total": all.len(), "members": all}))
}

fn body_json(body: &Bytes, allowed: &[&str]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(ApiError::bad("the body must be a JSON object"));
    };
    if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad(format!(
            "invalid input: unknown member {unknown:?}"
        )));
    }
    Ok(value)
}

fn string_list(body: &Value, key: &str) -> Result<Vec<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad(format!("{key} must list strings")))
            })
            .collect(),
        Some(_) => Err(ApiError::bad(format!("{key} must be an array"))),
    }
}

fn check_name(name: &str, limit: usize, what: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::bad(format!("{what} name is empty")));
    }
    if name.chars().count() > limit {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            code::EXCEEDS_LENGTH,
            format!("invalid input: {what} name {name:?} exceeds {limit} characters"),
        ));
    }
    if name.ends_with(SET_GROUP_SUFFIX) {
        return Err(ApiError::bad(format!(
            "{what} name {name:?} ends in {SET_GROUP_SUFFIX}, which the lab keeps for host sets"
        )));
    }
    Ok(())
}

// ---- sessions ----

async fn api_version() -> ApiResult {
    ok(json!({"major": 1, "minor": 10, "revision": 0, "build": WSAPI_BUILD}))
}

async fn login(State(inner): State<Arc<Inner>>, body: Bytes) -> ApiResult {
    let body = body_json(&body, &["user", "password", "sessionType"])?;
    let user = body.get("user").and_then(Value::as_str);
    let password = body.get("password").and_then(Value::as_str);
    if user != Some(inner.username.as_str()) || password != Some(inner.password.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            code::INVALID_LOGIN,
            "invalid username or password",
        ));
    }
    let key = {
        let mut state = inner.state();
        state.counter += 1;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let key = format!(
            "0-{:016x}{:016x}-{:08x}",
            stable_hash(&[&inner.array, "session", &state.counter.to_string()]),
            stable_hash(&[&nanos.to_string()]),
            state.counter
        );
        state.sessions.push(key.clone());
        key
    };
    Ok((StatusCode::CREATED, axum::Json(json!({"key": key}))).into_response())
}

async fn logout(State(inner): State<Arc<Inner>>, Path(key): Path<String>) -> ApiResult {
    let mut state = inner.state();
    let before = state.sessions.len();
    state.sessions.retain(|k| *k != key);
    if state.sessions.len() == before {
        return Err(ApiError::missing(
            code::INVALID_SESSION,
            "session key does not exist",
        ));
    }
    ok(json!({}))
}

async fn authenticate(State(inner): State<Arc<Inner>>, request: Request, next: Next) -> Response {
    let key = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let known = key.is_some_and(|k| inner.state().sessions.contains(&k));
    if !known {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            code::INVALID_SESSION,
            "invalid session key",
        )
        .into_response();
    }
    next.run(request).await
}

// ---- queries ----

/// One `field EQ value` test, possibly inside `Paths[...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    /// `FCPaths`, `iSCSIPaths`, or `None` for a field of the object itself.
    within: Option<String>,
    field: String,
    value: String,
}

/// Parses the WSAPI `query` parameter: `"a EQ x OR b[c EQ y OR c EQ z]"`. Only `EQ`/`==` and
/// `OR` are served; `fields` lists what may be asked, `Paths[field]` spelled as `Paths.field`.
fn parse_query(raw: &str, fields: &[&str]) -> Result<Vec<Term>, ApiError> {
    let text = raw.trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    let mut terms = Vec::new();
    for part in split_or(text) {
        let part = part.trim();
        if let Some((within, inner)) = part.split_once('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| ApiError::bad(format!("invalid query: unclosed [ in {part:?}")))?;
            for sub in split_or(inner) {
                terms.push(comparison(sub, Some(within.trim()), fields)?);
            }
        } else {
            terms.push(comparison(part, None, fields)?);
        }
    }
    Ok(terms)
}

/// Splits on ` OR ` outside brackets.
fn split_or(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b' ' if depth == 0 && text[i..].starts_with(" OR ") => {
                parts.push(&text[start..i]);
                i += 4;
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

fn comparison(text: &str, within: Option<&str>, fields: &[&str]) -> Result<Term, ApiError> {
    let (field, value) = text
        .split_once(" EQ ")
        .or_else(|| text.split_once("=="))
        .ok_or_else(|| {
            ApiError::bad(format!("invalid query: {text:?} is not <field> EQ <value>"))
        })?;
    let field = field.trim();
    let spelled = match within {
        Some(w) => format!("{w}.{field}"),
        None => field.to_owned(),
    };
    if !fields.contains(&spelled.as_str()) {
        return Err(ApiError::bad(format!(
            "invalid query: unknown field {spelled:?}"
        )));
    }
    let value = value.trim().trim_matches('\'').to_owned();
    Ok(Term {
        within: within.map(str::to_owned),
        field: field.to_owned(),
        value,
    })
}

/// Whether `item` passes any of `terms` (no terms: everything passes). WWNs compare without case.
fn passes(item: &Value, terms: &[Term]) -> bool {
    let equal = |field: &str, have: &Value, want: &str| {
        let Some(have) = have.as_str() else {
            return have.as_u64().is_some() && have.as_u64() == want.parse().ok();
        };
        if field == "wwn" || field == "name" && have.starts_with("iqn.") {
            have.eq_ignore_ascii_case(want)
        } else {
            have == want
        }
    };
    terms.is_empty()
        || terms.iter().any(|t| match &t.within {
            None => item
                .get(&t.field)
                .is_some_and(|have| equal(&t.field, have, &t.value)),
            Some(list) => item
                .get(list)
                .and_then(Value::as_array)
                .is_some_and(|paths| {
                    paths.iter().any(|p| {
                        p.get(&t.field)
                            .is_some_and(|have| equal(&t.field, have, &t.value))
                    })
                }),
        })
}

fn filtered(params: &[(String, String)], fields: &[&str], all: Vec<Value>) -> ApiResult {
    let mut terms = Vec::new();
    for (key, value) in params {
        match key.as_str() {
            "query" => terms.extend(parse_query(value, fields)?),
            other => {
                return Err(ApiError::bad(format!(
                    "invalid input: unknown query parameter {other:?}"
                )));
            }
        }
    }
    members(all.into_iter().filter(|i| passes(i, &terms)).collect())
}

// ---- records ----

fn set_group(set: &str) -> String {
    format!("{set}{SET_GROUP_SUFFIX}")
}

/// The VLUN `hostname` of a SAN group: `set:<name>` for a host set's group.
fn vlun_hostname(group: &str) -> String {
    match group.strip_suffix(SET_GROUP_SUFFIX) {
        Some(set) => format!("set:{set}"),
        None => group.to_owned(),
    }
}

fn numeric_id(parts: &[&str]) -> u64 {
    stable_hash(parts) % 60_000 + 1
}

fn volume_record(inner: &Inner, volume: &Volume) -> Value {
    // The serial ends in the array's sequence number of the volume: its low 32 bits are the id.
    let id = u64::from_str_radix(&volume.serial[volume.serial.len().saturating_sub(8)..], 16)
        .unwrap_or_else(|_| numeric_id(&[&volume.name]));
    let mut record = json!({
        "id": id,
        "name": volume.name,
        "uuid": volume.uuid,
        "wwn": volume.serial.to_ascii_uppercase(),
        "sizeMiB": volume.size_bytes / (1024 * 1024),
        "provisioningType": 2,
        "baseId": id,
        "readOnly": false,
        "state": 1,
        "userCPG": "SSD_r6",
        "snapCPG": "SSD_r6",
    });
    if let (Some(record), Value::Object(copy)) = (
        record.as_object_mut(),
        copies::copy_members(inner, &volume.name),
    ) {
        record.extend(copy);
    }
    record
}

/// The persona of a host: as created through the API, or for a host the lab set up itself
/// (an administrator's host for the ESXi hosts) VMware, unless the SAN group's personality
/// names another persona number.
fn persona_of(state: &FacadeState, group: &crate::san::InitiatorGroup) -> u64 {
    state.hosts.get(&group.name).map_or_else(
        || {
            group
                .os_type
                .as_deref()
                .and_then(|t| t.parse().ok())
                .unwrap_or(persona::VMWARE)
        },
        |m| m.persona,
    )
}

fn host_record(state: &FacadeState, group: &crate::san::InitiatorGroup) -> Value {
    let mut fc = Vec::new();
    let mut iscsi = Vec::new();
    for raw in &group.initiators {
        match InitiatorId::parse(raw) {
            Ok(id) if id.as_str().starts_with("iqn.") || id.as_str().starts_with("eui.") => {
                iscsi.push(json!({"name": raw}));
            }
            Ok(id) => fc.push(json!({"wwn": id.as_str().to_ascii_uppercase()})),
            Err(_) => {}
        }
    }
    let comment = state.hosts.get(&group.name).and_then(|m| m.comment.clone());
    json!({
        "id": numeric_id(&[&group.array, "host", &group.name]),
        "name": group.name,
        "persona": persona_of(state, group),
        "FCPaths": fc,
        "iSCSIPaths": iscsi,
        "descriptors": match comment {
            Some(c) => json!({"comment": c}),
            None => json!({}),
        },
    })
}

fn set_record(array: &str, name: &str, set: &HostSet) -> Value {
    let mut record = json!({
        "id": numeric_id(&[array, "hostset", name]),
        "name": name,
        "setmembers": set.members,
    });
    if let Some(comment) = &set.comment {
        record["comment"] = json!(comment);
    }
    record
}

fn hosts(inner: &Inner) -> Vec<crate::san::InitiatorGroup> {
    inner
        .san
        .groups(&inner.array)
        .into_iter()
        .filter(|g| !g.name.ends_with(SET_GROUP_SUFFIX))
        .collect()
}

fn host(inner: &Inner, name: &str) -> Result<crate::san::InitiatorGroup, ApiError> {
    inner
        .san
        .group(&inner.array, name)
        .filter(|g| !g.name.ends_with(SET_GROUP_SUFFIX))
        .ok_or_else(|| {
            ApiError::missing(
                code::NON_EXISTENT_HOST,
                format!("host {name} does not exist"),
            )
        })
}

// ---- system and volumes ----

async fn system(State(inner): State<Arc<Inner>>) -> ApiResult {
    let serial = format!("{:07}", stable_hash(&[&inner.array, "system"]) % 10_000_000);
    ok(json!({
        "id": numeric_id(&[&inner.array, "system"]),
        "name": inner.array,
        "systemVersion": SYSTEM_VERSION,
        "model": MODEL,
        "serialNumber": serial,
    }))
}

async fn volumes_get(
    State(inner): State<Arc<Inner>>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
) -> ApiResult {
    let all = inner
        .san
        .volumes(&inner.array)
        .iter()
        .map(|v| volume_record(&inner, v))
        .collect();
    filtered(&params, &["name", "wwn", "uuid", "copyOf"], all)
}

async fn volume_get(State(inner): State<Arc<Inner>>, Path(name): Path<String>) -> ApiResult {
    match inner.san.volume(&inner.array, &name) {
        Some(volume) => ok(volume_record(&inner, &volume)),
        None => Err(ApiError::missing(
            code::NON_EXISTENT_VOL,
            format!("volume {name} does not exist"),
        )),
    }
}

// ---- hosts ----

async fn hosts_get(
    State(inner): State<Arc<Inner>>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
) -> ApiResult {
    let groups = hosts(&inner);
    let all = {
        let state = inner.state();
        groups.iter().map(|g| host_record(&state, g)).collect()
    };
    filtered(&params, &["name", "FCPaths.wwn", "iSCSIPaths.name"], all)
}

async fn host_get(State(inner): State<Arc<Inner>>, Path(name): Path<String>) -> ApiResult {
    let group = host(&inner, &name)?;
    let state = inner.state();
    ok(host_record(&state, &group))
}

/// The paths of a host body, checked to be free on the array (or held by `owner` already).
fn free_paths(inner: &Inner, body: &Value, owner: Option<&str>) -> Result<Vec<String>, ApiError> {
    let mut paths = string_list(body, "FCWWNs")?;
    for wwn in &paths {
        if wwn.len() != 16 || !wwn.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::bad(format!(
                "invalid input: FC WWN {wwn:?} must be 16 hex digits without separators"
            )));
        }
    }
    paths.extend(string_list(body, "iSCSINames")?);
    for path in &paths {
        let id = InitiatorId::parse(path)?;
        for other in hosts(inner) {
            if Some(other.name.as_str()) == owner {
                continue;
            }
            let held = other
                .initiators
                .iter()
                .any(|i| InitiatorId::parse(i).is_ok_and(|o| o == id));
            if held {
                return Err(ApiError::conflict(
                    code::EXISTENT_PATH,
                    format!("path {path} is already used by host {}", other.name),
                ));
            }
        }
    }
    Ok(paths)
}

async fn host_create(State(inner): State<Arc<Inner>>, body: Bytes) -> ApiResult {
    let body = body_json(
        &body,
        &[
            "name",
            "persona",
            "FCWWNs",
            "iSCSINames",
            "domain",
            "forceTearDown",
            "descriptors",
        ],
    )?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("invalid input: name is required"))?
        .to_owned();
    check_name(&name, MAX_NAME, "host")?;
    if inner.san.group(&inner.array, &name).is_some() {
        return Err(ApiError::conflict(
            code::EXISTENT_HOST,
            format!("host {name} already exists"),
        ));
    }
    let persona = match body.get("persona") {
        None => persona::GENERIC_ALUA,
        Some(p) => p
            .as_u64()
            .filter(|p| (1..=15).contains(p))
            .ok_or_else(|| ApiError::bad(format!("invalid input: persona {p} is not 1..15")))?,
    };
    let comment = body
        .pointer("/descriptors/comment")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let paths = free_paths(&inner, &body, None)?;
    inner.san.create_group(
        &inner.array,
        GroupSpec {
            name: name.clone(),
            initiators: paths,
            protocol: None,
            os_type: Some(persona.to_string()),
        },
    )?;
    inner
        .state()
        .hosts
        .insert(name.clone(), HostMeta { persona, comment });
    created(format!("{BASE_PATH}/hosts/{name}"))
}

async fn host_modify(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = body_json(
        &body,
        &[
            "pathOperation",
            "FCWWNs",
            "iSCSINames",
            "persona",
            "descriptors",
        ],
    )?;
    host(&inner, &name)?;
    if let Some(p) = body.get("persona") {
        let persona = p
            .as_u64()
            .filter(|p| (1..=15).contains(p))
            .ok_or_else(|| ApiError::bad(format!("invalid input: persona {p} is not 1..15")))?;
        let mut state = inner.state();
        let comment = state.hosts.get(&name).and_then(|m| m.comment.clone());
        state
            .hosts
            .insert(name.clone(), HostMeta { persona, comment });
    }
    let paths = free_paths(&inner, &body, Some(&name))?;
    match body.get("pathOperation").and_then(Value::as_u64) {
        None if paths.is_empty() => {}
        Some(1) => {
            for path in &paths {
                match inner.san.add_initiator(&inner.array, &name, path) {
                    Ok(()) | Err(SanError::InitiatorExists { .. }) => {}
                    Err(other) => return Err(other.into()),
                }
            }
        }
        Some(2) => {
            for path in &paths {
                inner.san.remove_initiator(&inner.array, &name, path)?;
            }
        }
        _ => {
            return Err(ApiError::bad(
                "invalid input: paths need pathOperation 1 (add) or 2 (remove)",
            ));
        }
    }
    resync_sets_of(&inner, &name)?;
    ok(json!({}))
}

async fn host_delete(State(inner): State<Arc<Inner>>, Path(name): Path<String>) -> ApiResult {
    host(&inner, &name)?;
    if let Some(set) = inner
        .state()
        .sets
        .iter()
        .find(|(_, s)| s.members.contains(&name))
        .map(|(n, _)| n.clone())
    {
        return Err(ApiError::conflict(
            code::HOST_IN_SET,
            format!("host {name} is a member of host set {set}"),
        ));
    }
    inner.san.delete_group(&inner.array, &name)?;
    inner.state().hosts.remove(&name);
    ok(json!({}))
}

// ---- host sets ----

/// Makes the SAN group of every set holding `host` hold exactly its members' paths.
fn resync_sets_of(inner: &Inner, host: &str) -> Result<(), ApiError> {
    let sets: Vec<String> = inner
        .state()
        .sets
        .iter()
        .filter(|(_, s)| s.members.iter().any(|m| m == host))
        .map(|(n, _)| n.clone())
        .collect();
    for set in sets {
        resync_set(inner, &set)?;
    }
    Ok(())
}

fn resync_set(inner: &Inner, set: &str) -> Result<(), ApiError> {
    let members = inner
        .state()
        .sets
        .get(set)
        .map(|s| s.members.clone())
        .unwrap_or_default();
    let wanted: Vec<String> = members
        .iter()
        .filter_map(|m| inner.san.group(&inner.array, m))
        .flat_map(|g| g.initiators)
        .collect();
    let group = set_group(set);
    let present = inner
        .san
        .group(&inner.array, &group)
        .map(|g| g.initiators)
        .unwrap_or_default();
    let id = |raw: &String| InitiatorId::parse(raw).ok();
    for raw in &present {
        if !wanted.iter().any(|w| id(w) == id(raw)) {
            inner.san.remove_initiator(&inner.array, &group, raw)?;
        }
    }
    for raw in &wanted {
        match inner.san.add_initiator(&inner.array, &group, raw) {
            Ok(()) | Err(SanError::InitiatorExists { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}

fn create_set(
    inner: &Inner,
    name: &str,
    comment: Option<String>,
    members: Vec<String>,
) -> Result<(), ApiError> {
    check_name(name, MAX_SET_NAME, "host set")?;
    if inner.state().sets.contains_key(name) {
        return Err(ApiError::conflict(
            code::EXISTENT_SET,
            format!("host set {name} already exists"),
        ));
    }
    for member in &members {
        host(inner, member)?;
    }
    inner.san.create_group(
        &inner.array,
        GroupSpec {
            name: set_group(name),
            ..GroupSpec::default()
        },
    )?;
    inner
        .state()
        .sets
        .insert(name.to_owned(), HostSet { comment, members });
    resync_set(inner, name)
}

fn set_named(inner: &Inner, name: &str) -> Result<HostSet, ApiError> {
    inner.state().sets.get(name).cloned().ok_or_else(|| {
        ApiError::missing(
            code::NON_EXISTENT_SET,
            format!("host set {name} does not exist"),
        )
    })
}

async fn sets_get(
    State(inner): State<Arc<Inner>>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
) -> ApiResult {
    let all = inner
        .state()
        .sets
        .iter()
        .map(|(name, set)| set_record(&inner.array, name, set))
        .collect();
    filtered(&params, &["name"], all)
}

async fn set_get(State(inner): State<Arc<Inner>>, Path(name): Path<String>) -> ApiResult {
    let set = set_named(&inner, &name)?;
    ok(set_record(&inner.array, &name, &set))
}

async fn set_create(State(inner): State<Arc<Inner>>, body: Bytes) -> ApiResult {
    let body = body_json(&body, &["name", "domain", "comment", "setmembers"])?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("invalid input: name is required"))?
        .to_owned();
    let comment = body
        .get("comment")
        .and_then(Value::as_str)
        .map(str::to_owned);
    create_set(&inner, &name, comment, string_list(&body, "setmembers")?)?;
    created(format!("{BASE_PATH}/hostsets/{name}"))
}

async fn set_modify(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = body_json(&body, &["action", "newName", "comment", "setmembers"])?;
    let mut set = set_named(&inner, &name)?;
    if body.get("newName").is_some() {
        return Err(ApiError::bad(
            "invalid input: the lab does not rename host sets",
        ));
    }
    if let Some(comment) = body.get("comment").and_then(Value::as_str) {
        set.comment = Some(comment.to_owned());
    }
    let listed = string_list(&body, "setmembers")?;
    match body.get("action").and_then(Value::as_u64) {
        None if listed.is_empty() => {}
        Some(1) => {
            for member in &listed {
                host(&inner, member)?;
                if set.members.contains(member) {
                    return Err(ApiError::conflict(
                        code::MEMBER_IN_SET,
                        format!("host {member} is already a member of host set {name}"),
                    ));
                }
            }
            set.members.extend(listed);
        }
        Some(2) => {
            for member in &listed {
                if !set.members.contains(member) {
                    return Err(ApiError::missing(
                        code::MEMBER_NOT_IN_SET,
                        format!("host {member} is not a member of host set {name}"),
                    ));
                }
            }
            set.members.retain(|m| !listed.contains(m));
        }
        _ => {
            return Err(ApiError::bad(
                "invalid input: setmembers need action 1 (add) or 2 (remove)",
            ));
        }
    }
    inner.state().sets.insert(name.clone(), set);
    resync_set(&inner, &name)?;
    ok(json!({}))
}

async fn set_delete(State(inner): State<Arc<Inner>>, Path(name): Path<String>) -> ApiResult {
    set_named(&inner, &name)?;
    match inner.san.delete_group(&inner.array, &set_group(&name)) {
        Ok(()) | Err(SanError::UnknownGroup { .. }) => {}
        Err(SanError::GroupInUse { volumes, .. }) => {
            return Err(ApiError::conflict(
                code::IN_USE,
                format!("host set {name} has VLUNs exported: {volumes:?}"),
            ));
        }
        Err(other) => return Err(other.into()),
    }
    inner.state().sets.remove(&name);
    ok(json!({}))
}

// ---- VLUNs ----

fn vlun_record(inner: &Inner, mapping: &crate::san::LunMapping) -> Value {
    let wwn = inner
        .san
        .volume(&inner.array, &mapping.volume)
        .map(|v| v.serial.to_ascii_uppercase())
        .unwrap_or_default();
    let is_set = mapping.group.ends_with(SET_GROUP_SUFFIX);
    json!({
        "lun": mapping.lun_id,
        "volumeName": mapping.volume,
        "hostname": vlun_hostname(&mapping.group),
        "type": if is_set { VLUN_TYPE_HOST_SET } else { VLUN_TYPE_HOST },
        "active": true,
        "volumeWWN": wwn,
        "multipathing": 1,
    })
}

async fn vluns_get(
    State(inner): State<Arc<Inner>>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
) -> ApiResult {
    let all = inner
        .san
        .mappings(&inner.array)
        .iter()
        .map(|m| vlun_record(&inner, m))
        .collect();
    filtered(
        &params,
        &["volumeName", "hostname", "lun", "volumeWWN"],
        all,
    )
}

/// The SAN group of a VLUN `hostname` (`set:<name>` or a host name), checked to exist.
fn vlun_group(inner: &Inner, hostname: &str) -> Result<String, ApiError> {
    match hostname.strip_prefix("set:") {
        Some(set) => {
            set_named(inner, set)?;
            Ok(set_group(set))
        }
        None => Ok(host(inner, hostname)?.name),
    }
}

async fn vlun_create(State(inner): State<Arc<Inner>>, body: Bytes) -> ApiResult {
    let body = body_json(
        &body,
        &[
            "volumeName",
            "lun",
            "hostname",
            "portPos",
            "noVcn",
            "overrideLowerPriority",
            "autoLun",
            "maxAutoLun",
        ],
    )?;
    if body.get("portPos").is_some() {
        return Err(ApiError::bad(
            "invalid input: the lab exports to hosts and host sets only, not to ports",
        ));
    }
    let volume = body
        .get("volumeName")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("invalid input: volumeName is required"))?;
    let hostname = body
        .get("hostname")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("invalid input: hostname is required"))?;
    let auto = body
        .get("autoLun")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let lun = match body.get("lun") {
        None if auto => 0,
        None => {
            return Err(ApiError::bad(
                "invalid input: lun is required without autoLun",
            ));
        }
        Some(l) => l
            .as_u64()
            .and_then(|l| u32::try_from(l).ok())
            .ok_or_else(|| ApiError::bad(format!("invalid input: lun {l} is not a number")))?,
    };
    if inner.san.volume(&inner.array, volume).is_none() {
        return Err(ApiError::missing(
            code::NON_EXISTENT_VOL,
            format!("volume {volume} does not exist"),
        ));
    }
    let group = vlun_group(&inner, hostname)?;
    let assigned = if auto {
        // The lowest free LUN at or above the one given.
        let used: Vec<u32> = inner
            .san
            .mappings(&inner.array)
            .into_iter()
            .filter(|m| m.group == group)
            .map(|m| m.lun_id)
            .collect();
        if let Some(existing) = inner
            .san
            .mappings(&inner.array)
            .into_iter()
            .find(|m| m.group == group && m.volume == volume)
        {
            return Err(ApiError::conflict(
                code::EXISTENT_VLUN,
                format!(
                    "VLUN {volume},{},{hostname} already exists",
                    existing.lun_id
                ),
            ));
        }
        let free = (lun..=crate::san::MAX_LUN_ID)
            .find(|l| !used.contains(l))
            .ok_or_else(|| ApiError::conflict(code::LUN_IN_USE, "no free LUN left"))?;
        inner.san.map_at(&inner.array, volume, &group, Some(free))?
    } else {
        inner.san.map_at(&inner.array, volume, &group, Some(lun))?
    };
    created(format!("{BASE_PATH}/vluns/{volume},{assigned},{hostname}"))
}

async fn vlun_delete(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> ApiResult {
    let mut parts = id.splitn(3, ',');
    let (Some(volume), Some(lun), Some(hostname)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ApiError::bad(format!(
            "invalid input: VLUN id {id:?} is not <volume>,<lun>,<host>"
        )));
    };
    let lun: u32 = lun
        .parse()
        .map_err(|_| ApiError::bad(format!("invalid input: LUN {lun:?} is not a number")))?;
    let group = match hostname.strip_prefix("set:") {
        Some(set) => set_group(set),
        None => hostname.to_owned(),
    };
    let exists = inner
        .san
        .mappings(&inner.array)
        .into_iter()
        .any(|m| m.volume == volume && m.group == group && m.lun_id == lun);
    if !exists {
        return Err(ApiError::missing(
            code::NON_EXISTENT_VLUN,
            format!("VLUN {id} does not exist"),
        ));
    }
    inner.san.unmap(&inner.array, volume, &group)?;
    ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_the_forms_clients_send() {
        let hosts = ["name", "FCPaths.wwn", "iSCSIPaths.name"];
        let terms = parse_query(
            "\"FCPaths[wwn EQ 2100 OR wwn==2101] OR iSCSIPaths[name EQ iqn.x]\"",
            &hosts,
        )
        .unwrap();
        assert_eq!(terms.len(), 3);
        assert_eq!(terms[1].value, "2101");
        assert_eq!(terms[2].within.as_deref(), Some("iSCSIPaths"));
        assert!(parse_query("\"colour EQ red\"", &hosts).is_err());
        assert!(parse_query("\"FCPaths[wwn EQ 1\"", &hosts).is_err());
        let item = json!({"FCPaths": [{"wwn": "21000025B5000001"}], "iSCSIPaths": []});
        let wanted = parse_query("FCPaths[wwn EQ 21000025b5000001]", &hosts).unwrap();
        assert!(passes(&item, &wanted));
        let other = parse_query("FCPaths[wwn EQ 21000025b5000002]", &hosts).unwrap();
        assert!(!passes(&item, &other));
    }

    #[test]
    fn vlun_hostnames_name_sets_with_their_prefix() {
        assert_eq!(vlun_hostname("xcopy-h1.set"), "set:xcopy-h1");
        assert_eq!(vlun_hostname("esx-1"), "esx-1");
        assert_eq!(csi_volume_name(&"p".repeat(40)).len(), MAX_NAME);
    }
}
