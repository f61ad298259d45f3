//! PropertyCollector: `RetrieveProperties`, `RetrievePropertiesEx` with `maxObjects` paging and
//! `ContinueRetrievePropertiesEx`/`CancelRetrievePropertiesEx`, walking traversal specs and dotted paths.
//! Filters and their updates (`CreateFilter`, `WaitForUpdatesEx`) live in `property_filter`.

use std::collections::HashSet;

use super::VcenterState;
use super::inventory::is_a;
use super::schema;
use super::soap::{Call, Fault, moref_of};
use super::value::{Moref, Value};
use super::xml::Element;

/// A parsed `TraversalSpec`, or a `SelectionSpec` that only names one.
#[derive(Debug, Clone)]
struct Selection {
    name: Option<String>,
    traversal: Option<Traversal>,
}

#[derive(Debug, Clone)]
struct Traversal {
    kind: String,
    path: String,
    skip: bool,
    select: Vec<Selection>,
}

pub(super) fn flag(element: &Element, name: &str) -> bool {
    element
        .child_text(name)
        .is_some_and(|t| t.trim() == "true" || t.trim() == "1")
}

fn parse_selection(element: &Element) -> Selection {
    let name = element
        .child_text("name")
        .map(str::to_owned)
        .filter(|n| !n.is_empty());
    let traversal = match (element.child_text("type"), element.child_text("path")) {
        (Some(kind), Some(path)) => Some(Traversal {
            kind: kind.trim().to_owned(),
            path: path.trim().to_owned(),
            skip: flag(element, "skip"),
            select: element
                .children_named("selectSet")
                .map(parse_selection)
                .collect(),
        }),
        _ => None,
    };
    Selection { name, traversal }
}

fn named(selection: &Selection, out: &mut Vec<(String, Traversal)>) {
    if let (Some(name), Some(t)) = (&selection.name, &selection.traversal) {
        out.push((name.clone(), t.clone()));
        for s in &t.select {
            named(s, out);
        }
    }
}

/// Collects the objects a filter spec selects, in discovery order without repeats.
fn select_objects(
    state: &VcenterState,
    session: &str,
    spec: &Element,
) -> Result<Vec<Moref>, Fault> {
    let object_specs: Vec<&Element> = spec.children_named("objectSet").collect();
    let mut catalogue = Vec::new();
    for os in &object_specs {
        for s in os.children_named("selectSet").map(parse_selection) {
            named(&s, &mut catalogue);
        }
    }
    let mut walk = Walk {
        state,
        session,
        catalogue: &catalogue,
        selected: Vec::new(),
        seen: HashSet::new(),
        visited: HashSet::new(),
    };
    for os in object_specs {
        let obj = os
            .child("obj")
            .and_then(moref_of)
            .ok_or_else(|| Fault::InvalidArgument {
                property: "specSet.objectSet.obj".into(),
            })?;
        if state.properties(session, &obj).is_none() {
            return Err(Fault::ManagedObjectNotFound { obj });
        }
        if !flag(os, "skip") {
            walk.select(&obj);
        }
        let selections: Vec<Selection> = os
            .children_named("selectSet")
            .map(parse_selection)
            .collect();
        walk.follow(&obj, &selections);
    }
    Ok(walk.selected)
}

/// One traversal of a filter spec: the objects selected so far, in discovery order without repeats.
struct Walk<'a> {
    state: &'a VcenterState,
    session: &'a str,
    /// Named traversal specs that bare `SelectionSpec`s refer to.
    catalogue: &'a [(String, Traversal)],
    selected: Vec<Moref>,
    seen: HashSet<Moref>,
    /// Cycle guard: the same traversal from the same object is only followed once.
    visited: HashSet<(Moref, String, String)>,
}

