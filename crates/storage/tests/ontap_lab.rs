//! The ONTAP plugin against the lab's ONTAP REST facade served over HTTPS on loopback: the whole
//! copy lifecycle (resolve, igroup, map, unmap, restore, release) leaves the array as it found it;
//! every mutating call is idempotent; concurrent releases and pre-existing objects are handled;
//! failures carry the right class and advice. The contract test checks that every request the
//! plugin sent matches an operation of ONTAP's published API and uses only its models' fields.

use crate::support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use co_lab::arrays::ontap::{create_trident_volume, router};
use co_lab::san::{ArrayVendor, GroupSpec, San};
use co_storage::http::ObservedRequest;
use co_storage::ontap::{OntapArray, TRIDENT_CSI_DRIVER};
use co_storage::{
    EsxiHostRef, GroupKind, GroupRef, GroupRelease, Initiator, PersistentVolumeRef, StorageApi,
    StorageError,
};
use support::{Recorder, serve_https, settings};

const ARRAY: &str = "ontap1";
const SVM: &str = "svm1";
const PASSWORD: &str = "s3cr3t-pw";
const WORKER_IQN: &str = "iqn.2020-01.io.openshift:worker-1";
const ESX_IQN: &str = "iqn.1998-01.com.vmware:esx1-4f3a";
const ESX_FC: &str = "fc.20000025b5000001:21000025b5000001";

struct Lab {
    san: San,
    hostname: String,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl Lab {
    async fn start() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let san = San::new(dir.path());
        san.add_array(ARRAY, ArrayVendor::Ontap).unwrap();
        let (cert, key) = support::self_signed();
        let addr = serve_https(
            router(san.clone(), ARRAY, SVM, "admin", PASSWORD),
            &cert,
            &key,
        )
        .await;
        Lab {
            san,
            hostname: format!("127.0.0.1:{}", addr.port()),
            ca_pem: cert,
            _dir: dir,
        }
    }

    fn settings(&self) -> co_storage::http::ConnectionSettings {
        let mut s = settings(self.hostname.clone());
        s.ca_certificate_pem = Some(self.ca_pem.clone().into_bytes());
        s
    }

    async fn connect(&self, recorder: Option<Arc<Recorder>>) -> OntapArray {
        OntapArray::connect(
            &self.settings(),
            &Default::default(),
            recorder.map(|r| r as _),
        )
        .await
        .unwrap()
    }

