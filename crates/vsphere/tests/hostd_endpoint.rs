//! esxcli over the API and property-collector continuation against a minimal in-test HTTPS
//! endpoint that answers like hostd. vcsim 0.24 implements neither `RetrieveManagedMethodExecuter`
//! nor `maxObjects`/`ContinueRetrievePropertiesEx`; until the lab's esxcli-capable endpoint exists,
//! this endpoint (test code only) plays those methods with the wire shapes govc exchanges,
//! checks the session cookie, and records every request so the tests can pin round trips.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use co_vsphere::esxcli::{DeviceInfo, StorageCoreDeviceList};
use co_vsphere::property::{ObjectSpec, PropertySpec};
use co_vsphere::{
    Client, ClientConfig, Error, Esxcli, ManagedObjectReference, RetryPolicy, Secret, TlsTrust,
};
use quick_xml::escape::escape;

const COOKIE: &str = "vmware_soap_session=\"in-test-session\"";

#[derive(Default)]
struct Hostd {
    /// Every request envelope received, in order.
    requests: Mutex<Vec<String>>,
    /// Whether the vmkfstools namespace exists (the VIB is installed and hostd restarted).
    vib_installed: bool,
    /// How many of the next calls fail with a cause-less SOAP fault (the transient kind).
    transient_faults: AtomicU32,
    /// Whether Login answers InvalidLogin.
    reject_login: bool,
}

