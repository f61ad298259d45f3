//! The PowerStore plugin against the lab's PowerStore REST facade served over HTTPS on loopback:
//! the copy lifecycle (resolve, host, map, unmap, restore, release) leaves the array as it found
//! it; every mutating call is idempotent; administrators' hosts and host groups are used, never
//! changed; upstream's defects stay fixed; the session survives expiry (401) and a refused token
//! (403) with one re-login and ends with a logout; 429/503 are retried a bounded number of times;
//! an unreachable array and wrong credentials fail fast with the setting to fix. The contract test
//! checks every request the plugin sent against the PowerStore REST API definition.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use co_lab::arrays::powerstore::{PowerStore, create_csi_volume};
use co_lab::san::{ArrayVendor, GroupSpec};
use co_storage::http::ObservedRequest;
use co_storage::powerstore::{CSI_DRIVER, PowerStoreArray};
use co_storage::{
    EsxiHostRef, GroupKind, GroupRelease, Initiator, PersistentVolumeRef, StorageApi, StorageError,
};
use support::Recorder;

const ARRAY: &str = "ps1";
const WORKER_IQN: &str = "iqn.2020-01.io.openshift:worker-1";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx1-4f3a";
const ESX_FC: &str = "fc.20000025b5000001:21000025b5000001";
const ESX_FC_PORT: &str = "21:00:00:25:b5:00:00:01";

fn fault_response(status: u16) -> Response {
    let status = axum::http::StatusCode::from_u16(status).unwrap();
    let body = serde_json::json!({"messages": [{"code": "0xE04040000001", "severity": "Error",
        "message_l10n": "injected by the test", "arguments": []}]});
    (status, axum::Json(body)).into_response()
}

type Lab = support::FacadeLab<PowerStore>;

impl Lab {
    async fn start() -> Lab {
        let array = (ARRAY, ArrayVendor::PowerStore, "admin");
        let make = |san, user: &str, password: &str| PowerStore::new(san, ARRAY, user, password);
        Lab::serve(array, fault_response, make, PowerStore::router).await
    }

    async fn connect(&self, recorder: Option<Arc<Recorder>>) -> PowerStoreArray {
        PowerStoreArray::connect(
            &self.settings(),
            &Default::default(),
            recorder.map(|r| r as _),
        )
        .await
        .unwrap()
    }

    /// A CSI PowerStore PV whose volume is attached to an OpenShift worker host, as the prime PVC is.
    fn csi_pv(&self, name: &str) -> PersistentVolumeRef {
        let csi = self.facade.create_csi_volume(name, 1 << 30).unwrap();
        if self.san.group(ARRAY, "ocp-worker-1").is_none() {
            self.san
                .create_group(
                    ARRAY,
                    GroupSpec {
                        name: "ocp-worker-1".into(),
                        initiators: vec![WORKER_IQN.into()],
                        protocol: None,
                        os_type: Some("Linux".into()),
                    },
                )
                .unwrap();
        }
        self.san.map(ARRAY, name, "ocp-worker-1").unwrap();
        PersistentVolumeRef {
            name: format!("pv-{name}"),
            csi_driver: Some(csi.driver.into()),
            volume_handle: csi.volume_handle,
            volume_attributes: csi.volume_attributes,
        }
    }

    fn groups_of(&self, volume: &str) -> Vec<String> {
        self.san
            .mappings(ARRAY)
            .into_iter()
            .filter(|m| m.volume == volume)
            .map(|m| m.group)
            .collect()
    }

    fn group_names(&self) -> Vec<String> {
        self.san.groups(ARRAY).into_iter().map(|g| g.name).collect()
    }

    /// An administrator's host for the ESXi host's FC port.
    fn admin_host(&self, name: &str, initiator: &str) {
        self.san
            .create_group(
                ARRAY,
                GroupSpec {
                    name: name.into(),
                    initiators: vec![initiator.into()],
                    protocol: None,
                    os_type: Some("ESXi".into()),
                },
            )
            .unwrap();
    }
}

