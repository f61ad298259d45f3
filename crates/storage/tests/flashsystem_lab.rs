//! The FlashSystem plugin against the lab's Storage Virtualize REST facade served over HTTPS on
//! loopback: the copy lifecycle (resolve, host, map, unmap, restore, release) leaves the array as
//! it found it; every mutating call is idempotent; administrators' hosts are used, never changed;
//! upstream's defects stay fixed (volume protection checked where it blocks and before anything
//! changes, NVMe adapters refused by name, original maps restored, FlashCopy finished before it
//! counts); the token survives expiry with one new `auth`; 429/503 are retried a bounded number of
//! times; an unreachable array and wrong credentials fail fast with the setting to fix.

use crate::support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::response::{IntoResponse, Response};
use co_lab::arrays::flashsystem::{FlashSystem, csi_volume_handle};
use co_lab::san::{ArrayVendor, GroupSpec};
use co_storage::flashsystem::{CSI_DRIVER, FlashSystemArray};
use co_storage::{
    ArrayCopySource, EsxiHostRef, GroupKind, GroupRelease, Initiator, PersistentVolumeRef,
    StorageApi, StorageError,
};
use support::Recorder;

const ARRAY: &str = "fs1";
const WORKER: &str = "ocp-worker-1";
const WORKER_IQN: &str = "iqn.2020-01.io.openshift:worker-1";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx1-4f3a";
const ESX_FC: &str = "fc.20000025b5000001:21000025b5000001";
const ESX_WWPN: &str = "21000025B5000001";

/// The vendor's error answer for an injected status.
fn fault_response(status: u16) -> Response {
    (
        axum::http::StatusCode::from_u16(status).unwrap(),
        "injected by the test",
    )
        .into_response()
}
type Lab = support::FacadeLab<FlashSystem>;

impl Lab {
    async fn start() -> Lab {
        let array = (ARRAY, ArrayVendor::FlashSystem, "admin");
        let make = |san, user: &str, password: &str| FlashSystem::new(san, ARRAY, user, password);
        Lab::serve(array, fault_response, make, FlashSystem::router).await
    }

    async fn connect(&self, recorder: Option<Arc<Recorder>>) -> FlashSystemArray {
        FlashSystemArray::connect(
            &self.settings(),
            &Default::default(),
            recorder.map(|r| r as _),
        )
        .await
        .unwrap()
    }

