//! The Plan controller: for each Forklift `Plan` that opts in (annotation
//! [`PLAN_OPT_IN_ANNOTATION`]`: "true"`), while `feature_copy_offload` is on, plans the copy of
//! every disk its StorageMap offloads and reports the result as conditions on the Plan.
//!
//! The opt-in exists because Forklift's own controller plans offloaded disks of every Plan where it
//! runs: two planners creating PVCs for the same disks would fight. A Plan without the annotation
//! (or with any other value) is never read further, and nothing is written to it.
//!
//! One reconcile: gather the Plan's inputs (cluster and vCenter), plan them ([`offload`]), write
//! each disk's objects ([`apply_disk`]), then the Plan's conditions — every one of them says what
//! to fix when something is wrong, and nothing is created then. Outages are retried with backoff.
//!
//! Re-evaluated when the Plan changes (adding the annotation included), when the StorageMap or
//! source Provider it names changes, and when the flag flips; a change of the Plan's status alone
//! is answered from the last result for its spec generation, so Forklift's frequent status writes
//! during a migration do not each open a vCenter session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use co_api::contract::ExitCode;
use co_api::contract::names::PLAN_OPT_IN_ANNOTATION;
use co_api::forklift::{Plan, Provider, StorageMap};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use crate::conditions::{self, Condition, category};
use crate::gather;
use crate::offload::{self, MIXED_USAGE_CONDITION, OffloadPlan};
use crate::{Context, Error, Observed};

mod apply;

pub use apply::{ApplyError, DiskApplied, FIELD_MANAGER, apply_disk};

/// The value of [`PLAN_OPT_IN_ANNOTATION`] that opts a Plan in.
pub const OPT_IN_VALUE: &str = "true";

/// What one reconcile of a Plan did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanOutcome {
    /// `feature_copy_offload` is off: nothing was looked at or written.
    Disabled,
    /// The Plan does not carry the opt-in annotation (or is being deleted): left to Forklift.
    NotOptedIn,
    /// No disk of the Plan is on a datastore mapped with `vsphereXcopyConfig`: nothing created,
    /// no condition.
    NothingToPlan,
    /// Some disks would be copied with VDDK and others offloaded: refused with
    /// `VDDKAndOffloadMixedUsage`, nothing created. The condition's items (one per VDDK disk).
    MixedUsage(Vec<String>),
    /// The Plan cannot be planned (what to fix, as the `OffloadPlanningFailed` condition says);
    /// nothing created.
    Invalid(String),
    /// Disks planned and applied.
    Planned {
        /// Name of each disk's PVC (= its Secret's and CR's) whose objects are as planned.
        applied: Vec<String>,
        /// Objects that someone else created, left untouched; their disks were not written.
        clashes: Vec<String>,
    },
}

/// Condition: the Plan cannot be planned; the message names what to fix.
pub const PLANNING_FAILED: &str = "OffloadPlanningFailed";
/// Condition: objects a disk needs exist already and were not created by copy-offload.
pub const OBJECTS_NOT_OURS: &str = "OffloadObjectsNotOurs";
/// Condition: how many disks were planned, and where their objects are.
pub const PLANNED: &str = "OffloadPlanned";
/// The condition types the Plan controller owns on a Plan.
const OWNED: &[&str] = &[
    MIXED_USAGE_CONDITION,
    PLANNING_FAILED,
    OBJECTS_NOT_OURS,
    PLANNED,
];

/// Whether `plan` asks copy-offload to plan its disks.
pub fn opted_in(plan: &Plan) -> bool {
    plan.annotations()
        .get(PLAN_OPT_IN_ANNOTATION)
        .is_some_and(|value| value.trim().eq_ignore_ascii_case(OPT_IN_VALUE))
}

/// The Plan controller's state: the planner's context, per Plan how many reconciles in a row
/// failed (for the retry backoff), and the settled results.
struct PlanContext {
    shared: Arc<Context>,
    failures: Mutex<HashMap<ObjectRef<Plan>, u32>>,
    settled: Arc<Mutex<Settled>>,
}

/// Per Plan, the spec generation last planned and what came of it, when nothing was left to fix.
/// A reconcile that finds the same generation was triggered by a status write (Forklift's, or the
/// planner's own conditions) and reports that outcome again instead of asking vCenter; a change of
/// the StorageMap or Provider the Plan names forgets the entry.
type Settled = HashMap<ObjectRef<Plan>, (Option<i64>, PlanOutcome)>;

