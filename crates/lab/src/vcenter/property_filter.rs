//! PropertyFilter and the property collector's update methods: `CreateFilter`, `WaitForUpdatesEx`,
//! `WaitForUpdates`, `CheckForUpdates` and `DestroyPropertyFilter` — what every SDK's "wait for task"
//! helper runs on — and the session's own collectors (`CreatePropertyCollector`,
//! `DestroyPropertyCollector`), which govmomi creates for each wait. Filters belong to the collector
//! they were created on; a wait reports only that collector's filters.
//!
//! A filter remembers what it last reported for each object. An update is the difference between that
//! and a fresh collection: `enter` for a new object (all its properties), `modify` for changed
//! properties, `leave` for an object no longer selected. A client that passes no version starts over
//! and gets everything again. Waiting ends at the first difference or after `maxWaitSeconds`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::property_collector::{PropertyValues, collect, flag};
use super::soap::{Call, Fault};
use super::value::{Moref, Value, s};
use super::xml::Element;
use super::{PropertyFilterState, VcenterState};

/// Values a filter last reported, per object.
pub(crate) type Reported = BTreeMap<Moref, PropertyValues>;

/// Whether `obj` is the service's collector or one `session` created.
pub(super) fn is_collector(state: &VcenterState, session: &str, obj: &Moref) -> bool {
    obj.kind == "PropertyCollector"
        && (obj.value == "propertyCollector"
            || (obj.value.starts_with(&format!("session[{session}]"))
                && state.lock().collectors.contains(&obj.value)))
}

/// Properties of a filter that exists in `session`.
pub(super) fn properties(
    state: &VcenterState,
    session: &str,
    obj: &Moref,
) -> Option<Vec<(&'static str, Value)>> {
    let mutable = state.lock();
    let filter = mutable.filters.get(&obj.value)?;
    (filter.session == session)
        .then(|| vec![("partialUpdates", Value::Bool(filter.partial_updates))])
}

/// Properties of a collector `session` may use (`filter`: its filters in that session).
pub(super) fn collector_properties(
    state: &VcenterState,
    session: &str,
    obj: &Moref,
) -> Option<Vec<(&'static str, Value)>> {
    if !is_collector(state, session, obj) {
        return None;
    }
    let mutable = state.lock();
    let filters = mutable
        .filters
        .iter()
        .filter(|(_, f)| f.session == session && f.collector == obj.value)
        .map(|(id, _)| id.clone());
    Some(vec![("filter", Value::refs("PropertyFilter", filters))])
}

pub(super) async fn invoke(
    state: &VcenterState,
    session: &str,
    call: &Call,
) -> Result<Option<Value>, Fault> {
    let collector = call.this.value.as_str();
    match (call.this.kind.as_str(), call.method.as_str()) {
        ("PropertyCollector", "CreatePropertyCollector") => {
            let mut mutable = state.lock();
            mutable.next_id += 1;
            let id = format!("session[{session}]collector-{}", mutable.next_id);
            mutable.collectors.insert(id.clone());
            Ok(Some(Value::Ref(Moref::new("PropertyCollector", id))))
        }
        ("PropertyCollector", "DestroyPropertyCollector") => {
            // The service's own collector cannot be destroyed.
            if collector == "propertyCollector" {
                return Err(Fault::InvalidArgument {
                    property: "_this".into(),
                });
            }
            let mut mutable = state.lock();
            mutable.collectors.remove(collector);
            mutable.filters.retain(|_, f| f.collector != collector);
            Ok(None)
        }
        ("PropertyCollector", "CreateFilter") => create(state, session, call),
        ("PropertyFilter", "DestroyPropertyFilter") => {
            state.lock().filters.remove(&call.this.value);
            Ok(None)
        }
        ("PropertyCollector", "WaitForUpdatesEx") => {
            let options = call.body.child("options");
            let max_wait = options
                .and_then(|o| o.child_text("maxWaitSeconds"))
                .map(|m| {
                    m.trim().parse::<u64>().map_err(|_| Fault::InvalidArgument {
                        property: "options.maxWaitSeconds".into(),
                    })
                })
                .transpose()?;
            let max_wait = max_wait.map(Duration::from_secs);
            wait(state, session, collector, version(call), max_wait).await
        }
        ("PropertyCollector", "WaitForUpdates") => {
            wait(state, session, collector, version(call), None).await
        }
        ("PropertyCollector", "CheckForUpdates") => {
            wait(
                state,
                session,
                collector,
                version(call),
                Some(Duration::ZERO),
            )
            .await
        }
        _ => Err(Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        }),
    }
}

