//! Pure Storage FlashArray REST facade (`/api/...`) over the lab SAN: hosts are the SAN model's
//! groups, volumes its volumes, host–volume connections its mappings; host groups and volume tags
//! are FlashArray notions the SAN does not have, so the facade keeps them.
//!
//! Shapes follow the FlashArray REST 2.x OpenAPI (`Host`, `HostGroup`, `Connection`, `Volume`,
//! `Tag`, `Arrays`, `Controller`, `*GetResponse`):
//! - `GET /api/api_version` (unauthenticated) lists REST 1.x and 2.x versions;
//! - REST 1.x `POST /api/<1.x>/auth/apitoken` trades user name and password for the user's API
//!   token; REST 2.x `POST /api/<2.x>/login` trades the API token (`api-token` header) for a
//!   session token in the `x-auth-token` response header, which every later call sends;
//!   `POST /logout` ends it. An unknown or expired session answers 401.
//! - Object names and ids travel in the query (`names=a,b`, `host_names=`, `volume_names=`),
//!   bodies carry only attributes; collections answer
//!   `{"items": […], "continuation_token", "more_items_remaining", "total_item_count"}` and page
//!   with `limit` + `continuation_token` (also sent as the `x-next-token` header);
//!   `filter=` takes `field='value'` terms joined with `and`, and a bare boolean field.
//! - Errors answer `{"errors": [{"context": <object>, "message": …}]}`, 400 for everything the
//!   array refuses (missing objects included: "Volume does not exist."), 401 for credentials.
//! - Quirks kept: an initiator (IQN, WWN, NQN) belongs to at most one host; a volume is never
//!   connected to NVMe-oF hosts and SCSI (FC/iSCSI) hosts at once; `POST /volumes` with a
//!   `source` copies the source's data synchronously, onto an existing volume only with
//!   `overwrite=true`; a host-group connection is a shared connection every member host sees.
//!
//! Every route served is listed in [`OPERATIONS`], which a contract test checks against the
//! FlashArray OpenAPI definition.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::san::{GroupSpec, InitiatorGroup, San, SanError, Volume, stable_uuid};

/// REST versions `GET /api/api_version` lists: the 1.x the legacy token exchange runs on, and
/// the 2.x the facade's shapes follow.
pub const API_VERSIONS: &[&str] = &[
    "1.17", "1.18", "1.19", "2.0", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "2.8", "2.9",
    "2.10", "2.11", "2.12", "2.13", "2.14", "2.15", "2.16",
];

/// Purity//FA release reported by `GET /arrays` and `GET /controllers`.
pub const PURITY_VERSION: &str = "6.5.8";

/// Every (method, path template) served; `{v1}`/`{v2}` stand for a listed REST 1.x/2.x version.
pub const OPERATIONS: &[(&str, &str)] = &[
    ("GET", "/api/api_version"),
    ("POST", "/api/{v1}/auth/apitoken"),
    ("POST", "/api/{v2}/login"),
    ("POST", "/api/{v2}/logout"),
    ("GET", "/api/{v2}/arrays"),
    ("GET", "/api/{v2}/controllers"),
    ("GET", "/api/{v2}/hosts"),
    ("POST", "/api/{v2}/hosts"),
    ("PATCH", "/api/{v2}/hosts"),
    ("DELETE", "/api/{v2}/hosts"),
    ("GET", "/api/{v2}/host-groups"),
    ("POST", "/api/{v2}/host-groups"),
    ("DELETE", "/api/{v2}/host-groups"),
    ("GET", "/api/{v2}/connections"),
    ("POST", "/api/{v2}/connections"),
    ("DELETE", "/api/{v2}/connections"),
    ("GET", "/api/{v2}/volumes"),
    ("POST", "/api/{v2}/volumes"),
    ("GET", "/api/{v2}/volumes/tags"),
];

/// Tag namespace the VASA provider gives vVol volumes; key [`VVOL_ID_TAG`] holds the vVol id.
pub const VASA_NAMESPACE: &str = "vasa-integration.purestorage.com";
/// Tag key holding a vVol volume's vSphere `backingObjectId`.
pub const VVOL_ID_TAG: &str = "PURE_VVOL_ID";

/// Name prefix of the array objects copy-offload creates.
const OBJECT_PREFIX: &str = "xcopy-";

/// Who may log in: a user name and password (REST 1.x token exchange) and that user's API token.
#[derive(Clone)]
pub struct PureCredentials {
    pub username: String,
    pub password: String,
    pub api_token: String,
}

impl std::fmt::Debug for PureCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PureCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The name Portworx FlashArray Direct Access gives the volume of PV `pv_name`.
pub fn portworx_volume_name(cluster_prefix: &str, pv_name: &str) -> String {
    format!("{cluster_prefix}-{pv_name}")
}

/// The API token of a lab FlashArray's user (derived from the array's name, so the rig can give it
/// to `populate` without another scenario field).
pub fn lab_api_token(array: &str) -> String {
    format!("lab-api-token-{array}")
}

/// The Portworx cluster prefix of the lab's volumes.
pub const LAB_CLUSTER_PREFIX: &str = "px_0c0ffee0";

/// Pure in the lab rig: Portworx FlashArray Direct Access names a PV's volume
/// `<cluster prefix>-<pv name>` and puts the volume's uuid in the PV's `volumeHandle`; `populate`
/// is told the cluster prefix and authenticates with the API token.
pub struct PureFacade;

impl crate::rig::ArrayFacade for PureFacade {
    fn product(&self) -> &'static str {
        "pureFlashArray"
    }

    fn create_csi_volume(
        &self,
        san: &San,
        array: &crate::lab::ArrayEndpoint,
        pv_name: &str,
        size_bytes: u64,
    ) -> Result<crate::rig::TargetVolume, SanError> {
        let volume = san.create_volume(
            &array.name,
            &portworx_volume_name(LAB_CLUSTER_PREFIX, pv_name),
            size_bytes,
        )?;
        Ok(crate::rig::TargetVolume {
            pvc: pv_name.to_owned(),
            array: array.name.clone(),
            volume_handle: volume.uuid.clone(),
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
            (flags::PURE_CLUSTER_PREFIX, LAB_CLUSTER_PREFIX.to_owned()),
            (flags::STORAGE_TOKEN, lab_api_token(&array.name)),
        ]
    }
}

