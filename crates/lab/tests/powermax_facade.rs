//! The PowerMax Unisphere facade over HTTP on loopback, driven with raw requests: Basic auth on
//! every request, versioned paths, the storage group / masking view / host / port group model and
//! what it does to the SAN, the array's rules, iterators, async jobs and error bodies.

use co_lab::arrays::powermax::{self, FC_PORT_GROUP, ISCSI_PORT_GROUP, PowerMax};
use co_lab::san::{ArrayVendor, GroupSpec, San};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ARRAY: &str = "pmax1";
const USER: &str = "smc";
const PASSWORD: &str = "Password123!";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx-1";
const ESX_FC: &str = "10:00:00:90:fa:00:00:01";
const WORKER_IQN: &str = "iqn.2020-01.io.openshift:worker-1";

struct Array {
    _dir: tempfile::TempDir,
    san: San,
    facade: PowerMax,
    base: String,
    prov: String,
    http: reqwest::Client,
}

async fn serve() -> Array {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::PowerMax).unwrap();
    let facade = PowerMax::new(san.clone(), ARRAY, USER, PASSWORD);
    let router = facade.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/univmax/restapi", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let prov = format!(
        "{base}/100/sloprovisioning/symmetrix/{}",
        facade.symmetrix_id()
    );
    Array {
        _dir: dir,
        san,
        facade,
        base,
        prov,
        http: reqwest::Client::new(),
    }
}

impl Array {
    async fn call(&self, method: Method, url: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, url)
            .basic_auth(USER, Some(PASSWORD));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, &format!("{}/{path}", self.prov), None)
            .await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, &format!("{}/{path}", self.prov), Some(body))
            .await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, &format!("{}/{path}", self.prov), Some(body))
            .await
    }

    async fn delete(&self, path: &str) -> StatusCode {
        self.call(Method::DELETE, &format!("{}/{path}", self.prov), None)
            .await
            .0
    }

    fn volume(&self, name: &str) -> String {
        let volume = self.san.create_volume(ARRAY, name, 1 << 30).unwrap();
        powermax::device_id(&volume)
    }

    fn worker(&self, volume: &str) {
        if self.san.group(ARRAY, "ocp-worker").is_none() {
            self.san
                .create_group(
                    ARRAY,
                    GroupSpec {
                        name: "ocp-worker".into(),
                        initiators: vec![WORKER_IQN.into()],
                        ..GroupSpec::default()
                    },
                )
                .unwrap();
        }
        self.san.map(ARRAY, volume, "ocp-worker").unwrap();
    }
}

fn add(device: &str) -> Value {
    json!({"editStorageGroupActionParam": {"expandStorageGroupParam": {
        "addSpecificVolumeParam": {"volumeId": [device]}}}, "executionOption": "SYNCHRONOUS"})
}

fn remove(device: &str) -> Value {
    json!({"editStorageGroupActionParam": {"removeVolumeParam": {"volumeId": [device]}},
        "executionOption": "SYNCHRONOUS"})
}

fn view(name: &str, host: &str, port_group: &str, sg: &str) -> Value {
    json!({
        "maskingViewId": name,
        "hostOrHostGroupSelection": {"useExistingHostParam": {"hostId": host}},
        "portGroupSelection": {"useExistingPortGroupParam": {"portGroupId": port_group}},
        "storageGroupSelection": {"useExistingStorageGroupParam": {"storageGroupId": sg}},
        "executionOption": "SYNCHRONOUS",
    })
}

#[tokio::test]
async fn basic_auth_on_every_request_and_the_version_resource() {
    let array = serve().await;
    let version = format!("{}/version", array.base);
    let response = array.http.get(&version).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].is_string(), "{body}");
    let wrong = array
        .http
        .get(&version)
        .basic_auth(USER, Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let (status, body) = array.call(Method::GET, &version, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], powermax::UNISPHERE_VERSION);
    assert_eq!(body["api_version"], "104");
    assert!(
        body["supported_api_versions"]
            .as_array()
            .unwrap()
            .contains(&json!("100"))
    );

    let sid = array.facade.symmetrix_id().to_owned();
    let (status, body) = array
        .call(
            Method::GET,
            &format!("{}/104/system/symmetrix/{sid}", array.base),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["model"], powermax::MODEL);
    assert_eq!(body["ucode"], powermax::UCODE);
    let (status, body) = array
        .call(
            Method::GET,
            &format!("{}/100/system/symmetrix/000197900000", array.base),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["message"].as_str().unwrap().contains("000197900000"));
    let (status, _) = array
        .call(
            Method::GET,
            &format!("{}/91/system/symmetrix/{sid}", array.base),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unsupported API version");
}

