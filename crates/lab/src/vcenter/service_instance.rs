//! ServiceInstance: the entry point (`RetrieveServiceContent`, `CurrentTime`) and the singleton managers'
//! trivial properties.

use super::inventory::ROOT_FOLDER;
use super::soap::{Call, Fault};
use super::value::{Moref, Value, s};
use super::{API_VERSION, VcenterState, now_datetime};

pub(super) fn about(state: &VcenterState) -> Value {
    Value::obj(
        "AboutInfo",
        vec![
            ("name", s("VMware vCenter Server")),
            (
                "fullName",
                s("VMware vCenter Server 8.0.3 build-24022515 (copy-offload lab)"),
            ),
            ("vendor", s("VMware, Inc.")),
            ("version", s("8.0.3")),
            ("build", s("24022515")),
            ("localeVersion", s("INTL")),
            ("localeBuild", s("000")),
            ("osType", s("linux-x64")),
            ("productLineId", s("vpx")),
            ("apiType", s("VirtualCenter")),
            ("apiVersion", s(API_VERSION)),
            ("instanceUuid", s(state.instance_uuid.clone())),
            ("licenseProductName", s("VMware VirtualCenter Server")),
            ("licenseProductVersion", s("8.0")),
        ],
    )
}

fn service_content(state: &VcenterState) -> Value {
    let r = |kind: &str, id: &str| Value::Ref(Moref::new(kind, id));
    Value::obj(
        "ServiceContent",
        vec![
            ("rootFolder", r("Folder", ROOT_FOLDER)),
            (
                "propertyCollector",
                r("PropertyCollector", "propertyCollector"),
            ),
            ("viewManager", r("ViewManager", "ViewManager")),
            ("about", about(state)),
            ("sessionManager", r("SessionManager", "SessionManager")),
            ("fileManager", r("FileManager", "FileManager")),
        ],
    )
}

pub(super) fn properties(state: &VcenterState, obj: &Moref) -> Option<Vec<(&'static str, Value)>> {
    (obj.value == "ServiceInstance").then(|| {
        vec![
            ("content", service_content(state)),
            ("serverClock", Value::DateTime(now_datetime())),
        ]
    })
}

pub(super) fn singleton_properties(
    state: &VcenterState,
    session: &str,
    obj: &Moref,
) -> Option<Vec<(&'static str, Value)>> {
    match (obj.kind.as_str(), obj.value.as_str()) {
        ("SessionManager", "SessionManager") => {
            let current = state
                .session_for(session)
                .map(|s| super::session_manager::user_session(&s));
            Some(
                current
                    .map(|c| vec![("currentSession", c)])
                    .unwrap_or_default(),
            )
        }
        ("PropertyCollector", "propertyCollector") => Some(Vec::new()),
        ("FileManager", "FileManager") => Some(Vec::new()),
        ("ViewManager", "ViewManager") => {
            let views = state.lock().views.keys().cloned().collect::<Vec<_>>();
            Some(vec![("viewList", Value::refs("ContainerView", views))])
        }
        _ => None,
    }
}

pub(super) fn invoke(state: &VcenterState, call: &Call) -> Result<Option<Value>, Fault> {
    match call.method.as_str() {
        "RetrieveServiceContent" => Ok(Some(service_content(state))),
        "CurrentTime" => Ok(Some(Value::DateTime(now_datetime()))),
        _ => Err(Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        }),
    }
}
