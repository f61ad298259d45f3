//! Copies on the array — snapshots (virtual copies), physical copies, the promote of a snapshot —
//! and the tasks that report them, with the refusals that decide which copy path a client can
//! take while a volume is exported:
//! - `POST /volumes/<parent>` `{action: "createSnapshot", parameters: {name, …}}`: virtual copy
//!   `name` (`copyOf` the parent, `copyType` 3); 201 with `Location`.
//! - `POST /volumes/<source>` `{action: "createPhysicalCopy", parameters: {destVolume, …}}`.
//!   *Offline* (no `online`, or `false`): onto an existing base volume that is not the source,
//!   **not exported** (403) and at least as large as the source (409); `destCPG`, `tpvv`, `tdvv`
//!   and `reduce` belong to online copies (400). *Online*: `destVolume` must not exist (409) — the
//!   array creates it — and needs `destCPG`, and `tpvv` or `reduce` (400). Answers `{taskid}`.
//! - `PUT /volumes/<snapshot>` `{action: 4}` (promote virtual copy): the snapshot's data is copied
//!   back onto its **parent** (a revert); refused while the parent is exported unless `online`.
//! - `DELETE /volumes/<name>`: refused while it is exported or has snapshots (409).
//! - `GET /tasks`, `GET /tasks/<id>`: `{id, type, name, status, startTime, finishTime, priority,
//!   user}`; types 1 `vv_copy`, 4 `promote_sv`, 18 `online_vv_copy`; status 1 done, 2 active. A
//!   task is named after the volume it writes.
//!
//! A lab copy is written within the request, so its task is done when first read.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{
    ApiError, ApiResult, BASE_PATH, Inner, MAX_NAME, body_json, check_name, code, created, members,
    ok,
};
use crate::san::Volume;

/// `copyType` of a snapshot.
pub const VIRTUAL_COPY: u64 = 3;
/// `copyType` of a base volume.
pub const BASE_VOLUME: u64 = 1;

/// The volume `action` of `PUT /volumes/<snapshot>` that promotes it (`PROMOTE_VIRTUAL_COPY`).
pub const PROMOTE_VIRTUAL_COPY: u64 = 4;

/// Task `status` values.
pub mod task_status {
    pub const DONE: u64 = 1;
    pub const ACTIVE: u64 = 2;
}

/// Task `type` values.
mod task_type {
    pub const VV_COPY: u64 = 1;
    pub const PROMOTE_SV: u64 = 4;
    pub const ONLINE_VV_COPY: u64 = 18;
}

/// A volume made through the WSAPI, and what it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Made {
    /// A snapshot of the parent: depends on it.
    Snapshot { parent: String },
    /// A new volume an online physical copy created from the source.
    OnlineCopy { source: String },
}

/// A task as `GET /tasks/<id>` reports it.
#[derive(Debug, Clone)]
pub(super) struct Task {
    id: u64,
    kind: u64,
    name: String,
    status: u64,
    time: String,
}

impl Task {
    fn record(&self, user: &str) -> Value {
        json!({
            "id": self.id,
            "type": self.kind,
            "name": self.name,
            "status": self.status,
            "startTime": self.time,
            "finishTime": self.time,
            "priority": 2,
            "user": user,
        })
    }
}

/// `copyOf`/`copyType` members of a volume record.
pub(super) fn copy_members(inner: &Inner, volume: &str) -> Value {
    match inner.state().made.get(volume) {
        Some(Made::Snapshot { parent }) => json!({"copyOf": parent, "copyType": VIRTUAL_COPY}),
        _ => json!({"copyType": BASE_VOLUME}),
    }
}

/// What copies left on the array: every volume made through the WSAPI.
pub(super) fn leftovers(inner: &Inner) -> Vec<String> {
    inner
        .state()
        .made
        .iter()
        .map(|(name, made)| match made {
            Made::Snapshot { parent } => format!("snapshot {name} of {parent}"),
            Made::OnlineCopy { source } => format!("physical copy {name} of {source}"),
        })
        .collect()
}

fn volume(inner: &Inner, name: &str) -> Result<Volume, ApiError> {
    inner.san.volume(&inner.array, name).ok_or_else(|| {
        ApiError::missing(
            code::NON_EXISTENT_VOL,
            format!("volume {name} does not exist"),
        )
    })
}

fn exported(inner: &Inner, name: &str) -> bool {
    inner
        .san
        .mappings(&inner.array)
        .iter()
        .any(|m| m.volume == name)
}

fn forbidden(code: u64, desc: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, desc)
}