    /// A Trident ontap-san PV whose LUN is attached to an OpenShift worker, as the prime PVC is.
    fn trident_pv(&self, flexvol: &str) -> PersistentVolumeRef {
        create_trident_volume(&self.san, ARRAY, flexvol, 1 << 30).unwrap();
        if self.san.group(ARRAY, "ocp-worker-1").is_none() {
            self.san
                .create_group(
                    ARRAY,
                    GroupSpec {
                        name: "ocp-worker-1".into(),
                        initiators: vec![WORKER_IQN.into()],
                        protocol: Some("iscsi".into()),
                        os_type: Some("linux".into()),
                    },
                )
                .unwrap();
        }
        self.san
            .map(ARRAY, &format!("/vol/{flexvol}/lun0"), "ocp-worker-1")
            .unwrap();
        PersistentVolumeRef {
            name: format!("pv-{flexvol}"),
            csi_driver: Some(TRIDENT_CSI_DRIVER.into()),
            volume_handle: format!("pvc-{flexvol}"),
            volume_attributes: BTreeMap::from([("internalName".to_owned(), flexvol.to_owned())]),
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

fn esx(host_id: &str, ids: &[&str]) -> EsxiHostRef {
    EsxiHostRef {
        host_id: host_id.into(),
        initiators: ids.iter().map(|i| Initiator::from_adapter_id(i)).collect(),
    }
}

/// The populator's sequence for one disk, with every mutating step repeated once (a journal
/// replay), checked against the SAN after each step.
async fn copy_lifecycle(lab: &Lab, array: &OntapArray) {
    let pv = lab.trident_pv("trident_pvc_a1");
    let info = array.array_info().await.unwrap();
    assert_eq!(
        (info.vendor.as_str(), info.product.as_str()),
        ("NetApp", "ONTAP")
    );
    assert!(info.version.contains("9.15.1"), "{info:?}");

    let volume = array.resolve_volume(&pv).await.unwrap();
    let lab_volume = lab.san.volume(ARRAY, "/vol/trident_pvc_a1/lun0").unwrap();
    assert_eq!(volume.naa.as_str(), lab_volume.naa);
    assert_eq!(volume.serial, lab_volume.serial);
    assert_eq!(volume.size_bytes, 1 << 30);

    let host = esx("hostsystem-host-1", &[ESX_IQN, "vmhba64"]);
    let group = array.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(group.targets[0].name, "xcopy-hostsystem-host-1-iscsi");
    assert_eq!(group.owned, group.targets, "created now, so owned");
    let again = array.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(again.targets, group.targets, "ensure is idempotent");
    assert_eq!(
        again.owned, again.targets,
        "found again, still ours by its ownership comment"
    );
    let lab_group = lab
        .san
        .group(ARRAY, "xcopy-hostsystem-host-1-iscsi")
        .unwrap();
    assert_eq!(lab_group.initiators, vec![ESX_IQN.to_owned()]);
    assert_eq!(lab_group.os_type.as_deref(), Some("vmware"));
    assert_eq!(
        lab_group.comment.as_deref(),
        Some(co_storage::ontap::OWNER_COMMENT)
    );

    let originals = array.current_mappings(&volume).await.unwrap();
    assert_eq!(
        originals
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>(),
        ["ocp-worker-1"]
    );

    support::map_twice_and_see_one_lun(array, &lab.san, &volume, &group, &[ESX_IQN]).await;

    support::unmap_twice_and_see_none(array, &lab.san, &volume, &group, ESX_IQN).await;

    // The journal's list may include the xcopy igroup of a crashed earlier run: never restored.
    let mut journaled = originals.clone();
    journaled.push(group.targets[0].clone());
    array.restore(&volume, &journaled).await.unwrap();
    array.restore(&volume, &journaled).await.unwrap();
    assert_eq!(lab.groups_of(&volume.name), ["ocp-worker-1"]);

    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
    assert!(
        lab.san
            .group(ARRAY, "xcopy-hostsystem-host-1-iscsi")
            .is_none()
    );
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::AlreadyGone
    );
    assert!(
        lab.san.group(ARRAY, "ocp-worker-1").is_some(),
        "admin objects untouched"
    );
}

#[tokio::test]
async fn a_copy_lifecycle_leaves_the_array_as_it_found_it() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    assert_eq!(
        array.svm().name,
        SVM,
        "the only SVM is derived when ONTAP_SVM is unset"
    );
    copy_lifecycle(&lab, &array).await;
}

#[tokio::test]
async fn a_resumed_run_owns_and_deletes_the_igroup_an_interrupted_run_created() {
    let lab = Lab::start().await;
    let volume = lab
        .connect(None)
        .await
        .resolve_volume(&lab.trident_pv("trident_pvc_e1"))
        .await
        .unwrap();
    let host = esx("hostsystem-host-5", &[ESX_IQN]);
    {
        // The interrupted run: created and mapped, then the pod died before releasing.
        let first = lab.connect(None).await;
        let group = first.ensure_initiator_group(&host).await.unwrap();
        first.map(&volume, &group).await.unwrap();
    }

    // The resumed run has no journal entry saying it created the igroup; the comment tells it.
    let resumed = lab.connect(None).await;
    let group = resumed.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(group.owned, group.targets, "{group:?}");
    resumed.unmap(&volume, &group).await.unwrap();
    assert_eq!(
        resumed.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
    assert!(
        lab.san
            .group(ARRAY, "xcopy-hostsystem-host-5-iscsi")
            .is_none(),
        "no igroup leaked by the interruption"
    );
}

#[tokio::test]
async fn restore_maps_an_original_group_again_after_it_was_removed() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let pv = lab.trident_pv("trident_pvc_r1");
    let volume = array.resolve_volume(&pv).await.unwrap();
    let originals = array.current_mappings(&volume).await.unwrap();
    lab.san.unmap(ARRAY, &volume.name, "ocp-worker-1").unwrap();
    assert!(lab.groups_of(&volume.name).is_empty());

    array.restore(&volume, &originals).await.unwrap();
    assert_eq!(lab.groups_of(&volume.name), ["ocp-worker-1"]);
}

#[tokio::test]
async fn release_keeps_an_igroup_another_copy_still_uses() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let a = array
        .resolve_volume(&lab.trident_pv("trident_pvc_c1"))
        .await
        .unwrap();
    let b = array
        .resolve_volume(&lab.trident_pv("trident_pvc_c2"))
        .await
        .unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-9", &[ESX_IQN]))
        .await
        .unwrap();
    let lun_a = array.map(&a, &group).await.unwrap().lun_id;
    let lun_b = array.map(&b, &group).await.unwrap().lun_id;
    assert_ne!(lun_a, lun_b);

