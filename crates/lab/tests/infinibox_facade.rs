//! The InfiniBox facade over HTTP on loopback, driven with raw requests: the envelope, Basic and
//! session authentication (login cookie, logout, expiry), approval of deletes, paging and filter
//! semantics, the array's rules (one host per port, 409 on a double mapping, a host with LUNs or in
//! a cluster is not deleted), host clusters, metadata — and the SAN model after each step.

use co_lab::arrays::infinibox::{
    self, DEFAULT_PAGE_SIZE, InfiniBox, MAX_PAGE_SIZE, SESSION_COOKIE, SYSTEM_VERSION,
};
use co_lab::san::{ArrayVendor, GroupSpec, San};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ARRAY: &str = "ibox1";
const USER: &str = "admin";
const PASSWORD: &str = "Password123!";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx-1";
const ESX_WWPN: &str = "21000025b5000001";

struct Array {
    _dir: tempfile::TempDir,
    san: San,
    facade: InfiniBox,
    base: String,
    http: reqwest::Client,
}

async fn serve() -> Array {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::InfiniBox).unwrap();
    let facade = InfiniBox::new(san.clone(), ARRAY, USER, PASSWORD);
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
    /// A request with Basic credentials; `approved=true` on every non-GET, as the SDK sends it.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut url = format!("{}{path}", self.base);
        if method != Method::GET {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("approved=true");
        }
        let mut request = self
            .http
            .request(method, url)
            .basic_auth(USER, Some(PASSWORD));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn create_host(&self, name: &str) -> u64 {
        let (status, body) = self
            .call(
                Method::POST,
                "/hosts",
                Some(json!({"name": name, "host_type": "esxi"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["result"]["id"].as_u64().unwrap()
    }
}

fn error_code(body: &Value) -> &str {
    assert!(body["result"].is_null(), "{body}");
    body["error"]["code"].as_str().unwrap()
}

#[tokio::test]
async fn basic_and_session_authentication_follow_the_array() {
    let array = serve().await;
    let unauthenticated = array
        .http
        .get(format!("{}/system", array.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    let body: Value = unauthenticated.json().await.unwrap();
    assert_eq!(error_code(&body), "UNAUTHORIZED");
    let wrong = array
        .http
        .get(format!("{}/system", array.base))
        .basic_auth(USER, Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let refused = array
        .http
        .post(format!("{}/users/login", array.base))
        .json(&json!({"username": USER, "password": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let login = array
        .http
        .post(format!("{}/users/login", array.base))
        .json(&json!({"username": USER, "password": PASSWORD, "clientid": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        cookie.starts_with(&format!("{SESSION_COOKIE}=")),
        "{cookie}"
    );
    assert_eq!(array.facade.open_sessions(), 1);
    let with_cookie = |path: &str| {
        array
            .http
            .get(format!("{}{path}", array.base))
            .header("cookie", cookie.clone())
            .send()
    };
    assert_eq!(
        with_cookie("/system").await.unwrap().status(),
        StatusCode::OK
    );
    array.facade.expire_sessions();
    assert_eq!(
        with_cookie("/system").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let array = serve().await;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = client
        .post(format!("{}/users/login", array.base))
        .json(&json!({"username": USER, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let hosts = client
        .get(format!("{}/hosts", array.base))
        .send()
        .await
        .unwrap();
    assert_eq!(hosts.status(), StatusCode::OK);
    let logout = client
        .post(format!("{}/users/logout?approved=true", array.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    assert_eq!(array.facade.open_sessions(), 0);
    let after = client
        .get(format!("{}/hosts", array.base))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_system_reports_its_version_and_features() {
    let array = serve().await;
    let (status, body) = array.get("/system?fields=version,model").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"]["version"], SYSTEM_VERSION);
    assert!(body["result"].get("name").is_none(), "projected: {body}");
    let (_, features) = array.get("/_features").await;
    let names: Vec<&str> = features["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(names.contains(&"api_auth_sessions"), "{names:?}");
    assert!(names.contains(&"metadata"), "{names:?}");
    let anonymous = array
        .http
        .get(format!("{}/_features", array.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous.status(),
        StatusCode::OK,
        "clients read the features before they log in"
    );
}

#[tokio::test]
async fn collections_page_and_filter_as_the_array_does() {
    let array = serve().await;
    for n in 0..(DEFAULT_PAGE_SIZE + 7) {
        array
            .san
            .create_group(
                ARRAY,
                GroupSpec {
                    name: format!("host-{n:03}"),
                    ..GroupSpec::default()
                },
            )
            .unwrap();
    }
    let (status, first) = array.get("/hosts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["result"].as_array().unwrap().len(), DEFAULT_PAGE_SIZE);
    assert_eq!(
        first["metadata"]["number_of_objects"],
        DEFAULT_PAGE_SIZE + 7
    );
    assert_eq!(first["metadata"]["pages_total"], 2);
    let (_, second) = array.get("/hosts?page=2").await;
    assert_eq!(second["result"].as_array().unwrap().len(), 7);
    assert_eq!(second["metadata"]["page"], 2);
    let (_, all) = array.get("/hosts?page_size=1000&fields=id,name").await;
    let records = all["result"].as_array().unwrap();
    assert_eq!(records.len(), DEFAULT_PAGE_SIZE + 7);
    assert!(records[0].get("ports").is_none(), "projected");

    let (_, one) = array.get("/hosts?name=eq:host-042").await;
    assert_eq!(one["metadata"]["number_of_objects"], 1);
    assert_eq!(one["result"][0]["name"], "host-042");

    let (status, body) = array
        .get(&format!("/hosts?page_size={}", MAX_PAGE_SIZE + 1))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = array.get("/hosts?colour=eq:blue").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "BAD_REQUEST");
    let (status, _) = array.get("/hosts?fields=id,colour").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn hosts_ports_and_luns_keep_the_arrays_rules() {
    let array = serve().await;
    let csi = array.facade.create_csi_volume("pvc-1", 1 << 20).unwrap();
    let host = array.create_host("esx-1").await;
    let (status, port) = array
        .call(
            Method::POST,
            &format!("/hosts/{host}/ports"),
            Some(json!({"type": "fc", "address": "21:00:00:25:B5:00:00:01"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{port}");
    assert_eq!(port["result"]["address"], ESX_WWPN, "the array's spelling");
    let other = array.create_host("esx-2").await;
    let (status, body) = array
        .call(
            Method::POST,
            &format!("/hosts/{other}/ports"),
            Some(json!({"type": "fc", "address": ESX_WWPN})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "one host per port: {body}");
    let (status, _) = array
        .call(
            Method::POST,
            &format!("/hosts/{host}/ports"),
            Some(json!({"type": "iscsi", "address": "21000025b5000002"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not an iSCSI name");
    let (_, found) = array
        .get(&format!("/hosts/host_id_by_initiator_address/{ESX_WWPN}"))
        .await;
    assert_eq!(found["result"], host);

    let (status, lun) = array
        .call(
            Method::POST,
            &format!("/hosts/{host}/luns"),
            Some(json!({"volume_id": csi.id})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lun}");
    assert_eq!(lun["result"]["volume_id"], csi.id);
    assert_eq!(lun["result"]["clustered"], false);
    let number = lun["result"]["lun"].as_u64().unwrap();
    assert_eq!(array.san.mappings(ARRAY).len(), 1);
    let (status, body) = array
        .call(
            Method::POST,
            &format!("/hosts/{host}/luns"),
            Some(json!({"volume_id": csi.id})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "VOLUME_ALREADY_MAPPED");
    let (_, luns) = array.get(&format!("/volumes/{}/luns", csi.id)).await;
    assert_eq!(luns["result"][0]["host_id"], host);

    let (status, body) = array
        .call(Method::DELETE, &format!("/hosts/{host}"), None)
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a host with LUNs stays: {body}"
    );
    let unapproved = array
        .http
        .delete(format!("{}/hosts/{host}/luns/lun/{number}", array.base))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(unapproved.status(), StatusCode::FORBIDDEN);
    assert_eq!(array.san.mappings(ARRAY).len(), 1, "nothing changed");
    let (status, _) = array
        .call(
            Method::DELETE,
            &format!("/hosts/{host}/luns/lun/{number}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(array.san.mappings(ARRAY).is_empty());
    let (status, body) = array
        .call(
            Method::DELETE,
            &format!("/hosts/{host}/luns/lun/{number}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "LUN_NOT_FOUND");
    let (status, _) = array
        .call(Method::DELETE, &format!("/hosts/{host}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(array.san.group(ARRAY, "esx-1").is_none());
    let (status, _) = array.get(&format!("/hosts/{host}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_cluster_mapping_reaches_every_member_and_shows_as_clustered() {
    let array = serve().await;
    let csi = array.facade.create_csi_volume("ds-1", 1 << 20).unwrap();
    for (name, iqn) in [
        ("esx-1", ESX_IQN),
        ("esx-2", "iqn.1998-01.com.vmware:esx-2"),
    ] {
        array
            .san
            .create_group(
                ARRAY,
                GroupSpec {
                    name: name.into(),
                    initiators: vec![iqn.into()],
                    ..GroupSpec::default()
                },
            )
            .unwrap();
    }
    array
        .facade
        .create_cluster("esx-cluster", &["esx-1", "esx-2"])
        .unwrap();
    let cluster = array.facade.cluster_id("esx-cluster");
    let (_, hosts) = array.get("/hosts").await;
    assert_eq!(
        hosts["metadata"]["number_of_objects"], 2,
        "a cluster is no host"
    );
    let (status, lun) = array
        .call(
            Method::POST,
            &format!("/clusters/{cluster}/luns"),
            Some(json!({"volume_id": csi.id})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lun}");
    assert_eq!(lun["result"]["clustered"], true);
    let visible = array
        .san
        .visible_luns(&["iqn.1998-01.com.vmware:esx-2".into()]);
    assert_eq!(visible.len(), 1, "members see the cluster's volumes");
    let esx1 = array.facade.host_id("esx-1");
    let (_, luns) = array.get(&format!("/hosts/{esx1}/luns")).await;
    assert_eq!(luns["result"][0]["clustered"], true);
    assert_eq!(luns["result"][0]["host_cluster_id"], cluster);
    let (_, by_volume) = array.get(&format!("/volumes/{}/luns", csi.id)).await;
    assert_eq!(by_volume["result"][0]["host_cluster_id"], cluster);
    assert!(by_volume["result"][0]["host_id"].is_null());
    let (status, _) = array
        .call(Method::DELETE, &format!("/hosts/{esx1}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a cluster member stays");
    let (_, clusters) = array.get("/clusters?name=eq:esx-cluster").await;
    assert_eq!(clusters["result"][0]["hosts"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn metadata_is_kept_per_object_and_goes_with_it() {
    let array = serve().await;
    let host = array.create_host("xcopy-host-1").await;
    let (status, body) = array
        .call(
            Method::PUT,
            &format!("/metadata/{host}"),
            Some(json!({"created_by": "copy-offload"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, value) = array.get(&format!("/metadata/{host}/created_by")).await;
    assert_eq!(value["result"]["value"], "copy-offload");
    let (_, all) = array.get(&format!("/metadata/{host}")).await;
    assert_eq!(all["metadata"]["number_of_objects"], 1);
    assert_eq!(
        array.facade.metadata(host)["created_by"],
        "copy-offload".to_owned()
    );
    let (status, body) = array.get(&format!("/metadata/{host}/absent")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "METADATA_IS_NOT_FOUND");
    let (status, _) = array.get("/metadata/1/created_by").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no such object");
    let (status, _) = array
        .call(Method::DELETE, &format!("/hosts/{host}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(array.facade.metadata(host).is_empty());
    assert!(array.facade.leftovers().is_empty());
}

#[tokio::test]
async fn csi_volumes_are_found_by_name_and_id() {
    let array = serve().await;
    let csi = infinibox::create_csi_volume(&array.san, ARRAY, "pvc-9", 1 << 20).unwrap();
    assert_eq!(csi.volume_handle, format!("{}$$iscsi", csi.id));
    let (_, by_name) = array.get("/volumes?name=eq:pvc-9").await;
    assert_eq!(by_name["result"][0]["id"], csi.id);
    assert_eq!(by_name["result"][0]["serial"], csi.volume.serial);
    assert_eq!(
        format!("naa.6{}", csi.volume.serial),
        csi.volume.naa,
        "the SAN's device name is naa.6 + serial"
    );
    let (status, body) = array.get("/volumes/12").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "VOLUME_NOT_FOUND");
}
