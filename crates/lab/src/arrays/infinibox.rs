//! Infinidat InfiniBox REST facade (`/api/rest/...`) over the lab SAN: one system whose volumes,
//! hosts, host clusters and LUN mappings are the SAN model's volumes, groups and mappings.
//!
//! Written from Infinidat's public InfiniBox REST API documentation and the wire behaviour of
//! Infinidat's own Python SDK (`infinisdk`):
//! - **Envelope.** Every answer is `{"result": …, "error": …, "metadata": …}`. A failure carries
//!   `error: {"code", "message", "reasons", "is_remote", "data"}` and `result: null`; the `code`
//!   values are the lab's own in the array's upper-snake style, the HTTP status and the shape are the
//!   contract.
//! - **Authentication.** HTTP Basic on any request, or a session: `POST /users/login` with
//!   `{"username", "password", "clientid"?}` sets the `JSESSIONID` cookie, `POST /users/logout`
//!   ends it. No credentials, wrong ones or an unknown/expired session answer 401, except on
//!   `GET /_features`, which clients read before they log in.
//! - **Approval.** Destructive requests (`DELETE`) must carry `approved=true`, else 403
//!   `APPROVAL_REQUIRED` (the SDK adds it to every non-GET request).
//! - **Collections** page with `page` (from 1) and `page_size` (default 50, at most 1000); the
//!   metadata says `number_of_objects`, `page`, `page_size` and `pages_total`. Filters are
//!   `<field>=eq:<value>` (a bare value means `eq`); `fields=a,b` projects; `sort` is accepted. An
//!   unknown field in a filter, `fields` or a body is 400.
//! - **System.** `GET /system` (with `fields=`) answers name, serial, model and `version`, which
//!   the SDK checks at connect; `GET /_features` lists the features it keys behaviour on
//!   (`api_auth_sessions`, `metadata` version 2).
//! - **Hosts and host clusters.** `/hosts` (ports `{type: fc|iscsi|nvme, address}`, an FC address
//!   spelled as 16 lower-case hex digits, an initiator belongs to at most one host),
//!   `/hosts/host_id_by_initiator_address/{address}`, `/clusters` whose members see every volume
//!   mapped to the cluster. Mappings: `POST /hosts|clusters/{id}/luns` `{volume_id, lun?}` (409
//!   when already mapped), `GET …/luns`, `DELETE …/luns/lun/{lun}` (404 when absent),
//!   `GET /volumes/{id}/luns`. A host with LUNs or in a cluster cannot be deleted (409).
//! - **Metadata.** `PUT /metadata/{object_id}` with `{key: value}`, `GET /metadata/{object_id}`
//!   (paged `{id, object_id, key, value}` records), `GET|DELETE /metadata/{object_id}/{key}`;
//!   deleting an object deletes its metadata.
//!
//! A host cluster is a SAN group holding its member hosts' initiators; membership is kept here.
//! Object ids are numbers derived from the SAN's names (InfiniBox ids are unique across object
//! types, so metadata is addressed by id alone). Every route is listed in [`OPERATIONS`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query as QueryParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use serde_json::{Map, Value, json};

use super::{BasicCredentials, cookie};
use crate::san::{GroupSpec, InitiatorGroup, InitiatorId, San, SanError, Volume, stable_hash};

/// Where the API lives on the management address.
pub const BASE_PATH: &str = "/api/rest";
/// The release the facade reports in `GET /system` (`version`).
pub const SYSTEM_VERSION: &str = "7.3.10.0";
/// The model the facade reports.
pub const SYSTEM_MODEL: &str = "InfiniBox F4300";
/// The session cookie `POST /users/login` sets.
pub const SESSION_COOKIE: &str = "JSESSIONID";
/// Items per page when the request names no `page_size`.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The largest `page_size` the array accepts.
pub const MAX_PAGE_SIZE: usize = 1000;
/// CSI driver name of Infinidat's InfiniBox CSI driver: the `spec.csi.driver` of its PVs.
pub const CSI_DRIVER: &str = "infinibox-csi-driver";

/// Every (method, path template) the facade serves, under [`BASE_PATH`].
pub const OPERATIONS: &[(&str, &str)] = &[
    ("POST", "/users/login"),
    ("POST", "/users/logout"),
    ("GET", "/_features"),
    ("GET", "/system"),
    ("GET", "/volumes"),
    ("GET", "/volumes/{id}"),
    ("GET", "/volumes/{id}/luns"),
    ("GET", "/hosts"),
    ("POST", "/hosts"),
    ("GET", "/hosts/{id}"),
    ("DELETE", "/hosts/{id}"),
    ("GET", "/hosts/host_id_by_initiator_address/{address}"),
    ("POST", "/hosts/{id}/ports"),
    ("DELETE", "/hosts/{id}/ports/{type}/{address}"),
    ("GET", "/hosts/{id}/luns"),
    ("POST", "/hosts/{id}/luns"),
    ("DELETE", "/hosts/{id}/luns/lun/{lun}"),
    ("GET", "/clusters"),
    ("POST", "/clusters"),
    ("GET", "/clusters/{id}"),
    ("DELETE", "/clusters/{id}"),
    ("POST", "/clusters/{id}/hosts"),
    ("DELETE", "/clusters/{id}/hosts/{host_id}"),
    ("GET", "/clusters/{id}/luns"),
    ("POST", "/clusters/{id}/luns"),
    ("DELETE", "/clusters/{id}/luns/lun/{lun}"),
    ("GET", "/metadata/{object_id}"),
    ("PUT", "/metadata/{object_id}"),
    ("DELETE", "/metadata/{object_id}"),
    ("GET", "/metadata/{object_id}/{key}"),
    ("DELETE", "/metadata/{object_id}/{key}"),
];