    array.unmap(&a, &group).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::InUse
    );
    assert!(
        lab.san
            .group(ARRAY, "xcopy-hostsystem-host-9-iscsi")
            .is_some()
    );

    array.unmap(&b, &group).await.unwrap();
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::Deleted
    );
}

#[tokio::test]
async fn map_recreates_an_igroup_a_concurrent_copy_released() {
    let lab = Lab::start().await;
    let array = lab.connect(None).await;
    let volume = array
        .resolve_volume(&lab.trident_pv("trident_pvc_d1"))
        .await
        .unwrap();
    let host = esx("hostsystem-host-3", &[ESX_IQN]);
    let group = array.ensure_initiator_group(&host).await.unwrap();
    lab.san
        .delete_group(ARRAY, "xcopy-hostsystem-host-3-iscsi")
        .unwrap();

    let mapping = array.map(&volume, &group).await.unwrap();
    let visible = lab.san.visible_luns(&[ESX_IQN.to_owned()]);
    assert_eq!(visible.len(), 1);
    assert_eq!(Some(visible[0].lun_id), mapping.lun_id);

    // Real ONTAP gives the re-created igroup a new uuid (the lab derives uuids from names), so
    // the journaled group holds a stale one: unmap and release must follow the name.
    let mut journaled = group.clone();
    journaled.targets[0].id = "00000000-0000-0000-0000-00000000dead".into();
    journaled.owned = journaled.targets.clone();
    array.unmap(&volume, &journaled).await.unwrap();
    assert!(
        lab.san.visible_luns(&[ESX_IQN.to_owned()]).is_empty(),
        "no leaked LUN map"
    );
    assert_eq!(
        array.release_group(&journaled).await.unwrap(),
        GroupRelease::Deleted
    );
    assert!(
        lab.san
            .group(ARRAY, "xcopy-hostsystem-host-3-iscsi")
            .is_none(),
        "no leaked igroup"
    );
}

#[tokio::test]
async fn an_existing_fc_igroup_gets_missing_initiators_and_is_not_owned() {
    let lab = Lab::start().await;
    lab.san
        .create_group(
            ARRAY,
            GroupSpec {
                name: "xcopy-hostsystem-host-2-fcp".into(),
                initiators: vec!["21:00:00:25:b5:00:00:01".into()],
                protocol: Some("fcp".into()),
                os_type: Some("vmware".into()),
            },
        )
        .unwrap();
    let array = lab.connect(None).await;
    let host = esx(
        "hostsystem-host-2",
        &[ESX_FC, "fc.20000025b5000002:21000025b5000002"],
    );
    let group = array.ensure_initiator_group(&host).await.unwrap();
    assert_eq!(group.protocol, co_storage::StorageProtocol::Fc);
    assert!(
        group.owned.is_empty(),
        "an igroup copy-offload did not create is never deleted"
    );
    let mut initiators = lab
        .san
        .group(ARRAY, "xcopy-hostsystem-host-2-fcp")
        .unwrap()
        .initiators;
    initiators.sort();
    assert_eq!(
        initiators,
        ["21:00:00:25:b5:00:00:01", "21:00:00:25:b5:00:00:02"]
    );
    assert_eq!(
        array.release_group(&group).await.unwrap(),
        GroupRelease::NotOwned
    );
    assert!(
        lab.san
            .group(ARRAY, "xcopy-hostsystem-host-2-fcp")
            .is_some()
    );
}