fn copy_data(source: &Volume, target: &Volume) -> Result<(), ApiError> {
    super::super::overwrite_blocks(source, target).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL,
            format!("copying {} onto {} failed: {e}", source.name, target.name),
        )
    })
}

/// Records a finished task and answers `{taskid}`.
fn task_done(inner: &Inner, kind: u64, name: &str, status: StatusCode) -> ApiResult {
    let mut state = inner.state();
    state.counter += 1;
    let id = state.counter;
    let time = task_time();
    state.tasks.push(Task {
        id,
        kind,
        name: name.to_owned(),
        status: task_status::DONE,
        time,
    });
    Ok((status, axum::Json(json!({"taskid": id}))).into_response())
}

/// The WSAPI's task time format (`YYYY-MM-DD hh:mm:ss`, the array's zone; UTC here).
fn task_time() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `POST /volumes/<name>`: `createSnapshot` or `createPhysicalCopy`.
pub(super) async fn volume_action(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = body_json(&body, &["action", "parameters"])?;
    let parameters = body.get("parameters").cloned().unwrap_or(json!({}));
    match body.get("action").and_then(Value::as_str) {
        Some("createSnapshot") => create_snapshot(&inner, &name, &parameters),
        Some("createPhysicalCopy") => create_physical_copy(&inner, &name, &parameters),
        other => Err(ApiError::bad(format!(
            "invalid input: volume action {other:?} is not one the lab serves \
             (createSnapshot, createPhysicalCopy)"
        ))),
    }
}

fn parameters_of<'a>(
    parameters: &'a Value,
    allowed: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, ApiError> {
    let object = parameters
        .as_object()
        .ok_or_else(|| ApiError::bad("invalid input: parameters must be an object"))?;
    if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad(format!(
            "invalid input: unknown parameter {unknown:?}"
        )));
    }
    Ok(object)
}

fn create_snapshot(inner: &Inner, parent: &str, parameters: &Value) -> ApiResult {
    let parameters = parameters_of(
        parameters,
        &[
            "name",
            "id",
            "comment",
            "readOnly",
            "expirationHours",
            "retentionHours",
        ],
    )?;
    let name = parameters
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("invalid input: parameters.name is required"))?;
    check_name(name, MAX_NAME, "snapshot")?;
    let parent_volume = volume(inner, parent)?;
    let snapshot = inner
        .san
        .create_volume(&inner.array, name, parent_volume.size_bytes)?;
    copy_data(&parent_volume, &snapshot)?;
    inner.state().made.insert(
        name.to_owned(),
        Made::Snapshot {
            parent: parent.to_owned(),
        },
    );
    created(format!("{BASE_PATH}/volumes/{name}"))
}

fn create_physical_copy(inner: &Inner, source: &str, parameters: &Value) -> ApiResult {
    let parameters = parameters_of(
        parameters,
        &[
            "destVolume",
            "destCPG",
            "online",
            "tpvv",
            "tdvv",
            "reduce",
            "snapCPG",
            "saveSnapshot",
            "priority",
        ],
    )?;
    let dest = parameters
        .get("destVolume")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("invalid input: parameters.destVolume is required"))?;
    let source_volume = volume(inner, source)?;
    if parameters.get("saveSnapshot").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::bad(
            "invalid input: saveSnapshot (a resync snapshot of the source kept after the copy) \
             is not modelled by the lab",
        ));
    }
    if parameters.get("online").and_then(Value::as_bool) == Some(true) {
        return online_copy(inner, &source_volume, dest, parameters);
    }
    if let Some(online_only) = ["destCPG", "tpvv", "tdvv", "reduce", "snapCPG"]
        .iter()
        .find(|k| parameters.contains_key(**k))
    {
        return Err(ApiError::bad(format!(
            "invalid input: {online_only} applies to an online copy only"
        )));
    }
    let dest_volume = volume(inner, dest)?;
    if dest == source {
        return Err(forbidden(
            code::COPY_TO_SELF,
            "the destination volume is the same as the parent",
        ));
    }
    if matches!(inner.state().made.get(dest), Some(Made::Snapshot { .. })) {
        return Err(forbidden(
            code::NON_BASE_VOLUME,
            format!("the destination volume {dest} is not a base volume"),
        ));
    }
    if exported(inner, dest) {
        return Err(forbidden(
            code::VV_EXPORTED,
            format!("the volume {dest} is exported"),
        ));
    }
    if source_volume.size_bytes > dest_volume.size_bytes {
        return Err(ApiError::conflict(
            code::COPY_PARENT_TOO_BIG,
            format!(
                "the size of the parent volume {source} is larger than the size of the destination volume {dest}"
            ),
        ));
    }
    copy_data(&source_volume, &dest_volume)?;
    task_done(inner, task_type::VV_COPY, dest, StatusCode::CREATED)
}

