//! The Plan controller against the real API server and the lab's vCenter: the seed's example Plan,
//! applied unchanged, is left alone while `feature_copy_offload` is off, a Plan without
//! `copy-offload.konveyor.io/plan: "true"` stays Forklift's, and the seed's Plan, once opted in, is
//! told what it lacks; an opted-in Plan gets each offloaded disk's Secret, Block PVC and populator
//! CR exactly as specified, the same ones again after a restart; a mixed VDDK/offload plan gets
//! `VDDKAndOffloadMixedUsage` and nothing, and status writes do not send the planner back to
//! vCenter; two plans share the dedicated migration hosts least-loaded; a late StorageMap is
//! noticed. A disk's objects are applied Secret, PVC, CR, owned by the PVC, idempotently, and
//! never over an object or a field someone else has.

use crate::plan_objects;
use crate::support;

use std::collections::BTreeMap;

use base64::Engine as _;
use co_api::contract::names::PLAN_OPT_IN_ANNOTATION;
use co_api::{Plan, VSphereXcopyVolumePopulator, VSphereXcopyVolumePopulatorSpec};
use co_lab::lab::{Lab, RunningLab};
use co_lab::scenario::{DiskSpec, VmSpec};
use co_planner::gather::gather;
use co_planner::offload::{MIXED_USAGE_CONDITION, PlannedDisk, disk_object_name};
use co_planner::plan::{
    DiskApplied, FIELD_MANAGER, OBJECTS_NOT_OURS, PLANNED, PLANNING_FAILED, apply_disk,
};
use co_planner::ssh_keys::KeysOutcome;
use co_planner::{Observed, PlanOutcome, ProviderOutcome};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret, TypedObjectReference,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use plan_objects::{create_forklift, create_lab_provider, ensure_populator_crd, scenario};
use serde_json::{Value, json};
use support::Scratch;

const SEED_PLAN: &str = include_str!("fixtures/seed-plan.yaml");
const SEED_PLAN_NAME: &str = "my-plan";
/// A copy of the seed's Plan that never opts in.
const NOT_OPTED_IN: &str = "left-to-forklift";

fn plan_reconciled(
    plan: &'static str,
    wanted: impl Fn(&PlanOutcome) -> bool,
) -> impl Fn(&Observed) -> bool {
    move |observed| match observed {
        Observed::Plan { name, outcome, .. } => name == plan && wanted(outcome),
        _ => false,
    }
}

/// Sets (`Some`) or removes (`None`) the opt-in annotation of a Plan.
async fn set_opt_in(scratch: &Scratch, plan: &str, value: Option<&str>) {
    scratch
        .forklift("Plan")
        .patch(
            plan,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {PLAN_OPT_IN_ANNOTATION: value}}})),
        )
        .await
        .unwrap_or_else(|error| panic!("annotating plan {plan}: {error}"));
}

/// The names of the PVCs, Secrets and populator CRs in the scratch namespace (service account
/// tokens aside).
async fn created_objects(scratch: &Scratch) -> Vec<String> {
    let list = ListParams::default();
    let pvcs: Api<PersistentVolumeClaim> =
        Api::namespaced(scratch.client.clone(), &scratch.namespace);
    let secrets: Api<Secret> = Api::namespaced(scratch.client.clone(), &scratch.namespace);
    let populators: Api<VSphereXcopyVolumePopulator> =
        Api::namespaced(scratch.client.clone(), &scratch.namespace);
    let mut names = Vec::new();
    for pvc in pvcs.list(&list).await.expect("listing PVCs") {
        names.push(format!("pvc/{}", pvc.metadata.name.unwrap_or_default()));
    }
    // The API server peer (1.20) gives every namespace a service account token Secret.
    let not_tokens = ListParams::default().fields("type!=kubernetes.io/service-account-token");
    for secret in secrets.list(&not_tokens).await.expect("listing Secrets") {
        names.push(format!(
            "secret/{}",
            secret.metadata.name.unwrap_or_default()
        ));
    }
    for cr in populators.list(&list).await.expect("listing populator CRs") {
        names.push(format!(
            "populator/{}",
            cr.metadata.name.unwrap_or_default()
        ));
    }
    names
}

