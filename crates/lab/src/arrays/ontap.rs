//! NetApp ONTAP REST facade (`/api/...`, HTTP Basic) over the lab SAN: one cluster with one SVM whose
//! LUNs, igroups, igroup initiators and LUN maps are the SAN model's volumes, groups and mappings.
//!
//! Shapes follow ONTAP's REST models (`Lun`, `Igroup`, `IgroupInitiator`, `LunMap`, `Svm`, `Cluster`):
//! collections answer `{"records": […], "num_records": N}`, accept field filters with wildcards and
//! `fields=` projection; POSTs answer 201 and, with `return_records=true`, the created records;
//! errors answer `{"error": {"message", "code", "target"}}`. Only the HTTP status of an error is a
//! contract (duplicates 409, missing objects 404, bad input 400, credentials 401); `code` values are
//! the lab's own except `4` (entry doesn't exist) and `262179` (unexpected argument).
//! As on ONTAP, a LUN is created with a `/vol/<volume>/[<qtree>/]<lun>` name and a required `os_type`.
//!
//! Every route served is listed in [`OPERATIONS`], which a contract test checks against ONTAP's
//! published operation list.

mod query;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};

use super::BasicCredentials;
use crate::san::{GroupSpec, InitiatorGroup, LunMapping, San, SanError, Volume, stable_uuid};
use query::{CollectionQuery, collection};

/// ONTAP release the facade reports in `GET /api/cluster`.
pub const VERSION: (u32, u32, u32) = (9, 15, 1);

/// Every (method, path template) the facade serves, spelled as in ONTAP's API reference.
pub const OPERATIONS: &[(&str, &str)] = &[
    ("GET", "/api/cluster"),
    ("GET", "/api/svm/svms"),
    ("GET", "/api/svm/svms/{uuid}"),
    ("GET", "/api/storage/luns"),
    ("POST", "/api/storage/luns"),
    ("GET", "/api/storage/luns/{uuid}"),
    ("DELETE", "/api/storage/luns/{uuid}"),
    ("GET", "/api/protocols/san/igroups"),
    ("POST", "/api/protocols/san/igroups"),
    ("GET", "/api/protocols/san/igroups/{uuid}"),
    ("DELETE", "/api/protocols/san/igroups/{uuid}"),
    ("GET", "/api/protocols/san/igroups/{igroup.uuid}/initiators"),
    (
        "POST",
        "/api/protocols/san/igroups/{igroup.uuid}/initiators",
    ),
    (
        "GET",
        "/api/protocols/san/igroups/{igroup.uuid}/initiators/{name}",
    ),
    (
        "DELETE",
        "/api/protocols/san/igroups/{igroup.uuid}/initiators/{name}",
    ),
    ("GET", "/api/protocols/san/lun-maps"),
    ("POST", "/api/protocols/san/lun-maps"),
    (
        "GET",
        "/api/protocols/san/lun-maps/{lun.uuid}/{igroup.uuid}",
    ),
    (
        "DELETE",
        "/api/protocols/san/lun-maps/{lun.uuid}/{igroup.uuid}",
    ),
];

/// The LUN path Trident's `ontap-san` driver gives a PV whose `internalName` is `flexvol`.
pub fn trident_lun_path(flexvol: &str) -> String {
    format!("/vol/{flexvol}/lun0")
}

/// Creates the LUN backing a Trident `ontap-san` PV (`volumeAttributes.internalName = flexvol`).
pub fn create_trident_volume(
    san: &San,
    array: &str,
    flexvol: &str,
    size_bytes: u64,
) -> Result<Volume, SanError> {
    san.create_volume(array, &trident_lun_path(flexvol), size_bytes)
}

/// ONTAP in the lab rig: Trident's `ontap-san` driver names a PV's LUN after the FlexVol it
/// creates for it (`volumeHandle` `pvc-<name>`, `volumeAttributes.internalName` = the FlexVol), and
/// `populate` is told the SVM.
pub struct OntapFacade;

