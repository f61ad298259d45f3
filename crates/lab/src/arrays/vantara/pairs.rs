//! Thin Image pairs of the Vantara facade (`/objects/snapshots`, `/objects/snapshot-groups`): a
//! pair of a P-VOL and an S-VOL LDEV under a mirror unit number, in a snapshot group, and the life
//! of a clone pair that copies the P-VOL's data onto the S-VOL in the background.
//!
//! The life of a pair, as the lab keeps it (each look at a pair — `GET` of the pair, of a
//! listing that holds it, or of its group — is one step of time, so a client must poll):
//! - A plain snapshot (`isClone: false`) is `PAIR` at once (Thin Image stores differences, there
//!   is no initial copy); `split` makes it `PSUS` (point in time kept), `resync` `PAIR` again,
//!   `restore` writes the S-VOL's data back onto the P-VOL and answers `PAIR` (`PSUS` with
//!   `autoSplit`). A snapshot's data stays the pool's: its S-VOL is not written.
//! - A clone pair (`isClone: true`, or `clone` invoked on a split pair) shows `COPY` while the
//!   array takes the point in time (concordanceRate rising), then `PSUP` while the clone copy
//!   runs onto the S-VOL (concordanceRate rising again from 0). `PSUP` is not the end: the S-VOL
//!   receives the P-VOL's bytes only when the copy reaches 100 %. A pair created with
//!   `clonesAutomation` or `autoSplit`, and every pair cloned by the `clone` action, is then
//!   deleted by the array itself (its group goes with its last pair); otherwise it stays `PSUS`
//!   at 100 % until deleted.
//! - `copySpeed` (`slower`, `medium`, `faster`; `medium` when absent) sets how much a clone copy
//!   advances per look. Deleting a pair that is still copying stops the copy: the S-VOL keeps
//!   what it had.
//! - Refusals: creating, splitting or cloning in the wrong state, an S-VOL already in a pair, of
//!   another size than the P-VOL, or an undefined LDEV or pool fail the job with the array's error
//!   body; malformed bodies and unknown fields are 400, unknown pairs and groups 404.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::{
    ApiError, BASE_PATH, Inner, JobAction, JobState, failed_job, number_field, ok, submit,
};

/// The pool ids of the lab array (one Dynamic Provisioning pool, also the Thin Image pool).
pub const POOLS: &[u32] = &[0];

/// The highest mirror unit number a Thin Image pair may have.
const MAX_MU_NUMBER: u32 = 1023;

/// How a clone copy advances per look, by `copySpeed`.
fn speed_step(speed: &str) -> Option<u8> {
    match speed {
        "slower" => Some(10),
        "medium" => Some(25),
        "faster" => Some(50),
        _ => None,
    }
}

/// How much the point in time advances per look while a clone pair is `COPY`.
const SNAPSHOT_STEP: u8 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Copy,
    Pair,
    Psus,
    Psup,
    Psue,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Copy => "COPY",
            Status::Pair => "PAIR",
            Status::Psus => "PSUS",
            Status::Psup => "PSUP",
            Status::Psue => "PSUE",
        }
    }
}

/// What a pair's creation asked for, kept for the pair's life.
#[derive(Debug, Clone)]
pub(super) struct PairSettings {
    pool: u32,
    group: String,
    is_clone: bool,
    can_cascade: bool,
    is_consistency_group: bool,
    /// The array deletes the pair once its clone copy completed.
    deletes_when_copied: bool,
    speed_step: u8,
}

/// One Thin Image pair.
#[derive(Debug, Clone)]
pub(super) struct Pair {
    pvol: u32,
    mu: u32,
    svol: u32,
    settings: PairSettings,
    status: Status,
    concordance: u8,
    split_time: Option<String>,
}

/// A pair's creation, as the request asked it.
#[derive(Debug, Clone)]
pub(super) struct NewPair {
    pvol: u32,
    svol: Option<u32>,
    mu: Option<u32>,
    settings: PairSettings,
}

#[derive(Debug, Clone)]
pub(super) enum PairJob {
    Create(NewPair),
    Split(u32, u32),
    Resync(u32, u32),
    Restore {
        pvol: u32,
        mu: u32,
        auto_split: bool,
    },
    Clone {
        pvol: u32,
        mu: u32,
        speed_step: u8,
    },
    Delete(u32, u32),
    DeleteGroup(String),
}

