//! The PowerMax plugin against the lab's Unisphere facade served over HTTPS on loopback: the copy
//! lifecycle (resolve, host, map, unmap, restore, release) leaves the array as it found it; every
//! mutating call is idempotent; an administrator's host is used and kept, a host copy-offload
//! created is deleted; a re-run adopts what an interrupted run made and orphans of upstream are
//! removed; ESXi initiators the array never saw fail early with the remedy; a lone 401 is retried
//! once; 409/500/429/503 are retried a bounded number of times; an unreachable array and wrong
//! settings fail fast naming the setting to fix.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use co_lab::arrays::powermax::{self, FC_PORT_GROUP, ISCSI_PORT_GROUP, PowerMax};
use co_lab::san::{ArrayVendor, GroupSpec};
use co_storage::powermax::{CSI_DRIVER, PowerMaxArray, Settings};
use co_storage::{
    ErrorClass, EsxiHostRef, GroupKind, GroupRelease, Initiator, PersistentVolumeRef, StorageApi,
    StorageError, StorageProtocol,
};
use support::Recorder;

const ARRAY: &str = "pmax1";
const WORKER_IQN: &str = "iqn.2020-01.io.openshift:worker-1";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx1-4f3a";
const ESX_FC: &str = "fc.20000025b5000001:21000025b5000001";

/// The vendor's error answer for an injected status.
fn fault_response(status: u16) -> Response {
    let status = axum::http::StatusCode::from_u16(status).unwrap();
    let body = serde_json::json!({"message": "injected by the test"});
    (status, axum::Json(body)).into_response()
}
type Lab = support::FacadeLab<PowerMax>;

impl Lab {
    async fn start() -> Lab {
        let array = (ARRAY, ArrayVendor::PowerMax, "admin");
        let make = |san, user: &str, password: &str| PowerMax::new(san, ARRAY, user, password);
        Lab::serve(array, fault_response, make, PowerMax::router).await
    }

    fn vendor(&self, port_group: &str) -> Settings {
        Settings {
            symmetrix_id: self.facade.symmetrix_id().to_owned(),
            port_group_name: port_group.to_owned(),
        }
    }

    async fn connect(&self, recorder: Option<Arc<Recorder>>) -> PowerMaxArray {
        PowerMaxArray::connect(
            &self.settings(),
            &self.vendor(ISCSI_PORT_GROUP),
            recorder.map(|r| r as _),
        )
        .await
        .unwrap()
    }

