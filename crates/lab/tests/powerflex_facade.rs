//! The PowerFlex gateway facade over HTTP on loopback, driven with raw requests: the session model
//! (Basic login → token as the Basic password, 401, logout, expiry), objects and relationships, the
//! SDC mapping rules (double map, `allowMultipleMappings`, `allSdcs`, string booleans), error
//! bodies — and the SAN model after each step (a host sees the volume through its SDC GUID).

use co_lab::arrays::powerflex::{self, PowerFlex};
use co_lab::san::{ArrayVendor, San};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ARRAY: &str = "pflex1";
const USER: &str = "admin";
const PASSWORD: &str = "Password123!";
const ESX_GUID: &str = "1C2A7D4E-0B5F-4C3D-9E8F-001122334455";
const NODE_GUID: &str = "7A6B5C4D-3E2F-4A1B-8C9D-AABBCCDDEEFF";

struct Gateway {
    _dir: tempfile::TempDir,
    san: San,
    facade: PowerFlex,
    base: String,
    http: reqwest::Client,
}

async fn serve() -> Gateway {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::PowerFlex).unwrap();
    let facade = PowerFlex::new(san.clone(), ARRAY, USER, PASSWORD);
    let router = facade.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Gateway {
        _dir: dir,
        san,
        facade,
        base,
        http: reqwest::Client::new(),
    }
}

