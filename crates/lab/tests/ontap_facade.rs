//! The ONTAP facade over HTTP on loopback, driven through the call sequence the populator's ONTAP
//! client makes: SVM and cluster lookup, igroup ensure, initiator add, LUN by name,
//! lun-map create/list/delete — and the SAN model reflects each step.

use co_lab::arrays::ontap;
use co_lab::san::{ArrayVendor, San};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const USER: &str = "admin";
const PASSWORD: &str = "netapp!123";
const HOST_IQN: &str = "iqn.1998-01.com.vmware:esx-1";

struct Array {
    _dir: tempfile::TempDir,
    san: San,
    base: String,
    http: reqwest::Client,
}

async fn serve() -> Array {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array("cluster1", ArrayVendor::Ontap).unwrap();
    let router = ontap::router(san.clone(), "cluster1", "svm1", USER, PASSWORD);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Array {
        _dir: dir,
        san,
        base,
        http: reqwest::Client::new(),
    }
}

impl Array {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(USER, Some(PASSWORD));
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

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(error["code"].is_string(), "{body}");
}

#[tokio::test]
async fn requests_without_valid_basic_credentials_get_401() {
    let array = serve().await;
    let url = format!("{}/api/cluster", array.base);

    let response = array.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response
            .headers()
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap().starts_with("Basic"))
    );
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string());

    let wrong = array
        .http
        .get(&url)
        .basic_auth(USER, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn populator_call_sequence_maps_and_unmaps_a_trident_lun() {
    let array = serve().await;
    let lun = ontap::create_trident_volume(&array.san, "cluster1", "pvc_1234", 2 << 30).unwrap();
    assert_eq!(lun.name, "/vol/pvc_1234/lun0");

    // 1. Connect: SVM by name, cluster version.
    let svms = array.get("/api/svm/svms?name=svm1").await;
    assert_eq!(svms["num_records"], 1);
    let svm_uuid = svms["records"][0]["uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        array.get("/api/svm/svms?name=other").await["num_records"],
        0
    );
    let cluster = array.get("/api/cluster").await;
    assert_eq!(cluster["version"]["generation"], 9);
    assert!(
        cluster["version"]["full"]
            .as_str()
            .unwrap()
            .starts_with("NetApp Release 9.")
    );

    // 2. Ensure the igroup: absent, created (201 + record), duplicate → 409.
    let group = "xcopy-hostsystem-host-1-iscsi";
    let query = format!("/api/protocols/san/igroups?name={group}&svm.uuid={svm_uuid}");
    assert_eq!(array.get(&query).await["num_records"], 0);
    let create =
        json!({"name": group, "protocol": "iscsi", "os_type": "vmware", "svm": {"uuid": svm_uuid}});
    let (status, body) = array
        .call(
            Method::POST,
            "/api/protocols/san/igroups?return_records=true",
            Some(create.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["num_records"], 1);
    let igroup_uuid = body["records"][0]["uuid"].as_str().unwrap().to_owned();
    assert_eq!(body["records"][0]["protocol"], "iscsi");
    let (status, body) = array
        .call(
            Method::POST,
            "/api/protocols/san/igroups?return_records=true",
            Some(create),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);

    // 3. Initiator membership check, add, duplicate add → 409.
    let members = array.get(&format!("{query}&fields=initiators.name")).await;
    assert!(members["records"][0].get("initiators").is_some());
    assert_eq!(members["records"][0]["initiators"], json!([]));
    let initiators = format!("/api/protocols/san/igroups/{igroup_uuid}/initiators");
    let (status, body) = array
        .call(Method::POST, &initiators, Some(json!({"name": HOST_IQN})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = array
        .call(Method::POST, &initiators, Some(json!({"name": HOST_IQN})))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    let members = array.get(&format!("{query}&fields=initiators.name")).await;
    assert_eq!(members["records"][0]["initiators"][0]["name"], HOST_IQN);

    // 4. LUN by name with fields: the serial gives ESXi's device name.
    let luns = array
        .get("/api/storage/luns?name=/vol/pvc_1234/lun0&fields=serial_number,space.size,uuid")
        .await;
    assert_eq!(luns["num_records"], 1);
    let record = &luns["records"][0];
    let serial = record["serial_number"].as_str().unwrap();
    let naa = format!(
        "naa.600a0980{}",
        serial
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    assert_eq!(naa, lun.naa);
    assert_eq!(record["space"]["size"], 2u64 << 30);
    let lun_uuid = record["uuid"].as_str().unwrap().to_owned();
    assert!(
        record.get("status").is_none(),
        "fields= limits the record to what was asked"
    );

    // 5. Map: 201 with the LUN id ONTAP assigned; the host can now see the device.
    let (status, body) = array
        .call(
            Method::POST,
            "/api/protocols/san/lun-maps?return_records=true",
            Some(json!({
                "igroup": {"name": group},
                "lun": {"name": lun.name, "uuid": lun_uuid},
                "svm": {"uuid": svm_uuid},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let lun_id = body["records"][0]["logical_unit_number"].as_u64().unwrap();
    let visible = array.san.visible_luns(&[HOST_IQN.to_owned()]);
    assert_eq!(visible.len(), 1);
    assert_eq!(visible[0].naa, lun.naa);
    assert_eq!(u64::from(visible[0].lun_id), lun_id);

    // 6. Current mapped groups via igroup.name=* and the LUN path.
    let maps = array
        .get("/api/protocols/san/lun-maps?igroup.name=*&lun.name=/vol/pvc_1234/lun0&fields=igroup.name")
        .await;
    assert_eq!(maps["num_records"], 1);
    assert_eq!(maps["records"][0]["igroup"]["name"], group);
    assert_eq!(
        array
            .get("/api/protocols/san/lun-maps?igroup.name=*&lun.name=/vol/other/lun0")
            .await["num_records"],
        0
    );

    // 7. Unmap by (lun uuid, igroup uuid); zero records afterwards; the device is gone for the host.
    let found = array
        .get(&format!(
            "/api/protocols/san/lun-maps?igroup.name={group}&lun.name=/vol/pvc_1234/lun0"
        ))
        .await;
    let igroup_from_map = found["records"][0]["igroup"]["uuid"].as_str().unwrap();
    assert_eq!(igroup_from_map, igroup_uuid);
    let (status, body) = array
        .call(
            Method::DELETE,
            &format!("/api/protocols/san/lun-maps/{lun_uuid}/{igroup_uuid}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        array
            .get(&format!(
                "/api/protocols/san/lun-maps?igroup.name={group}&lun.name=/vol/pvc_1234/lun0"
            ))
            .await["num_records"],
        0
    );
    assert!(array.san.visible_luns(&[HOST_IQN.to_owned()]).is_empty());
    let (status, body) = array
        .call(
            Method::DELETE,
            &format!("/api/protocols/san/lun-maps/{lun_uuid}/{igroup_uuid}"),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn luns_are_created_and_deleted_through_rest() {
    let array = serve().await;
    let (status, body) = array
        .call(
            Method::POST,
            "/api/storage/luns?return_records=true",
            Some(json!({
                "name": "/vol/vol1/lun7",
                "os_type": "vmware",
                "space": {"size": 1048576},
                "svm": {"name": "svm1"},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let uuid = body["records"][0]["uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        array.san.volume("cluster1", "/vol/vol1/lun7").unwrap().uuid,
        uuid
    );
    let record = array.get(&format!("/api/storage/luns/{uuid}")).await;
    assert_eq!(record["location"]["volume"]["name"], "vol1");
    assert_eq!(record["status"]["mapped"], false);
    assert_eq!(record["os_type"], "vmware");

    // The host OS is required, from ONTAP's list, and kept.
    let lun = |os_type: Option<&str>| {
        let mut body =
            json!({"name": "/vol/vol1/lun8", "space": {"size": 1048576}, "svm": {"name": "svm1"}});
        if let Some(os_type) = os_type {
            body["os_type"] = json!(os_type);
        }
        body
    };
    for refused in [None, Some("vmfs")] {
        let (status, body) = array
            .call(Method::POST, "/api/storage/luns", Some(lun(refused)))
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["target"], "os_type", "{refused:?}: {body}");
    }
    assert!(array.san.volume("cluster1", "/vol/vol1/lun8").is_none());
    let (status, body) = array
        .call(
            Method::POST,
            "/api/storage/luns?return_records=true",
            Some(lun(Some("linux"))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["records"][0]["os_type"], "linux");

    let (status, body) = array
        .call(
            Method::POST,
            "/api/storage/luns",
            Some(json!({"name": "lun-without-path", "space": {"size": 4096}, "svm": {"name": "svm1"}})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["target"], "name");
    let (status, body) = array
        .call(
            Method::POST,
            "/api/storage/luns",
            Some(json!({"name": "/vol/v/l", "space": {"size": 4096}, "svm": {"name": "svm9"}})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);

    let (status, _) = array
        .call(Method::DELETE, &format!("/api/storage/luns/{uuid}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(array.san.volume("cluster1", "/vol/vol1/lun7").is_none());
}

#[tokio::test]
async fn bad_requests_get_ontap_error_bodies() {
    let array = serve().await;

    let (status, body) = array
        .call(Method::GET, "/api/storage/luns?bogus.field=1", None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "262179");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bogus.field")
    );

    let (status, body) = array
        .call(Method::GET, "/api/storage/luns/no-such-uuid", None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "4");

    let (status, body) = array
        .call(
            Method::POST,
            "/api/protocols/san/igroups",
            Some(json!({"name": "g", "svm": {"name": "svm1"}})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["target"], "os_type");

    let response = array
        .http
        .post(format!("{}/api/protocols/san/lun-maps", array.base))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_igroup_comment_is_stored_and_returned_like_ontap() {
    let array = serve().await;
    let comment = "created by copy-offload; deleted when no LUN is mapped";
    let (status, body) = array
        .call(
            Method::POST,
            "/api/protocols/san/igroups?return_records=true",
            Some(json!({
                "name": "xcopy-host-7-iscsi",
                "protocol": "iscsi",
                "os_type": "vmware",
                "comment": comment,
                "svm": {"name": "svm1"},
                "initiators": [{"name": HOST_IQN}],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["records"][0]["comment"], comment);
    let uuid = body["records"][0]["uuid"].as_str().unwrap().to_owned();

    // A later reader (a resumed run) sees it by uuid, by name with `fields=comment`, and can
    // filter on it; the SAN model keeps it.
    let by_uuid = array
        .get(&format!("/api/protocols/san/igroups/{uuid}"))
        .await;
    assert_eq!(by_uuid["comment"], comment);
    let listed = array
        .get("/api/protocols/san/igroups?name=xcopy-host-7-iscsi&fields=uuid,name,comment,initiators.name")
        .await;
    assert_eq!(listed["records"][0]["comment"], comment);
    let filtered = array
        .get("/api/protocols/san/igroups?comment=created*&fields=name")
        .await;
    assert_eq!(filtered["num_records"], 1, "{filtered}");
    assert_eq!(
        array
            .san
            .group("cluster1", "xcopy-host-7-iscsi")
            .unwrap()
            .comment
            .as_deref(),
        Some(comment)
    );

    // An igroup created without a comment has none in its record.
    let (status, body) = array
        .call(
            Method::POST,
            "/api/protocols/san/igroups?return_records=true",
            Some(json!({"name": "plain", "os_type": "vmware", "svm": {"name": "svm1"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["records"][0].get("comment").is_none(), "{body}");

    // ONTAP caps comments at 254 characters.
    let (status, body) = array
        .call(
            Method::POST,
            "/api/protocols/san/igroups",
            Some(json!({
                "name": "too-long",
                "os_type": "vmware",
                "comment": "x".repeat(255),
                "svm": {"name": "svm1"},
            })),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["target"], "comment");
    assert!(array.san.group("cluster1", "too-long").is_none());
}