    /// A CSI PowerMax PV whose volume is exposed to an OpenShift worker, as the prime PVC is.
    fn csi_pv(&self, name: &str) -> PersistentVolumeRef {
        let volume = self.san.create_volume(ARRAY, name, 1 << 30).unwrap();
        if self.san.group(ARRAY, "ocp-worker-1").is_none() {
            self.san
                .create_group(
                    ARRAY,
                    GroupSpec {
                        name: "ocp-worker-1".into(),
                        initiators: vec![WORKER_IQN.into()],
                        ..GroupSpec::default()
                    },
                )
                .unwrap();
        }
        self.san.map(ARRAY, name, "ocp-worker-1").unwrap();
        PersistentVolumeRef {
            name: format!("pv-{name}"),
            csi_driver: Some(CSI_DRIVER.into()),
            volume_handle: powermax::csi_volume_handle(ARRAY, &volume),
            volume_attributes: BTreeMap::new(),
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

    fn host_names(&self) -> Vec<String> {
        self.san.groups(ARRAY).into_iter().map(|g| g.name).collect()
    }

    /// An administrator's host holding `initiator`.
    fn admin_host(&self, name: &str, initiator: &str) {
        self.san
            .create_group(
                ARRAY,
                GroupSpec {
                    name: name.into(),
                    initiators: vec![initiator.into()],
                    ..GroupSpec::default()
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
async fn copy_lifecycle(lab: &Lab, array: &PowerMaxArray, host_owned: bool) {
    let pv = lab.csi_pv("csivol-a1");
    let info = array.array_info().await.unwrap();
    assert_eq!(
        (info.vendor.as_str(), info.product.as_str()),
        ("Dell", "PowerMax")
    );
    assert_eq!(info.model, powermax::MODEL);
    assert_eq!(info.version, powermax::UCODE);

    let volume = array.resolve_volume(&pv).await.unwrap();
    let lab_volume = lab.san.volume(ARRAY, "csivol-a1").unwrap();
    assert_eq!(volume.naa.as_str(), lab_volume.naa);
    assert_eq!(volume.id, powermax::device_id(&lab_volume));
    assert_eq!(volume.name, "csivol-a1");
    assert_eq!(volume.size_bytes, 1 << 30);

    // vmhba64 and the FC port (the port group is iSCSI) are not this port group's.
    let host = esx("hostsystem-host-1", &[ESX_IQN, "vmhba64", ESX_FC]);
    let group = array.ensure_initiator_group(&host).await.unwrap();
    let again = array.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(again, group, "ensure is idempotent");
    assert_eq!(group.protocol, StorageProtocol::Iscsi);
    assert_eq!(group.targets[0].kind, GroupKind::Host);
    if host_owned {
        assert_eq!(group.targets[0].name, "xcopy-hostsystem-host-1");
        assert_eq!(group.owned, group.targets, "created now, so owned");
        let lab_host = lab.san.group(ARRAY, "xcopy-hostsystem-host-1").unwrap();
        assert_eq!(lab_host.initiators, [ESX_IQN]);
    } else {
        assert_eq!(group.targets[0].name, "esx1");
        assert!(group.owned.is_empty(), "an administrator's host");
    }

    let originals = array.current_mappings(&volume).await.unwrap();
    assert_eq!(originals.len(), 1, "{originals:?}");
    assert_eq!(originals[0].kind, GroupKind::MaskingView);
    assert_eq!(originals[0].name, "ocp-worker-1_MV");

    support::map_twice_and_see_one_lun(array, &lab.san, &volume, &group, &[ESX_IQN]).await;
    assert_eq!(
        lab.facade.storage_groups(),
        [format!("xcopy-{}-SG", volume.id)]
    );

    support::unmap_twice_and_see_none(array, &lab.san, &volume, &group, ESX_IQN).await;
    assert!(lab.facade.storage_groups().is_empty());
    assert!(lab.facade.masking_views().is_empty());

    // A journal may list the xcopy view of a crashed run: never restored.
    let mut journaled = originals.clone();
    journaled.push(co_storage::GroupRef {
        kind: GroupKind::MaskingView,
        name: format!("xcopy-{}-MV", volume.id),
        id: format!("xcopy-{}-SG", volume.id),
    });
    array.restore(&volume, &journaled).await.unwrap();
    array.restore(&volume, &journaled).await.unwrap();
    assert_eq!(lab.groups_of(&volume.name), ["ocp-worker-1"]);

    let released = array.release_group(&group).await.unwrap();
    if host_owned {
        assert_eq!(released, GroupRelease::Deleted);
        assert_eq!(
            array.release_group(&group).await.unwrap(),
            GroupRelease::AlreadyGone
        );
    } else {
        assert_eq!(released, GroupRelease::NotOwned);
    }
    assert!(
        lab.facade.leftovers().is_empty(),
        "{:?}",
        lab.facade.leftovers()
    );
}

#[tokio::test]
async fn a_copy_through_an_administrators_host_leaves_the_array_as_it_found_it() {
    let lab = Lab::start().await;
    lab.admin_host("esx1", ESX_IQN);
    let array = lab.connect(None).await;
    copy_lifecycle(&lab, &array, false).await;
    let mut hosts = lab.host_names();
    hosts.sort();
    assert_eq!(hosts, ["esx1", "ocp-worker-1"], "admin objects untouched");
}

/// Upstream failed when no host held the initiators; they are logged in, so a host is made for
/// them and deleted at the end.
#[tokio::test]
async fn a_host_is_created_for_logged_in_initiators_and_deleted_after() {
    let lab = Lab::start().await;
    lab.facade.log_in(ESX_IQN).unwrap();
    let array = lab.connect(None).await;
    copy_lifecycle(&lab, &array, true).await;
    assert_eq!(lab.host_names(), ["ocp-worker-1"]);
}

/// The field issue: initiators the array never saw log in used to fail late and obscurely.
#[tokio::test]
async fn initiators_the_array_never_saw_fail_early_with_the_remedy() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let err = array
        .ensure_initiator_group(&esx("hostsystem-host-9", &[ESX_IQN]))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Config { .. }), "{err}");
    let text = err.to_string();
    for needle in [
        ESX_IQN,
        "logged in to PowerMax",
        "iSCSI targets",
        ISCSI_PORT_GROUP,
        "rescan",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(lab.facade.leftovers().is_empty());

    let err = array
        .ensure_initiator_group(&esx("hostsystem-host-9", &["vmhba64", ESX_FC]))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
    assert!(
        err.to_string().contains("POWERMAX_PORT_GROUP_NAME"),
        "{err}"
    );
}

#[tokio::test]
async fn fc_port_groups_map_fc_initiators() {
    let lab = Lab::start().await;
    lab.admin_host("esx1-fc", "21:00:00:25:B5:00:00:01");
    let array = PowerMaxArray::connect(&lab.settings(), &lab.vendor(FC_PORT_GROUP), None)
        .await
        .unwrap();
    let volume = array
        .resolve_volume(&lab.csi_pv("csivol-f1"))
        .await
        .unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_IQN, ESX_FC]))
        .await
        .unwrap();
    assert_eq!(group.protocol, StorageProtocol::Fc);
    assert_eq!(group.targets[0].name, "esx1-fc");
    array.map(&volume, &group).await.unwrap();
    assert_eq!(lab.san.visible_luns(&[ESX_FC.to_owned()]).len(), 1);
    array.unmap(&volume, &group).await.unwrap();
    assert!(lab.san.visible_luns(&[ESX_FC.to_owned()]).is_empty());
    assert!(lab.facade.leftovers().is_empty());
}

/// Two disks of one VM copy through the same ESXi host at once: each has its own storage group
/// and view, and ending one leaves the other mapped; the host is released only when unused.
#[tokio::test]
async fn copies_sharing_an_esxi_host_do_not_disturb_each_other() {
    let lab = Lab::start().await;
    lab.facade.log_in(ESX_IQN).unwrap();
    let array = lab.connect(None).await;
    let host = esx("hostsystem-host-1", &[ESX_IQN]);
    let a = array
        .resolve_volume(&lab.csi_pv("csivol-s1"))
        .await
        .unwrap();
    let b = array
        .resolve_volume(&lab.csi_pv("csivol-s2"))
        .await
        .unwrap();
    let group = array.ensure_initiator_group(&host).await.unwrap();
    let (ma, mb) = tokio::join!(array.map(&a, &group), array.map(&b, &group));
    assert_ne!(ma.unwrap().lun_id, mb.unwrap().lun_id);
    assert_eq!(lab.san.visible_luns(&[ESX_IQN.to_owned()]).len(), 2);
    array.unmap(&a, &group).await.unwrap();
    let visible = lab.san.visible_luns(&[ESX_IQN.to_owned()]);
    assert_eq!(visible.len(), 1);
    assert_eq!(visible[0].naa, b.naa.as_str());
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::InUse
    );
    array.unmap(&b, &group).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
    assert!(lab.facade.leftovers().is_empty());
}

