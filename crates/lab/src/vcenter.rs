//! The simulated vCenter/ESXi VIM SOAP endpoint and `/folder` file transfer.
//!
//! One module per managed object type answers its methods and builds its properties; this module owns
//! the HTTP surface (`POST /sdk`, `GET /sdk/vimServiceVersions.xml`, `/folder/…`), sessions and dispatch.

pub mod soap;
pub mod value;
pub mod xml;

mod authorization_manager;
mod datastore;
mod datastore_browser;
mod file_manager;
mod file_transfer;
mod folder;
mod host_storage_system;
pub(crate) use host_storage_system::scsi_inquiry;
mod host_system;
pub mod inventory;
mod kernel_module_system;
mod option_manager;
mod property_collector;
mod property_filter;
mod schema;
mod search_index;
mod service_instance;
mod session_manager;
mod task;
mod view_manager;
mod virtual_disk_manager;
mod virtual_machine;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::faults::FaultPlan;
use crate::scenario::{AdvancedOptionValue, VcenterSpec};
use inventory::Inventory;
use soap::{Call, Fault};
use value::{Moref, Value};

/// Name of the session cookie, as vCenter sets it.
pub const SESSION_COOKIE: &str = "vmware_soap_session";

/// API version the endpoint reports (`AboutInfo.apiVersion`).
pub const API_VERSION: &str = "8.0.3.0";

/// One logged-in session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub key: String,
    pub user: String,
    pub login_time: String,
    /// Pending `RetrievePropertiesEx` continuations: token → remaining objects and the page size.
    pub continuations: HashMap<String, (Vec<Value>, usize)>,
    /// Version of the last `UpdateSet` the session's filters reported.
    pub update_version: u64,
}

/// A property filter created by `CreateFilter`, owned by one session.
#[derive(Debug, Clone)]
pub(crate) struct PropertyFilterState {
    pub session: String,
    /// The collector it was created on.
    pub collector: String,
    pub spec: xml::Element,
    pub partial_updates: bool,
    /// What the last update reported, to compute the next one.
    pub reported: property_filter::Reported,
}

/// An advanced setting changed by `UpdateOptions`.
#[derive(Debug, Clone)]
pub(crate) struct OptionOverride {
    pub host: usize,
    pub key: String,
    pub value: AdvancedOptionValue,
}