fn esx(host_id: &str, ids: &[&str]) -> EsxiHostRef {
    EsxiHostRef {
        host_id: host_id.into(),
        initiators: ids.iter().map(|i| Initiator::from_adapter_id(i)).collect(),
    }
}

/// The populator's sequence for one disk, every mutating step repeated (a journal replay),
/// checked against the SAN after each step.
async fn copy_lifecycle(lab: &Lab, array: &PowerStoreArray) {
    let pv = lab.csi_pv("csivol-a1");
    let info = array.array_info().await.unwrap();
    assert_eq!(
        (
            info.vendor.as_str(),
            info.product.as_str(),
            info.model.as_str()
        ),
        ("Dell", "PowerStore", ARRAY)
    );
    assert_eq!(info.version, co_lab::arrays::powerstore::RELEASE_VERSION);

    let volume = array.resolve_volume(&pv).await.unwrap();
    let lab_volume = lab.san.volume(ARRAY, "csivol-a1").unwrap();
    assert_eq!(volume.naa.as_str(), lab_volume.naa);
    assert_eq!(volume.id, lab_volume.uuid);
    assert_eq!(volume.size_bytes, 1 << 30);

    // vmhba64 (an NVMe/SAS HBA without an initiator name) is skipped, not fatal.
    let host = esx("hostsystem-host-1", &[ESX_IQN, "vmhba64"]);
    let group = array.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(group.targets[0].name, "xcopy-hostsystem-host-1");
    assert_eq!(group.targets[0].kind, GroupKind::Host);
    assert_eq!(group.protocol, co_storage::StorageProtocol::Iscsi);
    assert_eq!(group.owned, group.targets, "created now, so owned");
    let again = array.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(again, group, "ensure is idempotent");
    let lab_host = lab.san.group(ARRAY, "xcopy-hostsystem-host-1").unwrap();
    assert_eq!(lab_host.initiators, [ESX_IQN]);
    assert_eq!(lab_host.os_type.as_deref(), Some("ESXi"));

    let originals = array.current_mappings(&volume).await.unwrap();
    assert_eq!(originals.len(), 1);
    assert_eq!(
        (originals[0].kind, originals[0].name.as_str()),
        (GroupKind::Host, "ocp-worker-1")
    );

    support::map_twice_and_see_one_lun(array, &lab.san, &volume, &group, &[ESX_IQN]).await;

    support::unmap_twice_and_see_none(array, &lab.san, &volume, &group, ESX_IQN).await;

    // A journal may list the xcopy host of a crashed run: never restored.
    let mut journaled = originals.clone();
    journaled.push(group.targets[0].clone());
    array.restore(&volume, &journaled).await.unwrap();
    array.restore(&volume, &journaled).await.unwrap();
    assert_eq!(lab.groups_of(&volume.name), ["ocp-worker-1"]);

    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
    assert!(lab.san.group(ARRAY, "xcopy-hostsystem-host-1").is_none());
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::AlreadyGone
    );
    assert_eq!(
        lab.group_names(),
        ["ocp-worker-1"],
        "admin objects untouched"
    );
}

#[tokio::test]
async fn a_copy_lifecycle_leaves_the_array_as_it_found_it_and_logs_out() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    copy_lifecycle(&lab, &array).await;
    assert_eq!(
        lab.facade.open_sessions(),
        1,
        "one session for the whole run"
    );
    array.logout().await.unwrap();
    assert_eq!(lab.facade.open_sessions(), 0, "logout ends the session");
}

