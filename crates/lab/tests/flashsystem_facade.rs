//! The FlashSystem facade over HTTP on loopback, driven as a Storage Virtualize REST client would:
//! token auth, CLI commands as `POST /rest/[v1/]<command>[/<object>]` with option bodies, hosts,
//! vdisk-host maps, volume protection and FlashCopy mappings — and the SAN model reflects each step.

use co_lab::arrays::flashsystem::{CODE_LEVEL, FlashSystem, csi_volume_handle, vdisk_id};
use co_lab::san::{ArrayVendor, San};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ARRAY: &str = "fs1";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx-1";
const ESX_WWPN: &str = "2100000E1E30ACF0";

struct Lab {
    _dir: tempfile::TempDir,
    san: San,
    array: FlashSystem,
    base: String,
    http: reqwest::Client,
}

async fn serve() -> Lab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::FlashSystem).unwrap();
    let array = FlashSystem::new(san.clone(), ARRAY, "superuser", "passw0rd");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/rest", listener.local_addr().unwrap());
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
    /// `POST <root>/auth` with `password`; `root` is `""` or `"/v1"`.
    async fn auth(&self, root: &str, password: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{root}/auth", self.base))
            .header("X-Auth-Username", "superuser")
            .header("X-Auth-Password", password)
            .send()
            .await
            .unwrap()
    }

    async fn token(&self) -> String {
        let response = self.auth("/v1", "passw0rd").await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// Runs `command` (with its object path) and answers the status and the body (JSON, or the
    /// CLI message as a string).
    async fn run(&self, token: &str, command: &str, opts: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/v1/{command}", self.base))
            .header("X-Auth-Token", token)
            .json(&opts)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    async fn ok(&self, token: &str, command: &str, opts: Value) -> Value {
        let (status, body) = self.run(token, command, opts).await;
        assert_eq!(status, StatusCode::OK, "{command}: {body}");
        body
    }
}

#[tokio::test]
async fn tokens_come_from_auth_and_every_command_needs_one() {
    let lab = serve().await;
    let wrong = lab.auth("", "nope").await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let (status, _) = lab.run("made-up", "lssystem", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let token = lab.token().await;
    let system = lab.ok(&token, "lssystem", json!({})).await;
    assert_eq!(system["code_level"], CODE_LEVEL);
    assert_eq!(system["vdisk_protection_enabled"], "no");
    // The unversioned root serves the same commands (older code levels, IBM's Ansible collection).
    let unversioned = lab
        .http
        .post(format!("{}/lssystem", lab.base))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(unversioned.status(), StatusCode::OK);

    lab.array.expire_tokens();
    let (status, _) = lab.run(&token, "lssystem", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an expired token is refused");
}

#[tokio::test]
async fn vdisks_are_found_by_uid_and_errors_are_cli_messages() {
    let lab = serve().await;
    let token = lab.token().await;
    let volume = lab.san.create_volume(ARRAY, "pvc-1", 1 << 30).unwrap();
    assert!(volume.serial.starts_with("6005076"));
    assert_eq!(
        csi_volume_handle(&volume),
        format!("SVC:{};{}", vdisk_id(&volume), volume.serial)
    );
    let found = lab
        .ok(
            &token,
            "lsvdisk",
            json!({"filtervalue": format!("vdisk_UID={}", volume.serial), "bytes": true}),
        )
        .await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["name"], "pvc-1");
    assert_eq!(found[0]["capacity"], (1u64 << 30).to_string());
    assert_eq!(found[0]["id"], vdisk_id(&volume).to_string());
    let human = lab
        .ok(&token, &format!("lsvdisk/{}", vdisk_id(&volume)), json!({}))
        .await;
    assert_eq!(human["capacity"], "1.00GB");

    let (status, body) = lab.run(&token, "lsvdisk/nothing", json!({})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.as_str().unwrap().starts_with("CMMVC5753E"), "{body}");
    let (status, body) = lab.run(&token, "lsvdisk", json!({"unknownopt": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = lab.run(&token, "lsnothing", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn hosts_maps_and_protection_follow_the_cli_rules() {
    let lab = serve().await;
    let token = lab.token().await;
    lab.san.create_volume(ARRAY, "pvc-1", 1 << 20).unwrap();
    let created = lab
        .ok(
            &token,
            "mkhost",
            json!({"name": "xcopy-esx1", "fcwwpn": ESX_WWPN, "iscsiname": ESX_IQN,
                   "protocol": "scsi", "type": "generic", "force": true}),
        )
        .await;
    let host_id = created["id"].as_str().unwrap().to_owned();
    assert!(
        created["message"]
            .as_str()
            .unwrap()
            .contains("successfully")
    );
    // A port belongs to one host only.
    let (status, body) = lab
        .run(
            &token,
            "mkhost",
            json!({"name": "other", "iscsiname": ESX_IQN}),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.as_str().unwrap().starts_with("CMMVC6581E"), "{body}");
    let (status, _) = lab
        .run(
            &token,
            "mkhost",
            json!({"name": "xcopy-esx1", "iscsiname": "iqn.x:y"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let detail = lab
        .ok(&token, &format!("lshost/{host_id}"), json!({}))
        .await;
    let nodes = detail["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["WWPN"], ESX_WWPN);
    assert_eq!(nodes[1]["iscsi_name"], ESX_IQN);
    let listed = lab
        .ok(&token, "lshost", json!({"filtervalue": "name=xcopy-esx1"}))
        .await;
    assert_eq!(listed[0]["id"], host_id.as_str());

    // A vdisk already mapped elsewhere needs force for a second host; `null` options are absent.
    lab.san
        .create_group(
            ARRAY,
            co_lab::san::GroupSpec {
                name: "worker".into(),
                initiators: vec!["iqn.2020-01.io.openshift:worker-1".into()],
                ..Default::default()
            },
        )
        .unwrap();
    lab.san.map(ARRAY, "pvc-1", "worker").unwrap();
    let (status, body) = lab
        .run(
            &token,
            "mkvdiskhostmap/pvc-1",
            json!({"host": "xcopy-esx1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let mapped = lab
        .ok(
            &token,
            "mkvdiskhostmap/pvc-1",
            json!({"host": "xcopy-esx1", "force": true, "scsi": null}),
        )
        .await;
    assert_eq!(mapped["id"], "0");
    let (status, body) = lab
        .run(
            &token,
            "mkvdiskhostmap/pvc-1",
            json!({"host": host_id, "force": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.as_str().unwrap().starts_with("CMMVC5878E"), "{body}");
    assert_eq!(lab.san.visible_luns(&[ESX_IQN.to_owned()]).len(), 1);

    let maps = lab.ok(&token, "lsvdiskhostmap/pvc-1", json!({})).await;
    let hosts: Vec<&str> = maps
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["host_name"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["worker", "xcopy-esx1"]);
    let by_host = lab
        .ok(&token, &format!("lshostvdiskmap/{host_id}"), json!({}))
        .await;
    assert_eq!(by_host[0]["vdisk_name"], "pvc-1");

    // Volume protection refuses unmapping while on for the system and the pool.
    lab.array.set_volume_protection(true, true, 15);
    let pool = lab.ok(&token, "lsmdiskgrp/0", json!({})).await;
    assert_eq!(pool["vdisk_protection_enabled"], "yes");
    let (status, body) = lab
        .run(
            &token,
            "rmvdiskhostmap/pvc-1",
            json!({"host": "xcopy-esx1"}),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.as_str().unwrap().contains("volume protection"),
        "{body}"
    );
    lab.array.set_volume_protection(true, false, 15);
    lab.ok(
        &token,
        "rmvdiskhostmap/pvc-1",
        json!({"host": "xcopy-esx1"}),
    )
    .await;
    let (status, body) = lab
        .run(
            &token,
            "rmvdiskhostmap/pvc-1",
            json!({"host": "xcopy-esx1"}),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.as_str().unwrap().starts_with("CMMVC5753E"), "{body}");
    assert!(lab.san.visible_luns(&[ESX_IQN.to_owned()]).is_empty());

    lab.ok(&token, &format!("rmhost/{host_id}"), json!({}))
        .await;
    assert!(lab.san.group(ARRAY, "xcopy-esx1").is_none());
    let (status, _) = lab.run(&token, "rmhost/xcopy-esx1", json!({})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn a_flashcopy_copies_in_the_background_and_reports_progress() {
    let lab = serve().await;
    let token = lab.token().await;
    let source = lab.san.create_volume(ARRAY, "rdm-src", 1 << 20).unwrap();
    lab.san.create_volume(ARRAY, "pvc-t", 1 << 20).unwrap();
    lab.san.create_volume(ARRAY, "pvc-small", 1 << 19).unwrap();
    std::fs::write(&source.backing_path, vec![0x5a; 1 << 20]).unwrap();

    let (status, body) = lab
        .run(
            &token,
            "mkfcmap",
            json!({"source": "rdm-src", "target": "pvc-small", "copyrate": "100"}),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.as_str().unwrap().starts_with("CMMVC5924E"), "{body}");

    let created = lab
        .ok(
            &token,
            "mkfcmap",
            json!({"source": "rdm-src", "target": "pvc-t", "name": "xcopy-copy-7", "copyrate": 100}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, _) = lab
        .run(
            &token,
            "mkfcmap",
            json!({"source": "rdm-src", "target": "pvc-t", "name": "xcopy-copy-7"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = lab
        .run(&token, &format!("startfcmap/{id}"), json!({}))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "not prepared");
    lab.ok(&token, &format!("startfcmap/{id}"), json!({"prep": true}))
        .await;
    let (status, body) = lab
        .run(&token, &format!("startfcmap/{id}"), json!({"prep": true}))
        .await;
    assert!(
        body.as_str().unwrap().starts_with("CMMVC5907E"),
        "{status} {body}"
    );

    let mut seen = Vec::new();
    loop {
        let map = lab.ok(&token, "lsfcmap/xcopy-copy-7", json!({})).await;
        let progress: u8 = map["progress"].as_str().unwrap().parse().unwrap();
        seen.push((progress, map["status"].as_str().unwrap().to_owned()));
        if map["status"] == "idle_or_copied" {
            break;
        }
        assert_eq!(map["status"], "copying");
        assert!(seen.len() < 10, "{seen:?}");
    }
    assert!(seen.len() > 1, "the copy runs in the background: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    assert_eq!(seen.last().unwrap().0, 100);
    let target = lab.san.volume(ARRAY, "pvc-t").unwrap();
    assert_eq!(
        std::fs::read(target.backing_path).unwrap(),
        vec![0x5a; 1 << 20]
    );

    let listed = lab
        .ok(
            &token,
            "lsfcmap",
            json!({"filtervalue": "target_vdisk_name=pvc-t"}),
        )
        .await;
    assert_eq!(listed[0]["source_vdisk_name"], "rdm-src");
    lab.ok(&token, &format!("rmfcmap/{id}"), json!({})).await;
    assert!(lab.array.fcmaps().is_empty());
    let (status, _) = lab.run(&token, &format!("rmfcmap/{id}"), json!({})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}