/// A container view created by `CreateContainerView`.
#[derive(Debug, Clone)]
pub(crate) struct ContainerViewSpec {
    pub container: Moref,
    pub types: Vec<String>,
    pub recursive: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Mutable {
    pub sessions: HashMap<String, Session>,
    pub views: HashMap<String, ContainerViewSpec>,
    pub filters: HashMap<String, PropertyFilterState>,
    /// Collectors the sessions created (`CreatePropertyCollector`).
    pub collectors: std::collections::HashSet<String>,
    /// Tasks in creation order.
    pub(crate) tasks: Vec<task::TaskRecord>,
    /// Unused clone tickets → the user they log in.
    pub clone_tickets: HashMap<String, String>,
    pub option_overrides: Vec<OptionOverride>,
    pub next_id: u64,
}

/// Shared state of the endpoint.
pub struct VcenterState {
    pub(crate) inventory: Inventory,
    pub(crate) credentials: VcenterSpec,
    pub(crate) faults: FaultPlan,
    pub(crate) instance_uuid: String,
    mutable: Mutex<Mutable>,
    /// Woken whenever state a property filter may report changes (tasks, options).
    pub(crate) changed: tokio::sync::Notify,
    /// The endpoint itself, for work that outlives a request (tasks).
    pub(crate) me: Weak<VcenterState>,
}

impl VcenterState {
    pub fn new(
        inventory: Inventory,
        credentials: VcenterSpec,
        faults: FaultPlan,
    ) -> Arc<VcenterState> {
        Arc::new_cyclic(|me| VcenterState {
            inventory,
            credentials,
            faults,
            instance_uuid: crate::host::random_uuid(),
            mutable: Mutex::new(Mutable::default()),
            changed: tokio::sync::Notify::new(),
            me: me.clone(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Mutable> {
        // Every update is a single map operation; a panic cannot leave it torn.
        self.mutable.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of live sessions (for tests and the lab status).
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Properties of any managed object, or `None` if it does not exist.
    pub(crate) fn properties(
        &self,
        session: &str,
        obj: &Moref,
    ) -> Option<Vec<(&'static str, Value)>> {
        let inv = &self.inventory;
        match obj.kind.as_str() {
            "ServiceInstance" => service_instance::properties(self, obj),
            "Task" | "TaskManager" => task::properties(self, obj),
            "PropertyFilter" => property_filter::properties(self, session, obj),
            "PropertyCollector" => property_filter::collector_properties(self, session, obj),
            "OptionManager" if obj.value != "VpxSettings" => option_manager::properties(self, obj),
            "HostDatastoreBrowser" => datastore_browser::properties(inv, obj),
            _ if service_instance::is_manager(obj) => {
                service_instance::singleton_properties(self, session, obj)
            }
            "ContainerView" => view_manager::properties(self, obj),
            "Folder" | "Datacenter" | "ComputeResource" => folder::properties(inv, obj),
            "HostSystem" => host_system::properties(inv, obj),
            "HostStorageSystem" => host_storage_system::properties(inv, obj),
            "HostKernelModuleSystem" => kernel_module_system::properties(inv, obj),
            "Datastore" => datastore::properties(inv, obj),
            "VirtualMachine" => virtual_machine::properties(inv, obj),
            _ => None,
        }
    }

    async fn invoke(&self, cookie: Option<&str>, call: &Call) -> Result<Invoked, Fault> {
        let public = matches!(
            call.method.as_str(),
            "RetrieveServiceContent" | "Login" | "CloneSession" | "CurrentTime"
        );
        let session_key = match cookie {
            Some(c) if self.lock().sessions.contains_key(c) => Some(c.to_owned()),
            _ => None,
        };
        if !public && session_key.is_none() {
            return Err(Fault::NotAuthenticated {
                object: call.this.clone(),
            });
        }
        if let Err(injected) = self.faults.apply(&format!("soap:{}", call.method)).await {
            return Err(Fault::SystemError(injected.message));
        }
        if call.this.kind != "ManagedMethodExecuter"
            && call.this.kind != "InternalDynamicTypeManager"
            && self
                .properties(session_key.as_deref().unwrap_or_default(), &call.this)
                .is_none()
        {
            return Err(Fault::ManagedObjectNotFound {
                obj: call.this.clone(),
            });
        }
        let session = session_key.as_deref().unwrap_or_default();
        let not_found = || Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        };
        if call.method == "Fetch" {
            // pyVmomi 8+ reads a single property with the internal `Fetch(prop)` method.
            let prop = call.body.child_text("prop").unwrap_or_default().trim();
            if !schema::declares(&call.this.kind, prop) {
                return Err(Fault::InvalidProperty {
                    name: prop.to_owned(),
                });
            }
            let segments: Vec<&str> = prop.split('.').collect();
            let value = self.properties(session, &call.this).and_then(|props| {
                props
                    .into_iter()
                    .find(|(n, _)| *n == segments[0])
                    .and_then(|(_, v)| v.path(&segments[1..]).cloned())
            });
            return Ok(Invoked {
                value,
                set_session: None,
            });
        }
        let value = match call.this.kind.as_str() {
            "ServiceInstance" => service_instance::invoke(self, call)?,
            "SessionManager" => return session_manager::invoke(self, session, call),
            "PropertyCollector"
                if matches!(
                    call.method.as_str(),
                    "CreateFilter"
                        | "WaitForUpdatesEx"
                        | "WaitForUpdates"
                        | "CheckForUpdates"
                        | "CreatePropertyCollector"
                        | "DestroyPropertyCollector"
                ) =>
            {
                property_filter::invoke(self, session, call).await?
            }
            "PropertyCollector" => property_collector::invoke(self, session, call)?,
            "PropertyFilter" => property_filter::invoke(self, session, call).await?,
            "SearchIndex" => search_index::invoke(self, session, call)?,
            "VirtualDiskManager" => virtual_disk_manager::invoke(self, call)?,
            "OptionManager" => option_manager::invoke(self, call)?,
            "AuthorizationManager" => authorization_manager::invoke(self, session, call)?,
            "HostDatastoreBrowser" => datastore_browser::invoke(self, session, call)?,
            "ViewManager" | "ContainerView" => view_manager::invoke(self, session, call)?,
            "HostSystem" => host_system::invoke(&self.inventory, call)?,
            "ManagedMethodExecuter" => host_system::execute_soap(self, call).await?,
            "HostStorageSystem" => host_storage_system::invoke(&self.inventory, call)?,
            "HostKernelModuleSystem" => kernel_module_system::invoke(&self.inventory, call)?,
            "VirtualMachine" => virtual_machine::invoke(call)?,
            "FileManager" => file_manager::invoke(self, call).await?,
            _ => return Err(not_found()),
        };
        Ok(Invoked {
            value,
            set_session: None,
        })
    }

    pub(crate) fn session_for(&self, cookie: &str) -> Option<Session> {
        self.lock().sessions.get(cookie).cloned()
    }
}

/// Result of a method: the return value and, for `Login`, the new session cookie.
pub(crate) struct Invoked {
    pub value: Option<Value>,
    pub set_session: Option<String>,
}

/// Extracts the session id from a `Cookie` header (quoted as vCenter sets it, or bare).
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|cookies| {
            cookies.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == SESSION_COOKIE).then(|| value.trim_matches('"').to_owned())
            })
        })
}