fn online_copy(
    inner: &Inner,
    source: &Volume,
    dest: &str,
    parameters: &serde_json::Map<String, Value>,
) -> ApiResult {
    if !parameters.contains_key("destCPG") {
        return Err(ApiError::bad(
            "invalid input: destCPG is required for an online copy",
        ));
    }
    if !["tpvv", "reduce"]
        .iter()
        .any(|k| parameters.get(*k).and_then(Value::as_bool) == Some(true))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            code::ONE_REQUIRED,
            "invalid input: one of the parameters is required",
        ));
    }
    check_name(dest, MAX_NAME, "volume")?;
    if inner.san.volume(&inner.array, dest).is_some() {
        return Err(ApiError::conflict(
            code::EXISTENT_VOL,
            format!("the volume {dest} already exists: an online copy creates its destination"),
        ));
    }
    let copy = inner
        .san
        .create_volume(&inner.array, dest, source.size_bytes)?;
    copy_data(source, &copy)?;
    inner.state().made.insert(
        dest.to_owned(),
        Made::OnlineCopy {
            source: source.name.clone(),
        },
    );
    task_done(inner, task_type::ONLINE_VV_COPY, dest, StatusCode::CREATED)
}

/// `PUT /volumes/<name>`: the promote of a snapshot onto its parent.
pub(super) async fn volume_modify(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = body_json(
        &body,
        &[
            "action",
            "online",
            "allowRemoteCopyParent",
            "priority",
            "newName",
            "comment",
            "snapCPG",
        ],
    )?;
    if body.get("action").and_then(Value::as_u64) != Some(PROMOTE_VIRTUAL_COPY) {
        return Err(ApiError::bad(
            "invalid input: the lab serves only action 4 (promote virtual copy) on PUT /volumes/<name>",
        ));
    }
    let snapshot = volume(&inner, &name)?;
    let Some(Made::Snapshot { parent }) = inner.state().made.get(&name).cloned() else {
        return Err(ApiError::conflict(
            code::BASE_VOLUME_PROMOTE,
            format!("the volume {name} is a base volume"),
        ));
    };
    let online = body.get("online").and_then(Value::as_bool) == Some(true);
    if exported(&inner, &parent) && !online {
        return Err(forbidden(
            code::PARENT_VV_EXPORTED,
            format!("parent volume {parent} is exported"),
        ));
    }
    // Promote reverts the parent: the snapshot's data goes back onto the volume it was taken of.
    let parent_volume = volume(&inner, &parent)?;
    copy_data(&snapshot, &parent_volume)?;
    task_done(&inner, task_type::PROMOTE_SV, &parent, StatusCode::OK)
}

/// `DELETE /volumes/<name>`.
pub(super) async fn volume_delete(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
) -> ApiResult {
    volume(&inner, &name)?;
    if exported(&inner, &name) {
        return Err(ApiError::conflict(
            code::IN_USE,
            format!("the volume {name} is in use by a VLUN"),
        ));
    }
    let has_child = inner
        .state()
        .made
        .values()
        .any(|m| matches!(m, Made::Snapshot { parent } if *parent == name));
    if has_child {
        return Err(ApiError::conflict(
            code::HAS_CHILD,
            format!("the volume {name} has a child volume"),
        ));
    }
    inner.san.delete_volume(&inner.array, &name)?;
    inner.state().made.remove(&name);
    ok(json!({}))
}

/// `GET /tasks`.
pub(super) async fn tasks_get(State(inner): State<Arc<Inner>>) -> ApiResult {
    let all = inner
        .state()
        .tasks
        .iter()
        .map(|t| t.record(&inner.username))
        .collect();
    members(all)
}

/// `GET /tasks/<id>`.
pub(super) async fn task_get(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> ApiResult {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad(format!("invalid input: task id {id:?} is not an integer")))?;
    let record = inner
        .state()
        .tasks
        .iter()
        .find(|t| t.id == id)
        .map(|t| t.record(&inner.username));
    match record {
        Some(record) => ok(record),
        None => Err(ApiError::missing(
            code::NON_EXISTENT_TASK,
            format!("task {id} does not exist"),
        )),
    }
}

/// The snapshots of `parent`.
pub(super) fn snapshots_of(inner: &Inner, parent: &str) -> Vec<String> {
    inner
        .state()
        .made
        .iter()
        .filter(|(_, m)| matches!(m, Made::Snapshot { parent: p } if p == parent))
        .map(|(name, _)| name.clone())
        .collect()
}
