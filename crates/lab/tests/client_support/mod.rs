//! What the vendor-client conformance tests share: a facade served over HTTPS with a throw-away
//! self-signed certificate (the vendors' libraries speak only HTTPS), and a vendor script run by
//! the library's pinned interpreter, its JSON answer parsed.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// Serves `router` over HTTPS on an ephemeral loopback port; returns the port.
pub async fn serve_https(router: axum::Router) -> u16 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(
        certified.cert.pem().into_bytes(),
        certified.signing_key.serialize_pem().into_bytes(),
    )
    .await
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = axum_server::tls_rustls::from_tcp_rustls(listener, config).unwrap();
    tokio::spawn(async move { server.serve(router.into_make_service()).await.unwrap() });
    port
}

/// The interpreter of `client`'s venv; a missing one fails the test with the install command.
pub fn python(client: co_testpeers::VendorClient) -> PathBuf {
    client
        .python()
        .unwrap_or_else(|e| panic!("the vendor's client library is required for this test: {e:#}"))
}

/// Runs `tests/vendor_clients/<script>` with `python`, the environment `env` and the arguments
/// `args`, off the async runtime (the facade answers it); the script's stdout parsed as JSON.
pub async fn run_script(
    python: PathBuf,
    script: &str,
    env: Vec<(&'static str, String)>,
    args: Vec<String>,
) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vendor_clients")
        .join(script);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(path)
            .args(args)
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed:\n{stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}
