//! The PowerStore facade over HTTP on loopback, driven with raw requests: the session model
//! (Basic login → cookie + DELL-EMC-TOKEN, 401/403, logout, expiry), `select`/filter/paging
//! semantics, the array's rules (one host per initiator, grouped hosts attach through their host
//! group, 422 on double attach), async jobs, error bodies — and the SAN model after each step.

use co_lab::arrays::powerstore::{self, PowerStore, SESSION_COOKIE, TOKEN_HEADER};
use co_lab::san::{ArrayVendor, GroupSpec, San};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ARRAY: &str = "ps1";
const USER: &str = "admin";
const PASSWORD: &str = "Password123!";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx-1";
const ESX_FC: &str = "21:00:00:25:b5:00:00:01";

struct Array {
    _dir: tempfile::TempDir,
    san: San,
    facade: PowerStore,
    base: String,
    http: reqwest::Client,
}

struct Session {
    cookie: String,
    token: String,
}

async fn serve() -> Array {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::PowerStore).unwrap();
    let facade = PowerStore::new(san.clone(), ARRAY, USER, PASSWORD);
    let router = facade.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/rest", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Array {
        _dir: dir,
        san,
        facade,
        base,
        http: reqwest::Client::new(),
    }
}

impl Array {
    async fn login(&self) -> Session {
        let response = self
            .http
            .get(format!(
                "{}/login_session?select=id,user,idle_timeout",
                self.base
            ))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let token = response.headers()[TOKEN_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        let set_cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        assert!(
            cookie.starts_with(&format!("{SESSION_COOKIE}=")),
            "{cookie}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body[0]["user"], USER);
        assert_eq!(body[0]["idle_timeout"], 3600);
        Session { cookie, token }
    }

    async fn call_raw(
        &self,
        session: &Session,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Cookie", &session.cookie)
            .header(TOKEN_HEADER, &session.token);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, headers, value)
    }

    async fn call(
        &self,
        session: &Session,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, value) = self.call_raw(session, method, path, body, &[]).await;
        (status, value)
    }

