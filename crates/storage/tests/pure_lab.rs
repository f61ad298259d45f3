//! The Pure FlashArray plugin against the lab's FlashArray facade served over HTTPS on loopback:
//! the whole copy lifecycle leaves the array as it found it (original host-group and host
//! connections included); every mutating call is idempotent; vVol and RDM disks are copied on
//! the array; NVMe-oF conflicts are refused before anything changes; faults (401 mid-run,
//! 429/503, unreachable array, wrong credentials) behave as promised. The contract test checks
//! every request the plugin sent against the FlashArray REST 2.16 OpenAPI definition.

use crate::support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use co_lab::arrays::pure::{FlashArray, PureCredentials, portworx_volume_name};
use co_lab::san::{ArrayVendor, GroupSpec, San};
use co_storage::http::{ConnectionSettings, ObservedRequest, Secret};
use co_storage::pure::{PORTWORX_CSI_DRIVER, PureArray, Settings};
use co_storage::{
    ArrayCopySource, EsxiHostRef, GroupKind, GroupRef, GroupRelease, Initiator,
    PersistentVolumeRef, StorageApi, StorageError,
};
use support::{Recorder, serve_https, settings};

const ARRAY: &str = "fa1";
const PREFIX: &str = "px_1a2b3c4d";
const TOKEN: &str = "2f0c7d3e-9b1a-4c6e-8f2d-5a4b3c2d1e0f";
const PASSWORD: &str = "s3cr3t-pw";
const WORKER_IQN: &str = "iqn.2020-01.io.openshift:worker-1";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx1-4f3a";
const ESX_FC: &str = "fc.20000025b5000001:21000025b5000001";

/// Answers the next `count` requests with `status` instead of passing them to the array.
#[derive(Clone, Default)]
struct Busy {
    remaining: Arc<AtomicU32>,
    status: Arc<Mutex<u16>>,
}

impl Busy {
    fn next(&self, count: u32, status: u16) {
        *self.status.lock().unwrap() = status;
        self.remaining.store(count, Ordering::SeqCst);
    }
}

async fn busy_layer(busy: Busy, request: Request, next: Next) -> Response {
    let take = busy
        .remaining
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if take {
        let status = *busy.status.lock().unwrap();
        let code = axum::http::StatusCode::from_u16(status).unwrap();
        return (
            code,
            axum::Json(serde_json::json!({"message": "Server is busy"})),
        )
            .into_response();
    }
    next.run(request).await
}

struct Lab {
    san: San,
    array: FlashArray,
    busy: Busy,
    hostname: String,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl Lab {
    async fn start() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let san = San::new(dir.path());
        san.add_array(ARRAY, ArrayVendor::PureFlashArray).unwrap();
        let array = FlashArray::new(
            san.clone(),
            ARRAY,
            PureCredentials {
                username: "admin".into(),
                password: PASSWORD.into(),
                api_token: TOKEN.into(),
            },
        );
        let busy = Busy::default();
        let layer_busy = busy.clone();
        let router = array.router().layer(middleware::from_fn(move |r, n| {
            busy_layer(layer_busy.clone(), r, n)
        }));
        let (cert, key) = support::self_signed();
        let addr = serve_https(router, &cert, &key).await;
        Lab {
            san,
            array,
            busy,
            hostname: format!("127.0.0.1:{}", addr.port()),
            ca_pem: cert,
            _dir: dir,
        }
    }

    fn settings(&self) -> ConnectionSettings {
        let mut s = settings(self.hostname.clone());
        s.ca_certificate_pem = Some(self.ca_pem.clone().into_bytes());
        s.credentials.token = Some(Secret::new(TOKEN));
        s
    }

    fn vendor() -> Settings {
        Settings {
            cluster_prefix: PREFIX.into(),
        }
    }

    async fn connect(&self, recorder: Option<Arc<Recorder>>) -> PureArray {
        PureArray::connect(&self.settings(), &Self::vendor(), recorder.map(|r| r as _))
            .await
            .unwrap()
    }

