//! AuthorizationManager: the privileges a user holds on managed entities, as clients check them
//! before they act — `FetchUserPrivilegeOnEntities` (by user name) and `HasPrivilegeOnEntities` /
//! `HasPrivilegeOnEntity` (by session). The lab's one user holds [`PRIVILEGES`] on every entity,
//! less the scenario's `vcenter.missing_privileges` (a role missing a privilege).

use super::VcenterState;
use super::soap::{Call, Fault, moref_of};
use super::value::{Moref, Value, s};

/// The privileges the lab's administrator holds: the system privileges every user has, those
/// copy-offload's role needs, and a few neighbours so a missing one is told apart from the rest.
pub(crate) const PRIVILEGES: &[&str] = &[
    "System.Anonymous",
    "System.View",
    "System.Read",
    "Global.Settings",
    "Global.Diagnostics",
    "Datastore.Browse",
    "Datastore.FileManagement",
    "Datastore.AllocateSpace",
    "Host.Config.AdvancedConfig",
    "Host.Config.Patch",
    "Host.Config.Storage",
    "Host.Config.Maintenance",
    "VirtualMachine.Config.AddExistingDisk",
    "VirtualMachine.Provisioning.DiskRandomRead",
    "VirtualMachine.State.CreateSnapshot",
];

fn granted(state: &VcenterState) -> Vec<&'static str> {
    PRIVILEGES
        .iter()
        .copied()
        .filter(|p| !state.credentials.missing_privileges.iter().any(|m| m == p))
        .collect()
}

/// The entities named `name` in the call, each checked to exist.
fn entities(
    state: &VcenterState,
    session: &str,
    call: &Call,
    name: &str,
) -> Result<Vec<Moref>, Fault> {
    call.body
        .children_named(name)
        .map(|element| {
            let obj = moref_of(element).ok_or_else(|| Fault::InvalidArgument {
                property: name.to_owned(),
            })?;
            match state.properties(session, &obj) {
                Some(_) => Ok(obj),
                None => Err(Fault::ManagedObjectNotFound { obj }),
            }
        })
        .collect()
}

/// The privileges asked about (`privId`), answered in the order asked.
fn availability(granted: &[&str], call: &Call) -> Vec<(String, bool)> {
    call.body
        .children_named("privId")
        .map(|p| {
            let id = p.text.trim().to_owned();
            let has = granted.contains(&id.as_str());
            (id, has)
        })
        .collect()
}

/// Whether `session_id` names a live session (the argument of the `HasPrivilege…` methods).
fn check_session(state: &VcenterState, call: &Call) -> Result<(), Fault> {
    let id = call.body.child_text("sessionId").unwrap_or_default().trim();
    if state.lock().sessions.contains_key(id) {
        Ok(())
    } else {
        Err(Fault::InvalidArgument {
            property: "sessionId".into(),
        })
    }
}

pub(super) fn invoke(
    state: &VcenterState,
    session: &str,
    call: &Call,
) -> Result<Option<Value>, Fault> {
    let granted = granted(state);
    match call.method.as_str() {
        "FetchUserPrivilegeOnEntities" => {
            let entities = entities(state, session, call, "entities")?;
            let user = call.body.child_text("userName").unwrap_or_default().trim();
            if !user.eq_ignore_ascii_case(&state.credentials.username) {
                return Err(Fault::InvalidArgument {
                    property: "userName".into(),
                });
            }
            let results = entities
                .into_iter()
                .map(|entity| {
                    Value::obj(
                        "UserPrivilegeResult",
                        vec![
                            ("entity", Value::Ref(entity)),
                            (
                                "privileges",
                                Value::array("string", granted.iter().map(|p| s(*p)).collect()),
                            ),
                        ],
                    )
                })
                .collect();
            Ok(Some(Value::array("UserPrivilegeResult", results)))
        }
        "HasPrivilegeOnEntities" => {
            let entities = entities(state, session, call, "entity")?;
            check_session(state, call)?;
            let results = entities
                .into_iter()
                .map(|entity| {
                    let privileges = availability(&granted, call)
                        .into_iter()
                        .map(|(id, is_granted)| {
                            Value::obj(
                                "PrivilegeAvailability",
                                vec![("privId", s(id)), ("isGranted", Value::Bool(is_granted))],
                            )
                        })
                        .collect();
                    Value::obj(
                        "EntityPrivilege",
                        vec![
                            ("entity", Value::Ref(entity)),
                            (
                                "privAvailability",
                                Value::array("PrivilegeAvailability", privileges),
                            ),
                        ],
                    )
                })
                .collect();
            Ok(Some(Value::array("EntityPrivilege", results)))
        }
        "HasPrivilegeOnEntity" => {
            entities(state, session, call, "entity")?;
            check_session(state, call)?;
            let answers = availability(&granted, call)
                .into_iter()
                .map(|(_, is_granted)| Value::Bool(is_granted))
                .collect();
            Ok(Some(Value::array("boolean", answers)))
        }
        _ => Err(Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        }),
    }
}
