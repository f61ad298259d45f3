//! Dell PowerMax Unisphere REST facade (`/univmax/restapi/...`) over the lab SAN: one array
//! (Symmetrix id) whose hosts are the SAN's initiator groups and whose masking views turn into
//! SAN mappings.
//!
//! Written from Dell's "Unisphere for PowerMax REST API" documentation (the `sloprovisioning`,
//! `system` and `common` resources; there is no published machine-readable definition), with the
//! wire facts of Dell's own client PyU4V:
//! - **Auth.** HTTP Basic on every request; a request without it, or with wrong credentials, is 401.
//!   There is no session to open or end.
//! - **Versions.** `GET /version` (versionless) names the release and the API versions served;
//!   every other resource but `common` carries one of them (`/100/...`, `/104/...`) in its path.
//! - **Objects.** Volumes (5-hex device ids) are grouped in *storage groups*; a *masking view*
//!   joins one storage group, one *host* (initiator group) and one *port group*, and exposes every
//!   volume of the group to every initiator of the host. Initiators the array has seen log in are
//!   listed under `initiator` (id `<director>:<port>:<WWPN or IQN>`); a host is created from them.
//! - **Lists** of names answer `{"<kind>Id": [...]}`; the volume list answers an *iterator*
//!   (`id`, `count`, `maxPageSize`, the first page in `resultList`); later pages come from
//!   `GET /common/Iterator/{id}/page?from=&to=` (1-based, inclusive).
//! - **Errors** answer `{"message": "..."}`: 400 refused, 401 unauthenticated, 404 unknown object,
//!   409 an object of that name exists already.
//! - **Jobs.** A POST or PUT with `"executionOption": "ASYNCHRONOUS"` answers 202 with a job;
//!   `GET /{version}/system/job/{id}` then shows `status` `SUCCEEDED`/`FAILED` and `result`.
//! - **Array rules** a client must respect: an initiator belongs to at most one host; a host or
//!   storage group in a masking view cannot be deleted; the last volume of a storage group in a
//!   masking view cannot be removed (delete the view first); a storage group without a storage
//!   resource pool (`srpId: "None"`) takes no service level; a masking view's port group must speak
//!   the protocol of the host's initiators; a volume is added to or removed from a group only once.
//!
//! Mappings the SAN holds that no masking view of this facade made (the lab's datastore and worker
//! mappings) appear as masking view `<group>_MV` of storage group `<group>_SG` on host `<group>`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::BasicCredentials;
use crate::san::{GroupSpec, InitiatorId, San, SanError, Volume, stable_hash, stable_uuid};

/// Where the API lives on the Unisphere server.
pub const BASE_PATH: &str = "/univmax/restapi";

/// The release `GET /version` reports.
pub const UNISPHERE_VERSION: &str = "V10.4.0.0";

/// API versions served (path prefix), newest first.
pub const API_VERSIONS: &[&str] = &["104", "103", "102", "101", "100"];

/// Microcode the array reports.
pub const UCODE: &str = "6079.175.0";

/// Array model the array reports.
pub const MODEL: &str = "PowerMax_8500";

/// The lab's port group for iSCSI hosts (the default `POWERMAX_PORT_GROUP_NAME` of the rig).
pub const ISCSI_PORT_GROUP: &str = "lab-iscsi-pg";

/// The lab's port group for FC hosts.
pub const FC_PORT_GROUP: &str = "lab-fc-pg";

/// Items per iterator page unless a test asks for fewer (Unisphere's default).
pub const DEFAULT_PAGE_SIZE: usize = 1000;

/// CSI driver name of Dell's PowerMax driver: the `spec.csi.driver` of PVs on this array.
pub const CSI_DRIVER: &str = "csi-powermax.dellemc.com";

/// Every (method, path template) the facade serves, below [`BASE_PATH`]; `{v}` is one of
/// [`API_VERSIONS`] and `{sid}` the Symmetrix id. `docs/vendors.md` cites the document of each.
pub const OPERATIONS: &[(&str, &str)] = &[
    ("GET", "/version"),
    ("GET", "/common/Iterator/{id}/page"),
    ("GET", "/{v}/system/symmetrix"),
    ("GET", "/{v}/system/symmetrix/{sid}"),
    ("GET", "/{v}/system/job/{id}"),
    ("GET", "/{v}/sloprovisioning/symmetrix/{sid}/volume"),
    ("GET", "/{v}/sloprovisioning/symmetrix/{sid}/volume/{id}"),
    ("GET", "/{v}/sloprovisioning/symmetrix/{sid}/initiator"),
    ("GET", "/{v}/sloprovisioning/symmetrix/{sid}/initiator/{id}"),
    ("GET", "/{v}/sloprovisioning/symmetrix/{sid}/host"),
    ("POST", "/{v}/sloprovisioning/symmetrix/{sid}/host"),
    ("GET", "/{v}/sloprovisioning/symmetrix/{sid}/host/{id}"),
    ("DELETE", "/{v}/sloprovisioning/symmetrix/{sid}/host/{id}"),
    ("GET", "/{v}/sloprovisioning/symmetrix/{sid}/portgroup"),
    ("GET", "/{v}/sloprovisioning/symmetrix/{sid}/portgroup/{id}"),
    ("GET", "/{v}/sloprovisioning/symmetrix/{sid}/storagegroup"),
    ("POST", "/{v}/sloprovisioning/symmetrix/{sid}/storagegroup"),
    (
        "GET",
        "/{v}/sloprovisioning/symmetrix/{sid}/storagegroup/{id}",
    ),
    (
        "PUT",
        "/{v}/sloprovisioning/symmetrix/{sid}/storagegroup/{id}",
    ),
    (
        "DELETE",
        "/{v}/sloprovisioning/symmetrix/{sid}/storagegroup/{id}",
    ),
    ("GET", "/{v}/sloprovisioning/symmetrix/{sid}/maskingview"),
    ("POST", "/{v}/sloprovisioning/symmetrix/{sid}/maskingview"),
    (
        "GET",
        "/{v}/sloprovisioning/symmetrix/{sid}/maskingview/{id}",
    ),
    (
        "DELETE",
        "/{v}/sloprovisioning/symmetrix/{sid}/maskingview/{id}",
    ),
    (
        "GET",
        "/{v}/sloprovisioning/symmetrix/{sid}/maskingview/{id}/connections",
    ),
];

/// Service levels a storage group in a resource pool may take.
const SERVICE_LEVELS: &[&str] = &[
    "Diamond",
    "Platinum",
    "Gold",
    "Silver",
    "Bronze",
    "Optimized",
];