#[tokio::test]
async fn failures_say_what_to_fix_and_are_classed() {
    let lab = Lab::start().await;

    let mut wrong_password = lab.settings();
    wrong_password.credentials.password = co_storage::http::Secret::new("nope");
    let err = OntapArray::connect(&wrong_password, &Default::default(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::AuthRefused { status: 401, .. }),
        "{err}"
    );

    let err = OntapArray::connect(
        &lab.settings(),
        &co_storage::ontap::Settings {
            svm: Some("svm-other".into()),
        },
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("ONTAP_SVM"), "{err}");

    let mut untrusted = lab.settings();
    untrusted.ca_certificate_pem = None;
    let err = OntapArray::connect(&untrusted, &Default::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Tls { .. }), "{err}");
    // In words, with the certificate the array presented and the secret key to set.
    let message = err.to_string();
    assert!(
        message.contains("not signed by a CA this client trusts"),
        "{message}"
    );
    assert!(message.contains("STORAGE_CA_CERT"), "{message}");
    let der = {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        CertificateDer::from_pem_slice(lab.ca_pem.as_bytes()).unwrap()
    };
    let fingerprint: Vec<String> = ring::digest::digest(&ring::digest::SHA256, &der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert!(
        message.contains(&fingerprint.join(":")),
        "the presented certificate is named: {message}"
    );

    let array = lab.connect(None).await;
    let missing = PersistentVolumeRef {
        name: "pv-x".into(),
        csi_driver: Some(TRIDENT_CSI_DRIVER.into()),
        volume_handle: "pvc-x".into(),
        volume_attributes: BTreeMap::from([(
            "internalName".to_owned(),
            "trident_pvc_missing".to_owned(),
        )]),
    };
    let err = array.resolve_volume(&missing).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
    assert_eq!(err.class(), co_storage::ErrorClass::Permanent);

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

    let not_ontap = co_storage::InitiatorGroup {
        host: esx("hostsystem-host-5", &[ESX_IQN]),
        protocol: co_storage::StorageProtocol::Iscsi,
        targets: vec![GroupRef {
            kind: GroupKind::Host,
            name: "h".into(),
            id: "1".into(),
        }],
        owned: vec![],
    };
    let volume = array
        .resolve_volume(&lab.trident_pv("trident_pvc_e1"))
        .await
        .unwrap();
    assert!(matches!(
        array.map(&volume, &not_ontap).await.unwrap_err(),
        StorageError::Config { .. }
    ));
}

// ---- contract: requests vs ONTAP's published operations and models ----

fn vendor_api_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("VENDOR_API_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vendor-api")
        });
    dir.join("ontap/operations.tsv").is_file().then_some(dir)
}

struct OntapSpec {
    /// (method, path template split on `/`, operation id)
    operations: Vec<(String, Vec<String>, String)>,
    models: serde_json::Map<String, serde_json::Value>,
}

impl OntapSpec {
    fn load(dir: &std::path::Path) -> OntapSpec {
        let tsv = std::fs::read_to_string(dir.join("ontap/operations.tsv")).unwrap();
        let operations = tsv
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut cols = line.split('\t');
                let (method, path, id) = (cols.next()?, cols.next()?, cols.next()?);
                Some((
                    method.to_owned(),
                    path.split('/').map(str::to_owned).collect(),
                    id.to_owned(),
                ))
            })
            .collect();
        let models: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("ontap/models.json")).unwrap())
                .unwrap();
        OntapSpec {
            operations,
            models: models.as_object().unwrap().clone(),
        }
    }

    /// The operation id whose method and path template match the request.
    fn operation(&self, request: &ObservedRequest) -> Option<&str> {
        let segments: Vec<&str> = request.path.split('/').collect();
        self.operations
            .iter()
            .filter(|(method, template, _)| {
                *method == request.method.as_str()
                    && template.len() == segments.len()
                    && template
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t.as_str() == *s)
            })
            // A literal segment beats a `{param}` when both match.
            .min_by_key(|(_, template, _)| template.iter().filter(|t| t.starts_with('{')).count())
            .map(|(_, _, id)| id.as_str())
    }

    /// The model type a model field refers to (`*LunInlineSpace` → `LunInlineSpace`), if any.
    fn field_type(&self, model: &str, field: &str) -> Result<Option<String>, String> {
        let fields = self
            .models
            .get(model)
            .and_then(|m| m.as_object())
            .ok_or(format!("no model {model}"))?;
        let ty = fields
            .get(field)
            .and_then(|t| t.as_str())
            .ok_or(format!("{model} has no field {field:?}"))?;
        let bare = ty.trim_start_matches("[]").trim_start_matches('*');
        Ok(self.models.contains_key(bare).then(|| bare.to_owned()))
    }

    /// Checks a dotted field path (`space.size`, `igroup.name`) against `model`.
    fn check_path(&self, model: &str, path: &str) -> Result<(), String> {
        let mut current = model.to_owned();
        let parts: Vec<&str> = path.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            match self.field_type(&current, part)? {
                Some(next) => current = next,
                None if i + 1 == parts.len() => {}
                None => return Err(format!("{model}.{path}: {part} is not an object")),
            }
        }
        Ok(())
    }

    /// Checks every key of a JSON body against `model`, recursively.
    fn check_body(&self, model: &str, body: &serde_json::Value) -> Result<(), String> {
        match body {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let nested = self.field_type(model, key)?;
                    if let Some(nested) = nested {
                        self.check_body(&nested, value)?;
                    }
                }
                Ok(())
            }
            serde_json::Value::Array(items) => {
                items.iter().try_for_each(|v| self.check_body(model, v))
            }
            _ => Ok(()),
        }
    }
}

