//! ViewManager and ContainerView: `CreateContainerView`/`DestroyView`, and the `view` property listing the
//! container's (optionally recursive) members of the requested types.

use super::inventory::is_a;
use super::soap::{Call, Fault, moref_of};
use super::value::{Moref, Value};
use super::{ContainerViewSpec, VcenterState};

fn members(state: &VcenterState, spec: &ContainerViewSpec) -> Vec<Moref> {
    let mut out = Vec::new();
    let mut stack = state.inventory.children(&spec.container);
    stack.reverse();
    while let Some(obj) = stack.pop() {
        if spec.types.is_empty() || spec.types.iter().any(|t| is_a(&obj.kind, t)) {
            out.push(obj.clone());
        }
        if spec.recursive {
            let mut children = state.inventory.children(&obj);
            children.reverse();
            stack.extend(children);
        }
    }
    out
}

pub(super) fn properties(state: &VcenterState, obj: &Moref) -> Option<Vec<(&'static str, Value)>> {
    let spec = state.lock().views.get(&obj.value).cloned()?;
    let view = members(state, &spec).into_iter().map(Value::Ref).collect();
    Some(vec![
        ("container", Value::Ref(spec.container.clone())),
        (
            "type",
            Value::array(
                "string",
                spec.types.iter().cloned().map(Value::Str).collect(),
            ),
        ),
        ("recursive", Value::Bool(spec.recursive)),
        ("view", Value::array("ManagedObjectReference", view)),
    ])
}

pub(super) fn invoke(
    state: &VcenterState,
    session: &str,
    call: &Call,
) -> Result<Option<Value>, Fault> {
    match (call.this.kind.as_str(), call.method.as_str()) {
        ("ViewManager", "CreateContainerView") => {
            let container = call
                .body
                .child("container")
                .and_then(moref_of)
                .ok_or_else(|| Fault::InvalidArgument {
                    property: "container".into(),
                })?;
            if state.properties(session, &container).is_none() {
                return Err(Fault::ManagedObjectNotFound { obj: container });
            }
            let types = call
                .body
                .children_named("type")
                .map(|t| t.text.trim().to_owned())
                .collect();
            let recursive = call
                .body
                .child_text("recursive")
                .is_some_and(|r| r.trim() == "true");
            let mut mutable = state.lock();
            mutable.next_id += 1;
            let id = format!("session[{session}]view-{}", mutable.next_id);
            mutable.views.insert(
                id.clone(),
                ContainerViewSpec {
                    container,
                    types,
                    recursive,
                },
            );
            Ok(Some(Value::Ref(Moref::new("ContainerView", id))))
        }
        ("ContainerView", "DestroyView") => {
            state.lock().views.remove(&call.this.value);
            Ok(None)
        }
        _ => Err(Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        }),
    }
}
