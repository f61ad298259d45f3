//! Dell PowerStore REST facade (`/api/rest/...`) over the lab SAN: one cluster whose volumes, hosts,
//! host groups and host-volume mappings are the SAN model's volumes, groups and mappings.
//!
//! Written from the PowerStore REST API reference (Swagger 2.0, "PowerStore REST API" 4.0.0.0):
//! - **Sessions.** `GET /login_session` with HTTP Basic answers the session record, a
//!   `DELL-EMC-TOKEN` header and an `auth_cookie` cookie. Later requests carry the cookie (or Basic
//!   again); every request other than GET must also carry the session's `DELL-EMC-TOKEN`, else
//!   403. An unknown or expired session is 401. `POST /logout` ends the session.
//! - **Collections** answer a JSON array. Only `id` is returned unless `select=` names fields
//!   (relations nest: `hosts(id,name)`); filters are `<field>=eq.<value>` and friends; pages are
//!   100 items by default (at most 2000, `limit`/`offset` or a `Range` header), a partial page is
//!   206 with `Content-Range`. An unknown field in `select`, a filter or a body is 400.
//! - **Errors** answer `{"messages": [{"code", "severity", "message_l10n", "arguments"}]}`: 400
//!   malformed, 404 missing object, 422 refused by the array's rules. The `code` values are the
//!   lab's own; only the HTTP status and body shape are the contract.
//! - **Jobs.** A mutating request with `?is_async=true` answers 202 `{"id": <job>}`; `GET /job/{id}`
//!   then shows its `state` (`COMPLETED`/`FAILED`), `response_status` and `response_body`.
//! - **Array rules** the client must respect: an initiator belongs to at most one host; a host in a
//!   host group cannot be attached or detached on its own (the host group is); attaching twice or
//!   detaching what is not attached is 422; a host or host group with volumes attached cannot be
//!   deleted; FC `port_name`s are colon-separated WWPNs.
//!
//! A host group is a SAN group holding its member hosts' initiators (so every member sees what
//! is attached to the group); membership is kept here. Every route is listed in [`OPERATIONS`],
//! which a contract test checks against the published definition.

mod model;
mod query;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query as QueryParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::{Map, Value, json};

use super::{BasicCredentials, cookie};
use crate::san::{GroupSpec, InitiatorId, San, SanError, Volume, stable_uuid};
use model::World;
pub use model::{Kind, scalar_fields};
use query::Query;

/// The release the facade reports in `GET /software_installed`.
pub const RELEASE_VERSION: &str = "4.0.0.0";

/// Where the API lives on the management address.
pub const BASE_PATH: &str = "/api/rest";

/// Seconds a session may stay idle (reported in the login session record).
pub const IDLE_TIMEOUT_SECONDS: u64 = 3600;

/// Every (method, path template) the facade serves, spelled as in the PowerStore definition.
pub const OPERATIONS: &[(&str, &str)] = &[
    ("GET", "/login_session"),
    ("POST", "/logout"),
    ("GET", "/cluster"),
    ("GET", "/software_installed"),
    ("GET", "/volume"),
    ("GET", "/volume/{id}"),
    ("POST", "/volume/{id}/attach"),
    ("POST", "/volume/{id}/detach"),
    ("GET", "/host"),
    ("POST", "/host"),
    ("GET", "/host/{id}"),
    ("PATCH", "/host/{id}"),
    ("DELETE", "/host/{id}"),
    ("POST", "/host/{id}/attach"),
    ("POST", "/host/{id}/detach"),
    ("GET", "/host_group"),
    ("POST", "/host_group"),
    ("GET", "/host_group/{id}"),
    ("PATCH", "/host_group/{id}"),
    ("DELETE", "/host_group/{id}"),
    ("POST", "/host_group/{id}/attach"),
    ("POST", "/host_group/{id}/detach"),
    ("GET", "/host_volume_mapping"),
    ("GET", "/host_volume_mapping/{id}"),
    ("GET", "/job/{id}"),
];

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "auth_cookie";
/// The anti-forgery header every non-GET request of a session carries.
pub const TOKEN_HEADER: &str = "DELL-EMC-TOKEN";

/// The PowerStore REST API definition this facade follows, for contract tests:
/// `$POWERSTORE_API_DIR/openapi.json`, else `$VENDOR_API_DIR/powerstore/openapi.json`, else the
/// shared copy beside the repository; `None` when absent (it is never part of the repository).
pub fn published_definition() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let file = match std::env::var_os("POWERSTORE_API_DIR") {
        Some(dir) => PathBuf::from(dir).join("openapi.json"),
        None => std::env::var_os("VENDOR_API_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vendor-api")
            })
            .join("powerstore/openapi.json"),
    };
    file.is_file().then_some(file)
}

/// CSI driver name of Dell's PowerStore driver: the `spec.csi.driver` of PVs on this array.
pub const CSI_DRIVER: &str = "csi-powerstore.dellemc.com";

/// What Dell's CSI driver puts in the PV of a volume it provisioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsiVolume {
    pub volume: Volume,
    /// `spec.csi.driver`.
    pub driver: &'static str,
    /// `spec.csi.volumeHandle`: `<volume id>/<cluster global id>/scsi`.
    pub volume_handle: String,
    /// `spec.csi.volumeAttributes`: `Name` (the array's volume name) and `Protocol`.
    pub volume_attributes: BTreeMap<String, String>,
}

