//! The logged-in session: `RetrieveServiceContent`, `SessionManager.Login/Logout`, one transparent
//! re-login when the server forgot the session, retries of transient failures, and logout when the
//! last clone of the `Client` is dropped.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{debug, warn};

use crate::decode::Node;
use crate::error::{Error, FaultKind};
use crate::retry::{RetryPolicy, is_transient};
use crate::soap::{self, Request};
use crate::transport::{self, TlsTrust, Transport};
use crate::types::{ManagedObjectReference, ServiceContent};
use co_api::Secret;

/// State of the layers above the session, by type and key, that lives as long as the session.
type SessionState = Mutex<HashMap<(TypeId, String), Arc<dyn Any + Send + Sync>>>;

/// How to reach and log in to vCenter or a standalone ESXi host.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Host name, `host:port`, or `https://host[:port]/sdk`.
    pub url: String,
    pub username: String,
    pub password: Secret,
    pub trust: TlsTrust,
    /// Per-request timeout of SOAP calls (and per-read timeout of file transfers).
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// A config with certificate verification on, a 60 s timeout and default retries.
    pub fn new(url: impl Into<String>, username: impl Into<String>, password: Secret) -> Self {
        Self {
            url: url.into(),
            username: username.into(),
            password,
            trust: TlsTrust::default(),
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

/// A logged-in VIM session. Cheap to clone; all clones share the session, the cookie jar and
/// the per-host state of the layers above (the esxcli caches). The session is logged out when the last clone is dropped (inside a tokio
/// runtime) or by [`Client::logout`].
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) transport: Transport,
    pub(crate) service: ServiceContent,
    soap_action: String,
    username: String,
    password: Secret,
    retry: RetryPolicy,
    logged_out: AtomicBool,
    /// See [`Client::session_state`].
    state: SessionState,
}

impl Client {
    /// Connects, reads the service content and logs in.
    pub async fn login(cfg: ClientConfig) -> Result<Client, Error> {
        let url = transport::sdk_url(&cfg.url)?;
        let transport = Transport::new(url, &cfg.trust, cfg.timeout)?;
        let si = ManagedObjectReference::new("ServiceInstance", "ServiceInstance");
        let req = Request::new("RetrieveServiceContent", &si);
        // The API version is not known before this call; any vim25 version answers it.
        let rv = call_with_retry(&transport, "urn:vim25/6.5", &req, cfg.retry).await?;
        let rv = returnval(req.method(), &rv)?;
        let service = ServiceContent::from_node(rv).map_err(|source| Error::Decode {
            method: req.method().into(),
            source,
        })?;
        let version = if service.about.api_version.is_empty() {
            "6.5".to_owned()
        } else {
            service.about.api_version.clone()
        };
        let client = Client {
            inner: Arc::new(Inner {
                transport,
                soap_action: format!("urn:vim25/{version}"),
                service,
                username: cfg.username,
                password: cfg.password,
                retry: cfg.retry,
                logged_out: AtomicBool::new(false),
                state: Mutex::new(HashMap::new()),
            }),
        };
        client.session_login().await?;
        debug!(
            endpoint = %client.inner.transport.sdk_url(),
            server = %client.inner.service.about.full_name,
            "logged in to vSphere"
        );
        Ok(client)
    }

    /// Ends the session. Later calls fail with [`Error::LoggedOut`].
    pub async fn logout(&self) -> Result<(), Error> {
        if self.inner.logged_out.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let Some(sm) = self.inner.service.session_manager.clone() else {
            return Ok(());
        };
        let req = Request::new("Logout", &sm);
        call_once(&self.inner.transport, &self.inner.soap_action, &req)
            .await
            .map(|_| ())
    }

    /// What the endpoint reported in `RetrieveServiceContent`.
    pub fn service_content(&self) -> &ServiceContent {
        &self.inner.service
    }

    /// HTTP round trips made by this session so far (SOAP calls and file transfers).
    pub fn round_trips(&self) -> u64 {
        self.inner.transport.round_trips()
    }