#[tokio::test]
async fn a_masking_view_exposes_its_storage_group_to_its_host() {
    let array = serve().await;
    let device = array.volume("vol-a");
    array.worker("vol-a");
    array.facade.log_in(ESX_IQN).unwrap();

    let (status, body) = array.get(&format!("volume/{device}")).await;
    assert_eq!(status, StatusCode::OK);
    let lab = array.san.volume(ARRAY, "vol-a").unwrap();
    assert_eq!(body["wwn"], lab.serial);
    assert_eq!(format!("naa.{}", lab.serial), lab.naa);
    assert_eq!(body["volume_identifier"], "vol-a");
    assert_eq!(body["cap_gb"], 1.0);
    assert_eq!(body["storageGroupId"], json!(["ocp-worker_SG"]));

    // The ESXi initiator is logged in but in no host.
    let (_, body) = array
        .get(&format!("initiator?initiator_hba={ESX_IQN}"))
        .await;
    let ids = body["initiatorId"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 1);
    let (_, body) = array.get("initiator?in_a_host=true").await;
    assert!(!body["initiatorId"].as_array().unwrap().contains(&ids[0]));
    let (status, body) = array
        .get(&format!("initiator/{}", ids[0].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("host").is_none(), "{body}");

    let (status, body) = array
        .post(
            "host",
            json!({"hostId": "esx-1", "initiatorId": [ESX_IQN], "executionOption": "SYNCHRONOUS"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["initiator"], json!([ESX_IQN]));
    let (_, body) = array.get(&format!("initiator/{ESX_IQN}")).await;
    assert_eq!(body["host"], "esx-1");

    let (status, body) = array
        .post(
            "storagegroup",
            json!({"storageGroupId": "sg-a", "srpId": "None", "emulation": "FBA", "executionOption": "SYNCHRONOUS"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = array.put("storagegroup/sg-a", add(&device)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["num_of_vols"], 1);
    assert!(
        array.san.visible_luns(&[ESX_IQN.to_owned()]).is_empty(),
        "no view yet"
    );

    let (status, body) = array
        .post(
            "maskingview",
            view("mv-a", "esx-1", ISCSI_PORT_GROUP, "sg-a"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let visible = array.san.visible_luns(&[ESX_IQN.to_owned()]);
    assert_eq!(visible.len(), 1);
    assert_eq!(visible[0].naa, lab.naa);
    let (_, body) = array
        .get(&format!("maskingview/mv-a/connections?volume_id={device}"))
        .await;
    let connection = &body["maskingViewConnection"][0];
    assert_eq!(
        u32::from_str_radix(connection["host_lun_address"].as_str().unwrap(), 16).unwrap(),
        visible[0].lun_id
    );
    let (_, body) = array.get(&format!("volume/{device}")).await;
    assert_eq!(body["storageGroupId"], json!(["ocp-worker_SG", "sg-a"]));
    let (_, body) = array.get("maskingview/ocp-worker_MV").await;
    assert_eq!(body["hostId"], "ocp-worker");

    // Rules: the last volume of a group in a view, and a group or host in a view, stay.
    let (status, body) = array.put("storagegroup/sg-a", remove(&device)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("masking view"));
    assert_eq!(
        array.delete("storagegroup/sg-a").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(array.delete("host/esx-1").await, StatusCode::BAD_REQUEST);
    let (status, _) = array.put("storagegroup/sg-a", add(&device)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "added twice");
    let (status, _) = array
        .post(
            "maskingview",
            view("mv-a", "esx-1", ISCSI_PORT_GROUP, "sg-a"),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "exists");

    assert_eq!(
        array.delete("maskingview/mv-a").await,
        StatusCode::NO_CONTENT
    );
    assert!(array.san.visible_luns(&[ESX_IQN.to_owned()]).is_empty());
    assert_eq!(
        array.delete("maskingview/mv-a").await,
        StatusCode::NOT_FOUND
    );
    let (status, _) = array.put("storagegroup/sg-a", remove(&device)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        array.delete("storagegroup/sg-a").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(array.delete("host/esx-1").await, StatusCode::NO_CONTENT);
    let (_, body) = array
        .get(&format!("initiator?initiator_hba={ESX_IQN}"))
        .await;
    assert_eq!(
        body["initiatorId"].as_array().unwrap().len(),
        1,
        "still logged in"
    );
    let mappings: Vec<String> = array
        .san
        .mappings(ARRAY)
        .into_iter()
        .map(|m| m.group)
        .collect();
    assert_eq!(mappings, ["ocp-worker"], "the worker mapping is untouched");
    assert!(array.facade.leftovers().is_empty());
}

#[tokio::test]
async fn the_array_refuses_what_a_real_one_refuses() {
    let array = serve().await;
    array.facade.log_in(ESX_FC).unwrap();
    array.facade.log_in(ESX_IQN).unwrap();

    // An initiator nobody logged in, and one in another host.
    let (status, body) = array
        .post(
            "host",
            json!({"hostId": "h1", "initiatorId": ["iqn.1998-01.com.vmware:stranger"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("not logged in"));
    let (status, _) = array
        .post(
            "host",
            json!({"hostId": "h1", "initiatorId": ["10000090fa000001"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = array
        .post(
            "host",
            json!({"hostId": "h2", "initiatorId": ["10000090fa000001"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already in host h1")
    );
    let (status, _) = array.post("host", json!({"hostId": "h1"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = array.post("host", json!({"hostId": "bad name!"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Unknown fields, a service level without a pool (upstream's empty SLO block).
    let (status, body) = array
        .post(
            "storagegroup",
            json!({"storageGroupId": "sg", "srpId": "None", "name": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("\"name\""));
    let (status, body) = array
        .post(
            "storagegroup",
            json!({"storageGroupId": "sg", "srpId": "none", "emulation": "FBA",
                "sloBasedStorageGroupParam": [{"sloId": "", "workloadSelection": "",
                    "volumeAttributes": [{"num_of_vols": 0}]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = array
        .post(
            "storagegroup",
            json!({"storageGroupId": "sg", "srpId": "None", "emulation": "FBA",
                "sloBasedStorageGroupParam": [{"sloId": "", "volumeAttributes": [{"num_of_vols": 0}]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("service level"));
    let (status, _) = array
        .post(
            "storagegroup",
            json!({"storageGroupId": "sg", "srpId": "None"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = array
        .post(
            "storagegroup",
            json!({"storageGroupId": "sg", "srpId": "None"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // An FC host cannot be reached through the iSCSI port group.
    let device = array.volume("vol-r");
    array.put("storagegroup/sg", add(&device)).await;
    let (status, body) = array
        .post("maskingview", view("mv", "h1", ISCSI_PORT_GROUP, "sg"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("cannot reach"));
    let (status, _) = array
        .post("maskingview", view("mv", "h1", FC_PORT_GROUP, "sg"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        array
            .san
            .visible_luns(&["fc.20000090fa000001:10000090fa000001".to_owned()])
            .len(),
        1
    );
    let (status, body) = array.get("portgroup/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["message"].as_str().unwrap().contains("nope"));
    let (_, body) = array.get(&format!("portgroup/{FC_PORT_GROUP}")).await;
    assert_eq!(body["port_group_protocol"], "SCSI_FC");
    let (status, _) = array.get("volume?size=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "unknown filter");
    let (status, _) = array.get("volume/FFFFF").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(array.facade.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn volume_lists_page_through_an_iterator() {
    let array = serve().await;
    array.facade.set_page_size(2);
    let mut devices: Vec<String> = (0..5).map(|i| array.volume(&format!("v{i}"))).collect();
    devices.sort();
    let (status, body) = array.get("volume").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["count"], 5);
    assert_eq!(body["maxPageSize"], 2);
    let mut seen: Vec<String> = body["resultList"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["volumeId"].as_str().unwrap().to_owned())
        .collect();
    let id = body["id"].as_str().unwrap();
    for (from, to) in [(3, 4), (5, 5)] {
        let (status, page) = array
            .call(
                Method::GET,
                &format!(
                    "{}/common/Iterator/{id}/page?from={from}&to={to}",
                    array.base
                ),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["volumeId"].as_str().unwrap().to_owned()),
        );
    }
    seen.sort();
    assert_eq!(seen, devices);
    let (status, _) = array
        .call(
            Method::GET,
            &format!("{}/common/Iterator/{id}/page?from=1&to=5", array.base),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "larger than a page");
    let (_, body) = array.get("volume?volume_identifier=v3").await;
    assert_eq!(body["count"], 1);
}

#[tokio::test]
async fn asynchronous_requests_answer_a_job() {
    let array = serve().await;
    let (status, job) = array
        .post(
            "storagegroup",
            json!({"storageGroupId": "sg-j", "srpId": "None", "executionOption": "ASYNCHRONOUS"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = job["jobId"].as_str().unwrap();
    let (status, done) = array
        .call(
            Method::GET,
            &format!("{}/100/system/job/{id}", array.base),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["status"], "SUCCEEDED");
    assert_eq!(array.facade.storage_groups(), ["sg-j"]);

    let (_, job) = array
        .post(
            "storagegroup",
            json!({"storageGroupId": "sg-j", "srpId": "None", "executionOption": "ASYNCHRONOUS"}),
        )
        .await;
    let id = job["jobId"].as_str().unwrap();
    let (_, failed) = array
        .call(
            Method::GET,
            &format!("{}/100/system/job/{id}", array.base),
            None,
        )
        .await;
    assert_eq!(failed["status"], "FAILED");
    assert!(
        failed["result"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
}