/// One FlashArray: its REST API over `array` of the SAN plus the state the SAN does not model.
/// Cheap to clone; clones share the array.
#[derive(Clone)]
pub struct FlashArray {
    inner: Arc<Inner>,
}

struct Inner {
    san: San,
    array: String,
    credentials: PureCredentials,
    next_session: AtomicU64,
    state: Mutex<PureState>,
}

#[derive(Default)]
struct PureState {
    sessions: BTreeSet<String>,
    /// Host group → member hosts.
    host_groups: BTreeMap<String, BTreeSet<String>>,
    /// (volume, host group) shared connections; materialised as SAN mappings on each member.
    shared: BTreeSet<(String, String)>,
    /// Volume → the volume it was last copied from.
    sources: BTreeMap<String, String>,
}

/// `/api/<2.x>` of `array` in `san`, accepting `credentials`.
pub fn router(san: San, array: &str, credentials: PureCredentials) -> Router {
    FlashArray::new(san, array, credentials).router()
}

impl FlashArray {
    pub fn new(san: San, array: &str, credentials: PureCredentials) -> FlashArray {
        FlashArray {
            inner: Arc::new(Inner {
                san,
                array: array.to_owned(),
                credentials,
                next_session: AtomicU64::new(1),
                state: Mutex::new(PureState::default()),
            }),
        }
    }

    /// The REST API; serve it over HTTPS (the vendor's client only speaks HTTPS).
    pub fn router(&self) -> Router {
        let v2 = Router::new()
            .route("/login", post(login))
            .route("/logout", post(logout))
            .route("/arrays", get(arrays))
            .route("/controllers", get(controllers))
            .route(
                "/hosts",
                get(hosts_get)
                    .post(hosts_post)
                    .patch(hosts_patch)
                    .delete(hosts_delete),
            )
            .route(
                "/host-groups",
                get(host_groups_get)
                    .post(host_groups_post)
                    .delete(host_groups_delete),
            )
            .route(
                "/connections",
                get(connections_get)
                    .post(connections_post)
                    .delete(connections_delete),
            )
            .route("/volumes", get(volumes_get).post(volumes_post))
            .route("/volumes/tags", get(tags_get));
        Router::new()
            .route("/api/api_version", get(api_version))
            .route("/api/{version}/auth/apitoken", post(api_token))
            .nest("/api/{version}", v2)
            .layer(middleware::from_fn_with_state(self.clone(), authenticate))
            .with_state(self.clone())
    }

    /// Creates the volume Portworx FlashArray Direct Access provisions for PV `pv_name`; its
    /// `uuid` is what the array lists as the volume `id`.
    pub fn create_portworx_volume(
        &self,
        cluster_prefix: &str,
        pv_name: &str,
        size_bytes: u64,
    ) -> Result<Volume, SanError> {
        self.san().create_volume(
            self.array(),
            &portworx_volume_name(cluster_prefix, pv_name),
            size_bytes,
        )
    }

    /// What a copy may leave behind, one line per object: [`FlashArray::copy_leftovers`] and open
    /// sessions.
    pub fn leftovers(&self) -> Vec<String> {
        let mut found = self.copy_leftovers();
        let sessions = self.state().sessions.len();
        if sessions > 0 {
            found.push(format!("{sessions} open session(s)"));
        }
        found
    }

    /// The objects a copy may leave behind: hosts and host groups named `xcopy-…` (the name prefix
    /// copy-offload gives its array objects) and connections to them.
    pub fn copy_leftovers(&self) -> Vec<String> {
        let ours = |name: &str| name.starts_with(OBJECT_PREFIX);
        let state = self.state();
        let mut found: Vec<String> = self
            .san()
            .groups(self.array())
            .into_iter()
            .filter(|h| ours(&h.name))
            .map(|h| format!("host {}", h.name))
            .collect();
        found.extend(
            state
                .host_groups
                .keys()
                .filter(|hg| ours(hg))
                .map(|hg| format!("host group {hg}")),
        );
        found.extend(
            self.san()
                .mappings(self.array())
                .into_iter()
                .filter(|m| ours(&m.group))
                .map(|m| format!("connection {} -> {}", m.volume, m.group)),
        );
        found
    }

    /// Ends every session, as an array restart or idle timeout does: the next call answers 401.
    pub fn expire_sessions(&self) {
        self.state().sessions.clear();
    }

    /// Sessions currently open (logins not yet logged out or expired).
    pub fn open_sessions(&self) -> usize {
        self.state().sessions.len()
    }

    /// Tags `volume` as the VASA provider tags a vVol: namespace [`VASA_NAMESPACE`], key
    /// [`VVOL_ID_TAG`], value the vVol id.
    pub fn tag_vvol(&self, volume: &str, vvol_id: &str) -> Result<(), ApiError> {
        self.volume(volume)?;
        self.san()
            .back_vvol(self.array(), volume, vvol_id)
            .map_err(|e| san_error(volume, e))
    }

    /// Creates host group `name` holding `hosts` (which must exist and be in no other group).
    pub fn create_host_group(&self, name: &str, hosts: &[&str]) -> Result<(), ApiError> {
        let mut state = self.state();
        if state.host_groups.contains_key(name) {
            return Err(ApiError::bad(name, "Host group already exists."));
        }
        for host in hosts {
            self.host(host)?;
            if host_group_of(&state, host).is_some() {
                return Err(ApiError::bad(host, "Host is already in a host group."));
            }
        }
        state.host_groups.insert(
            name.to_owned(),
            hosts.iter().map(|h| (*h).to_owned()).collect(),
        );
        Ok(())
    }

    /// Connects `volume` to every host of `host_group` (a shared connection).
    pub fn connect_host_group(&self, volume: &str, host_group: &str) -> Result<(), ApiError> {
        let mut state = self.state();
        self.connect_shared(&mut state, volume, host_group, None)
            .map(|_| ())
    }

