//! The HTTP layer every REST vendor plugin shares: where the array is (`STORAGE_HOSTNAME` as host,
//! host:port or URL, completed with the vendor's default scheme, port and API path), how to trust
//! it (TLS verified unless `STORAGE_SKIP_SSL_VERIFICATION=true`, optional CA), how long to wait
//! (`STORAGE_HTTP_TIMEOUT_SECONDS`), how to authenticate (Basic, a fixed header, or a session
//! login that is renewed once when the array rejects it), bounded retry with backoff and jitter on
//! 429/503 and connection failures, percent-encoded paths and queries, logging that never carries
//! a credential, and an observer hook that sees every request (round-trip counting, contract tests).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::RwLock;
use url::Url;

use crate::error::StorageError;

pub use co_api::Secret;

/// Storage account credentials from the storage secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
    /// `STORAGE_TOKEN`; vendors that support tokens prefer it over username/password.
    pub token: Option<Secret>,
}

/// Default HTTP timeout when `STORAGE_HTTP_TIMEOUT_SECONDS` is not set.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything needed to reach and log in to one array, read from the storage secret/env.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// `STORAGE_HOSTNAME`: `host`, `host:port` or a URL (`https://host:port/path`).
    pub hostname: String,
    pub credentials: Credentials,
    /// `STORAGE_SKIP_SSL_VERIFICATION=true`: accept any certificate.
    pub skip_tls_verify: bool,
    /// `STORAGE_CA_CERT`: extra trusted CA certificates (PEM) for arrays with a private CA.
    pub ca_certificate_pem: Option<Vec<u8>>,
    /// `STORAGE_HTTP_TIMEOUT_SECONDS`: limit for one HTTP request, connection included.
    pub http_timeout: Duration,
    pub retry: RetryPolicy,
}

impl ConnectionSettings {
    /// Settings for `hostname` with `credentials`, verifying TLS, with the default timeout and
    /// retry policy. The populator's argument reader is the one place that reads them from flags
    /// and environment.
    pub fn new(hostname: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            hostname: hostname.into(),
            credentials,
            skip_tls_verify: false,
            ca_certificate_pem: None,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }
}

/// How a vendor completes a partial `STORAGE_HOSTNAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointDefaults {
    /// Scheme when none is given (always `https` for the nine vendors).
    pub scheme: &'static str,
    /// Port when none is given; `None` keeps the scheme's default.
    pub port: Option<u16>,
    /// API root appended when the given value has no path, e.g. `/api`.
    pub base_path: &'static str,
}

/// Builds the API base URL from `STORAGE_HOSTNAME` in any of its forms: `array`, `array:8443`,
/// `[fd00::1]:443`, `fd00::1`, `https://array`, `https://array:8443/api/rest/`.
/// A URL that carries a path keeps it (PowerStore users give `.../api/rest`); otherwise the
/// vendor's `base_path` is used.
pub fn base_url(hostname: &str, defaults: &EndpointDefaults) -> Result<Url, StorageError> {
    let text = hostname.trim();
    let bad = |why: &str| {
        StorageError::config(format!(
            "STORAGE_HOSTNAME={text:?} is not a host, host:port or URL ({why}); e.g. array.example.com, \
             array.example.com:8443 or https://array.example.com"
        ))
    };
    if text.is_empty() {
        return Err(bad("it is empty"));
    }
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else if text.matches(':').count() > 1 && !text.starts_with('[') {
        // A bare IPv6 address: brackets make it a URL host.
        format!("{}://[{text}]", defaults.scheme)
    } else {
        format!("{}://{text}", defaults.scheme)
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(bad("the scheme must be https or http"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not carry a query or fragment"));
    }
    if url.port().is_none()
        && !text.contains("://")
        && let Some(port) = defaults.port
    {
        url.set_port(Some(port))
            .map_err(|()| bad("cannot set the default port"))?;
    }
    let path = url.path().trim_end_matches('/').to_owned();
    if path.is_empty() {
        url.set_path(defaults.base_path.trim_end_matches('/'));
    } else {
        url.set_path(&path);
    }
    Ok(url)
}

/// Bounded retry with exponential backoff and full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per request, the first included (at least 1).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `attempt + 1`: a random value up to `initial * 2^(attempt-1)`,
    /// capped, or the server's `Retry-After` (capped the same way) when it sent one.
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_backoff);
        }
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let ceiling = exp.min(self.max_backoff);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(millis / 2..=millis.max(1)))
    }
}

