//! The shared HTTP layer against real HTTP(S) servers on loopback: bounded retry on 429/503 and on
//! refused connections, no retry of a timed-out POST, TLS verification (refused, trusted CA,
//! skipped), Basic auth, session login renewed once on 401, percent-encoding of paths and queries,
//! error classes, and that neither logs nor observers ever see a credential.

use crate::support;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use co_storage::http::{Auth, ClientOptions, EndpointDefaults, HttpClient, Secret, SessionLogin};
use co_storage::{ErrorClass, StorageError};
use http::HeaderName;
use support::{Recorder, serve_http, serve_https, settings};

const DEFAULTS: EndpointDefaults = EndpointDefaults {
    scheme: "https",
    port: None,
    base_path: "/api",
};

fn basic() -> Auth {
    Auth::Basic {
        username: "admin".into(),
        password: Secret::new("s3cr3t-pw"),
    }
}

fn client_for(hostname: String, auth: Auth, recorder: Option<Arc<Recorder>>) -> HttpClient {
    let mut options = ClientOptions::new(DEFAULTS, auth);
    options.observer = recorder.map(|r| r as _);
    HttpClient::new(&settings(hostname), options).unwrap()
}

#[derive(Clone)]
struct Flaky {
    calls: Arc<AtomicUsize>,
    failures: usize,
    status: StatusCode,
}

