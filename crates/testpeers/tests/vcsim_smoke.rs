//! Smoke test: the Rust side reaches vcsim over verified TLS and logs in with raw SOAP.

use std::sync::Arc;

use co_testpeers::Vcsim;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use sha2::{Digest, Sha256};

fn soap(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"#
    )
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The text of the first `<tag …>…</tag>` element.
fn element_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = xml.find(&format!("<{tag}"))?;
    let start = open + xml[open..].find('>')? + 1;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..end])
}

/// A client that trusts only the given PEM certificate (and no public roots).
fn client_trusting(ca_pem: &str) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .cookie_store(true)
        .build()
        .unwrap()
}

async fn call(
    client: &reqwest::Client,
    vcsim: &Vcsim,
    body: &str,
) -> (reqwest::StatusCode, String) {
    let response = client
        .post(&vcsim.url)
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", "urn:vim25/7.0")
        .body(soap(body))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn session_manager(client: &reqwest::Client, vcsim: &Vcsim) -> (String, String) {
    let (status, body) = call(
        client,
        vcsim,
        r#"<RetrieveServiceContent xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></RetrieveServiceContent>"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let session_manager = element_text(&body, "sessionManager")
        .expect("sessionManager in ServiceContent")
        .to_owned();
    let api_type = element_text(&body, "apiType")
        .expect("about.apiType in ServiceContent")
        .to_owned();
    (session_manager, api_type)
}

fn login_body(session_manager: &str, user: &str, password: &str) -> String {
    format!(
        r#"<Login xmlns="urn:vim25"><_this type="SessionManager">{}</_this><userName>{}</userName><password>{}</password></Login>"#,
        xml_escape(session_manager),
        xml_escape(user),
        xml_escape(password)
    )
}

fn current_session_body(session_manager: &str) -> String {
    format!(
        r#"<RetrievePropertiesEx xmlns="urn:vim25"><_this type="PropertyCollector">propertyCollector</_this><specSet><propSet><type>SessionManager</type><pathSet>currentSession</pathSet></propSet><objectSet><obj type="SessionManager">{}</obj></objectSet></specSet><options></options></RetrievePropertiesEx>"#,
        xml_escape(session_manager)
    )
}

#[tokio::test]
async fn login_over_verified_tls_opens_a_session() {
    let vcsim = Vcsim::start().unwrap();
    assert!(
        vcsim.url.starts_with("https://127.0.0.1:") && vcsim.url.ends_with("/sdk"),
        "{}",
        vcsim.url
    );
    let client = client_trusting(&vcsim.ca_pem);

    let (session_manager, api_type) = session_manager(&client, &vcsim).await;
    assert_eq!(api_type, "VirtualCenter");

    let (status, body) = call(
        &client,
        &vcsim,
        &login_body(&session_manager, &vcsim.username, &vcsim.password),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        element_text(&body, "userName"),
        Some(vcsim.username.as_str()),
        "{body}"
    );

    // The session cookie from Login authenticates the next call.
    let (status, body) = call(&client, &vcsim, &current_session_body(&session_manager)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        element_text(&body, "userName"),
        Some(vcsim.username.as_str()),
        "{body}"
    );
}

#[tokio::test]
async fn wrong_password_is_an_invalid_login_fault_and_opens_no_session() {
    let vcsim = Vcsim::start().unwrap();
    let client = client_trusting(&vcsim.ca_pem);
    let (session_manager, _) = session_manager(&client, &vcsim).await;

    let (status, body) = call(
        &client,
        &vcsim,
        &login_body(&session_manager, &vcsim.username, "wrong"),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("InvalidLogin"), "{body}");

    // Without a session the property is reported missing with a NotAuthenticated fault.
    let (_, body) = call(&client, &vcsim, &current_session_body(&session_manager)).await;
    assert!(body.contains("NotAuthenticated"), "{body}");
    assert_eq!(element_text(&body, "userName"), None, "{body}");
}

#[tokio::test]
async fn the_certificate_is_verified_and_its_thumbprint_published() {
    let vcsim = Vcsim::start().unwrap();
    let other = Vcsim::start().unwrap();
    assert_ne!(
        vcsim.ca_pem, other.ca_pem,
        "each instance has its own certificate"
    );

    // Trusting another instance's certificate must fail the handshake.
    let wrong_trust = client_trusting(&other.ca_pem);
    let err = wrong_trust
        .get(vcsim.url.replace("/sdk", "/about"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");

    let der = CertificateDer::from_pem_slice(vcsim.ca_pem.as_bytes()).unwrap();
    let expected: Vec<String> = Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(vcsim.thumbprint_sha256, expected.join(":"));
}

#[tokio::test]
async fn extra_flags_select_the_esx_model_and_drop_stops_the_server() {
    let vcsim = Vcsim::start_with(&["-esx", "-method-delay", "Login:1"]).unwrap();
    let client = client_trusting(&vcsim.ca_pem);
    let (_, api_type) = session_manager(&client, &vcsim).await;
    assert_eq!(api_type, "HostAgent");

    let authority = vcsim.authority().to_owned();
    drop(vcsim);
    assert!(
        std::net::TcpStream::connect(&authority).is_err(),
        "vcsim still listening on {authority}"
    );
}

#[test]
fn unknown_flags_fail_start_with_vcsims_own_message() {
    let err = Vcsim::start_with(&["-no-such-flag"]).unwrap_err();
    assert!(format!("{err:#}").contains("no-such-flag"), "{err:#}");
}

#[test]
fn vcsim_exits_when_its_parent_closes_stdin() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let mut child = Command::new(co_testpeers::vcsim_binary().unwrap())
        .args(["-l", "127.0.0.1:0", "-exit-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "vcsim still running after stdin closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