impl crate::rig::ArrayFacade for OntapFacade {
    fn product(&self) -> &'static str {
        "ontap"
    }

    fn create_csi_volume(
        &self,
        san: &San,
        array: &crate::lab::ArrayEndpoint,
        flexvol: &str,
        size_bytes: u64,
    ) -> Result<crate::rig::TargetVolume, SanError> {
        let volume = create_trident_volume(san, &array.name, flexvol, size_bytes)?;
        Ok(crate::rig::TargetVolume {
            pvc: flexvol.to_owned(),
            array: array.name.clone(),
            name: volume.name,
            volume_handle: format!("pvc-{flexvol}"),
            attributes: vec![("internalName".into(), flexvol.to_owned())],
            naa: volume.naa,
            backing_path: volume.backing_path,
            size_bytes,
        })
    }

    fn vendor_flags(
        &self,
        array: &crate::lab::ArrayEndpoint,
    ) -> Vec<(co_api::contract::flags::Flag, String)> {
        vec![(co_api::contract::flags::ONTAP_SVM, array.svm.clone())]
    }

    /// ONTAP takes HTTP Basic credentials on every request: a 401 means they are refused.
    fn has_sessions(&self) -> bool {
        false
    }
}

/// The ONTAP REST API of `array` in `san`, serving one SVM named `svm`, guarded by HTTP Basic.
pub fn router(san: San, array: &str, svm: &str, username: &str, password: &str) -> Router {
    let ontap = Arc::new(Ontap {
        san,
        array: array.to_owned(),
        svm_name: svm.to_owned(),
        svm_uuid: stable_uuid(&[array, "svm", svm]),
        cluster_uuid: stable_uuid(&[array, "cluster"]),
        credentials: BasicCredentials::new(username, password),
        lun_os_types: std::sync::Mutex::new(std::collections::HashMap::new()),
    });
    let mut router = Router::new();
    let mut paths: Vec<&str> = OPERATIONS.iter().map(|(_, path)| *path).collect();
    paths.sort_unstable();
    paths.dedup();
    for path in paths {
        router = router.route(&axum_path(path), routes_for(path));
    }
    router
        .layer(middleware::from_fn_with_state(ontap.clone(), authenticate))
        .with_state(ontap)
}

/// ONTAP templates name parameters with dots (`{igroup.uuid}`); axum wants identifiers.
fn axum_path(template: &str) -> String {
    template
        .replace("{igroup.uuid}", "{igroup_uuid}")
        .replace("{lun.uuid}", "{lun_uuid}")
}

fn routes_for(path: &str) -> MethodRouter<Arc<Ontap>> {
    match path {
        "/api/cluster" => get(cluster),
        "/api/svm/svms" => get(svm_collection),
        "/api/svm/svms/{uuid}" => get(svm_get),
        "/api/storage/luns" => get(lun_collection).post(lun_create),
        "/api/storage/luns/{uuid}" => get(lun_get).delete(lun_delete),
        "/api/protocols/san/igroups" => get(igroup_collection).post(igroup_create),
        "/api/protocols/san/igroups/{uuid}" => get(igroup_get).delete(igroup_delete),
        "/api/protocols/san/igroups/{igroup.uuid}/initiators" => {
            get(initiator_collection).post(initiator_create)
        }
        "/api/protocols/san/igroups/{igroup.uuid}/initiators/{name}" => {
            get(initiator_get).delete(initiator_delete)
        }
        "/api/protocols/san/lun-maps" => get(lun_map_collection).post(lun_map_create),
        "/api/protocols/san/lun-maps/{lun.uuid}/{igroup.uuid}" => {
            get(lun_map_get).delete(lun_map_delete)
        }
        other => unreachable!("OPERATIONS lists {other} without a handler"),
    }
}

