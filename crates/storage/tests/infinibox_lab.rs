//! The InfiniBox plugin against the lab's InfiniBox REST facade served over HTTPS on loopback:
//! the copy lifecycle (resolve, host, map, unmap, restore, release) leaves the array as it found
//! it; every mutating call is idempotent; administrators' hosts and host clusters are used, never
//! changed; upstream's defects stay fixed (paging, trailing-slash hostnames, unverified TLS,
//! no-mapping errors, skipped host clusters, one original host, double-slash paths, nothing
//! created); the session survives expiry (401) with one re-login and ends with a logout; 429/503
//! are retried a bounded number of times; an unreachable array and wrong credentials fail fast
//! with the setting to fix.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use co_lab::arrays::infinibox::{InfiniBox, SYSTEM_MODEL, SYSTEM_VERSION};
use co_lab::san::{ArrayVendor, GroupSpec};
use co_storage::infinibox::{CSI_DRIVER, InfiniBoxArray, OWNER_METADATA_KEY, PAGE_SIZE};
use co_storage::{
    EsxiHostRef, GroupKind, GroupRelease, Initiator, PersistentVolumeRef, StorageApi, StorageError,
};
use support::Recorder;

const ARRAY: &str = "ibox1";
const WORKER: &str = "ocp-worker-1";
const WORKER_IQN: &str = "iqn.2020-01.io.openshift:worker-1";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx1-4f3a";
const ESX_FC: &str = "fc.20000025b5000001:21000025b5000001";
const ESX_WWPN_COLON: &str = "21:00:00:25:B5:00:00:01";

fn fault_response(status: u16) -> Response {
    let status = axum::http::StatusCode::from_u16(status).unwrap();
    let body = serde_json::json!({"result": null, "error": {"code": "INJECTED",
        "message": "injected by the test", "reasons": [], "is_remote": false, "data": null},
        "metadata": {"ready": true}});
    (status, axum::Json(body)).into_response()
}

type Lab = support::FacadeLab<InfiniBox>;

impl Lab {
    async fn start() -> Lab {
        let array = (ARRAY, ArrayVendor::InfiniBox, "admin");
        let make = |san, user: &str, password: &str| InfiniBox::new(san, ARRAY, user, password);
        Lab::serve(array, fault_response, make, InfiniBox::router).await
    }

    async fn connect(&self, recorder: Option<Arc<Recorder>>) -> InfiniBoxArray {
        InfiniBoxArray::connect(
            &self.settings(),
            &Default::default(),
            recorder.map(|r| r as _),
        )
        .await
        .unwrap()
    }

    fn host(&self, name: &str, initiators: &[&str]) {
        self.san
            .create_group(
                ARRAY,
                GroupSpec {
                    name: name.into(),
                    initiators: initiators.iter().map(|i| (*i).to_owned()).collect(),
                    protocol: None,
                    os_type: Some("linux".into()),
                },
            )
            .unwrap();
    }