    /// A Portworx FADA PV whose volume is connected to the OpenShift workers' host group.
    fn portworx_pv(&self, pv_name: &str) -> PersistentVolumeRef {
        let volume = self
            .array
            .create_portworx_volume(PREFIX, pv_name, 1 << 30)
            .unwrap();
        let name = volume.name.clone();
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
            self.array
                .create_host_group("ocp-workers", &["ocp-worker-1"])
                .unwrap();
        }
        self.array.connect_host_group(&name, "ocp-workers").unwrap();
        PersistentVolumeRef {
            name: pv_name.into(),
            csi_driver: Some(PORTWORX_CSI_DRIVER.into()),
            volume_handle: volume.uuid,
            volume_attributes: BTreeMap::new(),
        }
    }

    fn connections(&self) -> Vec<(String, String, u32)> {
        self.san
            .mappings(ARRAY)
            .into_iter()
            .map(|m| (m.volume, m.group, m.lun_id))
            .collect()
    }

    fn hosts(&self) -> Vec<String> {
        self.san.groups(ARRAY).into_iter().map(|g| g.name).collect()
    }
}

fn esx(host_id: &str, ids: &[&str]) -> EsxiHostRef {
    EsxiHostRef {
        host_id: host_id.into(),
        initiators: ids.iter().map(|i| Initiator::from_adapter_id(i)).collect(),
    }
}

/// The populator's sequence for one disk, every mutating step repeated once (a journal replay).
async fn copy_lifecycle(lab: &Lab, array: &PureArray) {
    let pv = lab.portworx_pv("pvc-a1");
    let info = array.array_info().await.unwrap();
    assert_eq!(info.vendor, "Pure Storage");
    assert_eq!(info.model, "FA-X70R4");
    assert!(!info.version.is_empty(), "{info:?}");
    let before = (lab.connections(), lab.hosts());

    let volume = array.resolve_volume(&pv).await.unwrap();
    let lab_volume = lab
        .san
        .volume(ARRAY, &portworx_volume_name(PREFIX, "pvc-a1"))
        .unwrap();
    assert_eq!(volume.naa.as_str(), lab_volume.naa);
    assert_eq!(volume.size_bytes, 1 << 30);

    let host = esx("hostsystem-host-1", &[ESX_IQN, "vmhba64"]);
    let group = array.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(group.targets[0].name, "xcopy-hostsystem-host-1");
    assert_eq!(group.owned, group.targets, "created now, so owned");
    let again = array.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(again.targets, group.targets, "ensure is idempotent");
    assert_eq!(again.owned, group.owned, "a re-run still owns it");

    let original = array.current_mappings(&volume).await.unwrap();
    assert_eq!(
        original,
        vec![GroupRef {
            kind: GroupKind::HostGroup,
            name: "ocp-workers".into(),
            id: String::new()
        }]
    );

    let mapping = array.map(&volume, &group).await.unwrap();
    let replay = array.map(&volume, &group).await.unwrap();
    assert_eq!(mapping, replay, "map is idempotent");
    let seen = lab.san.visible_luns(&[ESX_IQN.to_owned()]);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].naa, mapping.naa.as_str());
    assert_eq!(Some(seen[0].lun_id), mapping.lun_id);

    array.unmap(&volume, &group).await.unwrap();
    array.unmap(&volume, &group).await.unwrap();
    assert!(lab.san.visible_luns(&[ESX_IQN.to_owned()]).is_empty());
    array.restore(&volume, &original).await.unwrap();
    array.restore(&volume, &original).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::AlreadyGone
    );
    assert_eq!((lab.connections(), lab.hosts()), before);
}