fn version(call: &Call) -> Option<String> {
    call.body
        .child_text("version")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn create(state: &VcenterState, session: &str, call: &Call) -> Result<Option<Value>, Fault> {
    let spec = call
        .body
        .child("spec")
        .ok_or_else(|| Fault::InvalidArgument {
            property: "spec".into(),
        })?;
    // Validates the spec (objects exist, paths are declared) now, as vCenter does, not on the first wait.
    collect(state, session, spec)?;
    let mut mutable = state.lock();
    mutable.next_id += 1;
    let id = format!("session[{session}]filter-{}", mutable.next_id);
    mutable.filters.insert(
        id.clone(),
        PropertyFilterState {
            session: session.to_owned(),
            collector: call.this.value.clone(),
            spec: spec.clone(),
            partial_updates: flag(&call.body, "partialUpdates"),
            reported: Reported::new(),
        },
    );
    Ok(Some(Value::Ref(Moref::new("PropertyFilter", id))))
}

async fn wait(
    state: &VcenterState,
    session: &str,
    collector: &str,
    version: Option<String>,
    max_wait: Option<Duration>,
) -> Result<Option<Value>, Fault> {
    if version.is_none() {
        for filter in state.lock().filters.values_mut() {
            if filter.session == session && filter.collector == collector {
                filter.reported.clear();
            }
        }
    }
    let deadline = max_wait.map(|d| tokio::time::Instant::now() + d);
    loop {
        // Registered before collecting, so a change between the collection and the wait still wakes us.
        let changed = state.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if let Some(update) = updates(state, session, collector)? {
            return Ok(Some(update));
        }
        match deadline {
            None => changed.await,
            Some(deadline) => {
                if tokio::time::timeout_at(deadline, changed).await.is_err() {
                    return Ok(None);
                }
            }
        }
    }
}

/// Collects every filter of the session on `collector` and returns the `UpdateSet` of what changed, if
/// anything did.
fn updates(state: &VcenterState, session: &str, collector: &str) -> Result<Option<Value>, Fault> {
    let filters: Vec<(String, Element, Reported)> = state
        .lock()
        .filters
        .iter()
        .filter(|(_, f)| f.session == session && f.collector == collector)
        .map(|(id, f)| (id.clone(), f.spec.clone(), f.reported.clone()))
        .collect();
    let mut filter_updates = Vec::new();
    let mut now_reported = Vec::new();
    for (id, spec, reported) in filters {
        let current: Reported = collect(state, session, &spec)?.into_iter().collect();
        let object_updates = diff(&reported, &current);
        if !object_updates.is_empty() {
            filter_updates.push(Value::obj(
                "PropertyFilterUpdate",
                vec![
                    (
                        "filter",
                        Value::Ref(Moref::new("PropertyFilter", id.clone())),
                    ),
                    ("objectSet", Value::array("ObjectUpdate", object_updates)),
                ],
            ));
            now_reported.push((id, current));
        }
    }
    if filter_updates.is_empty() {
        return Ok(None);
    }
    let mut mutable = state.lock();
    for (id, current) in now_reported {
        // A filter destroyed meanwhile stays destroyed.
        if let Some(filter) = mutable.filters.get_mut(&id) {
            filter.reported = current;
        }
    }
    let version = match mutable.sessions.get_mut(session) {
        Some(s) => {
            s.update_version += 1;
            s.update_version
        }
        None => 0,
    };
    Ok(Some(Value::obj(
        "UpdateSet",
        vec![
            ("version", s(version.to_string())),
            (
                "filterSet",
                Value::array("PropertyFilterUpdate", filter_updates),
            ),
        ],
    )))
}

fn change(name: &str, value: Option<&Value>) -> Value {
    let mut fields = vec![("name", s(name)), ("op", s("assign"))];
    if let Some(value) = value {
        fields.push(("val", Value::Any(Box::new(value.clone()))));
    }
    Value::obj("PropertyChange", fields)
}

fn object_update(kind: &str, obj: &Moref, changes: Vec<Value>) -> Value {
    let mut fields = vec![("kind", s(kind)), ("obj", Value::Ref(obj.clone()))];
    if !changes.is_empty() {
        fields.push(("changeSet", Value::array("PropertyChange", changes)));
    }
    Value::obj("ObjectUpdate", fields)
}

/// The object updates that take a client from `before` to `after`.
fn diff(before: &Reported, after: &Reported) -> Vec<Value> {
    let mut out = Vec::new();
    for (obj, values) in after {
        match before.get(obj) {
            None => {
                let changes = values.iter().map(|(n, v)| change(n, Some(v))).collect();
                out.push(object_update("enter", obj, changes));
            }
            Some(old) => {
                let mut changes: Vec<Value> = values
                    .iter()
                    .filter(|(n, v)| !old.iter().any(|(on, ov)| on == n && ov == v))
                    .map(|(n, v)| change(n, Some(v)))
                    .collect();
                // A property that became unset is assigned no value.
                changes.extend(
                    old.iter()
                        .filter(|(on, _)| !values.iter().any(|(n, _)| n == on))
                        .map(|(on, _)| change(on, None)),
                );
                if !changes.is_empty() {
                    out.push(object_update("modify", obj, changes));
                }
            }
        }
    }
    for obj in before.keys().filter(|o| !after.contains_key(*o)) {
        out.push(object_update("leave", obj, Vec::new()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(entries: &[(&str, &[(&str, Value)])]) -> Reported {
        entries
            .iter()
            .map(|(id, values)| {
                (
                    Moref::new("Task", *id),
                    values
                        .iter()
                        .map(|(n, v)| ((*n).to_owned(), v.clone()))
                        .collect(),
                )
            })
            .collect()
    }

    fn kinds(updates: &[Value]) -> Vec<(String, usize)> {
        updates
            .iter()
            .map(|u| {
                let kind = match u.field("kind") {
                    Some(Value::Str(k)) => k.clone(),
                    _ => String::new(),
                };
                let changes = match u.field("changeSet") {
                    Some(Value::Array { items, .. }) => items.len(),
                    _ => 0,
                };
                (kind, changes)
            })
            .collect()
    }

    #[test]
    fn updates_enter_modify_and_leave() {
        let before = reported(&[
            (
                "task-1",
                &[
                    ("info.state", s("running")),
                    ("info.progress", Value::Int(0)),
                ],
            ),
            ("task-2", &[("info.state", s("success"))]),
        ]);
        let after = reported(&[
            ("task-1", &[("info.state", s("success"))]),
            ("task-3", &[("info.state", s("queued"))]),
        ]);
        assert_eq!(
            kinds(&diff(&before, &after)),
            [
                ("modify".to_owned(), 2),
                ("enter".to_owned(), 1),
                ("leave".to_owned(), 0)
            ]
        );
        assert!(diff(&after, &after).is_empty(), "no change, no update");
    }
}
