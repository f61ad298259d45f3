//! Contract tests for the FlashArray facade against the FlashArray REST 2.16 OpenAPI definition:
//! every route it serves is an operation of the definition, and every field of every item it
//! answers is a property of the definition's model for that collection.
//!
//! The definition is read at test time from `$PURE_API_DIR` (the folder holding
//! `FA2.16.spec.yaml`) or `<repo>/../shared/vendor-api/pure`; the tests skip with a printed reason
//! when neither exists.

use std::collections::BTreeSet;
use std::path::PathBuf;

use co_lab::arrays::pure::{FlashArray, OPERATIONS, PureCredentials};
use co_lab::san::{ArrayVendor, GroupSpec, San};
use serde_json::Value;

fn definition() -> Option<Value> {
    let dir = std::env::var_os("PURE_API_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vendor-api/pure")
        });
    let file = dir.join("FA2.16.spec.yaml");
    let Ok(text) = std::fs::read_to_string(&file) else {
        eprintln!(
            "SKIPPED: {} not found (set PURE_API_DIR to the folder holding FA2.16.spec.yaml)",
            file.display()
        );
        return None;
    };
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    Some(serde_json::to_value(yaml).unwrap())
}

fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let node = reference
                .trim_start_matches("#/")
                .split('/')
                .fold(doc, |node, part| &node[part]);
            resolve(doc, node)
        }
        None => value,
    }
}

fn properties(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = resolve(doc, schema);
    let mut out: BTreeSet<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        out.extend(properties(doc, part));
    }
    out
}

#[test]
fn every_served_route_is_a_flasharray_operation() {
    let Some(doc) = definition() else { return };
    for (method, template) in OPERATIONS {
        if template.contains("{v1}") {
            // REST 1.x (the legacy token exchange) is not part of the 2.x definition.
            continue;
        }
        let path = template.replace("{v2}", "2.16");
        let op = &doc["paths"][&path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} is not in FA2.16.spec.yaml");
    }
}

#[tokio::test]
async fn every_answered_field_is_in_the_model() {
    let Some(doc) = definition() else { return };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array("fa1", ArrayVendor::PureFlashArray).unwrap();
    let array = FlashArray::new(
        san.clone(),
        "fa1",
        PureCredentials {
            username: "u".into(),
            password: "p".into(),
            api_token: "t".into(),
        },
    );
    san.create_volume("fa1", "vol-1", 1 << 20).unwrap();
    san.create_group(
        "fa1",
        GroupSpec {
            name: "h1".into(),
            initiators: vec!["iqn.1998-01.com.vmware:h1".into()],
            ..GroupSpec::default()
        },
    )
    .unwrap();
    array.create_host_group("hg1", &["h1"]).unwrap();
    array.connect_host_group("vol-1", "hg1").unwrap();
    array.tag_vvol("vol-1", "rfc4122.1").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = array.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{base}/api/2.16/login"))
        .header("api-token", "t")
        .send()
        .await
        .unwrap();
    let session = login.headers()["x-auth-token"].to_str().unwrap().to_owned();

    for (resource, response_model) in [
        ("arrays", "ArrayGetResponse"),
        ("controllers", "ControllerGetResponse"),
        ("hosts", "HostGetResponse"),
        ("host-groups", "HostGroupGetResponse"),
        ("connections", "ConnectionGetResponse"),
        ("volumes", "VolumeGetResponse"),
        ("volumes/tags", "TagGetResponse"),
    ] {
        let body: Value = http
            .get(format!("{base}/api/2.16/{resource}"))
            .header("x-auth-token", &session)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let schema = &doc["components"]["schemas"][response_model];
        let top = properties(&doc, schema);
        for key in body.as_object().unwrap().keys() {
            assert!(top.contains(key), "{response_model} has no {key:?}");
        }
        let item_schema = resolve(&doc, schema)["allOf"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(resolve(&doc, schema)))
            .find_map(|part| {
                let items = &resolve(&doc, part)["properties"]["items"]["items"];
                items.is_object().then_some(items)
            })
            .unwrap_or_else(|| panic!("{response_model} has no items"));
        let known = properties(&doc, item_schema);
        let items = body["items"].as_array().unwrap();
        assert!(!items.is_empty(), "{resource} answered no items");
        for item in items {
            for key in item.as_object().unwrap().keys() {
                assert!(
                    known.contains(key),
                    "{resource}: {key:?} is not in {response_model}"
                );
            }
        }
    }
}