/// Creates the volume behind a CSI PowerStore PV (`volumeAttributes.Name = name`).
pub fn create_csi_volume(
    san: &San,
    array: &str,
    name: &str,
    size_bytes: u64,
) -> Result<Volume, SanError> {
    san.create_volume(array, name, size_bytes)
}

/// PowerStore in the lab rig: CSI PowerStore names the volume after the PV and records the name in
/// `volumeAttributes.Name`; `populate` needs no key of PowerStore's own.
pub struct PowerStoreFacade;

impl crate::rig::ArrayFacade for PowerStoreFacade {
    fn product(&self) -> &'static str {
        "powerstore"
    }

    fn create_csi_volume(
        &self,
        san: &San,
        array: &crate::lab::ArrayEndpoint,
        name: &str,
        size_bytes: u64,
    ) -> Result<crate::rig::TargetVolume, SanError> {
        let volume = create_csi_volume(san, &array.name, name, size_bytes)?;
        Ok(crate::rig::TargetVolume {
            pvc: name.to_owned(),
            array: array.name.clone(),
            volume_handle: format!("{}/scsi", volume.uuid),
            attributes: vec![("Name".into(), volume.name.clone())],
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

/// The PowerStore REST API of `array` in `san`, for `username`/`password`.
pub fn router(san: San, array: &str, username: &str, password: &str) -> Router {
    PowerStore::new(san, array, username, password).router()
}

/// A PowerStore cluster over the SAN, with handles the lab uses to inject session faults.
#[derive(Clone)]
pub struct PowerStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PowerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerStore")
            .field("array", &self.inner.array)
            .finish_non_exhaustive()
    }
}

struct Inner {
    san: San,
    array: String,
    credentials: BasicCredentials,
    username: String,
    global_id: String,
    state: Mutex<FacadeState>,
}

#[derive(Default)]
struct FacadeState {
    /// Live sessions: cookie value → token.
    sessions: BTreeMap<String, String>,
    /// Host group name → member host names.
    host_groups: BTreeMap<String, Vec<String>>,
    jobs: BTreeMap<String, Value>,
    counter: u64,
}

impl PowerStore {
    pub fn new(san: San, array: &str, username: &str, password: &str) -> PowerStore {
        let global_id = format!(
            "PS{:012X}",
            crate::san::stable_hash(&[array, "global"]) & 0xffff_ffff_ffff
        );
        PowerStore {
            inner: Arc::new(Inner {
                san,
                array: array.to_owned(),
                credentials: BasicCredentials::new(username, password),
                username: username.to_owned(),
                global_id,
                state: Mutex::new(FacadeState::default()),
            }),
        }
    }

    /// The router serving `/api/rest/...`.
    pub fn router(&self) -> Router {
        let mut api = Router::new();
        let mut paths: Vec<&str> = OPERATIONS.iter().map(|(_, p)| *p).collect();
        paths.sort_unstable();
        paths.dedup();
        for path in paths {
            api = api.route(path, routes_for(path));
        }
        let api = api
            .fallback(|| async { ApiError::not_found("the resource path").into_response() })
            .layer(middleware::from_fn_with_state(
                self.inner.clone(),
                authenticate,
            ))
            .with_state(self.inner.clone());
        Router::new().nest(BASE_PATH, api)
    }

    /// Creates a volume as Dell's CSI driver does for a PVC, with the PV fields that name it.
    pub fn create_csi_volume(&self, name: &str, size_bytes: u64) -> Result<CsiVolume, SanError> {
        let volume = create_csi_volume(&self.inner.san, &self.inner.array, name, size_bytes)?;
        Ok(CsiVolume {
            volume_handle: format!("{}/{}/scsi", volume.uuid, self.inner.global_id),
            volume_attributes: BTreeMap::from([
                ("Name".to_owned(), volume.name.clone()),
                ("Protocol".to_owned(), "scsi".to_owned()),
            ]),
            driver: CSI_DRIVER,
            volume,
        })
    }

    /// What a copy may have left on the array: hosts named `xcopy-…` and every mapping to them.
    /// Empty after a clean run.
    pub fn leftovers(&self) -> Vec<String> {
        super::xcopy_leftovers(&self.inner.san, &self.inner.array, "attached to")
    }

    /// The cluster's `global_id` (the middle part of CSI PowerStore volume handles).
    pub fn global_id(&self) -> &str {
        &self.inner.global_id
    }

    /// Ends every session, as an idle timeout or a restart of the management software does.
    pub fn expire_sessions(&self) {
        self.inner.state().sessions.clear();
    }

    /// How many sessions are open (a client that logs out leaves none).
    pub fn open_sessions(&self) -> usize {
        self.inner.state().sessions.len()
    }

    /// Makes `hosts` the members of a new host group `name` (an administrator's grouping, e.g. an
    /// ESXi cluster): the same rules as `POST /host_group`.
    pub fn create_host_group(&self, name: &str, hosts: &[&str]) -> Result<String, String> {
        let ids: Vec<String> = hosts
            .iter()
            .map(|h| stable_uuid(&[&self.inner.array, "group", h]))
            .collect();
        self.inner
            .create_host_group(name, &ids, None)
            .map_err(|e| e.message)
    }
}

fn routes_for(path: &str) -> MethodRouter<Arc<Inner>> {
    match path {
        "/login_session" => get(login_session),
        "/logout" => post(logout),
        "/cluster" => get(|s, q, h| collection(s, q, h, Kind::Cluster)),
        "/software_installed" => get(|s, q, h| collection(s, q, h, Kind::Software)),
        "/volume" => get(|s, q, h| collection(s, q, h, Kind::Volume)),
        "/volume/{id}" => get(|s, p, q| instance(s, p, q, Kind::Volume)),
        "/volume/{id}/attach" => post(volume_attach),
        "/volume/{id}/detach" => post(volume_detach),
        "/host" => get(|s, q, h| collection(s, q, h, Kind::Host)).post(host_create),
        "/host/{id}" => get(|s, p, q| instance(s, p, q, Kind::Host))
            .patch(host_modify)
            .delete(host_delete),
        "/host/{id}/attach" => post(|s, p, q, b| group_attach(s, p, q, b, Kind::Host, true)),
        "/host/{id}/detach" => post(|s, p, q, b| group_attach(s, p, q, b, Kind::Host, false)),
        "/host_group" => {
            get(|s, q, h| collection(s, q, h, Kind::HostGroup)).post(host_group_create)
        }
        "/host_group/{id}" => get(|s, p, q| instance(s, p, q, Kind::HostGroup))
            .patch(host_group_modify)
            .delete(host_group_delete),
        "/host_group/{id}/attach" => {
            post(|s, p, q, b| group_attach(s, p, q, b, Kind::HostGroup, true))
        }
        "/host_group/{id}/detach" => {
            post(|s, p, q, b| group_attach(s, p, q, b, Kind::HostGroup, false))
        }
        "/host_volume_mapping" => get(|s, q, h| collection(s, q, h, Kind::Mapping)),
        "/host_volume_mapping/{id}" => get(|s, p, q| instance(s, p, q, Kind::Mapping)),
        "/job/{id}" => get(|s, p, q| instance(s, p, q, Kind::Job)),
        other => unreachable!("OPERATIONS lists {other} without a handler"),
    }
}

// ---- errors ----

/// A PowerStore error response.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// `code` values of error messages (the lab's own, in the array's hex style).
mod code {
    pub const BAD_REQUEST: &str = "0xE04040010005";
    pub const NOT_FOUND: &str = "0xE04040020009";
    pub const UNAUTHORIZED: &str = "0xE09010010004";
    pub const FORBIDDEN: &str = "0xE09010010013";
    pub const RULE: &str = "0xE0A070010001";
    pub const INTERNAL: &str = "0xE04040000001";
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code::BAD_REQUEST, message)
    }

    fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            format!("The requested {what} was not found."),
        )
    }

    fn rule(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code::RULE, message)
    }

    fn body(&self) -> Value {
        json!({"messages": [{
            "code": self.code,
            "severity": "Error",
            "message_l10n": self.message,
            "arguments": [],
        }]})
    }
}

