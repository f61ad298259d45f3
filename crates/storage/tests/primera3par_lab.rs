//! The Primera/3PAR plugin against the lab's WSAPI facade served over HTTPS on loopback: the copy
//! lifecycle (resolve, host and host set, export, unexport, restore, release) leaves the array as
//! it found it; every mutating call is idempotent; administrators' hosts are used, never changed;
//! two copies on one ESXi host share its host set; a resumed run adopts what an earlier one left;
//! upstream's defects stay fixed (hostname shapes, persona, name lengths, restore to plain hosts,
//! the session key deleted at exit, no array-side copy and so no snapshot of a vVol/RDM source);
//! the session survives expiry (401) and a refused key (403)
//! with one re-login; 429/503 are retried a bounded number of times; an unreachable array and
//! wrong credentials fail fast with the setting to fix.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use co_lab::arrays::primera3par::{self as facade, Primera};
use co_lab::san::{ArrayVendor, GroupSpec};
use co_storage::primera3par::{CSI_DRIVER, PERSONA_VMWARE, Primera3ParArray};
use co_storage::{
    EsxiHostRef, GroupKind, GroupRef, GroupRelease, Initiator, PersistentVolumeRef, StorageApi,
    StorageError,
};
use support::Recorder;

const ARRAY: &str = "3par1";
const WORKER_IQN: &str = "iqn.2020-01.io.openshift:worker-1";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx1-4f3a";
const ESX_FC: &str = "fc.20000025b5000001:21000025b5000001";

/// The vendor's error answer for an injected status.
fn fault_response(status: u16) -> Response {
    let status = axum::http::StatusCode::from_u16(status).unwrap();
    let body = serde_json::json!({"code": 250, "desc": "injected by the test"});
    (status, axum::Json(body)).into_response()
}
type Lab = support::FacadeLab<Primera>;

impl Lab {
    async fn start() -> Lab {
        let array = (ARRAY, ArrayVendor::Primera3Par, "3paradm");
        let make = |san, user: &str, password: &str| Primera::new(san, ARRAY, user, password);
        Lab::serve(array, fault_response, make, Primera::router).await
    }

    async fn connect(&self, recorder: Option<Arc<Recorder>>) -> Primera3ParArray {
        Primera3ParArray::connect(
            &self.settings(),
            &Default::default(),
            recorder.map(|r| r as _),
        )
        .await
        .unwrap()
    }

    /// An HPE CSI PV whose volume is exported to an OpenShift worker host, as the prime PVC is.
    fn csi_pv(&self, name: &str) -> PersistentVolumeRef {
        let volume = self.facade.create_csi_volume(name, 1 << 30).unwrap();
        self.host("ocp-worker-1", WORKER_IQN);
        self.san.map(ARRAY, &volume.name, "ocp-worker-1").unwrap();
        PersistentVolumeRef {
            name: format!("pv-{name}"),
            csi_driver: Some(CSI_DRIVER.into()),
            volume_handle: name.to_owned(),
            volume_attributes: BTreeMap::new(),
        }
    }

    /// An administrator's host with one path (kept when it exists).
    fn host(&self, name: &str, path: &str) {
        if self.san.group(ARRAY, name).is_none() {
            self.san
                .create_group(
                    ARRAY,
                    GroupSpec {
                        name: name.into(),
                        initiators: vec![path.into()],
                        ..GroupSpec::default()
                    },
                )
                .unwrap();
        }
    }

