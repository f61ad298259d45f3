//! `copy-offload plan --dry-run -n NS PLAN`: what the planner would create for a Forklift Plan —
//! per offloaded disk the PVC, the `VSphereXcopyVolumePopulator` and the Secret, as YAML with
//! the Secrets' values redacted — or why it would refuse (the mixed-usage condition, or an error
//! naming what to fix). It reads the same inputs as the planner's reconcile, with the same
//! function, and writes nothing.

use std::path::PathBuf;

use co_api::Plan;
use co_api::contract::ExitCode;
use co_planner::conditions::Condition;
use co_planner::gather::gather;
use co_planner::offload::{OffloadPlan, PlanOutcome, mixed_usage_condition, plan_offload};
use kube::Api;
use serde_json::{Value, json};

/// `copy-offload plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Print what would be created instead of creating it (required: creating is the planner
    /// controller's job, see docs/planner.md).
    #[arg(long)]
    pub dry_run: bool,
    /// Namespace of the Plan.
    #[arg(long, short = 'n')]
    pub namespace: String,
    /// Name of the Plan.
    pub plan: String,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// Runs `plan`: YAML on stdout, problems on stderr, and the exit code.
pub async fn run(args: &PlanArgs) -> ExitCode {
    if !args.dry_run {
        eprintln!(
            "copy-offload plan: only --dry-run is supported; the planner controller \
             (`copy-offload controller`) creates these objects for plans that opt in \
             (docs/planner.md)"
        );
        return ExitCode::BadArguments;
    }
    let client = match co_preflight::cluster::client(args.kubeconfig.as_deref()).await {
        Ok(client) => client,
        Err(error) => {
            eprintln!("copy-offload plan: {error}");
            return ExitCode::Permanent;
        }
    };
    let plans: Api<Plan> = Api::namespaced(client.clone(), &args.namespace);
    let plan = match plans.get_opt(&args.plan).await {
        Ok(Some(plan)) => plan,
        Ok(None) => {
            eprintln!(
                "copy-offload plan: Plan {}/{} does not exist; check the name and the namespace \
                 (`kubectl get plans.forklift.konveyor.io -n {}`)",
                args.namespace, args.plan, args.namespace
            );
            return ExitCode::Permanent;
        }
        Err(error) => {
            eprintln!(
                "copy-offload plan: reading Plan {}/{}: {error}",
                args.namespace, args.plan
            );
            return ExitCode::Retryable;
        }
    };
    let inputs = match gather(&client, &plan).await {
        Ok(inputs) => inputs,
        Err(error) => {
            eprintln!("copy-offload plan: {error}");
            return error.exit_code();
        }
    };
    let subject = format!("{}/{}", args.namespace, args.plan);
    match plan_offload(&inputs) {
        Ok(PlanOutcome::Planned(plan)) => {
            print!("{}", planned_yaml(&subject, &plan));
            ExitCode::Success
        }
        Ok(PlanOutcome::NothingToPlan) => {
            println!(
                "# Plan {subject}: nothing to plan: no disk of its VMs is on a datastore its \
                 StorageMap maps with offloadPlugin.vsphereXcopyConfig."
            );
            ExitCode::Success
        }
        Ok(PlanOutcome::MixedUsage(mixed)) => {
            let condition = mixed_usage_condition(&mixed);
            print!(
                "# Plan {subject} is refused: the planner sets this condition on it.\n{}",
                yaml(&condition_json(&condition))
            );
            eprintln!("copy-offload plan: {}", condition.message);
            ExitCode::Permanent
        }
        Err(error) => {
            eprintln!("copy-offload plan: {error}");
            error.exit_code()
        }
    }
}

fn condition_json(condition: &Condition) -> Value {
    json!({
        "type": condition.type_,
        "status": "True",
        "category": condition.category,
        "reason": condition.reason,
        "message": condition.message,
        "items": condition.items,
    })
}

fn yaml(value: &Value) -> String {
    // A serde_json::Value always has a YAML form.
    serde_yaml::to_string(value).unwrap_or_default()
}

/// The objects as YAML documents, each disk's PVC, populator and Secret in turn; the Secrets'
/// values replaced by their length.
fn planned_yaml(subject: &str, plan: &OffloadPlan) -> String {
    let mut out = format!(
        "# Plan {subject}: {} disk(s) offloaded into namespace {}. The Secret and the \
         VSphereXcopyVolumePopulator get the PVC as owner once it exists.\n",
        plan.disks.len(),
        plan.namespace
    );
    for skipped in &plan.skipped {
        out.push_str(&format!(
            "# not planned: VM {} disk {}: {}\n",
            skipped.vm_name, skipped.disk_file, skipped.reason
        ));
    }
    for disk in &plan.disks {
        let mut secret = serde_json::to_value(&disk.secret).unwrap_or_default();
        if let Some(data) = secret.get_mut("data").and_then(Value::as_object_mut) {
            let lengths = disk.secret.data.iter().flatten();
            for (key, value) in lengths {
                data.insert(
                    key.clone(),
                    json!(format!("<redacted: {} bytes>", value.0.len())),
                );
            }
        }
        for object in [
            serde_json::to_value(&disk.pvc).unwrap_or_default(),
            serde_json::to_value(&disk.populator).unwrap_or_default(),
            secret,
        ] {
            out.push_str("---\n");
            out.push_str(&yaml(&object));
        }
    }
    out
}