    fn state(&self) -> MutexGuard<'_, PureState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn san(&self) -> &San {
        &self.inner.san
    }

    fn array(&self) -> &str {
        &self.inner.array
    }

    fn volume(&self, name: &str) -> Result<Volume, ApiError> {
        self.san()
            .volume(self.array(), name)
            .ok_or_else(|| ApiError::bad(name, "Volume does not exist."))
    }

    fn volume_by_id(&self, id: &str) -> Result<Volume, ApiError> {
        self.san()
            .volumes(self.array())
            .into_iter()
            .find(|v| v.uuid == id)
            .ok_or_else(|| ApiError::bad(id, "Volume does not exist."))
    }

    fn host(&self, name: &str) -> Result<InitiatorGroup, ApiError> {
        self.san()
            .group(self.array(), name)
            .ok_or_else(|| ApiError::bad(name, "Host does not exist."))
    }

    /// Whether `host` reaches the array over NVMe-oF (`Some(true)`), SCSI (`Some(false)`), or has
    /// no initiator yet.
    fn host_is_nvme(host: &InitiatorGroup) -> Option<bool> {
        let ports = HostPorts::of(host);
        if !ports.nqns.is_empty() {
            Some(true)
        } else if ports.iqns.is_empty() && ports.wwns.is_empty() {
            None
        } else {
            Some(false)
        }
    }

    /// Refuses connecting `volume` to `hosts` when that would mix NVMe-oF and SCSI hosts.
    fn check_protocols(&self, volume: &str, hosts: &[String]) -> Result<(), ApiError> {
        let kind = |name: &str| {
            self.san()
                .group(self.array(), name)
                .and_then(|h| Self::host_is_nvme(&h))
        };
        let existing: Vec<bool> = self
            .san()
            .mappings(self.array())
            .iter()
            .filter(|m| m.volume == volume)
            .filter_map(|m| kind(&m.group))
            .collect();
        let new: Vec<bool> = hosts.iter().filter_map(|h| kind(h)).collect();
        let all: BTreeSet<bool> = existing.into_iter().chain(new).collect();
        if all.len() > 1 {
            return Err(ApiError::bad(
                volume,
                "Volume cannot be connected to NVMe-oF hosts and SCSI hosts at the same time.",
            ));
        }
        Ok(())
    }

    fn connect_shared(
        &self,
        state: &mut PureState,
        volume: &str,
        host_group: &str,
        lun: Option<u32>,
    ) -> Result<Vec<Value>, ApiError> {
        self.volume(volume)?;
        let members: Vec<String> = state
            .host_groups
            .get(host_group)
            .ok_or_else(|| ApiError::bad(host_group, "Host group does not exist."))?
            .iter()
            .cloned()
            .collect();
        if state
            .shared
            .contains(&(volume.to_owned(), host_group.to_owned()))
        {
            return Err(ApiError::bad(volume, "Connection already exists."));
        }
        self.check_protocols(volume, &members)?;
        let mut done = Vec::new();
        for host in &members {
            match self.san().map_at(self.array(), volume, host, lun) {
                Ok(_) => done.push(host.clone()),
                Err(e) => {
                    for host in &done {
                        let _ = self.san().unmap(self.array(), volume, host);
                    }
                    return Err(san_error(volume, e));
                }
            }
        }
        state
            .shared
            .insert((volume.to_owned(), host_group.to_owned()));
        Ok(self.connection_items(state, |c| {
            c.volume == volume && c.host_group.as_deref() == Some(host_group)
        }))
    }

    fn connection_items(
        &self,
        state: &PureState,
        keep: impl Fn(&ConnectionView) -> bool,
    ) -> Vec<Value> {
        let volumes: BTreeMap<String, Volume> = self
            .san()
            .volumes(self.array())
            .into_iter()
            .map(|v| (v.name.clone(), v))
            .collect();
        self.san()
            .mappings(self.array())
            .into_iter()
            .filter_map(|m| {
                let host_group = host_group_of(state, &m.group)
                    .filter(|hg| state.shared.contains(&(m.volume.clone(), hg.clone())));
                let view = ConnectionView {
                    volume: m.volume.clone(),
                    host: m.group.clone(),
                    host_group,
                    lun: m.lun_id,
                };
                if !keep(&view) {
                    return None;
                }
                let id = volumes.get(&m.volume).map(|v| v.uuid.clone());
                Some(json!({
                    "host": {"name": view.host},
                    "host_group": {"name": view.host_group},
                    "lun": view.lun,
                    "protocol_endpoint": {"id": null, "name": null},
                    "volume": {"id": id, "name": view.volume},
                }))
            })
            .collect()
    }

    fn host_item(&self, state: &PureState, host: &InitiatorGroup) -> Value {
        let ports = HostPorts::of(host);
        let connection_count = self
            .san()
            .mappings(self.array())
            .iter()
            .filter(|m| m.group == host.name)
            .count();
        json!({
            "name": host.name,
            "iqns": ports.iqns,
            "wwns": ports.wwns,
            "nqns": ports.nqns,
            "personality": host.os_type,
            "is_local": true,
            "host_group": {"name": host_group_of(state, &host.name)},
            "connection_count": connection_count,
        })
    }

    fn volume_item(&self, state: &PureState, volume: &Volume) -> Value {
        let connection_count = self
            .san()
            .mappings(self.array())
            .iter()
            .filter(|m| m.volume == volume.name)
            .count();
        let source = state.sources.get(&volume.name).map(|name| {
            let id = self.san().volume(self.array(), name).map(|v| v.uuid);
            json!({"id": id, "name": name})
        });
        json!({
            "id": volume.uuid,
            "name": volume.name,
            "serial": volume.serial,
            "provisioned": volume.size_bytes,
            "destroyed": false,
            "connection_count": connection_count,
            "created": 0,
            "subtype": "regular",
            "source": source.unwrap_or_else(|| json!({"id": null, "name": null})),
            "space": {"total_provisioned": volume.size_bytes},
        })
    }
}

fn host_group_of(state: &PureState, host: &str) -> Option<String> {
    state
        .host_groups
        .iter()
        .find(|(_, members)| members.contains(host))
        .map(|(name, _)| name.clone())
}

struct ConnectionView {
    volume: String,
    host: String,
    host_group: Option<String>,
    lun: u32,
}

/// A host's initiators split as the FlashArray lists them; WWNs in upper case without separators.
struct HostPorts {
    iqns: Vec<String>,
    wwns: Vec<String>,
    nqns: Vec<String>,
}