    /// No host, host set or export of copy-offload's is left on the array.
    fn assert_clean(&self) {
        let left = self.facade.leftovers();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    fn groups_of(&self, volume: &str) -> Vec<String> {
        self.san
            .mappings(ARRAY)
            .into_iter()
            .filter(|m| m.volume == volume)
            .map(|m| m.group)
            .collect()
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
#[tokio::test]
async fn a_copy_lifecycle_leaves_the_array_as_it_found_it_and_deletes_its_session() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let pv = lab.csi_pv("pvc-a1");
    let info = array.array_info().await.unwrap();
    assert_eq!(
        (
            info.vendor.as_str(),
            info.model.as_str(),
            info.version.as_str()
        ),
        ("HPE", facade::MODEL, facade::SYSTEM_VERSION)
    );

    let volume = array.resolve_volume(&pv).await.unwrap();
    let lab_volume = lab.san.volume(ARRAY, "pvc-a1").unwrap();
    assert_eq!(volume.naa.as_str(), lab_volume.naa);
    assert_eq!(volume.size_bytes, 1 << 30);

    // vmhba64 (an NVMe/SAS HBA without a path name) is skipped, not fatal.
    let host = esx("hostsystem-host-1", &[ESX_IQN, ESX_FC, "vmhba64"]);
    let group = array.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(group.targets[0].name, "xcopy-hostsystem-host-1");
    assert_eq!(group.targets[0].kind, GroupKind::HostSet);
    assert_eq!(group.protocol, co_storage::StorageProtocol::Mixed);
    assert_eq!(
        group.owned.len(),
        2,
        "the host set and the host: {:?}",
        group.owned
    );
    let again = array.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(again, group, "ensure is idempotent");
    // Upstream created hosts with persona 11, which the WSAPI numbers Windows Server.
    assert_eq!(
        lab.facade.host_persona("xcopy-hostsystem-host-1"),
        Some(PERSONA_VMWARE)
    );
    assert_eq!(
        lab.facade
            .host_set_members("xcopy-hostsystem-host-1")
            .unwrap(),
        ["xcopy-hostsystem-host-1"]
    );

    let originals = array.current_mappings(&volume).await.unwrap();
    assert_eq!(
        originals,
        [GroupRef {
            kind: GroupKind::Host,
            name: "ocp-worker-1".into(),
            id: String::new()
        }]
    );

    let paths = [ESX_IQN, ESX_FC];
    support::map_twice_and_see_one_lun(&array, &lab.san, &volume, &group, &paths).await;

    support::unmap_twice_and_see_none(&array, &lab.san, &volume, &group, ESX_IQN).await;

    // Upstream restored every original export as `set:<name>`; the worker is a plain host.
    lab.san.unmap(ARRAY, "pvc-a1", "ocp-worker-1").unwrap();
    let mut journaled = originals.clone();
    journaled.push(group.targets[0].clone());
    array.restore(&volume, &journaled).await.unwrap();
    array.restore(&volume, &journaled).await.unwrap();
    assert_eq!(lab.groups_of("pvc-a1"), ["ocp-worker-1"]);

    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::AlreadyGone
    );
    lab.assert_clean();
    assert_eq!(
        lab.facade.open_sessions(),
        1,
        "one session for the whole run"
    );
    array.close().await.unwrap();
    assert_eq!(
        lab.facade.open_sessions(),
        0,
        "close deletes the session key"
    );
}

#[tokio::test]
async fn an_administrators_host_is_put_in_our_set_and_kept() {
    let lab = Lab::start().await;
    lab.host("esx-01", ESX_FC);
    let array = lab.connect(None).await;
    let volume = array.resolve_volume(&lab.csi_pv("pvc-b1")).await.unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-2", &[ESX_FC]))
        .await
        .unwrap();
    assert_eq!(group.owned, group.targets, "only the host set is ours");
    assert_eq!(
        lab.facade
            .host_set_members("xcopy-hostsystem-host-2")
            .unwrap(),
        ["esx-01"]
    );
    assert!(
        lab.san.group(ARRAY, "xcopy-hostsystem-host-2").is_none(),
        "no host created"
    );
    array.map(&volume, &group).await.unwrap();
    assert_eq!(lab.san.visible_luns(&[ESX_FC.to_owned()]).len(), 1);
    array.unmap(&volume, &group).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
    assert!(
        lab.san.group(ARRAY, "esx-01").is_some(),
        "the admin's host is kept"
    );
    lab.assert_clean();
}

/// Two copies on one ESXi host share its host set: the first release keeps it, the last deletes.
#[tokio::test]
async fn two_copies_share_the_host_set_and_the_last_release_deletes_it() {
    let lab = Lab::start().await;
    let first = lab.connect(None).await;
    let second = lab.connect(None).await;
    let v1 = first.resolve_volume(&lab.csi_pv("pvc-c1")).await.unwrap();
    let v2 = second.resolve_volume(&lab.csi_pv("pvc-c2")).await.unwrap();
    let host = esx("hostsystem-host-3", &[ESX_IQN]);
    let g1 = first.ensure_initiator_group(&host).await.unwrap();
    let g2 = second.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(g1, g2);
    let m1 = first.map(&v1, &g1).await.unwrap();
    let m2 = second.map(&v2, &g2).await.unwrap();
    assert_ne!(m1.lun_id, m2.lun_id, "one LUN per volume in the set");
    first.unmap(&v1, &g1).await.unwrap();
    assert_eq!(first.release_group(&g1).await.unwrap(), GroupRelease::InUse);
    assert_eq!(lab.san.visible_luns(&[ESX_IQN.to_owned()]).len(), 1);
    second.unmap(&v2, &g2).await.unwrap();
    assert_eq!(
        second.release_group(&g2).await.unwrap(),
        GroupRelease::Deleted
    );
    lab.assert_clean();
}

/// A run that died after exporting: the next run finds the export, the set and the host, and
/// its cleanup removes them.
#[tokio::test]
async fn a_resumed_run_adopts_what_an_earlier_run_left() {
    let lab = Lab::start().await;
    let volume = {
        let crashed = lab.connect(None).await;
        let volume = crashed.resolve_volume(&lab.csi_pv("pvc-d1")).await.unwrap();
        let group = crashed
            .ensure_initiator_group(&esx("hostsystem-host-4", &[ESX_IQN]))
            .await
            .unwrap();
        crashed.map(&volume, &group).await.unwrap();
        volume
    };
    let array = lab.connect(None).await;
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-4", &[ESX_IQN]))
        .await
        .unwrap();
    assert_eq!(group.owned.len(), 2, "the earlier run's host is ours too");
    let before = lab.san.mappings(ARRAY).len();
    array.map(&volume, &group).await.unwrap();
    assert_eq!(
        lab.san.mappings(ARRAY).len(),
        before,
        "the export is adopted, not doubled"
    );
    array.unmap(&volume, &group).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
    lab.assert_clean();
}

/// Upstream's host set name rule could exceed what the array accepts for long host ids; ours
/// never does, and the same ESXi host always gets the same names.
#[tokio::test]
async fn long_host_ids_get_names_within_the_array_limits() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let host = esx("hostsystem-host-1234567890123456789", &[ESX_IQN]);
    let group = array.ensure_initiator_group(&host).await.unwrap();
    let set = &group.targets[0].name;
    assert_eq!(set.len(), facade::MAX_SET_NAME, "{set}");
    assert!(set.starts_with("xcopy-"), "{set}");
    let own_host = &group.owned[1].name;
    assert_eq!(own_host.len(), facade::MAX_NAME, "{own_host}");
    assert_eq!(array.ensure_initiator_group(&host).await.unwrap(), group);
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
    lab.assert_clean();
}

