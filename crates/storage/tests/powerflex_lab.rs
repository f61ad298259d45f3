//! The PowerFlex plugin against the lab's PowerFlex gateway facade served over HTTPS on loopback:
//! the copy lifecycle (resolve, SDC, map, unmap, restore, release) leaves the system as it found it
//! and logs out; every mutating call is idempotent; the worker node's SDC mapping is never removed
//! (upstream unmapped every SDC); an SDC with another OS type but the host's GUID is used; the
//! session survives expiry (401) with one re-login; 429/503 are retried a bounded number of times;
//! an unreachable gateway, wrong credentials, an unknown system id and a host without an SDC fail
//! fast with the setting to fix.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use co_lab::arrays::powerflex::PowerFlex;
use co_lab::san::{ArrayVendor, San};
use co_storage::http::ConnectionSettings;
use co_storage::powerflex::{CSI_DRIVER, PowerFlexArray, Settings};
use co_storage::{
    EsxiHostRef, GroupKind, GroupRelease, Initiator, PersistentVolumeRef, StorageApi, StorageError,
    StorageProtocol,
};
use support::faults::Faults;
use support::{Recorder, serve_https, settings};

const ARRAY: &str = "pflex1";
const PASSWORD: &str = "s3cr3t-pw";
const ESX_GUID: &str = "1C2A7D4E-0B5F-4C3D-9E8F-001122334455";
const WORKER_GUID: &str = "7A6B5C4D-3E2F-4A1B-8C9D-AABBCCDDEEFF";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx1-4f3a";

fn fault_response(status: u16) -> Response {
    let status = axum::http::StatusCode::from_u16(status).unwrap();
    let body = serde_json::json!({"message": "injected by the test",
        "httpStatusCode": status.as_u16(), "errorCode": 0});
    (status, axum::Json(body)).into_response()
}

struct Lab {
    san: San,
    facade: PowerFlex,
    faults: Faults,
    hostname: String,
    ca_pem: String,
    esx_sdc: String,
    worker_sdc: String,
    _dir: tempfile::TempDir,
}