/// PowerStore refuses per-host attach for a host in a host group: the group is mapped, and the
/// administrator's host and group are used as they are.
#[tokio::test]
async fn an_esxi_host_in_a_host_group_is_mapped_through_the_group_and_nothing_is_created() {
    let lab = Lab::start().await;
    lab.admin_host("esx-a", ESX_FC_PORT);
    lab.admin_host("esx-b", "21:00:00:25:b5:00:00:02");
    lab.facade
        .create_host_group("cluster-a", &["esx-a", "esx-b"])
        .unwrap();
    let array = lab.connect(None).await;
    let volume = array
        .resolve_volume(&lab.csi_pv("csivol-g1"))
        .await
        .unwrap();
    let group = array
        .ensure_initiator_group(&esx(
            "hostsystem-host-7",
            &[ESX_FC, "fc.20000025b5000009:21000025b5000009"],
        ))
        .await
        .unwrap();
    assert_eq!(group.targets[0].kind, GroupKind::HostGroup);
    assert_eq!(group.targets[0].name, "cluster-a");
    assert!(
        group.owned.is_empty(),
        "an administrator's host is never ours"
    );
    assert_eq!(group.protocol, co_storage::StorageProtocol::Fc);

    let mapping = array.map(&volume, &group).await.unwrap();
    let seen_by_a = lab.san.visible_luns(&[ESX_FC.to_owned()]);
    assert_eq!(Some(seen_by_a[0].lun_id), mapping.lun_id);
    let originals = array.current_mappings(&volume).await.unwrap();
    assert!(
        originals
            .iter()
            .any(|g| g.kind == GroupKind::HostGroup && g.name == "cluster-a"),
        "{originals:?}"
    );
    array.unmap(&volume, &group).await.unwrap();
    assert_eq!(lab.groups_of("csivol-g1"), ["ocp-worker-1"]);
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::NotOwned
    );
    let mut names = lab.group_names();
    names.sort();
    assert_eq!(
        names,
        ["cluster-a", "esx-a", "esx-b", "ocp-worker-1"],
        "nothing created"
    );
    assert_eq!(
        lab.san.group(ARRAY, "esx-a").unwrap().initiators,
        [ESX_FC_PORT],
        "the administrator's host is not changed"
    );
}

#[tokio::test]
async fn an_administrators_host_is_used_and_kept() {
    let lab = Lab::start().await;
    lab.admin_host("esx-fc-1", ESX_FC_PORT);
    let array = lab.connect(None).await;
    let volume = array
        .resolve_volume(&lab.csi_pv("csivol-h1"))
        .await
        .unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-8", &[ESX_FC]))
        .await
        .unwrap();
    assert_eq!(
        (group.targets[0].kind, group.targets[0].name.as_str()),
        (GroupKind::Host, "esx-fc-1")
    );
    assert!(group.owned.is_empty());
    array.map(&volume, &group).await.unwrap();
    array.unmap(&volume, &group).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::NotOwned
    );
    assert!(lab.san.group(ARRAY, "esx-fc-1").is_some());
}

/// The ESXi host's entry is on the second page of hosts (the array serves at most 2000 a page).
#[tokio::test]
async fn hosts_beyond_the_first_page_are_found() {
    let lab = Lab::start().await;
    for i in 0..2050 {
        lab.admin_host(
            &format!("filler-{i:04}"),
            &format!("iqn.2020-01.io.lab:filler-{i}"),
        );
    }
    lab.admin_host("zz-esx-fc-1", ESX_FC_PORT);
    let array = lab.connect(None).await;
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-8", &[ESX_FC]))
        .await
        .unwrap();
    assert_eq!(group.targets[0].name, "zz-esx-fc-1");
    assert!(group.owned.is_empty());
    assert!(
        lab.san.group(ARRAY, "xcopy-hostsystem-host-8").is_none(),
        "nothing created"
    );
}

/// Upstream created `xcopy-<host>` and never deleted it; such a leftover is adopted, completed
/// and deleted once empty.
#[tokio::test]
async fn a_host_an_earlier_run_left_behind_is_adopted_and_deleted() {
    let lab = Lab::start().await;
    lab.san
        .create_group(
            ARRAY,
            GroupSpec {
                name: "xcopy-hostsystem-host-5".into(),
                initiators: vec![],
                protocol: None,
                os_type: Some("ESXi".into()),
            },
        )
        .unwrap();
    let array = lab.connect(None).await;
    let volume = array
        .resolve_volume(&lab.csi_pv("csivol-l1"))
        .await
        .unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-5", &[ESX_IQN]))
        .await
        .unwrap();
    assert_eq!(group.owned, group.targets);
    assert_eq!(
        lab.san
            .group(ARRAY, "xcopy-hostsystem-host-5")
            .unwrap()
            .initiators,
        [ESX_IQN],
        "the missing initiator was added"
    );
    array.map(&volume, &group).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::InUse
    );
    array.unmap(&volume, &group).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
    assert_eq!(lab.group_names(), ["ocp-worker-1"]);
}

