//! Dell's own PowerFlex client library (PyPowerFlex, pinned in `peers/versions.env`) against the
//! lab's PowerFlex gateway facade over HTTPS: login per request (the token as the Basic password)
//! and logout, the API version and the system, the ESXi host's SDC by GUID, the volume by name and
//! by id with its SDC mappings, map/unmap to the SDC and the gateway's refusals, wrong
//! credentials. The script (`vendor_clients/powerflex.py`) checks each answer; this test checks
//! the SAN afterwards. Where the library and our plugin disagree on a shape, the library wins: fix
//! the facade and the plugin, not the script.

use crate::client_support;

use std::process::Command;

use co_lab::arrays::powerflex::{self, PowerFlex};
use co_lab::san::{ArrayVendor, San};
use serde_json::{Value, json};

const ARRAY: &str = "pflex-conformance";
const PASSWORD: &str = "Password123!";
const ESX_GUID: &str = "1C2A7D4E-0B5F-4C3D-9E8F-0011223344CC";
const WORKER_GUID: &str = "7A6B5C4D-3E2F-4A1B-8C9D-AABBCCDDEE01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pypowerflex_drives_every_operation_the_plugin_uses() {
    let python = co_testpeers::VendorClient::PyPowerFlex
        .python()
        .unwrap_or_else(|e| panic!("PyPowerFlex is required for this test: {e:#}"));
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::PowerFlex).unwrap();
    let facade = PowerFlex::new(san.clone(), ARRAY, "admin", PASSWORD);
    let esx = facade.register_sdc("esx-conf", ESX_GUID, "Esx").unwrap();
    let worker = facade
        .register_sdc("ocp-worker-1", WORKER_GUID, "Linux")
        .unwrap();
    let csi = facade.create_csi_volume("pvc-conf1", 4 << 30).unwrap();
    san.map(ARRAY, "pvc-conf1", &format!("sdc-{worker}"))
        .unwrap();
    let port = client_support::serve_https(facade.router()).await;

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vendor_clients/powerflex.py"
    );
    let config = json!({
        "host": "127.0.0.1",
        "port": port,
        "username": "admin",
        "password": PASSWORD,
        "system_id": facade.system_id(),
        "volume": "pvc-conf1",
        "esx_guid": ESX_GUID,
    });
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(config.to_string())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "PyPowerFlex script failed:\n{stderr}"
    );
    // The library logs its errors to stdout; the report is the last line.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    let report: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("script output is not JSON ({e}): {stdout}\n{stderr}"));

    assert!(
        report["wrong_password"]
            .as_str()
            .is_some_and(|m| m.contains("401")),
        "{report}"
    );
    assert_eq!(report["api_version"], powerflex::API_VERSION);
    assert_eq!(report["system_id"], facade.system_id());
    assert_eq!(report["esx_sdc"], esx);
    assert_eq!(report["volume_id"], powerflex::volume_id(&csi.volume));
    assert_eq!(report["size_in_kb"], 4u64 << 20);
    assert_eq!(report["mapped_before"], json!([worker]));
    let mut during = vec![esx.clone(), worker.clone()];
    during.sort();
    assert_eq!(report["mapped_during"], json!(during));
    assert_eq!(report["mapped_after"], json!([worker]));
    for refusal in ["double_map", "double_unmap"] {
        assert!(
            report[refusal]
                .as_str()
                .is_some_and(|m| m.contains("errorCode")),
            "{refusal}: {report}"
        );
    }
    assert_eq!(report["logged_out"], true);

    // The script leaves only the worker node's mapping behind.
    let mappings = san.mappings(ARRAY);
    assert_eq!(mappings.len(), 1);
    assert_eq!(mappings[0].group, format!("sdc-{worker}"));
    co_testpeers::vendor_matrix::record(
        "powerflex",
        co_testpeers::vendor_matrix::Cell::VendorClient,
    );
}