fn pair_path(pvol: u32, mu: u32) -> String {
    format!("{BASE_PATH}/v1/objects/snapshots/{pvol},{mu}")
}

fn timestamp() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{seconds}")
}

fn failed(message_id: &str, message: String) -> JobState {
    failed_job(
        "snapshots",
        message_id,
        message,
        "Check the pair status and the volumes, then try again.",
    )
}

fn body_object(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Ok(serde_json::Map::new());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("The request body is not JSON: {e}")))?;
    match value {
        Value::Object(fields) => Ok(fields),
        Value::Null => Ok(serde_json::Map::new()),
        _ => Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        )),
    }
}

fn bool_field(fields: &serde_json::Map<String, Value>, name: &str) -> Result<bool, ApiError> {
    match fields.get(name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ApiError::bad_request(format!(
            "The value of {name} is invalid ({other}): true or false is required."
        ))),
    }
}

fn speed_field(fields: &serde_json::Map<String, Value>) -> Result<u8, ApiError> {
    match fields.get("copySpeed") {
        None => Ok(speed_step("medium").unwrap_or(25)),
        Some(Value::String(speed)) => speed_step(speed).ok_or_else(|| {
            ApiError::bad_request(format!(
                "The value of copySpeed is invalid ({speed:?}): slower, medium or faster."
            ))
        }),
        Some(other) => Err(ApiError::bad_request(format!(
            "The value of copySpeed is invalid ({other}): slower, medium or faster."
        ))),
    }
}

fn optional_number(
    fields: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<u32>, ApiError> {
    if fields.contains_key(name) {
        number_field(&Value::Object(fields.clone()), name).map(Some)
    } else {
        Ok(None)
    }
}

/// `POST /objects/snapshots`.
pub(super) async fn create(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let fields = body_object(&body)?;
    const KNOWN: &[&str] = &[
        "pvolLdevId",
        "svolLdevId",
        "snapshotPoolId",
        "snapshotGroupName",
        "muNumber",
        "isClone",
        "canCascade",
        "isConsistencyGroup",
        "autoSplit",
        "copySpeed",
        "clonesAutomation",
        "isDataReductionForceCopy",
    ];
    if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "The request body has an unknown field {unknown}."
        )));
    }
    let whole = Value::Object(fields.clone());
    let pvol = number_field(&whole, "pvolLdevId")?;
    let pool = number_field(&whole, "snapshotPoolId")?;
    let group = match fields.get("snapshotGroupName") {
        Some(Value::String(name)) if !name.is_empty() && name.len() <= 32 => name.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "snapshotGroupName must be a name of 1 to 32 characters.",
            ));
        }
    };
    let is_clone = bool_field(&fields, "isClone")?;
    let can_cascade = bool_field(&fields, "canCascade")?;
    if is_clone && !can_cascade {
        return Err(ApiError::bad_request(
            "A clone pair (isClone true) requires canCascade true.",
        ));
    }
    let svol = optional_number(&fields, "svolLdevId")?;
    if is_clone && svol.is_none() {
        return Err(ApiError::bad_request(
            "A clone pair (isClone true) requires svolLdevId.",
        ));
    }
    let mu = optional_number(&fields, "muNumber")?;
    if mu.is_some_and(|mu| mu > MAX_MU_NUMBER) {
        return Err(ApiError::bad_request(format!(
            "muNumber must be 0 to {MAX_MU_NUMBER}."
        )));
    }
    let new = NewPair {
        pvol,
        svol,
        mu,
        settings: PairSettings {
            pool,
            group,
            is_clone,
            can_cascade,
            is_consistency_group: bool_field(&fields, "isConsistencyGroup")?,
            deletes_when_copied: bool_field(&fields, "autoSplit")?
                || bool_field(&fields, "clonesAutomation")?,
            speed_step: speed_field(&fields)?,
        },
    };
    Ok(submit(
        &inner,
        &headers,
        JobAction::Pair(PairJob::Create(new)),
    ))
}