impl Lab {
    async fn start() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let san = San::new(dir.path());
        san.add_array(ARRAY, ArrayVendor::PowerFlex).unwrap();
        let facade = PowerFlex::new(san.clone(), ARRAY, "admin", PASSWORD);
        let esx_sdc = facade.register_sdc("esx-1", ESX_GUID, "Esx").unwrap();
        let worker_sdc = facade
            .register_sdc("ocp-worker-1", WORKER_GUID, "Linux")
            .unwrap();
        let faults = Faults::new(fault_response);
        let (cert, key) = support::self_signed();
        let addr = serve_https(faults.clone().layer(facade.router()), &cert, &key).await;
        Lab {
            san,
            facade,
            faults,
            hostname: format!("127.0.0.1:{}", addr.port()),
            ca_pem: cert,
            esx_sdc,
            worker_sdc,
            _dir: dir,
        }
    }

    fn settings(&self) -> ConnectionSettings {
        let mut s = settings(self.hostname.clone());
        s.ca_certificate_pem = Some(self.ca_pem.clone().into_bytes());
        s
    }

    fn vendor(&self) -> Settings {
        Settings {
            system_id: self.facade.system_id().to_owned(),
        }
    }

    async fn connect(&self, recorder: Option<Arc<Recorder>>) -> PowerFlexArray {
        PowerFlexArray::connect(&self.settings(), &self.vendor(), recorder.map(|r| r as _))
            .await
            .unwrap()
    }

    /// A CSI PowerFlex PV whose volume is mapped to the OpenShift worker's SDC, as the prime PVC is.
    fn csi_pv(&self, name: &str) -> PersistentVolumeRef {
        let csi = self.facade.create_csi_volume(name, 1 << 30).unwrap();
        self.san
            .map(ARRAY, name, &format!("sdc-{}", self.worker_sdc))
            .unwrap();
        PersistentVolumeRef {
            name: format!("pv-{name}"),
            csi_driver: Some(csi.driver.into()),
            volume_handle: csi.volume_handle,
            volume_attributes: csi.volume_attributes,
        }
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
async fn copy_lifecycle(lab: &Lab, array: &PowerFlexArray) {
    let pv = lab.csi_pv("pvc-a1");
    assert!(
        array.requires_sdc(),
        "ESXi must report SDC GUIDs for PowerFlex"
    );
    let info = array.array_info().await.unwrap();
    assert_eq!(
        (
            info.vendor.as_str(),
            info.product.as_str(),
            info.model.as_str()
        ),
        ("Dell", "PowerFlex", ARRAY)
    );
    assert_eq!(info.version, co_lab::arrays::powerflex::API_VERSION);

    let volume = array.resolve_volume(&pv).await.unwrap();
    let lab_volume = lab.san.volume(ARRAY, "pvc-a1").unwrap();
    assert_eq!(volume.naa.as_str(), lab_volume.naa);
    assert!(
        volume.naa.as_str().starts_with("eui."),
        "{}",
        volume.naa.as_str()
    );
    assert_eq!(volume.id, co_lab::arrays::powerflex::volume_id(&lab_volume));
    assert_eq!(volume.size_bytes, 1 << 30);

    // The iSCSI adapter is not how ESXi reaches PowerFlex: the SDC GUID is.
    let host = esx(
        "hostsystem-host-1",
        &[ESX_IQN, &ESX_GUID.to_ascii_lowercase()],
    );
    let group = array.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(group.targets.len(), 1);
    assert_eq!(
        (
            group.targets[0].kind,
            group.targets[0].id.as_str(),
            group.targets[0].name.as_str()
        ),
        (GroupKind::Sdc, lab.esx_sdc.as_str(), "esx-1")
    );
    assert_eq!(group.protocol, StorageProtocol::Sdc);
    assert!(group.owned.is_empty(), "nothing is created on PowerFlex");
    assert_eq!(array.ensure_initiator_group(&host).await.unwrap(), group);

    let originals = array.current_mappings(&volume).await.unwrap();
    assert_eq!(originals.len(), 1);
    assert_eq!(
        (originals[0].kind, originals[0].id.as_str()),
        (GroupKind::Sdc, lab.worker_sdc.as_str())
    );

    let mapping = array.map(&volume, &group).await.unwrap();
    assert_eq!(mapping.naa, volume.naa);
    assert_eq!(mapping.lun_id, None, "an SDC mapping has no LUN");
    array.map(&volume, &group).await.unwrap();
    let visible = lab.san.visible_luns(&[ESX_GUID.to_owned()]);
    assert_eq!(visible.len(), 1);
    assert_eq!(visible[0].naa, volume.naa.as_str());

    array.unmap(&volume, &group).await.unwrap();
    array.unmap(&volume, &group).await.unwrap();
    assert!(lab.san.visible_luns(&[ESX_GUID.to_owned()]).is_empty());
    assert_eq!(
        lab.facade.mapped_sdcs("pvc-a1"),
        std::slice::from_ref(&lab.worker_sdc),
        "the worker node keeps its mapping through the copy (upstream unmapped every SDC)"
    );

    array.restore(&volume, &originals).await.unwrap();
    array.restore(&volume, &originals).await.unwrap();
    assert_eq!(
        lab.facade.mapped_sdcs("pvc-a1"),
        std::slice::from_ref(&lab.worker_sdc)
    );
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::NotOwned
    );
    assert_eq!(lab.san.groups(ARRAY).len(), 2, "the SDCs stay registered");
}

#[tokio::test]
async fn a_copy_lifecycle_leaves_the_system_as_it_found_it_and_logs_out() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    copy_lifecycle(&lab, &array).await;
    assert_eq!(
        lab.facade.open_sessions(),
        1,
        "one session for the whole run"
    );
    array.close().await.unwrap();
    assert_eq!(lab.facade.open_sessions(), 0, "close logs out");
}

