//! OptionManager of a host (`configManager.advancedOption`, `EsxHostAdvSettings-NN`): the ESXi
//! advanced settings that decide whether and how a host offloads copies — `QueryOptions`,
//! `UpdateOptions` (within each setting's range) and the `setting` and `supportedOption` properties.
//! esxcli's `system settings advanced list` reads the same settings.
//!
//! Each host starts from ESXi 8's defaults for these settings, overridden per host by the scenario's
//! `advanced_options`; `UpdateOptions` changes them for the lab's lifetime. Integer settings travel as
//! `xsd:long`, as on ESXi (a client that sends an `int` is refused with `InvalidArgument`).

use super::inventory::Inventory;
use super::soap::{Call, Fault};
use super::value::{Moref, Value, s};
use super::{OptionOverride, VcenterState};
use crate::scenario::AdvancedOptionValue;

/// An integer advanced setting as ESXi defines it.
#[derive(Debug)]
pub(crate) struct OptionDef {
    pub key: &'static str,
    pub default: i64,
    pub min: i64,
    pub max: i64,
    pub description: &'static str,
}

const fn def(
    key: &'static str,
    default: i64,
    min: i64,
    max: i64,
    description: &'static str,
) -> OptionDef {
    OptionDef {
        key,
        default,
        min,
        max,
        description,
    }
}

/// The advanced settings the lab models, with ESXi 8.0's defaults and ranges.
const DEFINITIONS: &[OptionDef] = &[
    def(
        "DataMover.HardwareAcceleratedMove",
        1,
        0,
        1,
        "Enable hardware accelerated VMFS data movement (full copy, XCOPY; requires compliant hardware)",
    ),
    def(
        "DataMover.HardwareAcceleratedInit",
        1,
        0,
        1,
        "Enable hardware accelerated VMFS data initialization (block zeroing; requires compliant hardware)",
    ),
    def(
        "DataMover.MaxHWTransferSize",
        4096,
        4,
        16384,
        "Maximum transfer size in KB of one hardware assisted data movement (XCOPY segment)",
    ),
    def(
        "DataMover.MaxHeapSize",
        64,
        2,
        256,
        "Maximum size of the heap in MB used for data movement",
    ),
    def(
        "VMFS3.HardwareAcceleratedLocking",
        1,
        0,
        1,
        "Enable hardware accelerated VMFS locking (atomic test and set; requires compliant hardware)",
    ),
    def(
        "VMFS3.UseATSForHBOnVMFS5",
        1,
        0,
        1,
        "Use ATS for heartbeats on ATS supported VMFS5 volumes",
    ),
    def(
        "Disk.MaxLUN",
        1024,
        1,
        1024,
        "Maximum LUN id that is scanned on a target, plus one",
    ),
    def(
        "Disk.QFullSampleSize",
        0,
        0,
        64,
        "I/O samples to monitor for a non-transient queue full condition; nonzero enables queue depth throttling",
    ),
    def(
        "Disk.QFullThreshold",
        8,
        1,
        16,
        "BUSY or QFULL answers after which a LUN's queue depth is throttled",
    ),
    def(
        "Disk.SchedNumReqOutstanding",
        32,
        1,
        256,
        "Number of outstanding commands to a target with competing worlds",
    ),
];

/// One setting of a host: its key, current value and, for the settings the lab models, ESXi's
/// definition.
#[derive(Debug, Clone)]
pub(crate) struct AdvancedSetting {
    pub key: String,
    pub value: AdvancedOptionValue,
    pub def: Option<&'static OptionDef>,
}

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

/// The i-th host's settings in key order: defaults, then the scenario, then `UpdateOptions`.
pub(crate) fn host_settings(state: &VcenterState, index: usize) -> Vec<AdvancedSetting> {
    let mut out: Vec<AdvancedSetting> = DEFINITIONS
        .iter()
        .map(|d| AdvancedSetting {
            key: d.key.to_owned(),
            value: AdvancedOptionValue::Long(d.default),
            def: Some(d),
        })
        .collect();
    let mut set =
        |key: String, value: AdvancedOptionValue| match out.iter_mut().find(|s| s.key == key) {
            Some(entry) => entry.value = value,
            None => out.push(AdvancedSetting {
                key,
                value,
                def: None,
            }),
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
    out.sort_by(|a, b| a.key.cmp(&b.key));
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

/// `OptionDef` of a modelled setting, as `supportedOption` lists it.
fn option_def(def: &OptionDef) -> Value {
    Value::obj(
        "OptionDef",
        vec![
            ("label", s(def.key)),
            ("summary", s(def.description)),
            ("key", s(def.key)),
            (
                "optionType",
                Value::obj(
                    "LongOption",
                    vec![
                        ("valueIsReadonly", Value::Bool(false)),
                        ("min", Value::Long(def.min)),
                        ("max", Value::Long(def.max)),
                        ("defaultValue", Value::Long(def.default)),
                    ],
                ),
            ),
        ],
    )
}

pub(super) fn properties(state: &VcenterState, obj: &Moref) -> Option<Vec<(&'static str, Value)>> {
    let index = host_of(&state.inventory, obj)?;
    let setting = host_settings(state, index)
        .iter()
        .map(|s| option_value(&s.key, &s.value))
        .collect();
    let supported = DEFINITIONS.iter().map(option_def).collect();
    Some(vec![
        ("supportedOption", Value::array("OptionDef", supported)),
        ("setting", Value::array("OptionValue", setting)),
    ])
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
            let all = host_settings(state, index);
            let name = call
                .body
                .child_text("name")
                .map(str::trim)
                .unwrap_or_default();
            // A name ending in a dot selects a whole group; no name selects everything.
            let selected: Vec<Value> = all
                .iter()
                .filter(|s| {
                    name.is_empty()
                        || s.key == name
                        || (name.ends_with('.') && s.key.starts_with(name))
                })
                .map(|s| option_value(&s.key, &s.value))
                .collect();
            if selected.is_empty() {
                return Err(Fault::InvalidName {
                    name: name.to_owned(),
                });
            }
            Ok(Some(Value::array("OptionValue", selected)))
        }
        "UpdateOptions" => {
            let all = host_settings(state, index);
            let mut changes = Vec::new();
            for change in call.body.children_named("changedValue") {
                let key = change
                    .child_text("key")
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                let Some(current) = all.iter().find(|s| s.key == key) else {
                    return Err(Fault::InvalidName { name: key });
                };
                let value = change.child("value");
                let kind = value.and_then(|v| v.xsi_type()).unwrap_or_default();
                let text = value.map(|v| v.text.trim()).unwrap_or_default();
                let invalid = || Fault::InvalidArgument {
                    property: key.clone(),
                };
                let new = match &current.value {
                    AdvancedOptionValue::Long(_) if kind == "long" => {
                        let v: i64 = text.parse().map_err(|_| invalid())?;
                        if current.def.is_some_and(|d| v < d.min || v > d.max) {
                            return Err(invalid());
                        }
                        AdvancedOptionValue::Long(v)
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