/// A run killed after mapping leaves its storage group and view; the next run (a new process)
/// adopts them. A storage group upstream's populator left (random name) holding the volume is
/// removed instead of leaking.
#[tokio::test]
async fn a_rerun_adopts_what_an_interrupted_run_left_and_upstream_orphans_are_removed() {
    let lab = Lab::start().await;
    lab.admin_host("esx1", ESX_IQN);
    let pv = lab.csi_pv("csivol-r1");
    lab.facade
        .create_masking_view("xcopy-1a2b3c4d", "xcopy-1a2b3c4d-SG", "esx1", "csivol-r1")
        .unwrap();

    let first = lab.connect(None).await;
    let volume = first.resolve_volume(&pv).await.unwrap();
    let group = first
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_IQN]))
        .await
        .unwrap();
    let mapping = first.map(&volume, &group).await.unwrap();
    assert_eq!(
        lab.facade.storage_groups(),
        [format!("xcopy-{}-SG", volume.id)],
        "the orphan is gone"
    );
    assert_eq!(
        lab.facade.masking_views(),
        [format!("xcopy-{}-MV", volume.id)]
    );
    drop(first);

    let second = lab.connect(None).await;
    let again = second.map(&volume, &group).await.unwrap();
    assert_eq!(again.lun_id, mapping.lun_id);
    assert_eq!(lab.facade.storage_groups().len(), 1);
    second.unmap(&volume, &group).await.unwrap();
    assert!(
        lab.facade.leftovers().is_empty(),
        "{:?}",
        lab.facade.leftovers()
    );
    assert_eq!(lab.groups_of("csivol-r1"), ["ocp-worker-1"]);
}

