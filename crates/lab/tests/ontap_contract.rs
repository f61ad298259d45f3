//! Contract tests for the ONTAP facade: every route it serves is an operation of ONTAP's REST API
//! (`vendor-api/ontap/operations.tsv`), every JSON field it returns exists in ONTAP's models
//! (`vendor-api/ontap/models.json`), and the router serves exactly the routes it declares.
//!
//! The vendor-api files are read at test time from `$VENDOR_API_DIR` or `<repo>/../shared/vendor-api`;
//! the tests that need them skip with a printed reason when neither exists.

use std::collections::HashSet;
use std::path::PathBuf;

use co_lab::arrays::ontap::{self, OPERATIONS};
use co_lab::san::{ArrayVendor, San};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

fn vendor_api_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("VENDOR_API_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vendor-api")
        });
    if dir.join("ontap/operations.tsv").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: ONTAP vendor-api files not found at {} (set VENDOR_API_DIR)",
            dir.display()
        );
        None
    }
}

#[test]
fn every_served_route_is_an_ontap_operation() {
    let Some(dir) = vendor_api_dir() else { return };
    let tsv = std::fs::read_to_string(dir.join("ontap/operations.tsv")).unwrap();
    let published: HashSet<(String, String)> = tsv
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split('\t');
            Some((cols.next()?.to_owned(), cols.next()?.to_owned()))
        })
        .collect();
    assert!(published.len() > 1000, "operations.tsv looks truncated");
    for (method, path) in OPERATIONS {
        assert!(
            published.contains(&(method.to_string(), path.to_string())),
            "{method} {path} is not in ONTAP's operations.tsv"
        );
    }
}

struct Served {
    _dir: tempfile::TempDir,
    san: San,
    base: String,
    http: reqwest::Client,
}

async fn serve() -> Served {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array("c1", ArrayVendor::Ontap).unwrap();
    let router = ontap::router(san.clone(), "c1", "svm1", "u", "p");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Served {
        _dir: dir,
        san,
        base,
        http: reqwest::Client::new(),
    }
}

impl Served {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth("u", Some("p"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn the_router_serves_exactly_the_declared_operations() {
    let served = serve().await;
    let mut paths: Vec<&str> = OPERATIONS.iter().map(|(_, p)| *p).collect();
    paths.sort_unstable();
    paths.dedup();
    for template in paths {
        let concrete = template
            .replace("{igroup.uuid}", "x")
            .replace("{lun.uuid}", "x")
            .replace("{uuid}", "x")
            .replace("{name}", "x");
        let declared = ontap::methods_for(template);
        for method in [Method::GET, Method::POST, Method::PATCH, Method::DELETE] {
            let (status, body) = served
                .call(method.clone(), &concrete, Some(json!({})))
                .await;
            if declared.contains(&method) {
                // Served: a handler answered (objects named `x` do not exist, so often with an
                // ONTAP error body), never the router's bare 404/405.
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {template}"
                );
                assert!(
                    body.is_object(),
                    "{method} {template}: {status} without a JSON body"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {template} is served but not declared in OPERATIONS"
                );
            }
        }
    }
    let (status, _) = served.call(Method::GET, "/api/storage/volumes", None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "undeclared paths are not served"
    );
}

/// Checks that every key of `value` is a field of ONTAP model `model`, recursing into fields whose
/// type names another model (`*LunInlineSpace`, `[]*LunInlineLunMapsInlineArrayItem`).
fn check_fields(models: &Map<String, Value>, model: &str, value: &Value, at: &str) {
    let fields = models
        .get(model)
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("model {model} (at {at}) is not in models.json"));
    let Value::Object(object) = value else {
        return;
    };
    for (key, child) in object {
        let Some(kind) = fields.get(key).and_then(Value::as_str) else {
            panic!("{at}.{key} is not a field of ONTAP model {model}");
        };
        let nested = kind.trim_start_matches("[]").trim_start_matches('*');
        if !models.contains_key(nested) {
            continue;
        }
        match child {
            Value::Array(items) => items
                .iter()
                .for_each(|item| check_fields(models, nested, item, &format!("{at}.{key}[]"))),
            other => check_fields(models, nested, other, &format!("{at}.{key}")),
        }
    }
}

#[tokio::test]
async fn every_returned_field_exists_in_ontap_models() {
    let Some(dir) = vendor_api_dir() else { return };
    let models: Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ontap/models.json")).unwrap())
            .unwrap();
    let served = serve().await;
    let volume = ontap::create_trident_volume(&served.san, "c1", "pvc_x", 1 << 20).unwrap();
    served
        .san
        .ensure_group("c1", "g1", &["iqn.1998-01.com.vmware:esx-1".to_owned()])
        .unwrap();
    served.san.map("c1", &volume.name, "g1").unwrap();
    let group_uuid = served.san.group("c1", "g1").unwrap().uuid;

    let collections = [
        ("/api/svm/svms?fields=*", "SvmResponse", "Svm"),
        ("/api/storage/luns?fields=*", "LunResponse", "Lun"),
        (
            "/api/protocols/san/igroups?fields=*",
            "IgroupResponse",
            "Igroup",
        ),
        (
            "/api/protocols/san/lun-maps?fields=*",
            "LunMapResponse",
            "LunMap",
        ),
    ];
    for (path, response_model, record_model) in collections {
        let (status, body) = served.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        check_fields(&models, response_model, &body, path);
        assert!(body["num_records"].as_u64().unwrap() >= 1, "{path}");
        check_fields(&models, record_model, &body["records"][0], path);
    }
    let initiators = format!("/api/protocols/san/igroups/{group_uuid}/initiators");
    let (_, body) = served.call(Method::GET, &initiators, None).await;
    check_fields(&models, "IgroupInitiatorResponse", &body, &initiators);
    check_fields(&models, "IgroupInitiator", &body["records"][0], &initiators);
    let (_, body) = served.call(Method::GET, "/api/cluster", None).await;
    check_fields(&models, "Cluster", &body, "/api/cluster");
    let (status, body) = served
        .call(Method::GET, "/api/storage/luns/nope", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    check_fields(&models, "ErrorResponse", &body, "error");
}
