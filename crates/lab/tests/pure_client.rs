//! Pure Storage's own FlashArray client (`py-pure-client`, pinned in `peers/versions.env`) against
//! the lab's FlashArray facade over HTTPS: version negotiation, API-token login, volumes by name,
//! id and serial, paging, hosts and host groups, connections, a session ended behind the
//! library's back, vVol tags, the array-side copy, and logout at exit. Where the library and the
//! facade disagree, the library is right.

use crate::client_support;

use std::process::Command;

use co_lab::arrays::pure::{FlashArray, PureCredentials};
use co_lab::san::{ArrayVendor, San};
use serde_json::Value;

const ARRAY: &str = "fa1";
const TOKEN: &str = "7d1b2c3a-5e6f-4a8b-9c0d-1e2f3a4b5c6d";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx9-77aa";
const ESX_WWN: &str = "21:00:00:25:b5:00:00:09";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_pure_client_drives_every_operation_the_plugin_uses() {
    let python = co_testpeers::VendorClient::PyPureClient
        .python()
        .unwrap_or_else(|e| panic!("py-pure-client is required for this test: {e:#}"));
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::PureFlashArray).unwrap();
    let array = FlashArray::new(
        san.clone(),
        ARRAY,
        PureCredentials {
            username: "pureuser".into(),
            password: "pureuser-pw".into(),
            api_token: TOKEN.into(),
        },
    );
    let target = san
        .create_volume(ARRAY, "px_1a2b3c4d-pvc-9", 1 << 20)
        .unwrap();
    let source = san.create_volume(ARRAY, "vvol-data-9", 1 << 20).unwrap();
    std::fs::write(&source.backing_path, b"copied by the array").unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&source.backing_path)
        .unwrap()
        .set_len(source.size_bytes)
        .unwrap();
    array.tag_vvol("vvol-data-9", "rfc4122.9").unwrap();

    let port = client_support::serve_https(array.router()).await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vendor_clients/pure.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("LAB_TARGET", format!("127.0.0.1:{port}"))
            .env("LAB_API_TOKEN", TOKEN)
            .env("LAB_VOLUME", "px_1a2b3c4d-pvc-9")
            .env("LAB_SOURCE", "vvol-data-9")
            .env("LAB_VVOL_ID", "rfc4122.9")
            .env("LAB_ESX_IQN", ESX_IQN)
            .env("LAB_ESX_WWN", ESX_WWN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "py-pure-client script failed:\n{stderr}"
    );
    let seen: Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));

    assert_eq!(
        seen["rest_version"], "2.16",
        "the highest version both speak"
    );
    assert!(
        seen["wrong_token"].as_str().unwrap().contains("401"),
        "{}",
        seen["wrong_token"]
    );
    assert_eq!(seen["array"]["os"], "Purity//FA");
    assert_eq!(seen["volume"]["id"], target.uuid);
    assert_eq!(seen["volume"]["serial"], target.serial);
    assert_eq!(seen["volume"]["provisioned"], target.size_bytes);
    assert_eq!(seen["volume"]["same_by_id"], true);
    assert_eq!(seen["volume"]["by_serial"][0], "px_1a2b3c4d-pvc-9");
    assert_eq!(seen["missing_volume"]["status"], 400);
    assert_eq!(
        seen["missing_volume"]["messages"][0],
        "Volume does not exist."
    );
    assert_eq!(seen["missing_volume"]["contexts"][0], "no-such-volume");
    assert_eq!(seen["total_item_count"], 2);
    assert_eq!(
        seen["paged_names"],
        serde_json::json!(["px_1a2b3c4d-pvc-9", "vvol-data-9"])
    );

    assert_eq!(seen["created_host"]["iqns"][0], ESX_IQN);
    assert_eq!(seen["created_host"]["personality"], "esxi");
    assert_eq!(seen["patched_wwns"][0], "21000025B5000009");
    assert_eq!(seen["duplicate_iqn"]["status"], 400);
    assert_eq!(seen["local_hosts"][0], "xcopy-hostsystem-host-9");

    assert_eq!(seen["connection"]["lun"], 0);
    assert_eq!(seen["connection"]["volume"], "px_1a2b3c4d-pvc-9");
    assert_eq!(
        seen["duplicate_connection"]["messages"][0],
        "Connection already exists."
    );
    assert_eq!(seen["listed_connections"][0][0], "xcopy-hostsystem-host-9");
    assert_eq!(
        seen["after_unmap"],
        serde_json::json!([]),
        "unmapped after the re-login"
    );
    assert_eq!(
        seen["shared_connections"],
        serde_json::json!([["xcopy-hostsystem-host-9", "xcopy-hg"]])
    );

    assert_eq!(seen["vvol_volume"], "vvol-data-9");
    assert_eq!(seen["copy_without_overwrite"]["status"], 400);
    assert_eq!(
        seen["copied"]["serial"], target.serial,
        "copied onto the same volume"
    );
    assert_eq!(seen["copied"]["source"], "vvol-data-9");
    let data = std::fs::read(&target.backing_path).unwrap();
    assert_eq!(&data[..19], b"copied by the array");
    assert_eq!(seen["hosts_left"], serde_json::json!([]));

    assert!(san.mappings(ARRAY).is_empty());
    assert!(san.groups(ARRAY).is_empty());
    assert_eq!(array.open_sessions(), 0, "the library logs out at exit");
    co_testpeers::vendor_matrix::record(
        "pureFlashArray",
        co_testpeers::vendor_matrix::Cell::VendorClient,
    );
}
