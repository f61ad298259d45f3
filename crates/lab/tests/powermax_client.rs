//! Dell's own PowerMax client library (PyU4V, pinned in `peers/versions.env`) against the lab's
//! Unisphere facade over HTTPS: the version check and the array, the port group, the volume by
//! device id and every page of the volume iterator, initiators and host creation, storage group,
//! masking view and LUN address, the array's refusals, an asynchronous job, and the unmapping
//! sequence. The script (`vendor_clients/powermax.py`) checks each answer; this test checks the
//! SAN afterwards. Where the library and our plugin disagree on a shape, the library wins: fix the
//! facade and the plugin, not the script.

use crate::client_support;

use std::process::Command;

use co_lab::arrays::powermax::{self, ISCSI_PORT_GROUP, PowerMax};
use co_lab::san::{ArrayVendor, GroupSpec, San};
use serde_json::{Value, json};

const ARRAY: &str = "pmax-conformance";
const PASSWORD: &str = "Password123!";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx-conf";
const FILLER_VOLUMES: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyu4v_drives_every_operation_the_plugin_uses() {
    let python = co_testpeers::VendorClient::PyU4V
        .python()
        .unwrap_or_else(|e| panic!("PyU4V is required for this test: {e:#}"));
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::PowerMax).unwrap();
    let volume = san.create_volume(ARRAY, "csivol-conf1", 4 << 30).unwrap();
    san.create_group(
        ARRAY,
        GroupSpec {
            name: "ocp-worker-1".into(),
            initiators: vec!["iqn.2020-01.io.openshift:worker-1".into()],
            ..GroupSpec::default()
        },
    )
    .unwrap();
    san.map(ARRAY, "csivol-conf1", "ocp-worker-1").unwrap();
    for i in 0..FILLER_VOLUMES {
        san.create_volume(ARRAY, &format!("filler-{i}"), 1 << 20)
            .unwrap();
    }
    let facade = PowerMax::new(san.clone(), ARRAY, "smc", PASSWORD);
    // Pages smaller than the list, so the library has to follow the iterator.
    facade.set_page_size(3);
    facade.log_in(ESX_IQN).unwrap();
    let port = client_support::serve_https(facade.router()).await;

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vendor_clients/powermax.py"
    );
    let device = powermax::device_id(&volume);
    let config = json!({
        "host": "127.0.0.1",
        "port": port,
        "username": "smc",
        "password": PASSWORD,
        "array_id": facade.symmetrix_id(),
        "port_group": ISCSI_PORT_GROUP,
        "device": device,
        "esx_iqn": ESX_IQN,
        "volumes_total": FILLER_VOLUMES + 1,
    });
    let home = tempfile::tempdir().unwrap();
    let output = tokio::task::spawn_blocking({
        let home = home.path().to_owned();
        move || {
            Command::new(python)
                .arg(script)
                .arg(config.to_string())
                // PyU4V reads ~/.PyU4V/PyU4V.conf when present: none here.
                .env("HOME", home)
                // requests lets these override a session's `verify=False` (PyU4V's only way to
                // accept the lab's self-signed certificate).
                .env_remove("REQUESTS_CA_BUNDLE")
                .env_remove("CURL_CA_BUNDLE")
                .current_dir(std::env::temp_dir())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "PyU4V script failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("script output is not JSON ({e}): {stderr}"));

    assert_eq!(report["version"], powermax::UNISPHERE_VERSION);
    assert_eq!(report["model"], powermax::MODEL);
    assert_eq!(report["ucode"], powermax::UCODE);
    assert_eq!(report["port_group_protocol"], "iSCSI");
    assert_eq!(report["wwn"], volume.serial);
    assert_eq!(report["newest_wwn"], volume.serial);
    assert_eq!(format!("naa.{}", volume.serial), volume.naa);
    assert_eq!(report["volume_identifier"], "csivol-conf1");
    assert_eq!(report["cap_gb"], 4.0);
    assert_eq!(report["original_groups"], json!(["ocp-worker-1_SG"]));
    assert_eq!(report["worker_views"], json!(["ocp-worker-1_MV"]));
    assert_eq!(report["host_initiators"], json!([ESX_IQN]));
    assert_eq!(report["lun"], 0, "first LUN of a new host");
    for refusal in ["last_volume", "group_in_view", "host_in_view"] {
        assert!(
            report[refusal]
                .as_str()
                .is_some_and(|m| m.contains("masking view")),
            "{refusal}: {report}"
        );
    }
    assert_eq!(report["closed"], true);

    // Everything the script created is gone; the original mapping is untouched.
    assert!(facade.leftovers().is_empty(), "{:?}", facade.leftovers());
    let mappings = san.mappings(ARRAY);
    assert_eq!(mappings.len(), 1);
    assert_eq!(mappings[0].group, "ocp-worker-1");
    co_testpeers::vendor_matrix::record(
        "powermax",
        co_testpeers::vendor_matrix::Cell::VendorClient,
    );
}