impl Hostd {
    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn answer(&self, headers: &HeaderMap, body: &str) -> Response {
        self.requests.lock().unwrap().push(body.to_owned());
        let method = method_of(body);
        let authenticated = headers
            .get(header::COOKIE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.contains("in-test-session"));
        if self
            .transient_faults
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return fault("A general system error occurred: ", "");
        }
        match method.as_str() {
            "Login" if self.reject_login => fault(
                "Cannot complete login due to an incorrect user name or password.",
                r#"<InvalidLoginFault xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="InvalidLogin"/>"#,
            ),
            "RetrieveServiceContent" => ok(
                &method,
                r#"<returnval><rootFolder type="Folder">ha-folder-root</rootFolder><propertyCollector type="PropertyCollector">ha-property-collector</propertyCollector><sessionManager type="SessionManager">ha-sessionmgr</sessionManager><fileManager type="FileManager">ha-nfc-file-manager</fileManager><about><fullName>in-test hostd</fullName><apiType>HostAgent</apiType><apiVersion>8.0.3.0</apiVersion></about></returnval>"#,
            ),
            "Login" => {
                let mut response = ok(
                    &method,
                    "<returnval><key>52</key><userName>root</userName></returnval>",
                );
                response.headers_mut().insert(
                    header::SET_COOKIE,
                    format!("{COOKIE}; Path=/; HttpOnly").parse().unwrap(),
                );
                response
            }
            _ if !authenticated => fault(
                "The session is not authenticated.",
                r#"<NotAuthenticatedFault xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="NotAuthenticated"/>"#,
            ),
            "Logout" => ok(&method, ""),
            "RetrieveManagedMethodExecuter" => ok(
                &method,
                r#"<returnval type="ManagedMethodExecuter">ha-managed-method-executer</returnval>"#,
            ),
            "ExecuteSoap" => self.execute_soap(body),
            "RetrievePropertiesEx" => ok(&method, &page(&["vm-1", "vm-2"], Some("t1"))),
            "ContinueRetrievePropertiesEx" if body.contains("<token>t1</token>") => {
                ok(&method, &page(&["vm-3", "vm-4"], Some("t2")))
            }
            "ContinueRetrievePropertiesEx" if body.contains("<token>t2</token>") => {
                ok(&method, &page(&["vm-5"], None))
            }
            _ => fault(
                &format!("unexpected method {method}"),
                r#"<MethodNotFoundFault xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="MethodNotFound"/>"#,
            ),
        }
    }

    fn execute_soap(&self, body: &str) -> Response {
        let method = between(body, "<method>", "</method>").unwrap_or_default();
        let result = match method {
            "vim.CLIInfo.FetchCLIInfo" => {
                let ns = between(body, "vim.EsxCLI.", "&lt;").unwrap_or_default();
                match ns {
                    "vmkfstools" if self.vib_installed => Ok(cli_info(
                        "vmkfstools",
                        &[
                            ("clone", &[("source-vmdk", "-s"), ("target-lun", "-t")][..]),
                            ("taskGet", &[("id", "-i")][..]),
                            ("version", &[][..]),
                        ],
                    )),
                    "storage.core.device" => Ok(cli_info(
                        "storage.core.device",
                        &[("list", &[("device", "-d")][..])],
                    )),
                    _ => Err(("The object or item referred to could not be found.", "")),
                }
            }
            "vim.EsxCLI.vmkfstools.clone" => Ok(obj(
                "vim.EsxCLI.vmkfstools.clone.result",
                &format!(
                    "<status>0</status><message>{}</message>",
                    escape(r#"{"taskId":"t-1","pid":42,"xcopyUsed":false}"#)
                ),
            )),
            "vim.EsxCLI.vmkfstools.version" => Ok(obj(
                "vim.EsxCLI.vmkfstools.version.result",
                "<status>0</status><message>{&quot;version&quot;:&quot;0.3.3&quot;}</message>",
            )),
            "vim.EsxCLI.vmkfstools.taskGet" => Err((
                "Failed to invoke vmkfstools",
                r#"<obj xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="LocalizedMethodFault"><fault xsi:type="VimEsxCLICLIFault"><errMsg>task not found</errMsg></fault></obj>"#,
            )),
            "vim.EsxCLI.storage.core.device.list" => {
                let device = between(body, "&lt;device&gt;", "&lt;/device&gt;").unwrap_or("all");
                Ok(format!(
                    r#"<obj xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="urn:vim25" versionId="5.0" xsi:type="ArrayOfDataObject"><DataObject xsi:type="vim.EsxCLI.storage.core.device.list.ScsiDevice"><Device>{device}</Device><Status>on</Status><Size>10240</Size></DataObject></obj>"#
                ))
            }
            _ => Err(("unknown method", "")),
        };
        let returnval = match result {
            Ok(xml) => format!(
                "<returnval><response>{}</response></returnval>",
                escape(xml.as_str())
            ),
            Err((msg, detail)) => format!(
                "<returnval><fault><faultMsg>{msg}</faultMsg><faultDetail>{}</faultDetail></fault></returnval>",
                escape(detail)
            ),
        };
        ok("ExecuteSoap", &returnval)
    }
}