    async fn get(&self, session: &Session, path: &str) -> Value {
        let (status, body) = self.call(session, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    async fn create_host(&self, session: &Session, name: &str, port: (&str, &str)) -> String {
        let (status, body) = self
            .call(
                session,
                Method::POST,
                "/host",
                Some(json!({"name": name, "os_type": "ESXi",
                    "initiators": [{"port_name": port.0, "port_type": port.1}]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    let message = &body["messages"][0];
    assert_eq!(message["severity"], "Error", "{body}");
    assert!(
        message["message_l10n"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        message["code"]
            .as_str()
            .is_some_and(|c| c.starts_with("0x")),
        "{body}"
    );
}

#[tokio::test]
async fn sessions_need_basic_login_then_cookie_and_token() {
    let array = serve().await;
    let url = format!("{}/cluster", array.base);
    let response = array.http.get(&url).send().await.unwrap();
    let status = response.status();
    assert_error(
        status,
        &response.json().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    );
    let response = array
        .http
        .get(format!("{}/login_session", array.base))
        .basic_auth(USER, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let session = array.login().await;
    assert_eq!(array.facade.open_sessions(), 1);
    let cluster = array
        .get(&session, "/cluster?select=id,name,global_id")
        .await;
    assert_eq!(cluster[0]["name"], ARRAY);
    assert_eq!(cluster[0]["global_id"], array.facade.global_id());

    // A write without the session's token is refused (403), a GET is not.
    let no_token = Session {
        cookie: session.cookie.clone(),
        token: "forged".into(),
    };
    let (status, body) = array
        .call(&no_token, Method::POST, "/host", Some(json!({})))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    let (status, _) = array.call(&no_token, Method::GET, "/host", None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = array.call(&session, Method::POST, "/logout", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(array.facade.open_sessions(), 0);
    let (status, body) = array.call(&session, Method::GET, "/cluster", None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);

    let again = array.login().await;
    array.facade.expire_sessions();
    let (status, _) = array.call(&again, Method::GET, "/cluster", None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an expired session is 401"
    );
}

#[tokio::test]
async fn only_selected_fields_are_answered_and_unknown_ones_refused() {
    let array = serve().await;
    let session = array.login().await;
    let volume = powerstore::create_csi_volume(&array.san, ARRAY, "csivol-a1", 8 << 30).unwrap();
    let bare = array.get(&session, "/volume").await;
    assert_eq!(bare, json!([{"id": volume.uuid}]), "only id without select");
    let named = array
        .get(
            &session,
            "/volume?select=id,name,wwn,size&name=eq.csivol-a1",
        )
        .await;
    assert_eq!(named[0]["wwn"], volume.naa);
    assert!(volume.naa.starts_with("naa.68ccf098"), "{}", volume.naa);
    assert_eq!(named[0]["size"], 8u64 << 30);
    let none = array.get(&session, "/volume?name=eq.csivol-zz").await;
    assert_eq!(none, json!([]));
    let one = array
        .get(&session, &format!("/volume/{}?select=name", volume.uuid))
        .await;
    assert_eq!(one, json!({"name": "csivol-a1"}));

    for bad in [
        "/volume?select=id,serial",
        "/volume?serial=eq.x",
        "/volume?name=csivol-a1",
        "/volume?select=name(id)",
        "/volume?order=colour",
    ] {
        let (status, body) = array.call(&session, Method::GET, bad, None).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    let (status, body) = array
        .call(
            &session,
            Method::GET,
            "/volume/00000000-0000-4000-8000-000000000000",
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = array.call(&session, Method::GET, "/lun", None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn hosts_hold_initiators_no_other_host_has() {
    let array = serve().await;
    let session = array.login().await;
    let id = array
        .create_host(&session, "esx-1", (ESX_IQN, "iSCSI"))
        .await;
    let host = array
        .get(
            &session,
            &format!(
                "/host/{id}?select=name,os_type,host_group_id,host_initiators,initiators(port_name)"
            ),
        )
        .await;
    assert_eq!(host["os_type"], "ESXi");
    assert_eq!(host["host_group_id"], Value::Null);
    assert_eq!(host["host_initiators"][0]["port_name"], ESX_IQN);
    assert_eq!(host["host_initiators"][0]["port_type"], "iSCSI");
    assert_eq!(host["initiators"][0]["port_name"], ESX_IQN);
    assert_eq!(
        array.san.group(ARRAY, "esx-1").unwrap().initiators,
        [ESX_IQN]
    );

    let refusals = [
        (
            json!({"name": "esx-2", "os_type": "ESXi", "initiators": [{"port_name": ESX_IQN.to_uppercase(), "port_type": "iSCSI"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"name": "esx-1", "os_type": "ESXi", "initiators": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"name": "esx-3", "os_type": "ESXi", "initiators": [{"port_name": "21000025b5000001", "port_type": "FC"}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "esx-3", "os_type": "VMware", "initiators": []}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "esx-3", "os_type": "ESXi", "initiators": [], "protocol": "iscsi"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "esx-3", "initiators": []}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (body, expected) in refusals {
        let (status, answer) = array
            .call(&session, Method::POST, "/host", Some(body.clone()))
            .await;
        assert_error(status, &answer, expected);
    }

    let (status, body) = array
        .call(
            &session,
            Method::PATCH,
            &format!("/host/{id}"),
            Some(json!({"add_initiators": [{"port_name": ESX_FC, "port_type": "FC"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let found = array
        .get(&session, "/host?select=id,host_initiators&name=eq.esx-1")
        .await;
    assert_eq!(found[0]["host_initiators"][1]["port_name"], ESX_FC);
    assert_eq!(found[0]["host_initiators"][1]["port_type"], "FC");

    let (status, _) = array
        .call(&session, Method::DELETE, &format!("/host/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(array.san.group(ARRAY, "esx-1").is_none());
}

#[tokio::test]
async fn volumes_attach_to_hosts_and_through_host_groups() {
    let array = serve().await;
    let session = array.login().await;
    let volume = powerstore::create_csi_volume(&array.san, ARRAY, "csivol-m1", 1 << 30).unwrap();
    let esx1 = array
        .create_host(&session, "esx-1", (ESX_IQN, "iSCSI"))
        .await;
    let esx2 = array.create_host(&session, "esx-2", (ESX_FC, "FC")).await;
    let attach = json!({"volume_id": volume.uuid});

    let (status, body) = array
        .call(
            &session,
            Method::POST,
            &format!("/host/{esx1}/attach"),
            Some(attach.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = array
        .call(
            &session,
            Method::POST,
            &format!("/host/{esx1}/attach"),
            Some(attach.clone()),
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let maps = array
        .get(
            &session,
            &format!(
                "/host_volume_mapping?select=host_id,host_group_id,logical_unit_number,host(name)&volume_id=eq.{}",
                volume.uuid
            ),
        )
        .await;
    assert_eq!(
        maps,
        json!([{"host_id": esx1, "host_group_id": null, "logical_unit_number": 0, "host": {"name": "esx-1"}}])
    );
    assert_eq!(array.san.visible_luns(&[ESX_IQN.into()]).len(), 1);
    assert!(
        array.facade.leftovers().is_empty(),
        "admin hosts are no leftovers"
    );
    let (status, body) = array
        .call(&session, Method::DELETE, &format!("/host/{esx1}"), None)
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY);

    // The library's spelling: POST /volume/{id}/detach {host_id}.
    let (status, _) = array
        .call(
            &session,
            Method::POST,
            &format!("/volume/{}/detach", volume.uuid),
            Some(json!({"host_id": esx1})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = array
        .call(
            &session,
            Method::POST,
            &format!("/host/{esx1}/detach"),
            Some(attach.clone()),
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(array.san.visible_luns(&[ESX_IQN.into()]).is_empty());

    // Grouped hosts: only the group attaches, and every member sees the volume.
    let (status, body) = array
        .call(
            &session,
            Method::POST,
            "/host_group",
            Some(json!({"name": "cluster-a", "host_ids": [esx1, esx2]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let group = body["id"].as_str().unwrap().to_owned();
    let (status, body) = array
        .call(
            &session,
            Method::POST,
            &format!("/host/{esx1}/attach"),
            Some(attach.clone()),
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["messages"][0]["message_l10n"]
            .as_str()
            .unwrap()
            .contains("host group"),
        "{body}"
    );
    let (status, body) = array
        .call(
            &session,
            Method::POST,
            &format!("/host_group/{group}/attach"),
            Some(attach.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(array.san.visible_luns(&[ESX_IQN.into()]).len(), 1);
    assert_eq!(
        array
            .san
            .visible_luns(&["fc.20000025b5000001:21000025b5000001".into()])
            .len(),
        1
    );
    let members = array
        .get(
            &session,
            &format!("/host_group/{group}?select=name,hosts(name),mapped_host_groups(volume_id)"),
        )
        .await;
    assert_eq!(members["hosts"].as_array().unwrap().len(), 2);
    assert_eq!(
        members["mapped_host_groups"][0]["volume_id"],
        json!(volume.uuid)
    );
    let maps = array
        .get(&session, &format!("/host_volume_mapping?select=host_id,host_group_id,host_group(name)&volume_id=eq.{}", volume.uuid))
        .await;
    assert_eq!(
        maps,
        json!([{"host_id": null, "host_group_id": group, "host_group": {"name": "cluster-a"}}])
    );
    let host = array
        .get(
            &session,
            &format!("/host/{esx2}?select=host_group_id,host_group(name)"),
        )
        .await;
    assert_eq!(
        host,
        json!({"host_group_id": group, "host_group": {"name": "cluster-a"}})
    );
    let (status, _) = array
        .call(
            &session,
            Method::POST,
            &format!("/host_group/{group}/detach"),
            Some(attach.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(array.san.mappings(ARRAY).is_empty());
}

#[tokio::test]
async fn csi_volumes_carry_the_pv_fields_and_copy_objects_are_listed_as_leftovers() {
    let array = serve().await;
    let session = array.login().await;
    let csi = array
        .facade
        .create_csi_volume("csivol-pvc1", 1 << 30)
        .unwrap();
    assert_eq!(csi.driver, powerstore::CSI_DRIVER);
    assert_eq!(
        csi.volume_handle,
        format!("{}/{}/scsi", csi.volume.uuid, array.facade.global_id())
    );
    assert_eq!(csi.volume_attributes["Name"], "csivol-pvc1");
    let host = array
        .create_host(&session, "xcopy-hostsystem-host-1", (ESX_IQN, "iSCSI"))
        .await;
    let (status, _) = array
        .call(
            &session,
            Method::POST,
            &format!("/volume/{}/attach", csi.volume.uuid),
            Some(json!({"host_id": host})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        array.facade.leftovers(),
        [
            "host xcopy-hostsystem-host-1",
            "volume csivol-pvc1 attached to xcopy-hostsystem-host-1"
        ]
    );
}

#[tokio::test]
async fn long_collections_come_in_pages() {
    let array = serve().await;
    let session = array.login().await;
    for i in 0..150 {
        array
            .san
            .create_group(
                ARRAY,
                GroupSpec {
                    name: format!("host-{i:03}"),
                    initiators: vec![format!("iqn.2020-01.io.lab:h{i}")],
                    os_type: Some("Linux".into()),
                    ..GroupSpec::default()
                },
            )
            .unwrap();
    }
    let (status, headers, body) = array
        .call_raw(
            &session,
            Method::GET,
            "/host?select=name&order=name",
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(headers["content-range"], "0-99/150");
    assert_eq!(body.as_array().unwrap().len(), 100);
    assert_eq!(body[0]["name"], "host-000");
    let (status, headers, body) = array
        .call_raw(
            &session,
            Method::GET,
            "/host?select=name&order=name",
            None,
            &[("Range", "100-2100")],
        )
        .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(headers["content-range"], "100-149/150");
    assert_eq!(body[0]["name"], "host-100");
    let (status, _, body) = array
        .call_raw(
            &session,
            Method::GET,
            "/host?select=name&limit=2000&order=name.desc",
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["name"], "host-149");
    let (status, _, _) = array
        .call_raw(&session, Method::GET, "/host?offset=150", None, &[])
        .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
}

#[tokio::test]
async fn async_requests_answer_a_job_that_holds_the_outcome() {
    let array = serve().await;
    let session = array.login().await;
    let volume = powerstore::create_csi_volume(&array.san, ARRAY, "csivol-j1", 1 << 30).unwrap();
    let host = array
        .create_host(&session, "esx-1", (ESX_IQN, "iSCSI"))
        .await;
    let (status, body) = array
        .call(
            &session,
            Method::POST,
            &format!("/host/{host}/attach?is_async=true"),
            Some(json!({"volume_id": volume.uuid})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = body["id"].as_str().unwrap().to_owned();
    let state = array
        .get(
            &session,
            &format!("/job/{job}?select=state,resource_type,response_status,progress_percentage"),
        )
        .await;
    assert_eq!(
        state,
        json!({"state": "COMPLETED", "resource_type": "host", "response_status": "204", "progress_percentage": 100})
    );
    assert_eq!(array.san.mappings(ARRAY).len(), 1);

    let (status, body) = array
        .call(
            &session,
            Method::POST,
            &format!("/host/{host}/attach?is_async=true"),
            Some(json!({"volume_id": volume.uuid})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let failed = array
        .get(
            &session,
            &format!(
                "/job/{}?select=state,response_status,response_body",
                body["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(failed["state"], "FAILED");
    assert_eq!(failed["response_status"], "422");
    assert!(failed["response_body"]["messages"][0]["message_l10n"].is_string());
}