#[tokio::test]
async fn an_unmapped_volume_has_no_mappings_rather_than_an_error() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    create_csi_volume(&lab.san, ARRAY, "csivol-u1", 1 << 20).unwrap();
    let pv = PersistentVolumeRef {
        name: "pv-u1".into(),
        csi_driver: Some(CSI_DRIVER.into()),
        volume_handle: String::new(),
        volume_attributes: BTreeMap::from([("Name".to_owned(), "csivol-u1".to_owned())]),
    };
    let volume = array.resolve_volume(&pv).await.unwrap();
    assert_eq!(array.current_mappings(&volume).await.unwrap(), []);

    // Names are query values, escaped: `&` and `=` cannot smuggle in another filter.
    create_csi_volume(&lab.san, ARRAY, "csivol-u2&name=eq.csivol-u1", 1 << 20).unwrap();
    let tricky = PersistentVolumeRef {
        volume_attributes: BTreeMap::from([(
            "Name".to_owned(),
            "csivol-u2&name=eq.csivol-u1".to_owned(),
        )]),
        ..pv
    };
    let found = array.resolve_volume(&tricky).await.unwrap();
    assert_eq!(found.name, "csivol-u2&name=eq.csivol-u1");
    assert_ne!(found.id, volume.id);
}

#[tokio::test]
async fn restore_attaches_an_original_host_again_and_map_recreates_a_released_host() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let pv = lab.csi_pv("csivol-r1");
    // Found by the volume handle's id when the PV has no Name attribute.
    let by_handle = PersistentVolumeRef {
        volume_attributes: BTreeMap::new(),
        ..pv.clone()
    };
    let volume = array.resolve_volume(&by_handle).await.unwrap();
    assert_eq!(volume.name, "csivol-r1");
    let originals = array.current_mappings(&volume).await.unwrap();
    lab.san.unmap(ARRAY, "csivol-r1", "ocp-worker-1").unwrap();
    array.restore(&volume, &originals).await.unwrap();
    assert_eq!(lab.groups_of("csivol-r1"), ["ocp-worker-1"]);

    let host = esx("hostsystem-host-3", &[ESX_IQN]);
    let group = array.ensure_initiator_group(&host).await.unwrap();
    lab.san
        .delete_group(ARRAY, "xcopy-hostsystem-host-3")
        .unwrap();
    let mapping = array.map(&volume, &group).await.unwrap();
    let visible = lab.san.visible_luns(&[ESX_IQN.to_owned()]);
    assert_eq!(Some(visible[0].lun_id), mapping.lun_id);
    array.unmap(&volume, &group).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
}

/// The vendor list connects this plugin for `powerstore` (it used to answer "not implemented").
#[tokio::test]
async fn the_vendor_list_connects_the_powerstore_plugin() {
    let lab = Lab::start().await;
    let vendor =
        co_storage::VendorSettings::read(co_api::StorageVendorProduct::PowerStore, &|_| None)
            .unwrap();
    let array = co_storage::connect(&vendor, &lab.settings(), None)
        .await
        .unwrap();
    assert_eq!(array.array_info().await.unwrap().product, "PowerStore");
    assert!(
        array.array_copy().is_none(),
        "no array-side copy: vVol/RDM take XCOPY"
    );
}

#[tokio::test]
async fn both_hostname_forms_reach_the_api() {
    let lab = Lab::start().await;
    for hostname in [
        lab.hostname.clone(),
        format!("https://{}/api/rest", lab.hostname),
        format!("https://{}/api/rest/", lab.hostname),
    ] {
        let mut s = lab.settings();
        s.hostname = hostname.clone();
        let array = PowerStoreArray::connect(&s, &Default::default(), None)
            .await
            .unwrap_or_else(|e| panic!("{hostname}: {e}"));
        array.array_info().await.unwrap();
    }
}