impl HostPorts {
    fn of(host: &InitiatorGroup) -> HostPorts {
        let mut ports = HostPorts {
            iqns: Vec::new(),
            wwns: Vec::new(),
            nqns: Vec::new(),
        };
        for id in &host.initiators {
            let lower = id.to_ascii_lowercase();
            if lower.starts_with("nqn.") {
                ports.nqns.push(id.clone());
            } else if lower.starts_with("iqn.") || lower.starts_with("eui.") {
                ports.iqns.push(id.clone());
            } else {
                ports
                    .wwns
                    .push(normalise_wwn(id).unwrap_or_else(|| id.clone()));
            }
        }
        ports
    }
}

/// `21:00:00:24:ff:2a:3c:4e` → `21000024FF2A3C4E`; `None` unless 16 hex digits remain.
fn normalise_wwn(text: &str) -> Option<String> {
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | ' '))
        .collect();
    (digits.len() == 16 && digits.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| digits.to_ascii_uppercase())
}

// ---- errors ----

/// A FlashArray error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    context: Option<String>,
    message: String,
}

impl ApiError {
    fn bad(context: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            context: Some(context.to_owned()),
            message: message.into(),
        }
    }

    fn unauthorized(message: &str) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            context: None,
            message: message.to_owned(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"errors": [{"context": self.context, "message": self.message}]});
        (self.status, axum::Json(body)).into_response()
    }
}

fn san_error(context: &str, error: SanError) -> ApiError {
    let message = match &error {
        SanError::UnknownVolume { .. } => "Volume does not exist.".to_owned(),
        SanError::UnknownGroup { .. } => "Host does not exist.".to_owned(),
        SanError::AlreadyMapped { .. } => "Connection already exists.".to_owned(),
        SanError::NotMapped { .. } => "Connection does not exist.".to_owned(),
        SanError::VolumeExists { .. } => "Volume already exists.".to_owned(),
        SanError::GroupExists { .. } => "Host already exists.".to_owned(),
        SanError::GroupInUse { .. } => "Host has connected volumes; disconnect them first.".into(),
        SanError::LunIdInUse { .. } => "LUN is already in use.".to_owned(),
        _ => error.to_string(),
    };
    let status = match error {
        SanError::UnknownArray { .. } | SanError::Backing { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError {
        status,
        context: Some(context.to_owned()),
        message,
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(body: Value) -> ApiResult {
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

fn items(items: Vec<Value>) -> ApiResult {
    ok(json!({ "items": items }))
}

// ---- auth ----

const SESSION_HEADER: &str = "x-auth-token";

fn is_v1(version: &str) -> bool {
    version.starts_with("1.") && API_VERSIONS.contains(&version)
}

fn is_v2(version: &str) -> bool {
    version.starts_with("2.") && API_VERSIONS.contains(&version)
}

async fn authenticate(State(array): State<FlashArray>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut parts = path.trim_start_matches('/').split('/');
    let (_api, version, rest) = (parts.next(), parts.next(), parts.collect::<Vec<_>>());
    let Some(version) = version else {
        return next.run(request).await;
    };
    if version == "api_version" {
        return next.run(request).await;
    }
    let unsupported = || {
        ApiError {
            status: StatusCode::NOT_FOUND,
            context: Some(version.to_owned()),
            message: format!("REST API version {version} is not supported by this array."),
        }
        .into_response()
    };
    if rest == ["auth", "apitoken"] {
        return if is_v1(version) {
            next.run(request).await
        } else {
            unsupported()
        };
    }
    if !is_v2(version) {
        return unsupported();
    }
    if matches!(rest.as_slice(), ["login"] | ["logout"]) {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let known = token.is_some_and(|t| array.state().sessions.contains(&t));
    if known {
        next.run(request).await
    } else {
        ApiError::unauthorized("Session token is invalid or has expired; log in again.")
            .into_response()
    }
}

async fn api_version() -> ApiResult {
    ok(json!({ "version": API_VERSIONS }))
}

/// REST 1.x: `{"username", "password"}` → `{"api_token"}`; a refusal is 1.x's `[{"msg"}]` shape.
async fn api_token(State(array): State<FlashArray>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let credentials = &array.inner.credentials;
    let user = body.get("username").and_then(Value::as_str);
    let password = body.get("password").and_then(Value::as_str);
    if user == Some(credentials.username.as_str()) && password == Some(&credentials.password) {
        return (
            StatusCode::OK,
            axum::Json(json!({ "api_token": credentials.api_token })),
        )
            .into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!([{ "msg": "invalid credentials" }])),
    )
        .into_response()
}

async fn login(State(array): State<FlashArray>, headers: HeaderMap) -> ApiResult {
    let given = headers.get("api-token").and_then(|v| v.to_str().ok());
    let credentials = &array.inner.credentials;
    if given != Some(credentials.api_token.as_str()) {
        return Err(ApiError::unauthorized("Invalid API token."));
    }
    let n = array.inner.next_session.fetch_add(1, Ordering::Relaxed);
    let token = stable_uuid(&[array.array(), "session", &n.to_string()]);
    array.state().sessions.insert(token.clone());
    let mut response = (
        StatusCode::OK,
        axum::Json(json!({ "items": [{ "username": credentials.username }] })),
    )
        .into_response();
    let value = HeaderValue::from_str(&token).map_err(|_| ApiError::unauthorized("token"))?;
    response.headers_mut().insert(SESSION_HEADER, value);
    Ok(response)
}

async fn logout(State(array): State<FlashArray>, headers: HeaderMap) -> ApiResult {
    if let Some(token) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
        array.state().sessions.remove(token);
    }
    Ok(StatusCode::OK.into_response())
}

// ---- query handling ----

type Params = Query<Vec<(String, String)>>;

/// The query of one request, checked against the parameters the operation takes.
struct Q {
    pairs: Vec<(String, String)>,
}

impl Q {
    fn new(params: Vec<(String, String)>, allowed: &[&str]) -> Result<Q, ApiError> {
        if let Some((key, _)) = params.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            return Err(ApiError::bad(
                key,
                format!("Invalid query parameter: {key}."),
            ));
        }
        Ok(Q { pairs: params })
    }

    fn one(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A comma-separated list parameter.
    fn list(&self, key: &str) -> Option<Vec<String>> {
        self.one(key).map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
    }

    fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.one(key).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::bad(key, format!("Invalid value {other:?}."))),
        }
    }

    fn required_list(&self, key: &str) -> Result<Vec<String>, ApiError> {
        self.list(key)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| ApiError::bad(key, format!("Missing required parameter {key}.")))
    }
}