/// A view of an earlier run to another ESXi host is replaced, not reused.
#[tokio::test]
async fn a_view_to_another_host_is_replaced() {
    let lab = Lab::start().await;
    lab.admin_host("esx1", ESX_IQN);
    lab.admin_host("esx2", "iqn.1998-01.com.vmware:esx2");
    let pv = lab.csi_pv("csivol-v1");
    let array = lab.connect(None).await;
    let volume = array.resolve_volume(&pv).await.unwrap();
    lab.facade
        .create_masking_view(
            &format!("xcopy-{}-MV", volume.id),
            &format!("xcopy-{}-SG", volume.id),
            "esx2",
            "csivol-v1",
        )
        .unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_IQN]))
        .await
        .unwrap();
    array.map(&volume, &group).await.unwrap();
    assert_eq!(lab.san.visible_luns(&[ESX_IQN.to_owned()]).len(), 1);
    assert!(
        lab.san
            .visible_luns(&["iqn.1998-01.com.vmware:esx2".to_owned()])
            .is_empty()
    );
    array.unmap(&volume, &group).await.unwrap();
    assert!(lab.facade.leftovers().is_empty());
}

#[tokio::test]
async fn the_vendor_list_connects_the_powermax_plugin() {
    let lab = Lab::start().await;
    let vendor = co_storage::VendorSettings::PowerMax(lab.vendor(ISCSI_PORT_GROUP));
    let array = co_storage::connect(&vendor, &lab.settings(), None)
        .await
        .unwrap();
    assert_eq!(array.array_info().await.unwrap().product, "PowerMax");
    assert!(array.array_copy().is_none());
    array.close().await.unwrap();
}

/// Upstream sent `srpId "none"` with an empty service-level block, which Unisphere refuses; the
/// group is created with no pool and no service level, and every change is synchronous.
#[tokio::test]
async fn the_storage_group_is_created_without_a_service_level() {
    let lab = Lab::start().await;
    lab.admin_host("esx1", ESX_IQN);
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    let volume = array
        .resolve_volume(&lab.csi_pv("csivol-c1"))
        .await
        .unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_IQN]))
        .await
        .unwrap();
    array.map(&volume, &group).await.unwrap();
    let requests = recorder.requests();
    let create = requests
        .iter()
        .find(|r| r.method == http::Method::POST && r.path.ends_with("/storagegroup"))
        .unwrap();
    let body = create.body.as_ref().unwrap();
    assert_eq!(body["srpId"], "None");
    assert!(body.get("sloBasedStorageGroupParam").is_none(), "{body}");
    for request in requests.iter().filter(|r| r.body.is_some()) {
        assert_eq!(
            request.body.as_ref().unwrap()["executionOption"],
            "SYNCHRONOUS",
            "{request:?}"
        );
    }
    assert!(
        requests
            .iter()
            .all(|r| r.path.starts_with("/univmax/restapi/")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn a_lone_401_is_retried_once_after_checking_the_credentials() {
    let lab = Lab::start().await;
    lab.admin_host("esx1", ESX_IQN);
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    let volume = array
        .resolve_volume(&lab.csi_pv("csivol-u1"))
        .await
        .unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_IQN]))
        .await
        .unwrap();
    recorder.clear();
    lab.faults.push_for("POST", "/maskingview", 401);
    array.map(&volume, &group).await.unwrap();
    assert_eq!(lab.faults.pending(), 0);
    let statuses = recorder.statuses();
    let at = statuses.iter().position(|(_, s)| *s == Some(401)).unwrap();
    assert_eq!(
        statuses[at + 1].0,
        "GET /univmax/restapi/version",
        "{statuses:?}"
    );
    assert_eq!(statuses[at + 2].1, Some(201), "{statuses:?}");

    // Refused twice in a row: the credentials are the problem, and the message says which.
    lab.faults.push_for("GET", "/volume/", 401);
    lab.faults.push_for("GET", "/version", 401);
    let err = array.current_mappings(&volume).await.unwrap_err();
    assert!(
        matches!(err, StorageError::AuthRefused { status: 401, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("STORAGE_PASSWORD"), "{err}");
    array.unmap(&volume, &group).await.unwrap();
}

#[tokio::test]
async fn busy_and_locked_answers_are_retried_a_bounded_number_of_times() {
    let lab = Lab::start().await;
    lab.admin_host("esx1", ESX_IQN);
    let array = lab.connect(None).await;
    let pv = lab.csi_pv("csivol-b1");
    lab.faults.push_for("GET", "/volume/", 503);
    lab.faults.push_for("GET", "/volume/", 429);
    lab.faults.push_for("GET", "/volume/", 500);
    let volume = array.resolve_volume(&pv).await.unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_IQN]))
        .await
        .unwrap();
    // Another change holds the storage group (409), then the server stumbles (500).
    lab.faults.push_for("PUT", "/storagegroup/", 409);
    lab.faults.push_for("PUT", "/storagegroup/", 500);
    array.map(&volume, &group).await.unwrap();
    assert_eq!(lab.faults.pending(), 0);
    assert_eq!(lab.san.visible_luns(&[ESX_IQN.to_owned()]).len(), 1);

    // The test settings allow 4 attempts: 4 refusals exhaust them.
    for _ in 0..4 {
        lab.faults.push_for("DELETE", "/maskingview/", 409);
    }
    let err = array.unmap(&volume, &group).await.unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Unavailable {
                status: 409,
                attempts: 4,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Retryable);
    array.unmap(&volume, &group).await.unwrap();
    assert!(lab.facade.leftovers().is_empty());
}