async fn plan_conditions(scratch: &Scratch, plan: &str) -> Vec<Value> {
    let plan = scratch.forklift("Plan").get(plan).await.expect("the plan");
    plan.data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn the_seed_plan_is_left_alone_while_the_flag_is_off_and_until_it_opts_in() {
    let mut scratch = Scratch::new("planner-plan").await;
    ensure_populator_crd(&scratch.client).await;
    scratch.apply_manifest(SEED_PLAN, "openshift-mtv").await;
    scratch
        .apply_manifest(
            &SEED_PLAN.replace(SEED_PLAN_NAME, NOT_OPTED_IN),
            "openshift-mtv",
        )
        .await;
    scratch.start_planner().await;
    scratch
        .observe(
            "the plan reconciled with the flag off",
            plan_reconciled(SEED_PLAN_NAME, |o| *o == PlanOutcome::Disabled),
        )
        .await;

    set_opt_in(&scratch, SEED_PLAN_NAME, Some("true")).await;
    scratch
        .observe(
            "the opted-in plan reconciled with the flag still off",
            plan_reconciled(SEED_PLAN_NAME, |o| *o == PlanOutcome::Disabled),
        )
        .await;
    assert_eq!(created_objects(&scratch).await, Vec::<String>::new());
    assert_eq!(
        plan_conditions(&scratch, SEED_PLAN_NAME).await,
        Vec::<Value>::new()
    );

    // Flag on: the Plan that did not opt in stays Forklift's; the seed's snippet, which shows only
    // the map part of a Plan, is told what it lacks, and nothing is created.
    scratch.set_flag_on_forklift_controller("true").await;
    let seen = std::cell::RefCell::new((false, false));
    scratch
        .observe("both plans reconciled with the flag on", |observed| {
            let mut seen = seen.borrow_mut();
            match observed {
                Observed::Plan { name, outcome, .. } if name == NOT_OPTED_IN => {
                    seen.0 |= *outcome == PlanOutcome::NotOptedIn;
                }
                Observed::Plan { name, outcome, .. } if name == SEED_PLAN_NAME => {
                    seen.1 |= matches!(outcome, PlanOutcome::Invalid(_));
                }
                _ => {}
            }
            seen.0 && seen.1
        })
        .await;
    assert_eq!(
        plan_conditions(&scratch, NOT_OPTED_IN).await,
        Vec::<Value>::new()
    );
    let conditions = plan_conditions(&scratch, SEED_PLAN_NAME).await;
    assert_eq!(conditions.len(), 1, "{conditions:?}");
    assert_eq!(conditions[0]["type"], PLANNING_FAILED);
    assert_eq!(conditions[0]["category"], "Critical");
    let message = conditions[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.provider.source names no Provider"),
        "{message}"
    );
    assert_eq!(created_objects(&scratch).await, Vec::<String>::new());
    scratch.finish().await;
}

/// One disk's objects as planning gives them, in `namespace`.
fn disk_objects(namespace: &str, name: &str) -> PlannedDisk {
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        labels: Some(BTreeMap::from([("vmID".to_owned(), "vm-42".to_owned())])),
        ..Default::default()
    };
    let secret_name = format!("{name}-secret");
    PlannedDisk {
        vm_id: "vm-42".into(),
        vm_name: "vm-42".into(),
        disk_key: 2000,
        disk_file: "[datastore1] vm-42/vm-42.vmdk".into(),
        secret: Secret {
            metadata: meta(&secret_name),
            data: Some(BTreeMap::from([(
                "GOVMOMI_HOSTNAME".to_owned(),
                ByteString(b"vcenter.example.com".to_vec()),
            )])),
            ..Default::default()
        },
        pvc: PersistentVolumeClaim {
            metadata: meta(name),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteMany".into()]),
                volume_mode: Some("Block".into()),
                storage_class_name: Some("array-block".into()),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_owned(),
                        Quantity("1073741824".into()),
                    )])),
                    ..Default::default()
                }),
                data_source_ref: Some(TypedObjectReference {
                    api_group: Some(co_api::GROUP.into()),
                    kind: "VSphereXcopyVolumePopulator".into(),
                    name: name.into(),
                    namespace: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        populator: VSphereXcopyVolumePopulator {
            metadata: meta(name),
            spec: VSphereXcopyVolumePopulatorSpec {
                vm_id: Some("vm-42".into()),
                vmdk_path: "[datastore1] vm-42/vm-42.vmdk".into(),
                secret_name: Some(secret_name),
                storage_vendor_product: "ontap".into(),
                ..Default::default()
            },
            status: None,
        },
    }
}

