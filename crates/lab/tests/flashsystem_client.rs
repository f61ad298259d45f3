//! IBM's own Storage Virtualize REST client — `IBMSVCRestApi` of the `ibm.storage_virtualize`
//! Ansible collection in `ansible` 12.3.0 (pinned in `peers/versions.env`), the class the
//! collection's modules talk to the array through — against the lab's FlashSystem facade over
//! HTTPS: token auth, the system, the vdisk by UID, its pool, hosts and their ports, vdisk-host
//! maps both ways, the array's refusals, FlashCopy to completion and removal. The script
//! (`vendor_clients/flashsystem.py`) checks each answer; this test checks the SAN afterwards.
//! Where the library and our plugin disagree on a shape, the library wins: fix the facade and the
//! plugin, not the script.

use crate::client_support;

use std::process::Command;

use co_lab::arrays::flashsystem::{CODE_LEVEL, FlashSystem, POOL, PRODUCT_NAME, vdisk_id};
use co_lab::san::{ArrayVendor, GroupSpec, San};
use serde_json::{Value, json};

const ARRAY: &str = "fs-conformance";
const PASSWORD: &str = "Passw0rd!";
const SIZE: u64 = 4 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ibm_storage_virtualize_collection_drives_every_operation_the_plugin_uses() {
    let python = co_testpeers::VendorClient::AnsibleCollections
        .python()
        .unwrap_or_else(|e| panic!("the ansible collections are required for this test: {e:#}"));
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::FlashSystem).unwrap();
    let volume = san.create_volume(ARRAY, "pvc-conf1", SIZE).unwrap();
    let rdm = san.create_volume(ARRAY, "rdm-conf1", SIZE).unwrap();
    std::fs::write(&rdm.backing_path, vec![0x3c; SIZE as usize]).unwrap();
    san.create_group(
        ARRAY,
        GroupSpec {
            name: "ocp-worker-1".into(),
            initiators: vec!["iqn.2020-01.io.openshift:worker-1".into()],
            protocol: Some("scsi".into()),
            os_type: Some("generic".into()),
        },
    )
    .unwrap();
    san.map(ARRAY, "pvc-conf1", "ocp-worker-1").unwrap();
    let facade = FlashSystem::new(san.clone(), ARRAY, "superuser", PASSWORD);
    let port = client_support::serve_https(facade.router()).await;

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vendor_clients/flashsystem.py"
    );
    let config = json!({
        "port": port,
        "username": "superuser",
        "password": PASSWORD,
        "log": dir.path().join("ibm-collection.log"),
        "volume_uid": volume.serial,
        "rdm_volume": "rdm-conf1",
        "esx_wwpn": "2100000E1E30ACF0",
        "esx_iqn": "iqn.1998-01.com.vmware:esx-conf",
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
        "ibm.storage_virtualize script failed:\n{stderr}"
    );
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("script output is not JSON ({e}): {stderr}"));

    assert_eq!(report["token"], true);
    assert_eq!(report["product_name"], PRODUCT_NAME);
    assert_eq!(report["code_level"], CODE_LEVEL);
    assert_eq!(report["vdisk_protection_enabled"], "no");
    assert_eq!(report["vdisk_id"], vdisk_id(&volume).to_string());
    assert_eq!(report["vdisk_name"], "pvc-conf1");
    assert_eq!(report["capacity"], SIZE.to_string());
    assert_eq!(report["pool"], POOL);
    assert_eq!(report["pool_protection"], "no");
    assert_eq!(report["original_hosts"], json!(["ocp-worker-1"]));
    assert_eq!(report["hosts_before"], json!(["ocp-worker-1"]));
    assert_eq!(report["wwpns"], json!(["2100000E1E30ACF0"]));
    assert_eq!(
        report["iscsi_names"],
        json!(["iqn.1998-01.com.vmware:esx-conf"])
    );
    assert_eq!(report["scsi_id"], "0", "first SCSI id of a new host");
    assert_eq!(
        report["mapped_hosts"],
        json!(["ocp-worker-1", "xcopy-conformance"])
    );
    assert_eq!(report["host_vdisks"], json!(["pvc-conf1"]));
    assert_eq!(report["hosts_after_unmap"], json!(["ocp-worker-1"]));
    for (refusal, code, status) in [
        ("duplicate_port", "CMMVC6581E", 500),
        ("double_map", "CMMVC5878E", 409),
    ] {
        assert_eq!(report[refusal]["code"], status, "{refusal}: {report}");
        assert!(
            report[refusal]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(code)),
            "{refusal}: {report}"
        );
    }
    let progress: Vec<u64> = report["progress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert!(
        progress.len() > 1 && progress.last() == Some(&100),
        "{progress:?}"
    );
    assert_eq!(report["fcmap_source"], "rdm-conf1");

    // Everything the script created is gone; the original mapping is untouched; the copy landed.
    assert!(san.group(ARRAY, "xcopy-conformance").is_none());
    assert!(facade.fcmaps().is_empty());
    let mappings = san.mappings(ARRAY);
    assert_eq!(mappings.len(), 1);
    assert_eq!(mappings[0].group, "ocp-worker-1");
    assert_eq!(
        std::fs::read(&volume.backing_path).unwrap(),
        vec![0x3c; SIZE as usize]
    );
    co_testpeers::vendor_matrix::record(
        "flashsystem",
        co_testpeers::vendor_matrix::Cell::VendorClient,
    );
}