struct Ontap {
    san: San,
    array: String,
    svm_name: String,
    svm_uuid: String,
    cluster_uuid: String,
    credentials: BasicCredentials,
    /// `os_type` of the LUNs created through the API, by LUN uuid; LUNs the lab made itself (datastore
    /// and RDM volumes, Trident-style PVC LUNs) are `vmware`.
    lun_os_types: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// The `os_type` values ONTAP accepts for a LUN.
const LUN_OS_TYPES: &[&str] = &[
    "aix",
    "hpux",
    "hyper_v",
    "linux",
    "netware",
    "openvms",
    "solaris",
    "solaris_efi",
    "vmware",
    "windows",
    "windows_2008",
    "windows_gpt",
    "xen",
];

type Params = Query<Vec<(String, String)>>;

/// An ONTAP error response.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    target: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            target: None,
        }
    }

    fn not_found(what: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            format!("{what} does not exist."),
        )
    }

    fn missing(field: &'static str) -> Self {
        ApiError {
            target: Some(field),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                code::MISSING_FIELD,
                format!("Missing value for the required field \"{field}\"."),
            )
        }
    }
}

/// Error codes in the `code` member of error bodies.
mod code {
    pub const NOT_FOUND: &str = "4";
    pub const UNEXPECTED_ARGUMENT: &str = "262179";
    pub const NOT_AUTHORIZED: &str = "6";
    pub const BAD_REQUEST: &str = "262186";
    pub const MISSING_FIELD: &str = "262197";
    pub const DUPLICATE: &str = "5374922";
    pub const IN_USE: &str = "5374875";
    pub const INTERNAL: &str = "13";
}

impl From<SanError> for ApiError {
    fn from(error: SanError) -> Self {
        let (status, code, target) = match &error {
            SanError::InvalidName { .. } => {
                (StatusCode::BAD_REQUEST, code::BAD_REQUEST, Some("name"))
            }
            SanError::InvalidSize { .. } => (
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                Some("space.size"),
            ),
            SanError::InvalidInitiator { .. } => {
                (StatusCode::BAD_REQUEST, code::BAD_REQUEST, Some("name"))
            }
            SanError::LunIdOutOfRange { .. } | SanError::LunIdsExhausted { .. } => (
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                Some("logical_unit_number"),
            ),
            SanError::VolumeExists { .. }
            | SanError::GroupExists { .. }
            | SanError::InitiatorExists { .. }
            | SanError::AlreadyMapped { .. }
            | SanError::LunIdInUse { .. }
            | SanError::ArrayExists { .. } => (StatusCode::CONFLICT, code::DUPLICATE, None),
            SanError::VolumeMapped { .. } | SanError::GroupInUse { .. } => {
                (StatusCode::CONFLICT, code::IN_USE, None)
            }
            SanError::UnknownVolume { .. }
            | SanError::UnknownGroup { .. }
            | SanError::UnknownInitiator { .. }
            | SanError::NotMapped { .. } => (StatusCode::NOT_FOUND, code::NOT_FOUND, None),
            SanError::UnknownArray { .. } | SanError::Backing { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL, None)
            }
        };
        ApiError {
            status,
            code,
            message: error.to_string(),
            target,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "message": self.message, "code": self.code });
        if let Some(target) = self.target {
            error["target"] = json!(target);
        }
        (self.status, axum::Json(json!({ "error": error }))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

async fn authenticate(State(ontap): State<Arc<Ontap>>, request: Request, next: Next) -> Response {
    if ontap.credentials.admits(request.headers()) {
        return next.run(request).await;
    }
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        code::NOT_AUTHORIZED,
        "not authorized for that command",
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"lab-ontap\""),
    );
    response
}

fn ok(body: Value) -> ApiResult {
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// A 201 for a POST that created `records`: ONTAP names the created object in `Location` (NetApp's
/// own client reads the new object's keys from it), and answers the records themselves only when
/// asked with `return_records=true`.
fn created(query: &CollectionQuery, location: &str, records: Vec<Value>) -> ApiResult {
    let body = if query.return_records {
        collection(records)
    } else {
        json!({})
    };
    let location = HeaderValue::from_str(location).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL,
            format!("cannot name the created object {location:?}"),
        )
    })?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(body),
    )
        .into_response())
}

fn parse_query(params: &[(String, String)], fields: &[&str]) -> Result<CollectionQuery, ApiError> {
    CollectionQuery::parse(params, fields).map_err(|field| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            code::UNEXPECTED_ARGUMENT,
            format!("Unexpected argument \"{field}\"."),
        )
    })
}

