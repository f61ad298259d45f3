//! The Hitachi Vantara plugin against the lab's Configuration Manager REST facade served over
//! HTTPS on loopback: the copy lifecycle (resolve, host groups, map, unmap, restore, release)
//! leaves the array as it found it and ends its session; every mutating call is idempotent and
//! waits for the array's jobs; FC and iSCSI host groups are discovered on every port or taken
//! from HOSTGROUP_ID_LIST; upstream's defects stay fixed (restore onto the original host group,
//! lower-case device names, sessions ended, no silent no-op for an unknown ESXi host); a session
//! that expires mid-run is renewed once; 429/503 are retried a bounded number of times; an
//! unreachable array and wrong credentials fail fast with the setting to fix. RDM disks are
//! copied by a Thin Image clone pair followed to real completion (not `PSUP`), cancellable, and
//! deleted with its snapshot group at the session's end.

use crate::support;

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};
use co_lab::arrays::vantara::{self as facade, Vantara};
use co_lab::san::{ArrayVendor, San};
use co_storage::http::{ConnectionSettings, Secret};
use co_storage::vantara::{CSI_DRIVER, HostGroup, Settings, VantaraArray};
use co_storage::{
    ArrayCopySource, ErrorClass, EsxiHostRef, GroupKind, GroupRelease, Initiator,
    PersistentVolumeRef, StorageApi, StorageError, StorageProtocol,
};
use support::faults::Faults;
use support::{Recorder, serve_https, settings};

const ARRAY: &str = "vsp1";
const PASSWORD: &str = "s3cr3t-pw";
const ESX_FC: &str = "fc.20000025b5000001:21000025b5000001";
const ESX_FC_PORT: &str = "21:00:00:25:b5:00:00:01";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx1-4f3a";
const WORKER_WWPN: &str = "21:00:00:25:b5:00:00:99";

fn fault_response(status: u16) -> Response {
    let status = axum::http::StatusCode::from_u16(status).unwrap();
    let body = serde_json::json!({"errorSource": "", "messageId": "KART00000-E",
        "message": "injected by the test", "cause": "test", "solution": "retry"});
    (status, axum::Json(body)).into_response()
}