/// Whether `outcome` stays right until the Plan, its StorageMap or its Provider changes.
fn is_settled(outcome: &PlanOutcome) -> bool {
    match outcome {
        PlanOutcome::NothingToPlan | PlanOutcome::MixedUsage(_) => true,
        PlanOutcome::Planned { clashes, .. } => clashes.is_empty(),
        PlanOutcome::Disabled | PlanOutcome::NotOptedIn | PlanOutcome::Invalid(_) => false,
    }
}

/// Locks `mutex`; a panic while holding it leaves only bookkeeping behind, so keep using it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// First retry after a failed reconcile; doubled per failure in a row up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(5);
/// How often a Plan that cannot be planned is looked at again.
const RECHECK_INVALID: Duration = Duration::from_secs(120);
/// Longest wait between retries of a Plan whose reconcile keeps failing.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// The wait before retrying a reconcile that failed `failures` times in a row (1 = first).
fn retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX)
}

/// Runs the Plan controller until `shutdown` resolves.
pub(crate) async fn run(
    context: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let plans = context.watched::<Plan>();
    let maps = context.watched::<StorageMap>();
    let providers = context.watched::<Provider>();
    let flag_changes = context.flag.changes();
    let settled = Arc::new(Mutex::new(Settled::new()));
    let context = Arc::new(PlanContext {
        shared: context,
        failures: Mutex::default(),
        settled: settled.clone(),
    });
    let controller = Controller::new(plans, watcher::Config::default());
    let plans_of_map = controller.store();
    let plans_of_provider = controller.store();
    let settled_of_provider = settled.clone();
    let results = controller
        // A fixed StorageMap or Provider is planned with, without waiting for the Plan to change.
        .watches(maps, watcher::Config::default(), move |map: StorageMap| {
            let plans = plans_naming(&plans_of_map, &map, |plan| plan.spec.map.storage.as_ref());
            forget(&settled, &plans);
            plans
        })
        .watches(
            providers,
            watcher::Config::default(),
            move |provider: Provider| {
                let plans = plans_naming(&plans_of_provider, &provider, |plan| {
                    plan.spec.provider.source.as_ref()
                });
                forget(&settled_of_provider, &plans);
                plans
            },
        )
        .reconcile_all_on(flag_changes)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context);
    crate::log_reconcile_errors(results, "plan").await;
}

/// The opted-in Plans whose reference (`reference_of`) names `object`.
fn plans_naming<K: Resource>(
    plans: &Store<Plan>,
    object: &K,
    reference_of: impl Fn(&Plan) -> Option<&ObjectReference>,
) -> Vec<ObjectRef<Plan>> {
    let namespace = object.meta().namespace.clone().unwrap_or_default();
    let name = object.meta().name.clone().unwrap_or_default();
    plans
        .state()
        .into_iter()
        .filter(|plan| opted_in(plan))
        .filter(|plan| {
            reference_of(plan).is_some_and(|reference| {
                let plan_namespace = plan.namespace().unwrap_or_default();
                let referenced_namespace = reference
                    .namespace
                    .as_deref()
                    .filter(|namespace| !namespace.is_empty())
                    .unwrap_or(&plan_namespace);
                referenced_namespace == namespace && reference.name.as_deref() == Some(&name)
            })
        })
        .map(|plan| ObjectRef::from_obj(&*plan))
        .collect()
}

fn forget(settled: &Mutex<Settled>, plans: &[ObjectRef<Plan>]) {
    let mut settled = lock(settled);
    for plan in plans {
        settled.remove(plan);
    }
}

async fn reconcile(plan: Arc<Plan>, context: Arc<PlanContext>) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(&*plan);
    let generation = plan.metadata.generation;
    let earlier = lock(&context.settled)
        .get(&key)
        .filter(|(planned, _)| *planned == generation)
        .map(|(_, outcome)| outcome.clone());
    let outcome = match earlier {
        Some(outcome)
            if context.shared.flag.enabled()
                && opted_in(&plan)
                && plan.metadata.deletion_timestamp.is_none() =>
        {
            outcome
        }
        _ => reconcile_plan(&plan, &context.shared).await?,
    };
    if is_settled(&outcome) {
        lock(&context.settled).insert(key.clone(), (generation, outcome.clone()));
    } else {
        lock(&context.settled).remove(&key);
    }
    context.failures().remove(&key);
    // What a person fixes may be outside the objects watched here (a storage Secret, a VM in
    // vCenter): look again now and then.
    let action = match outcome {
        PlanOutcome::Invalid(_) => Action::requeue(RECHECK_INVALID),
        _ => Action::await_change(),
    };
    context.shared.observe(Observed::Plan {
        namespace: plan.namespace().unwrap_or_default(),
        name: plan.name_any(),
        outcome,
    });
    Ok(action)
}