fn list(query: &CollectionQuery, records: Vec<Value>, identity: &[&str]) -> ApiResult {
    let records = records
        .into_iter()
        .filter(|r| query.matches(r))
        .map(|r| query.project(r, identity))
        .collect();
    ok(collection(records))
}

fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            code::BAD_REQUEST,
            format!("The request body is not valid JSON: {e}."),
        )
    })
}

fn string_at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

// ----- cluster and SVM -----

const SVM_FIELDS: &[&str] = &["name", "uuid", "state", "subtype"];

async fn cluster(State(ontap): State<Arc<Ontap>>, Query(params): Params) -> ApiResult {
    // No filters apply to the singleton; parsing still rejects unknown arguments.
    parse_query(&params, &[])?;
    let (generation, major, minor) = VERSION;
    let record = json!({
        "name": ontap.array,
        "uuid": ontap.cluster_uuid,
        "version": {
            "full": format!("NetApp Release {generation}.{major}.{minor}: lab simulator"),
            "generation": generation, "major": major, "minor": minor,
        },
    });
    ok(record)
}

impl Ontap {
    fn lun_os_types(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        // Every update is one map operation; a panic cannot leave it torn.
        self.lun_os_types
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lun_os_type(&self, uuid: &str) -> String {
        self.lun_os_types()
            .get(uuid)
            .cloned()
            .unwrap_or_else(|| "vmware".to_owned())
    }

    fn svm_record(&self) -> Value {
        json!({ "uuid": self.svm_uuid, "name": self.svm_name, "state": "running", "subtype": "default" })
    }

    fn svm_ref(&self) -> Value {
        json!({ "uuid": self.svm_uuid, "name": self.svm_name })
    }

    /// Checks that a body's `svm` (by uuid or name), when given, is this SVM.
    fn check_svm(&self, body: &Value, required: bool) -> Result<(), ApiError> {
        let Some(svm) = body.get("svm") else {
            return if required {
                Err(ApiError::missing("svm"))
            } else {
                Ok(())
            };
        };
        let uuid_ok = string_at(svm, &["uuid"]).is_none_or(|u| u == self.svm_uuid);
        let name_ok = string_at(svm, &["name"]).is_none_or(|n| n == self.svm_name);
        if uuid_ok && name_ok {
            Ok(())
        } else {
            Err(ApiError {
                target: Some("svm"),
                ..ApiError::not_found("SVM")
            })
        }
    }

    fn lun_record(&self, volume: &Volume, mappings: &[LunMapping]) -> Value {
        let maps: Vec<Value> = mappings
            .iter()
            .filter(|m| m.volume == volume.name)
            .map(|m| {
                json!({
                    "igroup": { "name": m.group, "uuid": self.group_uuid(&m.group) },
                    "logical_unit_number": m.lun_id,
                })
            })
            .collect();
        // `/vol/<flexvol>/[<qtree>/]<lun>`
        let flexvol = volume.name.split('/').nth(2).unwrap_or_default();
        let logical_unit = volume.name.rsplit('/').next().unwrap_or_default();
        let used = allocated_bytes(&volume.backing_path);
        json!({
            "uuid": volume.uuid,
            "name": volume.name,
            "svm": self.svm_ref(),
            "class": "regular",
            "enabled": true,
            "os_type": self.lun_os_type(&volume.uuid),
            "serial_number": volume.serial,
            "serial_number_hex": volume.serial.bytes().map(|b| format!("{b:02x}")).collect::<String>(),
            "location": {
                "logical_unit": logical_unit,
                "volume": { "name": flexvol, "uuid": stable_uuid(&[&self.array, "flexvol", flexvol]) },
            },
            "space": { "size": volume.size_bytes, "used": used, "guarantee": { "requested": false, "reserved": false } },
            "status": { "state": "online", "container_state": "online", "mapped": !maps.is_empty(), "read_only": false },
            "lun_maps": maps,
        })
    }

    fn group_uuid(&self, group: &str) -> String {
        self.san
            .group(&self.array, group)
            .map(|g| g.uuid)
            .unwrap_or_default()
    }

    fn igroup_record(&self, group: &InitiatorGroup, mappings: &[LunMapping]) -> Value {
        let maps: Vec<Value> = mappings
            .iter()
            .filter(|m| m.group == group.name)
            .map(|m| {
                let uuid = self
                    .san
                    .volume(&self.array, &m.volume)
                    .map(|v| v.uuid)
                    .unwrap_or_default();
                json!({ "lun": { "name": m.volume, "uuid": uuid }, "logical_unit_number": m.lun_id })
            })
            .collect();
        let mut record = json!({
            "uuid": group.uuid,
            "name": group.name,
            "svm": self.svm_ref(),
            "protocol": group.protocol.as_deref().unwrap_or("mixed"),
            "os_type": group.os_type.as_deref().unwrap_or("vmware"),
            "initiators": group.initiators.iter().map(|i| json!({ "name": i })).collect::<Vec<_>>(),
            "lun_maps": maps,
        });
        // ONTAP leaves the field out of a record whose igroup was created without a comment.
        if let (Some(comment), Some(fields)) = (&group.comment, record.as_object_mut()) {
            fields.insert("comment".to_owned(), json!(comment));
        }
        record
    }

    fn lun_map_record(&self, mapping: &LunMapping) -> Value {
        let group = self.san.group(&self.array, &mapping.group);
        let volume = self.san.volume(&self.array, &mapping.volume);
        json!({
            "svm": self.svm_ref(),
            "lun": { "name": mapping.volume, "uuid": volume.map(|v| v.uuid).unwrap_or_default() },
            "igroup": {
                "name": mapping.group,
                "uuid": group.as_ref().map(|g| g.uuid.clone()).unwrap_or_default(),
                "protocol": group.as_ref().and_then(|g| g.protocol.clone()).unwrap_or_else(|| "mixed".into()),
                "os_type": group.as_ref().and_then(|g| g.os_type.clone()).unwrap_or_else(|| "vmware".into()),
                "initiators": group.map(|g| g.initiators).unwrap_or_default(),
            },
            "logical_unit_number": mapping.lun_id,
        })
    }

    fn volume_by_uuid(&self, uuid: &str) -> Result<Volume, ApiError> {
        self.san
            .volumes(&self.array)
            .into_iter()
            .find(|v| v.uuid == uuid)
            .ok_or_else(|| ApiError::not_found("LUN"))
    }

    fn group_by_uuid(&self, uuid: &str) -> Result<InitiatorGroup, ApiError> {
        self.san
            .groups(&self.array)
            .into_iter()
            .find(|g| g.uuid == uuid)
            .ok_or_else(|| ApiError::not_found("Initiator group"))
    }

    /// A `{uuid}` or `{name}` reference to a LUN in a request body.
    fn lun_ref(&self, body: &Value) -> Result<Volume, ApiError> {
        let lun = body.get("lun").ok_or_else(|| ApiError::missing("lun"))?;
        if let Some(uuid) = string_at(lun, &["uuid"]) {
            return self.volume_by_uuid(uuid);
        }
        let name = string_at(lun, &["name"]).ok_or_else(|| ApiError::missing("lun.name"))?;
        self.san
            .volume(&self.array, name)
            .ok_or_else(|| ApiError::not_found("LUN"))
    }

    fn igroup_ref(&self, body: &Value) -> Result<InitiatorGroup, ApiError> {
        let group = body
            .get("igroup")
            .ok_or_else(|| ApiError::missing("igroup"))?;
        if let Some(uuid) = string_at(group, &["uuid"]) {
            return self.group_by_uuid(uuid);
        }
        let name = string_at(group, &["name"]).ok_or_else(|| ApiError::missing("igroup.name"))?;
        self.san
            .group(&self.array, name)
            .ok_or_else(|| ApiError::not_found("Initiator group"))
    }
}

/// Bytes the backing file really occupies (ONTAP's `space.used` of a thin LUN).
fn allocated_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|m| m.blocks() * 512)
        .unwrap_or(0)
}