#[tokio::test]
async fn a_copy_lifecycle_leaves_the_array_as_it_found_it() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    copy_lifecycle(&lab, &array).await;
    array.logout().await.unwrap();
    assert_eq!(lab.array.open_sessions(), 0, "logout ends the session");
    assert_eq!(lab.array.leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn user_and_password_are_traded_for_a_token_over_rest_1x() {
    let lab = Lab::start().await;
    let mut s = lab.settings();
    s.credentials.token = None;
    let array = PureArray::connect(&s, &Lab::vendor(), None).await.unwrap();
    assert_eq!(array.rest_version(), "2.16");
    array.array_info().await.unwrap();

    s.credentials.password = Secret::new("wrong");
    let err = PureArray::connect(&s, &Lab::vendor(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::AuthRefused { status: 401, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("STORAGE_PASSWORD"), "{err}");
}

#[tokio::test]
async fn the_volume_is_found_by_id_then_by_prefixed_name() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let mut pv = lab.portworx_pv("pvc-b1");
    pv.volume_handle = "1093541256913125742".into(); // a Portworx id, not the array's
    let volume = array.resolve_volume(&pv).await.unwrap();
    assert_eq!(volume.name, format!("{PREFIX}-pvc-b1"));

    let missing = PersistentVolumeRef {
        name: "pvc-missing".into(),
        ..pv.clone()
    };
    let err = array.resolve_volume(&missing).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("PURE_CLUSTER_PREFIX"), "{err}");

    let foreign = PersistentVolumeRef {
        csi_driver: Some("csi.trident.netapp.io".into()),
        ..pv
    };
    let err = array.resolve_volume(&foreign).await.unwrap_err();
    assert!(err.to_string().contains("csi.trident.netapp.io"), "{err}");
}

#[tokio::test]
async fn an_admin_host_is_used_not_owned_and_its_connection_is_restored() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let pv = lab.portworx_pv("pvc-c1");
    let name = portworx_volume_name(PREFIX, "pvc-c1");
    lab.san
        .create_group(
            ARRAY,
            GroupSpec {
                name: "esx1".into(),
                initiators: vec!["21:00:00:25:B5:00:00:01".into()],
                ..GroupSpec::default()
            },
        )
        .unwrap();
    // The admin connected the volume to the ESXi host already (e.g. a datastore check).
    lab.san.map(ARRAY, &name, "esx1").unwrap();
    let before = lab.connections();

    let volume = array.resolve_volume(&pv).await.unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-2", &[ESX_FC]))
        .await
        .unwrap();
    assert_eq!(group.targets[0].name, "esx1");
    assert!(group.owned.is_empty(), "an admin host is never ours");
    let original = array.current_mappings(&volume).await.unwrap();
    assert!(
        original
            .iter()
            .any(|g| g.kind == GroupKind::Host && g.name == "esx1")
    );

    array.map(&volume, &group).await.unwrap();
    array.unmap(&volume, &group).await.unwrap();
    array.restore(&volume, &original).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::NotOwned
    );
    let mut after = lab.connections();
    let mut before = before;
    after.iter_mut().for_each(|c| c.2 = 0);
    before.iter_mut().for_each(|c| c.2 = 0);
    after.sort();
    before.sort();
    assert_eq!(after, before, "the admin's connection is back");
    assert!(lab.hosts().contains(&"esx1".to_owned()));
}

#[tokio::test]
async fn nvme_conflicts_are_refused_before_anything_changes() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let name = portworx_volume_name(PREFIX, "pvc-n1");
    let lab_volume = lab.san.create_volume(ARRAY, &name, 1 << 30).unwrap();
    lab.san
        .create_group(
            ARRAY,
            GroupSpec {
                name: "ocp-nvme-1".into(),
                initiators: vec!["nqn.2014-08.org.nvmexpress:uuid:worker-1".into()],
                ..GroupSpec::default()
            },
        )
        .unwrap();
    lab.san.map(ARRAY, &name, "ocp-nvme-1").unwrap();
    let pv = PersistentVolumeRef {
        name: "pvc-n1".into(),
        csi_driver: Some(PORTWORX_CSI_DRIVER.into()),
        volume_handle: lab_volume.uuid,
        volume_attributes: BTreeMap::new(),
    };
    let volume = array.resolve_volume(&pv).await.unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-3", &[ESX_IQN, ESX_FC]))
        .await
        .unwrap();
    let before = lab.connections();
    let err = array.map(&volume, &group).await.unwrap_err();
    assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("NVMe-oF"), "{err}");
    assert!(err.to_string().contains("ocp-nvme-1"), "{err}");
    assert_eq!(lab.connections(), before, "nothing half-mapped");

    let err = array
        .ensure_initiator_group(&esx(
            "hostsystem-host-4",
            &["nqn.2014-08.org.nvmexpress:uuid:esx4", "vmhba64"],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("NVMe-oF"), "{err}");
}