    /// The HTTPS layer of this session.
    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// The session's `T` for `key`, created on first use: how a layer above keeps what it learnt
    /// about an object (the esxcli handle of a host keeps its executer and CLI info here) for
    /// every handle made from any clone of this client, without the session knowing its type.
    pub(crate) fn session_state<T: Default + Send + Sync + 'static>(&self, key: &str) -> Arc<T> {
        let mut state = self
            .inner
            .state
            .lock()
            // The map only gains entries; a panic elsewhere cannot leave it inconsistent.
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = state
            .entry((TypeId::of::<T>(), key.to_owned()))
            .or_insert_with(|| Arc::new(T::default()));
        match Arc::clone(entry).downcast::<T>() {
            Ok(value) => value,
            // The key holds the TypeId of T, so the value is a T.
            Err(_) => unreachable!("session state of another type under the key of {key}"),
        }
    }

    pub(crate) async fn session_login(&self) -> Result<(), Error> {
        let sm = self
            .inner
            .service
            .session_manager
            .clone()
            .ok_or_else(|| Error::Protocol {
                method: "Login".into(),
                reason: "the service content has no sessionManager".into(),
            })?;
        let mut req = Request::new("Login", &sm);
        req.text("userName", &self.inner.username)
            .text("password", self.inner.password.expose());
        match call_with_retry(
            &self.inner.transport,
            &self.inner.soap_action,
            &req,
            self.inner.retry,
        )
        .await
        {
            Ok(_) => Ok(()),
            Err(Error::Fault { fault, .. }) if fault.kind == FaultKind::InvalidLogin => {
                Err(Error::InvalidLogin {
                    username: self.inner.username.clone(),
                    fault,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Sends any VIM request on this session (with retries and re-login) and returns the
    /// `<MethodResponse>` element: the escape hatch for methods this crate does not wrap.
    pub async fn invoke(&self, req: &Request) -> Result<Node, Error> {
        self.call(req).await
    }

    /// Sends one call: retries transient failures, logs in again once if the session expired.
    /// Returns the `<MethodResponse>` element.
    pub(crate) async fn call(&self, req: &Request) -> Result<Node, Error> {
        if self.inner.logged_out.load(Ordering::SeqCst) {
            return Err(Error::LoggedOut);
        }
        let inner = &self.inner;
        match call_with_retry(&inner.transport, &inner.soap_action, req, inner.retry).await {
            Err(e) if e.is_fault(FaultKind::NotAuthenticated) => {
                debug!(
                    method = req.method(),
                    "session not authenticated; logging in again"
                );
                self.session_login().await?;
                call_with_retry(&inner.transport, &inner.soap_action, req, inner.retry).await
            }
            other => other,
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.logged_out.swap(true, Ordering::SeqCst) {
            return;
        }
        let (Some(sm), Ok(handle)) = (
            self.service.session_manager.clone(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let transport = self.transport.clone();
        let action = self.soap_action.clone();
        handle.spawn(async move {
            let req = Request::new("Logout", &sm);
            if let Err(e) = call_once(&transport, &action, &req).await {
                debug!(error = %e, "logout on drop failed");
            }
        });
    }
}

async fn call_once(transport: &Transport, action: &str, req: &Request) -> Result<Node, Error> {
    let (status, body) = transport
        .post_soap(req.method(), action, req.envelope())
        .await?;
    soap::parse_response(req.method(), status, &body)
}

async fn call_with_retry(
    transport: &Transport,
    action: &str,
    req: &Request,
    policy: RetryPolicy,
) -> Result<Node, Error> {
    let mut attempt = 1;
    loop {
        match call_once(transport, action, req).await {
            Err(e) if attempt < policy.attempts && is_transient(&e, req.idempotent) => {
                let wait = policy.delay(attempt);
                warn!(method = req.method(), attempt, error = %e, ?wait, "transient vSphere failure; retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The `returnval` child of a response, or an error naming the method.
pub(crate) fn returnval<'a>(method: &str, response: &'a Node) -> Result<&'a Node, Error> {
    response.child("returnval").ok_or_else(|| Error::Protocol {
        method: method.to_owned(),
        reason: "response without returnval".into(),
    })
}