    /// An IBM block CSI PV whose vdisk is mapped to an OpenShift worker host, as the prime PVC is.
    fn csi_pv(&self, name: &str, size: u64) -> PersistentVolumeRef {
        let volume = self.san.create_volume(ARRAY, name, size).unwrap();
        if self.san.group(ARRAY, WORKER).is_none() {
            self.san
                .create_group(
                    ARRAY,
                    GroupSpec {
                        name: WORKER.into(),
                        initiators: vec![WORKER_IQN.into()],
                        protocol: Some("scsi".into()),
                        os_type: Some("generic".into()),
                    },
                )
                .unwrap();
        }
        self.san.map(ARRAY, name, WORKER).unwrap();
        PersistentVolumeRef {
            name: format!("pv-{name}"),
            csi_driver: Some(CSI_DRIVER.into()),
            volume_handle: csi_volume_handle(&volume),
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

    fn group_names(&self) -> Vec<String> {
        self.san.groups(ARRAY).into_iter().map(|g| g.name).collect()
    }

    /// An administrator's host holding `port`.
    fn admin_host(&self, name: &str, port: &str) {
        self.san
            .create_group(
                ARRAY,
                GroupSpec {
                    name: name.into(),
                    initiators: vec![port.into()],
                    protocol: Some("scsi".into()),
                    os_type: Some("generic".into()),
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
#[tokio::test]
async fn a_copy_lifecycle_leaves_the_array_as_it_found_it() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let pv = lab.csi_pv("pvc-a1", 1 << 30);
    let info = array.array_info().await.unwrap();
    assert_eq!(
        (info.vendor.as_str(), info.product.as_str()),
        ("IBM", "FlashSystem")
    );
    assert_eq!(info.model, co_lab::arrays::flashsystem::PRODUCT_NAME);
    assert_eq!(info.version, "8.6.0.4");

    let volume = array.resolve_volume(&pv).await.unwrap();
    let lab_volume = lab.san.volume(ARRAY, "pvc-a1").unwrap();
    assert_eq!(volume.naa.as_str(), lab_volume.naa);
    assert_eq!(volume.name, "pvc-a1");
    assert_eq!(volume.size_bytes, 1 << 30);

    // vmhba64 (an NVMe HBA without an initiator name) is skipped, not registered as an iSCSI name.
    let host = esx("hostsystem-host-1", &[ESX_IQN, ESX_FC, "vmhba64"]);
    let group = array.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(group.targets[0].name, "xcopy-hostsystem-host-1");
    assert_eq!(group.targets[0].kind, GroupKind::Host);
    assert_eq!(group.protocol, co_storage::StorageProtocol::Mixed);
    assert_eq!(group.owned, group.targets, "created now, so owned");
    let again = array.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(again.targets, group.targets, "ensure is idempotent");
    let lab_host = lab.san.group(ARRAY, "xcopy-hostsystem-host-1").unwrap();
    assert_eq!(lab_host.initiators, [ESX_WWPN, ESX_IQN]);

    let originals = array.current_mappings(&volume).await.unwrap();
    assert_eq!(originals.len(), 1);
    assert_eq!(
        (originals[0].kind, originals[0].name.as_str()),
        (GroupKind::Host, WORKER)
    );

    support::map_twice_and_see_one_lun(&array, &lab.san, &volume, &group, &[ESX_IQN]).await;

    support::unmap_twice_and_see_none(&array, &lab.san, &volume, &group, ESX_IQN).await;

    // Upstream cleared its mapping context at unmap, so its restore did nothing: a lost original
    // map comes back here, and a journaled xcopy host of a crashed run is never restored.
    lab.san.unmap(ARRAY, "pvc-a1", WORKER).unwrap();
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
    array.close().await.unwrap();
}

#[tokio::test]
async fn an_administrators_host_is_used_and_kept() {
    let lab = Lab::start().await;
    lab.admin_host("esx-a", ESX_WWPN);
    let array = lab.connect(None).await;
    let volume = array
        .resolve_volume(&lab.csi_pv("pvc-h1", 1 << 20))
        .await
        .unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-7", &[ESX_FC]))
        .await
        .unwrap();
    assert_eq!(group.targets[0].name, "esx-a");
    assert!(group.owned.is_empty(), "never owned");
    array.map(&volume, &group).await.unwrap();
    array.unmap(&volume, &group).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::NotOwned
    );
    assert_eq!(lab.group_names(), ["esx-a", WORKER]);
}

/// A host of an earlier run that still holds a mapping of another copy is kept, then deleted
/// once that copy unmaps.
#[tokio::test]
async fn a_shared_host_is_kept_while_another_copy_uses_it() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let a = array
        .resolve_volume(&lab.csi_pv("pvc-s1", 1 << 20))
        .await
        .unwrap();
    let b = array
        .resolve_volume(&lab.csi_pv("pvc-s2", 1 << 20))
        .await
        .unwrap();
    let host = esx("hostsystem-host-2", &[ESX_IQN]);
    let first = array.ensure_initiator_group(&host).await.unwrap();
    let second = array.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(
        second.owned, second.targets,
        "an xcopy host is ours to release"
    );
    array.map(&a, &first).await.unwrap();
    array.map(&b, &second).await.unwrap();
    array.unmap(&a, &first).await.unwrap();
    assert_eq!(
        array.release_group(&first).await.unwrap(),
        GroupRelease::InUse
    );
    array.unmap(&b, &second).await.unwrap();
    assert_eq!(
        array.release_group(&second).await.unwrap(),
        GroupRelease::Deleted
    );
}

/// Upstream refused to start whenever system-wide protection was on; here it fails before
/// anything is mapped only when it applies to the volume's pool, and says how to lift it.
#[tokio::test]
async fn volume_protection_fails_early_with_the_remedy_only_where_it_blocks_unmapping() {
    let lab = Lab::start().await;
    lab.facade.set_volume_protection(true, true, 15);
    let array = lab.connect(None).await;
    let volume = array
        .resolve_volume(&lab.csi_pv("pvc-p1", 1 << 20))
        .await
        .unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-3", &[ESX_IQN]))
        .await
        .unwrap();
    let err = array.map(&volume, &group).await.unwrap_err();
    assert!(matches!(err, StorageError::Config { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("chmdiskgrp -vdiskprotectionenabled no Pool0"),
        "{text}"
    );
    assert!(text.contains("15 minutes"), "{text}");
    assert!(
        lab.san.visible_luns(&[ESX_IQN.to_owned()]).is_empty(),
        "nothing was mapped"
    );
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );

    // Protection on for the system but not for the pool does not apply.
    lab.facade.set_volume_protection(true, false, 15);
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-3", &[ESX_IQN]))
        .await
        .unwrap();
    array.map(&volume, &group).await.unwrap();
    // Turned on mid-copy: the unmap failure says the same.
    lab.facade.set_volume_protection(true, true, 15);
    let err = array.unmap(&volume, &group).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("chsystem -vdiskprotectionenabled no"),
        "{err}"
    );
}

/// RDM disks are copied by a FlashCopy mapping named after the session; the copy returns only
/// at 100%, a re-run adopts the mapping, and `end` removes it.
#[tokio::test]
async fn an_rdm_disk_is_copied_by_flashcopy_and_the_mapping_removed() {
    let lab = Lab::start().await;
    // Protection does not matter: an array-side copy never unmaps.
    lab.facade.set_volume_protection(true, true, 15);
    let rdm = lab.san.create_volume(ARRAY, "rdm-src", 1 << 20).unwrap();
    std::fs::write(&rdm.backing_path, vec![0xa5; 1 << 20]).unwrap();
    let array = lab.connect(None).await;
    let target = array
        .resolve_volume(&lab.csi_pv("pvc-r1", 1 << 20))
        .await
        .unwrap();
    let copier = array.array_copy().unwrap();
    let source = ArrayCopySource::Rdm {
        device_name: "vml.0200000000600507".into(),
        lun_uuid: format!("0200000000{}323134352020", rdm.serial.to_ascii_lowercase()),
    };
    assert!(copier.supports(&source));
    assert!(!copier.supports(&ArrayCopySource::VVol {
        vvol_id: "x".into()
    }));
    let session = copier.session(&source, &target);
    assert_eq!(
        session,
        copier.session(&source, &target),
        "derived, not random"
    );

    let seen = Mutex::new(Vec::new());
    copier
        .copy(&session, &|p| seen.lock().unwrap().push(p))
        .await
        .unwrap();
    let seen = seen.into_inner().unwrap();
    assert!(seen.len() > 3, "progress from the mapping: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&100));
    let bytes = std::fs::read(lab.san.volume(ARRAY, "pvc-r1").unwrap().backing_path).unwrap();
    assert_eq!(bytes, vec![0xa5; 1 << 20]);
    assert_eq!(
        lab.facade.fcmaps().len(),
        1,
        "kept until end: {:?}",
        lab.facade.fcmaps()
    );

    // Replayed, ended; FlashCopy needs the same size.
    let small = array
        .resolve_volume(&lab.csi_pv("pvc-r2", 1 << 19))
        .await
        .unwrap();
    support::assert_copy_replays_ends_and_checks_sizes(copier, &session, &small, || {
        lab.facade.fcmaps().len()
    })
    .await;
}

/// The vendor list connects this plugin for `flashsystem` (it used to answer "not implemented").
#[tokio::test]
async fn the_vendor_list_connects_the_flashsystem_plugin() {
    let lab = Lab::start().await;
    let vendor =
        co_storage::VendorSettings::read(co_api::StorageVendorProduct::FlashSystem, &|_| None)
            .unwrap();
    let array = co_storage::connect(&vendor, &lab.settings(), None)
        .await
        .unwrap();
    assert_eq!(array.array_info().await.unwrap().vendor, "IBM");
    assert!(array.array_copy().is_some(), "RDM by FlashCopy");
    let mut url = lab.settings();
    url.hostname = format!("https://{}", lab.hostname);
    co_storage::connect(&vendor, &url, None).await.unwrap();
}

// ---- faults ----

#[tokio::test]
async fn an_expired_token_is_renewed_once_mid_run() {
    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    let volume = array
        .resolve_volume(&lab.csi_pv("pvc-t1", 1 << 20))
        .await
        .unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_IQN]))
        .await
        .unwrap();
    assert_eq!(lab.facade.live_tokens(), 1, "one token for the whole run");
    lab.facade.expire_tokens();
    recorder.clear();
    array.current_mappings(&volume).await.unwrap();
    let calls: Vec<(String, Option<u16>)> = recorder
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.status))
        .collect();
    assert_eq!(calls[0].1, Some(403), "{calls:?}");
    assert_eq!(calls[1].0, "/rest/v1/auth", "{calls:?}");
    assert_eq!(calls[2].1, Some(200), "{calls:?}");
    assert!(
        recorder.requests()[1].body.is_none(),
        "credentials travel in headers only"
    );

    lab.faults.push("/rmvdiskhostmap", 401);
    array.map(&volume, &group).await.unwrap();
    array.unmap(&volume, &group).await.unwrap();
    assert_eq!(lab.faults.pending(), 0);
    assert!(lab.san.visible_luns(&[ESX_IQN.to_owned()]).is_empty());

    // Refused twice in a row: the credentials are the problem, and the message says which.
    lab.faults.push("/lsvdiskhostmap", 403);
    lab.faults.push("/auth", 403);
    let err = array.current_mappings(&volume).await.unwrap_err();
    assert!(
        matches!(err, StorageError::AuthRefused { status: 403, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("STORAGE_PASSWORD"), "{err}");
}

#[tokio::test]
async fn busy_answers_are_retried_a_bounded_number_of_times() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let pv = lab.csi_pv("pvc-b1", 1 << 20);
    support::assert_busy_answers_retried_a_bounded_number_of_times(
        &array,
        &lab.faults,
        &pv,
        "/lsvdisk",
        "/lsvdiskhostmap",
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_array_fails_fast_and_says_what_to_check() {
    support::assert_unreachable_fails_fast(|s, _port| async move {
        FlashSystemArray::connect(&s, &Default::default(), None).await
    })
    .await;
}

#[tokio::test]
async fn failures_say_what_to_fix_and_are_classed() {
    let lab = Lab::start().await;
    support::assert_login_failures_say_what_to_fix(&lab.settings(), 403, |s| async move {
        FlashSystemArray::connect(&s, &Default::default(), None).await
    })
    .await;

    let array = lab.connect(None).await;
    let missing = PersistentVolumeRef {
        name: "pv-x".into(),
        csi_driver: Some(CSI_DRIVER.into()),
        volume_handle: "SVC:99;6005076000000000000000000000FFFF".into(),
        volume_attributes: BTreeMap::new(),
    };
    let err = array.resolve_volume(&missing).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    let foreign = PersistentVolumeRef {
        csi_driver: Some("csi.vsphere.vmware.com".into()),
        ..missing.clone()
    };
    let err = array.resolve_volume(&foreign).await.unwrap_err();
    assert!(err.to_string().contains("csi.vsphere.vmware.com"), "{err}");
    let not_ibm = PersistentVolumeRef {
        volume_handle: "pvc-1234".into(),
        ..missing
    };
    let err = array.resolve_volume(&not_ibm).await.unwrap_err();
    assert!(err.to_string().contains("pvc-1234"), "{err}");

    // Upstream registered NVMe adapters as iSCSI names; they are refused by name.
    let err = array
        .ensure_initiator_group(&esx(
            "hostsystem-host-5",
            &["nqn.2014-08.com.vmware:nvme:esx5", "vmhba64"],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
    assert!(
        err.to_string().contains("nqn.2014-08.com.vmware:nvme:esx5"),
        "{err}"
    );
    assert_eq!(lab.group_names(), Vec::<String>::new(), "nothing created");
}

/// Preflight reads protection as the copy meets it: on for the system and a pool, it is an unmet
/// prerequisite naming the pool's command; on for the system only, it is met. Nothing is created.
#[tokio::test]
async fn readiness_reports_volume_protection_with_the_pool_to_change() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let host = esx("hostsystem-host-3", &[ESX_IQN]);
    lab.facade.set_volume_protection(true, true, 15);
    let readiness = array.readiness(std::slice::from_ref(&host)).await.unwrap();
    let protection = readiness
        .prerequisites
        .iter()
        .find(|p| p.name == "volume protection")
        .expect("the plugin reads volume protection");
    assert!(!protection.satisfied, "{protection:?}");
    assert!(protection.detail.contains("Pool0"), "{}", protection.detail);
    assert!(
        protection
            .remedy
            .contains("chmdiskgrp -vdiskprotectionenabled no Pool0"),
        "{}",
        protection.remedy
    );
    // No host holds the ESXi host's IQN yet, and readiness does not create one.
    assert_eq!(readiness.initiators[0].known, Some(Vec::new()));
    assert_eq!(
        readiness.initiators[0].unknown,
        vec![Initiator::from_adapter_id(ESX_IQN)]
    );
    assert!(
        lab.san.groups(ARRAY).is_empty(),
        "readiness created nothing"
    );

    lab.facade.set_volume_protection(true, false, 15);
    let readiness = array.readiness(&[host]).await.unwrap();
    assert!(
        readiness.prerequisites.iter().all(|p| p.satisfied),
        "{:?}",
        readiness.prerequisites
    );
}