    /// An InfiniBox CSI PV whose volume is mapped to an OpenShift worker host, as the prime PVC is.
    fn csi_pv(&self, name: &str) -> PersistentVolumeRef {
        let csi = self.facade.create_csi_volume(name, 1 << 30).unwrap();
        if self.san.group(ARRAY, WORKER).is_none() {
            self.host(WORKER, &[WORKER_IQN]);
        }
        self.san.map(ARRAY, name, WORKER).unwrap();
        PersistentVolumeRef {
            name: format!("pv-{name}"),
            csi_driver: Some(CSI_DRIVER.into()),
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
}

fn esx(host_id: &str, ids: &[&str]) -> EsxiHostRef {
    EsxiHostRef {
        host_id: host_id.into(),
        initiators: ids.iter().map(|i| Initiator::from_adapter_id(i)).collect(),
    }
}

/// The populator's sequence for one disk, every mutating step repeated (a journal replay),
/// checked against the SAN after each step.
async fn copy_lifecycle(lab: &Lab, array: &InfiniBoxArray) {
    let pv = lab.csi_pv("pvc-a1");
    let info = array.array_info().await.unwrap();
    assert_eq!(
        (
            info.vendor.as_str(),
            info.product.as_str(),
            info.model.as_str(),
            info.version.as_str()
        ),
        ("Infinidat", "InfiniBox", SYSTEM_MODEL, SYSTEM_VERSION)
    );

    let volume = array.resolve_volume(&pv).await.unwrap();
    let lab_volume = lab.san.volume(ARRAY, "pvc-a1").unwrap();
    assert_eq!(volume.naa.as_str(), lab_volume.naa);
    assert_eq!(volume.serial, lab_volume.serial);
    assert_eq!(volume.size_bytes, 1 << 30);
    let by_handle = array
        .resolve_volume(&PersistentVolumeRef {
            volume_attributes: BTreeMap::new(),
            ..pv.clone()
        })
        .await
        .unwrap();
    assert_eq!(by_handle, volume, "the handle's volume id finds it too");

    // vmhba64 (an HBA without an initiator name) is skipped, not fatal.
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
    assert_eq!(lab_host.os_type.as_deref(), Some("esxi"));
    let host_id: u64 = group.targets[0].id.parse().unwrap();
    let tags = lab.facade.metadata(host_id);
    assert_eq!(
        tags.get(OWNER_METADATA_KEY).map(String::as_str),
        Some("copy-offload"),
        "what we create is tagged: {tags:?}"
    );

    let originals = array.current_mappings(&volume).await.unwrap();
    assert_eq!(originals.len(), 1);
    assert_eq!(
        (originals[0].kind, originals[0].name.as_str()),
        (GroupKind::Host, WORKER)
    );

    support::map_twice_and_see_one_lun(array, &lab.san, &volume, &group, &[ESX_IQN]).await;

    support::unmap_twice_and_see_none(array, &lab.san, &volume, &group, ESX_IQN).await;

    // A journal may list the xcopy host of a crashed run: never restored.
    let mut journaled = originals.clone();
    journaled.push(group.targets[0].clone());
    array.restore(&volume, &journaled).await.unwrap();
    array.restore(&volume, &journaled).await.unwrap();
    assert_eq!(lab.groups_of(&volume.name), [WORKER]);

    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
    assert!(lab.san.group(ARRAY, "xcopy-hostsystem-host-1").is_none());
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::AlreadyGone
    );
    assert_eq!(lab.group_names(), [WORKER], "admin objects untouched");
    assert!(
        lab.facade.leftovers().is_empty(),
        "{:?}",
        lab.facade.leftovers()
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
    array.close().await.unwrap();
    assert_eq!(lab.facade.open_sessions(), 0, "logout ends the session");
}

/// Upstream authenticated every request with Basic and built `hosts//{id}/…`: one session here,
/// every path from segments, and every change approved as the array asks.
#[tokio::test]
async fn requests_use_the_session_single_slashes_and_approval() {
    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    copy_lifecycle(&lab, &array).await;
    let requests = recorder.requests();
    let logins = requests
        .iter()
        .filter(|r| r.path == "/api/rest/users/login")
        .count();
    assert_eq!(logins, 1, "one login for the whole run");
    for request in &requests {
        assert!(
            !request.path.contains("//"),
            "{} {}",
            request.method,
            request.path
        );
        if request.method != http::Method::GET {
            assert!(
                request
                    .query
                    .iter()
                    .any(|(k, v)| k == "approved" && v == "true"),
                "{} {} is not approved",
                request.method,
                request.path
            );
        }
        if request.path.ends_with("/users/login") {
            assert_eq!(
                request.body.as_ref().unwrap()["password"],
                "***",
                "the observer never sees the password"
            );
        }
    }
    assert!(
        requests
            .iter()
            .any(|r| r.method == http::Method::DELETE && r.path.contains("/luns/lun/")),
        "unmapped by LUN number"
    );
}

#[tokio::test]
async fn an_administrators_host_is_used_and_kept() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    lab.host("esx1.example.com", &[ESX_WWPN_COLON]);
    let volume = array.resolve_volume(&lab.csi_pv("pvc-h1")).await.unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_FC]))
        .await
        .unwrap();
    assert_eq!(group.targets[0].name, "esx1.example.com");
    assert_eq!(group.protocol, co_storage::StorageProtocol::Fc);
    assert!(
        group.owned.is_empty(),
        "an administrator's host is not ours"
    );
    array.map(&volume, &group).await.unwrap();
    array.unmap(&volume, &group).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::NotOwned
    );
    assert!(lab.san.group(ARRAY, "esx1.example.com").is_some());
    let host_id: u64 = group.targets[0].id.parse().unwrap();
    assert!(lab.facade.metadata(host_id).is_empty(), "nothing tagged");
    assert!(!lab.group_names().iter().any(|g| g.starts_with("xcopy-")));
}

