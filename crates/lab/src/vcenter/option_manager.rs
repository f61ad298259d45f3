//! OptionManager of a host (`configManager.advancedOption`, `EsxHostAdvSettings-NN`): the ESXi
//! advanced settings that decide whether and how a host offloads copies — `QueryOptions`,
//! `UpdateOptions` and the `setting` property.
//!
//! Each host starts from ESXi 8's defaults for these settings, overridden per host by the scenario's
//! `advanced_options`; `UpdateOptions` changes them for the lab's lifetime. Integer settings travel as
//! `xsd:long`, as on ESXi (a client that sends an `int` is refused with `InvalidArgument`).

use super::inventory::Inventory;
use super::soap::{Call, Fault};
use super::value::{Moref, Value, s};
use super::{OptionOverride, VcenterState};
use crate::scenario::AdvancedOptionValue;

/// ESXi 8.0 defaults of the advanced settings the lab models.
const DEFAULTS: &[(&str, i64)] = &[
    // Full copy (XCOPY) offload for clones and Storage vMotion.
    ("DataMover.HardwareAcceleratedMove", 1),
    // Block zeroing (WRITE SAME) offload.
    ("DataMover.HardwareAcceleratedInit", 1),
    // Largest XCOPY segment, in KiB.
    ("DataMover.MaxHWTransferSize", 4096),
    ("DataMover.MaxHeapSize", 64),
    // Atomic test-and-set locking.
    ("VMFS3.HardwareAcceleratedLocking", 1),
    ("VMFS3.UseATSForHBOnVMFS5", 1),
    // Highest LUN id a rescan probes, plus one.
    ("Disk.MaxLUN", 1024),
    ("Disk.QFullSampleSize", 0),
    ("Disk.QFullThreshold", 8),
    ("Disk.SchedNumReqOutstanding", 32),
];

/// Object id of the i-th host's option manager.
pub fn advanced_option_moid(index: usize) -> String {
    format!("EsxHostAdvSettings-{}", index + 10)
}

fn host_of(inv: &Inventory, obj: &Moref) -> Option<usize> {
    inv.host_by(&obj.value, "EsxHostAdvSettings-")
        .map(|(i, _)| i)
}

fn encode(value: &AdvancedOptionValue) -> Value {
    match value {
        AdvancedOptionValue::Long(v) => Value::Long(*v),
        AdvancedOptionValue::Str(v) => s(v.clone()),
    }
}

/// The host's settings in key order: defaults, then the scenario, then `UpdateOptions`.
fn settings(state: &VcenterState, index: usize) -> Vec<(String, AdvancedOptionValue)> {
    let mut out: Vec<(String, AdvancedOptionValue)> = DEFAULTS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), AdvancedOptionValue::Long(*v)))
        .collect();
    let mut set =
        |key: String, value: AdvancedOptionValue| match out.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => out.push((key, value)),
        };
    if let Some(host) = state.inventory.hosts.get(index) {
        for (key, value) in host.spec.advanced_option_overrides() {
            set(key, value);
        }
    }
    let updates: Vec<OptionOverride> = state
        .lock()
        .option_overrides
        .iter()
        .filter(|o| o.host == index)
        .cloned()
        .collect();
    for o in updates {
        set(o.key, o.value);
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn option_value(key: &str, value: &AdvancedOptionValue) -> Value {
    Value::obj(
        "OptionValue",
        vec![
            ("key", s(key)),
            ("value", Value::Any(Box::new(encode(value)))),
        ],
    )
}

pub(super) fn properties(state: &VcenterState, obj: &Moref) -> Option<Vec<(&'static str, Value)>> {
    let index = host_of(&state.inventory, obj)?;
    let setting = settings(state, index)
        .iter()
        .map(|(k, v)| option_value(k, v))
        .collect();
    Some(vec![("setting", Value::array("OptionValue", setting))])
}

pub(super) fn invoke(state: &VcenterState, call: &Call) -> Result<Option<Value>, Fault> {
    let index =
        // vCenter's own settings (`VpxSettings`) are not modelled.
        host_of(&state.inventory, &call.this).ok_or_else(|| Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        })?;
    match call.method.as_str() {
        "QueryOptions" => {
            let all = settings(state, index);
            let name = call
                .body
                .child_text("name")
                .map(str::trim)
                .unwrap_or_default();
            // A name ending in a dot selects a whole group; no name selects everything.
            let selected: Vec<Value> = all
                .iter()
                .filter(|(k, _)| {
                    name.is_empty() || *k == name || (name.ends_with('.') && k.starts_with(name))
                })
                .map(|(k, v)| option_value(k, v))
                .collect();
            if selected.is_empty() {
                return Err(Fault::InvalidName {
                    name: name.to_owned(),
                });
            }
            Ok(Some(Value::array("OptionValue", selected)))
        }
        "UpdateOptions" => {
            let all = settings(state, index);
            let mut changes = Vec::new();
            for change in call.body.children_named("changedValue") {
                let key = change
                    .child_text("key")
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                let Some((_, current)) = all.iter().find(|(k, _)| *k == key) else {
                    return Err(Fault::InvalidName { name: key });
                };
                let value = change.child("value");
                let kind = value.and_then(|v| v.xsi_type()).unwrap_or_default();
                let text = value.map(|v| v.text.trim()).unwrap_or_default();
                let invalid = || Fault::InvalidArgument {
                    property: key.clone(),
                };
                let new = match current {
                    AdvancedOptionValue::Long(_) if kind == "long" => {
                        AdvancedOptionValue::Long(text.parse().map_err(|_| invalid())?)
                    }
                    AdvancedOptionValue::Str(_) if kind == "string" => {
                        AdvancedOptionValue::Str(text.to_owned())
                    }
                    _ => return Err(invalid()),
                };
                changes.push(OptionOverride {
                    host: index,
                    key: key.clone(),
                    value: new,
                });
            }
            let mut mutable = state.lock();
            for change in changes {
                mutable
                    .option_overrides
                    .retain(|o| !(o.host == change.host && o.key == change.key));
                mutable.option_overrides.push(change);
            }
            drop(mutable);
            state.changed.notify_waiters();
            Ok(None)
        }
        _ => Err(Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        }),
    }
}