/// `<pvol>,<mu>` of a pair path.
fn pair_id(text: &str) -> Result<(u32, u32), ApiError> {
    let parsed = text
        .split_once(',')
        .and_then(|(pvol, mu)| Some((pvol.parse::<u32>().ok()?, mu.parse::<u32>().ok()?)));
    parsed.ok_or_else(|| {
        ApiError::bad_request(format!(
            "{text:?} is not a snapshot id (<pvolLdevId>,<muNumber>)"
        ))
    })
}

fn existing(inner: &Inner, pvol: u32, mu: u32) -> Result<(), ApiError> {
    if inner.model().pairs.contains_key(&(pvol, mu)) {
        Ok(())
    } else {
        Err(ApiError::not_found("snapshot"))
    }
}

/// `GET /objects/snapshots/<pvol>,<mu>`.
pub(super) async fn one(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (pvol, mu) = pair_id(&id)?;
    existing(&inner, pvol, mu)?;
    advance(&inner, &[(pvol, mu)]);
    let model = inner.model();
    let pair = model
        .pairs
        .get(&(pvol, mu))
        .ok_or_else(|| ApiError::not_found("snapshot"))?;
    Ok(ok(pair_body(pair)))
}

/// `DELETE /objects/snapshots/<pvol>,<mu>`.
pub(super) async fn delete_one(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (pvol, mu) = pair_id(&id)?;
    existing(&inner, pvol, mu)?;
    Ok(submit(
        &inner,
        &headers,
        JobAction::Pair(PairJob::Delete(pvol, mu)),
    ))
}

/// `POST /objects/snapshots/<pvol>,<mu>/actions/<action>/invoke`.
pub(super) async fn action(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (pvol, mu) = pair_id(&id)?;
    let fields = body_object(&body)?;
    let parameters = match fields.get("parameters") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(parameters)) => parameters.clone(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "parameters must be an object, not {other}"
            )));
        }
    };
    if let Some(unknown) = fields.keys().find(|k| *k != "parameters") {
        return Err(ApiError::bad_request(format!(
            "The request body has an unknown field {unknown}."
        )));
    }
    let allowed: &[&str] = match action.as_str() {
        "split" | "resync" => &[],
        "restore" => &["autoSplit"],
        "clone" => &["copySpeed"],
        _ => return Err(ApiError::not_found("the resource path")),
    };
    if let Some(unknown) = parameters.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "The parameters of {action} have an unknown field {unknown}."
        )));
    }
    existing(&inner, pvol, mu)?;
    let job = match action.as_str() {
        "split" => PairJob::Split(pvol, mu),
        "resync" => PairJob::Resync(pvol, mu),
        "restore" => PairJob::Restore {
            pvol,
            mu,
            auto_split: bool_field(&parameters, "autoSplit")?,
        },
        _ => PairJob::Clone {
            pvol,
            mu,
            speed_step: speed_field(&parameters)?,
        },
    };
    Ok(submit(&inner, &headers, JobAction::Pair(job)))
}

/// `GET /objects/snapshots?pvolLdevId=&svolLdevId=&muNumber=&snapshotGroupName=`.
pub(super) async fn list(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let mut numbers = BTreeMap::new();
    for (name, value) in &query {
        match name.as_str() {
            "pvolLdevId" | "svolLdevId" | "muNumber" => {
                let number = value.parse::<u32>().map_err(|_| {
                    ApiError::bad_request(format!("{name} {value:?} is not a number"))
                })?;
                numbers.insert(name.as_str(), number);
            }
            "snapshotGroupName" | "detailInfoType" => {}
            _ => {
                return Err(ApiError::bad_request(format!(
                    "The query parameter {name} is not supported."
                )));
            }
        }
    }
    let group = query.get("snapshotGroupName");
    if !numbers.contains_key("pvolLdevId") && !numbers.contains_key("svolLdevId") && group.is_none()
    {
        return Err(ApiError::bad_request(
            "One of the query parameters pvolLdevId, svolLdevId or snapshotGroupName is required.",
        ));
    }
    let matches = |pair: &Pair| {
        numbers.get("pvolLdevId").is_none_or(|n| *n == pair.pvol)
            && numbers.get("svolLdevId").is_none_or(|n| *n == pair.svol)
            && numbers.get("muNumber").is_none_or(|n| *n == pair.mu)
            && group.is_none_or(|g| *g == pair.settings.group)
    };
    Ok(ok(json!({"data": looked_at(&inner, matches)})))
}

