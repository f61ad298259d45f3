//! SessionManager: `Login`/`Logout`, `SessionIsActive`, single-use clone tickets (`AcquireCloneTicket`,
//! `CloneSession`) and the `currentSession` property; sessions live behind the `vmware_soap_session` cookie.

use std::collections::HashMap;

use super::soap::{Call, Fault};
use super::value::{Value, s};
use super::{Invoked, Session, VcenterState, now_datetime};

pub(super) fn user_session(session: &Session) -> Value {
    Value::obj(
        "UserSession",
        vec![
            ("key", s(session.key.clone())),
            ("userName", s(session.user.clone())),
            ("fullName", s(session.user.clone())),
            ("loginTime", Value::DateTime(session.login_time.clone())),
            ("lastActiveTime", Value::DateTime(now_datetime())),
            ("locale", s("en")),
            ("messageLocale", s("en")),
            ("extensionSession", Value::Bool(false)),
            ("ipAddress", s("127.0.0.1")),
            ("userAgent", s("")),
            ("callCount", Value::Long(0)),
        ],
    )
}

/// Opens a session for `user` and answers it with its cookie (`Login`, `CloneSession`).
fn new_session(state: &VcenterState, user: &str) -> Invoked {
    let key = crate::host::random_uuid();
    let new = Session {
        key: key.clone(),
        user: user.to_owned(),
        login_time: now_datetime(),
        continuations: HashMap::new(),
        update_version: 0,
    };
    let value = user_session(&new);
    state.lock().sessions.insert(key.clone(), new);
    Invoked {
        value: Some(value),
        set_session: Some(key),
    }
}

pub(super) fn invoke(state: &VcenterState, session: &str, call: &Call) -> Result<Invoked, Fault> {
    match call.method.as_str() {
        "Login" => {
            let user = call.body.child_text("userName").unwrap_or_default();
            let password = call.body.child_text("password").unwrap_or_default();
            if user != state.credentials.username || password != state.credentials.password {
                tracing::info!(user, "vCenter login refused");
                return Err(Fault::InvalidLogin);
            }
            Ok(new_session(state, user))
        }
        "Logout" => {
            let mut mutable = state.lock();
            mutable.sessions.remove(session);
            let prefix = format!("session[{session}]");
            mutable.views.retain(|id, _| !id.starts_with(&prefix));
            mutable.filters.retain(|id, _| !id.starts_with(&prefix));
            mutable.collectors.retain(|id| !id.starts_with(&prefix));
            Ok(Invoked {
                value: None,
                set_session: None,
            })
        }
        "AcquireCloneTicket" => {
            let user = state.session_for(session).map(|s| s.user).ok_or_else(|| {
                Fault::NotAuthenticated {
                    object: call.this.clone(),
                }
            })?;
            let ticket = format!("cst-VCT-{}", crate::host::random_uuid());
            state.lock().clone_tickets.insert(ticket.clone(), user);
            Ok(Invoked {
                value: Some(s(ticket)),
                set_session: None,
            })
        }
        "CloneSession" => {
            let ticket = call
                .body
                .child_text("cloneTicket")
                .unwrap_or_default()
                .trim();
            // A ticket is good for one clone.
            let user = state
                .lock()
                .clone_tickets
                .remove(ticket)
                .ok_or(Fault::InvalidLogin)?;
            Ok(new_session(state, &user))
        }
        "SessionIsActive" => {
            let id = call.body.child_text("sessionID").unwrap_or_default();
            let user = call.body.child_text("userName").unwrap_or_default();
            let active = state
                .lock()
                .sessions
                .get(id)
                .is_some_and(|s| s.user == user);
            Ok(Invoked {
                value: Some(Value::Bool(active)),
                set_session: None,
            })
        }
        _ => Err(Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        }),
    }
}