/// The fields of each object type (filters, `fields=` and bodies are checked against them).
const HOST_FIELDS: &[&str] = &[
    "id",
    "name",
    "host_cluster_id",
    "ports",
    "luns",
    "luns_count",
    "ports_count",
    "host_type",
    "san_client_type",
    "security_method",
    "tenant_id",
    "created_at",
    "updated_at",
];
const CLUSTER_FIELDS: &[&str] = &[
    "id",
    "name",
    "hosts",
    "luns",
    "luns_count",
    "host_type",
    "san_client_type",
    "tenant_id",
    "created_at",
    "updated_at",
];
const VOLUME_FIELDS: &[&str] = &[
    "id",
    "name",
    "serial",
    "size",
    "type",
    "provtype",
    "dataset_type",
    "mapped",
    "pool_id",
    "parent_id",
    "depth",
    "has_children",
    "write_protected",
    "tenant_id",
    "created_at",
    "updated_at",
];
const LUN_FIELDS: &[&str] = &[
    "id",
    "lun",
    "clustered",
    "host_cluster_id",
    "host_id",
    "volume_id",
];
const METADATA_FIELDS: &[&str] = &["id", "object_id", "object_type", "key", "value"];

/// The InfiniBox REST API of `array` in `san`, for `username`/`password`.
pub fn router(san: San, array: &str, username: &str, password: &str) -> Router {
    InfiniBox::new(san, array, username, password).router()
}

/// What Infinidat's CSI driver puts in the PV of a volume it provisioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsiVolume {
    pub volume: Volume,
    /// The array's id of the volume.
    pub id: u64,
    /// `spec.csi.volumeHandle`: `<volume id>$$<protocol>`.
    pub volume_handle: String,
    /// `spec.csi.volumeAttributes`: `Name` and `storage_protocol`.
    pub volume_attributes: BTreeMap<String, String>,
}

/// Creates the volume behind an InfiniBox CSI PV.
pub fn create_csi_volume(
    san: &San,
    array: &str,
    name: &str,
    size_bytes: u64,
) -> Result<CsiVolume, SanError> {
    let volume = san.create_volume(array, name, size_bytes)?;
    let id = object_id(array, "volume", &volume.name);
    Ok(CsiVolume {
        id,
        volume_handle: format!("{id}$$iscsi"),
        volume_attributes: BTreeMap::from([
            ("Name".to_owned(), volume.name.clone()),
            ("storage_protocol".to_owned(), "iscsi".to_owned()),
        ]),
        volume,
    })
}

/// The id InfiniBox gives the object `name` of `kind` on `array`: stable for the name, unique
/// across kinds (metadata is addressed by id alone).
pub fn object_id(array: &str, kind: &str, name: &str) -> u64 {
    // 31 bits: ids stay JSON-safe and look like the array's small integers; one in a thousand
    // is never 0.
    (stable_hash(&[array, kind, name]) & 0x7fff_ffff).max(1)
}

/// InfiniBox in the lab rig: the CSI driver names the volume after the PV and records the name in
/// `volumeAttributes.Name`; `populate` needs no key of InfiniBox's own.
pub struct InfiniBoxFacade;

