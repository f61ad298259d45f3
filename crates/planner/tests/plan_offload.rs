//! The Plan controller against the real API server: the seed's example Plan, applied unchanged,
//! is left alone while `feature_copy_offload` is off and until it opts in with
//! `copy-offload.konveyor.io/plan: "true"`; nothing is created or written on it meanwhile.

mod support;

use co_api::VSphereXcopyVolumePopulator;
use co_api::contract::names::PLAN_OPT_IN_ANNOTATION;
use co_planner::{Observed, PlanOutcome};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
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

    set_opt_in(&scratch, SEED_PLAN_NAME, Some("true")).await;
    scratch
        .observe(
            "the opted-in plan reconciled with the flag on",
            plan_reconciled(SEED_PLAN_NAME, |o| *o == PlanOutcome::OptedIn),
        )
        .await;
    scratch.finish().await;
}