struct Lab {
    san: San,
    facade: Vantara,
    faults: Faults,
    port: u16,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// A VSP whose administrator made host groups for the ESXi host (FC on CL1-A, iSCSI on
    /// CL1-B) and for an OpenShift worker (CL2-A).
    async fn start() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let san = San::new(dir.path());
        san.add_array(ARRAY, ArrayVendor::Vantara).unwrap();
        let facade = Vantara::new(san.clone(), ARRAY, "admin", PASSWORD);
        facade
            .add_host_group("CL1-A", 1, "esx1-fc", &[ESX_FC_PORT.to_owned()])
            .unwrap();
        facade
            .add_host_group("CL1-B", 4, "esx1-iscsi", &[ESX_IQN.to_owned()])
            .unwrap();
        facade
            .add_host_group("CL2-A", 2, "ocp-worker-1", &[WORKER_WWPN.to_owned()])
            .unwrap();
        let faults = Faults::new(fault_response);
        let (cert, key) = support::self_signed();
        let addr = serve_https(faults.clone().layer(facade.router()), &cert, &key).await;
        Lab {
            san,
            facade,
            faults,
            port: addr.port(),
            ca_pem: cert,
            _dir: dir,
        }
    }

    fn settings(&self) -> ConnectionSettings {
        let mut s = settings("127.0.0.1".to_owned());
        s.ca_certificate_pem = Some(self.ca_pem.clone().into_bytes());
        s
    }

    fn vendor(&self) -> Settings {
        Settings {
            storage_id: None,
            port: self.port,
            host_groups: Vec::new(),
            copy_speed: Default::default(),
        }
    }

    async fn connect(&self) -> VantaraArray {
        VantaraArray::connect(&self.settings(), &self.vendor(), None)
            .await
            .unwrap()
    }

    /// A Hitachi CSI PV whose LDEV has a path to the worker's host group, as the prime PVC has.
    fn csi_pv(&self, name: &str) -> PersistentVolumeRef {
        let pv = self.sized_pv(name, 1 << 30);
        let volume = self.san.volume(ARRAY, name).unwrap();
        let ldev = facade::ldev_id(&volume).unwrap();
        self.facade.add_lu_path(ldev, "CL2-A", 2).unwrap();
        pv
    }

    /// A Hitachi CSI PV of `size` bytes with the LDEV's handle (no LU path).
    fn sized_pv(&self, name: &str, size: u64) -> PersistentVolumeRef {
        let volume = self.san.create_volume(ARRAY, name, size).unwrap();
        let ldev = facade::ldev_id(&volume).unwrap();
        PersistentVolumeRef {
            name: format!("pv-{name}"),
            csi_driver: Some(CSI_DRIVER.into()),
            volume_handle: format!(
                "01--fc--{}--{ldev}--{name}",
                facade::storage_device_id(ARRAY)
            ),
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
}

fn esx(ids: &[&str]) -> EsxiHostRef {
    EsxiHostRef {
        host_id: "hostsystem-host-1".into(),
        initiators: ids.iter().map(|i| Initiator::from_adapter_id(i)).collect(),
    }
}

/// The populator's sequence for one disk, every mutating step repeated (a journal replay),
/// checked against the SAN after each step.
#[tokio::test]
async fn a_copy_lifecycle_leaves_the_array_as_it_found_it_and_logs_out() {
    let lab = Lab::start().await;
    let array = lab.connect().await;
    let pv = lab.csi_pv("pvc-a1");

    let info = array.array_info().await.unwrap();
    assert_eq!(
        (
            info.vendor.as_str(),
            info.product.as_str(),
            info.model.as_str()
        ),
        ("Hitachi", "Vantara", facade::MODEL)
    );
    assert_eq!(info.version, facade::DKC_MICRO_VERSION);

    let volume = array.resolve_volume(&pv).await.unwrap();
    let lab_volume = lab.san.volume(ARRAY, "pvc-a1").unwrap();
    assert_eq!(
        volume.naa.as_str(),
        lab_volume.naa,
        "lower case, though the array answers upper case"
    );
    assert_ne!(lab_volume.serial, lab_volume.serial.to_lowercase());
    assert_eq!(volume.size_bytes, 1 << 30);

    let host = esx(&[ESX_FC, ESX_IQN, "vmhba64"]);
    let group = array.ensure_initiator_group(&host).await.unwrap();
    let ids: Vec<&str> = group.targets.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["CL1-A,1", "CL1-B,4"], "FC and iSCSI host groups");
    assert_eq!(group.targets[0].name, "esx1-fc");
    assert_eq!(group.targets[0].kind, GroupKind::HostGroup);
    assert_eq!(group.protocol, StorageProtocol::Mixed);
    assert!(
        group.owned.is_empty(),
        "host groups are the administrator's"
    );
    assert_eq!(array.ensure_initiator_group(&host).await.unwrap(), group);

    let originals = array.current_mappings(&volume).await.unwrap();
    assert_eq!(originals.len(), 1);
    assert_eq!(
        (originals[0].id.as_str(), originals[0].name.as_str()),
        ("CL2-A,2", "ocp-worker-1")
    );

    let mapping = array.map(&volume, &group).await.unwrap();
    assert_eq!(mapping.naa, volume.naa);
    let again = array.map(&volume, &group).await.unwrap();
    assert_eq!(
        again.lun_id, mapping.lun_id,
        "mapping twice keeps the LU path"
    );
    for initiator in [ESX_FC_PORT, ESX_IQN] {
        let visible = lab.san.visible_luns(&[initiator.to_owned()]);
        assert_eq!(visible.len(), 1, "{initiator}");
        assert_eq!(visible[0].naa, volume.naa.as_str());
    }

    array.unmap(&volume, &group).await.unwrap();
    array.unmap(&volume, &group).await.unwrap();
    assert!(lab.san.visible_luns(&[ESX_FC_PORT.to_owned()]).is_empty());
    assert!(lab.san.visible_luns(&[ESX_IQN.to_owned()]).is_empty());

    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::NotOwned
    );
    assert_eq!(
        lab.groups_of("pvc-a1"),
        ["CL2-A-hg2"],
        "the worker's path untouched"
    );
    assert_eq!(
        lab.facade.open_sessions(),
        1,
        "one session for the whole run"
    );
    array.close().await.unwrap();
    assert_eq!(lab.facade.open_sessions(), 0, "close ends the session");
}