#[tokio::test]
async fn vvol_and_rdm_disks_are_copied_on_the_array() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let copier = array.array_copy().expect("FlashArray copies on the array");
    let pv = lab.portworx_pv("pvc-d1");
    let target = array.resolve_volume(&pv).await.unwrap();

    let source = lab
        .san
        .create_volume(ARRAY, "vvol-disk-1", 1 << 20)
        .unwrap();
    let mut bytes = vec![0u8; 1 << 20];
    bytes[..11].copy_from_slice(b"vvol source");
    std::fs::write(&source.backing_path, &bytes).unwrap();
    lab.array.tag_vvol("vvol-disk-1", "rfc4122.5e1f").unwrap();

    let vvol = ArrayCopySource::VVol {
        vvol_id: "rfc4122.5e1f".into(),
    };
    assert!(copier.supports(&vvol));
    let session = copier.session(&vvol, &target);
    assert_eq!(
        session,
        copier.session(&vvol, &target),
        "derived from the target"
    );
    let seen = Mutex::new(Vec::new());
    let progress = |p: u8| seen.lock().unwrap().push(p);
    copier.copy(&session, &progress).await.unwrap();
    copier.copy(&session, &progress).await.unwrap();
    copier.end(&session).await.unwrap();
    assert_eq!(seen.lock().unwrap().last(), Some(&100));
    let target_path = lab.san.volume(ARRAY, &target.name).unwrap().backing_path;
    assert_eq!(&std::fs::read(&target_path).unwrap()[..11], b"vvol source");

    // RDM by its naa. name, then by a vml. name embedding it.
    let rdm = lab.san.create_volume(ARRAY, "rdm-lun-1", 1 << 20).unwrap();
    bytes[..10].copy_from_slice(b"rdm source");
    std::fs::write(&rdm.backing_path, &bytes).unwrap();
    for device_name in [
        rdm.naa.clone(),
        format!("vml.0200000000{}466c61736841", &rdm.naa[4..]),
    ] {
        let source = ArrayCopySource::Rdm {
            device_name,
            lun_uuid: "0200000000".into(),
        };
        std::fs::write(&target_path, vec![0u8; 16]).unwrap();
        copier
            .copy(&copier.session(&source, &target), &|_| {})
            .await
            .unwrap();
        assert_eq!(&std::fs::read(&target_path).unwrap()[..10], b"rdm source");
    }

    let unknown = ArrayCopySource::VVol {
        vvol_id: "rfc4122.none".into(),
    };
    let err = copier
        .copy(&copier.session(&unknown, &target), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn an_expired_session_is_renewed_once() {
    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    lab.array.expire_sessions();
    array.array_info().await.unwrap();
    let logins = recorder
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/login"))
        .count();
    assert_eq!(logins, 2, "one login at connect, one after the 401");
}

#[tokio::test]
async fn a_busy_array_is_retried_a_bounded_number_of_times() {
    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;

    for status in [429, 503] {
        recorder.clear();
        lab.busy.next(2, status);
        array.array_info().await.unwrap();
        let attempts: Vec<u32> = recorder.requests().iter().map(|r| r.attempt).collect();
        assert_eq!(attempts[..3], [1, 2, 3], "{status}: {attempts:?}");
    }

    lab.busy.next(100, 503);
    let err = array.array_info().await.unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Unavailable {
                status: 503,
                attempts: 4,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.class(), co_storage::ErrorClass::Retryable);
    lab.busy.next(0, 503);
}

#[tokio::test]
async fn failures_say_what_to_fix() {
    let lab = Lab::start().await;

    let mut wrong_token = lab.settings();
    wrong_token.credentials.token = Some(Secret::new("not-the-token"));
    let err = PureArray::connect(&wrong_token, &Lab::vendor(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::AuthRefused { status: 401, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("STORAGE_TOKEN"), "{err}");

    let mut nothing = lab.settings();
    nothing.credentials.token = None;
    nothing.credentials.username = String::new();
    let err = PureArray::connect(&nothing, &Lab::vendor(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("STORAGE_TOKEN"), "{err}");

    let mut untrusted = lab.settings();
    untrusted.ca_certificate_pem = None;
    let err = PureArray::connect(&untrusted, &Lab::vendor(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Tls { .. }), "{err}");

    // Nothing listens there: fail fast, retryable, naming the address.
    let refusing = co_testpeers::RefusingPort::bind();
    let port = refusing.port();
    let mut unreachable = lab.settings();
    unreachable.hostname = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let err = PureArray::connect(&unreachable, &Lab::vendor(), None)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, StorageError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    assert!(err.to_string().contains("STORAGE_HOSTNAME"), "{err}");
}

#[tokio::test]
async fn the_vendor_list_connects_the_pure_plugin() {
    let lab = Lab::start().await;
    let vendor = co_storage::VendorSettings::PureFlashArray(Lab::vendor());
    let api = co_storage::connect(&vendor, &lab.settings(), None)
        .await
        .unwrap();
    assert!(api.array_copy().is_some());
    assert_eq!(api.array_info().await.unwrap().vendor, "Pure Storage");
}

// ---- contract: requests vs the FlashArray REST 2.x OpenAPI definition ----

fn vendor_api_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PURE_API_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("VENDOR_API_DIR").map(|d| PathBuf::from(d).join("pure")))
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vendor-api/pure")
        });
    dir.join("FA2.16.spec.yaml").is_file().then_some(dir)
}

