//! Hitachi's own Configuration Manager REST layer — the gateways of the
//! `hitachivantara.vspone_block` Ansible collection in `ansible` 12.3.0 (pinned in
//! `peers/versions.env`): `VSPConnectionManager` with its `SessionManager`, and the host group,
//! iSCSI target and volume gateways the collection's modules call — against the lab's Vantara
//! facade over HTTPS: session create and discard, the storage system, the LDEV and its NAA (and an
//! undefined one), ports, host groups per port with their WWNs and LU paths, an iSCSI target's
//! IQNs, an LU path made and removed through jobs polled to completion, a Thin Image clone pair
//! created, polled to complete and deleted, a plain snapshot split and its group deleted, the
//! array's refusals. The
//! script (`vendor_clients/vantara.py`) checks each answer; this test checks the SAN afterwards.
//! Where the library and our plugin disagree on a shape, the library wins: fix the facade and the
//! plugin, not the script.

use crate::client_support;

use co_lab::arrays::vantara::{self, MODEL, Vantara};
use co_lab::san::{ArrayVendor, San};
use serde_json::json;

const ARRAY: &str = "vsp-conformance";
const USER: &str = "maintenance";
const PASSWORD: &str = "raid-maintenance";
const ESX_WWPN: &str = "21:00:00:24:ff:4a:5b:01";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx-1";
const WORKER_WWPN: &str = "21:00:00:24:ff:4a:5b:99";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hitachi_vspone_block_collection_drives_every_operation_the_plugin_uses() {
    let python = client_support::python(co_testpeers::VendorClient::AnsibleCollections);
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::Vantara).unwrap();
    let volume = san.create_volume(ARRAY, "pvc-conf1", 4 << 20).unwrap();
    let ldev = vantara::ldev_id(&volume).unwrap();
    std::fs::write(&volume.backing_path, vec![0x3c; 4 << 20]).unwrap();
    let clone_target = san.create_volume(ARRAY, "pvc-clone", 4 << 20).unwrap();
    let snapshot_target = san.create_volume(ARRAY, "pvc-snap", 4 << 20).unwrap();
    let facade = Vantara::new(san.clone(), ARRAY, USER, PASSWORD);
    facade
        .add_host_group("CL1-A", 1, "esx-1-fc", &[ESX_WWPN.to_owned()])
        .unwrap();
    facade
        .add_host_group("CL1-B", 3, "esx-1-iscsi", &[ESX_IQN.to_owned()])
        .unwrap();
    facade
        .add_host_group("CL1-A", 2, "worker-1", &[WORKER_WWPN.to_owned()])
        .unwrap();
    facade.add_lu_path(ldev, "CL1-A", 2).unwrap();
    let port = client_support::serve_https(facade.router()).await;

    let config = json!({
        "address": format!("127.0.0.1:{port}"),
        "username": USER,
        "password": PASSWORD,
        "ldev": ldev,
        "clone_target_ldev": vantara::ldev_id(&clone_target).unwrap(),
        "snapshot_ldev": vantara::ldev_id(&snapshot_target).unwrap(),
        "fc_port": "CL1-A",
        "fc_group": 1,
        "iscsi_port": "CL1-B",
        "iscsi_group": 3,
    });
    let logs = dir.path().join("collection-logs");
    let report = client_support::run_script(
        python,
        "vantara.py",
        vec![
            ("HOME", dir.path().display().to_string()),
            ("HV_ANSIBLE_LOG_PATH", logs.display().to_string()),
        ],
        vec![config.to_string()],
    )
    .await;

    assert_eq!(
        report["storage_device_id"],
        vantara::storage_device_id(ARRAY)
    );
    assert_eq!(report["model"], MODEL);
    assert_eq!(report["sessions_opened"], 1, "{report}");
    assert_eq!(report["naa_id"], volume.serial, "{report}");
    assert_eq!(report["emulation_type"], "OPEN-V-CVS");
    assert_eq!(report["ldev_ports"], json!([["CL1-A", 2]]));
    assert_eq!(report["undefined_emulation_type"], "NOT DEFINED");
    assert_eq!(
        report["ports"],
        json!([["CL1-A", "FIBRE"], ["CL1-B", "ISCSI"], ["CL2-A", "FIBRE"]])
    );
    assert_eq!(
        report["fc_groups"],
        json!([
            {"name": "esx-1-fc", "number": 1, "wwns": ["21000024FF4A5B01"], "ldevs": []},
            {"name": "worker-1", "number": 2, "wwns": ["21000024FF4A5B99"], "ldevs": [ldev]},
        ]),
        "{report}"
    );
    assert_eq!(report["iqns"], json!([ESX_IQN]));
    assert_eq!(report["lun_id"], "CL1-A,1,0", "{report}");
    assert_eq!(
        report["ldev_ports_mapped"],
        json!([["CL1-A", 1], ["CL1-A", 2]])
    );
    assert!(
        report["double_map"]
            .as_str()
            .is_some_and(|m| m.contains("KART40055-E")),
        "{report}"
    );
    assert_eq!(report["ldevs_after_unmap"], json!([]));
    assert!(
        report["missing_path"]
            .as_str()
            .is_some_and(|m| m.contains("does not exist")),
        "{report}"
    );
    assert_eq!(report["clone_created"], format!("{ldev},0"), "{report}");
    let states = report["clone_states"].as_array().unwrap();
    assert_eq!(states.first().unwrap()[0], "COPY", "{report}");
    assert!(
        states
            .iter()
            .any(|s| s[0] == "PSUP" && s[1].as_u64() < Some(100)),
        "{report}"
    );
    assert_eq!(states.last().unwrap(), &json!(["PSUS", 100]), "{report}");
    assert_eq!(report["clone_is_clone"], true);
    let clone_ldev = vantara::ldev_id(&clone_target).unwrap();
    assert_eq!(report["pairs_of_pvol"], json!([[0, clone_ldev, "CLONE"]]));
    assert_eq!(report["group_pairs"], json!([clone_ldev]));
    assert_eq!(report["clone_pairs_after_delete"], 0);
    assert_eq!(
        std::fs::read(&clone_target.backing_path).unwrap(),
        vec![0x3c; 4 << 20],
        "the clone target holds the source's bytes"
    );
    assert_eq!(report["snapshot_created"], format!("{ldev},5"), "{report}");
    assert_eq!(report["snapshot_split"], json!(["PSUS", true]));
    assert!(
        report["split_twice"]
            .as_str()
            .is_some_and(|m| m.contains("KART40050-E")),
        "{report}"
    );
    assert_eq!(report["groups"], json!(["xcopy-snap"]));
    assert_eq!(report["groups_after_delete"], json!([]));
    assert!(
        report["missing_pair"]
            .as_str()
            .is_some_and(|m| m.contains("does not exist")),
        "{report}"
    );
    assert!(facade.pairs().is_empty(), "{:?}", facade.pairs());
    assert_eq!(report["sessions_discarded"], 1);

    // The library logged out; the worker's own LU path is untouched; nothing else is mapped.
    assert_eq!(facade.open_sessions(), 0);
    let mappings = san.mappings(ARRAY);
    assert_eq!(mappings.len(), 1, "{mappings:?}");
    assert_eq!(mappings[0].volume, "pvc-conf1");
    co_testpeers::vendor_matrix::record("vantara", co_testpeers::vendor_matrix::Cell::VendorClient);
}
