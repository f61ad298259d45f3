//! Dell's own PowerStore client library (PyPowerStore, pinned in `peers/versions.env`) against the
//! lab's PowerStore facade over HTTPS: login and session, the cluster and software version, the
//! volume by name with its mappings, every page of hosts, host create/modify/delete, host groups,
//! attach/detach to hosts and host groups, the array's refusals, logout. The script
//! (`vendor_clients/powerstore.py`) checks each answer; this test checks the SAN afterwards.
//! Where the library and our plugin disagree on a shape, the library wins: fix the facade and the
//! plugin, not the script.

use crate::client_support;

use std::process::Command;

use co_lab::arrays::powerstore::{PowerStore, create_csi_volume};
use co_lab::san::{ArrayVendor, GroupSpec, San};
use serde_json::{Value, json};

const ARRAY: &str = "ps-conformance";
const PASSWORD: &str = "Password123!";
const FILLER_HOSTS: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pypowerstore_drives_every_operation_the_plugin_uses() {
    let python = co_testpeers::VendorClient::PyPowerStore
        .python()
        .unwrap_or_else(|e| panic!("PyPowerStore is required for this test: {e:#}"));
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::PowerStore).unwrap();
    let volume = create_csi_volume(&san, ARRAY, "csivol-conf1", 4 << 30).unwrap();
    san.create_group(
        ARRAY,
        GroupSpec {
            name: "ocp-worker-1".into(),
            initiators: vec!["iqn.2020-01.io.openshift:worker-1".into()],
            os_type: Some("Linux".into()),
            ..GroupSpec::default()
        },
    )
    .unwrap();
    san.map(ARRAY, "csivol-conf1", "ocp-worker-1").unwrap();
    // More hosts than one default page, so the library has to follow Content-Range.
    for i in 0..FILLER_HOSTS {
        san.create_group(
            ARRAY,
            GroupSpec {
                name: format!("filler-{i:03}"),
                initiators: vec![format!("iqn.2020-01.io.lab:filler-{i}")],
                os_type: Some("Linux".into()),
                ..GroupSpec::default()
            },
        )
        .unwrap();
    }
    let facade = PowerStore::new(san.clone(), ARRAY, "admin", PASSWORD);
    let port = client_support::serve_https(facade.router()).await;

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vendor_clients/powerstore.py"
    );
    let config = json!({
        "host": "127.0.0.1",
        "port": port,
        "username": "admin",
        "password": PASSWORD,
        "volume": "csivol-conf1",
        "worker_host": "ocp-worker-1",
        "esx_iqn": "iqn.1998-01.com.vmware:esx-conf",
        "esx_wwpn": "21:00:00:25:b5:00:00:0c",
        "hosts_total": FILLER_HOSTS + 1,
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
        "PyPowerStore script failed:\n{stderr}"
    );
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("script output is not JSON ({e}): {stderr}"));

    assert_eq!(report["cluster"], ARRAY);
    assert_eq!(report["global_id"], facade.global_id());
    assert_eq!(report["volume_id"], volume.uuid);
    assert_eq!(report["wwn"], volume.naa);
    assert_eq!(report["size"], 4u64 << 30);
    assert_eq!(report["lun"], 0, "first LUN of a new host");
    for refusal in [
        "duplicate_initiator",
        "double_attach",
        "grouped_host_attach",
    ] {
        assert!(
            report[refusal].as_str().is_some_and(|m| m.contains("422")),
            "{refusal}: {report}"
        );
    }
    assert_eq!(report["logged_out"], true);
    assert_eq!(
        facade.open_sessions(),
        0,
        "the library's logout ended the session"
    );

    // Everything the script created is gone; the original mapping is untouched.
    assert!(san.group(ARRAY, "xcopy-conformance").is_none());
    assert!(san.group(ARRAY, "xcopy-conformance-group").is_none());
    let mappings = san.mappings(ARRAY);
    assert_eq!(mappings.len(), 1);
    assert_eq!(mappings[0].group, "ocp-worker-1");
    co_testpeers::vendor_matrix::record(
        "powerstore",
        co_testpeers::vendor_matrix::Cell::VendorClient,
    );
}