impl crate::rig::ArrayFacade for InfiniBoxFacade {
    fn product(&self) -> &'static str {
        "infinibox"
    }

    fn create_csi_volume(
        &self,
        san: &San,
        array: &crate::lab::ArrayEndpoint,
        name: &str,
        size_bytes: u64,
    ) -> Result<crate::rig::TargetVolume, SanError> {
        let csi = create_csi_volume(san, &array.name, name, size_bytes)?;
        Ok(crate::rig::TargetVolume {
            pvc: name.to_owned(),
            array: array.name.clone(),
            volume_handle: csi.volume_handle,
            attributes: csi.volume_attributes.into_iter().collect(),
            name: csi.volume.name,
            naa: csi.volume.naa,
            backing_path: csi.volume.backing_path,
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

/// An InfiniBox system over the SAN, with handles the tests use to inspect and inject state.
#[derive(Clone)]
pub struct InfiniBox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for InfiniBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfiniBox")
            .field("array", &self.inner.array)
            .finish_non_exhaustive()
    }
}

struct Inner {
    san: San,
    array: String,
    credentials: BasicCredentials,
    username: String,
    password: String,
    state: Mutex<FacadeState>,
}

#[derive(Default)]
struct FacadeState {
    /// Live session cookies.
    sessions: Vec<String>,
    /// Host cluster name → member host names.
    clusters: BTreeMap<String, Vec<String>>,
    /// Object id → key → value.
    metadata: BTreeMap<u64, BTreeMap<String, String>>,
    counter: u64,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, FacadeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl InfiniBox {
    pub fn new(san: San, array: &str, username: &str, password: &str) -> InfiniBox {
        InfiniBox {
            inner: Arc::new(Inner {
                san,
                array: array.to_owned(),
                credentials: BasicCredentials::new(username, password),
                username: username.to_owned(),
                password: password.to_owned(),
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
            .fallback(|| async {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "The requested URL was not found",
                )
                .into_response()
            })
            .layer(middleware::from_fn_with_state(
                self.inner.clone(),
                authenticate,
            ))
            .with_state(self.inner.clone());
        Router::new().nest(BASE_PATH, api)
    }

    /// Creates a volume as Infinidat's CSI driver does for a PVC, with the PV fields that name it.
    pub fn create_csi_volume(&self, name: &str, size_bytes: u64) -> Result<CsiVolume, SanError> {
        create_csi_volume(&self.inner.san, &self.inner.array, name, size_bytes)
    }

    /// The id the API shows for host (or host cluster) `name`.
    pub fn host_id(&self, name: &str) -> u64 {
        object_id(&self.inner.array, "host", name)
    }

    /// The id the API shows for host cluster `name`.
    pub fn cluster_id(&self, name: &str) -> u64 {
        object_id(&self.inner.array, "cluster", name)
    }

    /// Makes `hosts` the members of a new host cluster `name` (an administrator's grouping, e.g.
    /// an ESXi cluster): the same rules as `POST /clusters` and `POST /clusters/{id}/hosts`.
    pub fn create_cluster(&self, name: &str, hosts: &[&str]) -> Result<(), String> {
        self.inner.create_cluster(name).map_err(|e| e.message)?;
        for host in hosts {
            self.inner
                .add_cluster_member(name, host)
                .map_err(|e| e.message)?;
        }
        Ok(())
    }

    /// The metadata of object `id` (what `GET /metadata/{id}` lists).
    pub fn metadata(&self, id: u64) -> BTreeMap<String, String> {
        self.inner
            .state()
            .metadata
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }

    /// What a copy may have left on the array: hosts named `xcopy-…`, every mapping to them and
    /// metadata of objects that no longer exist. Empty after a clean run.
    pub fn leftovers(&self) -> Vec<String> {
        let mut found = super::xcopy_leftovers(&self.inner.san, &self.inner.array, "mapped to");
        let live: Vec<u64> = self.inner.objects().iter().map(|(id, _)| *id).collect();
        found.extend(
            self.inner
                .state()
                .metadata
                .keys()
                .filter(|id| !live.contains(id))
                .map(|id| format!("metadata of deleted object {id}")),
        );
        found
    }

    /// Ends every session, as an idle timeout or a restart of the management software does.
    pub fn expire_sessions(&self) {
        self.inner.state().sessions.clear();
    }

    /// How many sessions are open (a client that logs out leaves none).
    pub fn open_sessions(&self) -> usize {
        self.inner.state().sessions.len()
    }
}

fn routes_for(path: &str) -> MethodRouter<Arc<Inner>> {
    match path {
        "/users/login" => post(login),
        "/users/logout" => post(logout),
        "/_features" => get(features),
        "/system" => get(system),
        "/volumes" => get(|s, q| list(s, q, Listing::Volumes)),
        "/volumes/{id}" => get(|s, p, q| instance(s, p, q, Listing::Volumes)),
        "/volumes/{id}/luns" => get(|s, p, q| luns_of(s, p, q, Owner::Volume)),
        "/hosts" => get(|s, q| list(s, q, Listing::Hosts)).post(host_create),
        "/hosts/{id}" => get(|s, p, q| instance(s, p, q, Listing::Hosts)).delete(host_delete),
        "/hosts/host_id_by_initiator_address/{address}" => get(host_by_address),
        "/hosts/{id}/ports" => post(port_add),
        "/hosts/{id}/ports/{type}/{address}" => delete(port_remove),
        "/hosts/{id}/luns" => {
            get(|s, p, q| luns_of(s, p, q, Owner::Host)).post(|s, p, b| lun_map(s, p, b, false))
        }
        "/hosts/{id}/luns/lun/{lun}" => delete(|s, p| lun_unmap(s, p, false)),
        "/clusters" => get(|s, q| list(s, q, Listing::Clusters)).post(cluster_create),
        "/clusters/{id}" => {
            get(|s, p, q| instance(s, p, q, Listing::Clusters)).delete(cluster_delete)
        }
        "/clusters/{id}/hosts" => post(cluster_add_host),
        "/clusters/{id}/hosts/{host_id}" => delete(cluster_remove_host),
        "/clusters/{id}/luns" => {
            get(|s, p, q| luns_of(s, p, q, Owner::Cluster)).post(|s, p, b| lun_map(s, p, b, true))
        }
        "/clusters/{id}/luns/lun/{lun}" => delete(|s, p| lun_unmap(s, p, true)),
        "/metadata/{object_id}" => get(metadata_list).put(metadata_set).delete(metadata_clear),
        "/metadata/{object_id}/{key}" => get(metadata_get).delete(metadata_unset),
        other => unreachable!("OPERATIONS lists {other} without a handler"),
    }
}

// ---- envelope and errors ----

/// An InfiniBox error response.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
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
        ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }
}

impl From<SanError> for ApiError {
    fn from(error: SanError) -> ApiError {
        let (status, code) = match &error {
            SanError::InvalidName { .. }
            | SanError::InvalidSize { .. }
            | SanError::InvalidInitiator { .. }
            | SanError::LunIdOutOfRange { .. } => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            SanError::UnknownVolume { .. } => (StatusCode::NOT_FOUND, "VOLUME_NOT_FOUND"),
            SanError::UnknownGroup { .. } => (StatusCode::NOT_FOUND, "HOST_NOT_FOUND"),
            SanError::UnknownInitiator { .. } => (StatusCode::NOT_FOUND, "PORT_NOT_FOUND"),
            SanError::AlreadyMapped { .. } => (StatusCode::CONFLICT, "VOLUME_ALREADY_MAPPED"),
            SanError::LunIdInUse { .. } => (StatusCode::CONFLICT, "LUN_ALREADY_IN_USE"),
            SanError::GroupInUse { .. } => (StatusCode::CONFLICT, "HOST_HAS_LUNS"),
            SanError::UnknownArray { .. } | SanError::Backing { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
            }
            _ => (StatusCode::CONFLICT, "CONFLICT"),
        };
        ApiError::new(status, code, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "result": null,
            "error": {
                "code": self.code,
                "message": self.message,
                "reasons": [],
                "is_remote": false,
                "data": null,
            },
            "metadata": {"ready": true},
        });
        (self.status, axum::Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// `{"result": result, "error": null, "metadata": {"ready": true}}` with `status`.
fn answer(status: StatusCode, result: Value) -> Response {
    (
        status,
        axum::Json(json!({"result": result, "error": null, "metadata": {"ready": true}})),
    )
        .into_response()
}

fn ok(result: Value) -> ApiResult {
    Ok(answer(StatusCode::OK, result))
}

fn created(result: Value) -> ApiResult {
    Ok(answer(StatusCode::CREATED, result))
}

// ---- authentication ----

fn unauthorized(message: &str) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message).into_response()
}

async fn authenticate(State(inner): State<Arc<Inner>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let approved = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .any(|pair| pair.eq_ignore_ascii_case("approved=true"));
    if request.method() == Method::DELETE && !approved {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "APPROVAL_REQUIRED",
            "This operation requires approval: repeat it with approved=true",
        )
        .into_response();
    }
    // The login, and the feature list clients read before logging in to learn whether the
    // array has sessions at all.
    if path.ends_with("/users/login") || path.ends_with("/_features") {
        return next.run(request).await;
    }
    let headers = request.headers();
    if headers.contains_key(header::AUTHORIZATION) {
        if inner.credentials.admits(headers) {
            return next.run(request).await;
        }
        return unauthorized("Wrong username or password");
    }
    match cookie(headers, SESSION_COOKIE) {
        Some(session) if inner.state().sessions.contains(&session) => next.run(request).await,
        Some(_) => unauthorized("The session has expired; log in again"),
        None => unauthorized("Authentication required"),
    }
}

async fn login(State(inner): State<Arc<Inner>>, body: Bytes) -> ApiResult {
    let map = body_object(&body, &["username", "password", "clientid"])?;
    let user = map.get("username").and_then(Value::as_str);
    let password = map.get("password").and_then(Value::as_str);
    if user != Some(inner.username.as_str()) || password != Some(inner.password.as_str()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "WRONG_USERNAME_OR_PASSWORD",
            "Wrong username or password",
        ));
    }
    let session = {
        let mut state = inner.state();
        state.counter += 1;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            .to_string();
        let session = format!(
            "{:016x}",
            stable_hash(&[&inner.array, "session", &state.counter.to_string(), &nanos])
        );
        state.sessions.push(session.clone());
        session
    };
    let mut response = answer(
        StatusCode::OK,
        json!({
            "id": object_id(&inner.array, "user", &inner.username),
            "name": inner.username,
            "role": "ADMIN",
            "roles": ["ADMIN"],
            "type": "Local",
            "enabled": true,
        }),
    );
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={session}; Path=/; Secure; HttpOnly"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn logout(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> ApiResult {
    if let Some(session) = cookie(&headers, SESSION_COOKIE) {
        inner.state().sessions.retain(|s| *s != session);
    }
    ok(Value::Null)
}