impl From<SanError> for ApiError {
    fn from(error: SanError) -> ApiError {
        let status = match &error {
            SanError::InvalidName { .. }
            | SanError::InvalidSize { .. }
            | SanError::InvalidInitiator { .. }
            | SanError::LunIdOutOfRange { .. } => StatusCode::BAD_REQUEST,
            SanError::UnknownVolume { .. }
            | SanError::UnknownGroup { .. }
            | SanError::UnknownInitiator { .. } => StatusCode::NOT_FOUND,
            SanError::UnknownArray { .. } | SanError::Backing { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let code = match status {
            StatusCode::BAD_REQUEST => code::BAD_REQUEST,
            StatusCode::NOT_FOUND => code::NOT_FOUND,
            StatusCode::INTERNAL_SERVER_ERROR => code::INTERNAL,
            _ => code::RULE,
        };
        ApiError::new(status, code, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

// ---- sessions ----

async fn authenticate(State(inner): State<Arc<Inner>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if headers.contains_key(header::AUTHORIZATION) {
        if inner.credentials.admits(headers) {
            return next.run(request).await;
        }
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHORIZED,
            "Authentication failed: the user name or password is wrong.",
        )
        .into_response();
    }
    let session =
        cookie(headers, SESSION_COOKIE).and_then(|c| inner.state().sessions.get(&c).cloned());
    let Some(token) = session else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHORIZED,
            "Authentication required: log in with GET /api/rest/login_session.",
        )
        .into_response();
    };
    let sent = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok());
    if request.method() != Method::GET && sent != Some(token.as_str()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            code::FORBIDDEN,
            "The DELL-EMC-TOKEN header is missing or does not belong to this session.",
        )
        .into_response();
    }
    next.run(request).await
}