fn method_of(body: &str) -> String {
    let after = body.split("<soapenv:Body><").nth(1).unwrap_or_default();
    after
        .split([' ', '>'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

fn obj(xsi_type: &str, inner: &str) -> String {
    format!(
        r#"<obj xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="urn:vim25" versionId="5.0" xsi:type="{xsi_type}">{inner}</obj>"#
    )
}

fn cli_info(ns: &str, methods: &[(&str, &[(&str, &str)])]) -> String {
    let mut inner = format!("<name>vim.EsxCLI.{ns}</name>");
    for (name, params) in methods {
        inner.push_str(&format!("<method><name>{name}</name>"));
        for (param, short) in *params {
            inner.push_str(&format!(
                "<param><name>{param}</name><aliases>{short}</aliases><aliases>--{param}</aliases><flag>false</flag></param>"
            ));
        }
        inner.push_str("</method>");
    }
    obj("vim.CLIInfo", &inner)
}

fn page(vms: &[&str], token: Option<&str>) -> String {
    let mut out = String::from("<returnval>");
    if let Some(t) = token {
        out.push_str(&format!("<token>{t}</token>"));
    }
    for vm in vms {
        out.push_str(&format!(
            r#"<objects><obj type="VirtualMachine">{vm}</obj><propSet><name>name</name><val xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance" XMLSchema-instance:type="xsd:string">{vm}-name</val></propSet></objects>"#
        ));
    }
    out.push_str("</returnval>");
    out
}

fn envelope(inner: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>"#
    )
}

fn ok(method: &str, returnval: &str) -> Response {
    let body = envelope(&format!(
        r#"<{method}Response xmlns="urn:vim25">{returnval}</{method}Response>"#
    ));
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn fault(message: &str, detail: &str) -> Response {
    let body = envelope(&format!(
        "<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>{}</faultstring><detail>{detail}</detail></soapenv:Fault>",
        escape(message)
    ));
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/xml")],
        body,
    )
        .into_response()
}

struct Endpoint {
    addr: SocketAddr,
    cert_pem: String,
    hostd: Arc<Hostd>,
    handle: axum_server::Handle<SocketAddr>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

async fn start(vib_installed: bool) -> Endpoint {
    start_with(Hostd {
        vib_installed,
        ..Hostd::default()
    })
    .await
}

async fn start_with(hostd: Hostd) -> Endpoint {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        cert.pem().into_bytes(),
        key.serialize_pem().into_bytes(),
    )
    .await
    .unwrap();
    let hostd = Arc::new(hostd);
    let state = hostd.clone();
    let app = axum::Router::new().route(
        "/sdk",
        post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move { state.answer(&headers, &String::from_utf8_lossy(&body)) }
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(listener, tls)
        .unwrap()
        .handle(handle.clone());
    tokio::spawn(server.serve(app.into_make_service()));
    Endpoint {
        addr,
        cert_pem: cert.pem(),
        hostd,
        handle,
    }
}

fn config(endpoint: &Endpoint) -> ClientConfig {
    let mut cfg = ClientConfig::new(endpoint.addr.to_string(), "root", Secret::new("secret"));
    cfg.trust = TlsTrust::Verify {
        extra_ca_pem: Some(endpoint.cert_pem.clone()),
    };
    cfg.timeout = Duration::from_secs(10);
    cfg.retry = RetryPolicy {
        attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    };
    cfg
}

async fn login(endpoint: &Endpoint) -> Client {
    Client::login(config(endpoint))
        .await
        .expect("login to the in-test hostd")
}

fn host() -> ManagedObjectReference {
    ManagedObjectReference::new("HostSystem", "ha-host")
}

#[tokio::test]
async fn esxcli_costs_one_round_trip_after_the_first_call_on_a_namespace() {
    let endpoint = start(true).await;
    let client = login(&endpoint).await;

    let before = client.round_trips();
    let first = client
        .esxcli(
            &host(),
            &[
                "vmkfstools",
                "clone",
                "-s",
                "[ds] vm/vm.vmdk",
                "--target-lun",
                "/vmfs/devices/disks/naa.1",
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        client.round_trips() - before,
        3,
        "first call: RetrieveManagedMethodExecuter + FetchCLIInfo + the command"
    );
    assert_eq!(first.field(0, "status").as_deref(), Some("0"));
    assert_eq!(
        first.field(0, "message").as_deref(),
        Some(r#"{"taskId":"t-1","pid":42,"xcopyUsed":false}"#)
    );

    let before = client.round_trips();
    client
        .esxcli(&host(), &["vmkfstools", "clone", "-s", "[ds] a", "-t", "b"])
        .await
        .unwrap();
    assert_eq!(
        client.round_trips() - before,
        1,
        "esxcli call after the first"
    );

    let before = client.round_trips();
    let devices = client
        .esxcli(
            &host(),
            &["storage", "core", "device", "list", "-d", "naa.600a"],
        )
        .await
        .unwrap();
    assert_eq!(
        client.round_trips() - before,
        2,
        "new namespace: FetchCLIInfo + the command"
    );
    assert_eq!(devices.field(0, "Device").as_deref(), Some("naa.600a"));
    assert_eq!(devices.field(0, "Status").as_deref(), Some("on"));

    // The recorded requests use the mapped parameter names and the executer's reference.
    let requests = endpoint.hostd.requests();
    let clone = requests
        .iter()
        .find(|r| r.contains("<method>vim.EsxCLI.vmkfstools.clone</method>"))
        .unwrap();
    assert!(
        clone.contains(r#"<_this type="ManagedMethodExecuter">ha-managed-method-executer</_this>"#)
    );
    assert!(clone.contains("<moid>ha-cli-handler-vmkfstools</moid>"));
    assert!(clone.contains(
        "<argument><name>source-vmdk</name><val>&lt;source-vmdk&gt;[ds] vm/vm.vmdk&lt;/source-vmdk&gt;</val></argument>"
    ));
    assert!(clone.contains("<name>target-lun</name>"));
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.contains("RetrieveManagedMethodExecuter"))
            .count(),
        1,
        "the executer is cached per host"
    );
}

#[tokio::test]
async fn prepared_esxcli_commands_cost_one_round_trip_each_on_every_handle_of_the_host() {
    let endpoint = start(true).await;
    let client = login(&endpoint).await;
    let esxcli = Esxcli::new(client.clone(), host());

    let before = client.round_trips();
    esxcli
        .prepare(&[
            &["storage", "core", "device", "list"],
            &["storage", "core", "device", "set"],
            &["vmkfstools", "clone"],
        ])
        .await
        .unwrap();
    assert_eq!(
        client.round_trips() - before,
        3,
        "the executer plus one FetchCLIInfo per distinct namespace"
    );

    // A typed command: its argv on the wire, its answer typed.
    let before = client.round_trips();
    let devices = esxcli
        .execute(&StorageCoreDeviceList {
            device: Some("naa.600a".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        devices,
        [DeviceInfo {
            naa: "naa.600a".into(),
            size_bytes: 10240 * 1024 * 1024,
            status: "on".into(),
        }]
    );
    // Another handle of the same host on the same session (here the raw form on the client)
    // shares what the first one fetched.
    client
        .esxcli(&host(), &["vmkfstools", "clone", "-s", "[ds] a", "-t", "b"])
        .await
        .unwrap();
    assert_eq!(
        client.round_trips() - before,
        2,
        "one round trip per command"
    );
    let listed = endpoint
        .hostd
        .requests()
        .into_iter()
        .filter(|r| r.contains("<method>vim.EsxCLI.storage.core.device.list</method>"))
        .collect::<Vec<_>>();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].contains("<name>device</name><val>&lt;device&gt;naa.600a&lt;/device&gt;</val>"),
        "{}",
        listed[0]
    );

    let err = esxcli.prepare(&[&["-d", "x"]]).await.unwrap_err();
    assert!(matches!(err, Error::EsxcliUsage { .. }), "{err:?}");
}

#[tokio::test]
async fn a_missing_vmkfstools_namespace_explains_the_vib_and_hostd_restart() {
    let endpoint = start(false).await;
    let client = login(&endpoint).await;
    let err = client
        .esxcli(&host(), &["vmkfstools", "version"])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::VibMissing { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("/etc/init.d/hostd restart"), "{text}");
    assert!(text.contains("VIB"), "{text}");

    // Other namespaces report a plain esxcli failure.
    let err = client
        .esxcli(&host(), &["network", "nope", "list"])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Esxcli { .. }), "{err:?}");
}

#[tokio::test]
async fn in_band_faults_and_usage_errors_are_reported() {
    let endpoint = start(true).await;
    let client = login(&endpoint).await;
    let err = client
        .esxcli(&host(), &["vmkfstools", "taskGet", "-i", "bad"])
        .await
        .unwrap_err();
    match &err {
        Error::Esxcli {
            message, command, ..
        } => {
            assert_eq!(command, "vmkfstools taskGet");
            assert!(message.contains("task not found"), "{message}");
        }
        other => panic!("expected an esxcli fault, got {other:?}"),
    }
    let err = client
        .esxcli(&host(), &["vmkfstools", "clone", "--bogus", "x"])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EsxcliUsage { .. }), "{err:?}");
    let err = client
        .esxcli(&host(), &["vmkfstools", "nosuchverb"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not found in namespace"), "{err}");
}

#[tokio::test]
async fn property_collection_follows_continuation_tokens_page_by_page() {
    let endpoint = start(true).await;
    let client = login(&endpoint).await;
    let root = client.service_content().root_folder.clone();
    let before = client.round_trips();
    let objects = client
        .retrieve_paged(
            &ObjectSpec::inventory(&root),
            &[PropertySpec::new("VirtualMachine", &["name"])],
            Some(2),
        )
        .await
        .unwrap();
    assert_eq!(
        client.round_trips() - before,
        3,
        "RetrievePropertiesEx + 2 continuations"
    );
    let names: Vec<&str> = objects.iter().filter_map(|o| o.text("name")).collect();
    assert_eq!(
        names,
        [
            "vm-1-name",
            "vm-2-name",
            "vm-3-name",
            "vm-4-name",
            "vm-5-name"
        ]
    );
    let requests = endpoint.hostd.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("<options><maxObjects>2</maxObjects></options>"))
    );
    assert!(requests.iter().any(|r| r.contains("<token>t2</token>")));
}

