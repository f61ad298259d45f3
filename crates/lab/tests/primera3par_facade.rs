//! The Primera/3PAR WSAPI facade over HTTP on loopback, driven with raw requests: the session model
//! (credentials → session key header, 401 on an unknown key, 403 on wrong credentials, logout),
//! the query language, `{code, desc}` error bodies, `Location` on creates, and the array's rules
//! (name lengths, one host per path, hosts in sets, exported sets, duplicate VLUNs) — and what a
//! host can see in the SAN model after each step.

use co_lab::arrays::primera3par::{self, Primera, SESSION_HEADER};
use co_lab::san::{ArrayVendor, San};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ARRAY: &str = "3par1";
const USER: &str = "3paradm";
const PASSWORD: &str = "Password123!";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx-1";
const ESX_WWN: &str = "21000025B5000001";

struct Array {
    _dir: tempfile::TempDir,
    san: San,
    facade: Primera,
    root: String,
    http: reqwest::Client,
}

async fn serve() -> Array {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::Primera3Par).unwrap();
    let facade = Primera::new(san.clone(), ARRAY, USER, PASSWORD);
    let router = facade.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Array {
        _dir: dir,
        san,
        facade,
        root,
        http: reqwest::Client::new(),
    }
}

impl Array {
    /// `method path` answered with `expected` and a WSAPI error naming `needle`.
    async fn refused(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        expected: StatusCode,
        needle: &str,
    ) {
        let (status, _, answer) = self.call(key, method, path, body).await;
        assert_error(&answer, status, expected, needle);
    }

    fn volume(&self, name: &str, size_bytes: u64) -> co_lab::san::Volume {
        self.facade.create_csi_volume(name, size_bytes).unwrap()
    }

    /// A host with one iSCSI path, made on the SAN as an administrator would.
    fn add_host(&self, name: &str, iqn: &str) {
        self.san
            .create_group(
                ARRAY,
                co_lab::san::GroupSpec {
                    name: name.into(),
                    initiators: vec![iqn.into()],
                    ..Default::default()
                },
            )
            .unwrap();
    }

    async fn login(&self) -> String {
        let response = self
            .http
            .post(format!("{}/api/v1/credentials", self.root))
            .json(&json!({"user": USER, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["key"].as_str().unwrap().to_owned()
    }

    /// `method path` with the session key; (status, Location header, body).
    async fn call(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Option<String>, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.root))
            .header(SESSION_HEADER, key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, location, body)
    }
}

fn assert_error(body: &Value, status: StatusCode, expected: StatusCode, needle: &str) {
    assert_eq!(status, expected, "{body}");
    assert!(
        body["code"].is_u64(),
        "WSAPI errors carry a numeric code: {body}"
    );
    assert!(
        body["desc"].as_str().is_some_and(|d| d.contains(needle)),
        "{needle:?} in {body}"
    );
}

#[tokio::test]
async fn sessions_are_keys_in_a_header_and_end_with_a_delete() {
    let array = serve().await;
    let version: Value = array
        .http
        .get(format!("{}/api", array.root))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["build"], primera3par::WSAPI_BUILD);

    let wrong = array
        .http
        .post(format!("{}/api/v1/credentials", array.root))
        .json(&json!({"user": USER, "password": "nope"}))
        .send()
        .await
        .unwrap();
    let status = wrong.status();
    assert_error(
        &wrong.json().await.unwrap(),
        status,
        StatusCode::FORBIDDEN,
        "invalid username or password",
    );

    let (status, _, body) = array
        .call("no-such-key", Method::GET, "/system", None)
        .await;
    assert_error(&body, status, StatusCode::UNAUTHORIZED, "session key");