async fn login_session(
    State(inner): State<Arc<Inner>>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let query =
        Query::parse(&params, scalar_fields(Kind::LoginSession)).map_err(ApiError::bad_request)?;
    let record = json!({
        "id": stable_uuid(&[&inner.array, "session-user", &inner.username]),
        "user": inner.username,
        "role_ids": ["1"],
        "idle_timeout": IDLE_TIMEOUT_SECONDS,
        "is_password_change_required": false,
        "is_built_in_user": true,
    });
    let mut world = World::default();
    world.insert(Kind::LoginSession, record);
    let records = world.all(Kind::LoginSession);
    let body = Value::Array(vec![
        world
            .project(Kind::LoginSession, &records[0], query.select.as_deref())
            .map_err(ApiError::bad_request)?,
    ]);
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    if !headers.contains_key(header::AUTHORIZATION) {
        // Asked with a session cookie: the session stays as it is.
        return Ok(response);
    }
    let (cookie_value, token) = {
        let mut state = inner.state();
        state.counter += 1;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            .to_string();
        let seed = state.counter.to_string();
        let cookie_value = stable_uuid(&[&inner.array, "cookie", &seed, &nanos]).replace('-', "");
        let token = stable_uuid(&[&inner.array, "token", &seed, &nanos]).replace('-', "");
        state.sessions.insert(cookie_value.clone(), token.clone());
        (cookie_value, token)
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&token) {
        headers.insert(TOKEN_HEADER, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={cookie_value}; Path=/; Secure; HttpOnly"
    )) {
        headers.insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn logout(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> ApiResult {
    if let Some(cookie_value) = cookie(&headers, SESSION_COOKIE) {
        inner.state().sessions.remove(&cookie_value);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- reads ----

async fn collection(
    State(inner): State<Arc<Inner>>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    headers: HeaderMap,
    kind: Kind,
) -> ApiResult {
    let mut query = Query::parse(&params, scalar_fields(kind)).map_err(ApiError::bad_request)?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    query.apply_range(range).map_err(ApiError::bad_request)?;
    let world = inner.world();
    let query::Page {
        items: page,
        first,
        total,
    } = match query.page(world.all(kind)) {
        Ok(paged) => paged,
        Err(total) => {
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                code::BAD_REQUEST,
                format!("The offset is past the {total} items of the collection."),
            ));
        }
    };
    let mut items = Vec::with_capacity(page.len());
    for record in &page {
        items.push(
            world
                .project(kind, record, query.select.as_deref())
                .map_err(ApiError::bad_request)?,
        );
    }
    let partial = first > 0 || first + items.len() < total;
    let status = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut response = (status, axum::Json(Value::Array(items.clone()))).into_response();
    let last = (first + items.len()).saturating_sub(1);
    if let Ok(value) = HeaderValue::from_str(&format!("{first}-{last}/{total}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

async fn instance(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    kind: Kind,
) -> ApiResult {
    let query = Query::parse(&params, scalar_fields(kind)).map_err(ApiError::bad_request)?;
    let world = inner.world();
    let record = world
        .by_id(kind, &id)
        .ok_or_else(|| ApiError::not_found(&format!("{kind:?} {id}")))?;
    let body = world
        .project(kind, record, query.select.as_deref())
        .map_err(ApiError::bad_request)?;
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

// ---- writes ----

/// The JSON object body of a request, checked against the model's `allowed` fields.
fn body_object(body: &Bytes, allowed: &[&str]) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("The request body is not valid JSON: {e}.")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Invalid property \"{unknown}\" in the request body."
        )));
    }
    Ok(map)
}

/// The lab keeps names, descriptions and connectivity as created: a request to change them is
/// refused rather than silently ignored.
fn refuse_changes(map: &Map<String, Value>, fields: &[&str], what: &str) -> Result<(), ApiError> {
    match fields.iter().find(|f| map.contains_key(**f)) {
        Some(field) => Err(ApiError::bad_request(format!(
            "The lab's PowerStore does not change \"{field}\" of {what}."
        ))),
        None => Ok(()),
    }
}

fn required_str<'m>(map: &'m Map<String, Value>, field: &str) -> Result<&'m str, ApiError> {
    map.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("The property \"{field}\" is required.")))
}

fn optional_lun(map: &Map<String, Value>) -> Result<Option<u32>, ApiError> {
    match map.get("logical_unit_number") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("logical_unit_number must be an integer.")),
    }
}

/// What a mutating request did, for its answer and, with `is_async=true`, its job.
struct Outcome {
    action: &'static str,
    resource_type: &'static str,
    resource_id: String,
    result: Result<(StatusCode, Option<Value>), ApiError>,
}