// ---- system ----

async fn features() -> ApiResult {
    ok(json!([
        {"name": "api_auth_sessions", "version": 1, "enabled": true},
        {"name": "metadata", "version": 2, "enabled": true},
        {"name": "iscsi", "version": 1, "enabled": true},
        {"name": "host_resiliency", "version": 1, "enabled": true},
    ]))
}

async fn system(
    State(inner): State<Arc<Inner>>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
) -> ApiResult {
    let serial = (stable_hash(&[&inner.array, "system"]) % 90_000 + 10_000).to_string();
    let record = json!({
        "id": 0,
        "name": inner.array,
        "serial_number": serial.parse::<u64>().unwrap_or(10_000),
        "model": SYSTEM_MODEL,
        "version": SYSTEM_VERSION,
        "release": {"system": {"revision": 0, "version": SYSTEM_VERSION}},
        "operational_state": {"state": "ACTIVE", "mode": "NORMAL"},
        "wwnn": format!("5742b0f0{:08x}", stable_hash(&[&inner.array]) & 0xffff_ffff),
    });
    let fields = selected_fields(&params, None)?;
    ok(project(&record, fields.as_deref()))
}

// ---- reads ----

/// The collections that list and filter the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    Volumes,
    Hosts,
    Clusters,
}

impl Listing {
    fn fields(self) -> &'static [&'static str] {
        match self {
            Listing::Volumes => VOLUME_FIELDS,
            Listing::Hosts => HOST_FIELDS,
            Listing::Clusters => CLUSTER_FIELDS,
        }
    }
}

/// Where a LUN list hangs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Volume,
    Host,
    Cluster,
}

/// `fields=a,b`: the named fields (each one known), or `None` for all.
fn selected_fields(
    params: &[(String, String)],
    known: Option<&[&str]>,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some((_, value)) = params.iter().find(|(k, _)| k == "fields") else {
        return Ok(None);
    };
    let names: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(known) = known
        && let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "Unknown field '{unknown}' in fields"
        )));
    }
    Ok(Some(names))
}

fn project(record: &Value, fields: Option<&[String]>) -> Value {
    match (record, fields) {
        (Value::Object(map), Some(fields)) => Value::Object(
            map.iter()
                .filter(|(k, _)| fields.iter().any(|f| f == *k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        _ => record.clone(),
    }
}

/// Whether `record` passes the `<field>=<op>:<value>` filters among `params`.
fn filters(params: &[(String, String)], known: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for (key, value) in params {
        if matches!(
            key.as_str(),
            "page" | "page_size" | "fields" | "sort" | "approved"
        ) {
            continue;
        }
        if !known.contains(&key.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Unknown field '{key}' in the query"
            )));
        }
        let wanted = match value.split_once(':') {
            Some(("eq", rest)) => rest.to_owned(),
            Some((op, _)) if matches!(op, "ne" | "gt" | "lt" | "ge" | "le" | "like" | "in") => {
                return Err(ApiError::bad_request(format!(
                    "The lab array supports only eq filters, not '{op}'"
                )));
            }
            _ => value.clone(),
        };
        out.push((key.clone(), wanted));
    }
    Ok(out)
}

fn matches_filters(record: &Value, wanted: &[(String, String)]) -> bool {
    wanted.iter().all(|(field, value)| match record.get(field) {
        Some(Value::String(s)) => s == value,
        Some(Value::Number(n)) => n.to_string() == *value,
        Some(Value::Bool(b)) => b.to_string() == *value,
        Some(Value::Null) | None => value == "null",
        Some(_) => false,
    })
}

fn number_param(params: &[(String, String)], name: &str) -> Result<Option<usize>, ApiError> {
    match params.iter().find(|(k, _)| k == name) {
        None => Ok(None),
        Some((_, v)) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be a positive integer"))),
    }
}