impl Walk<'_> {
    fn select(&mut self, obj: &Moref) {
        if self.seen.insert(obj.clone()) {
            self.selected.push(obj.clone());
        }
    }

    fn follow(&mut self, obj: &Moref, selections: &[Selection]) {
        for selection in selections {
            let traversal = match (&selection.traversal, &selection.name) {
                (Some(t), _) => t.clone(),
                (None, Some(name)) => match self.catalogue.iter().find(|(n, _)| n == name) {
                    Some((_, t)) => t.clone(),
                    None => continue,
                },
                (None, None) => continue,
            };
            if !is_a(&obj.kind, &traversal.kind)
                || !self.visited.insert((
                    obj.clone(),
                    traversal.kind.clone(),
                    traversal.path.clone(),
                ))
            {
                continue;
            }
            let Some(props) = self.state.properties(self.session, obj) else {
                continue;
            };
            let segments: Vec<&str> = traversal.path.split('.').collect();
            let Some(target) = props
                .iter()
                .find(|(n, _)| *n == segments[0])
                .and_then(|(_, v)| v.path(&segments[1..]))
            else {
                continue;
            };
            let targets: Vec<Moref> = match target {
                Value::Ref(r) => vec![r.clone()],
                Value::Array { items, .. } => items
                    .iter()
                    .filter_map(|i| {
                        if let Value::Ref(r) = i {
                            Some(r.clone())
                        } else {
                            None
                        }
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for next in targets {
                if !traversal.skip {
                    self.select(&next);
                }
                self.follow(&next, &traversal.select);
            }
        }
    }
}

/// The set properties of one object, as `(path, value)` in the order the spec asked for them.
pub(super) type PropertyValues = Vec<(String, Value)>;

/// The properties one filter spec selects: every selected object with the `(path, value)` pairs of its
/// set properties. An object whose type matches no property spec is left out. A path the schema does
/// not declare for the spec's type is an `InvalidProperty` fault, as on vCenter.
pub(super) fn collect(
    state: &VcenterState,
    session: &str,
    spec: &Element,
) -> Result<Vec<(Moref, PropertyValues)>, Fault> {
    let prop_specs: Vec<&Element> = spec.children_named("propSet").collect();
    for ps in &prop_specs {
        let kind = ps.child_text("type").unwrap_or_default().trim();
        for path in ps.children_named("pathSet") {
            let path = path.text.trim();
            if !schema::declares(kind, path) {
                return Err(Fault::InvalidProperty {
                    name: path.to_owned(),
                });
            }
        }
    }
    let mut collected = Vec::new();
    for obj in select_objects(state, session, spec)? {
        let Some(props) = state.properties(session, &obj) else {
            continue;
        };
        let mut values: Vec<(String, Value)> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut matched = false;
        for ps in &prop_specs {
            let kind = ps.child_text("type").unwrap_or_default().trim();
            if !is_a(&obj.kind, kind) {
                continue;
            }
            matched = true;
            let paths: Vec<String> = if flag(ps, "all") {
                props.iter().map(|(n, _)| (*n).to_owned()).collect()
            } else {
                ps.children_named("pathSet")
                    .map(|p| p.text.trim().to_owned())
                    .collect()
            };
            for path in paths {
                if names.contains(&path) {
                    continue;
                }
                let segments: Vec<&str> = path.split('.').collect();
                let value = props
                    .iter()
                    .find(|(n, _)| *n == segments[0])
                    .and_then(|(_, v)| v.path(&segments[1..]));
                if let Some(value) = value {
                    values.push((path.clone(), value.clone()));
                }
                names.push(path);
            }
        }
        if matched {
            collected.push((obj, values));
        }
    }
    Ok(collected)
}

/// Builds the `ObjectContent` of every selected object for the filter's property specs.
fn retrieve(state: &VcenterState, session: &str, specs: &[&Element]) -> Result<Vec<Value>, Fault> {
    let mut contents = Vec::new();
    for spec in specs {
        for (obj, values) in collect(state, session, spec)? {
            let prop_set = values
                .into_iter()
                .map(|(name, value)| {
                    Value::obj(
                        "DynamicProperty",
                        vec![
                            ("name", Value::str(name)),
                            ("val", Value::Any(Box::new(value))),
                        ],
                    )
                })
                .collect();
            contents.push(Value::obj(
                "ObjectContent",
                vec![
                    ("obj", Value::Ref(obj)),
                    ("propSet", Value::array("DynamicProperty", prop_set)),
                ],
            ));
        }
    }
    Ok(contents)
}

fn page(
    state: &VcenterState,
    session: &str,
    mut objects: Vec<Value>,
    max: Option<usize>,
) -> Option<Value> {
    if objects.is_empty() {
        return None;
    }
    let mut fields = Vec::new();
    if let Some(max) = max.filter(|m| *m > 0 && objects.len() > *m) {
        let rest = objects.split_off(max);
        let mut mutable = state.lock();
        mutable.next_id += 1;
        let token = format!("token-{}", mutable.next_id);
        if let Some(s) = mutable.sessions.get_mut(session) {
            s.continuations.insert(token.clone(), (rest, max));
        }
        fields.push(("token", Value::str(token)));
    }
    fields.push(("objects", Value::array("ObjectContent", objects)));
    Some(Value::obj("RetrieveResult", fields))
}

pub(super) fn invoke(
    state: &VcenterState,
    session: &str,
    call: &Call,
) -> Result<Option<Value>, Fault> {
    let specs: Vec<&Element> = call.body.children_named("specSet").collect();
    match call.method.as_str() {
        "RetrieveProperties" => Ok(Some(Value::array(
            "ObjectContent",
            retrieve(state, session, &specs)?,
        ))),
        "RetrievePropertiesEx" => {
            let max = call
                .body
                .child("options")
                .and_then(|o| o.child_text("maxObjects"))
                .and_then(|m| m.trim().parse::<usize>().ok());
            let objects = retrieve(state, session, &specs)?;
            Ok(page(state, session, objects, max))
        }
        "ContinueRetrievePropertiesEx" => {
            let token = call
                .body
                .child_text("token")
                .unwrap_or_default()
                .trim()
                .to_owned();
            let (rest, max) = state
                .lock()
                .sessions
                .get_mut(session)
                .and_then(|s| s.continuations.remove(&token))
                .ok_or_else(|| Fault::InvalidArgument {
                    property: "token".into(),
                })?;
            Ok(page(state, session, rest, Some(max)))
        }
        "CancelRetrievePropertiesEx" => {
            let token = call
                .body
                .child_text("token")
                .unwrap_or_default()
                .trim()
                .to_owned();
            if let Some(s) = state.lock().sessions.get_mut(session) {
                s.continuations.remove(&token);
            }
            Ok(None)
        }
        _ => Err(Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        }),
    }
}