/// `(name, uid, resourceVersion, owners)` of the disk's Secret, PVC and CR. The PVC's
/// resourceVersion is left out: kube-controller-manager writes to it (protection finalizer,
/// binding attempts).
async fn disk_state(scratch: &Scratch, name: &str) -> Vec<(String, String, String, Vec<String>)> {
    let secrets: Api<Secret> = Api::namespaced(scratch.client.clone(), &scratch.namespace);
    let pvcs: Api<PersistentVolumeClaim> =
        Api::namespaced(scratch.client.clone(), &scratch.namespace);
    let populators: Api<VSphereXcopyVolumePopulator> =
        Api::namespaced(scratch.client.clone(), &scratch.namespace);
    let state = |meta: &ObjectMeta| {
        (
            meta.name.clone().unwrap_or_default(),
            meta.uid.clone().unwrap_or_default(),
            meta.resource_version.clone().unwrap_or_default(),
            meta.owner_references
                .iter()
                .flatten()
                .map(|o| format!("{}/{}/{}/{:?}", o.kind, o.name, o.uid, o.controller))
                .collect(),
        )
    };
    vec![
        state(
            &secrets
                .get(&format!("{name}-secret"))
                .await
                .unwrap()
                .metadata,
        ),
        {
            let (name, uid, _, owners) = state(&pvcs.get(name).await.unwrap().metadata);
            (name, uid, String::new(), owners)
        },
        state(&populators.get(name).await.unwrap().metadata),
    ]
}

#[tokio::test]
async fn a_disk_is_applied_owned_by_its_pvc_once_and_never_over_someone_elses_objects() {
    let scratch = Scratch::new("planner-apply").await;
    ensure_populator_crd(&scratch.client).await;
    let disk = disk_objects(&scratch.namespace, "vm-42-disk-0");
    assert_eq!(
        apply_disk(&scratch.client, &disk).await.unwrap(),
        DiskApplied::Applied
    );
    let first = disk_state(&scratch, "vm-42-disk-0").await;
    let pvc_uid = &first[1].1;
    let owner = format!("PersistentVolumeClaim/vm-42-disk-0/{pvc_uid}/Some(true)");
    assert_eq!(
        first[0].3,
        std::slice::from_ref(&owner),
        "the Secret is owned by the PVC"
    );
    assert!(first[1].3.is_empty(), "the PVC has no owner");
    assert_eq!(first[2].3, [owner], "the CR is owned by the PVC");
    let pvcs: Api<PersistentVolumeClaim> =
        Api::namespaced(scratch.client.clone(), &scratch.namespace);
    let pvc = pvcs.get("vm-42-disk-0").await.unwrap();
    let source = pvc
        .spec
        .as_ref()
        .and_then(|spec| spec.data_source.as_ref())
        .expect("the populator named in dataSource, which every server version takes");
    assert_eq!(
        (source.kind.as_str(), source.name.as_str()),
        ("VSphereXcopyVolumePopulator", "vm-42-disk-0")
    );
    assert!(
        pvc.metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|f| f.manager.as_deref() == Some(FIELD_MANAGER)
                && f.operation.as_deref() == Some("Apply")),
        "applied server-side by {FIELD_MANAGER}"
    );

    assert_eq!(
        apply_disk(&scratch.client, &disk).await.unwrap(),
        DiskApplied::Applied
    );
    assert_eq!(
        disk_state(&scratch, "vm-42-disk-0").await,
        first,
        "a re-run changes nothing: same objects, Secret and CR not even rewritten"
    );

    // Someone took over a field of the CR (a forced apply): it is theirs now, and is not taken back.
    let populators: Api<VSphereXcopyVolumePopulator> =
        Api::namespaced(scratch.client.clone(), &scratch.namespace);
    populators
        .patch(
            "vm-42-disk-0",
            &PatchParams::apply("an-administrator").force(),
            &Patch::Apply(json!({
                "apiVersion": "forklift.konveyor.io/v1beta1",
                "kind": "VSphereXcopyVolumePopulator",
                "metadata": { "name": "vm-42-disk-0", "labels": { "vmID": "vm-99" } },
            })),
        )
        .await
        .expect("the administrator's apply");
    let DiskApplied::Clash(clashes) = apply_disk(&scratch.client, &disk).await.unwrap() else {
        panic!("the CR's label is someone else's now");
    };
    assert_eq!(clashes.len(), 1, "{clashes:?}");
    assert!(
        clashes[0].starts_with(&format!(
            "VSphereXcopyVolumePopulator {}/vm-42-disk-0: fields of it are managed by someone else",
            scratch.namespace
        )),
        "{}",
        clashes[0]
    );
    assert_eq!(
        populators.get("vm-42-disk-0").await.unwrap().labels()["vmID"],
        "vm-99"
    );

    // A PVC of the same name that Forklift's controller created is left as it is.
    let forklifts = disk_objects(&scratch.namespace, "vm-42-disk-1");
    pvcs.create(
        &PostParams {
            field_manager: Some("forklift-controller".into()),
            ..Default::default()
        },
        &forklifts.pvc,
    )
    .await
    .unwrap();
    let before = pvcs.get("vm-42-disk-1").await.unwrap();
    let clash = apply_disk(
        &scratch.client,
        &disk_objects(&scratch.namespace, "vm-42-disk-1"),
    )
    .await
    .unwrap();
    assert_eq!(
        clash,
        DiskApplied::Clash(vec![format!(
            "PersistentVolumeClaim {}/vm-42-disk-1: exists, created by forklift-controller",
            scratch.namespace
        )])
    );
    assert_eq!(
        pvcs.get("vm-42-disk-1").await.unwrap().resource_version(),
        before.resource_version(),
        "the foreign PVC is untouched"
    );
    let objects = created_objects(&scratch).await;
    assert!(
        !objects
            .iter()
            .any(|o| o.contains("vm-42-disk-1-secret") || o == "populator/vm-42-disk-1"),
        "nothing else of that disk is created: {objects:?}"
    );
    scratch.finish().await;
}