/// Round trips per step, so a change that adds array calls is a visible decision.
#[tokio::test]
async fn each_step_costs_the_fewest_round_trips() {
    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    let pv = lab.csi_pv("csivol-rt1");
    let step = |name: &str, expected: &[&str]| {
        let sent: Vec<String> = recorder
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path.trim_start_matches("/api/rest")))
            .collect();
        recorder.clear();
        let sent: Vec<String> = sent
            .into_iter()
            .map(|s| s.split('/').take(2).collect::<Vec<_>>().join("/"))
            .collect();
        assert_eq!(sent, expected, "{name}");
    };
    step("connect", &["GET /login_session", "GET /cluster"]);
    let volume = array.resolve_volume(&pv).await.unwrap();
    step("resolve_volume", &["GET /volume"]);
    let host = esx("hostsystem-host-1", &[ESX_IQN]);
    let group = array.ensure_initiator_group(&host).await.unwrap();
    step(
        "ensure_initiator_group (new host)",
        &["GET /host", "POST /host"],
    );
    array.ensure_initiator_group(&host).await.unwrap();
    step("ensure_initiator_group (complete already)", &["GET /host"]);
    let originals = array.current_mappings(&volume).await.unwrap();
    step("current_mappings", &["GET /host_volume_mapping"]);
    array.map(&volume, &group).await.unwrap();
    step("map", &["POST /volume", "GET /host_volume_mapping"]);
    array.unmap(&volume, &group).await.unwrap();
    step("unmap", &["POST /volume"]);
    array.restore(&volume, &originals).await.unwrap();
    step(
        "restore (one original, still mapped)",
        &["GET /host_volume_mapping"],
    );
    array.release_group(&group).await.unwrap();
    step(
        "release_group",
        &["GET /host", "GET /host_volume_mapping", "DELETE /host"],
    );
    array.logout().await.unwrap();
    step("logout", &["POST /logout"]);
}

// ---- faults ----