async fn svm_collection(State(ontap): State<Arc<Ontap>>, Query(params): Params) -> ApiResult {
    let query = parse_query(&params, SVM_FIELDS)?;
    list(&query, vec![ontap.svm_record()], &["uuid", "name"])
}

async fn svm_get(State(ontap): State<Arc<Ontap>>, Path(uuid): Path<String>) -> ApiResult {
    if uuid != ontap.svm_uuid {
        return Err(ApiError::not_found("SVM"));
    }
    ok(ontap.svm_record())
}

// ----- LUNs -----

const LUN_FIELDS: &[&str] = &[
    "uuid",
    "name",
    "svm",
    "class",
    "enabled",
    "os_type",
    "serial_number",
    "serial_number_hex",
    "location",
    "space",
    "status",
    "lun_maps",
];

async fn lun_collection(State(ontap): State<Arc<Ontap>>, Query(params): Params) -> ApiResult {
    let query = parse_query(&params, LUN_FIELDS)?;
    let mappings = ontap.san.mappings(&ontap.array);
    let records = ontap
        .san
        .volumes(&ontap.array)
        .iter()
        .map(|v| ontap.lun_record(v, &mappings))
        .collect();
    list(&query, records, &["uuid", "name"])
}

async fn lun_get(State(ontap): State<Arc<Ontap>>, Path(uuid): Path<String>) -> ApiResult {
    let volume = ontap.volume_by_uuid(&uuid)?;
    ok(ontap.lun_record(&volume, &ontap.san.mappings(&ontap.array)))
}