/// The lab of the gather tests (vm-1 with one disk on ds1, VMFS on the ONTAP array; vm-2 with a
/// flat disk, an RDM and a vVol on ds1 and a flat disk on ds2, NFS, mapped without offload), plus
/// vm-3 with three flat disks on ds1.
async fn start_lab() -> (RunningLab, tempfile::TempDir) {
    let mut scenario = scenario();
    let disk = |size_mib| DiskSpec {
        datastore: "ds1".into(),
        size_mib,
        rdm_array: None,
        vvol: false,
    };
    scenario.vms.push(VmSpec {
        name: "vm-3".into(),
        host: "esxi-1.lab.local".into(),
        disks: vec![disk(8), disk(16), disk(4)],
    });
    let dir = tempfile::tempdir().expect("a temporary directory");
    let lab = Lab::start(scenario, dir.path())
        .await
        .expect("the lab starts");
    (lab, dir)
}

/// The lab, and a scratch namespace with `feature_copy_offload` on and the planner running.
async fn start_with_lab(prefix: &str) -> (RunningLab, tempfile::TempDir, Scratch) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (lab, dir) = start_lab().await;
    let mut scratch = Scratch::new(prefix).await;
    ensure_populator_crd(&scratch.client).await;
    scratch.set_flag_on_forklift_controller("true").await;
    // Every Plan test runs the planner with exactly the shipped ClusterRole's rights.
    scratch.start_planner_with_shipped_role().await;
    (lab, dir, scratch)
}

/// Two dedicated migration hosts. Host loads are counted cluster-wide, so their names are the
/// test's own: parallel tests do not load each other's hosts.
fn dedicated_hosts(scratch: &Scratch) -> [String; 2] {
    [
        format!("host-a-{}", scratch.namespace),
        format!("host-b-{}", scratch.namespace),
    ]
}

const STORAGE_CLASS: &str = "ontap-san";

/// The vSphere Provider of the lab (`esxiCloneMethod: ssh`, its Secret as Forklift keeps it), the
/// ONTAP storage Secret with Trident-style keys, and the StorageMap `copy-offload`: ds1 offloaded
/// (access mode ReadWriteOnce, `dedicated_hosts`), ds2 copied with VDDK. Waits until the planner
/// has given the Provider its SSH key pair.
async fn create_migration_objects(
    scratch: &mut Scratch,
    lab: &RunningLab,
    dedicated_hosts: &[String],
) {
    create_provider(scratch, lab).await;
    create_storage_map(scratch, "copy-offload", dedicated_hosts).await;
}

/// The Provider, its Secret and the storage Secret of [`create_migration_objects`]; waits for
/// the Provider's key pair.
async fn create_provider(scratch: &mut Scratch, lab: &RunningLab) {
    create_lab_provider(scratch, lab, json!({ "esxiCloneMethod": "ssh" })).await;
    // A vendor key of the storage Secret, which must reach the disks' Secrets as it is.
    Api::<Secret>::namespaced(scratch.client.clone(), &scratch.namespace)
        .patch(
            "ontap-creds",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "ONTAP_SVM": lab.arrays[0].svm } })),
        )
        .await
        .expect("ONTAP_SVM added");
    scratch
        .observe("the provider's SSH key pair", |observed| {
            matches!(
                observed,
                Observed::Provider { name, outcome: ProviderOutcome::Keys(KeysOutcome::Created | KeysOutcome::Kept), .. }
                    if name == "vcenter"
            )
        })
        .await;
}