const PAGE_PARAMS: &[&str] = &[
    "continuation_token",
    "filter",
    "limit",
    "offset",
    "sort",
    "total_item_count",
];

fn with_page(extra: &[&'static str]) -> Vec<&'static str> {
    PAGE_PARAMS.iter().chain(extra).copied().collect()
}

/// Filters, sorts and pages a collection into a `*GetResponse`.
fn collection(q: &Q, all: Vec<Value>) -> ApiResult {
    let terms = match q.one("filter") {
        Some(filter) => parse_filter(filter)?,
        None => Vec::new(),
    };
    let mut matched: Vec<Value> = all
        .into_iter()
        .filter(|item| terms.iter().all(|t| t.matches(item)))
        .collect();
    if let Some(sort) = q.one("sort") {
        let (field, descending) = match sort.strip_suffix('-') {
            Some(field) => (field, true),
            None => (sort, false),
        };
        matched.sort_by_key(|item| field_at(item, field).map(|v| v.to_string()));
        if descending {
            matched.reverse();
        }
    }
    let total = matched.len();
    let number = |key: &str| -> Result<Option<usize>, ApiError> {
        q.one(key)
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| ApiError::bad(key, format!("Invalid value {v:?}.")))
            })
            .transpose()
    };
    let start = match q.one("continuation_token") {
        Some(token) => token
            .strip_prefix("lab-page-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ApiError::bad("continuation_token", "Invalid continuation token."))?,
        None => number("offset")?.unwrap_or(0),
    };
    let limit = number("limit")?;
    let end = limit.map_or(total, |l| start.saturating_add(l).min(total));
    let page: Vec<Value> = matched
        .into_iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect();
    let next = (end < total).then(|| format!("lab-page-{end}"));
    let with_total = q.flag("total_item_count")?;
    let body = json!({
        "items": page,
        "continuation_token": next,
        "more_items_remaining": next.is_some(),
        "total_item_count": with_total.then_some(total),
    });
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    if let Some(token) = next.and_then(|t| HeaderValue::from_str(&t).ok()) {
        response.headers_mut().insert("x-next-token", token);
    }
    Ok(response)
}

fn field_at<'v>(item: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(item, |v, key| v.get(key))
}

/// One `filter=` term: `field='value'`, `field!='value'`, or a bare boolean `field`.
enum FilterTerm {
    Equals(String, String, bool),
    True(String),
}

impl FilterTerm {
    fn matches(&self, item: &Value) -> bool {
        match self {
            FilterTerm::True(field) => field_at(item, field) == Some(&Value::Bool(true)),
            FilterTerm::Equals(field, want, equal) => {
                let have = match field_at(item, field) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                (have == *want) == *equal
            }
        }
    }
}

fn parse_filter(filter: &str) -> Result<Vec<FilterTerm>, ApiError> {
    let invalid = || ApiError::bad("filter", format!("Invalid filter: {filter}"));
    let mut terms = Vec::new();
    let mut rest = filter.trim();
    while !rest.is_empty() {
        let field_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        let field = &rest[..field_end];
        if field.is_empty() {
            return Err(invalid());
        }
        rest = rest[field_end..].trim_start();
        let (op, after) = if let Some(after) = rest.strip_prefix("!=") {
            (Some(false), after)
        } else if let Some(after) = rest.strip_prefix('=') {
            (Some(true), after)
        } else {
            (None, rest)
        };
        rest = match op {
            None => {
                terms.push(FilterTerm::True(field.to_owned()));
                after
            }
            Some(equal) => {
                let after = after.trim_start();
                let quote = after.chars().next().filter(|c| *c == '\'' || *c == '"');
                let (value, tail) = match quote {
                    Some(q) => {
                        let close = after[1..].find(q).ok_or_else(invalid)? + 1;
                        (&after[1..close], &after[close + 1..])
                    }
                    None => {
                        let end = after.find(char::is_whitespace).unwrap_or(after.len());
                        (&after[..end], &after[end..])
                    }
                };
                terms.push(FilterTerm::Equals(
                    field.to_owned(),
                    value.to_owned(),
                    equal,
                ));
                tail
            }
        }
        .trim_start();
        if rest.is_empty() {
            break;
        }
        let lower = rest.to_ascii_lowercase();
        if !lower.starts_with("and ") {
            return Err(invalid());
        }
        rest = rest[4..].trim_start();
    }
    Ok(terms)
}

fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad("body", format!("The request body is not valid JSON: {e}.")))
}

/// The `names=` of a write that takes nothing else in its query, and its body checked by
/// [`body_fields`].
fn names_and_body(
    params: Vec<(String, String)>,
    body: &Bytes,
    fields: &[&str],
) -> Result<(Vec<String>, Value), ApiError> {
    let names = Q::new(params, &["names"])?.required_list("names")?;
    let body = body_json(body)?;
    body_fields(&body, fields)?;
    Ok((names, body))
}

/// Rejects body fields the operation does not take.
fn body_fields(body: &Value, allowed: &[&str]) -> Result<(), ApiError> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::bad(
            "body",
            "The request body must be a JSON object.",
        ));
    };
    if let Some(key) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad(key, format!("Invalid field: {key}.")));
    }
    Ok(())
}