/// Filters, pages and projects `records` into the answer of a collection.
fn paged(records: Vec<Value>, params: &[(String, String)], known: &[&str]) -> ApiResult {
    let wanted = filters(params, known)?;
    let fields = selected_fields(params, Some(known))?;
    let page_size = number_param(params, "page_size")?.unwrap_or(DEFAULT_PAGE_SIZE);
    if page_size > MAX_PAGE_SIZE {
        return Err(ApiError::bad_request(format!(
            "page_size must be at most {MAX_PAGE_SIZE}"
        )));
    }
    let page = number_param(params, "page")?.unwrap_or(1);
    let matching: Vec<Value> = records
        .into_iter()
        .filter(|r| matches_filters(r, &wanted))
        .collect();
    let total = matching.len();
    let items: Vec<Value> = matching
        .iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .map(|r| project(r, fields.as_deref()))
        .collect();
    let body = json!({
        "result": items,
        "error": null,
        "metadata": {
            "ready": true,
            "number_of_objects": total,
            "page_size": page_size,
            "pages_total": total.div_ceil(page_size),
            "page": page,
        },
    });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

impl Inner {
    fn id(&self, kind: &str, name: &str) -> u64 {
        object_id(&self.array, kind, name)
    }

    fn cluster_of(&self, host: &str) -> Option<String> {
        self.state()
            .clusters
            .iter()
            .find(|(_, members)| members.iter().any(|m| m == host))
            .map(|(name, _)| name.clone())
    }

    fn is_cluster(&self, name: &str) -> bool {
        self.state().clusters.contains_key(name)
    }

    /// SAN groups that are hosts (not the groups standing for clusters).
    fn hosts(&self) -> Vec<InitiatorGroup> {
        let clusters: Vec<String> = self.state().clusters.keys().cloned().collect();
        self.san
            .groups(&self.array)
            .into_iter()
            .filter(|g| !clusters.contains(&g.name))
            .collect()
    }

    /// Every object id with its kind and name (for metadata).
    fn objects(&self) -> Vec<(u64, (&'static str, String))> {
        let mut all: Vec<(u64, (&'static str, String))> = self
            .san
            .volumes(&self.array)
            .into_iter()
            .map(|v| (self.id("volume", &v.name), ("VOLUME", v.name)))
            .collect();
        all.extend(
            self.hosts()
                .into_iter()
                .map(|h| (self.id("host", &h.name), ("HOST", h.name))),
        );
        let clusters: Vec<String> = self.state().clusters.keys().cloned().collect();
        all.extend(
            clusters
                .into_iter()
                .map(|c| (self.id("cluster", &c), ("CLUSTER", c))),
        );
        all
    }

    fn host_name(&self, id: &str) -> Result<String, ApiError> {
        self.hosts()
            .into_iter()
            .find(|h| self.id("host", &h.name).to_string() == id)
            .map(|h| h.name)
            .ok_or_else(|| ApiError::not_found("HOST_NOT_FOUND", format!("Host {id} not found")))
    }

    fn cluster_name(&self, id: &str) -> Result<String, ApiError> {
        let names: Vec<String> = self.state().clusters.keys().cloned().collect();
        names
            .into_iter()
            .find(|c| self.id("cluster", c).to_string() == id)
            .ok_or_else(|| {
                ApiError::not_found("CLUSTER_NOT_FOUND", format!("Host cluster {id} not found"))
            })
    }

    fn volume_named_by_id(&self, id: &str) -> Result<Volume, ApiError> {
        self.san
            .volumes(&self.array)
            .into_iter()
            .find(|v| self.id("volume", &v.name).to_string() == id)
            .ok_or_else(|| {
                ApiError::not_found("VOLUME_NOT_FOUND", format!("Volume {id} not found"))
            })
    }

    /// LUN records: mappings selected by `keep`, as seen from a host (`host` set) or not.
    fn lun_records(&self, keep: impl Fn(&str, &str) -> bool, host: Option<&str>) -> Vec<Value> {
        self.san
            .mappings(&self.array)
            .into_iter()
            .filter(|m| keep(&m.group, &m.volume))
            .map(|m| {
                let clustered = self.is_cluster(&m.group);
                let volume_id = self.id("volume", &m.volume);
                json!({
                    "id": object_id(&self.array, "lun", &format!("{}/{}", m.group, m.volume)),
                    "lun": m.lun_id,
                    "clustered": clustered,
                    "host_cluster_id": if clustered { json!(self.id("cluster", &m.group)) } else { Value::Null },
                    "host_id": match (clustered, host) {
                        (false, _) => json!(self.id("host", &m.group)),
                        (true, Some(h)) => json!(self.id("host", h)),
                        (true, None) => Value::Null,
                    },
                    "volume_id": volume_id,
                })
            })
            .collect()
    }

    fn host_record(&self, group: &InitiatorGroup) -> Value {
        let cluster = self.cluster_of(&group.name);
        let luns = self.lun_records(
            |g, _| g == group.name || cluster.as_deref() == Some(g),
            Some(&group.name),
        );
        let id = self.id("host", &group.name);
        let ports: Vec<Value> = group
            .initiators
            .iter()
            .filter_map(|raw| port_of(raw))
            .map(|(kind, address)| json!({"type": kind, "address": address, "host_id": id}))
            .collect();
        json!({
            "id": id,
            "name": group.name,
            "host_cluster_id": cluster.as_deref().map(|c| json!(self.id("cluster", c))).unwrap_or(Value::Null),
            "luns_count": luns.len(),
            "ports_count": ports.len(),
            "luns": luns,
            "ports": ports,
            "host_type": group.os_type.as_deref().map(str::to_ascii_lowercase).unwrap_or_else(|| "default".into()),
            "san_client_type": "HOST",
            "security_method": "NONE",
            "tenant_id": 1,
            "created_at": 1_700_000_000_000u64,
            "updated_at": 1_700_000_000_000u64,
        })
    }

    fn cluster_record(&self, name: &str, members: &[String]) -> Value {
        let luns = self.lun_records(|g, _| g == name, None);
        let hosts: Vec<Value> = members
            .iter()
            .map(|h| json!({"id": self.id("host", h), "name": h}))
            .collect();
        json!({
            "id": self.id("cluster", name),
            "name": name,
            "hosts": hosts,
            "luns_count": luns.len(),
            "luns": luns,
            "host_type": "default",
            "san_client_type": "HOST",
            "tenant_id": 1,
            "created_at": 1_700_000_000_000u64,
            "updated_at": 1_700_000_000_000u64,
        })
    }

    fn volume_record(&self, volume: &Volume) -> Value {
        let mapped = self
            .san
            .mappings(&self.array)
            .iter()
            .any(|m| m.volume == volume.name);
        json!({
            "id": self.id("volume", &volume.name),
            "name": volume.name,
            "serial": volume.serial,
            "size": volume.size_bytes,
            "type": "MASTER",
            "provtype": "THIN",
            "dataset_type": "VOLUME",
            "mapped": mapped,
            "pool_id": self.id("pool", "pool1"),
            "parent_id": 0,
            "depth": 0,
            "has_children": false,
            "write_protected": false,
            "tenant_id": 1,
            "created_at": 1_700_000_000_000u64,
            "updated_at": 1_700_000_000_000u64,
        })
    }

    fn records(&self, listing: Listing) -> Vec<Value> {
        match listing {
            Listing::Volumes => self
                .san
                .volumes(&self.array)
                .iter()
                .map(|v| self.volume_record(v))
                .collect(),
            Listing::Hosts => self.hosts().iter().map(|h| self.host_record(h)).collect(),
            Listing::Clusters => {
                let clusters = self.state().clusters.clone();
                clusters
                    .iter()
                    .map(|(name, members)| self.cluster_record(name, members))
                    .collect()
            }
        }
    }

    fn create_cluster(&self, name: &str) -> Result<u64, ApiError> {
        if self.san.group(&self.array, name).is_some() {
            return Err(ApiError::conflict(
                "NAME_CONFLICT",
                format!("The name {name} is already used by a host or host cluster"),
            ));
        }
        self.san.create_group(
            &self.array,
            GroupSpec {
                name: name.to_owned(),
                ..GroupSpec::default()
            },
        )?;
        self.state().clusters.insert(name.to_owned(), Vec::new());
        Ok(self.id("cluster", name))
    }

    fn add_cluster_member(&self, cluster: &str, host: &str) -> Result<(), ApiError> {
        if let Some(other) = self.cluster_of(host) {
            return Err(ApiError::conflict(
                "HOST_ALREADY_IN_CLUSTER",
                format!("Host {host} is already a member of host cluster {other}"),
            ));
        }
        let group = self.san.group(&self.array, host).ok_or_else(|| {
            ApiError::not_found("HOST_NOT_FOUND", format!("Host {host} not found"))
        })?;
        for initiator in &group.initiators {
            match self.san.add_initiator(&self.array, cluster, initiator) {
                Ok(()) | Err(SanError::InitiatorExists { .. }) => {}
                Err(other) => return Err(other.into()),
            }
        }
        if let Some(members) = self.state().clusters.get_mut(cluster) {
            members.push(host.to_owned());
        }
        Ok(())
    }

    /// Makes the cluster's SAN group hold exactly its members' initiators again.
    fn sync_cluster(&self, cluster: &str) -> Result<(), ApiError> {
        let members = self
            .state()
            .clusters
            .get(cluster)
            .cloned()
            .unwrap_or_default();
        let wanted: Vec<String> = members
            .iter()
            .filter_map(|m| self.san.group(&self.array, m))
            .flat_map(|g| g.initiators)
            .collect();
        let Some(current) = self.san.group(&self.array, cluster) else {
            return Ok(());
        };
        let same = |a: &str, b: &str| matches!((InitiatorId::parse(a), InitiatorId::parse(b)), (Ok(x), Ok(y)) if x == y);
        for old in &current.initiators {
            if !wanted.iter().any(|w| same(w, old)) {
                self.san.remove_initiator(&self.array, cluster, old)?;
            }
        }
        for new in &wanted {
            match self.san.add_initiator(&self.array, cluster, new) {
                Ok(()) | Err(SanError::InitiatorExists { .. }) => {}
                Err(other) => return Err(other.into()),
            }
        }
        Ok(())
    }

    /// The host that holds `initiator`, if any.
    fn owner_of(&self, initiator: &InitiatorId) -> Option<String> {
        self.hosts()
            .into_iter()
            .find(|h| {
                h.initiators
                    .iter()
                    .any(|i| InitiatorId::parse(i).ok().as_ref() == Some(initiator))
            })
            .map(|h| h.name)
    }

    fn forget(&self, id: u64) {
        self.state().metadata.remove(&id);
    }
}

/// How the API spells an initiator the SAN holds: (type, address).
fn port_of(raw: &str) -> Option<(&'static str, String)> {
    let lower = raw.trim().to_ascii_lowercase();
    if lower.starts_with("iqn.") || lower.starts_with("eui.") {
        return Some(("iscsi", raw.trim().to_owned()));
    }
    if lower.starts_with("nqn.") {
        return Some(("nvme", raw.trim().to_owned()));
    }
    let id = InitiatorId::parse(raw).ok()?;
    let hex = id.as_str();
    (hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| ("fc", hex.to_owned()))
}

async fn list(
    State(inner): State<Arc<Inner>>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    listing: Listing,
) -> ApiResult {
    paged(inner.records(listing), &params, listing.fields())
}

async fn instance(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    listing: Listing,
) -> ApiResult {
    let fields = selected_fields(&params, Some(listing.fields()))?;
    let record = inner
        .records(listing)
        .into_iter()
        .find(|r| r.get("id").map(Value::to_string).as_deref() == Some(id.as_str()));
    match record {
        Some(record) => ok(project(&record, fields.as_deref())),
        None => Err(match listing {
            Listing::Volumes => {
                ApiError::not_found("VOLUME_NOT_FOUND", format!("Volume {id} not found"))
            }
            Listing::Hosts => ApiError::not_found("HOST_NOT_FOUND", format!("Host {id} not found")),
            Listing::Clusters => {
                ApiError::not_found("CLUSTER_NOT_FOUND", format!("Host cluster {id} not found"))
            }
        }),
    }
}

async fn luns_of(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    owner: Owner,
) -> ApiResult {
    let records = match owner {
        Owner::Volume => {
            let volume = inner.volume_named_by_id(&id)?;
            inner.lun_records(|_, v| v == volume.name, None)
        }
        Owner::Host => {
            let host = inner.host_name(&id)?;
            let cluster = inner.cluster_of(&host);
            inner.lun_records(
                |g, _| g == host || cluster.as_deref() == Some(g),
                Some(&host),
            )
        }
        Owner::Cluster => {
            let cluster = inner.cluster_name(&id)?;
            inner.lun_records(|g, _| g == cluster, None)
        }
    };
    paged(records, &params, LUN_FIELDS)
}

async fn host_by_address(
    State(inner): State<Arc<Inner>>,
    Path(address): Path<String>,
) -> ApiResult {
    let id = InitiatorId::parse(&address)?;
    match inner.owner_of(&id) {
        Some(host) => ok(json!(inner.id("host", &host))),
        None => Err(ApiError::not_found(
            "HOST_NOT_FOUND",
            format!("No host has the initiator address {address}"),
        )),
    }
}

// ---- writes ----

/// The JSON object body of a request, checked against `allowed` fields.
fn body_object(body: &Bytes, allowed: &[&str]) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("The request body is not JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request("The request body must be an object"));
    };
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Unknown field '{unknown}' in the request body"
        )));
    }
    Ok(map)
}