    let key = array.login().await;
    let (status, _, system) = array.call(&key, Method::GET, "/system", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(system["name"], ARRAY);
    assert_eq!(system["systemVersion"], primera3par::SYSTEM_VERSION);
    assert_eq!(array.facade.open_sessions(), 1);

    let (status, _, _) = array
        .call(&key, Method::DELETE, &format!("/credentials/{key}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(array.facade.open_sessions(), 0);
    let (status, _, _) = array.call(&key, Method::GET, "/system", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a deleted key is refused");

    let key = array.login().await;
    array.facade.expire_sessions();
    let (status, _, _) = array.call(&key, Method::GET, "/volumes", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an expired key is 401");
}

#[tokio::test]
async fn volumes_are_found_by_name_and_by_wwn_in_any_case() {
    let array = serve().await;
    let volume = array
        .facade
        .create_csi_volume("pvc-8f3a2c1e-5b7d-4e9f-a1b2-c3d4e5f60718", 1 << 30)
        .unwrap();
    assert_eq!(
        volume.name.len(),
        primera3par::MAX_NAME,
        "CSI names are cut to 31"
    );
    let key = array.login().await;
    let (status, _, record) = array
        .call(
            &key,
            Method::GET,
            &format!("/volumes/{}", volume.name),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let wwn = record["wwn"].as_str().unwrap().to_owned();
    assert!(wwn.starts_with("60002AC"), "{wwn}");
    assert_eq!(format!("naa.{}", wwn.to_ascii_lowercase()), volume.naa);
    assert_eq!(record["sizeMiB"], 1024);
    assert_eq!(record["copyType"], 1, "a base volume");

    for query in [
        format!("\"wwn EQ {wwn}\""),
        format!("\"wwn EQ {}\"", wwn.to_ascii_lowercase()),
        format!("\"name EQ {}\"", volume.name),
    ] {
        let (status, _, found) = array
            .call(
                &key,
                Method::GET,
                &format!("/volumes?query={}", urlencode(&query)),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_eq!(found["total"], 1, "{query}: {found}");
        assert_eq!(found["members"][0]["name"], volume.name.as_str());
    }
    let (status, _, body) = array
        .call(
            &key,
            Method::GET,
            "/volumes?query=%22colour%20EQ%20red%22",
            None,
        )
        .await;
    assert_error(&body, status, StatusCode::BAD_REQUEST, "unknown field");
    let (status, _, body) = array.call(&key, Method::GET, "/volumes/nope", None).await;
    assert_error(&body, status, StatusCode::NOT_FOUND, "does not exist");
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn hosts_sets_and_vluns_follow_the_array_rules() {
    let array = serve().await;
    let volume = array
        .facade
        .create_csi_volume("pvc-rules", 1 << 30)
        .unwrap();
    let key = array.login().await;

    // Hosts: 31 characters at most, one host per path, persona as given.
    let (status, _, body) = array
        .call(
            &key,
            Method::POST,
            "/hosts",
            Some(json!({"name": "h".repeat(32)})),
        )
        .await;
    assert_error(&body, status, StatusCode::BAD_REQUEST, "exceeds 31");
    let (status, location, _) = array
        .call(
            &key,
            Method::POST,
            "/hosts",
            Some(json!({"name": "esx-1", "persona": 8, "FCWWNs": [ESX_WWN]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(location.as_deref(), Some("/api/v1/hosts/esx-1"));
    assert_eq!(array.facade.host_persona("esx-1"), Some(8));
    let (status, _, body) = array
        .call(
            &key,
            Method::POST,
            "/hosts",
            Some(json!({"name": "esx-dup", "FCWWNs": [ESX_WWN]})),
        )
        .await;
    assert_error(
        &body,
        status,
        StatusCode::CONFLICT,
        "already used by host esx-1",
    );
    let (status, _, _) = array
        .call(
            &key,
            Method::PUT,
            "/hosts/esx-1",
            Some(json!({"pathOperation": 1, "iSCSINames": [ESX_IQN]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let query = urlencode(&format!(
        "\"FCPaths[wwn EQ 21000025B5000009] OR iSCSIPaths[name EQ {ESX_IQN}]\""
    ));
    let (_, _, found) = array
        .call(&key, Method::GET, &format!("/hosts?query={query}"), None)
        .await;
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["members"][0]["FCPaths"][0]["wwn"], ESX_WWN);
    assert_eq!(found["members"][0]["iSCSIPaths"][0]["name"], ESX_IQN);

    // Host sets: 27 characters at most; members must exist; adding twice is refused.
    let (status, _, body) = array
        .call(
            &key,
            Method::POST,
            "/hostsets",
            Some(json!({"name": "s".repeat(28)})),
        )
        .await;
    assert_error(&body, status, StatusCode::BAD_REQUEST, "exceeds 27");
    let (status, location, _) = array
        .call(
            &key,
            Method::POST,
            "/hostsets",
            Some(json!({"name": "xcopy-set"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(location.as_deref(), Some("/api/v1/hostsets/xcopy-set"));
    let add = json!({"action": 1, "setmembers": ["esx-1"]});
    let (status, _, _) = array
        .call(&key, Method::PUT, "/hostsets/xcopy-set", Some(add.clone()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = array
        .call(&key, Method::PUT, "/hostsets/xcopy-set", Some(add))
        .await;
    assert_error(&body, status, StatusCode::CONFLICT, "already a member");
    let (status, _, body) = array
        .call(
            &key,
            Method::PUT,
            "/hostsets/xcopy-set",
            Some(json!({"action": 1, "setmembers": ["ghost"]})),
        )
        .await;
    assert_error(&body, status, StatusCode::NOT_FOUND, "host ghost");
    let (status, _, body) = array.call(&key, Method::DELETE, "/hosts/esx-1", None).await;
    assert_error(&body, status, StatusCode::CONFLICT, "member of host set");

    // VLUNs: an export to the set reaches its member's paths; twice is refused.
    let export = json!({"volumeName": volume.name, "hostname": "set:xcopy-set",
                        "lun": 0, "autoLun": true, "maxAutoLun": 0});
    let (status, location, _) = array
        .call(&key, Method::POST, "/vluns", Some(export.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let vlun = format!("{},0,set:xcopy-set", volume.name);
    assert_eq!(location, Some(format!("/api/v1/vluns/{vlun}")));
    let seen = array.san.visible_luns(&[format!(
        "fc.20000025b5000000:{}",
        ESX_WWN.to_ascii_lowercase()
    )]);
    assert_eq!(seen.len(), 1, "the member host sees the set's VLUN");
    assert_eq!(seen[0].naa, volume.naa);
    let (status, _, body) = array.call(&key, Method::POST, "/vluns", Some(export)).await;
    assert_error(&body, status, StatusCode::CONFLICT, "already exists");
    let (_, _, listed) = array
        .call(
            &key,
            Method::GET,
            &format!(
                "/vluns?query={}",
                urlencode(&format!("\"volumeName EQ {}\"", volume.name))
            ),
            None,
        )
        .await;
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["members"][0]["hostname"], "set:xcopy-set");
    assert_eq!(listed["members"][0]["type"], 5);
    let (status, _, body) = array
        .call(&key, Method::DELETE, "/hostsets/xcopy-set", None)
        .await;
    assert_error(&body, status, StatusCode::CONFLICT, "VLUNs exported");

    let (status, _, _) = array
        .call(&key, Method::DELETE, &format!("/vluns/{vlun}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = array
        .call(&key, Method::DELETE, &format!("/vluns/{vlun}"), None)
        .await;
    assert_error(&body, status, StatusCode::NOT_FOUND, "does not exist");
    assert!(
        array
            .san
            .visible_luns(&[format!(
                "fc.20000025b5000000:{}",
                ESX_WWN.to_ascii_lowercase()
            )])
            .is_empty()
    );

    // Taken apart in the array's order: set members, set, host.
    let (status, _, _) = array
        .call(
            &key,
            Method::PUT,
            "/hostsets/xcopy-set",
            Some(json!({"action": 2, "setmembers": ["esx-1"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/hostsets/xcopy-set", "/hosts/esx-1"] {
        let (status, _, body) = array.call(&key, Method::DELETE, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    assert!(
        array.facade.leftovers().is_empty(),
        "{:?}",
        array.facade.leftovers()
    );
    let (status, _, body) = array
        .call(
            &key,
            Method::POST,
            "/hosts",
            Some(json!({"name": "h", "colour": "red"})),
        )
        .await;
    assert_error(&body, status, StatusCode::BAD_REQUEST, "unknown member");
}

/// Fills the first bytes of `volume` with `pattern`, as a guest's writes would.
fn write_pattern(volume: &co_lab::san::Volume, pattern: &[u8]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&volume.backing_path)
        .unwrap();
    file.write_all(pattern).unwrap();
}

fn starts_with(volume: &co_lab::san::Volume, pattern: &[u8]) -> bool {
    std::fs::read(&volume.backing_path)
        .unwrap()
        .starts_with(pattern)
}

/// A `createPhysicalCopy` body onto `dest` with the parameters of `base` and `extra`.
fn physical_copy(dest: &str, base: Value, extra: Value) -> Value {
    let mut parameters = json!({"destVolume": dest});
    for more in [base, extra] {
        if let (Some(p), Value::Object(more)) = (parameters.as_object_mut(), more) {
            p.extend(more);
        }
    }
    json!({"action": "createPhysicalCopy", "parameters": parameters})
}

/// The copy path copy-offload cannot take: the PVC's volume is exported to the worker node (the
/// CSI driver exported it before the populator pod started), and an offline physical copy refuses
/// an exported destination, as the WSAPI does (`INV_OPERATION_VV_EXPORTED`). Unexported, the same
/// request copies, and its task reports done.
#[tokio::test]
async fn an_offline_physical_copy_refuses_an_exported_destination() {
    let array = serve().await;
    let source = array.volume("rdm-lun-1", 4 << 20);
    let target = array.volume("pvc-target-1", 4 << 20);
    let small = array.volume("pvc-small", 2 << 20);
    write_pattern(&source, b"source disk blocks");
    array.add_host("ocp-worker-1", "iqn.2020-01.io.openshift:worker-1");
    array.san.map(ARRAY, &target.name, "ocp-worker-1").unwrap();
    let key = array.login().await;
    let copy = |dest: &str, extra: Value| physical_copy(dest, json!({}), extra);
    let source_path = format!("/volumes/{}", source.name);

    array
        .refused(
            &key,
            Method::POST,
            &source_path,
            Some(copy(&target.name, json!({}))),
            StatusCode::FORBIDDEN,
            "is exported",
        )
        .await;
    assert!(
        !starts_with(&target, b"source disk blocks"),
        "nothing written"
    );
    for (extra, expected, needle) in [
        (
            json!({"destCPG": "SSD_r6"}),
            StatusCode::BAD_REQUEST,
            "online copy only",
        ),
        (
            json!({"tpvv": true}),
            StatusCode::BAD_REQUEST,
            "online copy only",
        ),
    ] {
        let (status, _, body) = array
            .call(
                &key,
                Method::POST,
                &source_path,
                Some(copy(&target.name, extra)),
            )
            .await;
        assert_error(&body, status, expected, needle);
    }
    array
        .refused(
            &key,
            Method::POST,
            &source_path,
            Some(copy(&small.name, json!({}))),
            StatusCode::CONFLICT,
            "larger than",
        )
        .await;
    array
        .refused(
            &key,
            Method::POST,
            &source_path,
            Some(copy(&source.name, json!({}))),
            StatusCode::FORBIDDEN,
            "same as the parent",
        )
        .await;

    array
        .san
        .unmap(ARRAY, &target.name, "ocp-worker-1")
        .unwrap();
    let (status, _, body) = array
        .call(
            &key,
            Method::POST,
            &source_path,
            Some(copy(&target.name, json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let task = body["taskid"].as_u64().unwrap();
    let (status, _, record) = array
        .call(&key, Method::GET, &format!("/tasks/{task}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["status"], primera3par::task_status::DONE);
    assert_eq!(record["type"], 1, "vv_copy");
    assert_eq!(record["name"], target.name.as_str());
    assert!(starts_with(&target, b"source disk blocks"));
    let (_, _, all) = array.call(&key, Method::GET, "/tasks", None).await;
    assert_eq!(all["total"], 1, "{all}");
    array
        .refused(
            &key,
            Method::GET,
            "/tasks/999",
            None,
            StatusCode::NOT_FOUND,
            "does not exist",
        )
        .await;
    assert!(
        array.facade.leftovers().is_empty(),
        "{:?}",
        array.facade.leftovers()
    );
}

/// An online physical copy makes a new volume: it never writes a volume that exists (so it
/// cannot fill the PVC's volume), and needs a CPG and a provisioning type.
#[tokio::test]
async fn an_online_physical_copy_creates_its_destination() {
    let array = serve().await;
    let source = array.volume("rdm-lun-2", 4 << 20);
    let target = array.volume("pvc-target-2", 4 << 20);
    write_pattern(&source, b"online source");
    let key = array.login().await;
    let path = format!("/volumes/{}", source.name);
    let online = |dest: &str, extra: Value| physical_copy(dest, json!({"online": true}), extra);
    let full = json!({"destCPG": "SSD_r6", "tpvv": true});
    array
        .refused(
            &key,
            Method::POST,
            &path,
            Some(online(&target.name, full.clone())),
            StatusCode::CONFLICT,
            "already exists",
        )
        .await;
    array
        .refused(
            &key,
            Method::POST,
            &path,
            Some(online("copy-2", json!({"tpvv": true}))),
            StatusCode::BAD_REQUEST,
            "destCPG",
        )
        .await;
    array
        .refused(
            &key,
            Method::POST,
            &path,
            Some(online("copy-2", json!({"destCPG": "SSD_r6"}))),
            StatusCode::BAD_REQUEST,
            "one of the parameters",
        )
        .await;

    let (status, _, body) = array
        .call(&key, Method::POST, &path, Some(online("copy-2", full)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let task = body["taskid"].as_u64().unwrap();
    let (_, _, record) = array
        .call(&key, Method::GET, &format!("/tasks/{task}"), None)
        .await;
    assert_eq!(record["type"], 18, "online_vv_copy");
    assert_eq!(record["name"], "copy-2");
    let copy = array.san.volume(ARRAY, "copy-2").unwrap();
    assert!(starts_with(&copy, b"online source"));
    assert_ne!(copy.naa, target.naa, "a new volume, not the PVC's");
    assert!(!starts_with(&target, b"online source"));
    assert_eq!(
        array.facade.leftovers(),
        vec![format!("physical copy copy-2 of {}", source.name)]
    );
    let (status, _, body) = array
        .call(&key, Method::DELETE, "/volumes/copy-2", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(array.facade.leftovers().is_empty());
}

/// Upstream's path: a snapshot of the source and a promote (action 4). The promote copies the
/// snapshot back onto its parent — the source — and leaves the target untouched; the snapshot
/// depends on the source until deleted.
#[tokio::test]
async fn promoting_a_snapshot_reverts_its_parent() {
    let array = serve().await;
    let source = array.volume("rdm-lun-3", 4 << 20);
    let target = array.volume("pvc-target-3", 4 << 20);
    write_pattern(&source, b"first contents");
    let key = array.login().await;
    let (status, location, body) = array
        .call(
            &key,
            Method::POST,
            &format!("/volumes/{}", source.name),
            Some(json!({"action": "createSnapshot", "parameters": {"name": "snap-3"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(location.as_deref(), Some("/api/v1/volumes/snap-3"));
    let (_, _, snapshot) = array.call(&key, Method::GET, "/volumes/snap-3", None).await;
    assert_eq!(snapshot["copyOf"], source.name.as_str());
    assert_eq!(snapshot["copyType"], primera3par::VIRTUAL_COPY);
    let query = urlencode(&format!("\"copyOf EQ {}\"", source.name));
    let (_, _, found) = array
        .call(&key, Method::GET, &format!("/volumes?query={query}"), None)
        .await;
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(array.facade.snapshots_of(&source.name), vec!["snap-3"]);

    write_pattern(&source, b"later contents");
    array.add_host("esx-1", ESX_IQN);
    array.san.map(ARRAY, &source.name, "esx-1").unwrap();
    let promote = json!({"action": primera3par::PROMOTE_VIRTUAL_COPY});
    array
        .refused(
            &key,
            Method::PUT,
            "/volumes/snap-3",
            Some(promote.clone()),
            StatusCode::FORBIDDEN,
            "is exported",
        )
        .await;
    let (status, _, body) = array
        .call(
            &key,
            Method::PUT,
            &format!("/volumes/{}", target.name),
            Some(promote),
        )
        .await;
    assert_error(&body, status, StatusCode::CONFLICT, "base volume");
    let (status, _, body) = array
        .call(
            &key,
            Method::PUT,
            "/volumes/snap-3",
            Some(json!({"action": primera3par::PROMOTE_VIRTUAL_COPY, "online": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        starts_with(&source, b"first contents"),
        "the parent reverted"
    );
    assert!(
        !starts_with(&target, b"first contents"),
        "the target untouched"
    );

    let (status, _, body) = array
        .call(
            &key,
            Method::DELETE,
            &format!("/volumes/{}", source.name),
            None,
        )
        .await;
    assert_error(&body, status, StatusCode::CONFLICT, "in use");
    array.san.unmap(ARRAY, &source.name, "esx-1").unwrap();
    let (status, _, body) = array
        .call(
            &key,
            Method::DELETE,
            &format!("/volumes/{}", source.name),
            None,
        )
        .await;
    assert_error(&body, status, StatusCode::CONFLICT, "child");
    assert_eq!(
        array.facade.leftovers(),
        vec![format!("snapshot snap-3 of {}", source.name)]
    );
    let (status, _, _) = array
        .call(&key, Method::DELETE, "/volumes/snap-3", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(array.facade.leftovers().is_empty());
    assert!(array.facade.snapshots_of(&source.name).is_empty());
}