/// `GET /objects/snapshot-groups`.
pub(super) async fn groups(State(inner): State<Arc<Inner>>) -> Response {
    let model = inner.model();
    let mut names: Vec<&String> = model.pairs.values().map(|p| &p.settings.group).collect();
    names.sort();
    names.dedup();
    let data: Vec<Value> = names
        .into_iter()
        .map(|name| json!({"snapshotGroupName": name, "snapshotGroupId": name}))
        .collect();
    ok(json!({"data": data}))
}

/// `GET /objects/snapshot-groups/<name>`: the group with its pairs.
pub(super) async fn group(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    Query(_query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let snapshots = looked_at(&inner, |pair| pair.settings.group == name);
    if snapshots.is_empty() {
        return Err(ApiError::not_found("snapshot group"));
    }
    Ok(ok(json!({
        "snapshotGroupName": name,
        "snapshotGroupId": name,
        "snapshots": snapshots,
    })))
}

/// `DELETE /objects/snapshot-groups/<name>`: every pair of the group.
pub(super) async fn delete_group(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if !inner
        .model()
        .pairs
        .values()
        .any(|p| p.settings.group == name)
    {
        return Err(ApiError::not_found("snapshot group"));
    }
    Ok(submit(
        &inner,
        &headers,
        JobAction::Pair(PairJob::DeleteGroup(name)),
    ))
}

/// The bodies of the pairs `matches` selects, after letting each advance by one look.
fn looked_at(inner: &Inner, matches: impl Fn(&Pair) -> bool) -> Vec<Value> {
    let ids: Vec<(u32, u32)> = inner
        .model()
        .pairs
        .values()
        .filter(|p| matches(p))
        .map(|p| (p.pvol, p.mu))
        .collect();
    advance(inner, &ids);
    let model = inner.model();
    ids.iter()
        .filter_map(|id| model.pairs.get(id))
        .map(pair_body)
        .collect()
}

fn pair_body(pair: &Pair) -> Value {
    json!({
        "snapshotGroupName": pair.settings.group,
        "snapshotId": format!("{},{}", pair.pvol, pair.mu),
        "primaryOrSecondary": "P-VOL",
        "status": pair.status.label(),
        "pvolLdevId": pair.pvol,
        "muNumber": pair.mu,
        "svolLdevId": pair.svol,
        "snapshotPoolId": pair.settings.pool,
        "concordanceRate": pair.concordance,
        "isConsistencyGroup": pair.settings.is_consistency_group,
        "isWrittenInSvol": pair.settings.is_clone && pair.concordance > 0,
        "isClone": pair.settings.is_clone,
        "canCascade": pair.settings.can_cascade,
        "isRedirectOnWrite": false,
        "pvolProcessingStatus": "N",
        "splitTime": pair.split_time,
    })
}

/// One step of time for each of `ids`: a clone pair's copy advances, and a copy reaching 100 %
/// writes the P-VOL's bytes onto the S-VOL (and deletes the pair when the array is to).
fn advance(inner: &Inner, ids: &[(u32, u32)]) {
    let mut completed = Vec::new();
    {
        let mut model = inner.model();
        for id in ids {
            let Some(pair) = model.pairs.get_mut(id) else {
                continue;
            };
            match pair.status {
                Status::Copy => {
                    pair.concordance = pair.concordance.saturating_add(SNAPSHOT_STEP).min(100);
                    if pair.concordance == 100 {
                        pair.status = Status::Psup;
                        pair.concordance = 0;
                        pair.split_time = Some(timestamp());
                    }
                }
                Status::Psup => {
                    pair.concordance = pair
                        .concordance
                        .saturating_add(pair.settings.speed_step)
                        .min(100);
                    if pair.concordance == 100 {
                        completed.push(pair.clone());
                    }
                }
                Status::Pair | Status::Psus | Status::Psue => {}
            }
        }
    }
    for pair in completed {
        let copied = match (inner.volume(pair.pvol), inner.volume(pair.svol)) {
            (Some(source), Some(target)) => super::super::overwrite_blocks(&source, &target)
                .map_err(|e| tracing::warn!(error = %e, "lab Vantara clone copy failed")),
            _ => Err(()),
        };
        let mut model = inner.model();
        if copied.is_err() {
            // The copy could not land: the pair is suspended by error.
            if let Some(p) = model.pairs.get_mut(&(pair.pvol, pair.mu)) {
                p.status = Status::Psue;
                p.concordance = 0;
            }
        } else if pair.settings.deletes_when_copied {
            model.pairs.remove(&(pair.pvol, pair.mu));
        } else if let Some(p) = model.pairs.get_mut(&(pair.pvol, pair.mu)) {
            p.status = Status::Psus;
        }
    }
}

/// Performs a pair job; answers its final state.
pub(super) fn run(inner: &Inner, job: &PairJob) -> JobState {
    match job {
        PairJob::Create(new) => create_pair(inner, new),
        PairJob::Split(pvol, mu) => transition(inner, *pvol, *mu, |pair| match pair.status {
            Status::Pair => {
                pair.status = Status::Psus;
                pair.split_time = Some(timestamp());
                Ok(())
            }
            other => Err(other),
        }),
        PairJob::Resync(pvol, mu) => transition(inner, *pvol, *mu, |pair| match pair.status {
            Status::Psus if !pair.settings.is_clone => {
                pair.status = Status::Pair;
                pair.split_time = None;
                Ok(())
            }
            other => Err(other),
        }),
        PairJob::Restore {
            pvol,
            mu,
            auto_split,
        } => restore(inner, *pvol, *mu, *auto_split),
        PairJob::Clone {
            pvol,
            mu,
            speed_step,
        } => transition(inner, *pvol, *mu, |pair| match pair.status {
            Status::Psus if !pair.settings.is_clone => {
                pair.settings.is_clone = true;
                pair.settings.can_cascade = true;
                pair.settings.deletes_when_copied = true;
                pair.settings.speed_step = *speed_step;
                pair.status = Status::Psup;
                pair.concordance = 0;
                Ok(())
            }
            other => Err(other),
        }),
        PairJob::Delete(pvol, mu) => match inner.model().pairs.remove(&(*pvol, *mu)) {
            Some(_) => JobState::Succeeded(vec![pair_path(*pvol, *mu)]),
            None => failed(
                "KART30000-E",
                format!("The snapshot {pvol},{mu} does not exist."),
            ),
        },
        PairJob::DeleteGroup(name) => {
            inner.model().pairs.retain(|_, p| p.settings.group != *name);
            JobState::Succeeded(vec![format!(
                "{BASE_PATH}/v1/objects/snapshot-groups/{name}"
            )])
        }
    }
}

fn transition(
    inner: &Inner,
    pvol: u32,
    mu: u32,
    change: impl FnOnce(&mut Pair) -> Result<(), Status>,
) -> JobState {
    let mut model = inner.model();
    let Some(pair) = model.pairs.get_mut(&(pvol, mu)) else {
        return failed(
            "KART30000-E",
            format!("The snapshot {pvol},{mu} does not exist."),
        );
    };
    match change(pair) {
        Ok(()) => JobState::Succeeded(vec![pair_path(pvol, mu)]),
        Err(status) => failed(
            "KART40050-E",
            format!(
                "The operation cannot be performed on snapshot {pvol},{mu} in status {}.",
                status.label()
            ),
        ),
    }
}

fn restore(inner: &Inner, pvol: u32, mu: u32, auto_split: bool) -> JobState {
    let svol = {
        let model = inner.model();
        match model.pairs.get(&(pvol, mu)) {
            Some(pair) if pair.status == Status::Psus && !pair.settings.is_clone => pair.svol,
            Some(pair) => {
                return failed(
                    "KART40050-E",
                    format!(
                        "The snapshot {pvol},{mu} cannot be restored in status {}.",
                        pair.status.label()
                    ),
                );
            }
            None => {
                return failed(
                    "KART30000-E",
                    format!("The snapshot {pvol},{mu} does not exist."),
                );
            }
        }
    };
    let (Some(source), Some(target)) = (inner.volume(svol), inner.volume(pvol)) else {
        return failed(
            "KART40051-E",
            format!("An LDEV of snapshot {pvol},{mu} is not defined."),
        );
    };
    if let Err(e) = super::super::overwrite_blocks(&source, &target) {
        return failed("KART40000-E", format!("The restore failed: {e}"));
    }
    transition(inner, pvol, mu, |pair| {
        pair.status = if auto_split {
            Status::Psus
        } else {
            Status::Pair
        };
        Ok(())
    })
}

fn create_pair(inner: &Inner, new: &NewPair) -> JobState {
    let Some(source) = inner.volume(new.pvol) else {
        return failed(
            "KART40051-E",
            format!("The P-VOL LDEV {} is not defined.", new.pvol),
        );
    };
    if !POOLS.contains(&new.settings.pool) {
        return failed(
            "KART40052-E",
            format!("The pool {} does not exist.", new.settings.pool),
        );
    }
    let svol = match new.svol {
        Some(svol) => svol,
        // Without an S-VOL the lab has nowhere to show the snapshot; the array would keep it in
        // the pool only, which no copy-offload path uses.
        None => {
            return failed(
                "KART40053-E",
                "The lab array requires svolLdevId for every pair.".into(),
            );
        }
    };
    if svol == new.pvol {
        return failed(
            "KART40053-E",
            "The S-VOL must be another LDEV than the P-VOL.".into(),
        );
    }
    let Some(target) = inner.volume(svol) else {
        return failed(
            "KART40051-E",
            format!("The S-VOL LDEV {svol} is not defined."),
        );
    };
    if target.size_bytes != source.size_bytes {
        return failed(
            "KART40054-E",
            format!(
                "The S-VOL LDEV {svol} ({} bytes) differs in size from the P-VOL LDEV {} ({} bytes).",
                target.size_bytes, new.pvol, source.size_bytes
            ),
        );
    }
    let mut model = inner.model();
    if model.pairs.values().any(|p| p.svol == svol) {
        return failed(
            "KART40055-E",
            format!("The S-VOL LDEV {svol} is already in a pair."),
        );
    }
    if model.pairs.values().any(|p| p.svol == new.pvol) {
        return failed(
            "KART40055-E",
            format!("The P-VOL LDEV {} is the S-VOL of a pair.", new.pvol),
        );
    }
    if let Some(other) = model
        .pairs
        .values()
        .find(|p| p.settings.group == new.settings.group && p.pvol == new.pvol)
    {
        return failed(
            "KART40056-E",
            format!(
                "The snapshot group {} already has a pair of P-VOL LDEV {} (MU {}).",
                new.settings.group, other.pvol, other.mu
            ),
        );
    }
    let taken = |mu: u32| model.pairs.contains_key(&(new.pvol, mu));
    let mu = match new.mu {
        Some(mu) if taken(mu) => {
            return failed(
                "KART40056-E",
                format!("The MU number {mu} of LDEV {} is in use.", new.pvol),
            );
        }
        Some(mu) => mu,
        None => match (0..=MAX_MU_NUMBER).find(|mu| !taken(*mu)) {
            Some(mu) => mu,
            None => {
                return failed(
                    "KART40057-E",
                    format!("LDEV {} has no free MU number.", new.pvol),
                );
            }
        },
    };
    let pair = Pair {
        pvol: new.pvol,
        mu,
        svol,
        settings: new.settings.clone(),
        status: if new.settings.is_clone {
            Status::Copy
        } else {
            Status::Pair
        },
        concordance: if new.settings.is_clone { 0 } else { 100 },
        split_time: None,
    };
    model.pairs.insert((new.pvol, mu), pair);
    JobState::Succeeded(vec![pair_path(new.pvol, mu)])
}

/// Pairs on the array now, as `(pvol, mu, svol, status)`.
pub(super) fn summary(inner: &Inner) -> Vec<(u32, u32, u32, &'static str)> {
    inner
        .model()
        .pairs
        .values()
        .map(|p| (p.pvol, p.mu, p.svol, p.status.label()))
        .collect()
}
