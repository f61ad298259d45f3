//! SearchIndex: finding a managed entity by inventory path, datastore path, UUID, DNS name or IP, and
//! `FindChild`. Not finding one is an empty answer, never a fault, as on vCenter.

use super::VcenterState;
use super::host_system::hardware_uuid;
use super::inventory::{DATACENTER, ROOT_FOLDER};
use super::soap::{Call, Fault, moref_of};
use super::value::{Moref, Value};
use crate::host::SimHost;

fn name_of(state: &VcenterState, session: &str, obj: &Moref) -> Option<String> {
    state
        .properties(session, obj)?
        .into_iter()
        .find(|(n, _)| *n == "name")
        .and_then(|(_, v)| match v {
            Value::Str(name) => Some(name),
            _ => None,
        })
}

fn child_named(state: &VcenterState, session: &str, parent: &Moref, name: &str) -> Option<Moref> {
    state
        .inventory
        .children(parent)
        .into_iter()
        .find(|c| name_of(state, session, c).as_deref() == Some(name))
}

/// Inventory paths name entities from the root folder down (`DC0/vm/vm-1`); a `/` inside a name is
/// written `%2f`, and a leading `/` is allowed.
fn by_inventory_path(state: &VcenterState, session: &str, path: &str) -> Option<Moref> {
    let mut current = Moref::new("Folder", ROOT_FOLDER);
    for segment in path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
    {
        let name = segment.replace("%2f", "/").replace("%2F", "/");
        current = child_named(state, session, &current, &name)?;
    }
    Some(current)
}

/// The datacenter argument, if given, must be the lab's datacenter.
fn datacenter_matches(call: &Call) -> Result<bool, Fault> {
    match call.body.child("datacenter") {
        None => Ok(true),
        Some(element) => {
            let dc = moref_of(element).ok_or_else(|| Fault::InvalidArgument {
                property: "datacenter".into(),
            })?;
            if dc.kind != "Datacenter" {
                return Err(Fault::InvalidArgument {
                    property: "datacenter".into(),
                });
            }
            Ok(dc.value == DATACENTER)
        }
    }
}

fn flag(call: &Call, name: &str) -> bool {
    call.body
        .child_text(name)
        .is_some_and(|v| v.trim() == "true" || v.trim() == "1")
}

/// Every entity matching a UUID (`vmSearch` picks VMs or hosts; `instanceUuid` picks the VM's
/// vCenter id instead of its BIOS UUID).
fn by_uuid(state: &VcenterState, call: &Call) -> Vec<Moref> {
    let uuid = call
        .body
        .child_text("uuid")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let inv = &state.inventory;
    if flag(call, "vmSearch") {
        let instance = flag(call, "instanceUuid");
        inv.vms
            .iter()
            .filter(|vm| {
                let id = if instance {
                    &vm.instance_uuid
                } else {
                    &vm.uuid
                };
                id.to_ascii_lowercase() == uuid
            })
            .map(|vm| Moref::new("VirtualMachine", vm.moid.clone()))
            .collect()
    } else {
        (0..inv.hosts.len())
            .filter(|i| hardware_uuid(&inv.hosts[*i]) == uuid)
            .map(|i| inv.host_ref(i))
            .collect()
    }
}

/// The hosts `matches` accepts, unless the call searches VMs: VMs are found by the guest's host name
/// or IP, which need VMware Tools, and the lab's VMs run none.
fn hosts_where(
    state: &VcenterState,
    call: &Call,
    matches: impl Fn(&SimHost) -> bool,
) -> Vec<Moref> {
    if flag(call, "vmSearch") {
        return Vec::new();
    }
    let inv = &state.inventory;
    (0..inv.hosts.len())
        .filter(|i| matches(&inv.hosts[*i]))
        .map(|i| inv.host_ref(i))
        .collect()
}

fn one(found: Vec<Moref>) -> Option<Value> {
    found.into_iter().next().map(Value::Ref)
}

fn all(found: Vec<Moref>) -> Option<Value> {
    Some(Value::array(
        "ManagedObjectReference",
        found.into_iter().map(Value::Ref).collect(),
    ))
}

pub(super) fn invoke(
    state: &VcenterState,
    session: &str,
    call: &Call,
) -> Result<Option<Value>, Fault> {
    let arg = |name: &str| {
        call.body
            .child_text(name)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    match call.method.as_str() {
        "FindByInventoryPath" => {
            Ok(by_inventory_path(state, session, &arg("inventoryPath")).map(Value::Ref))
        }
        "FindChild" => {
            let entity = call
                .body
                .child("entity")
                .and_then(moref_of)
                .ok_or_else(|| Fault::InvalidArgument {
                    property: "entity".into(),
                })?;
            if state.properties(session, &entity).is_none() {
                return Err(Fault::ManagedObjectNotFound { obj: entity });
            }
            Ok(child_named(state, session, &entity, &arg("name")).map(Value::Ref))
        }
        "FindByDatastorePath" => {
            if !datacenter_matches(call)? {
                return Ok(None);
            }
            let wanted = arg("path");
            let (ds, relative) =
                super::file_manager::parse_datastore_path(&wanted).ok_or_else(|| {
                    Fault::InvalidArgument {
                        property: "path".into(),
                    }
                })?;
            let found = state.inventory.vms.iter().find(|vm| {
                vm.disks.first().is_some_and(|d| {
                    d.datastore == ds && relative == format!("{}/{}.vmx", vm.name, vm.name)
                })
            });
            Ok(found.map(|vm| Value::Ref(Moref::new("VirtualMachine", vm.moid.clone()))))
        }
        "FindByUuid" | "FindAllByUuid" | "FindByDnsName" | "FindAllByDnsName" | "FindByIp"
        | "FindAllByIp" => {
            let found = if datacenter_matches(call)? {
                match call.method.as_str() {
                    "FindByUuid" | "FindAllByUuid" => by_uuid(state, call),
                    // The lab's host names are their DNS names.
                    "FindByDnsName" | "FindAllByDnsName" => {
                        let name = call.body.child_text("dnsName").unwrap_or_default().trim();
                        hosts_where(state, call, |h| h.name().eq_ignore_ascii_case(name))
                    }
                    _ => {
                        let ip = call.body.child_text("ip").unwrap_or_default().trim();
                        hosts_where(state, call, |h| h.spec.management_ip == ip)
                    }
                }
            } else {
                Vec::new()
            };
            Ok(if call.method.starts_with("FindAll") {
                all(found)
            } else {
                one(found)
            })
        }
        _ => Err(Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        }),
    }
}
