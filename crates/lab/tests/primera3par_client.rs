//! HPE's own Primera/3PAR client library (python-3parclient, pinned in `peers/versions.env`)
//! against the lab's WSAPI facade: login and session key, the WSAPI build and the system, the
//! volume by name, hosts by path query, host create with persona and path add, host sets and
//! their members, VLUN export at an automatic LUN and its removal, offline and online physical
//! copies and their tasks (the offline one refused onto an exported volume), a snapshot, its
//! promote and its delete, the array's refusals, logout.
//! The script (`vendor_clients/primera3par.py`) checks each answer; this test checks the SAN
//! afterwards. Where the library and our plugin disagree on a shape, the library wins: fix the
//! facade and the plugin, not the script.

use std::process::Command;

use co_lab::arrays::primera3par::{self, Primera};
use co_lab::san::{ArrayVendor, GroupSpec, San};
use serde_json::{Value, json};

const ARRAY: &str = "3par-conformance";
const PASSWORD: &str = "Password123!";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_3parclient_drives_every_operation_the_plugin_uses() {
    let python = co_testpeers::VendorClient::Python3ParClient
        .python()
        .unwrap_or_else(|e| panic!("python-3parclient is required for this test: {e:#}"));
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::Primera3Par).unwrap();
    let facade = Primera::new(san.clone(), ARRAY, "3paradm", PASSWORD);
    let volume = facade.create_csi_volume("pvc-conf1", 4 << 30).unwrap();
    let source = facade.create_csi_volume("rdm-lun-conf", 8 << 20).unwrap();
    let spare = facade
        .create_csi_volume("unexported-conf", 8 << 20)
        .unwrap();
    std::fs::write(&source.backing_path, b"rdm blocks").unwrap();
    for (name, path) in [
        ("ocp-worker-1", "iqn.2020-01.io.openshift:worker-1"),
        ("esx-admin", "21000025B500000A"),
    ] {
        san.create_group(
            ARRAY,
            GroupSpec {
                name: name.into(),
                initiators: vec![path.into()],
                ..GroupSpec::default()
            },
        )
        .unwrap();
    }
    san.map(ARRAY, &volume.name, "ocp-worker-1").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let router = facade.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vendor_clients/primera3par.py"
    );
    let config = json!({
        "url": url,
        "username": "3paradm",
        "password": PASSWORD,
        "volume": volume.name,
        "worker_host": "ocp-worker-1",
        "admin_host": "esx-admin",
        "admin_wwn": "21000025b500000a",
        "esx_iqn": "iqn.1998-01.com.vmware:esx-conf",
        "esx_wwn": "21000025B500000C",
        "host": "xcopy-hostsystem-host-9",
        "host_set": "xcopy-hostsystem-host-9",
        "source": source.name,
        "spare": spare.name,
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
        "python-3parclient script failed:\n{stderr}"
    );
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("script output is not JSON ({e}): {stderr}"));

    assert_eq!(report["build"], primera3par::WSAPI_BUILD);
    assert_eq!(
        report["is_primera"], true,
        "the library recognises a Primera build"
    );
    assert_eq!(report["system"]["name"], ARRAY);
    assert_eq!(report["system"]["model"], primera3par::MODEL);
    assert_eq!(report["volume"]["name"], volume.name.as_str());
    assert_eq!(
        format!(
            "naa.{}",
            report["volume"]["wwn"]
                .as_str()
                .unwrap()
                .to_ascii_lowercase()
        ),
        volume.naa
    );
    assert_eq!(report["volume"]["sizeMiB"], 4096);
    assert_eq!(report["query_by_wwn"], json!(["esx-admin"]));
    assert_eq!(report["query_by_iqn"], json!([]));
    assert_eq!(report["created_host"]["persona"], 8, "HOST_PERSONA_VMWARE");
    assert_eq!(report["host_wwns"], json!(["21000025B500000C"]));
    assert_eq!(
        report["host_set_id"], "xcopy-hostsystem-host-9",
        "from the Location header"
    );
    assert_eq!(
        report["set_members"],
        json!(["xcopy-hostsystem-host-9", "esx-admin"])
    );
    assert_eq!(report["found_set"], "xcopy-hostsystem-host-9");
    assert_eq!(
        report["vlun_location"],
        format!("{},0,set:xcopy-hostsystem-host-9", volume.name)
    );
    assert_eq!(
        report["vluns"],
        json!([
            ["ocp-worker-1", 0, 3],
            ["set:xcopy-hostsystem-host-9", 0, 5]
        ])
    );
    assert_eq!(report["worker_vluns"], json!([volume.name]));
    for refusal in [
        "wrong_login",
        "missing_volume",
        "duplicate_path",
        "long_host_name",
        "double_member",
        "double_export",
        "set_in_use",
        "host_in_set",
        "missing_vlun",
        "missing_host",
        "copy_onto_exported",
        "parent_with_child",
        "delete_exported",
    ] {
        assert!(report[refusal]["code"].is_u64(), "{refusal}: {report}");
    }
    assert_eq!(report["offline_task"]["status"], 1, "TASK_DONE");
    assert_eq!(report["offline_task"]["name"], spare.name.as_str());
    assert!(
        std::fs::read(&spare.backing_path)
            .unwrap()
            .starts_with(b"rdm blocks"),
        "the offline copy wrote the unexported volume"
    );
    assert!(
        !std::fs::read(&volume.backing_path)
            .unwrap()
            .starts_with(b"rdm blocks"),
        "the refused copy wrote nothing"
    );
    assert_eq!(report["online_task"]["status"], 1, "TASK_DONE");
    assert_eq!(report["online_still_copying"], false);
    assert_eq!(report["online_copy_size"], 8);
    assert_eq!(report["snapshots"], json!(["xcopy-snap"]));
    assert!(
        report["promote"]["taskid"].is_u64(),
        "{}",
        report["promote"]
    );
    assert_eq!(report["snapshots_after"], json!([]));
    assert_eq!(report["logged_out"], true);
    // The library answers a 403 with a new login and one retry (its `_cs_request`), and forgets
    // the key it had: the refused offline copy leaves that one key open; logout deleted the other.
    assert_eq!(
        facade.open_sessions(),
        1,
        "the library's logout deleted its current key"
    );

    // Everything the script created is gone; the original export is untouched.
    assert!(facade.leftovers().is_empty(), "{:?}", facade.leftovers());
    assert!(san.group(ARRAY, "esx-admin").is_some());
    let mappings = san.mappings(ARRAY);
    assert_eq!(mappings.len(), 1);
    assert_eq!(mappings[0].group, "ocp-worker-1");
    co_testpeers::vendor_matrix::record(
        "primera3par",
        co_testpeers::vendor_matrix::Cell::VendorClient,
    );
}