fn is_async(params: &[(String, String)]) -> bool {
    params
        .iter()
        .any(|(k, v)| k == "is_async" && v.eq_ignore_ascii_case("true"))
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, FacadeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers `outcome` directly, or as a finished job when the client asked for one.
    fn finish(&self, params: &[(String, String)], outcome: Outcome) -> Response {
        if !is_async(params) {
            return match outcome.result {
                Ok((status, Some(body))) => (status, axum::Json(body)).into_response(),
                Ok((status, None)) => status.into_response(),
                Err(error) => error.into_response(),
            };
        }
        let mut state = self.state();
        state.counter += 1;
        let id = stable_uuid(&[&self.array, "job", &state.counter.to_string()]);
        let now = crate::vcenter::now_datetime();
        let (job_state, status, body) = match &outcome.result {
            Ok((status, body)) => ("COMPLETED", *status, body.clone().unwrap_or(Value::Null)),
            Err(error) => ("FAILED", error.status, error.body()),
        };
        state.jobs.insert(
            id.clone(),
            json!({
                "id": id,
                "resource_action": outcome.action,
                "resource_type": outcome.resource_type,
                "resource_id": outcome.resource_id,
                "description_l10n": format!("{} {}", outcome.action, outcome.resource_type),
                "state": job_state,
                "start_time": now,
                "end_time": now,
                "progress_percentage": 100,
                "user": self.username,
                "response_body": body,
                "response_status": status.as_u16().to_string(),
                "step_order": 0,
            }),
        );
        (StatusCode::ACCEPTED, axum::Json(json!({ "id": id }))).into_response()
    }

    /// [`Inner::finish`] for a write that answers 204 without a body.
    fn finish_empty(
        &self,
        params: &[(String, String)],
        action: &'static str,
        resource_type: &'static str,
        resource_id: &str,
        result: Result<(), ApiError>,
    ) -> Response {
        self.finish(
            params,
            Outcome {
                action,
                resource_type,
                resource_id: resource_id.to_owned(),
                result: result.map(|()| (StatusCode::NO_CONTENT, None)),
            },
        )
    }

    /// [`Inner::finish`] for a create that answers 201 with the new object's id.
    fn finish_created(
        &self,
        params: &[(String, String)],
        action: &'static str,
        resource_type: &'static str,
        result: Result<String, ApiError>,
    ) -> Response {
        let resource_id = result.as_ref().map(Clone::clone).unwrap_or_default();
        self.finish(
            params,
            Outcome {
                action,
                resource_type,
                resource_id,
                result: result.map(|id| (StatusCode::CREATED, Some(json!({ "id": id })))),
            },
        )
    }

    /// Every record, built from the SAN and the facade's own state.
    fn world(&self) -> World {
        let state = self.state();
        let mut world = World::default();
        let array = &self.array;
        for volume in self.san.volumes(array) {
            world.insert(
                Kind::Volume,
                json!({
                    "id": volume.uuid,
                    "name": volume.name,
                    "description": null,
                    "type": "Primary",
                    "wwn": volume.naa,
                    "appliance_id": "A1",
                    "state": "Ready",
                    "size": volume.size_bytes,
                    "logical_used": 0,
                    "node_affinity": "System_Select_At_Attach",
                    "creation_timestamp": "2026-01-01T00:00:00.000+00:00",
                    "is_replication_destination": false,
                    "is_host_access_available": true,
                    "protection_data": null,
                    "location_history": [],
                    "app_type": null,
                    "type_l10n": "Primary",
                    "state_l10n": "Ready",
                    "node_affinity_l10n": "System Select At Attach",
                }),
            );
        }
        let member_of: BTreeMap<&str, &str> = state
            .host_groups
            .iter()
            .flat_map(|(group, hosts)| hosts.iter().map(move |h| (h.as_str(), group.as_str())))
            .collect();
        let group_id = |name: &str| stable_uuid(&[array, "group", name]);
        for group in self.san.groups(array) {
            if state.host_groups.contains_key(&group.name) {
                world.insert(
                    Kind::HostGroup,
                    json!({
                        "id": group.uuid,
                        "name": group.name,
                        "description": group.comment,
                        "host_connectivity": "Local_Only",
                        "host_connectivity_l10n": "Local Only",
                    }),
                );
                continue;
            }
            let initiators: Vec<Value> = group
                .initiators
                .iter()
                .filter_map(|raw| port_of(raw))
                .map(|(port_name, port_type)| {
                    json!({
                        "port_name": port_name,
                        "port_type": port_type,
                        "chap_single_username": null,
                        "chap_mutual_username": null,
                        "active_sessions": [],
                        "port_type_l10n": port_type,
                    })
                })
                .collect();
            for initiator in &initiators {
                let port = initiator["port_name"].as_str().unwrap_or_default();
                let mut record = initiator.clone();
                record["id"] = json!(stable_uuid(&[array, "initiator", port]));
                record["host_id"] = json!(group.uuid);
                world.insert(Kind::Initiator, record);
            }
            let os_type = group.os_type.clone().unwrap_or_else(|| "ESXi".into());
            world.insert(
                Kind::Host,
                json!({
                    "id": group.uuid,
                    "name": group.name,
                    "description": group.comment,
                    "type": "External",
                    "os_type": os_type,
                    "host_group_id": member_of.get(group.name.as_str()).map(|g| group_id(g)),
                    "import_host_system_id": null,
                    "host_connectivity": "Local_Only",
                    "host_initiators": initiators,
                    "type_l10n": "External",
                    "os_type_l10n": os_type,
                    "host_connectivity_l10n": "Local Only",
                }),
            );
        }
        let volumes: BTreeMap<String, String> = self
            .san
            .volumes(array)
            .into_iter()
            .map(|v| (v.name, v.uuid))
            .collect();
        for mapping in self.san.mappings(array) {
            let in_group = state.host_groups.contains_key(&mapping.group);
            let target = group_id(&mapping.group);
            world.insert(
                Kind::Mapping,
                json!({
                    "id": stable_uuid(&[array, "mapping", &mapping.volume, &mapping.group]),
                    "host_id": if in_group { Value::Null } else { json!(target) },
                    "host_group_id": if in_group { json!(target) } else { Value::Null },
                    "volume_id": volumes.get(&mapping.volume),
                    "logical_unit_number": mapping.lun_id,
                }),
            );
        }
        world.insert(
            Kind::Cluster,
            json!({
                "id": "0",
                "global_id": self.global_id,
                "name": array,
                "management_address": "127.0.0.1",
                "master_appliance_id": "A1",
                "primary_appliance_id": "A1",
                "appliance_count": 1,
                "physical_mtu": 1500,
                "is_encryption_enabled": false,
                "compatibility_level": 10,
                "state": "Configured",
                "state_l10n": "Configured",
                "system_time": crate::vcenter::now_datetime(),
            }),
        );
        for (id, is_cluster) in [("cluster", true), ("A1", false)] {
            world.insert(
                Kind::Software,
                json!({
                    "id": stable_uuid(&[array, "software", id]),
                    "is_cluster": is_cluster,
                    "release_version": RELEASE_VERSION,
                    "build_version": format!("{RELEASE_VERSION}.0"),
                    "build_flavor": "Retail",
                    "build_type": "Release",
                }),
            );
        }
        for job in state.jobs.values() {
            world.insert(Kind::Job, job.clone());
        }
        world
    }

    /// The name of the host (not host group) with this id.
    fn host_name(&self, id: &str) -> Result<String, ApiError> {
        let state = self.state();
        self.san
            .groups(&self.array)
            .into_iter()
            .find(|g| g.uuid == id && !state.host_groups.contains_key(&g.name))
            .map(|g| g.name)
            .ok_or_else(|| ApiError::not_found(&format!("host {id}")))
    }

    fn host_group_name(&self, id: &str) -> Result<String, ApiError> {
        let state = self.state();
        self.san
            .groups(&self.array)
            .into_iter()
            .find(|g| g.uuid == id && state.host_groups.contains_key(&g.name))
            .map(|g| g.name)
            .ok_or_else(|| ApiError::not_found(&format!("host group {id}")))
    }

    fn volume_name(&self, id: &str) -> Result<String, ApiError> {
        self.san
            .volumes(&self.array)
            .into_iter()
            .find(|v| v.uuid == id)
            .map(|v| v.name)
            .ok_or_else(|| ApiError::not_found(&format!("volume {id}")))
    }

    fn group_of_host(&self, host: &str) -> Option<String> {
        self.state()
            .host_groups
            .iter()
            .find(|(_, members)| members.iter().any(|m| m == host))
            .map(|(group, _)| group.clone())
    }

    /// The host (by name) that already holds an initiator with this identity, if any.
    fn owner_of(&self, id: &InitiatorId) -> Option<String> {
        let state = self.state();
        self.san
            .groups(&self.array)
            .into_iter()
            .filter(|g| !state.host_groups.contains_key(&g.name))
            .find(|g| {
                g.initiators
                    .iter()
                    .any(|i| InitiatorId::parse(i).is_ok_and(|known| known == *id))
            })
            .map(|g| g.name)
    }

    /// Makes a host group's SAN group hold exactly its members' initiators.
    fn sync_host_group(&self, group: &str) -> Result<(), ApiError> {
        let members = self
            .state()
            .host_groups
            .get(group)
            .cloned()
            .unwrap_or_default();
        let wanted: Vec<String> = members
            .iter()
            .filter_map(|h| self.san.group(&self.array, h))
            .flat_map(|g| g.initiators)
            .collect();
        let current = self
            .san
            .group(&self.array, group)
            .map(|g| g.initiators)
            .unwrap_or_default();
        let same = |a: &str, b: &str| matches!((InitiatorId::parse(a), InitiatorId::parse(b)), (Ok(x), Ok(y)) if x == y);
        for stale in current
            .iter()
            .filter(|c| !wanted.iter().any(|w| same(c, w)))
        {
            self.san.remove_initiator(&self.array, group, stale)?;
        }
        for missing in wanted
            .iter()
            .filter(|w| !current.iter().any(|c| same(c, w)))
        {
            match self.san.add_initiator(&self.array, group, missing) {
                Ok(()) | Err(SanError::InitiatorExists { .. }) => {}
                Err(other) => return Err(other.into()),
            }
        }
        Ok(())
    }

    fn create_host_group(
        &self,
        name: &str,
        host_ids: &[String],
        description: Option<String>,
    ) -> Result<String, ApiError> {
        if self.san.group(&self.array, name).is_some() {
            return Err(ApiError::rule(format!(
                "The name {name} is already used by a host or host group."
            )));
        }
        let mut hosts = Vec::new();
        for id in host_ids {
            let host = self.host_name(id)?;
            if let Some(group) = self.group_of_host(&host) {
                return Err(ApiError::rule(format!(
                    "Host {host} is already a member of host group {group}."
                )));
            }
            hosts.push(host);
        }
        let group = self.san.create_group_with_comment(
            &self.array,
            GroupSpec {
                name: name.to_owned(),
                ..GroupSpec::default()
            },
            description,
        )?;
        self.state().host_groups.insert(name.to_owned(), hosts);
        self.sync_host_group(name)?;
        Ok(group.uuid)
    }

    /// Attaches (or detaches) `volume_id` to the host or host group `target`.
    fn attach(
        &self,
        volume_id: &str,
        target: &str,
        lun: Option<u32>,
        attach: bool,
    ) -> Result<(), ApiError> {
        let volume = self.volume_name(volume_id)?;
        let is_group = self.state().host_groups.contains_key(target);
        if !is_group && let Some(group) = self.group_of_host(target) {
            return Err(ApiError::rule(format!(
                "Host {target} is a member of host group {group}: attach and detach volumes through the host group."
            )));
        }
        if attach {
            match self.san.map_at(&self.array, &volume, target, lun) {
                Ok(_) => Ok(()),
                Err(SanError::AlreadyMapped { .. }) => Err(ApiError::rule(format!(
                    "Volume {volume} is already attached to {target}."
                ))),
                Err(other) => Err(other.into()),
            }
        } else {
            match self.san.unmap(&self.array, &volume, target) {
                Ok(()) => Ok(()),
                Err(SanError::NotMapped { .. }) => Err(ApiError::rule(format!(
                    "Volume {volume} is not attached to {target}."
                ))),
                Err(other) => Err(other.into()),
            }
        }
    }
}