async fn reconcile_plan(plan: &Plan, context: &Context) -> Result<PlanOutcome, Error> {
    if !context.flag.enabled() {
        return Ok(PlanOutcome::Disabled);
    }
    if !opted_in(plan) || plan.metadata.deletion_timestamp.is_some() {
        return Ok(PlanOutcome::NotOptedIn);
    }
    let planning = match gather::gather(&context.client, plan).await {
        Ok(inputs) => offload::plan_offload(&inputs).map_err(|error| error.to_string()),
        // What a person must fix is reported on the Plan; an outage is retried.
        Err(error) if error.exit_code() == ExitCode::Permanent => Err(error.to_string()),
        Err(error) => return Err(Error::Gather(error)),
    };
    settle(&context.client, plan, planning).await
}

/// Writes what planning concluded: the disks' objects, then the Plan's conditions.
async fn settle(
    client: &Client,
    plan: &Plan,
    planning: Result<offload::PlanOutcome, String>,
) -> Result<PlanOutcome, Error> {
    let (outcome, wanted) = match planning {
        Err(problem) => {
            tracing::warn!(plan = %plan.name_any(), %problem, "the plan cannot be planned for copy offload");
            let condition = Condition {
                type_: PLANNING_FAILED.into(),
                category: category::CRITICAL,
                reason: "CannotPlan".into(),
                message: format!(
                    "Copy offload cannot plan this plan's disks: {problem}. Nothing was created or changed."
                ),
                items: vec![],
            };
            (PlanOutcome::Invalid(problem), vec![condition])
        }
        Ok(offload::PlanOutcome::NothingToPlan) => (PlanOutcome::NothingToPlan, vec![]),
        Ok(offload::PlanOutcome::MixedUsage(mixed)) => {
            let condition = offload::mixed_usage_condition(&mixed);
            (
                PlanOutcome::MixedUsage(condition.items.clone()),
                vec![condition],
            )
        }
        Ok(offload::PlanOutcome::Planned(planned)) => apply_plan(client, &planned).await?,
    };
    report(client, plan, &wanted).await?;
    Ok(outcome)
}

/// Applies every planned disk; the outcome and the conditions saying how it went.
async fn apply_plan(
    client: &Client,
    planned: &OffloadPlan,
) -> Result<(PlanOutcome, Vec<Condition>), Error> {
    let mut applied = Vec::new();
    let mut applied_items = Vec::new();
    let mut vms = Vec::new();
    let mut clashes = Vec::new();
    for disk in &planned.disks {
        match apply_disk(client, disk).await? {
            DiskApplied::Applied => {
                let name = disk.pvc.name_any();
                let host = disk
                    .populator
                    .spec
                    .migration_host
                    .as_deref()
                    .map(|host| format!(", cloned on {host}"))
                    .unwrap_or_default();
                applied_items.push(format!(
                    "VM {} disk {} → PVC {name}{host}",
                    disk.vm_name, disk.disk_file
                ));
                if !vms.contains(&disk.vm_id) {
                    vms.push(disk.vm_id.clone());
                }
                applied.push(name);
            }
            DiskApplied::Clash(found) => clashes.extend(found),
        }
    }
    let mut wanted = Vec::new();
    if !applied.is_empty() {
        tracing::info!(
            namespace = %planned.namespace,
            disks = applied.len(),
            "disks planned for copy offload"
        );
        wanted.push(Condition {
            type_: PLANNED.into(),
            category: category::ADVISORY,
            reason: "DisksPlanned".into(),
            message: format!(
                "{} of {} VM{} planned for copy offload in namespace {}: each has a Secret, a \
                 Block PVC and a VSphereXcopyVolumePopulator of the same name.",
                count(applied.len(), "disk"),
                vms.len(),
                if vms.len() == 1 { "" } else { "s" },
                planned.namespace
            ),
            items: applied_items,
        });
    }
    if !clashes.is_empty() {
        tracing::warn!(
            namespace = %planned.namespace,
            objects = clashes.len(),
            "objects of planned disks exist and belong to someone else; left untouched"
        );
        wanted.push(Condition {
            type_: OBJECTS_NOT_OURS.into(),
            category: category::CRITICAL,
            reason: "CreatedByOthers".into(),
            message: format!(
                "{} this plan's disks need already exist and were not created by copy-offload \
                 (Forklift's controller may be planning this plan too). They are left untouched \
                 and their disks were not planned: remove the annotation {PLAN_OPT_IN_ANNOTATION} \
                 to leave the plan to Forklift, or delete those objects.",
                count(clashes.len(), "object")
            ),
            items: clashes.clone(),
        });
    }
    Ok((PlanOutcome::Planned { applied, clashes }, wanted))
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Writes `wanted` as the Plan's conditions of the types this controller owns.
async fn report(client: &Client, plan: &Plan, wanted: &[Condition]) -> Result<(), Error> {
    let resource = ApiResource::erase::<Plan>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &plan.namespace().unwrap_or_default(),
        &resource,
    );
    let current = api.get(&plan.name_any()).await.map_err(Error::Status)?;
    conditions::replace_owned(&api, &current, OWNED, wanted)
        .await
        .map_err(Error::Status)?;
    Ok(())
}