/// A login that yields headers to send on every later request (session token, cookie-backed
/// session). The client calls it before the first request and once more when the array answers
/// with a status in [`SessionLogin::relogin_on`].
#[async_trait]
pub trait SessionLogin: Send + Sync {
    async fn login(&self, http: &HttpClient) -> Result<Vec<(HeaderName, Secret)>, StorageError>;

    /// Statuses that mean "session expired" (401 for most vendors; PowerStore uses 403).
    fn relogin_on(&self, status: StatusCode) -> bool {
        status == StatusCode::UNAUTHORIZED
    }
}

/// How requests authenticate.
#[derive(Clone)]
pub enum Auth {
    None,
    /// HTTP Basic on every request.
    Basic {
        username: String,
        password: Secret,
    },
    /// A fixed header, e.g. an API token.
    Header {
        name: HeaderName,
        value: Secret,
    },
    /// Vendor login producing session headers; see [`SessionLogin`].
    Session(Arc<dyn SessionLogin>),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Auth::Header { name, .. } => write!(f, "Header({name}: ***)"),
            Auth::Session(_) => f.write_str("Session"),
        }
    }
}

/// One request as seen by a [`RequestObserver`].
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedRequest {
    pub method: Method,
    /// Full URL path, e.g. `/api/protocols/san/igroups`.
    pub path: String,
    /// Decoded query pairs in order.
    pub query: Vec<(String, String)>,
    /// JSON body; for requests marked sensitive every string value is replaced by `***`.
    pub body: Option<serde_json::Value>,
    /// 1 for the first try, 2.. for retries.
    pub attempt: u32,
    /// Response status; `None` when no response arrived.
    pub status: Option<u16>,
}

/// Sees every request the client sends (after it completes or fails), for round-trip counting
/// and contract tests. Called inline: keep it cheap.
pub trait RequestObserver: Send + Sync {
    fn observe(&self, request: &ObservedRequest);
}

/// Extracts the human message from a vendor's error body (ONTAP: `error.message`).
pub type ErrorMessageFn = fn(&[u8]) -> Option<String>;

/// HTTP client bound to one array's API root.
pub struct HttpClient {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    retry: RetryPolicy,
    timeout: Duration,
    observer: Option<Arc<dyn RequestObserver>>,
    error_message: ErrorMessageFn,
    session: RwLock<Option<Vec<(HeaderName, Secret)>>>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("base", &self.base.as_str())
            .field("auth", &self.auth)
            .finish()
    }
}

/// Options beyond [`ConnectionSettings`] that a vendor fixes.
pub struct ClientOptions {
    pub defaults: EndpointDefaults,
    pub auth: Auth,
    pub observer: Option<Arc<dyn RequestObserver>>,
    pub error_message: ErrorMessageFn,
    /// Headers sent on every request (e.g. PowerMax `Application-Type`).
    pub default_headers: HeaderMap,
}

impl ClientOptions {
    pub fn new(defaults: EndpointDefaults, auth: Auth) -> Self {
        ClientOptions {
            defaults,
            auth,
            observer: None,
            error_message: |_| None,
            default_headers: HeaderMap::new(),
        }
    }
}