/// The record model of each operation the plugin may call (request body for POST, filtered and
/// projected fields for GET, nothing for DELETE).
fn operation_model(operation: &str) -> Option<&'static str> {
    Some(match operation {
        "cluster_get" => "Cluster",
        "svm_collection_get" => "Svm",
        "lun_collection_get" => "Lun",
        "igroup_collection_get" | "igroup_create" => "Igroup",
        "igroup_initiator_create" => "IgroupInitiator",
        "lun_map_collection_get" | "lun_map_create" => "LunMap",
        "igroup_delete" | "lun_map_delete" => "",
        _ => return None,
    })
}

/// Every way `requests` leave ONTAP's API, and the operations they used.
fn contract_problems(
    spec: &OntapSpec,
    requests: &[ObservedRequest],
) -> (Vec<String>, std::collections::BTreeSet<String>) {
    let mut problems = Vec::new();
    let mut seen_operations = std::collections::BTreeSet::new();
    for request in requests {
        let Some(operation) = spec.operation(request) else {
            problems.push(format!(
                "{} {} is not an ONTAP operation",
                request.method, request.path
            ));
            continue;
        };
        seen_operations.insert(operation.to_owned());
        let Some(model) = operation_model(operation) else {
            problems.push(format!(
                "{operation}: the test does not know its model; add it to operation_model"
            ));
            continue;
        };
        for (key, value) in &request.query {
            let checked = match key.as_str() {
                "return_records" => Ok(()),
                "fields" => value.split(',').try_for_each(|f| spec.check_path(model, f)),
                filter => spec.check_path(model, filter),
            };
            if let Err(e) = checked {
                problems.push(format!("{operation} query {key}={value}: {e}"));
            }
        }
        if let Some(body) = &request.body
            && let Err(e) = spec.check_body(model, body)
        {
            problems.push(format!("{operation} body {body}: {e}"));
        }
    }
    (problems, seen_operations)
}

#[test]
fn the_contract_check_rejects_unknown_operations_and_fields() {
    let Some(dir) = vendor_api_dir() else {
        eprintln!(
            "SKIPPED: ONTAP API definitions not found; set VENDOR_API_DIR to the vendor-api directory"
        );
        return;
    };
    let spec = OntapSpec::load(&dir);
    let request = |method: http::Method,
                   path: &str,
                   query: &[(&str, &str)],
                   body: Option<serde_json::Value>| {
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
    };
    let good = [
        request(
            http::Method::GET,
            "/api/storage/luns",
            &[
                ("name", "/vol/a/lun0"),
                ("fields", "serial_number,space.size"),
            ],
            None,
        ),
        request(
            http::Method::POST,
            "/api/protocols/san/lun-maps",
            &[("return_records", "true")],
            Some(
                serde_json::json!({"igroup": {"name": "g"}, "lun": {"name": "l", "uuid": "u"}, "svm": {"uuid": "s"}}),
            ),
        ),
        request(
            http::Method::DELETE,
            "/api/protocols/san/lun-maps/u1/u2",
            &[],
            None,
        ),
    ];
    assert_eq!(contract_problems(&spec, &good).0, Vec::<String>::new());
    let bad = [
        request(http::Method::PUT, "/api/storage/luns", &[], None),
        request(http::Method::GET, "/api/storage/lunz", &[], None),
        request(
            http::Method::GET,
            "/api/storage/luns",
            &[("fields", "space.sise")],
            None,
        ),
        request(
            http::Method::GET,
            "/api/storage/luns",
            &[("serial", "x")],
            None,
        ),
        request(
            http::Method::POST,
            "/api/protocols/san/igroups",
            &[],
            Some(serde_json::json!({"svm": {"id": "s"}})),
        ),
    ];
    let found = contract_problems(&spec, &bad).0;
    assert_eq!(found.len(), bad.len(), "{found:?}");
}