/// The StorageMap of [`create_migration_objects`], named `name`.
async fn create_storage_map(scratch: &Scratch, name: &str, dedicated_hosts: &[String]) {
    let namespace = &scratch.namespace;
    create_forklift(
        scratch,
        "StorageMap",
        name,
        json!({
            "provider": { "source": { "name": "vcenter", "namespace": namespace } },
            "map": [
                {
                    "source": { "name": "ds1" },
                    "destination": { "storageClass": STORAGE_CLASS, "accessMode": "ReadWriteOnce" },
                    "offloadPlugin": { "vsphereXcopyConfig": {
                        "secretRef": "ontap-creds",
                        "storageVendorProduct": "ontap",
                        "dedicatedMigrationHosts": dedicated_hosts,
                    }},
                },
                {
                    "source": { "name": "ds2" },
                    "destination": { "storageClass": "nfs" },
                },
            ],
        }),
    )
    .await;
}

/// Creates the Plan `name` of `vms` (by name) in the scratch namespace, then opts it in.
async fn create_plan(scratch: &Scratch, name: &str, vms: &[&str]) {
    let vms: Vec<Value> = vms.iter().map(|vm| json!({ "name": vm })).collect();
    plan_objects::create_plan(scratch, name, Value::from(vms)).await;
    set_opt_in(scratch, name, Some("true")).await;
}

fn planned(plan: &'static str) -> impl Fn(&Observed) -> bool {
    plan_reconciled(plan, |o| matches!(o, PlanOutcome::Planned { .. }))
}

/// The applied PVC names an observed `Planned` outcome lists.
fn applied(observed: &Observed) -> Vec<String> {
    match observed {
        Observed::Plan {
            outcome: PlanOutcome::Planned { applied, clashes },
            ..
        } => {
            assert_eq!(clashes, &Vec::<String>::new());
            applied.clone()
        }
        other => panic!("not a planned plan: {other:?}"),
    }
}

fn text(secret: &Secret, key: &str) -> String {
    let value = secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .unwrap_or_else(|| panic!("Secret {} has no key {key}", secret.name_any()));
    String::from_utf8(value.0.clone()).expect("text")
}

