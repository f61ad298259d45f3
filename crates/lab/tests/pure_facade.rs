//! The FlashArray facade over HTTP on loopback, driven as a REST client would: version probe,
//! token exchange and session login, hosts, host groups, connections, volumes, tags and the
//! array-side copy — and the SAN model reflects each step.

use co_lab::arrays::pure::{FlashArray, PureCredentials, portworx_volume_name};
use co_lab::san::{ArrayVendor, San};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ARRAY: &str = "fa1";
const V2: &str = "/api/2.16";
const TOKEN: &str = "0b7c5e9e-4a3f-4b8e-9d2a-6c1f0e8b7a11";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx-1";

struct Lab {
    _dir: tempfile::TempDir,
    san: San,
    array: FlashArray,
    base: String,
    http: reqwest::Client,
}

async fn serve() -> Lab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::PureFlashArray).unwrap();
    let array = FlashArray::new(
        san.clone(),
        ARRAY,
        PureCredentials {
            username: "pureuser".into(),
            password: "pureuser-pw".into(),
            api_token: TOKEN.into(),
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = array.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Lab {
        _dir: dir,
        san,
        array,
        base,
        http: reqwest::Client::new(),
    }
}

impl Lab {
    async fn login(&self) -> String {
        let response = self
            .http
            .post(format!("{}{V2}/login", self.base))
            .header("api-token", TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let session = response.headers()["x-auth-token"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["items"][0]["username"], "pureuser");
        session
    }

    async fn call(
        &self,
        session: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{V2}{path}", self.base))
            .header("x-auth-token", session);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, value)
    }

    async fn ok(&self, session: &str, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(session, method.clone(), path, body).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {value}");
        value
    }
}

fn assert_refused(status: StatusCode, body: &Value, message: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let text = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(text.contains(message), "{body}");
}

#[tokio::test]
async fn sessions_come_from_the_api_token_and_expire() {
    let lab = serve().await;
    let versions: Value = lab
        .http
        .get(format!("{}/api/api_version", lab.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let versions: Vec<&str> = versions["version"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(versions.contains(&"1.19") && versions.contains(&"2.16"));

    // REST 1.x: user name and password give the user's API token; wrong ones are refused.
    let exchange = |password: &str| {
        lab.http
            .post(format!("{}/api/1.19/auth/apitoken", lab.base))
            .json(&json!({"username": "pureuser", "password": password}))
            .send()
    };
    let good: Value = exchange("pureuser-pw").await.unwrap().json().await.unwrap();
    assert_eq!(good["api_token"], TOKEN);
    assert_eq!(
        exchange("nope").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    let wrong = lab
        .http
        .post(format!("{}{V2}/login", lab.base))
        .header("api-token", "not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let (status, body) = lab.call("", Method::GET, "/volumes", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["errors"][0]["message"].is_string(), "{body}");

    let session = lab.login().await;
    lab.ok(&session, Method::GET, "/arrays", None).await;
    lab.array.expire_sessions();
    let (status, _) = lab.call(&session, Method::GET, "/arrays", None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an expired session is refused"
    );

    let session = lab.login().await;
    assert_eq!(lab.array.open_sessions(), 1);
    lab.ok(&session, Method::POST, "/logout", None).await;
    assert_eq!(lab.array.open_sessions(), 0);

    let (status, _) = lab.call(&session, Method::GET, "/arrays", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let unknown = lab
        .http
        .post(format!("{}/api/2.99/login", lab.base))
        .header("api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn hosts_connections_and_the_nvme_rule() {
    let lab = serve().await;
    let session = lab.login().await;
    let name = portworx_volume_name("px_1a2b3c4d", "pvc-1");
    let volume = lab
        .array
        .create_portworx_volume("px_1a2b3c4d", "pvc-1", 1 << 30)
        .unwrap();
    assert_eq!(volume.name, name);

    // Names and ids go in the query; bodies carry attributes only.
    let host = lab
        .ok(
            &session,
            Method::POST,
            "/hosts?names=esx-1",
            Some(json!({"iqns": [ESX_IQN], "wwns": ["21:00:00:24:ff:2a:3c:4e"], "personality": "esxi"})),
        )
        .await;
    assert_eq!(host["items"][0]["wwns"][0], "21000024FF2A3C4E");
    let (status, body) = lab
        .call(
            &session,
            Method::POST,
            "/hosts?names=esx-dup",
            Some(json!({"iqns": [ESX_IQN.to_uppercase()]})),
        )
        .await;
    assert_refused(status, &body, "already in use by host esx-1");
    let (status, body) = lab
        .call(
            &session,
            Method::POST,
            "/hosts",
            Some(json!({"names": ["x"], "iqns": ["iqn.x"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "names in the body: {body}");

    let local = lab
        .ok(&session, Method::GET, "/hosts?filter=is_local", None)
        .await;
    assert_eq!(local["items"].as_array().unwrap().len(), 1);

    let path = format!("/connections?host_names=esx-1&volume_names={name}");
    let created = lab.ok(&session, Method::POST, &path, None).await;
    assert_eq!(created["items"][0]["lun"], 0);
    assert_eq!(created["items"][0]["volume"]["id"], volume.uuid);
    let (status, body) = lab.call(&session, Method::POST, &path, None).await;
    assert_refused(status, &body, "Connection already exists.");
    assert_eq!(
        lab.san.visible_luns(&[ESX_IQN.to_owned()])[0].naa,
        volume.naa
    );

    // A volume is never connected over NVMe-oF and SCSI at once.
    lab.ok(
        &session,
        Method::POST,
        "/hosts?names=nvme-1",
        Some(json!({"nqns": ["nqn.2014-08.org.nvmexpress:uuid:1"]})),
    )
    .await;
    let (status, body) = lab
        .call(
            &session,
            Method::POST,
            &format!("/connections?host_names=nvme-1&volume_names={name}"),
            None,
        )
        .await;
    assert_refused(status, &body, "NVMe-oF hosts and SCSI hosts");

    let (status, body) = lab
        .call(&session, Method::DELETE, "/hosts?names=esx-1", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "connected host: {body}");
    lab.ok(&session, Method::DELETE, &path, None).await;
    let (status, body) = lab.call(&session, Method::DELETE, &path, None).await;
    assert_refused(status, &body, "Connection does not exist.");
    lab.ok(&session, Method::DELETE, "/hosts?names=esx-1", None)
        .await;
    assert!(lab.san.group(ARRAY, "esx-1").is_none());

    // Leftovers name copy-offload's own objects only, and open sessions.
    assert_eq!(lab.array.leftovers(), vec!["1 open session(s)"]);
    lab.ok(
        &session,
        Method::POST,
        "/hosts?names=xcopy-hostsystem-host-1",
        Some(json!({"iqns": [ESX_IQN]})),
    )
    .await;
    lab.ok(
        &session,
        Method::POST,
        &format!("/connections?host_names=xcopy-hostsystem-host-1&volume_names={name}"),
        None,
    )
    .await;
    lab.ok(&session, Method::POST, "/logout", None).await;
    assert_eq!(
        lab.array.leftovers(),
        vec![
            "host xcopy-hostsystem-host-1".to_owned(),
            format!("connection {name} -> xcopy-hostsystem-host-1"),
        ]
    );
}

#[tokio::test]
async fn host_group_connections_are_shared_by_every_member() {
    let lab = serve().await;
    let session = lab.login().await;
    lab.san.create_volume(ARRAY, "vol-a", 1 << 20).unwrap();
    for (host, iqn) in [
        ("w1", "iqn.2020-01.io.openshift:w1"),
        ("w2", "iqn.2020-01.io.openshift:w2"),
    ] {
        lab.ok(
            &session,
            Method::POST,
            &format!("/hosts?names={host}"),
            Some(json!({"iqns": [iqn]})),
        )
        .await;
    }
    lab.ok(&session, Method::POST, "/host-groups?names=ocp", None)
        .await;
    for host in ["w1", "w2"] {
        lab.ok(
            &session,
            Method::PATCH,
            &format!("/hosts?names={host}"),
            Some(json!({"host_group": {"name": "ocp"}})),
        )
        .await;
    }
    lab.ok(
        &session,
        Method::POST,
        "/connections?host_group_names=ocp&volume_names=vol-a",
        None,
    )
    .await;
    let listed = lab
        .ok(
            &session,
            Method::GET,
            "/connections?volume_names=vol-a",
            None,
        )
        .await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|c| c["host_group"]["name"] == "ocp"));
    // A shared connection is removed through the group, not per host.
    let (status, _) = lab
        .call(
            &session,
            Method::DELETE,
            "/connections?host_names=w1&volume_names=vol-a",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    lab.ok(
        &session,
        Method::DELETE,
        "/connections?host_group_names=ocp&volume_names=vol-a",
        None,
    )
    .await;
    assert!(lab.san.mappings(ARRAY).is_empty());
}

#[tokio::test]
async fn volumes_page_filter_and_copy_with_overwrite() {
    let lab = serve().await;
    let session = lab.login().await;
    let source = lab.san.create_volume(ARRAY, "src", 1 << 20).unwrap();
    let target = lab.san.create_volume(ARRAY, "dst", 1 << 20).unwrap();
    for i in 0..3 {
        lab.san
            .create_volume(ARRAY, &format!("other-{i}"), 4096)
            .unwrap();
    }
    std::fs::write(&source.backing_path, b"vvol bytes").unwrap();
    let source_len = source.size_bytes;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&source.backing_path)
        .unwrap();
    f.set_len(source_len).unwrap();

    // Paging: limit + continuation_token until no token comes back.
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/volumes?limit=2&continuation_token={t}&total_item_count=true"),
            None => "/volumes?limit=2&total_item_count=true".to_owned(),
        };
        let page = lab.ok(&session, Method::GET, &path, None).await;
        assert_eq!(page["total_item_count"], 5);
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap().to_owned()),
        );
        token = page["continuation_token"].as_str().map(str::to_owned);
        if token.is_none() {
            assert_eq!(page["more_items_remaining"], false);
            break;
        }
    }
    assert_eq!(names.len(), 5);

    let by_serial = lab
        .ok(
            &session,
            Method::GET,
            &format!("/volumes?filter=serial='{}'", source.serial),
            None,
        )
        .await;
    assert_eq!(by_serial["items"][0]["name"], "src");
    let (status, body) = lab
        .call(&session, Method::GET, "/volumes?names=missing", None)
        .await;
    assert_refused(status, &body, "Volume does not exist.");
    assert_eq!(body["errors"][0]["context"], "missing");
    let (status, body) = lab
        .call(&session, Method::GET, "/volumes?bogus=1", None)
        .await;
    assert_refused(status, &body, "Invalid query parameter");

    let copy = Some(json!({"source": {"name": "src"}}));
    let (status, body) = lab
        .call(&session, Method::POST, "/volumes?names=dst", copy.clone())
        .await;
    assert_refused(status, &body, "overwrite=true");
    let copied = lab
        .ok(
            &session,
            Method::POST,
            "/volumes?names=dst&overwrite=true",
            copy,
        )
        .await;
    assert_eq!(copied["items"][0]["source"]["name"], "src");
    assert_eq!(copied["items"][0]["serial"], target.serial, "same volume");
    let data = std::fs::read(&target.backing_path).unwrap();
    assert_eq!(&data[..10], b"vvol bytes");
    assert_eq!(data.len() as u64, target.size_bytes);

    // vVol tags.
    lab.array.tag_vvol("src", "rfc4122.1234").unwrap();
    let tags = lab
        .ok(
            &session,
            Method::GET,
            "/volumes/tags?resource_destroyed=False&namespaces=vasa-integration.purestorage.com&filter=key%3D%27PURE_VVOL_ID%27%20AND%20value%3D%27rfc4122.1234%27",
            None,
        )
        .await;
    assert_eq!(tags["items"][0]["resource"]["name"], "src");
    let none = lab
        .ok(
            &session,
            Method::GET,
            "/volumes/tags?filter=value%3D%27other%27",
            None,
        )
        .await;
    assert!(none["items"].as_array().unwrap().is_empty());
}
