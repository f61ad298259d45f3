//! Conditions the planner writes into the status of Forklift's objects (`Provider`, `StorageMap`,
//! `Plan`), in Forklift's own shape (`type`, `status`, `category`, `reason`, `message`, `items`,
//! `lastTransitionTime`) so its UI and `oc describe` show them like Forklift's.
//!
//! Forklift's controller owns the rest of those lists: a write replaces only the condition types
//! the caller owns, carries the object's `resourceVersion` (a concurrent writer makes it fail and
//! the reconcile retry), and is skipped when nothing changed, so watching the object does not
//! loop.

use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

/// Forklift's condition categories.
pub mod category {
    /// Blocks the plan.
    pub const CRITICAL: &str = "Critical";
    /// Something to fix; the plan may still run.
    pub const WARN: &str = "Warn";
    /// For information.
    pub const ADVISORY: &str = "Advisory";
}

/// One condition as the planner reports it (`status` is always `"True"`: Forklift removes a
/// condition that no longer holds instead of setting it false).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// e.g. `VDDKAndOffloadMixedUsage`.
    pub type_: String,
    /// One of [`category`].
    pub category: &'static str,
    /// CamelCase reason.
    pub reason: String,
    /// What is wrong and what to do.
    pub message: String,
    /// The objects concerned (VMs, disks, hosts).
    pub items: Vec<String>,
}

impl Condition {
    fn to_json(&self, last_transition: &str) -> Value {
        let mut value = json!({
            "type": self.type_,
            "status": "True",
            "category": self.category,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": last_transition,
        });
        if !self.items.is_empty() {
            value["items"] = json!(self.items);
        }
        value
    }
}

/// Replaces the conditions of `owned_types` on `object` by `wanted`. Returns whether a write
/// happened.
pub async fn replace_owned(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    owned_types: &[&str],
    wanted: &[Condition],
) -> Result<bool, kube::Error> {
    let current = object
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(next) = merged(
        &current,
        owned_types,
        wanted,
        &jiff::Timestamp::now().to_string(),
    ) else {
        return Ok(false);
    };
    let name = object.metadata.name.clone().unwrap_or_default();
    let patch = json!({
        "metadata": { "resourceVersion": object.metadata.resource_version },
        "status": { "conditions": next },
    });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(true)
}

/// The new condition list, or `None` when it equals `current` (ignoring transition times).
fn merged(
    current: &[Value],
    owned_types: &[&str],
    wanted: &[Condition],
    now: &str,
) -> Option<Vec<Value>> {
    let type_of = |c: &Value| {
        c.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let mut next: Vec<Value> = current
        .iter()
        .filter(|c| !owned_types.contains(&type_of(c).as_str()))
        .cloned()
        .collect();
    for condition in wanted {
        let previous = current.iter().find(|c| type_of(c) == condition.type_);
        let since = previous
            .and_then(|c| c.get("lastTransitionTime"))
            .and_then(Value::as_str)
            .unwrap_or(now);
        next.push(condition.to_json(since));
    }
    let without_time = |list: &[Value]| -> Vec<Value> {
        let mut list: Vec<Value> = list
            .iter()
            .map(|c| {
                let mut c = c.clone();
                if let Some(map) = c.as_object_mut() {
                    map.remove("lastTransitionTime");
                }
                c
            })
            .collect();
        list.sort_by_key(|c| c.to_string());
        list
    };
    (without_time(current) != without_time(&next)).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh_not_ready(message: &str) -> Condition {
        Condition {
            type_: "SSHNotReady".into(),
            category: category::WARN,
            reason: "SSHConnectivityFailed".into(),
            message: message.into(),
            items: vec!["host-1".into()],
        }
    }

    #[test]
    fn others_conditions_stay_and_an_unchanged_list_is_not_written() {
        let forklift = json!({"type": "Ready", "status": "True", "category": "Required"});
        let first = merged(
            std::slice::from_ref(&forklift),
            &["SSHNotReady"],
            &[ssh_not_ready("a")],
            "t1",
        )
        .expect("a change");
        assert_eq!(first.len(), 2);
        assert_eq!(first[0], forklift);
        assert_eq!(first[1]["items"], json!(["host-1"]));
        assert_eq!(
            merged(&first, &["SSHNotReady"], &[ssh_not_ready("a")], "t2"),
            None
        );
        let changed = merged(&first, &["SSHNotReady"], &[ssh_not_ready("b")], "t2").unwrap();
        assert_eq!(
            changed[1]["lastTransitionTime"], "t1",
            "same type keeps its time"
        );
        let cleared = merged(&first, &["SSHNotReady"], &[], "t3").unwrap();
        assert_eq!(cleared, vec![forklift]);
    }
}
