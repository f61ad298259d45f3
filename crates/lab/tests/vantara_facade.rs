//! The Vantara (Configuration Manager REST) facade over HTTP on loopback, driven with raw
//! requests: sessions (Basic login → `Session` token, 401, logout, the session limit), LDEVs
//! (`naaId`, `NOT DEFINED`), per-port host groups and their initiators, LU paths through async
//! jobs that must be polled, the array's refusals and error bodies — and the SAN model after each step.

use co_lab::arrays::vantara::{self, MAX_SESSIONS, Vantara};
use co_lab::san::{ArrayVendor, San, Volume};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ARRAY: &str = "vsp1";
const USER: &str = "maintenance";
const PASSWORD: &str = "raid-maintenance";
const ESX_WWPN: &str = "21:00:00:24:ff:4a:5b:01";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx-1";

struct Array {
    _dir: tempfile::TempDir,
    san: San,
    facade: Vantara,
    base: String,
    http: reqwest::Client,
}

async fn serve() -> Array {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::Vantara).unwrap();
    let facade = Vantara::new(san.clone(), ARRAY, USER, PASSWORD);
    facade
        .add_host_group("CL1-A", 1, "esx-1-fc", &[ESX_WWPN.to_owned()])
        .unwrap();
    facade
        .add_host_group("CL1-B", 3, "esx-1-iscsi", &[ESX_IQN.to_owned()])
        .unwrap();
    facade
        .add_host_group(
            "CL2-A",
            2,
            "worker-1",
            &["21:00:00:24:ff:4a:5b:99".to_owned()],
        )
        .unwrap();
    let router = facade.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!(
        "http://{}/ConfigurationManager",
        listener.local_addr().unwrap()
    );
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
    async fn login(&self) -> (String, u64) {
        let response = self
            .http
            .post(format!("{}/v1/objects/sessions", self.base))
            .basic_auth(USER, Some(PASSWORD))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        (
            body["token"].as_str().unwrap().to_owned(),
            body["sessionId"].as_u64().unwrap(),
        )
    }

    async fn send(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/v1/objects{path}", self.base))
            .header("Authorization", format!("Session {token}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        self.get_expecting(token, path, StatusCode::OK, "answered")
            .await
    }

    /// GETs `path` and checks the array answers `expected` (`why` says what the status means).
    async fn get_expecting(
        &self,
        token: &str,
        path: &str,
        expected: StatusCode,
        why: &str,
    ) -> Value {
        let (status, body) = self.send(token, reqwest::Method::GET, path, None).await;
        assert_eq!(status, expected, "{path}: {why}: {body}");
        body
    }

    /// Polls job `id` until it completes; answers the finished job and how many looks it took.
    async fn finish(&self, token: &str, submitted: &Value) -> (Value, usize) {
        let id = submitted["jobId"].as_u64().unwrap();
        for looks in 1..=10 {
            let job = self.get(token, &format!("/jobs/{id}")).await;
            if job["status"] == "Completed" {
                return (job, looks);
            }
            assert_eq!(job["status"], "InProgress", "{job}");
        }
        panic!("job {id} never completed");
    }
}

#[tokio::test]
async fn sessions_are_basic_login_session_tokens_and_logout() {
    let array = serve().await;
    let version: Value = array
        .http
        .get(format!("{}/configuration/version", array.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["apiVersion"], vantara::API_VERSION);

    let wrong = array
        .http
        .post(format!("{}/v1/objects/sessions", array.base))
        .basic_auth(USER, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let error: Value = wrong.json().await.unwrap();
    assert_eq!(error["messageId"], "KART30005-E");
    assert!(error["solution"].is_string(), "{error}");

    let (token, id) = array.login().await;
    assert_eq!(array.facade.open_sessions(), 1);
    let storage = array.get(&token, "/storages/instance").await;
    assert_eq!(storage["model"], vantara::MODEL);
    assert_eq!(
        storage["storageDeviceId"],
        vantara::storage_device_id(ARRAY)
    );

    let (status, _) = array
        .send(
            "not-a-token",
            reqwest::Method::GET,
            "/storages/instance",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _) = array
        .send(
            &token,
            reqwest::Method::DELETE,
            &format!("/sessions/{id}"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(array.facade.open_sessions(), 0);
    array
        .get_expecting(
            &token,
            "/storages/instance",
            StatusCode::UNAUTHORIZED,
            "an ended session is refused",
        )
        .await;

    let (token, _) = array.login().await;
    array.facade.expire_sessions();
    array
        .get_expecting(
            &token,
            "/storages/instance",
            StatusCode::UNAUTHORIZED,
            "an expired session is refused",
        )
        .await;
}

#[tokio::test]
async fn sessions_never_ended_exhaust_the_array() {
    let array = serve().await;
    for _ in 0..MAX_SESSIONS {
        array.login().await;
    }
    let refused = array
        .http
        .post(format!("{}/v1/objects/sessions", array.base))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn ldevs_report_their_naa_id_and_undefined_ones_are_not_404() {
    let array = serve().await;
    let volume = array.san.create_volume(ARRAY, "pvc-1", 1 << 20).unwrap();
    let ldev = vantara::ldev_id(&volume).unwrap();
    let (token, _) = array.login().await;
    let body = array.get(&token, &format!("/ldevs/{ldev}")).await;
    assert_eq!(body["naaId"], volume.serial);
    assert_eq!(format!("naa.{}", volume.serial.to_lowercase()), volume.naa);
    assert_eq!(body["label"], "pvc-1");
    assert_eq!(body["emulationType"], "OPEN-V-CVS");
    assert_eq!(body["blockCapacity"], 2048);
    assert_eq!(body["ports"], json!([]));

    let undefined = array.get(&token, "/ldevs/4000").await;
    assert_eq!(undefined["emulationType"], "NOT DEFINED");
    assert!(undefined.get("naaId").is_none());
}

#[tokio::test]
async fn host_groups_and_initiators_are_listed_per_port() {
    let array = serve().await;
    let (token, _) = array.login().await;
    let ports = array.get(&token, "/ports").await;
    let kinds: Vec<(&str, &str)> = ports["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["portId"].as_str().unwrap(),
                p["portType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("CL1-A", "FIBRE"), ("CL2-A", "FIBRE"), ("CL1-B", "ISCSI")]
    );

    let groups = array.get(&token, "/host-groups?portId=CL1-A").await;
    assert_eq!(groups["data"][0]["hostGroupId"], "CL1-A,1");
    assert_eq!(groups["data"][0]["hostGroupName"], "esx-1-fc");
    let wwns = array.get(&token, "/host-wwns?portId=CL1-A").await;
    assert_eq!(wwns["data"][0]["hostWwn"], "21000024ff4a5b01");
    assert_eq!(wwns["data"][0]["hostGroupNumber"], 1);
    let iscsis = array.get(&token, "/host-iscsis?portId=CL1-B").await;
    assert_eq!(iscsis["data"][0]["iscsiName"], ESX_IQN);
    assert_eq!(iscsis["data"][0]["hostGroupNumber"], 3);

    array
        .get_expecting(
            &token,
            "/host-groups",
            StatusCode::BAD_REQUEST,
            "portId is required",
        )
        .await;
    array
        .get_expecting(
            &token,
            "/host-wwns?portId=CL9-Z",
            StatusCode::NOT_FOUND,
            "an unknown port",
        )
        .await;
}

#[tokio::test]
async fn lu_paths_are_made_and_removed_by_jobs_that_must_be_polled() {
    let array = serve().await;
    let volume = array.san.create_volume(ARRAY, "pvc-1", 1 << 20).unwrap();
    let ldev = vantara::ldev_id(&volume).unwrap();
    let (token, _) = array.login().await;

    let (status, submitted) = array
        .send(
            &token,
            reqwest::Method::POST,
            "/luns",
            Some(json!({"ldevId": ldev, "portId": "CL1-A", "hostGroupNumber": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{submitted}");
    assert_eq!(submitted["status"], "InProgress");
    assert!(
        array.san.mappings(ARRAY).is_empty(),
        "nothing changes before the job completes"
    );
    let (job, looks) = array.finish(&token, &submitted).await;
    assert!(looks > 1, "the first look still shows the job running");
    assert_eq!(job["state"], "Succeeded", "{job}");
    let path = job["affectedResources"][0].as_str().unwrap();
    assert!(path.ends_with("/luns/CL1-A,1,0"), "{path}");
    assert_eq!(array.san.visible_luns(&[ESX_WWPN.to_owned()]).len(), 1);

    let ldev_body = array.get(&token, &format!("/ldevs/{ldev}")).await;
    assert_eq!(
        ldev_body["ports"],
        json!([{"portId": "CL1-A", "hostGroupNumber": 1, "hostGroupName": "esx-1-fc", "lun": 0}])
    );
    let luns = array
        .get(&token, "/luns?portId=CL1-A&hostGroupNumber=1")
        .await;
    assert_eq!(luns["data"][0]["lunId"], "CL1-A,1,0");
    assert_eq!(luns["data"][0]["ldevId"], ldev);

    // A second path to the same host group: the job fails with the array's error.
    let (_, again) = array
        .send(
            &token,
            reqwest::Method::POST,
            "/luns",
            Some(json!({"ldevId": ldev, "portId": "CL1-A", "hostGroupNumber": 1})),
        )
        .await;
    let (job, _) = array.finish(&token, &again).await;
    assert_eq!(job["state"], "Failed");
    assert_eq!(job["error"]["messageId"], "KART40055-E");

    // Numbers travel as numbers.
    let (status, body) = array
        .send(
            &token,
            reqwest::Method::POST,
            "/luns",
            Some(json!({"ldevId": ldev.to_string(), "portId": "CL1-A", "hostGroupNumber": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["messageId"], "KART40038-E");

    // Waiting for the job in the request itself.
    let waited = array
        .http
        .delete(format!("{}/v1/objects/luns/CL1-A,1,0", array.base))
        .header("Authorization", format!("Session {token}"))
        .header("Response-Job-Status", "Completed")
        .send()
        .await
        .unwrap();
    assert_eq!(waited.status(), StatusCode::ACCEPTED);
    let waited: Value = waited.json().await.unwrap();
    assert_eq!(waited["status"], "Completed");
    assert_eq!(waited["state"], "Succeeded");
    assert!(array.san.mappings(ARRAY).is_empty());

    let (status, _) = array
        .send(&token, reqwest::Method::DELETE, "/luns/CL1-A,1,0", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an absent LU path is 404");
}

#[tokio::test]
async fn paths_made_outside_the_api_show_on_the_ldev() {
    let array = serve().await;
    let volume = array.san.create_volume(ARRAY, "pvc-1", 1 << 20).unwrap();
    let ldev = vantara::ldev_id(&volume).unwrap();
    let lun = array.facade.add_lu_path(ldev, "CL2-A", 2).unwrap();
    let (token, _) = array.login().await;
    let body = array.get(&token, &format!("/ldevs/{ldev}")).await;
    assert_eq!(body["ports"][0]["portId"], "CL2-A");
    assert_eq!(body["ports"][0]["hostGroupNumber"], 2);
    assert_eq!(body["ports"][0]["lun"], lun);
}

/// Creates a clone pair of `pvol` onto `svol` in `group` with extra body fields; answers the
/// finished job.
async fn create_pair(array: &Array, token: &str, pvol: u32, svol: u32, extra: Value) -> Value {
    let mut body = json!({
        "pvolLdevId": pvol,
        "svolLdevId": svol,
        "snapshotPoolId": 0,
        "snapshotGroupName": "xcopy-test",
        "isClone": true,
        "canCascade": true,
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    let (status, submitted) = array
        .send(token, reqwest::Method::POST, "/snapshots", Some(body))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{submitted}");
    array.finish(token, &submitted).await.0
}

/// A 1 MiB source LDEV full of 0x5a and an empty target LDEV of the same size, their LDEV ids, and
/// a session token.
async fn source_and_target(array: &Array) -> (Volume, Volume, u32, u32, String) {
    let source = array.san.create_volume(ARRAY, "rdm-1", 1 << 20).unwrap();
    let target = array.san.create_volume(ARRAY, "pvc-1", 1 << 20).unwrap();
    std::fs::write(&source.backing_path, vec![0x5a; 1 << 20]).unwrap();
    let (pvol, svol) = (
        vantara::ldev_id(&source).unwrap(),
        vantara::ldev_id(&target).unwrap(),
    );
    let (token, _) = array.login().await;
    (source, target, pvol, svol, token)
}

#[tokio::test]
async fn a_clone_pair_copies_over_time_and_the_svol_gets_the_bytes_only_at_completion() {
    let array = serve().await;
    let (source, target, pvol, svol, token) = source_and_target(&array).await;

    let job = create_pair(
        &array,
        &token,
        pvol,
        svol,
        json!({"clonesAutomation": true, "copySpeed": "medium"}),
    )
    .await;
    assert_eq!(job["state"], "Succeeded", "{job}");
    let resource = job["affectedResources"][0].as_str().unwrap();
    assert!(
        resource.ends_with(&format!("/snapshots/{pvol},0")),
        "{resource}"
    );

    let mut seen = Vec::new();
    let mut last_rate = 0;
    loop {
        let (status, pair) = array
            .send(
                &token,
                reqwest::Method::GET,
                &format!("/snapshots/{pvol},0"),
                None,
            )
            .await;
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert_eq!(status, StatusCode::OK, "{pair}");
        let state = pair["status"].as_str().unwrap().to_owned();
        let rate = pair["concordanceRate"].as_u64().unwrap();
        if state == "PSUP" && rate < 100 {
            assert_ne!(
                std::fs::read(&target.backing_path).unwrap(),
                std::fs::read(&source.backing_path).unwrap(),
                "PSUP is not the end of the copy"
            );
        }
        if seen.last() == Some(&state) {
            assert!(
                rate >= last_rate,
                "concordanceRate never falls within a state"
            );
        }
        last_rate = rate;
        assert_eq!(pair["isClone"], true);
        assert_eq!(pair["svolLdevId"], svol);
        seen.push(state);
        assert!(seen.len() < 20, "the clone never completed: {seen:?}");
    }
    seen.dedup();
    assert_eq!(seen, ["COPY", "PSUP"], "the pair's life");
    assert_eq!(
        std::fs::read(&target.backing_path).unwrap(),
        vec![0x5a; 1 << 20]
    );
    assert!(
        array.facade.pairs().is_empty(),
        "clonesAutomation removes the pair"
    );
    array
        .get_expecting(
            &token,
            "/snapshot-groups/xcopy-test",
            StatusCode::NOT_FOUND,
            "the group went with its last pair",
        )
        .await;
}

#[tokio::test]
async fn a_clone_pair_deleted_while_copying_leaves_the_svol_untouched() {
    let array = serve().await;
    let (_, target, pvol, svol, token) = source_and_target(&array).await;
    let job = create_pair(&array, &token, pvol, svol, json!({"copySpeed": "slower"})).await;
    assert_eq!(job["state"], "Succeeded", "{job}");
    let listed = array
        .get(&token, "/snapshots?snapshotGroupName=xcopy-test")
        .await;
    assert_eq!(listed["data"][0]["pvolLdevId"], pvol);
    let groups = array.get(&token, "/snapshot-groups").await;
    assert_eq!(groups["data"][0]["snapshotGroupName"], "xcopy-test");

    let (status, submitted) = array
        .send(
            &token,
            reqwest::Method::DELETE,
            &format!("/snapshots/{pvol},0"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (job, _) = array.finish(&token, &submitted).await;
    assert_eq!(job["state"], "Succeeded", "{job}");
    assert!(array.facade.pairs().is_empty());
    assert_eq!(
        std::fs::read(&target.backing_path).unwrap(),
        vec![0; 1 << 20]
    );
}

#[tokio::test]
async fn pairs_are_refused_in_the_arrays_error_shape() {
    let array = serve().await;
    let source = array.san.create_volume(ARRAY, "rdm-1", 1 << 20).unwrap();
    let smaller = array.san.create_volume(ARRAY, "pvc-1", 1 << 19).unwrap();
    let target = array.san.create_volume(ARRAY, "pvc-2", 1 << 20).unwrap();
    let pvol = vantara::ldev_id(&source).unwrap();
    let (token, _) = array.login().await;

    let job = create_pair(
        &array,
        &token,
        pvol,
        vantara::ldev_id(&smaller).unwrap(),
        json!({}),
    )
    .await;
    assert_eq!(job["state"], "Failed");
    assert_eq!(job["error"]["messageId"], "KART40054-E", "{job}");

    let job = create_pair(&array, &token, pvol, 4000, json!({})).await;
    assert_eq!(job["state"], "Failed");
    assert_eq!(job["error"]["messageId"], "KART40051-E", "{job}");

    let job = create_pair(
        &array,
        &token,
        pvol,
        vantara::ldev_id(&target).unwrap(),
        json!({"snapshotPoolId": 7}),
    )
    .await;
    assert_eq!(job["error"]["messageId"], "KART40052-E", "{job}");

    let (status, body) = array
        .send(
            &token,
            reqwest::Method::POST,
            "/snapshots",
            Some(json!({"pvolLdevId": pvol, "snapshotPoolId": 0, "snapshotGroupName": "g", "copyPace": 3})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["messageId"], "KART40038-E");

    array
        .get_expecting(
            &token,
            "/snapshots",
            StatusCode::BAD_REQUEST,
            "a listing needs a filter",
        )
        .await;
    array
        .get_expecting(
            &token,
            &format!("/snapshots/{pvol},5"),
            StatusCode::NOT_FOUND,
            "an unknown pair",
        )
        .await;

    // A plain snapshot is PAIR at once; split makes it PSUS and a second split fails the job.
    let job = create_pair(
        &array,
        &token,
        pvol,
        vantara::ldev_id(&target).unwrap(),
        json!({"isClone": false, "canCascade": false}),
    )
    .await;
    assert_eq!(job["state"], "Succeeded", "{job}");
    let pair = array.get(&token, &format!("/snapshots/{pvol},0")).await;
    assert_eq!(pair["status"], "PAIR");
    for expected in ["Succeeded", "Failed"] {
        let (_, submitted) = array
            .send(
                &token,
                reqwest::Method::POST,
                &format!("/snapshots/{pvol},0/actions/split/invoke"),
                Some(json!({"parameters": null})),
            )
            .await;
        let (job, _) = array.finish(&token, &submitted).await;
        assert_eq!(job["state"], expected, "{job}");
    }
    let pair = array.get(&token, &format!("/snapshots/{pvol},0")).await;
    assert_eq!(pair["status"], "PSUS");
    assert!(pair["splitTime"].is_string());
}