/// The HTTPS routes of the endpoint (TLS is added by the caller).
pub fn router(state: Arc<VcenterState>) -> Router {
    Router::new()
        .route("/sdk", post(sdk))
        .route("/sdk/vimServiceVersions.xml", get(service_versions))
        .route("/folder/{*path}", file_transfer::routes())
        .with_state(state)
}

async fn sdk(State(state): State<Arc<VcenterState>>, headers: HeaderMap, body: Bytes) -> Response {
    let xml_response = |status: StatusCode, text: String| {
        let mut response = (status, text).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        );
        response
    };
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t,
        Err(_) => {
            let fault = Fault::InvalidRequest("request body is not UTF-8".into());
            return xml_response(StatusCode::INTERNAL_SERVER_ERROR, fault.envelope());
        }
    };
    let call = match soap::decode_call(text) {
        Ok(call) => call,
        Err(fault) => return xml_response(StatusCode::INTERNAL_SERVER_ERROR, fault.envelope()),
    };
    let cookie = session_cookie(&headers);
    tracing::debug!(method = %call.method, this = %call.this, "SOAP call");
    match state.invoke(cookie.as_deref(), &call).await {
        Ok(invoked) => {
            let mut response = xml_response(
                StatusCode::OK,
                soap::response(&call.method, invoked.value.as_ref()),
            );
            if let Some(key) = invoked.set_session {
                let cookie = format!("{SESSION_COOKIE}=\"{key}\"; Path=/; HttpOnly; Secure;");
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().insert(header::SET_COOKIE, value);
                }
            }
            response
        }
        Err(fault) => {
            tracing::debug!(method = %call.method, %fault, "SOAP fault");
            xml_response(StatusCode::INTERNAL_SERVER_ERROR, fault.envelope())
        }
    }
}

async fn service_versions() -> impl IntoResponse {
    let prior = [
        "8.0.2.0", "8.0.1.0", "8.0.0.0", "7.0.3.0", "7.0.2.0", "7.0.1.0", "7.0.0.0", "6.7.3",
        "6.7", "6.5", "6.0",
    ];
    let prior: String = prior
        .iter()
        .map(|v| format!("<version>{v}</version>"))
        .collect();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<namespaces version=\"1.0\"><namespace><name>urn:vim25</name>\
         <version>{API_VERSION}</version><priorVersions>{prior}</priorVersions></namespace></namespaces>"
    );
    ([(header::CONTENT_TYPE, "text/xml")], body)
}

/// Current time as `xsd:dateTime` (UTC).
pub(crate) fn now_datetime() -> String {
    datetime_of(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// Seconds since the Unix epoch as `xsd:dateTime` (UTC).
pub(crate) fn datetime_of(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (proleptic Gregorian), valid for all dates after 1970.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_read_quoted_or_bare() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; vmware_soap_session=\"abc-1\""),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc-1"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("vmware_soap_session=xyz"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("xyz"));
    }

    #[test]
    fn datetime_is_iso8601_utc() {
        let now = now_datetime();
        assert_eq!(now.len(), 20);
        assert!(now.starts_with("20") && now.ends_with('Z'));
        assert_eq!(datetime_of(0), "1970-01-01T00:00:00Z");
        assert_eq!(datetime_of(1_709_251_199), "2024-02-29T23:59:59Z");
    }
}