/// One operation of the definition: its query parameters and body properties.
struct Operation {
    query: Vec<String>,
    body: Option<serde_json::Value>,
}

struct FlashArraySpec {
    doc: serde_json::Value,
}

impl FlashArraySpec {
    fn load(dir: &std::path::Path) -> FlashArraySpec {
        let text = std::fs::read_to_string(dir.join("FA2.16.spec.yaml")).unwrap();
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        FlashArraySpec {
            doc: serde_json::to_value(yaml).unwrap(),
        }
    }

    fn resolve<'a>(&'a self, value: &'a serde_json::Value) -> &'a serde_json::Value {
        match value.get("$ref").and_then(|r| r.as_str()) {
            Some(reference) => {
                let mut node = &self.doc;
                for part in reference.trim_start_matches("#/").split('/') {
                    node = &node[part];
                }
                self.resolve(node)
            }
            None => value,
        }
    }

    fn operation(&self, method: &str, path: &str) -> Option<Operation> {
        let op = self.doc["paths"]
            .get(path)?
            .get(method.to_ascii_lowercase())?;
        let query = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| self.resolve(p))
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        let body = op
            .get("requestBody")
            .map(|b| self.resolve(b)["content"]["application/json"]["schema"].clone());
        Some(Operation { query, body })
    }

    /// Every property name of `schema`, following `$ref` and `allOf`.
    fn properties(&self, schema: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
        let schema = self.resolve(schema);
        let mut out = BTreeMap::new();
        for part in schema["allOf"].as_array().into_iter().flatten() {
            out.extend(self.properties(part));
        }
        if let Some(props) = schema["properties"].as_object() {
            for (k, v) in props {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }

    fn check_body(
        &self,
        schema: &serde_json::Value,
        body: &serde_json::Value,
    ) -> Result<(), String> {
        let Some(object) = body.as_object() else {
            return Ok(());
        };
        let known = self.properties(schema);
        for (key, value) in object {
            let Some(field) = known.get(key) else {
                return Err(format!("unknown body field {key:?}"));
            };
            if value.is_object() {
                self.check_body(field, value)?;
            }
        }
        Ok(())
    }

    fn check(&self, request: &ObservedRequest) -> Result<(), String> {
        let path = request.path.as_str();
        // REST 1.x is not part of the 2.x definition; the legacy token exchange is its only use.
        if request.method == "POST"
            && path.starts_with("/api/1.")
            && path.ends_with("/auth/apitoken")
        {
            return Ok(());
        }
        let template = if path == "/api/api_version" {
            path.to_owned()
        } else {
            let rest = path
                .strip_prefix("/api/2.16/")
                .ok_or_else(|| format!("{path} is not under /api/2.16/"))?;
            format!("/api/2.16/{rest}")
        };
        let op = self
            .operation(request.method.as_str(), &template)
            .ok_or_else(|| format!("no operation {} {template}", request.method))?;
        for (key, _) in &request.query {
            if !op.query.contains(key) {
                return Err(format!("unknown query parameter {key:?}"));
            }
        }
        match (&request.body, &op.body) {
            (Some(body), Some(schema)) => self.check_body(schema, body),
            (Some(_), None) => Err("the operation takes no body".into()),
            _ => Ok(()),
        }
    }
}

#[tokio::test]
async fn every_request_matches_the_flasharray_openapi_definition() {
    let Some(dir) = vendor_api_dir() else {
        eprintln!(
            "SKIPPED: the FlashArray OpenAPI definition FA2.16.spec.yaml was not found; set PURE_API_DIR \
             to the folder holding it (PureStorage-OpenConnect/swagger definitions/oas3.x)"
        );
        return;
    };
    let spec = FlashArraySpec::load(&dir);

    // The definition disagrees with upstream's habit of sending names in bodies.
    let upstream_style = ObservedRequest {
        method: http::Method::POST,
        path: "/api/2.16/connections".into(),
        query: vec![],
        body: Some(serde_json::json!({"host_names": ["h"], "volume_names": ["v"]})),
        attempt: 1,
        status: Some(200),
    };
    assert!(spec.check(&upstream_style).is_err(), "the check can fail");

    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    copy_lifecycle(&lab, &array).await;
    let copier = array.array_copy().unwrap();
    let pv = lab.portworx_pv("pvc-k1");
    let target = array.resolve_volume(&pv).await.unwrap();
    lab.san.create_volume(ARRAY, "vvol-k", 1 << 20).unwrap();
    lab.array.tag_vvol("vvol-k", "rfc4122.k").unwrap();
    let vvol = ArrayCopySource::VVol {
        vvol_id: "rfc4122.k".into(),
    };
    copier
        .copy(&copier.session(&vvol, &target), &|_| {})
        .await
        .unwrap();
    let rdm = ArrayCopySource::Rdm {
        device_name: "vml.02000000006000000000".into(),
        lun_uuid: String::new(),
    };
    let _ = copier.copy(&copier.session(&rdm, &target), &|_| {}).await;
    array.logout().await.unwrap();

    let requests = recorder.requests();
    assert!(requests.len() > 20, "{}", requests.len());
    let failures: Vec<String> = requests
        .iter()
        .filter_map(|r| {
            spec.check(r)
                .err()
                .map(|e| format!("{} {} {:?}: {e}", r.method, r.path, r.query))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    co_testpeers::vendor_matrix::record(
        "pureFlashArray",
        co_testpeers::vendor_matrix::Cell::Contract,
    );
}

#[tokio::test]
async fn a_failed_lookup_is_an_error_not_a_fallback() {
    // Upstream fell back to the name only on "does not exist" and crashed on anything else.
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let pv = lab.portworx_pv("pvc-e1");
    lab.busy.next(100, 503);
    let err = array.resolve_volume(&pv).await.unwrap_err();
    lab.busy.next(0, 503);
    assert!(
        matches!(err, StorageError::Unavailable { status: 503, .. }),
        "{err}"
    );
    array.resolve_volume(&pv).await.unwrap();
}

#[tokio::test]
async fn names_are_escaped_in_every_query() {
    // Upstream put names into DELETE queries unescaped; `&` or `+` would address another object.
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let pv = lab.portworx_pv("pvc+f1&x=y");
    let before = lab.connections();
    let volume = array.resolve_volume(&pv).await.unwrap();
    assert_eq!(volume.name, format!("{PREFIX}-pvc+f1&x=y"));
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-6", &[ESX_IQN]))
        .await
        .unwrap();
    array.map(&volume, &group).await.unwrap();
    array.unmap(&volume, &group).await.unwrap();
    array.release_group(&group).await.unwrap();
    assert_eq!(lab.connections(), before);
}

#[tokio::test]
async fn a_token_needs_no_rest_1x() {
    // Upstream required a REST 1.x version even with STORAGE_TOKEN; arrays may offer 2.x only.
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array(ARRAY, ArrayVendor::PureFlashArray).unwrap();
    let array = FlashArray::new(
        san,
        ARRAY,
        PureCredentials {
            username: "admin".into(),
            password: PASSWORD.into(),
            api_token: TOKEN.into(),
        },
    );
    let only_2x = array.router().layer(middleware::from_fn(
        |request: Request, next: Next| async move {
            if request.uri().path() == "/api/api_version" {
                return axum::Json(serde_json::json!({"version": ["2.0", "2.16"]})).into_response();
            }
            next.run(request).await
        },
    ));
    let (cert, key) = support::self_signed();
    let addr = serve_https(only_2x, &cert, &key).await;
    let mut s = settings(format!("127.0.0.1:{}", addr.port()));
    s.ca_certificate_pem = Some(cert.into_bytes());
    s.credentials.token = Some(Secret::new(TOKEN));
    let connected = PureArray::connect(&s, &Lab::vendor(), None).await.unwrap();
    assert_eq!(connected.rest_version(), "2.16");

    s.credentials.token = None;
    let err = PureArray::connect(&s, &Lab::vendor(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Config { .. }), "{err}");
    assert!(err.to_string().contains("set STORAGE_TOKEN"), "{err}");
}

#[tokio::test]
async fn a_resumed_run_owns_and_deletes_the_host_an_interrupted_run_created() {
    let lab = Lab::start().await;
    let pv = lab.portworx_pv("pvc-g1");
    let before = (lab.connections(), lab.hosts());
    let host = esx("hostsystem-host-7", &[ESX_IQN]);
    {
        // The first run dies after mapping.
        let first = lab.connect(None).await;
        let volume = first.resolve_volume(&pv).await.unwrap();
        let group = first.ensure_initiator_group(&host).await.unwrap();
        first.map(&volume, &group).await.unwrap();
    }
    let second = lab.connect(None).await;
    let volume = second.resolve_volume(&pv).await.unwrap();
    let original = second.current_mappings(&volume).await.unwrap();
    let group = second.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(group.owned, group.targets, "named like ours, so ours");
    second.map(&volume, &group).await.unwrap();
    second.unmap(&volume, &group).await.unwrap();
    second.restore(&volume, &original).await.unwrap();
    assert_eq!(
        second.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
    assert_eq!((lab.connections(), lab.hosts()), before);
}

#[tokio::test]
async fn release_keeps_a_host_another_copy_uses_and_map_recreates_a_released_one() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let host = esx("hostsystem-host-8", &[ESX_IQN]);
    let a = array
        .resolve_volume(&lab.portworx_pv("pvc-h1"))
        .await
        .unwrap();
    let b = array
        .resolve_volume(&lab.portworx_pv("pvc-h2"))
        .await
        .unwrap();
    let group_a = array.ensure_initiator_group(&host).await.unwrap();
    let group_b = array.ensure_initiator_group(&host).await.unwrap();
    array.map(&a, &group_a).await.unwrap();
    array.map(&b, &group_b).await.unwrap();
    array.unmap(&a, &group_a).await.unwrap();
    assert_eq!(
        array.release_group(&group_a).await.unwrap(),
        GroupRelease::InUse,
        "copy b still uses the host"
    );
    array.unmap(&b, &group_b).await.unwrap();
    assert_eq!(
        array.release_group(&group_b).await.unwrap(),
        GroupRelease::Deleted
    );
    // Copy a maps again after b released the host: the host comes back.
    let mapping = array.map(&a, &group_a).await.unwrap();
    let seen = lab.san.visible_luns(&[ESX_IQN.to_owned()]);
    assert_eq!(seen[0].naa, mapping.naa.as_str());
    array.unmap(&a, &group_a).await.unwrap();
    array.release_group(&group_a).await.unwrap();
    assert!(!lab.hosts().contains(&"xcopy-hostsystem-host-8".to_owned()));
}

#[tokio::test]
async fn large_host_lists_are_read_page_by_page() {
    let lab = Lab::start().await;
    for i in 0..520 {
        let iqn = if i == 517 {
            ESX_IQN.to_owned()
        } else {
            format!("iqn.2020-01.io.example:host-{i}")
        };
        lab.san
            .create_group(
                ARRAY,
                GroupSpec {
                    name: format!("admin-{i:03}"),
                    initiators: vec![iqn],
                    ..GroupSpec::default()
                },
            )
            .unwrap();
    }
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-9", &[ESX_IQN]))
        .await
        .unwrap();
    assert_eq!(
        group.targets[0].name, "admin-517",
        "found on the second page"
    );
    let pages: Vec<ObservedRequest> = recorder
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/hosts"))
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(
        pages[1]
            .query
            .iter()
            .any(|(k, _)| k == "continuation_token")
    );
}