impl PlanContext {
    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<Plan>, u32>> {
        lock(&self.failures)
    }
}

fn error_policy(plan: Arc<Plan>, error: &Error, context: Arc<PlanContext>) -> Action {
    let failures = {
        let mut all = context.failures();
        let count = all.entry(ObjectRef::from_obj(&*plan)).or_insert(0);
        *count = count.saturating_add(1);
        *count
    };
    let wait = retry_after(failures);
    tracing::warn!(
        plan = %plan.name_any(),
        %error,
        failures,
        retry_in_seconds = wait.as_secs(),
        "plan reconcile failed; retrying"
    );
    Action::requeue(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_annotated(value: Option<&str>) -> Plan {
        let mut plan = Plan::new("p", Default::default());
        if let Some(value) = value {
            plan.annotations_mut()
                .insert(PLAN_OPT_IN_ANNOTATION.into(), value.into());
        }
        plan
    }

    #[test]
    fn a_map_or_provider_change_reaches_the_opted_in_plans_naming_it() {
        let (plans, mut writer) = kube::runtime::reflector::store::<Plan>();
        let plan = |name: &str, opt_in: bool, map_namespace: Option<&str>| {
            let mut plan = plan_annotated(opt_in.then_some("true"));
            plan.metadata.name = Some(name.into());
            plan.metadata.namespace = Some("mtv".into());
            plan.spec.map.storage = Some(ObjectReference {
                name: Some("copy-offload".into()),
                namespace: map_namespace.map(Into::into),
                ..Default::default()
            });
            plan
        };
        for plan in [
            plan("same-namespace-implied", true, None),
            plan("same-namespace-empty", true, Some("")),
            plan("same-namespace-named", true, Some("mtv")),
            plan("other-namespace", true, Some("elsewhere")),
            plan("not-opted-in", false, Some("mtv")),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(plan));
        }
        let mut map = StorageMap::new("copy-offload", Default::default());
        map.metadata.namespace = Some("mtv".into());
        let mut reached: Vec<String> = plans_naming(&plans, &map, |p| p.spec.map.storage.as_ref())
            .into_iter()
            .map(|reference| reference.name)
            .collect();
        reached.sort();
        assert_eq!(
            reached,
            [
                "same-namespace-empty",
                "same-namespace-implied",
                "same-namespace-named"
            ]
        );
    }

    #[test]
    fn only_results_with_nothing_to_fix_are_kept() {
        assert!(is_settled(&PlanOutcome::NothingToPlan));
        assert!(is_settled(&PlanOutcome::MixedUsage(vec!["d".into()])));
        assert!(is_settled(&PlanOutcome::Planned {
            applied: vec!["pvc".into()],
            clashes: vec![],
        }));
        assert!(!is_settled(&PlanOutcome::Planned {
            applied: vec![],
            clashes: vec!["PersistentVolumeClaim ns/pvc: exists".into()],
        }));
        assert!(!is_settled(&PlanOutcome::Invalid("no map".into())));
        assert!(!is_settled(&PlanOutcome::Disabled));
        assert!(!is_settled(&PlanOutcome::NotOptedIn));
    }

    #[test]
    fn retries_back_off_from_five_seconds_to_five_minutes() {
        let waits: Vec<u64> = [1, 2, 3, 4, 6, 7, 40, u32::MAX]
            .into_iter()
            .map(|failures| retry_after(failures).as_secs())
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 160, 300, 300, 300]);
    }

    #[test]
    fn only_the_annotation_set_to_true_opts_in() {
        assert!(opted_in(&plan_annotated(Some("true"))));
        assert!(opted_in(&plan_annotated(Some(" True "))));
        assert!(!opted_in(&plan_annotated(Some("false"))));
        assert!(!opted_in(&plan_annotated(Some(""))));
        assert!(!opted_in(&plan_annotated(None)));
    }
}