#[tokio::test]
async fn an_unreachable_array_fails_fast_and_says_what_to_check() {
    support::assert_unreachable_fails_fast(|s, _port| async move {
        let vendor = Settings {
            symmetrix_id: "000197900123".into(),
            port_group_name: ISCSI_PORT_GROUP.into(),
        };
        PowerMaxArray::connect(&s, &vendor, None).await
    })
    .await;
}

#[tokio::test]
async fn failures_say_what_to_fix_and_are_classed() {
    let lab = Lab::start().await;
    let vendor = lab.vendor(ISCSI_PORT_GROUP);
    support::assert_login_failures_say_what_to_fix(&lab.settings(), 401, |s| {
        let vendor = vendor.clone();
        async move { PowerMaxArray::connect(&s, &vendor, None).await }
    })
    .await;

    let other_array = Settings {
        symmetrix_id: "000197900000".into(),
        ..vendor.clone()
    };
    let err = PowerMaxArray::connect(&lab.settings(), &other_array, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Config { .. }), "{err}");
    assert!(err.to_string().contains("POWERMAX_SYMMETRIX_ID"), "{err}");
    assert!(err.to_string().contains(lab.facade.symmetrix_id()), "{err}");

    let err = PowerMaxArray::connect(&lab.settings(), &lab.vendor("esx_pg"), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("POWERMAX_PORT_GROUP_NAME"),
        "{err}"
    );
    assert!(err.to_string().contains(ISCSI_PORT_GROUP), "{err}");

    let array = lab.connect(None).await;
    let missing = PersistentVolumeRef {
        name: "pv-x".into(),
        csi_driver: Some(CSI_DRIVER.into()),
        volume_handle: format!("csi-lab-x-{}-0FFFF", lab.facade.symmetrix_id()),
        volume_attributes: BTreeMap::new(),
    };
    let err = array.resolve_volume(&missing).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("pv-x"), "{err}");
    let foreign = PersistentVolumeRef {
        csi_driver: Some("csi.vsphere.vmware.com".into()),
        ..missing.clone()
    };
    let err = array.resolve_volume(&foreign).await.unwrap_err();
    assert!(err.to_string().contains("csi.vsphere.vmware.com"), "{err}");
    let elsewhere = PersistentVolumeRef {
        volume_handle: "csi-lab-x-000197900000-0001A".into(),
        ..missing
    };
    let err = array.resolve_volume(&elsewhere).await.unwrap_err();
    assert!(err.to_string().contains("000197900000"), "{err}");
}

/// Unisphere publishes no machine-readable definition: every request the plugin sends in a full
/// lifecycle must be one of the operations the facade serves (`OPERATIONS`, each cited in
/// `docs/vendors.md`), with no query parameter the facade does not know.
#[tokio::test]
async fn every_request_is_an_operation_the_facade_documents() {
    let lab = Lab::start().await;
    lab.facade.log_in(ESX_IQN).unwrap();
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    copy_lifecycle(&lab, &array, true).await;
    let requests = recorder.requests();
    assert!(requests.len() > 10, "{requests:?}");
    for request in &requests {
        let path = request
            .path
            .strip_prefix(powermax::BASE_PATH)
            .unwrap_or_else(|| panic!("outside the API root: {}", request.path));
        let segments: Vec<&str> = path.split('/').collect();
        let known = powermax::OPERATIONS.iter().any(|(method, template)| {
            let parts: Vec<&str> = template.split('/').collect();
            *method == request.method.as_str()
                && parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(t, s)| match *t {
                    "{v}" => *s == co_storage::powermax::API_VERSION,
                    "{sid}" => *s == lab.facade.symmetrix_id(),
                    t if t.starts_with('{') => !s.is_empty(),
                    t => t == *s,
                })
        });
        assert!(
            known,
            "{} {} is not a documented operation",
            request.method, request.path
        );
        for (key, _) in &request.query {
            assert!(
                ["initiator_hba", "volume_id"].contains(&key.as_str()),
                "query parameter {key} of {}",
                request.path
            );
        }
    }
}