fn strings(body: &Value, key: &str) -> Vec<String> {
    body.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

// ---- arrays and controllers ----

async fn arrays(State(array): State<FlashArray>, Query(params): Params) -> ApiResult {
    let q = Q::new(
        params,
        &["filter", "limit", "offset", "sort", "total_item_count"],
    )?;
    collection(
        &q,
        vec![json!({
            "id": stable_uuid(&[array.array(), "array"]),
            "name": array.array(),
            "os": "Purity//FA",
            "version": PURITY_VERSION,
        })],
    )
}

async fn controllers(State(array): State<FlashArray>, Query(params): Params) -> ApiResult {
    let q = Q::new(params, &with_page(&["names"]))?;
    let _ = array;
    let controller = |name: &str, mode: &str| {
        json!({"name": name, "mode": mode, "model": "FA-X70R4", "status": "ready",
               "type": "array_controller", "version": PURITY_VERSION})
    };
    collection(
        &q,
        vec![controller("CT0", "primary"), controller("CT1", "secondary")],
    )
}

// ---- hosts ----

async fn hosts_get(State(array): State<FlashArray>, Query(params): Params) -> ApiResult {
    let q = Q::new(params, &with_page(&["names"]))?;
    let state = array.state();
    let hosts = match q.list("names") {
        Some(names) => names
            .iter()
            .map(|n| array.host(n))
            .collect::<Result<Vec<_>, _>>()?,
        None => array.san().groups(array.array()),
    };
    let all = hosts.iter().map(|h| array.host_item(&state, h)).collect();
    drop(state);
    collection(&q, all)
}

/// Makes sure no other host holds one of `ports` (the FlashArray keeps initiators unique).
fn check_ports_free(array: &FlashArray, host: &str, ports: &[String]) -> Result<(), ApiError> {
    for other in array.san().groups(array.array()) {
        if other.name == host {
            continue;
        }
        for port in ports {
            let taken = other.initiators.iter().any(|i| same_port(i, port));
            if taken {
                return Err(ApiError::bad(
                    port,
                    format!(
                        "The specified port is already in use by host {}.",
                        other.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn same_port(a: &str, b: &str) -> bool {
    match (normalise_wwn(a), normalise_wwn(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a.eq_ignore_ascii_case(b),
    }
}

fn port_list(body: &Value, prefix: &str) -> Result<Vec<String>, ApiError> {
    let mut ports = Vec::new();
    for kind in ["iqns", "wwns", "nqns"] {
        let key = format!("{prefix}{kind}");
        for port in strings(body, &key) {
            let port = if kind == "wwns" {
                normalise_wwn(&port).ok_or_else(|| {
                    ApiError::bad(&port, "Invalid WWN: expected 16 hexadecimal digits.")
                })?
            } else {
                port
            };
            ports.push(port);
        }
    }
    Ok(ports)
}

async fn hosts_post(
    State(array): State<FlashArray>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    let (names, body) = names_and_body(
        params,
        &body,
        &[
            "chap",
            "iqns",
            "nqns",
            "personality",
            "preferred_arrays",
            "vlan",
            "wwns",
        ],
    )?;
    let ports = port_list(&body, "")?;
    let personality = body
        .get("personality")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut created = Vec::new();
    for name in &names {
        check_ports_free(&array, name, &ports)?;
        let host = array
            .san()
            .create_group(
                array.array(),
                GroupSpec {
                    name: name.clone(),
                    initiators: ports.clone(),
                    protocol: None,
                    os_type: personality.clone(),
                },
            )
            .map_err(|e| san_error(name, e))?;
        created.push(host);
    }
    let state = array.state();
    items(created.iter().map(|h| array.host_item(&state, h)).collect())
}

async fn hosts_patch(
    State(array): State<FlashArray>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    let (names, body) = names_and_body(
        params,
        &body,
        &[
            "add_iqns",
            "add_nqns",
            "add_wwns",
            "remove_iqns",
            "remove_nqns",
            "remove_wwns",
            "host_group",
            "personality",
        ],
    )?;
    let add = port_list(&body, "add_")?;
    let remove = port_list(&body, "remove_")?;
    let mut updated = Vec::new();
    for name in &names {
        let host = array.host(name)?;
        check_ports_free(&array, name, &add)?;
        for port in &add {
            match array.san().add_initiator(array.array(), name, port) {
                Ok(()) | Err(SanError::InitiatorExists { .. }) => {}
                Err(e) => return Err(san_error(port, e)),
            }
        }
        for port in &remove {
            let known = host.initiators.iter().find(|i| same_port(i, port));
            let Some(known) = known else {
                return Err(ApiError::bad(
                    port,
                    "The specified port is not on this host.",
                ));
            };
            array
                .san()
                .remove_initiator(array.array(), name, known)
                .map_err(|e| san_error(port, e))?;
        }
        if let Some(group) = body.get("host_group") {
            let target = group.get("name").and_then(Value::as_str).unwrap_or("");
            let mut state = array.state();
            let current = host_group_of(&state, name);
            if current.as_deref() != Some(target) {
                if let Some(current) = current
                    && state.shared.iter().any(|(_, hg)| *hg == current)
                {
                    return Err(ApiError::bad(
                        name,
                        "Host group has connected volumes; disconnect them first.",
                    ));
                }
                for members in state.host_groups.values_mut() {
                    members.remove(name);
                }
                if !target.is_empty() {
                    state
                        .host_groups
                        .get_mut(target)
                        .ok_or_else(|| ApiError::bad(target, "Host group does not exist."))?
                        .insert(name.clone());
                }
            }
        }
        updated.push(array.host(name)?);
    }
    let state = array.state();
    items(updated.iter().map(|h| array.host_item(&state, h)).collect())
}

async fn hosts_delete(State(array): State<FlashArray>, Query(params): Params) -> ApiResult {
    let q = Q::new(params, &["names"])?;
    for name in q.required_list("names")? {
        array.host(&name)?;
        array
            .san()
            .delete_group(array.array(), &name)
            .map_err(|e| san_error(&name, e))?;
        for members in array.state().host_groups.values_mut() {
            members.remove(&name);
        }
    }
    Ok(StatusCode::OK.into_response())
}

// ---- host groups ----

async fn host_groups_get(State(array): State<FlashArray>, Query(params): Params) -> ApiResult {
    let q = Q::new(params, &with_page(&["names"]))?;
    let state = array.state();
    let wanted = q.list("names");
    if let Some(missing) = wanted
        .iter()
        .flatten()
        .find(|n| !state.host_groups.contains_key(*n))
    {
        return Err(ApiError::bad(missing, "Host group does not exist."));
    }
    let all = state
        .host_groups
        .iter()
        .filter(|(name, _)| wanted.as_ref().is_none_or(|w| w.contains(name)))
        .map(|(name, members)| {
            let connections = state.shared.iter().filter(|(_, hg)| hg == name).count();
            json!({"name": name, "host_count": members.len(),
                   "connection_count": connections, "is_local": true})
        })
        .collect();
    drop(state);
    collection(&q, all)
}

async fn host_groups_post(State(array): State<FlashArray>, Query(params): Params) -> ApiResult {
    let q = Q::new(params, &["names"])?;
    let names = q.required_list("names")?;
    for name in &names {
        array.create_host_group(name, &[])?;
    }
    items(
        names
            .iter()
            .map(|n| json!({"name": n, "host_count": 0, "connection_count": 0, "is_local": true}))
            .collect(),
    )
}

async fn host_groups_delete(State(array): State<FlashArray>, Query(params): Params) -> ApiResult {
    let q = Q::new(params, &["names"])?;
    let mut state = array.state();
    for name in q.required_list("names")? {
        let members = state
            .host_groups
            .get(&name)
            .ok_or_else(|| ApiError::bad(&name, "Host group does not exist."))?;
        if !members.is_empty() {
            return Err(ApiError::bad(&name, "Host group still has member hosts."));
        }
        if state.shared.iter().any(|(_, hg)| *hg == name) {
            return Err(ApiError::bad(&name, "Host group has connected volumes."));
        }
        state.host_groups.remove(&name);
    }
    Ok(StatusCode::OK.into_response())
}

// ---- connections ----

const CONNECTION_TARGETS: &[&str] = &[
    "host_group_names",
    "host_names",
    "volume_ids",
    "volume_names",
];

/// The volume names a connection request addresses (`volume_names` or `volume_ids`).
fn addressed_volumes(array: &FlashArray, q: &Q) -> Result<Option<Vec<String>>, ApiError> {
    if let Some(names) = q.list("volume_names") {
        for name in &names {
            array.volume(name)?;
        }
        return Ok(Some(names));
    }
    q.list("volume_ids")
        .map(|ids| {
            ids.iter()
                .map(|id| array.volume_by_id(id).map(|v| v.name))
                .collect()
        })
        .transpose()
}

async fn connections_get(State(array): State<FlashArray>, Query(params): Params) -> ApiResult {
    let mut allowed = with_page(CONNECTION_TARGETS);
    allowed.extend(["protocol_endpoint_ids", "protocol_endpoint_names"]);
    let q = Q::new(params, &allowed)?;
    let volumes = addressed_volumes(&array, &q)?;
    let hosts = q.list("host_names");
    for host in hosts.iter().flatten() {
        array.host(host)?;
    }
    let host_groups = q.list("host_group_names");
    let state = array.state();
    for hg in host_groups.iter().flatten() {
        if !state.host_groups.contains_key(hg) {
            return Err(ApiError::bad(hg, "Host group does not exist."));
        }
    }
    let all = array.connection_items(&state, |c| {
        volumes.as_ref().is_none_or(|v| v.contains(&c.volume))
            && hosts.as_ref().is_none_or(|h| h.contains(&c.host))
            && host_groups
                .as_ref()
                .is_none_or(|g| c.host_group.as_ref().is_some_and(|hg| g.contains(hg)))
    });
    drop(state);
    collection(&q, all)
}

async fn connections_post(
    State(array): State<FlashArray>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    let q = Q::new(params, CONNECTION_TARGETS)?;
    let body = body_json(&body)?;
    body_fields(&body, &["lun", "protocol_endpoint"])?;
    let lun = body
        .get("lun")
        .and_then(Value::as_u64)
        .and_then(|l| u32::try_from(l).ok());
    let volumes = addressed_volumes(&array, &q)?
        .ok_or_else(|| ApiError::bad("volume_names", "Missing volume_names or volume_ids."))?;
    let mut state = array.state();
    let mut created = Vec::new();
    match (q.list("host_names"), q.list("host_group_names")) {
        (Some(hosts), None) => {
            for volume in &volumes {
                for host in &hosts {
                    array.host(host)?;
                    array.check_protocols(volume, std::slice::from_ref(host))?;
                    array
                        .san()
                        .map_at(array.array(), volume, host, lun)
                        .map_err(|e| san_error(volume, e))?;
                    created.extend(
                        array.connection_items(&state, |c| c.volume == *volume && c.host == *host),
                    );
                }
            }
        }
        (None, Some(groups)) => {
            for volume in &volumes {
                for hg in &groups {
                    created.extend(array.connect_shared(&mut state, volume, hg, lun)?);
                }
            }
        }
        _ => {
            return Err(ApiError::bad(
                "host_names",
                "Exactly one of host_names and host_group_names is required.",
            ));
        }
    }
    items(created)
}

async fn connections_delete(State(array): State<FlashArray>, Query(params): Params) -> ApiResult {
    let q = Q::new(params, CONNECTION_TARGETS)?;
    let volumes = addressed_volumes(&array, &q)?
        .ok_or_else(|| ApiError::bad("volume_names", "Missing volume_names or volume_ids."))?;
    let mut state = array.state();
    match (q.list("host_names"), q.list("host_group_names")) {
        (Some(hosts), None) => {
            for volume in &volumes {
                for host in &hosts {
                    array.host(host)?;
                    let shared = host_group_of(&state, host)
                        .is_some_and(|hg| state.shared.contains(&(volume.clone(), hg)));
                    if shared {
                        return Err(ApiError::bad(
                            volume,
                            "Connection does not exist. The volume is connected to the host's host group.",
                        ));
                    }
                    array
                        .san()
                        .unmap(array.array(), volume, host)
                        .map_err(|e| san_error(volume, e))?;
                }
            }
        }
        (None, Some(groups)) => {
            for volume in &volumes {
                for hg in &groups {
                    let key = (volume.clone(), hg.clone());
                    if !state.shared.remove(&key) {
                        return Err(ApiError::bad(volume, "Connection does not exist."));
                    }
                    let members: Vec<String> = state
                        .host_groups
                        .get(hg)
                        .map(|m| m.iter().cloned().collect())
                        .unwrap_or_default();
                    for host in members {
                        let _ = array.san().unmap(array.array(), volume, &host);
                    }
                }
            }
        }
        _ => {
            return Err(ApiError::bad(
                "host_names",
                "Exactly one of host_names and host_group_names is required.",
            ));
        }
    }
    Ok(StatusCode::OK.into_response())
}

// ---- volumes ----

async fn volumes_get(State(array): State<FlashArray>, Query(params): Params) -> ApiResult {
    let q = Q::new(
        params,
        &with_page(&["destroyed", "ids", "names", "total_only"]),
    )?;
    if q.flag("destroyed")? {
        // The lab eradicates at once: nothing is ever in the destroyed bin.
        return collection(&q, Vec::new());
    }
    let volumes = if let Some(names) = q.list("names") {
        names
            .iter()
            .map(|n| array.volume(n))
            .collect::<Result<Vec<_>, _>>()?
    } else if let Some(ids) = q.list("ids") {
        ids.iter()
            .map(|id| array.volume_by_id(id))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        array.san().volumes(array.array())
    };
    let state = array.state();
    let all = volumes
        .iter()
        .map(|v| array.volume_item(&state, v))
        .collect();
    drop(state);
    collection(&q, all)
}

async fn volumes_post(
    State(array): State<FlashArray>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    let q = Q::new(
        params,
        &[
            "add_to_protection_group_names",
            "names",
            "overwrite",
            "with_default_protection",
        ],
    )?;
    let names = q.required_list("names")?;
    let overwrite = q.flag("overwrite")?;
    let body = body_json(&body)?;
    body_fields(
        &body,
        &[
            "destroyed",
            "priority_adjustment",
            "provisioned",
            "qos",
            "source",
            "subtype",
        ],
    )?;
    let source = match body.get("source") {
        Some(reference) => {
            let by_name = reference.get("name").and_then(Value::as_str);
            let by_id = reference.get("id").and_then(Value::as_str);
            Some(match (by_name, by_id) {
                (Some(name), _) => array.volume(name)?,
                (None, Some(id)) => array.volume_by_id(id)?,
                (None, None) => return Err(ApiError::bad("source", "Source needs a name or id.")),
            })
        }
        None => None,
    };
    let provisioned = body.get("provisioned").and_then(Value::as_u64);
    let mut created = Vec::new();
    for name in &names {
        let existing = array.san().volume(array.array(), name);
        let target = match (&existing, &source, provisioned) {
            (Some(_), None, _) => return Err(ApiError::bad(name, "Volume already exists.")),
            (Some(_), Some(_), _) if !overwrite => {
                return Err(ApiError::bad(
                    name,
                    "Volume already exists. Set overwrite=true to copy over it.",
                ));
            }
            (Some(target), Some(_), _) => target.clone(),
            (None, Some(source), _) => array
                .san()
                .create_volume(array.array(), name, source.size_bytes)
                .map_err(|e| san_error(name, e))?,
            (None, None, Some(size)) => array
                .san()
                .create_volume(array.array(), name, size)
                .map_err(|e| san_error(name, e))?,
            (None, None, None) => {
                return Err(ApiError::bad(
                    name,
                    "Either provisioned or source is required.",
                ));
            }
        };
        if let Some(source) = &source {
            super::overwrite_blocks(source, &target).map_err(|e| ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                context: Some(name.clone()),
                message: format!("copying {} onto {name} failed: {e}", source.name),
            })?;
            array
                .state()
                .sources
                .insert(name.clone(), source.name.clone());
        }
        created.push(target);
    }
    let state = array.state();
    items(
        created
            .iter()
            .map(|v| array.volume_item(&state, v))
            .collect(),
    )
}

// ---- volume tags ----

async fn tags_get(State(array): State<FlashArray>, Query(params): Params) -> ApiResult {
    let q = Q::new(
        params,
        &with_page(&[
            "namespaces",
            "resource_destroyed",
            "resource_ids",
            "resource_names",
        ]),
    )?;
    if q.flag("resource_destroyed")? {
        return collection(&q, Vec::new());
    }
    let namespaces = q.list("namespaces");
    let names = q.list("resource_names");
    let ids = q.list("resource_ids");
    let volumes: BTreeMap<String, Volume> = array
        .san()
        .volumes(array.array())
        .into_iter()
        .map(|v| (v.name.clone(), v))
        .collect();
    // The only tags the lab's arrays carry are the VASA provider's, on volumes backing vVols.
    let namespace = VASA_NAMESPACE;
    let all = array
        .san()
        .vvol_backings(array.array())
        .into_iter()
        .filter_map(|(volume, vvol_id)| {
            let v = volumes.get(&volume)?;
            let wanted = namespaces
                .as_ref()
                .is_none_or(|n| n.iter().any(|n| n == namespace))
                && names.as_ref().is_none_or(|n| n.contains(&volume))
                && ids.as_ref().is_none_or(|i| i.contains(&v.uuid));
            wanted.then(|| {
                json!({"namespace": namespace, "key": VVOL_ID_TAG, "value": vvol_id, "copyable": true,
                       "resource": {"id": v.uuid, "name": volume}})
            })
        })
        .collect();
    collection(&q, all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_the_forms_clients_send() {
        let item = json!({"serial": "ABC", "is_local": true, "key": "K", "value": "V x"});
        let check = |f: &str| parse_filter(f).unwrap().iter().all(|t| t.matches(&item));
        assert!(check("serial='ABC'"));
        assert!(check("serial=\"ABC\""));
        assert!(!check("serial='abc'"));
        assert!(check("is_local"));
        assert!(check("key='K' AND value='V x'"));
        assert!(check("key='K' and serial!='X'"));
        assert!(!check("key='K' and value='V'"));
        assert!(parse_filter("serial='unclosed").is_err());
        assert!(parse_filter("a='1' or b='2'").is_err());
    }

    #[test]
    fn wwns_are_listed_upper_case_without_separators() {
        assert_eq!(
            normalise_wwn("21:00:00:24:ff:2a:3c:4e").as_deref(),
            Some("21000024FF2A3C4E")
        );
        assert!(normalise_wwn("iqn.x").is_none());
        assert!(same_port("21000024ff2a3c4e", "21:00:00:24:FF:2A:3C:4E"));
    }
}
