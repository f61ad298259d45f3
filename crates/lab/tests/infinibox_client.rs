//! Infinidat's own InfiniBox client library (InfiniSDK, pinned in `peers/versions.env`) against
//! the lab's InfiniBox facade over HTTPS: the version check and features at connect, login and
//! session, the volume by name with its serial and mappings, every page of hosts, host create,
//! ports, host by port, metadata, map/unmap on a host and a host cluster, the array's refusals,
//! host delete and logout. The script (`vendor_clients/infinibox.py`) checks each answer; this
//! test checks the SAN afterwards. Where the library and our plugin disagree on a shape, the
//! library wins: fix the facade and the plugin, not the script.

use crate::client_support;

use std::process::Command;

use co_lab::arrays::infinibox::{InfiniBox, SYSTEM_VERSION, create_csi_volume};
use co_lab::san::{ArrayVendor, GroupSpec, San};
use serde_json::{Value, json};

const ARRAY: &str = "ibox-conformance";
const PASSWORD: &str = "Password123!";
const FILLER_HOSTS: usize = 60;

fn host(san: &San, name: &str, iqn: &str) {
    san.create_group(
        ARRAY,
        GroupSpec {
            name: name.into(),
            initiators: vec![iqn.into()],
            os_type: Some("linux".into()),
            ..GroupSpec::default()
        },
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinisdk_drives_every_operation_the_plugin_uses() {
    let python = co_testpeers::VendorClient::InfiniSdk
        .python()
        .unwrap_or_else(|e| panic!("InfiniSDK is required for this test: {e:#}"));
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::InfiniBox).unwrap();
    let csi = create_csi_volume(&san, ARRAY, "pvc-conf1", 4 << 30).unwrap();
    host(&san, "ocp-worker-1", "iqn.2020-01.io.openshift:worker-1");
    san.map(ARRAY, "pvc-conf1", "ocp-worker-1").unwrap();
    // More hosts than one default page, so the library has to follow the pages.
    for i in 0..FILLER_HOSTS {
        host(
            &san,
            &format!("filler-{i:03}"),
            &format!("iqn.2020-01.io.lab:filler-{i}"),
        );
    }
    let facade = InfiniBox::new(san.clone(), ARRAY, "admin", PASSWORD);
    facade
        .create_cluster("esx-cluster", &["filler-000"])
        .unwrap();
    let port = client_support::serve_https(facade.router()).await;

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vendor_clients/infinibox.py"
    );
    let config = json!({
        "host": "127.0.0.1",
        "port": port,
        "username": "admin",
        "password": PASSWORD,
        "volume": "pvc-conf1",
        "worker_host": "ocp-worker-1",
        "esx_iqn": "iqn.1998-01.com.vmware:esx-conf",
        "esx_wwpn": "21:00:00:25:b5:00:00:0c",
        "cluster": "esx-cluster",
        "cluster_member": "filler-000",
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
        "InfiniSDK script failed:\n{stderr}"
    );
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("script output is not JSON ({e}): {stderr}"));

    assert_eq!(report["version"], SYSTEM_VERSION);
    assert_eq!(report["name"], ARRAY);
    assert_eq!(report["volume_id"], csi.id);
    assert_eq!(report["serial"], csi.volume.serial);
    assert_eq!(report["size"], 4u64 << 30);
    assert_eq!(report["original_hosts"], json!(["ocp-worker-1"]));
    assert_eq!(report["hosts_total"], FILLER_HOSTS + 1);
    assert_eq!(
        report["ports"],
        json!(["21000025b500000c", "iqn.1998-01.com.vmware:esx-conf"])
    );
    assert_eq!(report["metadata"]["created_by"], "copy-offload");
    assert_eq!(report["lun"], 0, "first LUN of a new host");
    assert_eq!(
        report["volume_luns"].as_array().map(Vec::len),
        Some(2),
        "the worker's and the ESXi host's LUN: {report}"
    );
    for refusal in ["duplicate_port", "double_map"] {
        assert!(
            report[refusal]
                .as_str()
                .is_some_and(|m| m.starts_with("409")),
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
    assert!(facade.leftovers().is_empty(), "{:?}", facade.leftovers());
    let mappings = san.mappings(ARRAY);
    assert_eq!(mappings.len(), 1);
    assert_eq!(mappings[0].group, "ocp-worker-1");
    co_testpeers::vendor_matrix::record(
        "infinibox",
        co_testpeers::vendor_matrix::Cell::VendorClient,
    );
}