/// Upstream read the first 1000 hosts only; the ESXi host's is the last of more than a page.
#[tokio::test]
async fn hosts_beyond_the_first_page_are_found() {
    let lab = Lab::start().await;
    for n in 0..PAGE_SIZE {
        lab.host(&format!("app-{n:04}"), &[]);
    }
    lab.host("zz-esx1", &[ESX_IQN]);
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_IQN]))
        .await
        .unwrap();
    assert_eq!(group.targets[0].name, "zz-esx1");
    assert!(group.owned.is_empty());
    assert!(
        recorder
            .requests()
            .iter()
            .any(|r| r.path == "/api/rest/hosts" && r.query.contains(&("page".into(), "2".into()))),
        "the second page was read"
    );
}

#[tokio::test]
async fn a_host_an_earlier_run_left_behind_is_adopted_and_deleted() {
    let lab = Lab::start().await;
    lab.host("xcopy-hostsystem-host-1", &[]);
    let array = lab.connect(None).await;
    let volume = array.resolve_volume(&lab.csi_pv("pvc-l1")).await.unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_IQN]))
        .await
        .unwrap();
    assert_eq!(group.owned, group.targets, "ours by name");
    assert_eq!(
        lab.san
            .group(ARRAY, "xcopy-hostsystem-host-1")
            .unwrap()
            .initiators,
        [ESX_IQN],
        "completed with the ESXi port"
    );
    array.map(&volume, &group).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::InUse,
        "a mapped host is kept"
    );
    array.unmap(&volume, &group).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
    assert!(
        lab.facade.leftovers().is_empty(),
        "{:?}",
        lab.facade.leftovers()
    );
}

/// Upstream failed on an unmapped volume, skipped host-cluster mappings and kept only the first
/// original host: every original mapping is reported and restored here.
#[tokio::test]
async fn every_original_mapping_is_reported_and_restored_clusters_included() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let lone = lab.facade.create_csi_volume("pvc-u1", 1 << 20).unwrap();
    let unmapped = array
        .resolve_volume(&PersistentVolumeRef {
            name: "pv-u1".into(),
            csi_driver: Some(CSI_DRIVER.into()),
            volume_handle: lone.volume_handle,
            volume_attributes: lone.volume_attributes,
        })
        .await
        .unwrap();
    assert!(array.current_mappings(&unmapped).await.unwrap().is_empty());

    let volume = array.resolve_volume(&lab.csi_pv("pvc-m1")).await.unwrap();
    lab.host("ocp-worker-2", &["iqn.2020-01.io.openshift:worker-2"]);
    lab.san.map(ARRAY, "pvc-m1", "ocp-worker-2").unwrap();
    lab.host("ocp-infra-1", &["iqn.2020-01.io.openshift:infra-1"]);
    lab.facade
        .create_cluster("ocp-infra", &["ocp-infra-1"])
        .unwrap();
    lab.san.map(ARRAY, "pvc-m1", "ocp-infra").unwrap();
    let originals = array.current_mappings(&volume).await.unwrap();
    let mut seen: Vec<(GroupKind, &str)> = originals
        .iter()
        .map(|g| (g.kind, g.name.as_str()))
        .collect();
    seen.sort_by_key(|(kind, name)| (*kind == GroupKind::HostGroup, name.to_owned()));
    assert_eq!(
        seen,
        [
            (GroupKind::Host, "ocp-worker-1"),
            (GroupKind::Host, "ocp-worker-2"),
            (GroupKind::HostGroup, "ocp-infra"),
        ]
    );
    for group in ["ocp-worker-1", "ocp-worker-2", "ocp-infra"] {
        lab.san.unmap(ARRAY, "pvc-m1", group).unwrap();
    }
    array.restore(&volume, &originals).await.unwrap();
    let mut restored = lab.groups_of("pvc-m1");
    restored.sort();
    assert_eq!(restored, ["ocp-infra", "ocp-worker-1", "ocp-worker-2"]);
}

#[tokio::test]
async fn map_recreates_a_host_another_run_released() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let volume = array.resolve_volume(&lab.csi_pv("pvc-r1")).await.unwrap();
    let host = esx("hostsystem-host-1", &[ESX_IQN]);
    let group = array.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
    let mapping = array.map(&volume, &group).await.unwrap();
    assert!(mapping.lun_id.is_some());
    assert_eq!(lab.san.visible_luns(&[ESX_IQN.to_owned()]).len(), 1);
    array.unmap(&volume, &group).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
}