/// Upstream copied vVol and RDM disks with a snapshot of the source and a promote, which reverts
/// the snapshot's *parent* (the source) and left the PVC's volume a snapshot depending on the
/// source. Here an array-side copy would have to write the PVC's volume while it is exported to
/// the worker node, which the WSAPI refuses, so the plugin offers none: vVol and RDM disks take
/// XCOPY, and a whole run sends no request that creates, copies, promotes or deletes a volume.
#[tokio::test]
async fn vvol_and_rdm_disks_never_leave_a_snapshot_of_the_source() {
    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    assert!(
        array.array_copy().is_none(),
        "Primera/3PAR has no array-side copy onto an exported volume"
    );
    let source = lab.facade.create_csi_volume("rdm-lun-7", 1 << 30).unwrap();
    let host = esx("hostsystem-host-7", &[ESX_IQN]);
    lab.host("esx-7", ESX_FC.split(':').nth(1).unwrap());
    lab.san.map(ARRAY, &source.name, "esx-7").unwrap();

    let volume = array.resolve_volume(&lab.csi_pv("pvc-r7")).await.unwrap();
    let group = array.ensure_initiator_group(&host).await.unwrap();
    let originals = array.current_mappings(&volume).await.unwrap();
    array.map(&volume, &group).await.unwrap();
    array.unmap(&volume, &group).await.unwrap();
    array.restore(&volume, &originals).await.unwrap();
    array.release_group(&group).await.unwrap();
    array.close().await.unwrap();

    let volume_writes: Vec<String> = recorder
        .requests()
        .iter()
        .filter(|r| r.method != "GET" && r.path.starts_with("/api/v1/volumes"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(volume_writes.is_empty(), "{volume_writes:?}");
    assert!(lab.facade.snapshots_of(&source.name).is_empty());
    assert!(lab.facade.snapshots_of(&volume.name).is_empty());
    lab.assert_clean();
    assert_eq!(
        lab.groups_of(&source.name),
        ["esx-7"],
        "the source untouched"
    );
}

/// Upstream needed exactly `https://host:port`.
#[tokio::test]
async fn every_hostname_shape_reaches_the_wsapi() {
    let lab = Lab::start().await;
    for hostname in [
        lab.hostname.clone(),
        format!("https://{}", lab.hostname),
        format!("https://{}/api/v1", lab.hostname),
        format!("https://{}/api/v1/", lab.hostname),
    ] {
        let mut s = lab.settings();
        s.hostname = hostname.clone();
        let array = Primera3ParArray::connect(&s, &Default::default(), None)
            .await
            .unwrap_or_else(|e| panic!("{hostname}: {e}"));
        array.array_info().await.unwrap();
        array.close().await.unwrap();
    }
    assert_eq!(lab.facade.open_sessions(), 0);
}

#[tokio::test]
async fn the_vendor_list_connects_the_primera3par_plugin() {
    let lab = Lab::start().await;
    let settings = co_storage::VendorSettings::Primera3Par(Default::default());
    let api = co_storage::vendor::connect(&settings, &lab.settings(), None)
        .await
        .unwrap();
    assert_eq!(api.array_info().await.unwrap().vendor, "HPE");
    api.close().await.unwrap();
    assert_eq!(lab.facade.open_sessions(), 0);
}

/// The WSAPI ends a session with `DELETE /credentials/<key>`: the key is in the path, and paths
/// reach logs, error messages and observers, so that segment is shown as `***`.
#[tokio::test]
async fn the_session_key_in_the_logout_path_is_never_shown() {
    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    array.close().await.unwrap();
    assert_eq!(lab.facade.open_sessions(), 0, "the session was ended");
    let deletes: Vec<String> = recorder
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(deletes, ["/api/v1/credentials/***"]);
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_mid_run() {
    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    let volume = array.resolve_volume(&lab.csi_pv("pvc-s1")).await.unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-5", &[ESX_IQN]))
        .await
        .unwrap();
    lab.facade.expire_sessions();
    recorder.clear();
    array.map(&volume, &group).await.unwrap();
    let statuses = recorder.statuses();
    assert_eq!(statuses[0].1, Some(401), "{statuses:?}");
    assert_eq!(statuses[1].0, "POST /api/v1/credentials", "{statuses:?}");
    assert!(
        statuses
            .iter()
            .any(|(op, s)| op == "POST /api/v1/vluns" && *s == Some(201)),
        "the export went through: {statuses:?}"
    );
    assert!(
        recorder
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/credentials"))
            .all(|r| r.body.as_ref().is_some_and(|b| b["password"] == "***")),
        "the password never reaches an observer"
    );
    assert_eq!(lab.facade.open_sessions(), 1);

    // A key the array refuses with 403 also logs in again, once.
    lab.faults.push("/vluns", 403);
    array.unmap(&volume, &group).await.unwrap();
    assert_eq!(lab.faults.pending(), 0);
    assert!(lab.san.visible_luns(&[ESX_IQN.to_owned()]).is_empty());

    // Refused twice in a row: the credentials are the problem, and the message says which.
    lab.faults.push("/vluns", 401);
    lab.faults.push("/credentials", 403);
    let err = array.current_mappings(&volume).await.unwrap_err();
    assert!(matches!(err, StorageError::AuthRefused { .. }), "{err}");
    assert!(err.to_string().contains("STORAGE_PASSWORD"), "{err}");
}

#[tokio::test]
async fn busy_answers_are_retried_a_bounded_number_of_times() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let pv = lab.csi_pv("pvc-r1");
    let err = support::assert_busy_answers_retried_a_bounded_number_of_times(
        &array,
        &lab.faults,
        &pv,
        "/volumes",
        "/vluns",
    )
    .await;
    assert!(
        err.to_string().contains("injected by the test"),
        "the WSAPI desc: {err}"
    );
}

#[tokio::test]
async fn an_unreachable_array_fails_fast_and_says_what_to_check() {
    support::assert_unreachable_fails_fast(|s, _port| async move {
        Primera3ParArray::connect(&s, &Default::default(), None).await
    })
    .await;
}

#[tokio::test]
async fn failures_say_what_to_fix_and_are_classed() {
    let lab = Lab::start().await;
    support::assert_login_failures_say_what_to_fix(&lab.settings(), 403, |s| async move {
        Primera3ParArray::connect(&s, &Default::default(), None).await
    })
    .await;

    let array = lab.connect(None).await;
    let missing = PersistentVolumeRef {
        name: "pv-x".into(),
        csi_driver: Some(CSI_DRIVER.into()),
        volume_handle: "pvc-missing".into(),
        volume_attributes: BTreeMap::new(),
    };
    let err = array.resolve_volume(&missing).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    let foreign = PersistentVolumeRef {
        csi_driver: Some("csi.vsphere.vmware.com".into()),
        ..missing
    };
    let err = array.resolve_volume(&foreign).await.unwrap_err();
    assert!(err.to_string().contains("csi.vsphere.vmware.com"), "{err}");

    let err = array
        .ensure_initiator_group(&esx("hostsystem-host-9", &["vmhba64"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("vmhba64"), "{err}");
}