/// Upstream restored the original mappings by re-mapping the ESXi host groups; restore must put
/// the LDEV back on the host group it came from, and on no other.
#[tokio::test]
async fn restore_puts_each_mapping_back_on_the_host_group_it_came_from() {
    let lab = Lab::start().await;
    let array = lab.connect().await;
    let volume = array.resolve_volume(&lab.csi_pv("pvc-r1")).await.unwrap();
    let originals = array.current_mappings(&volume).await.unwrap();
    let worker = lab.san.mappings(ARRAY)[0].clone();
    lab.san.unmap(ARRAY, &worker.volume, &worker.group).unwrap();

    array.restore(&volume, &originals).await.unwrap();
    array.restore(&volume, &originals).await.unwrap();
    assert_eq!(lab.groups_of("pvc-r1"), ["CL2-A-hg2"]);
    assert!(lab.san.visible_luns(&[ESX_FC_PORT.to_owned()]).is_empty());
    assert_eq!(lab.san.visible_luns(&[WORKER_WWPN.to_owned()]).len(), 1);
}

#[tokio::test]
async fn hostgroup_id_list_replaces_discovery_and_must_name_existing_groups() {
    let lab = Lab::start().await;
    let mut vendor = lab.vendor();
    vendor.host_groups = vec![HostGroup {
        port: "CL1-B".into(),
        number: 4,
    }];
    let array = VantaraArray::connect(&lab.settings(), &vendor, None)
        .await
        .unwrap();
    let group = array.ensure_initiator_group(&esx(&[ESX_FC])).await.unwrap();
    let ids: Vec<&str> = group.targets.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["CL1-B,4"]);

    vendor.host_groups = vec![HostGroup {
        port: "CL1-A".into(),
        number: 9,
    }];
    let array = VantaraArray::connect(&lab.settings(), &vendor, None)
        .await
        .unwrap();
    let err = array
        .ensure_initiator_group(&esx(&[ESX_FC]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HOSTGROUP_ID_LIST"), "{err}");
    assert!(err.to_string().contains("CL1-A,9"), "{err}");
}

/// Upstream found no host group for an unknown host and carried on to a rescan that timed out.
#[tokio::test]
async fn an_esxi_host_no_host_group_admits_is_an_error_saying_what_to_set_up() {
    let lab = Lab::start().await;
    let array = lab.connect().await;
    let err = array
        .ensure_initiator_group(&esx(&["fc.20000025b50000ff:21000025b50000ff"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("HOSTGROUP_ID_LIST"), "{err}");
    assert!(err.to_string().contains("host mode"), "{err}");
}

#[tokio::test]
async fn volumes_are_found_by_handle_and_foreign_or_undefined_ones_refused() {
    let lab = Lab::start().await;
    let array = lab.connect().await;
    let handle = |device: &str, ldev: u32| PersistentVolumeRef {
        name: "pv-x".into(),
        csi_driver: Some(CSI_DRIVER.into()),
        volume_handle: format!("01--fc--{device}--{ldev}--x"),
        volume_attributes: BTreeMap::new(),
    };
    let err = array
        .resolve_volume(&handle(&facade::storage_device_id(ARRAY), 3000))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    let err = array
        .resolve_volume(&handle("886000999999", 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("886000999999"), "{err}");
    let mut foreign = handle(&facade::storage_device_id(ARRAY), 1);
    foreign.csi_driver = Some("csi.vsphere.vmware.com".into());
    let err = array.resolve_volume(&foreign).await.unwrap_err();
    assert!(err.to_string().contains(CSI_DRIVER), "{err}");
}

#[tokio::test]
async fn the_vendor_list_connects_the_vantara_plugin() {
    let lab = Lab::start().await;
    let port = lab.port.to_string();
    let vendor = co_storage::VendorSettings::read(co_api::StorageVendorProduct::Vantara, &|flag| {
        (flag.name == co_api::contract::flags::VANTARA_STORAGE_PORT.name).then(|| port.clone())
    })
    .unwrap();
    let array = co_storage::connect(&vendor, &lab.settings(), None)
        .await
        .unwrap();
    assert_eq!(array.array_info().await.unwrap().product, "Vantara");
    array.close().await.unwrap();
    assert_eq!(lab.facade.open_sessions(), 0);
}

#[tokio::test]
async fn a_wrong_storage_id_or_port_is_named() {
    let lab = Lab::start().await;
    let mut vendor = lab.vendor();
    vendor.storage_id = Some("886000000001".into());
    let err = VantaraArray::connect(&lab.settings(), &vendor, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("STORAGE_ID"), "{err}");

    let mut s = lab.settings();
    s.hostname = format!("127.0.0.1:{}", lab.port.wrapping_add(1));
    let err = VantaraArray::connect(&s, &lab.vendor(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("STORAGE_PORT"), "{err}");
}

// ---- faults ----

#[tokio::test]
async fn an_expired_session_is_renewed_once_mid_run() {
    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = VantaraArray::connect(&lab.settings(), &lab.vendor(), Some(recorder.clone()))
        .await
        .unwrap();
    let volume = array.resolve_volume(&lab.csi_pv("pvc-s1")).await.unwrap();
    let group = array.ensure_initiator_group(&esx(&[ESX_FC])).await.unwrap();
    lab.facade.expire_sessions();
    recorder.clear();
    array.map(&volume, &group).await.unwrap();
    let statuses = recorder.statuses();
    assert_eq!(statuses[0].1, Some(401), "{statuses:?}");
    assert_eq!(
        statuses[1].0, "POST /ConfigurationManager/v1/objects/sessions",
        "{statuses:?}"
    );
    assert!(
        statuses.iter().any(
            |(op, status)| op == "POST /ConfigurationManager/v1/objects/luns"
                && *status == Some(202)
        ),
        "{statuses:?}"
    );
    assert_eq!(lab.san.visible_luns(&[ESX_FC_PORT.to_owned()]).len(), 1);
    assert_eq!(lab.facade.open_sessions(), 1);

    // Refused twice in a row: the credentials are the problem, and the message says which.
    lab.faults.push("/ldevs", 401);
    lab.faults.push("/sessions", 401);
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
    let array = lab.connect().await;
    let pv = lab.csi_pv("pvc-b1");
    support::assert_busy_answers_retried_a_bounded_number_of_times(
        &array,
        &lab.faults,
        &pv,
        "/ldevs",
        "/ldevs",
    )
    .await;
}

#[tokio::test]
async fn a_failed_job_fails_the_step_with_the_arrays_message() {
    let lab = Lab::start().await;
    let array = lab.connect().await;
    let volume = array.resolve_volume(&lab.csi_pv("pvc-j1")).await.unwrap();
    let mut group = array.ensure_initiator_group(&esx(&[ESX_FC])).await.unwrap();
    // A host group that vanished after it was journaled: the array's job fails.
    group.targets[0].id = "CL1-A,7".into();
    let err = array.map(&volume, &group).await.unwrap_err();
    assert!(err.to_string().contains("KART40052-E"), "{err}");
    assert!(err.to_string().contains("CL1-A,7"), "{err}");
}

#[tokio::test]
async fn an_unreachable_array_fails_fast_and_says_what_to_check() {
    support::assert_unreachable_fails_fast(|s, port| async move {
        // The port travels in STORAGE_PORT, not in the hostname.
        let s = ConnectionSettings {
            hostname: "127.0.0.1".to_owned(),
            ..s
        };
        let vendor = Settings {
            storage_id: None,
            port,
            host_groups: Vec::new(),
            copy_speed: Default::default(),
        };
        VantaraArray::connect(&s, &vendor, None).await
    })
    .await;
}

#[tokio::test]
async fn wrong_credentials_name_the_secret_keys() {
    let lab = Lab::start().await;
    let mut wrong = lab.settings();
    wrong.credentials.password = Secret::new("nope");
    let err = VantaraArray::connect(&wrong, &lab.vendor(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::AuthRefused { status: 401, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("STORAGE_PASSWORD"), "{err}");
    assert_eq!(err.class(), ErrorClass::Permanent);

    let mut no_user = lab.settings();
    no_user.credentials.username = String::new();
    let err = VantaraArray::connect(&no_user, &lab.vendor(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("STORAGE_USERNAME"), "{err}");
    assert_eq!(lab.facade.open_sessions(), 0);
}

/// An RDM disk is copied by a clone pair named after the session: `copy` returns only once the
/// S-VOL holds the bytes (the lab writes them at 100 %, after `PSUP`), progress rises to 100, a
/// re-run adopts the pair, `end` deletes pair and group, and the pace is `COPY_SPEED`.
#[tokio::test]
async fn an_rdm_disk_is_copied_by_a_clone_pair_followed_to_completion_then_deleted() {
    let lab = Lab::start().await;
    let rdm = lab.san.create_volume(ARRAY, "rdm-src", 1 << 20).unwrap();
    std::fs::write(&rdm.backing_path, vec![0xa5; 1 << 20]).unwrap();
    let mut vendor = lab.vendor();
    vendor.copy_speed = co_storage::vantara::CopySpeed::Medium;
    let array = VantaraArray::connect(&lab.settings(), &vendor, None)
        .await
        .unwrap();
    let target = array
        .resolve_volume(&lab.sized_pv("pvc-r1", 1 << 20))
        .await
        .unwrap();
    let copier = array.array_copy().unwrap();
    let source = ArrayCopySource::Rdm {
        device_name: rdm.naa.to_ascii_uppercase(),
        lun_uuid: String::new(),
    };
    assert!(copier.supports(&source));
    assert!(!copier.supports(&ArrayCopySource::VVol {
        vvol_id: "rfc4122.x".into()
    }));
    let session = copier.session(&source, &target);
    assert_eq!(
        session,
        copier.session(&source, &target),
        "derived, not random"
    );

    let seen = std::sync::Mutex::new(Vec::new());
    copier
        .copy(&session, &|p| seen.lock().unwrap().push(p))
        .await
        .unwrap();
    let seen = seen.into_inner().unwrap();
    // medium: 25 % per look at the copy, so 25, 50, 75 and then 100 at PSUS.
    assert_eq!(seen, [0, 25, 50, 75, 100], "progress from concordanceRate");
    let bytes = std::fs::read(lab.san.volume(ARRAY, "pvc-r1").unwrap().backing_path).unwrap();
    assert_eq!(bytes, vec![0xa5; 1 << 20], "copied when copy returned");
    let pairs = lab.facade.pairs();
    assert_eq!(pairs.len(), 1, "kept until end: {pairs:?}");
    assert_eq!(pairs[0].3, "PSUS");

    // Replayed, ended; Thin Image needs the same size.
    let small = array
        .resolve_volume(&lab.sized_pv("pvc-r2", 1 << 19))
        .await
        .unwrap();
    support::assert_copy_replays_ends_and_checks_sizes(copier, &session, &small, || {
        lab.facade.pairs().len()
    })
    .await;

    // An RDM of another array's LUN is refused, naming the device.
    let foreign = ArrayCopySource::Rdm {
        device_name: "naa.600a098038303053453f463045727a4b".into(),
        lun_uuid: String::new(),
    };
    let err = copier
        .copy(&copier.session(&foreign, &target), &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("600a0980"), "{err}");
    array.close().await.unwrap();
}

/// A copy dropped mid-clone (cancellation or a killed run) leaves a pair; `end` deletes it, the
/// target keeps what it had, and a fresh run copies everything.
#[tokio::test]
async fn a_clone_abandoned_mid_copy_is_ended_and_a_rerun_copies_again() {
    let lab = Lab::start().await;
    let rdm = lab.san.create_volume(ARRAY, "rdm-src", 1 << 20).unwrap();
    std::fs::write(&rdm.backing_path, vec![0x3c; 1 << 20]).unwrap();
    let array = lab.connect().await;
    let target = array
        .resolve_volume(&lab.sized_pv("pvc-r1", 1 << 20))
        .await
        .unwrap();
    let copier = array.array_copy().unwrap();
    let source = ArrayCopySource::Rdm {
        device_name: rdm.naa.clone(),
        lun_uuid: String::new(),
    };
    let session = copier.session(&source, &target);
    let (started, mut copying) = tokio::sync::watch::channel(0u8);
    let report = move |p: u8| {
        started.send_replace(p);
    };
    let copy = copier.copy(&session, &report);
    tokio::select! {
        result = copy => panic!("slower copy finished before it was abandoned: {result:?}"),
        _ = copying.wait_for(|p| *p > 0) => {}
    }
    let pairs = lab.facade.pairs();
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].3, "PSUP", "abandoned mid-copy");
    copier.end(&session).await.unwrap();
    assert!(lab.facade.pairs().is_empty());
    let bytes = std::fs::read(lab.san.volume(ARRAY, "pvc-r1").unwrap().backing_path).unwrap();
    assert_eq!(bytes, vec![0; 1 << 20], "a deleted clone never lands");

    copier.copy(&session, &|_| {}).await.unwrap();
    copier.end(&session).await.unwrap();
    let bytes = std::fs::read(lab.san.volume(ARRAY, "pvc-r1").unwrap().backing_path).unwrap();
    assert_eq!(bytes, vec![0x3c; 1 << 20]);
    assert!(lab.facade.pairs().is_empty());
    array.close().await.unwrap();
}