#[tokio::test]
async fn an_expired_session_is_renewed_once_mid_run() {
    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    let volume = array
        .resolve_volume(&lab.csi_pv("csivol-s1"))
        .await
        .unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_IQN]))
        .await
        .unwrap();
    lab.facade.expire_sessions();
    recorder.clear();
    array.map(&volume, &group).await.unwrap();
    let statuses = recorder.statuses();
    assert_eq!(statuses[0].1, Some(401), "{statuses:?}");
    assert_eq!(statuses[1].0, "GET /api/rest/login_session", "{statuses:?}");
    assert_eq!(
        statuses[2].1,
        Some(204),
        "the attach went through: {statuses:?}"
    );

    // A token the array no longer accepts (403) also logs in again, once.
    lab.faults.push("/detach", 403);
    array.unmap(&volume, &group).await.unwrap();
    assert_eq!(lab.faults.pending(), 0);
    assert!(lab.san.visible_luns(&[ESX_IQN.to_owned()]).is_empty());

    // Refused twice in a row: the credentials are the problem, and the message says which.
    lab.faults.push("/host_volume_mapping", 401);
    lab.faults.push("/login_session", 401);
    let err = array.current_mappings(&volume).await.unwrap_err();
    assert!(
        matches!(err, StorageError::AuthRefused { status: 401, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("STORAGE_PASSWORD"), "{err}");
}

#[tokio::test]
async fn busy_answers_are_retried_a_bounded_number_of_times() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let pv = lab.csi_pv("csivol-b1");
    support::assert_busy_answers_retried_a_bounded_number_of_times(
        &array,
        &lab.faults,
        &pv,
        "/volume",
        "/host_volume_mapping",
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_array_fails_fast_and_says_what_to_check() {
    support::assert_unreachable_fails_fast(|s, _port| async move {
        PowerStoreArray::connect(&s, &Default::default(), None).await
    })
    .await;
}

#[tokio::test]
async fn failures_say_what_to_fix_and_are_classed() {
    let lab = Lab::start().await;
    support::assert_login_failures_say_what_to_fix(&lab.settings(), 401, |s| async move {
        PowerStoreArray::connect(&s, &Default::default(), None).await
    })
    .await;

    let array = lab.connect(None).await;
    let missing = PersistentVolumeRef {
        name: "pv-x".into(),
        csi_driver: Some(CSI_DRIVER.into()),
        volume_handle: String::new(),
        volume_attributes: BTreeMap::from([("Name".to_owned(), "csivol-missing".to_owned())]),
    };
    let err = array.resolve_volume(&missing).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    let foreign = PersistentVolumeRef {
        csi_driver: Some("csi.vsphere.vmware.com".into()),
        ..missing.clone()
    };
    let err = array.resolve_volume(&foreign).await.unwrap_err();
    assert!(err.to_string().contains("csi.vsphere.vmware.com"), "{err}");
    let other_cluster = PersistentVolumeRef {
        volume_handle: "0c1f/PS000000000BAD/scsi".into(),
        volume_attributes: BTreeMap::new(),
        ..missing
    };
    let err = array.resolve_volume(&other_cluster).await.unwrap_err();
    assert!(err.to_string().contains("PS000000000BAD"), "{err}");

    let err = array
        .ensure_initiator_group(&esx("hostsystem-host-5", &["vmhba64"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("vmhba64"), "{err}");
}

// ---- contract: every request against the PowerStore REST API definition ----

/// One operation of the definition.
struct Operation {
    method: String,
    /// The path template split on `/`.
    template: Vec<String>,
    /// The record model a 200 answer carries (what `select` and filters name).
    response: Option<String>,
    /// The model of the request body.
    body: Option<String>,
}

/// The PowerStore Swagger: operations by path template, and model properties.
struct Definition {
    base_path: String,
    operations: Vec<Operation>,
    definitions: serde_json::Map<String, serde_json::Value>,
}

fn model_name(reference: &serde_json::Value) -> Option<String> {
    let schema = if reference["type"] == "array" {
        &reference["items"]
    } else {
        reference
    };
    schema["$ref"]
        .as_str()
        .map(|r| r.trim_start_matches("#/definitions/").to_owned())
}

impl Definition {
    fn load(file: &std::path::Path) -> Definition {
        let spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let mut operations = Vec::new();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let response = op["responses"]["200"]["schema"].clone();
                let body = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["in"] == "body")
                    .and_then(|p| model_name(&p["schema"]));
                operations.push(Operation {
                    method: method.to_uppercase(),
                    template: path.split('/').map(str::to_owned).collect(),
                    response: model_name(&response),
                    body,
                });
            }
        }
        Definition {
            base_path: spec["basePath"].as_str().unwrap().to_owned(),
            operations,
            definitions: spec["definitions"].as_object().unwrap().clone(),
        }
    }

    fn operation(&self, request: &ObservedRequest) -> Option<&Operation> {
        let path = request.path.strip_prefix(&self.base_path)?;
        let segments: Vec<&str> = path.split('/').collect();
        self.operations
            .iter()
            .filter(
                |Operation {
                     method, template, ..
                 }| {
                    *method == request.method.as_str()
                        && template.len() == segments.len()
                        && template
                            .iter()
                            .zip(&segments)
                            .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
                },
            )
            .min_by_key(|o| o.template.iter().filter(|s| s.starts_with('{')).count())
    }

    fn property(&self, model: &str, field: &str) -> Result<Option<String>, String> {
        let props = self.definitions[model]["properties"]
            .as_object()
            .ok_or(format!("model {model} has no properties"))?;
        let prop = props
            .get(field)
            .ok_or(format!("{model} has no field {field:?}"))?;
        Ok(model_name(prop).filter(|m| self.definitions[m]["properties"].is_object()))
    }

    /// A `select` value: every name, nested ones against the relation's model.
    fn check_select(&self, model: &str, text: &str) -> Result<(), String> {
        let mut depth_models = vec![model.to_owned()];
        let mut name = String::new();
        for c in text.chars().chain([',']) {
            match c {
                '(' => {
                    let nested = self
                        .property(depth_models.last().unwrap(), name.trim())?
                        .ok_or(format!("{} is not a relation", name.trim()))?;
                    depth_models.push(nested);
                    name.clear();
                }
                ',' | ')' => {
                    if !name.trim().is_empty() {
                        self.property(depth_models.last().unwrap(), name.trim())?;
                    }
                    name.clear();
                    if c == ')' {
                        depth_models.pop();
                    }
                }
                other => name.push(other),
            }
        }
        Ok(())
    }

    fn check_body(&self, model: &str, body: &serde_json::Value) -> Result<(), String> {
        match body {
            serde_json::Value::Object(map) => {
                map.iter()
                    .try_for_each(|(k, v)| match self.property(model, k)? {
                        Some(nested) => self.check_body(&nested, v),
                        None => Ok(()),
                    })
            }
            serde_json::Value::Array(items) => {
                items.iter().try_for_each(|v| self.check_body(model, v))
            }
            _ => Ok(()),
        }
    }
}

/// Every way `requests` leave the PowerStore API, and the operations they used.
fn contract_problems(
    spec: &Definition,
    requests: &[ObservedRequest],
) -> (Vec<String>, BTreeSet<String>) {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for request in requests {
        let Some(Operation {
            method,
            template,
            response,
            body: body_model,
        }) = spec.operation(request)
        else {
            problems.push(format!(
                "{} {} is not a PowerStore operation",
                request.method, request.path
            ));
            continue;
        };
        let operation = format!("{method} {}", template.join("/"));
        seen.insert(operation.clone());
        for (key, value) in &request.query {
            let checked = match (key.as_str(), response) {
                ("limit" | "offset", _) if method == "GET" => Ok(()),
                ("select", Some(model)) => spec.check_select(model, value),
                (filter, Some(model)) => spec.property(model, filter).map(|_| ()),
                (other, None) => Err(format!("query {other} on an operation without a model")),
            };
            if let Err(e) = checked {
                problems.push(format!("{operation} query {key}={value}: {e}"));
            }
        }
        match (&request.body, body_model) {
            (Some(body), Some(model)) => {
                if let Err(e) = spec.check_body(model, body) {
                    problems.push(format!("{operation} body {body}: {e}"));
                }
            }
            (Some(body), None) => {
                problems.push(format!("{operation} takes no body but got {body}"))
            }
            (None, _) => {}
        }
    }
    (problems, seen)
}

fn observed(
    method: http::Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> ObservedRequest {
    ObservedRequest {
        method,
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        body,
        attempt: 1,
        status: Some(200),
    }
}

#[test]
fn the_contract_check_rejects_unknown_operations_and_fields() {
    let Some(file) = co_lab::arrays::powerstore::published_definition() else {
        eprintln!(
            "SKIPPED: the PowerStore API definition is absent; set POWERSTORE_API_DIR to the directory holding openapi.json"
        );
        return;
    };
    let spec = Definition::load(&file);
    use http::Method;
    let good = [
        observed(
            Method::GET,
            "/api/rest/host",
            &[
                ("select", "id,name,host_group(name),host_initiators"),
                ("name", "eq.x"),
            ],
            None,
        ),
        observed(
            Method::POST,
            "/api/rest/volume/v1/attach",
            &[],
            Some(serde_json::json!({"host_id": "h"})),
        ),
        observed(
            Method::POST,
            "/api/rest/host",
            &[],
            Some(
                serde_json::json!({"name": "h", "os_type": "ESXi", "initiators": [{"port_name": "p", "port_type": "FC"}]}),
            ),
        ),
        observed(Method::DELETE, "/api/rest/host/h1", &[], None),
    ];
    assert_eq!(contract_problems(&spec, &good).0, Vec::<String>::new());
    let bad = [
        observed(Method::PUT, "/api/rest/host", &[], None),
        observed(Method::GET, "/api/rest/hosts", &[], None),
        observed(
            Method::GET,
            "/api/rest/host",
            &[("select", "id,serial")],
            None,
        ),
        observed(
            Method::GET,
            "/api/rest/host",
            &[("select", "id,host_group(colour)")],
            None,
        ),
        observed(Method::GET, "/api/rest/host", &[("wwn", "eq.x")], None),
        observed(
            Method::POST,
            "/api/rest/host",
            &[],
            Some(serde_json::json!({"initiators": [{"wwpn": "p"}]})),
        ),
        observed(
            Method::POST,
            "/api/rest/volume/v1/attach",
            &[],
            Some(serde_json::json!({"volume_id": "v"})),
        ),
    ];
    let found = contract_problems(&spec, &bad).0;
    assert_eq!(found.len(), bad.len(), "{found:#?}");
}

#[tokio::test]
async fn every_request_matches_a_powerstore_operation_and_its_models() {
    let Some(file) = co_lab::arrays::powerstore::published_definition() else {
        eprintln!(
            "SKIPPED: the PowerStore API definition is absent; set POWERSTORE_API_DIR to the directory holding openapi.json"
        );
        return;
    };
    let spec = Definition::load(&file);
    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    copy_lifecycle(&lab, &array).await;
    // The paths taken for grouped hosts, adopted leftovers, re-created hosts and logout.
    lab.admin_host("esx-a", ESX_FC_PORT);
    lab.facade
        .create_host_group("cluster-a", &["esx-a"])
        .unwrap();
    let volume = array
        .resolve_volume(&lab.csi_pv("csivol-k1"))
        .await
        .unwrap();
    let grouped = array
        .ensure_initiator_group(&esx("hostsystem-host-7", &[ESX_FC]))
        .await
        .unwrap();
    array.map(&volume, &grouped).await.unwrap();
    array.unmap(&volume, &grouped).await.unwrap();
    lab.admin_host("xcopy-hostsystem-host-9", "iqn.2020-01.io.lab:other");
    let adopted = array
        .ensure_initiator_group(&esx("hostsystem-host-9", &[ESX_IQN]))
        .await
        .unwrap();
    lab.san
        .delete_group(ARRAY, "xcopy-hostsystem-host-9")
        .unwrap();
    array.map(&volume, &adopted).await.unwrap();
    array.unmap(&volume, &adopted).await.unwrap();
    array.release_group(&adopted).await.unwrap();
    let by_handle = PersistentVolumeRef {
        volume_attributes: BTreeMap::new(),
        ..lab.csi_pv("csivol-k2")
    };
    array.resolve_volume(&by_handle).await.unwrap();
    array.logout().await.unwrap();

    let requests = recorder.requests();
    assert!(requests.len() > 20, "the lifecycle was recorded");
    let (problems, seen) = contract_problems(&spec, &requests);
    assert!(
        problems.is_empty(),
        "requests outside the PowerStore API:\n{}",
        problems.join("\n")
    );
    for expected in [
        "GET /login_session",
        "POST /host",
        "PATCH /host/{id}",
        "DELETE /host/{id}",
        "POST /volume/{id}/attach",
        "POST /volume/{id}/detach",
        "GET /host_volume_mapping",
        "GET /host_group/{id}",
        "GET /volume/{id}",
        "POST /logout",
    ] {
        assert!(
            seen.contains(expected),
            "{expected} exercised; saw {seen:?}"
        );
    }
    co_testpeers::vendor_matrix::record("powerstore", co_testpeers::vendor_matrix::Cell::Contract);
}

/// The facade serves only operations the definition has.
#[test]
fn the_facade_serves_only_published_operations() {
    let Some(file) = co_lab::arrays::powerstore::published_definition() else {
        eprintln!(
            "SKIPPED: the PowerStore API definition is absent; set POWERSTORE_API_DIR to the directory holding openapi.json"
        );
        return;
    };
    let spec = Definition::load(&file);
    for (method, path) in co_lab::arrays::powerstore::OPERATIONS {
        let request = observed(
            method.parse().unwrap(),
            &format!("/api/rest{}", path.replace("{id}", "x1")),
            &[],
            None,
        );
        assert!(spec.operation(&request).is_some(), "{method} {path}");
    }
}