/// The storage resource pool of the lab array.
const SRP: &str = "SRP_1";

/// Bytes per PowerMax cylinder (15 tracks of 128 KiB).
const CYLINDER_BYTES: u64 = 15 * 128 * 1024;

/// The Symmetrix id of the lab array `array`: 12 digits, stable across runs.
pub fn symmetrix_id(array: &str) -> String {
    format!("0001979{:05}", stable_hash(&[array, "symmetrix"]) % 100_000)
}

/// The device id of a lab volume: 5 upper-case hex digits from its serial's sequence part.
pub fn device_id(volume: &Volume) -> String {
    let digits: String = volume
        .serial
        .chars()
        .rev()
        .take(9)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{:05X}", digits.parse::<u64>().unwrap_or(0) & 0xf_ffff)
}

/// The volume handle Dell's CSI driver writes into the PV: `<volume name>-<symmetrix>-<device>`.
pub fn csi_volume_handle(array: &str, volume: &Volume) -> String {
    format!(
        "csi-lab-{}-{}-{}",
        volume.name,
        symmetrix_id(array),
        device_id(volume)
    )
}

/// PowerMax in the lab rig: CSI PowerMax volumes, the array's Symmetrix id and the iSCSI port
/// group as the vendor keys.
pub struct PowerMaxFacade;

impl crate::rig::ArrayFacade for PowerMaxFacade {
    fn product(&self) -> &'static str {
        "powermax"
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
            volume_handle: csi_volume_handle(&array.name, &volume),
            attributes: Vec::new(),
            name: volume.name,
            naa: volume.naa,
            backing_path: volume.backing_path,
            size_bytes,
        })
    }

    fn vendor_flags(
        &self,
        array: &crate::lab::ArrayEndpoint,
    ) -> Vec<(co_api::contract::flags::Flag, String)> {
        use co_api::contract::flags;
        vec![
            (flags::POWERMAX_SYMMETRIX_ID, symmetrix_id(&array.name)),
            (flags::POWERMAX_PORT_GROUP_NAME, ISCSI_PORT_GROUP.to_owned()),
        ]
    }
}

/// The Unisphere REST API of `array` in `san`, for `username`/`password`.
pub fn router(san: San, array: &str, username: &str, password: &str) -> Router {
    PowerMax::new(san, array, username, password).router()
}

/// A PowerMax array behind Unisphere, over the SAN, with handles for tests.
#[derive(Clone)]
pub struct PowerMax {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PowerMax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerMax")
            .field("array", &self.inner.array)
            .finish_non_exhaustive()
    }
}

struct Inner {
    san: San,
    array: String,
    symmetrix_id: String,
    credentials: BasicCredentials,
    username: String,
    state: Mutex<FacadeState>,
}

#[derive(Default)]
struct FacadeState {
    /// Storage groups made through the API: name → device ids.
    storage_groups: BTreeMap<String, BTreeSet<String>>,
    /// Masking views made through the API.
    masking_views: BTreeMap<String, MaskingView>,
    /// SAN mappings (volume name, host) the masking views made.
    made: BTreeSet<(String, String)>,
    /// Initiators logged in to the array's ports without being in any host (canonical ids).
    logged_in: BTreeSet<String>,
    jobs: BTreeMap<String, Value>,
    iterators: BTreeMap<String, Vec<Value>>,
    page_size: Option<usize>,
    counter: u64,
}

#[derive(Debug, Clone)]
struct MaskingView {
    host: String,
    port_group: String,
    storage_group: String,
}

impl PowerMax {
    pub fn new(san: San, array: &str, username: &str, password: &str) -> PowerMax {
        PowerMax {
            inner: Arc::new(Inner {
                san,
                array: array.to_owned(),
                symmetrix_id: symmetrix_id(array),
                credentials: BasicCredentials::new(username, password),
                username: username.to_owned(),
                state: Mutex::new(FacadeState::default()),
            }),
        }
    }

    /// The router serving [`BASE_PATH`].
    pub fn router(&self) -> Router {
        Router::new()
            .fallback(dispatch)
            .layer(middleware::from_fn_with_state(
                self.inner.clone(),
                authenticate,
            ))
            .with_state(self.inner.clone())
    }

    /// The array's Symmetrix id.
    pub fn symmetrix_id(&self) -> &str {
        &self.inner.symmetrix_id
    }

    /// Iterator pages of `size` items (tests of pagination).
    pub fn set_page_size(&self, size: usize) {
        self.inner.state().page_size = Some(size.max(1));
    }

    /// Lets `initiator` (as a host reports it) log in to the array's ports without putting it in a
    /// host, as zoning an FC port or adding the array's iSCSI target does.
    pub fn log_in(&self, initiator: &str) -> Result<(), SanError> {
        let id = InitiatorId::parse(initiator)?;
        self.inner.state().logged_in.insert(id.as_str().to_owned());
        Ok(())
    }

    /// What a copy may have left: storage groups, masking views and hosts named `xcopy-…`.
    pub fn leftovers(&self) -> Vec<String> {
        let ours = |name: &str| name.starts_with("xcopy-");
        let state = self.inner.state();
        let mut found: Vec<String> = state
            .storage_groups
            .keys()
            .filter(|n| ours(n))
            .map(|n| format!("storage group {n}"))
            .collect();
        found.extend(
            state
                .masking_views
                .keys()
                .filter(|n| ours(n))
                .map(|n| format!("masking view {n}")),
        );
        drop(state);
        found.extend(
            self.inner
                .san
                .groups(&self.inner.array)
                .into_iter()
                .filter(|g| ours(&g.name))
                .map(|g| format!("host {}", g.name)),
        );
        found
    }

    /// Creates a storage group holding `volume` and a masking view exposing it to `host`, as an
    /// administrator (or upstream's populator, for an `xcopy-…` name) would.
    pub fn create_masking_view(
        &self,
        view: &str,
        storage_group: &str,
        host: &str,
        volume: &str,
    ) -> Result<(), String> {
        let device = self
            .inner
            .san
            .volume(&self.inner.array, volume)
            .map(|v| device_id(&v))
            .ok_or_else(|| format!("no volume {volume}"))?;
        let mut state = self.inner.state();
        state
            .storage_groups
            .entry(storage_group.to_owned())
            .or_default()
            .insert(device);
        state.masking_views.insert(
            view.to_owned(),
            MaskingView {
                host: host.to_owned(),
                port_group: ISCSI_PORT_GROUP.to_owned(),
                storage_group: storage_group.to_owned(),
            },
        );
        self.inner.sync(&mut state).map_err(|e| e.message)
    }