async fn populators(scratch: &Scratch) -> Api<VSphereXcopyVolumePopulator> {
    Api::namespaced(scratch.client.clone(), &scratch.namespace)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opted_in_plan_gets_each_disk_exactly_as_specified_and_a_restart_changes_nothing() {
    let (lab, _dir, mut scratch) = start_with_lab("planner-plan").await;
    let hosts = dedicated_hosts(&scratch);
    create_migration_objects(&mut scratch, &lab, &hosts).await;
    create_plan(&scratch, "plan-a", &["vm-3"]).await;
    let observed = scratch.observe("plan-a planned", planned("plan-a")).await;
    let names = applied(&observed);

    let namespace = scratch.namespace.clone();
    let plan = Api::<Plan>::namespaced(scratch.client.clone(), &namespace)
        .get("plan-a")
        .await
        .expect("the plan");
    let plan_uid = plan.uid().expect("a uid");
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(scratch.client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(scratch.client.clone(), &namespace);
    let crs = populators(&scratch).await;
    let first_pvc = pvcs.get(&names[0]).await.expect("the first PVC");
    let vm_id = first_pvc.labels()["vmID"].clone();
    assert!(vm_id.starts_with("vm-"), "{vm_id}");
    let expected_names: Vec<String> = [2000, 2001, 2002]
        .into_iter()
        .map(|key| disk_object_name(&namespace, "plan-a", &vm_id, key))
        .collect();
    assert_eq!(
        names, expected_names,
        "one PVC per disk, deterministic names"
    );

    let ds1_naa = lab
        .san
        .volume("ontap1", "ds-ds1")
        .expect("the ds1 LUN")
        .naa
        .to_ascii_lowercase();
    let provider_keys = secrets
        .get("offload-ssh-keys-vcenter-private")
        .await
        .expect("the provider's private key");
    let array = &lab.arrays[0];
    let vcenter_authority = lab
        .vcenter_url
        .trim_start_matches("https://")
        .trim_end_matches("/sdk")
        .to_owned();
    let sizes_mib = [8u64, 16, 4];
    let mut migration_hosts = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let key = 2000 + index;
        let file = if index == 0 {
            "[ds1] vm-3/vm-3.vmdk".to_owned()
        } else {
            format!("[ds1] vm-3/vm-3_{index}.vmdk")
        };
        let pvc = pvcs.get(name).await.expect("the PVC");
        let labels = pvc.labels();
        assert_eq!(labels["plan"], plan_uid);
        assert_eq!(labels["vmID"], vm_id);
        assert_eq!(labels["vmdkKey"], key.to_string());
        assert_eq!(labels["sourceHost"], lab.hosts[0].moid);
        assert_eq!(labels["volume.csi.k8s.io/affinity-source-naa"], ds1_naa);
        let annotations = pvc.annotations();
        assert_eq!(annotations["forklift.konveyor.io/disk-source"], file);
        assert_eq!(annotations["copy-offload"], file);
        assert_eq!(
            annotations["cdi.kubevirt.io/storage.import.secretName"],
            *name
        );
        let spec = pvc.spec.as_ref().expect("a spec");
        assert_eq!(spec.volume_mode.as_deref(), Some("Block"));
        assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_owned()]));
        assert_eq!(spec.storage_class_name.as_deref(), Some(STORAGE_CLASS));
        let requested = &spec
            .resources
            .as_ref()
            .expect("resources")
            .requests
            .as_ref()
            .expect("requests")["storage"];
        assert_eq!(requested.0, (sizes_mib[index] * 1024 * 1024).to_string());
        let source = spec.data_source.as_ref().expect("a data source");
        assert_eq!(
            (
                source.api_group.as_deref(),
                source.kind.as_str(),
                source.name.as_str()
            ),
            (
                Some("forklift.konveyor.io"),
                "VSphereXcopyVolumePopulator",
                name.as_str()
            )
        );
        let owner = format!(
            "PersistentVolumeClaim/{name}/{}",
            pvc.uid().unwrap_or_default()
        );
        let owners = |meta: &ObjectMeta| -> Vec<String> {
            meta.owner_references
                .iter()
                .flatten()
                .filter(|o| o.controller == Some(true))
                .map(|o| format!("{}/{}/{}", o.kind, o.name, o.uid))
                .collect()
        };

        let secret = secrets.get(name).await.expect("the disk's Secret");
        assert_eq!(owners(&secret.metadata), std::slice::from_ref(&owner));
        assert_eq!(secret.labels()["plan"], plan_uid);
        assert_eq!(text(&secret, "GOVMOMI_HOSTNAME"), vcenter_authority);
        assert_eq!(text(&secret, "GOVMOMI_USERNAME"), lab.username);
        assert_eq!(text(&secret, "GOVMOMI_PASSWORD"), lab.password);
        assert_eq!(text(&secret, "GOVMOMI_INSECURE"), "true");
        assert_eq!(text(&secret, "STORAGE_HOSTNAME"), array.url);
        assert_eq!(text(&secret, "STORAGE_USERNAME"), array.username);
        assert_eq!(text(&secret, "STORAGE_PASSWORD"), array.password);
        assert_eq!(text(&secret, "ONTAP_SVM"), array.svm);
        assert_eq!(text(&secret, "ESXI_CLONE_METHOD"), "ssh");
        let private_key = provider_keys.data.as_ref().expect("key data")["private-key"]
            .0
            .clone();
        assert_eq!(
            text(&secret, "SSH_PRIVATE_KEY"),
            base64::engine::general_purpose::STANDARD.encode(private_key)
        );

        let cr = crs.get(name).await.expect("the populator CR");
        assert_eq!(owners(&cr.metadata), [owner]);
        assert_eq!(cr.spec.vm_id.as_deref(), Some(vm_id.as_str()));
        assert_eq!(cr.spec.vmdk_path, file);
        assert_eq!(cr.spec.secret_name.as_deref(), Some(name.as_str()));
        assert_eq!(cr.spec.storage_vendor_product, "ontap");
        migration_hosts.push(cr.spec.migration_host.clone().unwrap_or_default());
    }
    assert_eq!(
        migration_hosts,
        [hosts[0].clone(), hosts[1].clone(), hosts[0].clone()],
        "the dedicated hosts taken least-loaded, ties by name"
    );
    let conditions = plan_conditions(&scratch, "plan-a").await;
    let planned_condition = conditions
        .iter()
        .find(|c| c["type"] == PLANNED)
        .unwrap_or_else(|| panic!("no {PLANNED} in {conditions:?}"));
    assert_eq!(planned_condition["category"], "Advisory");
    assert_eq!(planned_condition["items"].as_array().map(Vec::len), Some(3));
    assert!(
        planned_condition["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3 disks of 1 VM planned"),
        "{planned_condition}"
    );

    // A restart plans again and finds its own objects: the same ones, none added, the Secrets and
    // CRs not even rewritten.
    let snapshot = || async {
        let mut state = Vec::new();
        for secret in secrets
            .list(&ListParams::default().labels(&format!("plan={plan_uid}")))
            .await
            .expect("Secrets")
        {
            state.push(format!(
                "secret/{}/{}/{}",
                secret.name_any(),
                secret.uid().unwrap_or_default(),
                secret.resource_version().unwrap_or_default()
            ));
        }
        for pvc in pvcs.list(&ListParams::default()).await.expect("PVCs") {
            state.push(format!(
                "pvc/{}/{}",
                pvc.name_any(),
                pvc.uid().unwrap_or_default()
            ));
        }
        for cr in crs.list(&ListParams::default()).await.expect("CRs") {
            state.push(format!(
                "cr/{}/{}/{}",
                cr.name_any(),
                cr.uid().unwrap_or_default(),
                cr.resource_version().unwrap_or_default()
            ));
        }
        state
    };
    let before = snapshot().await;
    assert_eq!(before.len(), 9, "{before:?}");
    scratch.stop_planner().await;
    scratch.start_planner_with_shipped_role().await;
    let again = scratch
        .observe("plan-a planned after a restart", planned("plan-a"))
        .await;
    assert_eq!(applied(&again), names);
    assert_eq!(snapshot().await, before);

    scratch.finish().await;
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_plan_is_refused_with_its_vddk_disks_named_and_nothing_created() {
    let (lab, _dir, mut scratch) = start_with_lab("planner-mixed").await;
    create_migration_objects(&mut scratch, &lab, &[]).await;
    create_plan(&scratch, "mixed", &["vm-2"]).await;
    let observed = scratch
        .observe(
            "the mixed plan refused",
            plan_reconciled("mixed", |o| matches!(o, PlanOutcome::MixedUsage(_))),
        )
        .await;
    let Observed::Plan {
        outcome: PlanOutcome::MixedUsage(items),
        ..
    } = observed
    else {
        unreachable!("matched above")
    };
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(
        items[0].starts_with("VM vm-2 (vm-")
            && items[0].contains("disk [ds2] vm-2/vm-2_3.vmdk on datastore ds2"),
        "{}",
        items[0]
    );
    let conditions = plan_conditions(&scratch, "mixed").await;
    assert_eq!(conditions.len(), 1, "{conditions:?}");
    assert_eq!(conditions[0]["type"], MIXED_USAGE_CONDITION);
    assert_eq!(conditions[0]["category"], "Critical");
    assert_eq!(conditions[0]["reason"], "NotSupported");
    assert!(
        conditions[0]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("A migration plan cannot mix VDDK mappings with copy-offload mappings"),
        "{}",
        conditions[0]
    );
    let pvcs: Api<PersistentVolumeClaim> =
        Api::namespaced(scratch.client.clone(), &scratch.namespace);
    let secrets: Api<Secret> = Api::namespaced(scratch.client.clone(), &scratch.namespace);
    assert!(
        pvcs.list(&ListParams::default())
            .await
            .expect("PVCs")
            .items
            .is_empty()
    );
    assert!(
        populators(&scratch)
            .await
            .list(&ListParams::default())
            .await
            .expect("CRs")
            .items
            .is_empty()
    );
    assert!(
        secrets
            .list(&ListParams::default().labels("plan"))
            .await
            .expect("Secrets")
            .items
            .is_empty(),
        "no disk Secret"
    );

    // Status writes (the planner's own conditions above, Forklift's while it migrates) do not make
    // the planner ask vCenter again: with the lab gone, a Forklift condition written on the Plan
    // is answered from what was planned, and both conditions stay.
    scratch
        .observe(
            "the plan reconciled after its condition was written",
            plan_reconciled("mixed", |o| matches!(o, PlanOutcome::MixedUsage(_))),
        )
        .await;
    lab.shutdown().await;
    let mut with_forklifts = conditions.clone();
    with_forklifts.push(json!({
        "type": "Ready", "status": "True", "category": "Required",
        "message": "The migration plan is ready.", "lastTransitionTime": "2026-01-01T00:00:00Z",
    }));
    scratch
        .forklift("Plan")
        .patch_status(
            "mixed",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "conditions": with_forklifts } })),
        )
        .await
        .expect("Forklift's condition written");
    scratch
        .observe(
            "the plan reconciled after Forklift's status write",
            plan_reconciled("mixed", |o| matches!(o, PlanOutcome::MixedUsage(_))),
        )
        .await;
    let types: Vec<Value> = plan_conditions(&scratch, "mixed")
        .await
        .iter()
        .map(|c| c["type"].clone())
        .collect();
    assert_eq!(types, [json!(MIXED_USAGE_CONDITION), json!("Ready")]);
    scratch.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_plans_share_the_dedicated_hosts_least_loaded() {
    let (lab, _dir, mut scratch) = start_with_lab("planner-hosts").await;
    let hosts = dedicated_hosts(&scratch);
    create_migration_objects(&mut scratch, &lab, &hosts).await;
    let crs = populators(&scratch).await;
    let host_of = |name: String| {
        let crs = crs.clone();
        async move {
            crs.get(&name)
                .await
                .expect("the CR")
                .spec
                .migration_host
                .unwrap_or_default()
        }
    };

    create_plan(&scratch, "first", &["vm-1"]).await;
    let first = applied(
        &scratch
            .observe("the first plan planned", planned("first"))
            .await,
    );
    assert_eq!(first.len(), 1);
    assert_eq!(
        host_of(first[0].clone()).await,
        hosts[0],
        "both idle: by name"
    );

    create_plan(&scratch, "second", &["vm-3"]).await;
    let second = applied(
        &scratch
            .observe("the second plan planned", planned("second"))
            .await,
    );
    let mut taken = Vec::new();
    for name in second {
        taken.push(host_of(name).await);
    }
    assert_eq!(
        taken,
        [hosts[1].clone(), hosts[0].clone(), hosts[1].clone()],
        "the first plan's copy counts: b (idle), then a and b in turn"
    );
    scratch.finish().await;
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_is_planned_once_its_storage_map_appears_and_leaves_forklifts_pvc_alone() {
    let (lab, _dir, mut scratch) = start_with_lab("planner-late").await;
    create_provider(&mut scratch, &lab).await;

    // vm-1's id, as gathering reads it, through a map no plan of the cluster names.
    create_storage_map(&scratch, "probe", &[]).await;
    let mut probe = Plan::new("probe", Default::default());
    probe.metadata.namespace = Some(scratch.namespace.clone());
    probe.spec = serde_json::from_value(json!({
        "provider": { "source": { "name": "vcenter" } },
        "map": { "storage": { "name": "probe" } },
        "vms": [{ "name": "vm-1" }],
    }))
    .expect("a plan spec");
    let inputs = gather(&scratch.client, &probe)
        .await
        .expect("vm-1 read from vCenter");
    let vm_id = inputs.inventory[0].id.clone();

    create_plan(&scratch, "late", &["vm-1"]).await;
    scratch
        .observe(
            "the plan without its StorageMap reported",
            plan_reconciled("late", |o| matches!(o, PlanOutcome::Invalid(_))),
        )
        .await;
    let conditions = plan_conditions(&scratch, "late").await;
    assert_eq!(conditions.len(), 1, "{conditions:?}");
    assert_eq!(conditions[0]["type"], PLANNING_FAILED);
    let message = conditions[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "StorageMap {}/copy-offload does not exist",
            scratch.namespace
        )),
        "{message}"
    );

    // Forklift's controller got to the disk first.
    let name = disk_object_name(&scratch.namespace, "late", &vm_id, 2000);
    let forklifts = disk_objects(&scratch.namespace, &name).pvc;
    let pvcs: Api<PersistentVolumeClaim> =
        Api::namespaced(scratch.client.clone(), &scratch.namespace);
    pvcs.create(
        &PostParams {
            field_manager: Some("forklift-controller".into()),
            ..Default::default()
        },
        &forklifts,
    )
    .await
    .expect("Forklift's PVC");

    create_storage_map(&scratch, "copy-offload", &[]).await;
    let observed = scratch
        .observe(
            "the plan reconciled once its StorageMap exists",
            plan_reconciled("late", |o| matches!(o, PlanOutcome::Planned { .. })),
        )
        .await;
    let clash = format!(
        "PersistentVolumeClaim {}/{name}: exists, created by forklift-controller",
        scratch.namespace
    );
    assert_eq!(
        observed,
        Observed::Plan {
            namespace: scratch.namespace.clone(),
            name: "late".into(),
            outcome: PlanOutcome::Planned {
                applied: vec![],
                clashes: vec![clash.clone()],
            },
        }
    );
    let conditions = plan_conditions(&scratch, "late").await;
    assert_eq!(conditions.len(), 1, "{conditions:?}");
    assert_eq!(conditions[0]["type"], OBJECTS_NOT_OURS);
    assert_eq!(conditions[0]["category"], "Critical");
    assert_eq!(conditions[0]["items"], json!([clash]));
    let pvc = pvcs.get(&name).await.expect("Forklift's PVC");
    let managers: Vec<String> = pvc
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|entry| entry.manager.clone())
        .collect();
    assert!(!managers.iter().any(|m| m == FIELD_MANAGER), "{managers:?}");
    assert_eq!(
        pvc.spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref()),
        Some("array-block"),
        "Forklift's PVC is as Forklift wrote it"
    );
    let secrets: Api<Secret> = Api::namespaced(scratch.client.clone(), &scratch.namespace);
    assert!(secrets.get_opt(&name).await.expect("a read").is_none());
    assert!(
        populators(&scratch)
            .await
            .get_opt(&name)
            .await
            .expect("a read")
            .is_none()
    );
    scratch.finish().await;
    lab.shutdown().await;
}