/// How the API spells an initiator the SAN holds: (port_name, port_type).
fn port_of(raw: &str) -> Option<(String, &'static str)> {
    let lower = raw.trim().to_ascii_lowercase();
    if lower.starts_with("iqn.") || lower.starts_with("eui.") {
        return Some((raw.trim().to_owned(), "iSCSI"));
    }
    if lower.starts_with("nqn.") {
        return Some((raw.trim().to_owned(), "NVMe"));
    }
    let id = InitiatorId::parse(raw).ok()?;
    let hex = id.as_str();
    if hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        let pairs: Vec<&str> = (0..8).map(|i| &hex[i * 2..i * 2 + 2]).collect();
        return Some((pairs.join(":"), "FC"));
    }
    None
}

/// Checks one `{port_name, port_type}` of a request against the protocol's spelling.
fn check_port(initiator: &Value) -> Result<String, ApiError> {
    let Value::Object(map) = initiator else {
        return Err(ApiError::bad_request("An initiator must be an object."));
    };
    const FIELDS: &[&str] = &[
        "port_name",
        "port_type",
        "chap_single_username",
        "chap_single_password",
        "chap_mutual_username",
        "chap_mutual_password",
    ];
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Invalid property \"{unknown}\" in an initiator."
        )));
    }
    let name = required_str(map, "port_name")?;
    let port_type = required_str(map, "port_type")?;
    let lower = name.to_ascii_lowercase();
    let fc_ok = name.len() == 23
        && name
            .split(':')
            .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
    let valid = match port_type {
        "iSCSI" => lower.starts_with("iqn.") || lower.starts_with("eui."),
        "FC" => fc_ok,
        "NVMe" | "NVMe_vVol" => lower.starts_with("nqn."),
        other => {
            return Err(ApiError::bad_request(format!(
                "port_type {other:?} is not one of iSCSI, FC, NVMe, NVMe_vVol."
            )));
        }
    };
    if !valid {
        return Err(ApiError::bad_request(format!(
            "port_name {name:?} is not a valid {port_type} initiator name{}.",
            if port_type == "FC" {
                " (expected a colon-separated WWPN such as 21:00:00:24:ff:4c:a4:7e)"
            } else {
                ""
            }
        )));
    }
    Ok(name.to_owned())
}