async fn lun_create(
    State(ontap): State<Arc<Ontap>>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    let query = parse_query(&params, &[])?;
    let body = body_json(&body)?;
    ontap.check_svm(&body, true)?;
    let name = string_at(&body, &["name"]).ok_or_else(|| ApiError::missing("name"))?;
    if !is_lun_path(name) {
        return Err(ApiError {
            target: Some("name"),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                format!(
                    "Invalid LUN name \"{name}\": use /vol/<volume>/<lun> or /vol/<volume>/<qtree>/<lun>."
                ),
            )
        });
    }
    // ONTAP requires the host OS of a new LUN: it decides the LUN's geometry and alignment.
    let os_type = string_at(&body, &["os_type"]).ok_or_else(|| ApiError::missing("os_type"))?;
    if !LUN_OS_TYPES.contains(&os_type) {
        return Err(ApiError {
            target: Some("os_type"),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                format!(
                    "\"{os_type}\" is an invalid value for field \"os_type\" (<{}>)",
                    LUN_OS_TYPES.join("|")
                ),
            )
        });
    }
    let size = body
        .get("space")
        .and_then(|s| s.get("size"))
        .and_then(Value::as_u64)
        .ok_or_else(|| ApiError::missing("space.size"))?;
    let volume = ontap.san.create_volume(&ontap.array, name, size)?;
    ontap
        .lun_os_types()
        .insert(volume.uuid.clone(), os_type.to_owned());
    let record = ontap.lun_record(&volume, &[]);
    created(
        &query,
        &format!("/api/storage/luns/{}", volume.uuid),
        vec![record],
    )
}

fn is_lun_path(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    matches!(parts.len(), 4 | 5)
        && parts[0].is_empty()
        && parts[1] == "vol"
        && parts[2..].iter().all(|p| !p.is_empty())
}

async fn lun_delete(State(ontap): State<Arc<Ontap>>, Path(uuid): Path<String>) -> ApiResult {
    let volume = ontap.volume_by_uuid(&uuid)?;
    ontap.san.delete_volume(&ontap.array, &volume.name)?;
    ontap.lun_os_types().remove(&uuid);
    ok(json!({}))
}

// ----- igroups -----

const IGROUP_FIELDS: &[&str] = &[
    "uuid",
    "name",
    "svm",
    "protocol",
    "os_type",
    "comment",
    "initiators",
    "lun_maps",
];

async fn igroup_collection(State(ontap): State<Arc<Ontap>>, Query(params): Params) -> ApiResult {
    let query = parse_query(&params, IGROUP_FIELDS)?;
    let mappings = ontap.san.mappings(&ontap.array);
    let records = ontap
        .san
        .groups(&ontap.array)
        .iter()
        .map(|g| ontap.igroup_record(g, &mappings))
        .collect();
    list(&query, records, &["uuid", "name"])
}