#[tokio::test]
async fn the_vendor_list_connects_the_infinibox_plugin() {
    let lab = Lab::start().await;
    let api = co_storage::connect(
        &co_storage::VendorSettings::InfiniBox(Default::default()),
        &lab.settings(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(api.array_info().await.unwrap().product, "InfiniBox");
    api.close().await.unwrap();
    assert_eq!(lab.facade.open_sessions(), 0);
}

/// Upstream concatenated `STORAGE_HOSTNAME` with `api/rest/…`, so it had to end with `/`.
#[tokio::test]
async fn every_hostname_form_reaches_the_api() {
    let lab = Lab::start().await;
    for hostname in [
        lab.hostname.clone(),
        format!("https://{}", lab.hostname),
        format!("https://{}/", lab.hostname),
        format!("https://{}/api/rest", lab.hostname),
    ] {
        let mut s = lab.settings();
        s.hostname = hostname.clone();
        let array = InfiniBoxArray::connect(&s, &Default::default(), None)
            .await
            .unwrap_or_else(|e| panic!("{hostname}: {e}"));
        assert_eq!(array.array_info().await.unwrap().version, SYSTEM_VERSION);
    }
}

// ---- faults ----

#[tokio::test]
async fn an_expired_session_is_renewed_once_mid_run() {
    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    let volume = array.resolve_volume(&lab.csi_pv("pvc-s1")).await.unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_IQN]))
        .await
        .unwrap();
    lab.facade.expire_sessions();
    recorder.clear();
    array.map(&volume, &group).await.unwrap();
    let statuses = recorder.statuses();
    assert_eq!(statuses[0].1, Some(401), "{statuses:?}");
    assert_eq!(statuses[1].0, "POST /api/rest/users/login", "{statuses:?}");
    assert_eq!(
        statuses[2].1,
        Some(201),
        "the mapping went through: {statuses:?}"
    );

    // Refused twice in a row: the credentials are the problem, and the message says which.
    lab.faults.push("/luns", 401);
    lab.faults.push("/users/login", 401);
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
    let pv = lab.csi_pv("pvc-b1");
    let err = support::assert_busy_answers_retried_a_bounded_number_of_times(
        &array,
        &lab.faults,
        &pv,
        "/volumes",
        "/luns",
    )
    .await;
    assert!(err.to_string().contains("injected by the test"), "{err}");
}

#[tokio::test]
async fn an_unreachable_array_fails_fast_and_says_what_to_check() {
    support::assert_unreachable_fails_fast(|s, _port| async move {
        InfiniBoxArray::connect(&s, &Default::default(), None).await
    })
    .await;
}

#[tokio::test]
async fn failures_say_what_to_fix_and_are_classed() {
    let lab = Lab::start().await;
    let err =
        support::assert_login_failures_say_what_to_fix(&lab.settings(), 401, |s| async move {
            InfiniBoxArray::connect(&s, &Default::default(), None).await
        })
        .await;
    assert!(
        err.to_string().contains("STORAGE_SKIP_SSL_VERIFICATION"),
        "{err}"
    );
    let mut untrusted = lab.settings();
    untrusted.ca_certificate_pem = None;
    untrusted.skip_tls_verify = true;
    InfiniBoxArray::connect(&untrusted, &Default::default(), None)
        .await
        .unwrap();

    let array = lab.connect(None).await;
    let missing = PersistentVolumeRef {
        name: "pv-x".into(),
        csi_driver: Some(CSI_DRIVER.into()),
        volume_handle: "999$$iscsi".into(),
        volume_attributes: BTreeMap::from([("Name".to_owned(), "pvc-missing".to_owned())]),
    };
    let err = array.resolve_volume(&missing).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    let by_id = PersistentVolumeRef {
        volume_attributes: BTreeMap::new(),
        ..missing.clone()
    };
    let err = array.resolve_volume(&by_id).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    let foreign = PersistentVolumeRef {
        csi_driver: Some("csi.vsphere.vmware.com".into()),
        ..missing
    };
    let err = array.resolve_volume(&foreign).await.unwrap_err();
    assert!(err.to_string().contains("csi.vsphere.vmware.com"), "{err}");

    let err = array
        .ensure_initiator_group(&esx("hostsystem-host-5", &["vmhba64"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("vmhba64"), "{err}");
}