/// GET answers `fail_with` for the first `failures` calls, then 200; POST always answers 503.
fn flaky(failures: usize, fail_with: StatusCode) -> (Router, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route(
            "/api/thing",
            get(|State(s): State<Flaky>| async move {
                let n = s.calls.fetch_add(1, Ordering::SeqCst);
                if n < s.failures {
                    (s.status, "busy".to_owned())
                } else {
                    (StatusCode::OK, r#"{"ok":true}"#.to_owned())
                }
            })
            .post(|State(s): State<Flaky>| async move {
                s.calls.fetch_add(1, Ordering::SeqCst);
                (StatusCode::SERVICE_UNAVAILABLE, "busy".to_owned())
            }),
        )
        .with_state(Flaky {
            calls: calls.clone(),
            failures,
            status: fail_with,
        });
    (router, calls)
}

#[tokio::test]
async fn retries_503_until_the_array_recovers() {
    let (router, calls) = flaky(2, StatusCode::SERVICE_UNAVAILABLE);
    let addr = serve_http(router).await;
    let recorder = Recorder::new();
    let client = client_for(format!("http://{addr}"), basic(), Some(recorder.clone()));

    let reply = client.get(&["thing"]).send().await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.attempts, 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let statuses: Vec<_> = recorder
        .requests()
        .iter()
        .map(|r| (r.attempt, r.status))
        .collect();
    assert_eq!(
        statuses,
        vec![(1, Some(503)), (2, Some(503)), (3, Some(200))]
    );
}

#[tokio::test]
async fn retry_is_bounded_and_ends_in_a_retryable_error() {
    let (router, calls) = flaky(usize::MAX, StatusCode::TOO_MANY_REQUESTS);
    let addr = serve_http(router).await;
    let client = client_for(format!("http://{addr}"), basic(), None);

    let err = client
        .get(&["thing"])
        .send_json::<serde_json::Value>()
        .await
        .unwrap_err();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "max_attempts in support::settings"
    );
    assert!(
        matches!(
            err,
            StorageError::Unavailable {
                status: 429,
                attempts: 4,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Retryable);
}

#[tokio::test]
async fn a_post_that_got_503_is_retried_because_the_array_did_not_process_it() {
    let (router, calls) = flaky(0, StatusCode::OK);
    let addr = serve_http(router).await;
    let client = client_for(format!("http://{addr}"), basic(), None);
    let reply = client
        .post(&["thing"])
        .json(&serde_json::json!({"a": 1}))
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_timed_out_post_is_not_repeated_but_a_timed_out_get_is() {
    let calls = Arc::new(AtomicUsize::new(0));
    let slow = |calls: Arc<AtomicUsize>| async move {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late"
    };
    let router = Router::new().route(
        "/api/slow",
        get({
            let calls = calls.clone();
            move || slow(calls.clone())
        })
        .post({
            let calls = calls.clone();
            move || slow(calls.clone())
        }),
    );
    let addr = serve_http(router).await;
    let mut s = settings(format!("http://{addr}"));
    s.http_timeout = Duration::from_millis(200);
    let client = HttpClient::new(&s, ClientOptions::new(DEFAULTS, basic())).unwrap();

    let err = client
        .post(&["slow"])
        .json(&serde_json::json!({}))
        .unwrap()
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unreachable { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a POST may have been applied: never resend it"
    );

    calls.store(0, Ordering::SeqCst);
    client.get(&["slow"]).send().await.unwrap_err();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "GET is idempotent: retried up to max_attempts"
    );
}

#[tokio::test]
async fn refused_connections_are_retried_then_reported_as_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let recorder = Recorder::new();
    let client = client_for(
        format!("http://127.0.0.1:{port}"),
        basic(),
        Some(recorder.clone()),
    );
    let err = client.post(&["thing"]).send().await.unwrap_err();
    assert!(matches!(err, StorageError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("STORAGE_HOSTNAME"), "{err}");
    assert_eq!(
        recorder.requests().len(),
        4,
        "connection never made: safe to retry even a POST"
    );
    assert!(recorder.requests().iter().all(|r| r.status.is_none()));
}

#[tokio::test]
async fn refused_credentials_are_permanent() {
    let router = Router::new().route(
        "/api/thing",
        get(|| async { (StatusCode::UNAUTHORIZED, "no") }),
    );
    let addr = serve_http(router).await;
    let client = client_for(format!("http://{addr}"), basic(), None);
    let err = client
        .get(&["thing"])
        .send_json::<serde_json::Value>()
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::AuthRefused { status: 401, .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Permanent);
}

#[tokio::test]
async fn rejected_requests_carry_the_arrays_message_and_are_permanent() {
    let router = Router::new().route(
        "/api/thing",
        get(|| async { (StatusCode::BAD_REQUEST, "field \"x\" is invalid") }),
    );
    let addr = serve_http(router).await;
    let client = client_for(format!("http://{addr}"), basic(), None);
    let err = client
        .get(&["thing"])
        .send_json::<serde_json::Value>()
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Rejected { status: 400, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("field \"x\" is invalid"), "{err}");
    assert_eq!(err.class(), ErrorClass::Permanent);
}

async fn echo(
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> axum::Json<serde_json::Value> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    axum::Json(serde_json::json!({
        "segment": name,
        "query": pairs,
        "authorization": headers.get("authorization").map(|v| v.to_str().unwrap().to_owned()),
    }))
}

#[tokio::test]
async fn path_segments_and_query_values_are_encoded() {
    let router = Router::new().route("/api/items/{name}", get(echo));
    let addr = serve_http(router).await;
    let recorder = Recorder::new();
    let client = client_for(format!("http://{addr}"), basic(), Some(recorder.clone()));

    let seen: serde_json::Value = client
        .get(&["items", "a b/c?d"])
        .query("name", "/vol/x y/lun0")
        .query("filter", "serial='A&B'")
        .send_json()
        .await
        .unwrap();
    assert_eq!(seen["segment"], "a b/c?d");
    assert_eq!(
        seen["query"],
        serde_json::json!([["name", "/vol/x y/lun0"], ["filter", "serial='A&B'"]])
    );
    let expected_basic = format!("Basic {}", "YWRtaW46czNjcjN0LXB3"); // admin:s3cr3t-pw
    assert_eq!(seen["authorization"], expected_basic);
    let observed = &recorder.requests()[0];
    assert_eq!(observed.path, "/api/items/a%20b%2Fc%3Fd");
    assert_eq!(
        observed.query[0],
        ("name".to_owned(), "/vol/x y/lun0".to_owned())
    );
}

/// Session login: tokens are valid for one request only, forcing a renewal on the second call.
struct OneShotLogin {
    logins: Arc<AtomicUsize>,
}

#[async_trait]
impl SessionLogin for OneShotLogin {
    async fn login(&self, http: &HttpClient) -> Result<Vec<(HeaderName, Secret)>, StorageError> {
        self.logins.fetch_add(1, Ordering::SeqCst);
        let reply = http
            .post(&["login"])
            .without_auth()
            .sensitive()
            .json(&serde_json::json!({"user": "admin", "password": "s3cr3t-pw"}))?
            .send()
            .await?
            .success()?;
        let token = reply
            .headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Ok(vec![(
            HeaderName::from_static("x-auth-token"),
            Secret::new(token),
        )])
    }
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_and_the_request_repeated() {
    #[derive(Clone, Default)]
    struct Tokens(Arc<Mutex<Vec<String>>>);
    let tokens = Tokens::default();
    let router = Router::new()
        .route(
            "/api/login",
            post(|State(tokens): State<Tokens>, body: String| async move {
                assert!(body.contains("s3cr3t-pw"));
                let mut t = tokens.0.lock().unwrap();
                let token = format!("tok-{}", t.len());
                t.push(token.clone());
                (StatusCode::OK, [("x-auth-token", token)], "{}")
            }),
        )
        .route(
            "/api/thing",
            get(
                |State(tokens): State<Tokens>, headers: HeaderMap| async move {
                    let presented = headers
                        .get("x-auth-token")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let mut t = tokens.0.lock().unwrap();
                    match t.iter().position(|x| *x == presented) {
                        Some(i) => {
                            t[i] = "spent".into();
                            (StatusCode::OK, "{}")
                        }
                        None => (StatusCode::UNAUTHORIZED, "expired"),
                    }
                },
            ),
        )
        .with_state(tokens.clone());
    let addr = serve_http(router).await;
    let logins = Arc::new(AtomicUsize::new(0));
    let recorder = Recorder::new();
    let client = client_for(
        format!("http://{addr}"),
        Auth::Session(Arc::new(OneShotLogin {
            logins: logins.clone(),
        })),
        Some(recorder.clone()),
    );

    client
        .get(&["thing"])
        .send()
        .await
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(logins.load(Ordering::SeqCst), 1);
    client
        .get(&["thing"])
        .send()
        .await
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(
        logins.load(Ordering::SeqCst),
        2,
        "401 triggers exactly one new login"
    );

    let login_bodies: Vec<_> = recorder
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/login")
        .filter_map(|r| r.body)
        .collect();
    assert_eq!(login_bodies.len(), 2);
    for body in login_bodies {
        assert_eq!(
            body,
            serde_json::json!({"user": "***", "password": "***"}),
            "observers see credentials redacted"
        );
    }
}

#[tokio::test]
async fn tls_is_verified_unless_skipped_and_a_given_ca_is_trusted() {
    let (cert, key) = support::self_signed();
    let router = Router::new().route("/api/thing", get(|| async { "{}" }));
    let addr = serve_https(router, &cert, &key).await;
    let host = format!("127.0.0.1:{}", addr.port());

    let strict = HttpClient::new(
        &settings(host.clone()),
        ClientOptions::new(DEFAULTS, basic()),
    )
    .unwrap();
    let err = strict.get(&["thing"]).send().await.unwrap_err();
    assert!(matches!(err, StorageError::Tls { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(
        err.to_string()
            .contains("STORAGE_SKIP_SSL_VERIFICATION=true"),
        "{err}"
    );

    let mut with_ca = settings(host.clone());
    with_ca.ca_certificate_pem = Some(cert.into_bytes());
    let trusted = HttpClient::new(&with_ca, ClientOptions::new(DEFAULTS, basic())).unwrap();
    assert!(trusted.get(&["thing"]).send().await.unwrap().is_success());

    let mut skip = settings(host);
    skip.skip_tls_verify = true;
    let insecure = HttpClient::new(&skip, ClientOptions::new(DEFAULTS, basic())).unwrap();
    assert!(insecure.get(&["thing"]).send().await.unwrap().is_success());
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_never_contain_credentials() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (router, _) = flaky(1, StatusCode::SERVICE_UNAVAILABLE);
    let addr = serve_http(router).await;
    let client = client_for(format!("http://{addr}"), basic(), None);
    client.get(&["thing"]).send().await.unwrap();
    tracing::debug!(client = ?client, "client state");

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("storage API call"),
        "debug logs were captured: {text}"
    );
    assert!(text.contains("retrying"), "{text}");
    assert!(!text.contains("s3cr3t-pw"), "{text}");
    assert!(
        !text.contains("YWRtaW46czNjcjN0LXB3"),
        "no Authorization value: {text}"
    );
}