/// Makes sure rustls has its process-wide crypto provider (ring, the only backend in this
/// workspace) before reqwest builds a TLS config; a no-op when one is installed already.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing the race to another thread installing one is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl HttpClient {
    pub fn new(
        settings: &ConnectionSettings,
        options: ClientOptions,
    ) -> Result<Self, StorageError> {
        ensure_crypto_provider();
        let base = base_url(&settings.hostname, &options.defaults)?;
        let mut headers = options.default_headers;
        headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("copy-offload/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(settings.http_timeout)
            .connect_timeout(settings.http_timeout.min(Duration::from_secs(15)))
            .cookie_store(true)
            .tls_danger_accept_invalid_certs(settings.skip_tls_verify);
        if let Some(pem) = &settings.ca_certificate_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                StorageError::config(format!(
                    "the CA certificate for the storage array is not valid PEM: {e}"
                ))
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| {
            StorageError::config(format!(
                "cannot build the HTTP client for the storage array: {e}"
            ))
        })?;
        let retry = RetryPolicy {
            max_attempts: settings.retry.max_attempts.max(1),
            ..settings.retry
        };
        Ok(HttpClient {
            http,
            base,
            auth: options.auth,
            retry,
            timeout: settings.http_timeout,
            observer: options.observer,
            error_message: options.error_message,
            session: RwLock::new(None),
        })
    }

    /// The API root all request paths are relative to.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Starts a request to `<base>/<segments...>`; each segment is percent-encoded, so names
    /// with `/`, spaces or `?` stay one segment.
    pub fn request(&self, method: Method, segments: &[&str]) -> ApiRequest<'_> {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        ApiRequest {
            client: self,
            method,
            url,
            body: None,
            sensitive: false,
            secret_last_segment: false,
            headers: Vec::new(),
            use_auth: true,
        }
    }

    pub fn get(&self, segments: &[&str]) -> ApiRequest<'_> {
        self.request(Method::GET, segments)
    }

    pub fn post(&self, segments: &[&str]) -> ApiRequest<'_> {
        self.request(Method::POST, segments)
    }

    pub fn delete(&self, segments: &[&str]) -> ApiRequest<'_> {
        self.request(Method::DELETE, segments)
    }

    async fn session_headers(
        &self,
        renew: bool,
    ) -> Result<Vec<(HeaderName, Secret)>, StorageError> {
        let Auth::Session(login) = &self.auth else {
            return Ok(Vec::new());
        };
        if !renew && let Some(headers) = self.session.read().await.as_ref() {
            return Ok(headers.clone());
        }
        let mut slot = self.session.write().await;
        // Another request may have logged in while this one waited for the lock.
        if !renew && let Some(headers) = slot.as_ref() {
            return Ok(headers.clone());
        }
        let headers = login.login(self).await?;
        tracing::debug!(endpoint = %self.base, "storage session established");
        *slot = Some(headers.clone());
        Ok(headers)
    }

    fn endpoint(&self) -> String {
        self.base.to_string()
    }

    fn observe(&self, request: &ApiRequest<'_>, attempt: u32, status: Option<u16>) {
        if let Some(observer) = &self.observer {
            let body = request.body.as_ref().map(|b| {
                if request.sensitive {
                    redact(b)
                } else {
                    b.clone()
                }
            });
            observer.observe(&ObservedRequest {
                method: request.method.clone(),
                path: request.shown_path(),
                query: request
                    .url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
                body,
                attempt,
                status,
            });
        }
    }

    /// Adds the fingerprint of the certificate the array presents to a TLS error, read with a
    /// second handshake that checks nothing (it only names what was refused).
    async fn with_presented_certificate(&self, error: StorageError) -> StorageError {
        let StorageError::Tls { endpoint, detail } = error else {
            return error;
        };
        let Some(fingerprint) = self.presented_fingerprint().await else {
            return StorageError::Tls { endpoint, detail };
        };
        StorageError::Tls {
            endpoint,
            detail: format!(
                "{detail}; the array presents the certificate with SHA-256 fingerprint {fingerprint}"
            ),
        }
    }

    async fn presented_fingerprint(&self) -> Option<String> {
        let client = reqwest::Client::builder()
            .tls_backend_rustls()
            .tls_danger_accept_invalid_certs(true)
            .tls_info(true)
            .timeout(self.timeout)
            .build()
            .ok()?;
        let response = client.get(self.base.clone()).send().await.ok()?;
        let info = response.extensions().get::<reqwest::tls::TlsInfo>()?;
        let der = info.peer_certificate()?;
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        Some(
            digest
                .as_ref()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":"),
        )
    }

    fn transport_error(&self, error: &reqwest::Error) -> StorageError {
        if let Some(detail) = tls_failure(error) {
            return StorageError::Tls {
                endpoint: self.endpoint(),
                detail,
            };
        }
        let detail = if error.is_timeout() {
            "the request timed out".to_owned()
        } else {
            error_chain(error)
        };
        StorageError::Unreachable {
            endpoint: self.endpoint(),
            detail,
            timeout: self.timeout,
        }
    }
}