async fn igroup_get(State(ontap): State<Arc<Ontap>>, Path(uuid): Path<String>) -> ApiResult {
    let group = ontap.group_by_uuid(&uuid)?;
    ok(ontap.igroup_record(&group, &ontap.san.mappings(&ontap.array)))
}

async fn igroup_create(
    State(ontap): State<Arc<Ontap>>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    let query = parse_query(&params, &[])?;
    let body = body_json(&body)?;
    ontap.check_svm(&body, true)?;
    let name = string_at(&body, &["name"]).ok_or_else(|| ApiError::missing("name"))?;
    let os_type = string_at(&body, &["os_type"]).ok_or_else(|| ApiError::missing("os_type"))?;
    let protocol = string_at(&body, &["protocol"]).unwrap_or("mixed");
    if !matches!(protocol, "fcp" | "iscsi" | "mixed" | "nvme") {
        return Err(ApiError {
            target: Some("protocol"),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                format!("Invalid protocol \"{protocol}\": use fcp, iscsi or mixed."),
            )
        });
    }
    let comment = string_at(&body, &["comment"]);
    if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
        return Err(ApiError {
            target: Some("comment"),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                format!("The comment is longer than {MAX_COMMENT_CHARS} characters."),
            )
        });
    }
    let initiators = initiator_names(&body);
    let group = ontap.san.create_group_with_comment(
        &ontap.array,
        GroupSpec {
            name: name.to_owned(),
            initiators,
            protocol: Some(protocol.to_owned()),
            os_type: Some(os_type.to_owned()),
        },
        comment.map(str::to_owned),
    )?;
    let record = ontap.igroup_record(&group, &[]);
    created(
        &query,
        &format!("/api/protocols/san/igroups/{}", group.uuid),
        vec![record],
    )
}

/// ONTAP's limit on an igroup comment.
const MAX_COMMENT_CHARS: usize = 254;

/// `initiators: [{name}]` or `records: [{name}]` or a single `name`.
fn initiator_names(body: &Value) -> Vec<String> {
    let listed = ["initiators", "records"]
        .iter()
        .filter_map(|key| body.get(*key).and_then(Value::as_array))
        .flatten()
        .filter_map(|item| string_at(item, &["name"]).map(str::to_owned));
    listed.collect()
}

async fn igroup_delete(State(ontap): State<Arc<Ontap>>, Path(uuid): Path<String>) -> ApiResult {
    let group = ontap.group_by_uuid(&uuid)?;
    ontap.san.delete_group(&ontap.array, &group.name)?;
    ok(json!({}))
}

// ----- igroup initiators -----

const INITIATOR_FIELDS: &[&str] = &["name", "igroup", "comment"];

fn initiator_record(group: &InitiatorGroup, initiator: &str) -> Value {
    json!({ "name": initiator, "igroup": { "name": group.name, "uuid": group.uuid } })
}

async fn initiator_collection(
    State(ontap): State<Arc<Ontap>>,
    Path(igroup_uuid): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let query = parse_query(&params, INITIATOR_FIELDS)?;
    let group = ontap.group_by_uuid(&igroup_uuid)?;
    let records = group
        .initiators
        .iter()
        .map(|i| initiator_record(&group, i))
        .collect();
    list(&query, records, &["name"])
}

async fn initiator_get(
    State(ontap): State<Arc<Ontap>>,
    Path((igroup_uuid, name)): Path<(String, String)>,
) -> ApiResult {
    let group = ontap.group_by_uuid(&igroup_uuid)?;
    let found = group
        .initiators
        .iter()
        .find(|i| i.eq_ignore_ascii_case(&name))
        .ok_or_else(|| ApiError::not_found("Initiator"))?;
    ok(initiator_record(&group, found))
}