fn required_str<'a>(map: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    map.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("The field '{field}' is required")))
}

/// A port of a request (`{type, address}`), checked against the type's spelling; the SAN's form.
fn check_port(map: &Map<String, Value>) -> Result<String, ApiError> {
    let kind = required_str(map, "type")?;
    let address = required_str(map, "address")?;
    let lower = address.to_ascii_lowercase();
    let valid = match kind.to_ascii_lowercase().as_str() {
        "fc" => {
            let digits: String = lower.chars().filter(|c| *c != ':').collect();
            digits.len() == 16 && digits.chars().all(|c| c.is_ascii_hexdigit())
        }
        "iscsi" => lower.starts_with("iqn.") || lower.starts_with("eui."),
        "nvme" => lower.starts_with("nqn."),
        other => {
            return Err(ApiError::bad_request(format!(
                "Port type '{other}' is not one of FC, ISCSI, NVME"
            )));
        }
    };
    if !valid {
        return Err(ApiError::bad_request(format!(
            "'{address}' is not a valid {kind} port address"
        )));
    }
    Ok(address.to_owned())
}

const HOST_TYPES: &[&str] = &[
    "default", "esxi", "linux", "windows", "aix", "hpux", "solaris",
];

async fn host_create(State(inner): State<Arc<Inner>>, body: Bytes) -> ApiResult {
    let map = body_object(
        &body,
        &[
            "name",
            "host_type",
            "security_method",
            "optimized",
            "tenant_id",
        ],
    )?;
    let name = required_str(&map, "name")?;
    let host_type = map
        .get("host_type")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_ascii_lowercase();
    if !HOST_TYPES.contains(&host_type.as_str()) {
        return Err(ApiError::bad_request(format!(
            "host_type '{host_type}' is not one of {}",
            HOST_TYPES.join(", ")
        )));
    }
    if inner.san.group(&inner.array, name).is_some() {
        return Err(ApiError::conflict(
            "NAME_CONFLICT",
            format!("The name {name} is already used by a host or host cluster"),
        ));
    }
    let group = inner.san.create_group(
        &inner.array,
        GroupSpec {
            name: name.to_owned(),
            initiators: Vec::new(),
            protocol: None,
            os_type: Some(host_type),
        },
    )?;
    created(inner.host_record(&group))
}