/// Replaces every string in a JSON value with `***`, keeping the structure and keys.
fn redact(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(_) => Value::String("***".into()),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), redact(v))).collect())
        }
        other => other.clone(),
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// The rustls failure behind a request error, if the handshake is what failed.
/// What is wrong with a refused certificate, in words (the array's side of the same rule the
/// vSphere client applies to vCenter's).
fn certificate_words(tls: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let words = match tls {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "its certificate is not signed by a CA this client trusts (self-signed, or a private CA)"
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "its certificate has expired"
        }
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "its certificate is not valid yet (check the clocks)"
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => "its certificate is not issued for this host name",
        rustls::Error::InvalidCertificate(C::Other(other))
            if other.to_string().contains("CaUsedAsEndEntity") =>
        {
            "it presents a CA certificate as its own (a CA certificate used as a server certificate)"
        }
        other => return words_for_text(&other.to_string()),
    };
    words.to_owned()
}

/// The same words for a TLS failure that reached us only as text (the connector flattened it).
fn words_for_text(text: &str) -> String {
    const RULES: [(&str, &str); 5] = [
        (
            "UnknownIssuer",
            "its certificate is not signed by a CA this client trusts (self-signed, or a private CA)",
        ),
        (
            "CaUsedAsEndEntity",
            "it presents a CA certificate as its own (a CA certificate used as a server certificate)",
        ),
        (
            "NotValidForName",
            "its certificate is not issued for this host name",
        ),
        (
            "NotValidYet",
            "its certificate is not valid yet (check the clocks)",
        ),
        ("Expired", "its certificate has expired"),
    ];
    RULES
        .iter()
        .find(|(marker, _)| text.contains(marker))
        .map_or_else(|| text.to_owned(), |(_, words)| (*words).to_owned())
}

fn tls_failure(error: &reqwest::Error) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = next {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(certificate_words(tls));
        }
        // io::Error hides its payload from `source()`; look inside.
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && let Some(tls) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(certificate_words(tls));
        }
        next = cause.source();
    }
    // The connector may flatten the rustls error into text; its Display still names it.
    // ASCII lowercasing keeps byte offsets, so a position in `lower` is one in `chain`.
    let chain = error_chain(error);
    let lower = chain.to_ascii_lowercase();
    ["invalid peer certificate", "certificate", "handshake"]
        .iter()
        .find_map(|marker| lower.find(marker))
        .map(|at| words_for_text(&chain[at..]))
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A request being built; see [`HttpClient::request`].
pub struct ApiRequest<'c> {
    client: &'c HttpClient,
    method: Method,
    url: Url,
    body: Option<serde_json::Value>,
    sensitive: bool,
    /// The last path segment is a secret (e.g. a session key in `DELETE /credentials/<key>`).
    secret_last_segment: bool,
    headers: Vec<(HeaderName, Secret)>,
    use_auth: bool,
}