    /// Storage group names the facade holds (made through the API or by the test).
    pub fn storage_groups(&self) -> Vec<String> {
        self.inner.state().storage_groups.keys().cloned().collect()
    }

    /// Masking view names the facade holds.
    pub fn masking_views(&self) -> Vec<String> {
        self.inner.state().masking_views.keys().cloned().collect()
    }
}

// ---- errors ----

#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(kind: &str, id: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("Cannot find {kind} {id}"))
    }

    fn exists(kind: &str, id: &str) -> ApiError {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("The requested {kind} resource {id} already exists"),
        )
    }
}

impl From<SanError> for ApiError {
    fn from(error: SanError) -> ApiError {
        let status = match &error {
            SanError::UnknownVolume { .. } | SanError::UnknownGroup { .. } => StatusCode::NOT_FOUND,
            SanError::UnknownArray { .. } | SanError::Backing { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            SanError::GroupExists { .. } | SanError::VolumeExists { .. } => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({"message": self.message}))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(value: Value) -> ApiResult {
    Ok((StatusCode::OK, axum::Json(value)).into_response())
}

async fn authenticate(State(inner): State<Arc<Inner>>, request: Request, next: Next) -> Response {
    if inner.credentials.admits(request.headers()) {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "HTTP 401 Unauthorized: the user name or password is wrong, or none was sent",
    )
    .into_response()
}

// ---- routing ----

/// The parts of one request the handlers need.
struct Call {
    method: Method,
    query: Vec<(String, String)>,
    body: Bytes,
}

async fn dispatch(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    _headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| url_pairs(q).into_iter().collect::<Vec<(String, String)>>())
        .unwrap_or_default();
    let call = Call {
        method,
        query,
        body,
    };
    let Some(rest) = uri.path().strip_prefix(BASE_PATH) else {
        return ApiError::not_found("resource", uri.path()).into_response();
    };
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    inner.route(&call, &segments)
}

/// Decodes `a=b&c=d` (percent-encoding and `+`).
fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, FacadeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn route(&self, call: &Call, segments: &[&str]) -> Response {
        self.route_inner(call, segments)
            .unwrap_or_else(IntoResponse::into_response)
    }

    fn route_inner(&self, call: &Call, segments: &[&str]) -> ApiResult {
        let get = call.method == Method::GET;
        match segments {
            ["version"] if get => {
                self.allow_query(call, &[])?;
                ok(json!({
                    "version": UNISPHERE_VERSION,
                    "api_version": API_VERSIONS[0],
                    "supported_api_versions": API_VERSIONS,
                }))
            }
            ["common", "Iterator", id, "page"] if get => self.iterator_page(call, id),
            [version, rest @ ..] if API_VERSIONS.contains(version) => {
                self.route_versioned(call, rest)
            }
            [version, ..] if version.chars().all(|c| c.is_ascii_digit()) => {
                Err(ApiError::not_found("API version", version))
            }
            _ => Err(self.unknown(call, segments)),
        }
    }

    fn unknown(&self, call: &Call, segments: &[&str]) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "HTTP 404 Not Found: no {} resource /{}",
                call.method,
                segments.join("/")
            ),
        )
    }

    fn route_versioned(&self, call: &Call, segments: &[&str]) -> ApiResult {
        let m = &call.method;
        match segments {
            ["system", "symmetrix"] if *m == Method::GET => {
                self.allow_query(call, &[])?;
                ok(json!({"symmetrixId": [self.symmetrix_id]}))
            }
            ["system", "symmetrix", sid] if *m == Method::GET => {
                self.check_sid(sid)?;
                ok(json!({
                    "symmetrixId": self.symmetrix_id,
                    "model": MODEL,
                    "ucode": UCODE,
                    "local": true,
                    "device_count": self.san.volumes(&self.array).len(),
                }))
            }
            ["system", "job", id] if *m == Method::GET => self
                .state()
                .jobs
                .get(*id)
                .cloned()
                .map_or_else(|| Err(ApiError::not_found("job", id)), ok),
            ["sloprovisioning", "symmetrix", sid, rest @ ..] => {
                self.check_sid(sid)?;
                self.route_provisioning(call, rest)
            }
            _ => Err(self.unknown(call, segments)),
        }
    }

    fn route_provisioning(&self, call: &Call, segments: &[&str]) -> ApiResult {
        let m = call.method.clone();
        match (m, segments) {
            (Method::GET, ["volume"]) => self.volume_list(call),
            (Method::GET, ["volume", id]) => {
                self.allow_query(call, &[])?;
                ok(self.volume_record(id)?)
            }
            (Method::GET, ["initiator"]) => self.initiator_list(call),
            (Method::GET, ["initiator", id]) => {
                self.allow_query(call, &[])?;
                ok(self.initiator_record(id)?)
            }
            (Method::GET, ["host"]) => {
                self.allow_query(call, &[])?;
                let hosts: Vec<String> = self
                    .san
                    .groups(&self.array)
                    .into_iter()
                    .map(|g| g.name)
                    .collect();
                ok(json!({"hostId": hosts, "num_of_hosts": hosts.len()}))
            }
            (Method::POST, ["host"]) => self.host_create(call),
            (Method::GET, ["host", id]) => {
                self.allow_query(call, &[])?;
                ok(self.host_record(id)?)
            }
            (Method::DELETE, ["host", id]) => self.host_delete(id),
            (Method::GET, ["portgroup"]) => {
                self.allow_query(call, &[])?;
                ok(
                    json!({"portGroupId": [FC_PORT_GROUP, ISCSI_PORT_GROUP], "num_of_port_groups": 2}),
                )
            }
            (Method::GET, ["portgroup", id]) => {
                self.allow_query(call, &[])?;
                ok(self.port_group_record(id)?)
            }
            (Method::GET, ["storagegroup"]) => {
                self.allow_query(call, &[])?;
                let names: Vec<String> = self.storage_groups().into_keys().collect();
                ok(json!({"storageGroupId": names, "num_of_storage_groups": names.len()}))
            }
            (Method::POST, ["storagegroup"]) => self.storage_group_create(call),
            (Method::GET, ["storagegroup", id]) => {
                self.allow_query(call, &[])?;
                ok(self.storage_group_record(id)?)
            }
            (Method::PUT, ["storagegroup", id]) => self.storage_group_modify(call, id),
            (Method::DELETE, ["storagegroup", id]) => self.storage_group_delete(id),
            (Method::GET, ["maskingview"]) => {
                self.allow_query(call, &[])?;
                let names: Vec<String> = self.masking_views().into_keys().collect();
                ok(json!({"maskingViewId": names, "num_of_masking_views": names.len()}))
            }
            (Method::POST, ["maskingview"]) => self.masking_view_create(call),
            (Method::GET, ["maskingview", id]) => {
                self.allow_query(call, &[])?;
                let view = self.masking_view(id)?;
                ok(json!({
                    "maskingViewId": id,
                    "hostId": view.host,
                    "portGroupId": view.port_group,
                    "storageGroupId": view.storage_group,
                }))
            }
            (Method::DELETE, ["maskingview", id]) => self.masking_view_delete(id),
            (Method::GET, ["maskingview", id, "connections"]) => self.connections(call, id),
            _ => Err(self.unknown(call, segments)),
        }
    }

    fn check_sid(&self, sid: &str) -> Result<(), ApiError> {
        if sid == self.symmetrix_id {
            Ok(())
        } else {
            Err(ApiError::not_found("symmetrix", sid))
        }
    }

    fn allow_query(&self, call: &Call, allowed: &[&str]) -> Result<(), ApiError> {
        match call
            .query
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
        {
            Some((key, _)) => Err(ApiError::bad_request(format!(
                "Unknown query parameter {key}; this resource accepts: {}",
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            ))),
            None => Ok(()),
        }
    }

    fn param<'c>(&self, call: &'c Call, key: &str) -> Option<&'c str> {
        call.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    // ---- the derived model ----

    fn volume_by_device(&self, device: &str) -> Option<Volume> {
        self.san
            .volumes(&self.array)
            .into_iter()
            .find(|v| device_id(v).eq_ignore_ascii_case(device))
    }

    /// Masking views the SAN's own mappings form: `<group>_MV` → (group, devices).
    fn implicit_views(&self, state: &FacadeState) -> BTreeMap<String, (String, BTreeSet<String>)> {
        let volumes: BTreeMap<String, String> = self
            .san
            .volumes(&self.array)
            .into_iter()
            .map(|v| (v.name.clone(), device_id(&v)))
            .collect();
        let mut views: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
        for mapping in self.san.mappings(&self.array) {
            if state
                .made
                .contains(&(mapping.volume.clone(), mapping.group.clone()))
            {
                continue;
            }
            let Some(device) = volumes.get(&mapping.volume) else {
                continue;
            };
            views
                .entry(format!("{}_MV", mapping.group))
                .or_insert_with(|| (mapping.group.clone(), BTreeSet::new()))
                .1
                .insert(device.clone());
        }
        views
    }

    /// Every storage group: name → device ids.
    fn storage_groups(&self) -> BTreeMap<String, BTreeSet<String>> {
        let state = self.state();
        let mut groups = state.storage_groups.clone();
        for (group, devices) in self.implicit_views(&state).into_values() {
            groups.insert(format!("{group}_SG"), devices);
        }
        groups
    }

    /// Every masking view by name.
    fn masking_views(&self) -> BTreeMap<String, MaskingView> {
        let state = self.state();
        let mut views = state.masking_views.clone();
        for (name, (group, _)) in self.implicit_views(&state) {
            let port_group = self.port_group_for(&group);
            views.insert(
                name,
                MaskingView {
                    storage_group: format!("{group}_SG"),
                    host: group,
                    port_group,
                },
            );
        }
        views
    }

    fn masking_view(&self, name: &str) -> Result<MaskingView, ApiError> {
        self.masking_views()
            .remove(name)
            .ok_or_else(|| ApiError::not_found("maskingview", name))
    }

    fn port_group_for(&self, host: &str) -> String {
        let fc = self.san.group(&self.array, host).is_some_and(|g| {
            g.initiators
                .iter()
                .any(|i| protocol_of(i) == Some(Protocol::Fc))
        });
        if fc { FC_PORT_GROUP } else { ISCSI_PORT_GROUP }.to_owned()
    }

    /// Makes the SAN's mappings follow the masking views made through the API.
    fn sync(&self, state: &mut FacadeState) -> Result<(), ApiError> {
        let mut wanted = BTreeSet::new();
        for view in state.masking_views.values() {
            for device in state
                .storage_groups
                .get(&view.storage_group)
                .into_iter()
                .flatten()
            {
                if let Some(volume) = self.volume_by_device(device) {
                    wanted.insert((volume.name, view.host.clone()));
                }
            }
        }
        let stale: Vec<(String, String)> = state.made.difference(&wanted).cloned().collect();
        for (volume, host) in stale {
            match self.san.unmap(&self.array, &volume, &host) {
                Ok(()) | Err(SanError::NotMapped { .. } | SanError::UnknownGroup { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            state.made.remove(&(volume, host));
        }
        let present: BTreeSet<(String, String)> = self
            .san
            .mappings(&self.array)
            .into_iter()
            .map(|m| (m.volume, m.group))
            .collect();
        for (volume, host) in wanted {
            if state.made.contains(&(volume.clone(), host.clone())) {
                continue;
            }
            if !present.contains(&(volume.clone(), host.clone())) {
                self.san.map(&self.array, &volume, &host)?;
                state.made.insert((volume, host));
            }
        }
        Ok(())
    }

    /// Initiators logged in to the array: every host's, and the ones logged in alone.
    fn logged_in(&self) -> BTreeMap<String, Option<String>> {
        let mut all: BTreeMap<String, Option<String>> = self
            .state()
            .logged_in
            .iter()
            .map(|i| (i.clone(), None))
            .collect();
        for group in self.san.groups(&self.array) {
            for raw in &group.initiators {
                if let Ok(id) = InitiatorId::parse(raw) {
                    all.insert(id.as_str().to_owned(), Some(group.name.clone()));
                }
            }
        }
        all
    }

    // ---- volumes ----

    fn volume_record(&self, device: &str) -> Result<Value, ApiError> {
        let volume = self
            .volume_by_device(device)
            .ok_or_else(|| ApiError::not_found("volume", device))?;
        let device = device_id(&volume);
        let groups: Vec<String> = self
            .storage_groups()
            .into_iter()
            .filter(|(_, devices)| devices.contains(&device))
            .map(|(name, _)| name)
            .collect();
        let size = volume.size_bytes;
        Ok(json!({
            "volumeId": device,
            "type": "TDEV",
            "emulation": "FBA",
            "ssid": "FFFFFFFF",
            "allocated_percent": 0,
            "cap_gb": size as f64 / (1u64 << 30) as f64,
            "cap_mb": size as f64 / (1u64 << 20) as f64,
            "cap_cyl": size.div_ceil(CYLINDER_BYTES),
            "status": "Ready",
            "reserved": false,
            "pinned": false,
            "encapsulated": false,
            "volume_identifier": volume.name,
            "wwn": volume.serial,
            "effective_wwn": volume.serial,
            "has_effective_wwn": false,
            "num_of_storage_groups": groups.len(),
            "num_of_front_end_paths": 0,
            "storageGroupId": groups,
            "snapvx_source": false,
            "snapvx_target": false,
            "mobility_id_enabled": false,
        }))
    }

    fn volume_list(&self, call: &Call) -> ApiResult {
        self.allow_query(
            call,
            &[
                "storageGroupId",
                "volume_identifier",
                "wwn",
                "effective_wwn",
            ],
        )?;
        let in_group = match self.param(call, "storageGroupId") {
            Some(name) => Some(
                self.storage_groups()
                    .remove(name)
                    .ok_or_else(|| ApiError::not_found("storagegroup", name))?,
            ),
            None => None,
        };
        let identifier = self.param(call, "volume_identifier");
        let wwn = self
            .param(call, "wwn")
            .or_else(|| self.param(call, "effective_wwn"));
        let items: Vec<Value> = self
            .san
            .volumes(&self.array)
            .into_iter()
            .filter(|v| in_group.as_ref().is_none_or(|g| g.contains(&device_id(v))))
            .filter(|v| identifier.is_none_or(|i| v.name == i))
            .filter(|v| wwn.is_none_or(|w| v.serial.eq_ignore_ascii_case(w)))
            .map(|v| json!({"volumeId": device_id(&v)}))
            .collect();
        let mut state = self.state();
        let page = state.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        state.counter += 1;
        let id = stable_uuid(&[&self.array, "iterator", &state.counter.to_string()]);
        let count = items.len();
        let first: Vec<Value> = items.iter().take(page).cloned().collect();
        state.iterators.insert(id.clone(), items);
        ok(json!({
            "id": id,
            "count": count,
            "expirationTime": 0,
            "maxPageSize": page,
            "resultList": {"result": first, "from": 1, "to": count.min(page)},
        }))
    }

    fn iterator_page(&self, call: &Call, id: &str) -> ApiResult {
        self.allow_query(call, &["from", "to"])?;
        let number = |key: &str| -> Result<usize, ApiError> {
            self.param(call, key)
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| ApiError::bad_request(format!("{key} must be a number from 1 on")))
        };
        let (from, to) = (number("from")?, number("to")?);
        let state = self.state();
        let items = state
            .iterators
            .get(id)
            .ok_or_else(|| ApiError::not_found("iterator", id))?;
        let page = state.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if from > to || to > items.len() || to - from + 1 > page {
            return Err(ApiError::bad_request(format!(
                "from {from} to {to} is not a page of this iterator ({} items, pages of at most {page})",
                items.len()
            )));
        }
        ok(json!({"result": items[from - 1..to], "from": from, "to": to}))
    }

    // ---- initiators and hosts ----

    /// `<director>:<port>:<hba>` of a canonical initiator.
    fn initiator_id(canonical: &str) -> String {
        match protocol_of(canonical) {
            Some(Protocol::Fc) => format!("FA-1D:4:{canonical}"),
            _ => format!("SE-1E:0:{canonical}"),
        }
    }

    /// The canonical initiator an id (`dir:port:hba` or the bare HBA) names.
    fn initiator_of(id: &str) -> Option<String> {
        let hba = match id.split_once(':') {
            Some((dir, rest)) if dir.starts_with("FA-") || dir.starts_with("SE-") => {
                rest.split_once(':').map(|(_, hba)| hba)?
            }
            _ => id,
        };
        InitiatorId::parse(hba).ok().map(|i| i.as_str().to_owned())
    }

    fn initiator_list(&self, call: &Call) -> ApiResult {
        self.allow_query(call, &["initiator_hba", "in_a_host", "iscsi", "fcid"])?;
        let hba = match self.param(call, "initiator_hba") {
            Some(raw) => Some(
                InitiatorId::parse(raw)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?
                    .as_str()
                    .to_owned(),
            ),
            None => None,
        };
        let in_a_host = self.param(call, "in_a_host").map(|v| v == "true");
        let iscsi = self.param(call, "iscsi").map(|v| v == "true");
        let ids: Vec<String> = self
            .logged_in()
            .into_iter()
            .filter(|(i, _)| hba.as_ref().is_none_or(|h| h == i))
            .filter(|(_, host)| in_a_host.is_none_or(|want| want == host.is_some()))
            .filter(|(i, _)| {
                iscsi.is_none_or(|want| want == (protocol_of(i) == Some(Protocol::Iscsi)))
            })
            .map(|(i, _)| Self::initiator_id(&i))
            .collect();
        ok(json!({"initiatorId": ids, "num_of_initiators": ids.len()}))
    }

    fn initiator_record(&self, id: &str) -> Result<Value, ApiError> {
        let canonical =
            Self::initiator_of(id).ok_or_else(|| ApiError::not_found("initiator", id))?;
        let all = self.logged_in();
        let host = all
            .get(&canonical)
            .ok_or_else(|| ApiError::not_found("initiator", id))?;
        let full = Self::initiator_id(&canonical);
        let (director, port) =
            full.split(':')
                .take(2)
                .fold((String::new(), String::new()), |(d, _), part| {
                    if d.is_empty() {
                        (part.to_owned(), String::new())
                    } else {
                        (d, part.to_owned())
                    }
                });
        let views: Vec<String> = match host {
            Some(h) => self
                .masking_views()
                .into_iter()
                .filter(|(_, v)| &v.host == h)
                .map(|(n, _)| n)
                .collect(),
            None => Vec::new(),
        };
        let mut record = json!({
            "initiatorId": full,
            "symmetrixPortKey": [{"directorId": director, "portId": port}],
            "type": if protocol_of(&canonical) == Some(Protocol::Fc) { "FIBRE" } else { "GigE" },
            "logged_in": true,
            "on_fabric": true,
            "num_of_host_groups": 0,
            "num_of_masking_views": views.len(),
            "maskingview": views,
        });
        if let (Some(h), Some(map)) = (host, record.as_object_mut()) {
            map.insert("host".into(), json!(h));
        }
        Ok(record)
    }

    fn host_record(&self, name: &str) -> Result<Value, ApiError> {
        let group = self
            .san
            .group(&self.array, name)
            .ok_or_else(|| ApiError::not_found("host", name))?;
        let initiators: Vec<String> = group
            .initiators
            .iter()
            .filter_map(|i| InitiatorId::parse(i).ok())
            .map(|i| i.as_str().to_owned())
            .collect();
        let views: Vec<String> = self
            .masking_views()
            .into_iter()
            .filter(|(_, v)| v.host == name)
            .map(|(n, _)| n)
            .collect();
        let fc = initiators
            .iter()
            .any(|i| protocol_of(i) == Some(Protocol::Fc));
        Ok(json!({
            "hostId": name,
            "num_of_masking_views": views.len(),
            "num_of_initiators": initiators.len(),
            "num_of_host_groups": 0,
            "port_flags_override": false,
            "consistent_lun": false,
            "enabled_flags": "",
            "disabled_flags": "",
            "type": if fc { "Fibre" } else { "iSCSI" },
            "initiator": initiators,
            "maskingview": views,
            "num_of_powerpath_hosts": 0,
            "bw_limit": 0,
        }))
    }

    fn host_create(&self, call: &Call) -> ApiResult {
        let body = body_object(
            &call.body,
            &["hostId", "initiatorId", "hostFlags", "executionOption"],
        )?;
        let name = required_str(&body, "hostId")?;
        check_name("host", name)?;
        let raw: Vec<String> = match body.get("initiatorId") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        ApiError::bad_request("initiatorId must be a list of strings")
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(ApiError::bad_request("initiatorId must be a list")),
        };
        let outcome = (|| {
            if self.san.group(&self.array, name).is_some() {
                return Err(ApiError::exists("host", name));
            }
            let known = self.logged_in();
            let mut initiators = Vec::new();
            for id in &raw {
                let canonical = Self::initiator_of(id).ok_or_else(|| {
                    ApiError::bad_request(format!("Initiator {id} is not a WWN or iSCSI name"))
                })?;
                match known.get(&canonical) {
                    None => {
                        return Err(ApiError::bad_request(format!(
                            "Initiator {id} is not logged in to array {}",
                            self.symmetrix_id
                        )));
                    }
                    Some(Some(other)) => {
                        return Err(ApiError::bad_request(format!(
                            "Initiator {id} is already in host {other}"
                        )));
                    }
                    Some(None) => initiators.push(canonical),
                }
            }
            let protocols: BTreeSet<Option<Protocol>> =
                initiators.iter().map(|i| protocol_of(i)).collect();
            if protocols.len() > 1 {
                return Err(ApiError::bad_request(
                    "A host holds either FC or iSCSI initiators, not both",
                ));
            }
            self.san.create_group(
                &self.array,
                GroupSpec {
                    name: name.to_owned(),
                    initiators: initiators.clone(),
                    protocol: None,
                    os_type: None,
                },
            )?;
            let mut state = self.state();
            for i in &initiators {
                state.logged_in.remove(i);
            }
            drop(state);
            self.host_record(name)
        })();
        self.finish(&body, outcome, StatusCode::CREATED)
    }

    fn host_delete(&self, name: &str) -> ApiResult {
        let record = self.host_record(name)?;
        if record["num_of_masking_views"].as_u64().unwrap_or(0) > 0 {
            return Err(ApiError::bad_request(format!(
                "Host {name} is part of a masking view and cannot be deleted"
            )));
        }
        let initiators: Vec<String> = record["initiator"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        self.san.delete_group(&self.array, name)?;
        // Its initiators stay logged in to the array's ports.
        self.state().logged_in.extend(initiators);
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    fn port_group_record(&self, name: &str) -> Result<Value, ApiError> {
        let (director, port, kind, protocol) = match name {
            ISCSI_PORT_GROUP => ("SE-1E", "0", "iSCSI", "iSCSI"),
            FC_PORT_GROUP => ("FA-1D", "4", "Fibre", "SCSI_FC"),
            _ => return Err(ApiError::not_found("portgroup", name)),
        };
        let views: Vec<String> = self
            .masking_views()
            .into_iter()
            .filter(|(_, v)| v.port_group == name)
            .map(|(n, _)| n)
            .collect();
        Ok(json!({
            "portGroupId": name,
            "symmetrixPortKey": [{"directorId": director, "portId": port}],
            "num_of_ports": 1,
            "num_of_masking_views": views.len(),
            "maskingview": views,
            "type": kind,
            "port_group_protocol": protocol,
        }))
    }

    // ---- storage groups ----

    fn storage_group_record(&self, name: &str) -> Result<Value, ApiError> {
        let devices = self
            .storage_groups()
            .remove(name)
            .ok_or_else(|| ApiError::not_found("storagegroup", name))?;
        let views: Vec<String> = self
            .masking_views()
            .into_iter()
            .filter(|(_, v)| v.storage_group == name)
            .map(|(n, _)| n)
            .collect();
        let bytes: u64 = devices
            .iter()
            .filter_map(|d| self.volume_by_device(d))
            .map(|v| v.size_bytes)
            .sum();
        Ok(json!({
            "storageGroupId": name,
            "num_of_vols": devices.len(),
            "num_of_child_sgs": 0,
            "num_of_parent_sgs": 0,
            "num_of_masking_views": views.len(),
            "num_of_snapshots": 0,
            "maskingview": views,
            "type": "Standalone",
            "cap_gb": bytes as f64 / (1u64 << 30) as f64,
            "device_emulation": "FBA",
            "unprotected": true,
            "compression": false,
        }))
    }

    fn storage_group_create(&self, call: &Call) -> ApiResult {
        let body = body_object(
            &call.body,
            &[
                "storageGroupId",
                "srpId",
                "emulation",
                "sloBasedStorageGroupParam",
                "executionOption",
                "snapshot_policies",
            ],
        )?;
        let name = required_str(&body, "storageGroupId")?.to_owned();
        check_name("storage group", &name)?;
        let srp = required_str(&body, "srpId")?;
        if srp != "None" && srp != SRP {
            return Err(ApiError::bad_request(format!(
                "Storage resource pool {srp} does not exist; use {SRP} or None"
            )));
        }
        if let Some(emulation) = body.get("emulation")
            && emulation.as_str() != Some("FBA")
        {
            return Err(ApiError::bad_request("emulation must be FBA on this array"));
        }
        for param in body
            .get("sloBasedStorageGroupParam")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let slo = param.get("sloId").and_then(Value::as_str).unwrap_or("None");
            if srp == "None" && slo != "None" {
                return Err(ApiError::bad_request(format!(
                    "A storage group without a storage resource pool takes no service level (sloId {slo:?})"
                )));
            }
            if srp != "None" && slo != "None" && !SERVICE_LEVELS.contains(&slo) {
                return Err(ApiError::bad_request(format!(
                    "Unknown service level {slo:?}"
                )));
            }
            let new_volumes = param
                .get("volumeAttributes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|a| a.get("num_of_vols").and_then(Value::as_u64))
                .sum::<u64>();
            if new_volumes > 0 {
                return Err(ApiError::bad_request(
                    "The lab array creates no volumes through storage groups",
                ));
            }
        }
        let outcome = (|| {
            if self.storage_groups().contains_key(&name) {
                return Err(ApiError::exists("storagegroup", &name));
            }
            self.state()
                .storage_groups
                .insert(name.clone(), BTreeSet::new());
            self.storage_group_record(&name)
        })();
        self.finish(&body, outcome, StatusCode::CREATED)
    }

    fn storage_group_modify(&self, call: &Call, name: &str) -> ApiResult {
        let body = body_object(
            &call.body,
            &["editStorageGroupActionParam", "executionOption"],
        )?;
        let action = body
            .get("editStorageGroupActionParam")
            .and_then(Value::as_object)
            .ok_or_else(|| ApiError::bad_request("editStorageGroupActionParam is required"))?;
        let (adding, list) = match (
            action.get("expandStorageGroupParam"),
            action.get("removeVolumeParam"),
            action.len(),
        ) {
            (Some(expand), None, 1) => {
                let specific = expand
                    .as_object()
                    .filter(|o| o.len() == 1)
                    .and_then(|o| o.get("addSpecificVolumeParam"));
                let specific = specific.ok_or_else(|| {
                    ApiError::bad_request(
                        "expandStorageGroupParam: only addSpecificVolumeParam is supported",
                    )
                })?;
                (true, volume_ids(specific)?)
            }
            (None, Some(remove), 1) => (false, volume_ids(remove)?),
            _ => {
                return Err(ApiError::bad_request(
                    "editStorageGroupActionParam takes exactly one of expandStorageGroupParam, removeVolumeParam",
                ));
            }
        };
        let outcome = self.change_storage_group(name, adding, &list);
        self.finish(&body, outcome, StatusCode::OK)
    }

    fn change_storage_group(
        &self,
        name: &str,
        adding: bool,
        devices: &[String],
    ) -> Result<Value, ApiError> {
        let groups = self.storage_groups();
        let current = groups
            .get(name)
            .ok_or_else(|| ApiError::not_found("storagegroup", name))?;
        let mut canonical = Vec::new();
        for device in devices {
            let volume = self
                .volume_by_device(device)
                .ok_or_else(|| ApiError::not_found("volume", device))?;
            let id = device_id(&volume);
            match (adding, current.contains(&id)) {
                (true, true) => {
                    return Err(ApiError::bad_request(format!(
                        "Device {id} is already in storage group {name}"
                    )));
                }
                (false, false) => {
                    return Err(ApiError::bad_request(format!(
                        "Device {id} is not in storage group {name}"
                    )));
                }
                _ => canonical.push((id, volume.name)),
            }
        }
        let implicit = name
            .strip_suffix("_SG")
            .filter(|_| !self.state().storage_groups.contains_key(name));
        let in_view = self
            .masking_views()
            .values()
            .any(|v| v.storage_group == name);
        if !adding && in_view && canonical.len() >= current.len() {
            return Err(ApiError::bad_request(format!(
                "Cannot remove the last volume of storage group {name}: it is in a masking view; delete the masking view first"
            )));
        }
        match implicit {
            Some(group) => {
                for (_, volume) in &canonical {
                    if adding {
                        self.san.map(&self.array, volume, group)?;
                    } else {
                        self.san.unmap(&self.array, volume, group)?;
                    }
                }
            }
            None => {
                let mut state = self.state();
                if let Some(set) = state.storage_groups.get_mut(name) {
                    for (id, _) in &canonical {
                        if adding {
                            set.insert(id.clone());
                        } else {
                            set.remove(id);
                        }
                    }
                }
                self.sync(&mut state)?;
            }
        }
        self.storage_group_record(name)
    }

    fn storage_group_delete(&self, name: &str) -> ApiResult {
        let record = self.storage_group_record(name)?;
        if record["num_of_masking_views"].as_u64().unwrap_or(0) > 0 {
            return Err(ApiError::bad_request(format!(
                "Storage group {name} is part of a masking view and cannot be deleted"
            )));
        }
        self.state().storage_groups.remove(name);
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    // ---- masking views ----

    fn masking_view_create(&self, call: &Call) -> ApiResult {
        let body = body_object(
            &call.body,
            &[
                "maskingViewId",
                "hostOrHostGroupSelection",
                "portGroupSelection",
                "storageGroupSelection",
                "executionOption",
                "starting_lun_address",
            ],
        )?;
        let name = required_str(&body, "maskingViewId")?.to_owned();
        check_name("masking view", &name)?;
        let pick = |field: &str, param: &str, id: &str| -> Result<String, ApiError> {
            body.get(field)
                .and_then(|s| s.get(param))
                .and_then(|p| p.get(id))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ApiError::bad_request(format!("{field}.{param}.{id} is required")))
        };
        let host = pick("hostOrHostGroupSelection", "useExistingHostParam", "hostId")?;
        let port_group = pick(
            "portGroupSelection",
            "useExistingPortGroupParam",
            "portGroupId",
        )?;
        let storage_group = pick(
            "storageGroupSelection",
            "useExistingStorageGroupParam",
            "storageGroupId",
        )?;
        let outcome = (|| {
            if self.masking_views().contains_key(&name) {
                return Err(ApiError::exists("maskingview", &name));
            }
            let host_record = self.host_record(&host)?;
            let port_record = self.port_group_record(&port_group)?;
            if !self.state().storage_groups.contains_key(&storage_group) {
                return Err(ApiError::not_found("storagegroup", &storage_group));
            }
            let want_fc = port_record["port_group_protocol"] == "SCSI_FC";
            let host_fc = host_record["type"] == "Fibre";
            if want_fc != host_fc {
                return Err(ApiError::bad_request(format!(
                    "Port group {port_group} ({}) cannot reach host {host} ({})",
                    port_record["port_group_protocol"]
                        .as_str()
                        .unwrap_or_default(),
                    host_record["type"].as_str().unwrap_or_default()
                )));
            }
            let mut state = self.state();
            state.masking_views.insert(
                name.clone(),
                MaskingView {
                    host: host.clone(),
                    port_group: port_group.clone(),
                    storage_group: storage_group.clone(),
                },
            );
            if let Err(e) = self.sync(&mut state) {
                state.masking_views.remove(&name);
                return Err(e);
            }
            Ok(json!({
                "maskingViewId": name,
                "hostId": host,
                "portGroupId": port_group,
                "storageGroupId": storage_group,
            }))
        })();
        self.finish(&body, outcome, StatusCode::CREATED)
    }

    fn masking_view_delete(&self, name: &str) -> ApiResult {
        let mut state = self.state();
        if state.masking_views.remove(name).is_none() {
            drop(state);
            // A view of the lab's own mappings is not ours to remove; an unknown one is 404.
            return Err(match self.masking_views().contains_key(name) {
                true => ApiError::bad_request(format!(
                    "Masking view {name} is managed outside this API"
                )),
                false => ApiError::not_found("maskingview", name),
            });
        }
        self.sync(&mut state)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    fn connections(&self, call: &Call, name: &str) -> ApiResult {
        self.allow_query(call, &["volume_id"])?;
        let view = self.masking_view(name)?;
        let devices = self
            .storage_groups()
            .remove(&view.storage_group)
            .unwrap_or_default();
        let initiators: Vec<String> = self
            .san
            .group(&self.array, &view.host)
            .map(|g| g.initiators)
            .unwrap_or_default()
            .iter()
            .filter_map(|i| InitiatorId::parse(i).ok())
            .map(|i| Self::initiator_id(i.as_str()))
            .collect();
        let mappings = self.san.mappings(&self.array);
        let wanted = self.param(call, "volume_id");
        let mut connections = Vec::new();
        for device in devices
            .iter()
            .filter(|d| wanted.is_none_or(|w| w.eq_ignore_ascii_case(d)))
        {
            let Some(volume) = self.volume_by_device(device) else {
                continue;
            };
            let Some(lun) = mappings
                .iter()
                .find(|m| m.volume == volume.name && m.group == view.host)
                .map(|m| m.lun_id)
            else {
                continue;
            };
            for initiator in &initiators {
                connections.push(json!({
                    "volumeId": device,
                    "host_lun_address": format!("{lun:04X}"),
                    "cap_gb": volume.size_bytes as f64 / (1u64 << 30) as f64,
                    "initiatorId": initiator,
                    "alias": initiator,
                    "dir_port": if view.port_group == FC_PORT_GROUP { "FA-1D:4" } else { "SE-1E:0" },
                    "logged_in": true,
                    "on_fabric": true,
                }));
            }
        }
        ok(json!({"maskingViewConnection": connections}))
    }

    // ---- jobs ----

    /// Answers a create or change synchronously, or (`executionOption: ASYNCHRONOUS`) as a job.
    fn finish(
        &self,
        body: &Map<String, Value>,
        outcome: Result<Value, ApiError>,
        success: StatusCode,
    ) -> ApiResult {
        match body.get("executionOption").and_then(Value::as_str) {
            None | Some("SYNCHRONOUS") => {
                let record = outcome?;
                Ok((success, axum::Json(record)).into_response())
            }
            Some("ASYNCHRONOUS") => {
                let mut state = self.state();
                state.counter += 1;
                let id = format!("{}", 1_700_000_000_000u64 + state.counter);
                let (status, result) = match &outcome {
                    Ok(_) => ("SUCCEEDED", "Succeeded".to_owned()),
                    Err(e) => ("FAILED", e.message.clone()),
                };
                let job = json!({
                    "jobId": id,
                    "name": "copy-offload lab job",
                    "status": status,
                    "username": self.username,
                    "result": result,
                    "task": [{"execution_order": 1, "description": result}],
                });
                state.jobs.insert(id.clone(), job);
                let mut scheduled = json!({"jobId": id, "status": "RUNNING", "name": "copy-offload lab job", "username": self.username});
                if let Some(map) = scheduled.as_object_mut() {
                    map.insert("task".into(), json!([]));
                }
                Ok((StatusCode::ACCEPTED, axum::Json(scheduled)).into_response())
            }
            Some(other) => Err(ApiError::bad_request(format!(
                "executionOption {other:?} is neither SYNCHRONOUS nor ASYNCHRONOUS"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Protocol {
    Fc,
    Iscsi,
}

/// The protocol of a canonical initiator id (16 hex digits: an FC WWPN; `iqn.`/`eui.`: iSCSI).
fn protocol_of(canonical: &str) -> Option<Protocol> {
    let canonical = InitiatorId::parse(canonical).ok()?;
    let text = canonical.as_str();
    if text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(Protocol::Fc)
    } else if text.starts_with("iqn.") || text.starts_with("eui.") {
        Some(Protocol::Iscsi)
    } else {
        None
    }
}

fn body_object(body: &Bytes, allowed: &[&str]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("The request body is not JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object",
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Unrecognized field \"{unknown}\"; this request takes: {}",
            allowed.join(", ")
        )));
    }
    Ok(map)
}

fn required_str<'m>(map: &'m Map<String, Value>, field: &str) -> Result<&'m str, ApiError> {
    map.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("{field} is required")))
}

fn volume_ids(param: &Value) -> Result<Vec<String>, ApiError> {
    let ids = param
        .as_object()
        .filter(|o| {
            o.keys()
                .all(|k| k == "volumeId" || k == "remoteSymmSGInfoParam")
        })
        .and_then(|o| o.get("volumeId"))
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("volumeId must be a list of device ids"))?;
    let ids: Vec<String> = ids
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    if ids.is_empty() {
        return Err(ApiError::bad_request("volumeId lists no device"));
    }
    Ok(ids)
}

/// Unisphere object names: 1 to 64 letters, digits, `_` and `-`.
fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid {kind} name {name:?}: 1 to 64 letters, digits, _ or -"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initiator_ids_carry_director_and_port() {
        assert_eq!(
            Inner::initiator_id("10000090fa000001"),
            "FA-1D:4:10000090fa000001"
        );
        assert_eq!(
            Inner::initiator_of("FA-1D:4:10:00:00:90:FA:00:00:01").as_deref(),
            Some("10000090fa000001")
        );
        assert_eq!(
            Inner::initiator_of("iqn.1998-01.com.vmware:esx1").as_deref(),
            Some("iqn.1998-01.com.vmware:esx1")
        );
        assert_eq!(
            Inner::initiator_of("SE-1E:0:iqn.1998-01.com.vmware:esx1").as_deref(),
            Some("iqn.1998-01.com.vmware:esx1")
        );
    }

    #[test]
    fn symmetrix_ids_are_twelve_digits() {
        let sid = symmetrix_id("pmax1");
        assert_eq!(sid.len(), 12);
        assert!(sid.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(sid, symmetrix_id("pmax1"));
    }
}