async fn host_delete(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> ApiResult {
    let host = inner.host_name(&id)?;
    if let Some(cluster) = inner.cluster_of(&host) {
        return Err(ApiError::conflict(
            "HOST_IN_CLUSTER",
            format!("Host {host} is a member of host cluster {cluster}; remove it first"),
        ));
    }
    let Some(group) = inner.san.group(&inner.array, &host) else {
        return Err(ApiError::not_found(
            "HOST_NOT_FOUND",
            format!("Host {id} not found"),
        ));
    };
    let record = inner.host_record(&group);
    inner.san.delete_group(&inner.array, &host)?;
    inner.forget(inner.id("host", &host));
    ok(record)
}

async fn port_add(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let map = body_object(&body, &["type", "address"])?;
    let address = check_port(&map)?;
    let host = inner.host_name(&id)?;
    let initiator = InitiatorId::parse(&address)?;
    if let Some(owner) = inner.owner_of(&initiator) {
        return Err(ApiError::conflict(
            "PORT_ALREADY_BELONGS_TO_HOST",
            format!("Port {address} already belongs to host {owner}"),
        ));
    }
    inner.san.add_initiator(&inner.array, &host, &address)?;
    if let Some(cluster) = inner.cluster_of(&host) {
        inner.sync_cluster(&cluster)?;
    }
    let kind = port_of(&address).map(|(k, _)| k).unwrap_or("fc");
    let spelled = port_of(&address).map(|(_, a)| a).unwrap_or(address);
    created(json!({"type": kind, "address": spelled, "host_id": inner.id("host", &host)}))
}

async fn port_remove(
    State(inner): State<Arc<Inner>>,
    Path((id, _kind, address)): Path<(String, String, String)>,
) -> ApiResult {
    let host = inner.host_name(&id)?;
    let group = inner
        .san
        .group(&inner.array, &host)
        .ok_or_else(|| ApiError::not_found("HOST_NOT_FOUND", format!("Host {id} not found")))?;
    let wanted = InitiatorId::parse(&address)?;
    let Some(raw) = group
        .initiators
        .iter()
        .find(|i| InitiatorId::parse(i).ok().as_ref() == Some(&wanted))
    else {
        return Err(ApiError::not_found(
            "PORT_NOT_FOUND",
            format!("Host {host} has no port {address}"),
        ));
    };
    inner.san.remove_initiator(&inner.array, &host, raw)?;
    if let Some(cluster) = inner.cluster_of(&host) {
        inner.sync_cluster(&cluster)?;
    }
    ok(Value::Null)
}

/// `POST /hosts|clusters/{id}/luns` with `{volume_id, lun?}`.
async fn lun_map(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    body: Bytes,
    cluster: bool,
) -> ApiResult {
    let map = body_object(&body, &["volume_id", "lun"])?;
    let volume_id = match map.get("volume_id") {
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(ApiError::bad_request(
                "The field 'volume_id' is required and must be a number",
            ));
        }
    };
    let lun = match map.get("lun") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ApiError::bad_request("lun must be a small positive number"))?,
        ),
        Some(_) => return Err(ApiError::bad_request("lun must be a number")),
    };
    let target = if cluster {
        inner.cluster_name(&id)?
    } else {
        inner.host_name(&id)?
    };
    let volume = inner.volume_named_by_id(&volume_id)?;
    inner.san.map_at(&inner.array, &volume.name, &target, lun)?;
    let host = (!cluster).then_some(target.as_str());
    let record = inner
        .lun_records(|g, v| g == target && v == volume.name, host)
        .into_iter()
        .next()
        .unwrap_or(Value::Null);
    created(record)
}

/// `DELETE /hosts|clusters/{id}/luns/lun/{lun}`.
async fn lun_unmap(
    State(inner): State<Arc<Inner>>,
    Path((id, lun)): Path<(String, String)>,
    cluster: bool,
) -> ApiResult {
    let target = if cluster {
        inner.cluster_name(&id)?
    } else {
        inner.host_name(&id)?
    };
    let lun: u32 = lun
        .parse()
        .map_err(|_| ApiError::bad_request(format!("'{lun}' is not a LUN number")))?;
    let Some(mapping) = inner
        .san
        .mappings(&inner.array)
        .into_iter()
        .find(|m| m.group == target && m.lun_id == lun)
    else {
        return Err(ApiError::not_found(
            "LUN_NOT_FOUND",
            format!("{target} has no LUN {lun}"),
        ));
    };
    inner.san.unmap(&inner.array, &mapping.volume, &target)?;
    ok(Value::Null)
}