impl ApiRequest<'_> {
    /// Appends `key=value` (form-encoded).
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.url.query_pairs_mut().append_pair(key, value);
        self
    }

    /// Sets a JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, StorageError> {
        let value = serde_json::to_value(body).map_err(|e| {
            StorageError::protocol(
                self.operation(),
                format!("cannot encode the request body: {e}"),
            )
        })?;
        self.body = Some(value);
        Ok(self)
    }

    /// The body carries credentials: observers see it redacted.
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// The path's last segment is a secret: logs, error messages and observers see `***` there.
    pub fn secret_last_segment(mut self) -> Self {
        self.secret_last_segment = true;
        self
    }

    /// The path as logs, messages and observers may show it.
    fn shown_path(&self) -> String {
        let path = self.url.path();
        match path.rsplit_once('/') {
            Some((parent, _)) if self.secret_last_segment => format!("{parent}/***"),
            _ => path.to_owned(),
        }
    }

    /// Adds a header whose value is never logged.
    pub fn header(mut self, name: HeaderName, value: Secret) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Skips the client's authentication (for login and version probes).
    pub fn without_auth(mut self) -> Self {
        self.use_auth = false;
        self
    }

    /// `METHOD /path` for messages.
    pub fn operation(&self) -> String {
        format!("{} {}", self.method, self.shown_path())
    }

    /// Sends the request with retries; returns the final response whatever its status, so the
    /// caller can treat e.g. 404 or 409 as an answer. Transport failures become errors.
    pub async fn send(self) -> Result<Reply, StorageError> {
        let client = self.client;
        let idempotent = matches!(
            self.method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE
        );
        let operation = self.operation();
        let body = match &self.body {
            Some(v) => Some(
                serde_json::to_vec(v)
                    .map_err(|e| StorageError::protocol(&operation, e.to_string()))?,
            ),
            None => None,
        };
        let mut renewed_session = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let session = if self.use_auth {
                client.session_headers(false).await?
            } else {
                Vec::new()
            };
            let mut request = client.http.request(self.method.clone(), self.url.clone());
            if self.use_auth {
                request = match &client.auth {
                    Auth::None | Auth::Session(_) => request,
                    Auth::Basic { username, password } => {
                        request.basic_auth(username, Some(password.expose()))
                    }
                    Auth::Header { name, value } => request.header(name.clone(), value.expose()),
                };
                for (name, value) in &session {
                    request = request.header(name.clone(), value.expose());
                }
            }
            for (name, value) in &self.headers {
                request = request.header(name.clone(), value.expose());
            }
            if let Some(bytes) = &body {
                request = request
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(bytes.clone());
            }
            let started = Instant::now();
            let result = request.send().await;
            match result {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let bytes = match response.bytes().await {
                        Ok(b) => b.to_vec(),
                        Err(e) => {
                            client.observe(&self, attempt, Some(status.as_u16()));
                            if idempotent && attempt < client.retry.max_attempts {
                                tokio::time::sleep(client.retry.delay(attempt, None)).await;
                                continue;
                            }
                            return Err(client.transport_error(&e));
                        }
                    };
                    client.observe(&self, attempt, Some(status.as_u16()));
                    tracing::debug!(
                        operation = %operation,
                        status = status.as_u16(),
                        attempt,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "storage API call"
                    );
                    if let Auth::Session(login) = &client.auth
                        && self.use_auth
                        && !renewed_session
                        && login.relogin_on(status)
                    {
                        renewed_session = true;
                        tracing::info!(
                            operation = %operation,
                            status = status.as_u16(),
                            "storage session rejected; logging in again"
                        );
                        client.session_headers(true).await?;
                        continue;
                    }
                    if matches!(
                        status,
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                    ) && attempt < client.retry.max_attempts
                    {
                        let delay = client.retry.delay(attempt, retry_after(&headers));
                        tracing::warn!(operation = %operation, status = status.as_u16(), attempt, delay_ms = delay.as_millis() as u64, "storage array busy; retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Ok(Reply {
                        operation,
                        endpoint: client.endpoint(),
                        status,
                        headers,
                        body: bytes,
                        attempts: attempt,
                        error_message: client.error_message,
                    });
                }
                Err(error) => {
                    client.observe(&self, attempt, None);
                    let is_tls = tls_failure(&error).is_some();
                    // A refused connection never reached the server, so any method may be retried;
                    // other failures (timeouts mid-request) only for idempotent methods.
                    let may_retry = !is_tls && (error.is_connect() || idempotent);
                    if may_retry && attempt < client.retry.max_attempts {
                        let delay = client.retry.delay(attempt, None);
                        tracing::warn!(operation = %operation, attempt, delay_ms = delay.as_millis() as u64, error = %error_chain(&error), "storage request failed; retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(client
                        .with_presented_certificate(client.transport_error(&error))
                        .await);
                }
            }
        }
    }

    /// Sends and decodes a 2xx JSON answer; any other status becomes an error.
    pub async fn send_json<T: DeserializeOwned>(self) -> Result<T, StorageError> {
        self.send().await?.success()?.json()
    }
}