#[tokio::test]
async fn the_vendor_list_connects_the_powerflex_plugin() {
    let lab = Lab::start().await;
    let vendor = co_storage::vendor::VendorSettings::PowerFlex(lab.vendor());
    let array = co_storage::vendor::connect(&vendor, &lab.settings(), None)
        .await
        .unwrap();
    assert!(array.requires_sdc());
    assert_eq!(array.array_info().await.unwrap().product, "PowerFlex");
    array.close().await.unwrap();
}

#[tokio::test]
async fn a_restore_maps_a_lost_original_sdc_again_and_a_crash_left_mapping_is_adopted() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let volume = array.resolve_volume(&lab.csi_pv("pvc-r1")).await.unwrap();
    let originals = array.current_mappings(&volume).await.unwrap();
    // Someone (upstream's allSdcs cleanup, an operator) removed the worker's mapping.
    lab.san
        .unmap(ARRAY, "pvc-r1", &format!("sdc-{}", lab.worker_sdc))
        .unwrap();
    array.restore(&volume, &originals).await.unwrap();
    assert_eq!(
        lab.facade.mapped_sdcs("pvc-r1"),
        std::slice::from_ref(&lab.worker_sdc)
    );

    // A crashed run mapped the ESXi SDC already: map adopts it, unmap removes only it.
    lab.san
        .map(ARRAY, "pvc-r1", &format!("sdc-{}", lab.esx_sdc))
        .unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_GUID]))
        .await
        .unwrap();
    array.map(&volume, &group).await.unwrap();
    array.unmap(&volume, &group).await.unwrap();
    assert_eq!(
        lab.facade.mapped_sdcs("pvc-r1"),
        std::slice::from_ref(&lab.worker_sdc)
    );
}

#[tokio::test]
async fn an_sdc_is_matched_by_guid_whatever_os_type_the_gateway_reports() {
    let lab = Lab::start().await;
    let guid = "0F0E0D0C-0B0A-4908-8706-050403020100";
    let id = lab.facade.register_sdc("esx-odd", guid, "Linux").unwrap();
    let array = lab.connect(None).await;
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-9", &[guid]))
        .await
        .unwrap();
    assert_eq!(group.targets[0].id, id);
}