async fn cluster_create(State(inner): State<Arc<Inner>>, body: Bytes) -> ApiResult {
    let map = body_object(&body, &["name", "host_type", "tenant_id"])?;
    let name = required_str(&map, "name")?;
    inner.create_cluster(name)?;
    created(inner.cluster_record(name, &[]))
}

async fn cluster_delete(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> ApiResult {
    let cluster = inner.cluster_name(&id)?;
    let members = inner
        .state()
        .clusters
        .get(&cluster)
        .cloned()
        .unwrap_or_default();
    if !members.is_empty() {
        return Err(ApiError::conflict(
            "CLUSTER_NOT_EMPTY",
            format!(
                "Host cluster {cluster} still has hosts: {}",
                members.join(", ")
            ),
        ));
    }
    let record = inner.cluster_record(&cluster, &members);
    inner.san.delete_group(&inner.array, &cluster)?;
    inner.state().clusters.remove(&cluster);
    inner.forget(inner.id("cluster", &cluster));
    ok(record)
}

async fn cluster_add_host(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let map = body_object(&body, &["id"])?;
    let host_id = match map.get("id") {
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(ApiError::bad_request("The field 'id' is required")),
    };
    let cluster = inner.cluster_name(&id)?;
    let host = inner.host_name(&host_id)?;
    inner.add_cluster_member(&cluster, &host)?;
    let members = inner
        .state()
        .clusters
        .get(&cluster)
        .cloned()
        .unwrap_or_default();
    created(inner.cluster_record(&cluster, &members))
}

async fn cluster_remove_host(
    State(inner): State<Arc<Inner>>,
    Path((id, host_id)): Path<(String, String)>,
) -> ApiResult {
    let cluster = inner.cluster_name(&id)?;
    let host = inner.host_name(&host_id)?;
    if inner.cluster_of(&host).as_deref() != Some(cluster.as_str()) {
        return Err(ApiError::not_found(
            "HOST_NOT_IN_CLUSTER",
            format!("Host {host} is not a member of host cluster {cluster}"),
        ));
    }
    if let Some(members) = inner.state().clusters.get_mut(&cluster) {
        members.retain(|m| *m != host);
    }
    inner.sync_cluster(&cluster)?;
    ok(Value::Null)
}

// ---- metadata ----

fn known_object(inner: &Inner, id: &str) -> Result<(u64, &'static str), ApiError> {
    inner
        .objects()
        .into_iter()
        .find(|(oid, _)| oid.to_string() == id)
        .map(|(oid, (kind, _))| (oid, kind))
        .ok_or_else(|| ApiError::not_found("OBJECT_NOT_FOUND", format!("Object {id} not found")))
}

fn metadata_record(object: u64, kind: &str, key: &str, value: &str) -> Value {
    json!({
        "id": object_id("metadata", &object.to_string(), key),
        "object_id": object,
        "object_type": kind,
        "key": key,
        "value": value,
    })
}

async fn metadata_list(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
) -> ApiResult {
    let (object, kind) = known_object(&inner, &id)?;
    let entries = inner
        .state()
        .metadata
        .get(&object)
        .cloned()
        .unwrap_or_default();
    let records = entries
        .iter()
        .map(|(k, v)| metadata_record(object, kind, k, v))
        .collect();
    paged(records, &params, METADATA_FIELDS)
}

async fn metadata_set(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let (object, kind) = known_object(&inner, &id)?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("The request body is not JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request(
            "Metadata must be an object of keys and string values",
        ));
    };
    let mut pairs = Vec::new();
    for (key, value) in map {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "The value of metadata key '{key}' must be a string"
                )));
            }
        };
        pairs.push((key, text));
    }
    let mut state = inner.state();
    let entries = state.metadata.entry(object).or_default();
    let mut records = Vec::new();
    for (key, value) in pairs {
        records.push(metadata_record(object, kind, &key, &value));
        entries.insert(key, value);
    }
    ok(Value::Array(records))
}

async fn metadata_clear(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> ApiResult {
    let (object, _) = known_object(&inner, &id)?;
    inner.forget(object);
    ok(Value::Null)
}

async fn metadata_get(
    State(inner): State<Arc<Inner>>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult {
    let (object, kind) = known_object(&inner, &id)?;
    let value = inner
        .state()
        .metadata
        .get(&object)
        .and_then(|m| m.get(&key).cloned());
    match value {
        Some(value) => ok(metadata_record(object, kind, &key, &value)),
        None => Err(ApiError::not_found(
            "METADATA_IS_NOT_FOUND",
            format!("Object {id} has no metadata key '{key}'"),
        )),
    }
}

async fn metadata_unset(
    State(inner): State<Arc<Inner>>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult {
    let (object, kind) = known_object(&inner, &id)?;
    let removed = inner
        .state()
        .metadata
        .get_mut(&object)
        .and_then(|m| m.remove(&key));
    match removed {
        Some(value) => ok(metadata_record(object, kind, &key, &value)),
        None => Err(ApiError::not_found(
            "METADATA_IS_NOT_FOUND",
            format!("Object {id} has no metadata key '{key}'"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_initiators_are_spelled_as_the_api_does() {
        assert_eq!(
            port_of("fc.20000025b5000001:21000025B5000001").unwrap(),
            ("fc", "21000025b5000001".to_owned())
        );
        assert_eq!(port_of("iqn.1998-01.com.vmware:esx-1").unwrap().0, "iscsi");
        assert_eq!(port_of("nqn.2014-08.org.nvmexpress:x").unwrap().0, "nvme");
        assert!(port_of("vmhba64").is_none());
    }

    #[test]
    fn object_ids_are_stable_and_differ_by_kind() {
        assert_eq!(object_id("ib", "host", "a"), object_id("ib", "host", "a"));
        assert_ne!(
            object_id("ib", "host", "a"),
            object_id("ib", "cluster", "a")
        );
        assert!(object_id("ib", "volume", "v") <= 0x7fff_ffff);
    }
}