/// A response whose body has been read.
#[derive(Debug)]
pub struct Reply {
    pub operation: String,
    endpoint: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// How many attempts it took.
    pub attempts: u32,
    error_message: ErrorMessageFn,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// Decodes the JSON body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, StorageError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            StorageError::protocol(
                &self.operation,
                format!("cannot decode the JSON answer (HTTP {}): {e}", self.status),
            )
        })
    }

    /// The vendor's error message, or the start of the body.
    pub fn message(&self) -> String {
        if let Some(message) = (self.error_message)(&self.body) {
            return message;
        }
        let text = String::from_utf8_lossy(&self.body);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return self
                .status
                .canonical_reason()
                .unwrap_or("no message")
                .to_owned();
        }
        trimmed.chars().take(512).collect()
    }

    /// `Ok(self)` for 2xx, else the matching [`StorageError`].
    pub fn success(self) -> Result<Self, StorageError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(self.error())
        }
    }

    /// The error this (non-2xx) reply stands for.
    pub fn error(&self) -> StorageError {
        let status = self.status.as_u16();
        match self.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => StorageError::AuthRefused {
                endpoint: self.endpoint.clone(),
                status,
            },
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                StorageError::Unavailable {
                    operation: self.operation.clone(),
                    status,
                    attempts: self.attempts,
                    message: self.message(),
                }
            }
            _ => StorageError::Rejected {
                operation: self.operation.clone(),
                status,
                message: self.message(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> EndpointDefaults {
        EndpointDefaults {
            scheme: "https",
            port: None,
            base_path: "/api",
        }
    }

    #[test]
    fn hostname_forms_all_become_a_base_url() {
        let cases = [
            ("array.example.com", "https://array.example.com/api"),
            (
                "array.example.com:8443",
                "https://array.example.com:8443/api",
            ),
            ("10.0.0.5", "https://10.0.0.5/api"),
            ("https://array.example.com", "https://array.example.com/api"),
            (
                "https://array.example.com/",
                "https://array.example.com/api",
            ),
            (
                "https://array.example.com:8443/api/rest/",
                "https://array.example.com:8443/api/rest",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/api"),
            ("[fd00::1]:443", "https://[fd00::1]/api"),
            ("[fd00::1]:8443", "https://[fd00::1]:8443/api"),
            ("fd00::1", "https://[fd00::1]/api"),
            ("  array  ", "https://array/api"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                base_url(input, &defaults()).unwrap().as_str(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn vendor_default_port_applies_only_to_bare_hosts() {
        let d = EndpointDefaults {
            scheme: "https",
            port: Some(7443),
            base_path: "/rest/v1",
        };
        assert_eq!(
            base_url("svc", &d).unwrap().as_str(),
            "https://svc:7443/rest/v1"
        );
        assert_eq!(
            base_url("svc:9443", &d).unwrap().as_str(),
            "https://svc:9443/rest/v1"
        );
        assert_eq!(
            base_url("https://svc", &d).unwrap().as_str(),
            "https://svc/rest/v1"
        );
    }

    #[test]
    fn bad_hostnames_are_config_errors_that_show_examples() {
        for bad in ["", "ftp://array", "https://", "https://a/?x=1", "a b"] {
            let err = base_url(bad, &defaults()).unwrap_err();
            assert!(matches!(err, StorageError::Config { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("STORAGE_HOSTNAME"), "{bad}: {err}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let creds = Credentials {
            username: "admin".into(),
            password: Secret::new("hunter2"),
            token: None,
        };
        assert!(!format!("{creds:?}").contains("hunter2"));
        let auth = Auth::Basic {
            username: "admin".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }

    #[test]
    fn redaction_keeps_keys_and_hides_strings() {
        let body = serde_json::json!({"user": "admin", "password": "hunter2", "n": 1, "list": [{"k": "v"}]});
        assert_eq!(
            redact(&body),
            serde_json::json!({"user": "***", "password": "***", "n": 1, "list": [{"k": "***"}]})
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let p = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let d1 = p.delay(1, None);
            assert!(
                d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
                "{d1:?}"
            );
            let d10 = p.delay(10, None);
            assert!(
                d10 >= Duration::from_millis(500) && d10 <= Duration::from_millis(1000),
                "{d10:?}"
            );
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(30))),
            Duration::from_millis(1000)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_millis(200))),
            Duration::from_millis(200)
        );
    }
}
