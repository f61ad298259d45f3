//! Test peers for co-storage: axum servers on 127.0.0.1 (plain or TLS with an rcgen certificate)
//! a request recorder plugged into the HTTP layer's observer hook, and injected faults in front of
//! a facade (`faults`).

pub mod faults;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use co_storage::http::{
    ConnectionSettings, Credentials, ObservedRequest, RequestObserver, RetryPolicy, Secret,
};

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Serves `router` over plain HTTP on an ephemeral loopback port.
pub async fn serve_http(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A self-signed certificate for 127.0.0.1/localhost: (cert PEM, key PEM).
pub fn self_signed() -> (String, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

/// Serves `router` over HTTPS with the given certificate on an ephemeral loopback port.
pub async fn serve_https(router: Router, cert_pem: &str, key_pem: &str) -> SocketAddr {
    install_crypto();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(
        cert_pem.as_bytes().to_vec(),
        key_pem.as_bytes().to_vec(),
    )
    .await
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = axum_server::tls_rustls::from_tcp_rustls(listener, config).unwrap();
    tokio::spawn(async move { server.serve(router.into_make_service()).await.unwrap() });
    addr
}

/// Settings for a loopback peer with fast retries.
pub fn settings(hostname: String) -> ConnectionSettings {
    ConnectionSettings {
        hostname,
        credentials: Credentials {
            username: "admin".into(),
            password: Secret::new("s3cr3t-pw"),
            token: None,
        },
        skip_tls_verify: false,
        ca_certificate_pem: None,
        http_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        },
    }
}

/// Connects with `connect` to an address where nothing listens — it gets [`settings`] for
/// `127.0.0.1:<port>` and that closed port — and checks the failure: fast (no waiting out a
/// timeout), `Unreachable`, retryable, and naming `STORAGE_HOSTNAME`, the key to check.
pub async fn assert_unreachable_fails_fast<T, Fut>(
    connect: impl FnOnce(ConnectionSettings, u16) -> Fut,
) where
    Fut: std::future::Future<Output = Result<T, co_storage::StorageError>>,
{
    let refusing = co_testpeers::RefusingPort::bind();
    let port = refusing.port();
    let mut s = settings(format!("127.0.0.1:{port}"));
    s.http_timeout = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let Err(err) = connect(s, port).await else {
        panic!("connected to 127.0.0.1:{port}, where nothing listens");
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, co_storage::StorageError::Unreachable { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("STORAGE_HOSTNAME"), "{err}");
    assert_eq!(err.class(), co_storage::ErrorClass::Retryable);
}

/// The login failures every plugin words the same way, each tried with `connect` on a copy of
/// `settings` (which must log in): a wrong password is refused with the array's `auth_status`, is
/// permanent and names `STORAGE_PASSWORD`; no user name names `STORAGE_USERNAME`; without the
/// array's CA certificate its self-signed one fails TLS. Answers that TLS error, for what a vendor
/// adds to it.
pub async fn assert_login_failures_say_what_to_fix<T, Fut>(
    settings: &ConnectionSettings,
    auth_status: u16,
    connect: impl Fn(ConnectionSettings) -> Fut,
) -> co_storage::StorageError
where
    Fut: std::future::Future<Output = Result<T, co_storage::StorageError>>,
{
    use co_storage::StorageError;
    let refused = |changed: ConnectionSettings| async {
        match connect(changed).await {
            Ok(_) => panic!("connected with settings that must be refused"),
            Err(err) => err,
        }
    };

    let mut wrong = settings.clone();
    wrong.credentials.password = Secret::new("nope");
    let err = refused(wrong).await;
    assert!(
        matches!(err, StorageError::AuthRefused { status, .. } if status == auth_status),
        "wrong password, expected a {auth_status} refusal: {err}"
    );
    assert!(err.to_string().contains("STORAGE_PASSWORD"), "{err}");
    assert_eq!(err.class(), co_storage::ErrorClass::Permanent);

    let mut no_user = settings.clone();
    no_user.credentials.username = String::new();
    let err = refused(no_user).await;
    assert!(err.to_string().contains("STORAGE_USERNAME"), "{err}");

    let mut untrusted = settings.clone();
    untrusted.ca_certificate_pem = None;
    let err = refused(untrusted).await;
    assert!(matches!(err, StorageError::Tls { .. }), "{err}");
    err
}

/// Busy answers, against a plugin whose settings allow 4 attempts: a 503 then a 429 on
/// `resolve_path` are retried and `pv` resolves; four 503s on `mappings_path` exhaust the attempts
/// with a retryable `Unavailable` that quotes what the array said; the next call goes through and
/// finds the volume's one mapping. Answers that error, for what a vendor adds to it.
pub async fn assert_busy_answers_retried_a_bounded_number_of_times(
    array: &dyn co_storage::StorageApi,
    faults: &faults::Faults,
    pv: &co_storage::PersistentVolumeRef,
    resolve_path: &str,
    mappings_path: &str,
) -> co_storage::StorageError {
    faults.push(resolve_path, 503);
    faults.push(resolve_path, 429);
    let volume = array.resolve_volume(pv).await.unwrap();
    assert_eq!(faults.pending(), 0, "both busy answers were served");

    for _ in 0..4 {
        faults.push(mappings_path, 503);
    }
    let err = array.current_mappings(&volume).await.unwrap_err();
    assert!(
        matches!(
            err,
            co_storage::StorageError::Unavailable {
                status: 503,
                attempts: 4,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.class(), co_storage::ErrorClass::Retryable);
    assert_eq!(array.current_mappings(&volume).await.unwrap().len(), 1);
    err
}

/// One vendor's lab facade over a fresh SAN holding one array, served over HTTPS on loopback with
/// injected faults in front; each vendor's test file adds what it needs of the facade.
pub struct FacadeLab<F> {
    pub san: co_lab::san::San,
    pub facade: F,
    pub faults: faults::Faults,
    /// `127.0.0.1:<port>`, as `STORAGE_HOSTNAME` gives it.
    pub hostname: String,
    /// The user the facade accepts (with [`settings`]' password).
    pub username: String,
    /// The facade's self-signed certificate, the CA the plugin is told to trust.
    pub ca_pem: String,
    _dir: tempfile::TempDir,
}

impl<F> FacadeLab<F> {
    /// Adds `array` of `vendor` to a new SAN, builds the facade with `make` (given the SAN, the
    /// user name and the password to accept; it may set up the array further), and serves
    /// `router(&facade)` behind faults answered with `fault_response`.
    pub async fn serve(
        (array, vendor, username): (&str, co_lab::san::ArrayVendor, &str),
        fault_response: fn(u16) -> axum::response::Response,
        make: impl FnOnce(co_lab::san::San, &str, &str) -> F,
        router: impl FnOnce(&F) -> Router,
    ) -> FacadeLab<F> {
        let dir = tempfile::tempdir().unwrap();
        let san = co_lab::san::San::new(dir.path());
        san.add_array(array, vendor).unwrap();
        let password = settings(String::new()).credentials.password;
        let facade = make(san.clone(), username, password.expose());
        let faults = faults::Faults::new(fault_response);
        let (cert, key) = self_signed();
        let addr = serve_https(faults.clone().layer(router(&facade)), &cert, &key).await;
        FacadeLab {
            san,
            facade,
            faults,
            hostname: format!("127.0.0.1:{}", addr.port()),
            username: username.to_owned(),
            ca_pem: cert,
            _dir: dir,
        }
    }

    /// Connection settings that reach the facade, log in and trust its certificate.
    pub fn settings(&self) -> ConnectionSettings {
        let mut s = settings(self.hostname.clone());
        s.credentials.username.clone_from(&self.username);
        s.ca_certificate_pem = Some(self.ca_pem.clone().into_bytes());
        s
    }
}

/// Maps `volume` to `group` twice — the second answers the LUN of the first — and checks that each
/// of `initiators` then sees exactly that LUN, by the volume's NAA.
pub async fn map_twice_and_see_one_lun(
    array: &dyn co_storage::StorageApi,
    san: &co_lab::san::San,
    volume: &co_storage::Volume,
    group: &co_storage::InitiatorGroup,
    initiators: &[&str],
) -> co_storage::Mapping {
    let mapping = array.map(volume, group).await.unwrap();
    assert_eq!(mapping.naa, volume.naa);
    let remapped = array.map(volume, group).await.unwrap();
    assert_eq!(
        remapped.lun_id, mapping.lun_id,
        "mapping twice returns the existing LUN"
    );
    for initiator in initiators {
        let visible = san.visible_luns(&[(*initiator).to_owned()]);
        assert_eq!(visible.len(), 1, "{initiator} sees {visible:?}");
        assert_eq!(visible[0].naa, volume.naa.as_str(), "{initiator}");
        assert_eq!(Some(visible[0].lun_id), mapping.lun_id, "{initiator}");
    }
    mapping
}

/// Unmaps `volume` from `group` twice — the second finds nothing to do — and checks that
/// `initiator` sees no LUN any more.
pub async fn unmap_twice_and_see_none(
    array: &dyn co_storage::StorageApi,
    san: &co_lab::san::San,
    volume: &co_storage::Volume,
    group: &co_storage::InitiatorGroup,
    initiator: &str,
) {
    array.unmap(volume, group).await.unwrap();
    array.unmap(volume, group).await.unwrap();
    assert!(san.visible_luns(&[initiator.to_owned()]).is_empty());
}

/// Records every request the client sends.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<ObservedRequest>>);

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Recorder::default())
    }

    pub fn requests(&self) -> Vec<ObservedRequest> {
        self.0.lock().unwrap().clone()
    }

    /// Each request as `"<METHOD> <path>"` with the status it got, in order.
    pub fn statuses(&self) -> Vec<(String, Option<u16>)> {
        self.requests()
            .iter()
            .map(|r| (format!("{} {}", r.method, r.path), r.status))
            .collect()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

impl RequestObserver for Recorder {
    fn observe(&self, request: &ObservedRequest) {
        self.0.lock().unwrap().push(request.clone());
    }
}

/// What every array-side copy must do once its first copy of `session` has finished: a re-run (the
/// journal replaying the copy) adopts the finished objects instead of doubling them, `end` removes
/// them and may be called again, and a target of another size (`small`) is refused — saying so —
/// before anything is created. `objects` counts the copy's objects on the array.
pub async fn assert_copy_replays_ends_and_checks_sizes(
    copier: &dyn co_storage::ArrayCopy,
    session: &co_storage::ArrayCopySession,
    small: &co_storage::Volume,
    objects: impl Fn() -> usize,
) {
    copier.copy(session, &|_| {}).await.unwrap();
    assert_eq!(objects(), 1, "a re-run adopts the finished copy");
    copier.end(session).await.unwrap();
    assert_eq!(objects(), 0, "end removes the copy's objects");
    copier.end(session).await.unwrap();

    let err = copier
        .copy(&copier.session(&session.source, small), &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("same size"), "{err}");
    assert_eq!(objects(), 0, "refused before anything is created");
}