#[tokio::test]
async fn the_session_cookie_is_sent_and_logout_is_called() {
    let endpoint = start(true).await;
    let client = login(&endpoint).await;
    client
        .esxcli(&host(), &["vmkfstools", "version"])
        .await
        .unwrap();
    client.logout().await.unwrap();
    let requests = endpoint.hostd.requests();
    assert!(requests.last().unwrap().contains("<Logout"), "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| !r.contains("secret") || r.contains("<Login")),
        "the password travels only in Login"
    );
}

#[tokio::test]
async fn transient_faults_are_retried_and_permanent_ones_are_not() {
    let endpoint = start_with(Hostd {
        transient_faults: AtomicU32::new(2),
        ..Hostd::default()
    })
    .await;
    let client = login(&endpoint).await;
    assert_eq!(
        client.round_trips(),
        4,
        "RetrieveServiceContent failed twice, then succeeded; then Login"
    );

    endpoint.hostd.transient_faults.store(10, Ordering::SeqCst);
    let err = client
        .esxcli(&host(), &["vmkfstools", "version"])
        .await
        .unwrap_err();
    assert!(
        err.fault().is_some_and(|f| f.detail_type.is_empty()),
        "{err:?}"
    );
    assert_eq!(
        client.round_trips(),
        4 + 4,
        "bounded: four attempts, then the fault surfaces"
    );

    let endpoint = start_with(Hostd {
        reject_login: true,
        ..Hostd::default()
    })
    .await;
    let err = Client::login(config(&endpoint)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidLogin { .. }), "{err:?}");
    let logins = endpoint
        .hostd
        .requests()
        .iter()
        .filter(|r| r.contains("<Login "))
        .count();
    assert_eq!(logins, 1, "an invalid login is never retried");
}

#[tokio::test]
async fn dropping_the_last_clone_logs_out() {
    let endpoint = start(true).await;
    let client = login(&endpoint).await;
    let clone = client.clone();
    drop(client);
    let logged_out = |e: &Endpoint| e.hostd.requests().iter().any(|r| r.contains("<Logout "));
    assert!(!logged_out(&endpoint), "a live clone keeps the session");
    drop(clone);
    // The logout runs on a task the last drop spawns.
    let sent = || std::future::ready(logged_out(&endpoint).then_some(()));
    co_testpeers::eventually(Duration::from_secs(10), "Logout after the last drop", sent).await;
}