async fn initiator_create(
    State(ontap): State<Arc<Ontap>>,
    Path(igroup_uuid): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    let query = parse_query(&params, &[])?;
    let body = body_json(&body)?;
    let group = ontap.group_by_uuid(&igroup_uuid)?;
    let mut names = initiator_names(&body);
    if let Some(name) = string_at(&body, &["name"]) {
        names.push(name.to_owned());
    }
    if names.is_empty() {
        return Err(ApiError::missing("name"));
    }
    for name in &names {
        ontap.san.add_initiator(&ontap.array, &group.name, name)?;
    }
    let records = names.iter().map(|n| initiator_record(&group, n)).collect();
    let location = match names.as_slice() {
        [one] => format!("/api/protocols/san/igroups/{}/initiators/{one}", group.uuid),
        _ => format!("/api/protocols/san/igroups/{}/initiators", group.uuid),
    };
    created(&query, &location, records)
}

async fn initiator_delete(
    State(ontap): State<Arc<Ontap>>,
    Path((igroup_uuid, name)): Path<(String, String)>,
) -> ApiResult {
    let group = ontap.group_by_uuid(&igroup_uuid)?;
    ontap
        .san
        .remove_initiator(&ontap.array, &group.name, &name)?;
    ok(json!({}))
}

// ----- LUN maps -----

const LUN_MAP_FIELDS: &[&str] = &["svm", "lun", "igroup", "logical_unit_number"];

async fn lun_map_collection(State(ontap): State<Arc<Ontap>>, Query(params): Params) -> ApiResult {
    let query = parse_query(&params, LUN_MAP_FIELDS)?;
    let records = ontap
        .san
        .mappings(&ontap.array)
        .iter()
        .map(|m| ontap.lun_map_record(m))
        .collect();
    list(&query, records, &["svm", "lun", "igroup"])
}

fn find_mapping(ontap: &Ontap, lun_uuid: &str, igroup_uuid: &str) -> Result<LunMapping, ApiError> {
    let volume = ontap.volume_by_uuid(lun_uuid)?;
    let group = ontap.group_by_uuid(igroup_uuid)?;
    ontap
        .san
        .mappings(&ontap.array)
        .into_iter()
        .find(|m| m.volume == volume.name && m.group == group.name)
        .ok_or_else(|| ApiError::not_found("LUN map"))
}

async fn lun_map_get(
    State(ontap): State<Arc<Ontap>>,
    Path((lun_uuid, igroup_uuid)): Path<(String, String)>,
) -> ApiResult {
    let mapping = find_mapping(&ontap, &lun_uuid, &igroup_uuid)?;
    ok(ontap.lun_map_record(&mapping))
}

async fn lun_map_create(
    State(ontap): State<Arc<Ontap>>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    let query = parse_query(&params, &[])?;
    let body = body_json(&body)?;
    ontap.check_svm(&body, false)?;
    let volume = ontap.lun_ref(&body)?;
    let group = ontap.igroup_ref(&body)?;
    let lun_id = match body.get("logical_unit_number") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ApiError {
                    target: Some("logical_unit_number"),
                    ..ApiError::new(
                        StatusCode::BAD_REQUEST,
                        code::BAD_REQUEST,
                        "logical_unit_number must be a non-negative integer.",
                    )
                })?,
        ),
    };
    let lun_id = ontap
        .san
        .map_at(&ontap.array, &volume.name, &group.name, lun_id)?;
    let location = format!("/api/protocols/san/lun-maps/{}/{}", volume.uuid, group.uuid);
    let record = ontap.lun_map_record(&LunMapping {
        array: ontap.array.clone(),
        volume: volume.name,
        group: group.name,
        lun_id,
    });
    created(&query, &location, vec![record])
}

async fn lun_map_delete(
    State(ontap): State<Arc<Ontap>>,
    Path((lun_uuid, igroup_uuid)): Path<(String, String)>,
) -> ApiResult {
    let mapping = find_mapping(&ontap, &lun_uuid, &igroup_uuid)?;
    ontap
        .san
        .unmap(&ontap.array, &mapping.volume, &mapping.group)?;
    ok(json!({}))
}

/// The HTTP methods [`OPERATIONS`] lists for `path`.
pub fn methods_for(path: &str) -> Vec<Method> {
    OPERATIONS
        .iter()
        .filter(|(_, p)| *p == path)
        .filter_map(|(m, _)| Method::from_bytes(m.as_bytes()).ok())
        .collect()
}
