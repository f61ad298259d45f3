//! The Plan controller against the real API server: the seed's example Plan, applied unchanged,
//! is left alone while `feature_copy_offload` is off and until it opts in with
//! `copy-offload.konveyor.io/plan: "true"`; nothing is created or written on it meanwhile. A
//! disk's objects are applied Secret, PVC, CR, owned by the PVC, idempotently, and never over an
//! object someone else created.

mod support;

use std::collections::BTreeMap;

use co_api::contract::names::PLAN_OPT_IN_ANNOTATION;
use co_api::{VSphereXcopyVolumePopulator, VSphereXcopyVolumePopulatorSpec};
use co_planner::offload::PlannedDisk;
use co_planner::plan::{DiskApplied, FIELD_MANAGER, PLANNING_FAILED, apply_disk};
use co_planner::{Observed, PlanOutcome};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret, TypedObjectReference,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use support::Scratch;

const SEED_PLAN: &str = include_str!("fixtures/seed-plan.yaml");
const SEED_PLAN_NAME: &str = "my-plan";

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
    scratch.apply_manifest(SEED_PLAN, "openshift-mtv").await;
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

    set_opt_in(&scratch, SEED_PLAN_NAME, None).await;
    scratch.set_flag_on_forklift_controller("true").await;
    scratch
        .observe(
            "the plan without opt-in reconciled with the flag on",
            plan_reconciled(SEED_PLAN_NAME, |o| *o == PlanOutcome::NotOptedIn),
        )
        .await;
    assert_eq!(created_objects(&scratch).await, Vec::<String>::new());
    assert_eq!(
        plan_conditions(&scratch, SEED_PLAN_NAME).await,
        Vec::<Value>::new()
    );

    // The seed's snippet shows only the map part of a Plan: once it opts in, what is missing is
    // named on it, and nothing is created.
    set_opt_in(&scratch, SEED_PLAN_NAME, Some("true")).await;
    scratch
        .observe(
            "the opted-in plan reconciled with the flag on",
            plan_reconciled(SEED_PLAN_NAME, |o| matches!(o, PlanOutcome::Invalid(_))),
        )
        .await;
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
async fn a_disk_is_applied_owned_by_its_pvc_once_and_never_over_someone_elses_pvc() {
    let scratch = Scratch::new("planner-apply").await;
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