/// Refuses initiators another host already has (or that repeat within the request).
fn check_unclaimed(inner: &Inner, ports: &[String], except: Option<&str>) -> Result<(), ApiError> {
    let mut seen: Vec<InitiatorId> = Vec::new();
    for port in ports {
        let id = InitiatorId::parse(port)?;
        if seen.contains(&id) {
            return Err(ApiError::bad_request(format!(
                "Initiator {port} is listed twice."
            )));
        }
        if let Some(owner) = inner.owner_of(&id).filter(|o| Some(o.as_str()) != except) {
            return Err(ApiError::rule(format!(
                "Initiator {port} is already registered to host {owner}."
            )));
        }
        seen.push(id);
    }
    Ok(())
}

const OS_TYPES: &[&str] = &["Windows", "Linux", "ESXi", "AIX", "HP-UX", "Solaris"];

async fn host_create(
    State(inner): State<Arc<Inner>>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let result = (|| {
        let map = body_object(
            &body,
            &[
                "name",
                "description",
                "os_type",
                "host_connectivity",
                "initiators",
            ],
        )?;
        let name = required_str(&map, "name")?;
        let os_type = required_str(&map, "os_type")?;
        if !OS_TYPES.contains(&os_type) {
            return Err(ApiError::bad_request(format!(
                "os_type {os_type:?} is not one of {}.",
                OS_TYPES.join(", ")
            )));
        }
        let initiators = map
            .get("initiators")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad_request("The property \"initiators\" is required."))?;
        let ports = initiators
            .iter()
            .map(check_port)
            .collect::<Result<Vec<_>, _>>()?;
        if inner.san.group(&inner.array, name).is_some() {
            return Err(ApiError::rule(format!(
                "The name {name} is already used by a host or host group."
            )));
        }
        check_unclaimed(&inner, &ports, None)?;
        let group = inner.san.create_group_with_comment(
            &inner.array,
            GroupSpec {
                name: name.to_owned(),
                initiators: ports,
                protocol: None,
                os_type: Some(os_type.to_owned()),
            },
            map.get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
        )?;
        Ok(group.uuid)
    })();
    inner.finish_created(&params, "create", "host", result)
}

async fn host_modify(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let result = (|| {
        let map = body_object(
            &body,
            &[
                "name",
                "description",
                "host_connectivity",
                "remove_initiators",
                "add_initiators",
                "modify_initiators",
            ],
        )?;
        let host = inner.host_name(&id)?;
        refuse_changes(
            &map,
            &[
                "name",
                "description",
                "host_connectivity",
                "modify_initiators",
            ],
            "a host",
        )?;
        let adds = match map.get("add_initiators") {
            Some(Value::Array(items)) => items
                .iter()
                .map(check_port)
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(ApiError::bad_request("add_initiators must be a list.")),
            None => Vec::new(),
        };
        let removes: Vec<String> = match map.get("remove_initiators") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| ApiError::bad_request("remove_initiators are port names."))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(ApiError::bad_request("remove_initiators must be a list.")),
            None => Vec::new(),
        };
        check_unclaimed(&inner, &adds, None)?;
        for port in &adds {
            inner.san.add_initiator(&inner.array, &host, port)?;
        }
        for port in &removes {
            inner.san.remove_initiator(&inner.array, &host, port)?;
        }
        if let Some(group) = inner.group_of_host(&host) {
            inner.sync_host_group(&group)?;
        }
        Ok(())
    })();
    inner.finish_empty(&params, "modify", "host", &id, result)
}

async fn host_delete(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let result = (|| {
        body_object(&body, &[])?;
        let host = inner.host_name(&id)?;
        if let Some(group) = inner.group_of_host(&host) {
            return Err(ApiError::rule(format!(
                "Host {host} is a member of host group {group}; remove it from the group first."
            )));
        }
        inner.san.delete_group(&inner.array, &host)?;
        Ok(())
    })();
    inner.finish_empty(&params, "delete", "host", &id, result)
}

