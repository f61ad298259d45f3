//! NetApp's own ONTAP client (`netapp-ontap`, pinned in `peers/versions.env`) against the lab's
//! ONTAP facade over HTTPS: cluster version, SVM, the LUN by path with its serial, igroups and
//! their initiators, LUN maps, and the deletes — every operation the ONTAP plugin uses. Where the
//! library and the facade disagree, the library is right.

use crate::client_support;

use co_lab::arrays::ontap::{VERSION, create_trident_volume, router};
use co_lab::san::{ArrayVendor, San};
use co_testpeers::VendorClient;
use co_testpeers::vendor_matrix::{Cell, record};

const ARRAY: &str = "ontap-conformance";
const SVM: &str = "svm-lab";
const USER: &str = "admin";
const PASSWORD: &str = "netapp-lab-pw";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx1-4f2a";
const ESX_IQN2: &str = "iqn.1998-01.com.vmware:esx2-77bb";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netapp_ontap_drives_every_operation_the_plugin_uses() {
    let python = client_support::python(VendorClient::NetappOntap);
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::Ontap).unwrap();
    let lun = create_trident_volume(&san, ARRAY, "trident_pvc_conf1", 1 << 30).unwrap();
    let port = client_support::serve_https(router(san.clone(), ARRAY, SVM, USER, PASSWORD)).await;

    let seen = client_support::run_script(
        python,
        "ontap.py",
        vec![
            ("LAB_TARGET", format!("127.0.0.1:{port}")),
            ("LAB_SVM", SVM.into()),
            ("LAB_LUN", lun.name.clone()),
            ("LAB_USER", USER.into()),
            ("LAB_PASSWORD", PASSWORD.into()),
            ("LAB_ESX_IQN", ESX_IQN.into()),
            ("LAB_ESX_IQN2", ESX_IQN2.into()),
        ],
        vec![],
    )
    .await;

    assert_eq!(
        seen["version"],
        serde_json::json!([VERSION.0, VERSION.1, VERSION.2])
    );
    assert_eq!(seen["svms"], serde_json::json!([SVM]));
    assert_eq!(seen["luns"][0]["name"], lun.name);
    assert_eq!(seen["luns"][0]["serial_number"], lun.serial);
    assert_eq!(seen["igroup_created"]["name"], "xcopy-conformance");
    assert_eq!(seen["igroup_created"]["has_uuid"], true);
    assert_eq!(seen["duplicate_igroup"], 409, "a duplicate igroup is 409");
    assert_eq!(
        seen["igroups_with_second_initiator"],
        serde_json::json!(["xcopy-conformance"])
    );
    assert_eq!(
        seen["initiators_after_remove"],
        serde_json::json!([ESX_IQN])
    );
    assert_eq!(seen["lun_map_created"]["lun"], lun.name);
    assert_eq!(seen["lun_map_created"]["igroup"], "xcopy-conformance");
    assert_eq!(seen["maps"], serde_json::json!(["xcopy-conformance"]));
    assert_eq!(seen["map_read"], "xcopy-conformance");
    assert_eq!(seen["maps_after_delete"], serde_json::json!([]));
    assert_eq!(seen["igroups_left"], serde_json::json!([]));

    assert!(san.mappings(ARRAY).is_empty());
    assert!(san.group(ARRAY, "xcopy-conformance").is_none());
    record("ontap", Cell::VendorClient);
}