#[tokio::test]
async fn every_request_matches_an_ontap_operation_and_its_models() {
    let Some(dir) = vendor_api_dir() else {
        eprintln!(
            "SKIPPED: ONTAP API definitions not found; set VENDOR_API_DIR to the vendor-api directory"
        );
        return;
    };
    let spec = OntapSpec::load(&dir);
    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    copy_lifecycle(&lab, &array).await;
    // Also the paths only taken on conflicts and concurrent releases.
    let volume = array
        .resolve_volume(&lab.trident_pv("trident_pvc_k1"))
        .await
        .unwrap();
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-4", &[ESX_FC]))
        .await
        .unwrap();
    lab.san
        .delete_group(ARRAY, "xcopy-hostsystem-host-4-fcp")
        .unwrap();
    array.map(&volume, &group).await.unwrap();
    array.map(&volume, &group).await.unwrap();
    lab.san
        .remove_initiator(
            ARRAY,
            "xcopy-hostsystem-host-4-fcp",
            "21:00:00:25:b5:00:00:01",
        )
        .unwrap();
    array
        .ensure_initiator_group(&esx("hostsystem-host-4", &[ESX_FC]))
        .await
        .unwrap();

    let requests = recorder.requests();
    assert!(requests.len() > 20, "the lifecycle was recorded");
    let (problems, seen_operations) = contract_problems(&spec, &requests);
    assert!(
        problems.is_empty(),
        "requests outside ONTAP's API:\n{}",
        problems.join("\n")
    );
    for expected in [
        "igroup_create",
        "igroup_initiator_create",
        "lun_map_create",
        "lun_map_delete",
        "igroup_delete",
    ] {
        assert!(
            seen_operations.contains(expected),
            "{expected} exercised; saw {seen_operations:?}"
        );
    }
    co_testpeers::vendor_matrix::record("ontap", co_testpeers::vendor_matrix::Cell::Contract);
}

/// Round trips per step, so a change that adds array calls is a visible decision.
#[tokio::test]
async fn each_step_costs_the_fewest_round_trips() {
    let lab = Lab::start().await;
    let recorder = Recorder::new();
    let array = lab.connect(Some(recorder.clone())).await;
    assert_eq!(recorder.requests().len(), 1, "connect: one SVM lookup");
    let pv = lab.trident_pv("trident_pvc_rt1");

    let step = |name: &str, expected: usize| {
        let sent = recorder.requests();
        recorder.clear();
        let calls: Vec<String> = sent
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(sent.len(), expected, "{name}: {calls:?}");
    };
    recorder.clear();
    let volume = array.resolve_volume(&pv).await.unwrap();
    step("resolve_volume", 1);
    let group = array
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_IQN]))
        .await
        .unwrap();
    step("ensure_initiator_group (new igroup with its initiators)", 2);
    array
        .ensure_initiator_group(&esx("hostsystem-host-1", &[ESX_IQN]))
        .await
        .unwrap();
    step("ensure_initiator_group (complete already)", 1);
    let originals = array.current_mappings(&volume).await.unwrap();
    step("current_mappings", 1);
    array.map(&volume, &group).await.unwrap();
    step("map", 1);
    array.unmap(&volume, &group).await.unwrap();
    step("unmap", 1);
    array.restore(&volume, &originals).await.unwrap();
    step("restore (one original, still mapped)", 1);
    array.release_group(&group).await.unwrap();
    step("release_group", 2);
}