#[tokio::test]
async fn a_volume_is_found_by_its_volume_handle_too() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let mut pv = lab.csi_pv("pvc-h1");
    pv.volume_attributes.clear();
    let volume = array.resolve_volume(&pv).await.unwrap();
    assert_eq!(volume.name, "pvc-h1");
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_mid_run() {
    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    let volume = array.resolve_volume(&lab.csi_pv("pvc-s1")).await.unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_GUID]))
        .await
        .unwrap();
    lab.facade.expire_sessions();
    recorder.clear();
    array.map(&volume, &group).await.unwrap();
    let statuses = recorder.statuses();
    assert_eq!(statuses[0].1, Some(401), "{statuses:?}");
    assert_eq!(statuses[1].0, "GET /api/login", "{statuses:?}");
    assert_eq!(
        statuses[2].1,
        Some(200),
        "the mapping went through: {statuses:?}"
    );
    assert_eq!(lab.san.visible_luns(&[ESX_GUID.to_owned()]).len(), 1);

    // Refused twice in a row: the credentials are the problem, and the message says which.
    lab.faults.push("/action/removeMappedSdc", 401);
    lab.faults.push("/api/login", 401);
    let err = array.unmap(&volume, &group).await.unwrap_err();
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
    support::assert_busy_answers_retried_a_bounded_number_of_times(
        &array,
        &lab.faults,
        &pv,
        "/instances/Volume::",
        "/instances/Volume::",
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_gateway_fails_fast_and_says_what_to_check() {
    support::assert_unreachable_fails_fast(|s, _port| async move {
        let vendor = Settings {
            system_id: "0000000000000001".into(),
        };
        PowerFlexArray::connect(&s, &vendor, None).await
    })
    .await;
}

#[tokio::test]
async fn failures_say_what_to_fix_and_are_classed() {
    let lab = Lab::start().await;
    let vendor = lab.vendor();
    support::assert_login_failures_say_what_to_fix(&lab.settings(), 401, |s| {
        let vendor = vendor.clone();
        async move { PowerFlexArray::connect(&s, &vendor, None).await }
    })
    .await;

    let unknown_system = Settings {
        system_id: "00000000deadbeef".into(),
    };
    let err = PowerFlexArray::connect(&lab.settings(), &unknown_system, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("POWERFLEX_SYSTEM_ID"), "{err}");
    assert!(
        err.to_string().contains(lab.facade.system_id()),
        "names the known systems: {err}"
    );

    let array = lab.connect(None).await;
    let missing = PersistentVolumeRef {
        name: "pv-x".into(),
        csi_driver: Some(CSI_DRIVER.into()),
        volume_handle: String::new(),
        volume_attributes: BTreeMap::from([("Name".to_owned(), "pvc-missing".to_owned())]),
    };
    let err = array.resolve_volume(&missing).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("pvc-missing"), "{err}");
    let foreign = PersistentVolumeRef {
        csi_driver: Some("csi.vsphere.vmware.com".into()),
        ..missing.clone()
    };
    let err = array.resolve_volume(&foreign).await.unwrap_err();
    assert!(err.to_string().contains("csi.vsphere.vmware.com"), "{err}");
    let other_system = PersistentVolumeRef {
        volume_handle: "00000000deadbeef-0000000000000001".into(),
        volume_attributes: BTreeMap::new(),
        ..missing
    };
    let err = array.resolve_volume(&other_system).await.unwrap_err();
    assert!(err.to_string().contains("00000000deadbeef"), "{err}");

    // No scini adapter: the message says to install the SDC (upstream: a bare "no match").
    let err = array
        .ensure_initiator_group(&esx("hostsystem-host-5", &[ESX_IQN]))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("SDC"), "{err}");
    // A GUID the system does not know: not found, naming the GUID.
    let stranger = "99999999-9999-4999-8999-999999999999";
    let err = array
        .ensure_initiator_group(&esx("hostsystem-host-6", &[stranger]))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains(stranger), "{err}");
}

/// Preflight finds the ESXi host's SDC by GUID, says which GUID the system does not know, and
/// reports an SDC cut off from the MDMs as an unmet prerequisite with the module settings to fix.
#[tokio::test]
async fn readiness_finds_the_hosts_sdc_and_whether_it_is_connected() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let unregistered = "0D0D0D0D-0B5F-4C3D-9E8F-001122334455";
    let hosts = [
        esx("hostsystem-host-1", &[ESX_GUID, ESX_IQN]),
        esx("hostsystem-host-2", &[unregistered]),
    ];
    let readiness = array.readiness(&hosts).await.unwrap();
    assert_eq!(
        readiness.initiators[0].known,
        Some(vec![Initiator::from_adapter_id(ESX_GUID)]),
        "the IQN is not a PowerFlex initiator"
    );
    assert!(readiness.initiators[0].unknown.is_empty());
    assert_eq!(
        readiness.initiators[1].unknown,
        vec![Initiator::from_adapter_id(unregistered)]
    );
    assert!(readiness.prerequisites.iter().all(|p| p.satisfied));

    assert!(lab.facade.set_sdc_connection(ESX_GUID, "Disconnected"));
    let readiness = array.readiness(&hosts[..1]).await.unwrap();
    let connected = readiness
        .prerequisites
        .iter()
        .find(|p| p.name == "SDC esx-1 connected")
        .expect("the SDC's connection is read");
    assert!(!connected.satisfied);
    assert!(
        connected.detail.contains("Disconnected"),
        "{}",
        connected.detail
    );
    assert!(
        connected
            .remedy
            .contains("esxcli system module parameters set -m scini"),
        "{}",
        connected.remedy
    );
}