impl Gateway {
    async fn login(&self) -> String {
        let response = self
            .http
            .get(format!("{}/login", self.base))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<String>().await.unwrap()
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth("", Some(token))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .basic_auth(USER, Some(token))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn assert_error(body: &Value, status: u16) {
    assert_eq!(body["httpStatusCode"], status, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["errorCode"].is_u64(), "{body}");
}

#[tokio::test]
async fn login_gives_a_token_used_as_the_basic_password_until_logout() {
    let gw = serve().await;
    let wrong = gw
        .http
        .get(format!("{}/login", gw.base))
        .basic_auth(USER, Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_error(&wrong.json().await.unwrap(), 401);

    let (status, body) = gw.get("not-a-token", "/version").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, 401);
    // The password itself is not a token.
    let (status, _) = gw.get(PASSWORD, "/version").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let token = gw.login().await;
    assert_eq!(gw.facade.open_sessions(), 1);
    let (status, version) = gw.get(&token, "/version").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(version, json!(powerflex::API_VERSION));

    let logout = gw
        .http
        .get(format!("{}/logout", gw.base))
        .basic_auth(USER, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    assert_eq!(gw.facade.open_sessions(), 0);
    let (status, _) = gw.get(&token, "/version").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a logged-out token is dead"
    );

    let token = gw.login().await;
    gw.facade.expire_sessions();
    let (status, _) = gw.get(&token, "/types/System/instances").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "expired sessions answer 401"
    );
}

#[tokio::test]
async fn system_sdcs_and_volumes_read_as_the_rest_reference_shows_them() {
    let gw = serve().await;
    let esx = gw.facade.register_sdc("esx-1", ESX_GUID, "Esx").unwrap();
    let csi = gw.facade.create_csi_volume("pvc-1", 8 << 20).unwrap();
    let token = gw.login().await;

    let (_, systems) = gw.get(&token, "/types/System/instances").await;
    assert_eq!(systems[0]["id"], gw.facade.system_id());
    let system = format!("/instances/System::{}", gw.facade.system_id());
    let (status, sdcs) = gw.get(&token, &format!("{system}/relationships/Sdc")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sdcs[0]["id"], esx);
    assert_eq!(sdcs[0]["sdcGuid"], ESX_GUID);
    assert_eq!(sdcs[0]["osType"], "Esx");
    assert_eq!(sdcs[0]["systemId"], gw.facade.system_id());
    let (status, body) = gw
        .get(
            &token,
            "/instances/System::0000000000000bad/relationships/Sdc",
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_error(&body, 500);

    let (status, id) = gw
        .post(
            &token,
            "/types/Volume/instances/action/queryIdByKey",
            json!({"name": "pvc-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let id = id.as_str().unwrap().to_owned();
    assert_eq!(id, powerflex::volume_id(&csi.volume));
    assert_eq!(csi.volume.naa, format!("eui.{}{id}", gw.facade.system_id()));
    assert_eq!(csi.volume_handle, format!("{}-{id}", gw.facade.system_id()));
    let (status, body) = gw
        .post(
            &token,
            "/types/Volume/instances/action/queryIdByKey",
            json!({"name": "absent"}),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_error(&body, 500);

    let (_, volume) = gw.get(&token, &format!("/instances/Volume::{id}")).await;
    assert_eq!(volume["name"], "pvc-1");
    assert_eq!(volume["sizeInKb"], 8 * 1024);
    assert_eq!(
        volume["mappedSdcInfo"],
        Value::Null,
        "an unmapped volume has null, not []"
    );
    let (_, all) = gw.get(&token, "/types/Volume/instances").await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    let (status, body) = gw.get(&token, "/instances/Volume").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 400);
}

#[tokio::test]
async fn sdc_mappings_follow_the_array_rules_and_reach_the_host() {
    let gw = serve().await;
    let esx = gw.facade.register_sdc("esx-1", ESX_GUID, "Esx").unwrap();
    let node = gw
        .facade
        .register_sdc("ocp-node-1", NODE_GUID, "Linux")
        .unwrap();
    let csi = gw.facade.create_csi_volume("pvc-1", 1 << 20).unwrap();
    let id = powerflex::volume_id(&csi.volume);
    let token = gw.login().await;
    let action = |name: &str| format!("/instances/Volume::{id}/action/{name}");

    // The worker node attached the PVC first.
    let (status, body) = gw
        .post(&token, &action("addMappedSdc"), json!({"sdcId": node}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({}));

    // A second SDC needs allowMultipleMappings.
    let (status, body) = gw
        .post(&token, &action("addMappedSdc"), json!({"sdcId": esx}))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_error(&body, 500);
    assert!(gw.san.visible_luns(&[ESX_GUID.to_owned()]).is_empty());
    let (status, _) = gw
        .post(
            &token,
            &action("addMappedSdc"),
            json!({"guid": ESX_GUID.to_ascii_lowercase(), "allowMultipleMappings": "TRUE"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the GUID matches in any case; string booleans"
    );
    let seen = gw.san.visible_luns(&[ESX_GUID.to_owned()]);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].naa, csi.volume.naa);

    // Twice to the same SDC is refused.
    let (status, body) = gw
        .post(
            &token,
            &action("addMappedSdc"),
            json!({"sdcId": esx, "allowMultipleMappings": "True"}),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_error(&body, 500);

    let (_, volume) = gw.get(&token, &format!("/instances/Volume::{id}")).await;
    let mut mapped: Vec<&str> = volume["mappedSdcInfo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sdcId"].as_str().unwrap())
        .collect();
    mapped.sort_unstable();
    let mut expected = vec![esx.as_str(), node.as_str()];
    expected.sort_unstable();
    assert_eq!(mapped, expected);
    let (_, of_esx) = gw
        .get(
            &token,
            &format!("/instances/Sdc::{esx}/relationships/Volume"),
        )
        .await;
    assert_eq!(of_esx[0]["id"], id);

    // Unknown fields and bad booleans are 400; both sdcId and guid is 400.
    for bad in [
        json!({"sdcId": esx, "bogus": 1}),
        json!({"sdcId": esx, "allowMultipleMappings": "maybe"}),
        json!({"sdcId": esx, "guid": ESX_GUID}),
    ] {
        let (status, body) = gw.post(&token, &action("addMappedSdc"), bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_error(&body, 400);
    }

    let (status, _) = gw
        .post(&token, &action("removeMappedSdc"), json!({"sdcId": esx}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(gw.san.visible_luns(&[ESX_GUID.to_owned()]).is_empty());
    assert_eq!(gw.facade.mapped_sdcs("pvc-1"), vec![node.clone()]);
    let (status, body) = gw
        .post(&token, &action("removeMappedSdc"), json!({"sdcId": esx}))
        .await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "unmapping what is not mapped is refused"
    );
    assert_error(&body, 500);

    // allSdcs unmaps every SDC, the worker node's included.
    let (status, _) = gw
        .post(
            &token,
            &action("removeMappedSdc"),
            json!({"allSdcs": "TRUE"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(gw.facade.mapped_sdcs("pvc-1").is_empty());
    assert!(gw.san.visible_luns(&[NODE_GUID.to_owned()]).is_empty());
}