async fn host_group_create(
    State(inner): State<Arc<Inner>>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let result = (|| {
        let map = body_object(&body, &["name", "description", "host_ids"])?;
        let name = required_str(&map, "name")?;
        let host_ids: Vec<String> = map
            .get("host_ids")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad_request("The property \"host_ids\" is required."))?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let description = map
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned);
        inner.create_host_group(name, &host_ids, description)
    })();
    inner.finish_created(&params, "create", "host_group", result)
}

async fn host_group_modify(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let result = (|| {
        let map = body_object(
            &body,
            &[
                "name",
                "description",
                "host_connectivity",
                "remove_host_ids",
                "add_host_ids",
            ],
        )?;
        let group = inner.host_group_name(&id)?;
        refuse_changes(
            &map,
            &["name", "description", "host_connectivity"],
            "a host group",
        )?;
        let ids = |key: &str| -> Vec<String> {
            map.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        for host_id in ids("add_host_ids") {
            let host = inner.host_name(&host_id)?;
            if let Some(other) = inner.group_of_host(&host) {
                return Err(ApiError::rule(format!(
                    "Host {host} is already a member of host group {other}."
                )));
            }
            if let Some(members) = inner.state().host_groups.get_mut(&group) {
                members.push(host);
            }
        }
        for host_id in ids("remove_host_ids") {
            let host = inner.host_name(&host_id)?;
            if let Some(members) = inner.state().host_groups.get_mut(&group) {
                members.retain(|m| *m != host);
            }
        }
        inner.sync_host_group(&group)
    })();
    inner.finish_empty(&params, "modify", "host_group", &id, result)
}

async fn host_group_delete(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
) -> Response {
    let result = (|| {
        let group = inner.host_group_name(&id)?;
        inner.san.delete_group(&inner.array, &group)?;
        inner.state().host_groups.remove(&group);
        Ok(())
    })();
    inner.finish_empty(&params, "delete", "host_group", &id, result)
}

/// `POST /host/{id}/attach|detach` and `/host_group/{id}/attach|detach` with `{volume_id}`.
async fn group_attach(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    body: Bytes,
    kind: Kind,
    attach: bool,
) -> Response {
    let result = (|| {
        let allowed: &[&str] = if attach {
            &["volume_id", "logical_unit_number"]
        } else {
            &["volume_id"]
        };
        let map = body_object(&body, allowed)?;
        let volume_id = required_str(&map, "volume_id")?;
        let target = if kind == Kind::HostGroup {
            inner.host_group_name(&id)?
        } else {
            inner.host_name(&id)?
        };
        inner.attach(volume_id, &target, optional_lun(&map)?, attach)
    })();
    inner.finish_empty(
        &params,
        if attach { "attach" } else { "detach" },
        if kind == Kind::HostGroup {
            "host_group"
        } else {
            "host"
        },
        &id,
        result,
    )
}

/// `POST /volume/{id}/attach|detach` with exactly one of `host_id` and `host_group_id`.
async fn volume_attach_or_detach(
    inner: Arc<Inner>,
    id: String,
    params: Vec<(String, String)>,
    body: Bytes,
    attach: bool,
) -> Response {
    let result = (|| {
        let allowed: &[&str] = if attach {
            &["host_id", "host_group_id", "logical_unit_number"]
        } else {
            &["host_id", "host_group_id"]
        };
        let map = body_object(&body, allowed)?;
        let host = map.get("host_id").and_then(Value::as_str);
        let group = map.get("host_group_id").and_then(Value::as_str);
        let target = match (host, group) {
            (Some(h), None) => inner.host_name(h)?,
            (None, Some(g)) => inner.host_group_name(g)?,
            _ => {
                return Err(ApiError::bad_request(
                    "Exactly one of host_id and host_group_id is required.",
                ));
            }
        };
        inner.attach(&id, &target, optional_lun(&map)?, attach)
    })();
    inner.finish_empty(
        &params,
        if attach { "attach" } else { "detach" },
        "volume",
        &id,
        result,
    )
}

async fn volume_attach(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    volume_attach_or_detach(inner, id, params, body, true).await
}

async fn volume_detach(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    volume_attach_or_detach(inner, id, params, body, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_initiators_are_spelled_as_the_api_does() {
        assert_eq!(
            port_of("fc.20000025b5000001:21000025B5000001").unwrap(),
            ("21:00:00:25:b5:00:00:01".to_owned(), "FC")
        );
        assert_eq!(port_of("iqn.1998-01.com.vmware:esx-1").unwrap().1, "iSCSI");
        assert_eq!(port_of("nqn.2014-08.org.nvmexpress:x").unwrap().1, "NVMe");
        assert!(port_of("vmhba64").is_none());
    }

    #[test]
    fn request_initiators_must_use_the_protocol_spelling() {
        let port =
            |name: &str, kind: &str| check_port(&json!({"port_name": name, "port_type": kind}));
        assert!(port("21:00:00:25:b5:00:00:01", "FC").is_ok());
        assert!(port("21000025b5000001", "FC").is_err());
        assert!(port("iqn.1998-01.com.vmware:esx-1", "iSCSI").is_ok());
        assert!(port("iqn.1998-01.com.vmware:esx-1", "FC").is_err());
        assert!(port("vmhba64", "iSCSI").is_err());
        assert!(port("iqn.x", "SAS").is_err());
        assert!(
            check_port(&json!({"port_name": "iqn.x", "port_type": "iSCSI", "wwn": 1})).is_err()
        );
    }
}
