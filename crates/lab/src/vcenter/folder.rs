//! Folder, Datacenter and ComputeResource: the inventory tree above hosts, datastores and VMs.

use super::inventory::{
    DATACENTER, DATASTORE_FOLDER, HOST_FOLDER, Inventory, NETWORK_FOLDER, ROOT_FOLDER, VM_FOLDER,
};
use super::value::{Moref, Value};

fn folder(
    name: &str,
    parent: Option<Moref>,
    child_type: &[&str],
    children: Vec<Moref>,
) -> Vec<(&'static str, Value)> {
    let mut props = vec![
        ("name", Value::str(name)),
        (
            "childType",
            Value::array(
                "string",
                child_type.iter().map(|t| Value::str(*t)).collect(),
            ),
        ),
        (
            "childEntity",
            Value::array(
                "ManagedObjectReference",
                children.into_iter().map(Value::Ref).collect(),
            ),
        ),
        ("overallStatus", Value::str("green")),
    ];
    if let Some(parent) = parent {
        props.push(("parent", Value::Ref(parent)));
    }
    props
}

pub(super) fn properties(inv: &Inventory, obj: &Moref) -> Option<Vec<(&'static str, Value)>> {
    let dc = || Some(Moref::new("Datacenter", DATACENTER));
    let datastores = || Value::refs("Datastore", inv.datastores.iter().map(|d| d.moid.clone()));
    let children = inv.children(obj);
    match (obj.kind.as_str(), obj.value.as_str()) {
        ("Folder", ROOT_FOLDER) => Some(folder(
            "Datacenters",
            None,
            &["Folder", "Datacenter"],
            children,
        )),
        ("Folder", VM_FOLDER) => Some(folder(
            "vm",
            dc(),
            &["Folder", "VirtualMachine", "VirtualApp"],
            children,
        )),
        ("Folder", HOST_FOLDER) => Some(folder(
            "host",
            dc(),
            &["Folder", "ComputeResource"],
            children,
        )),
        ("Folder", DATASTORE_FOLDER) => Some(folder(
            "datastore",
            dc(),
            &["Folder", "Datastore"],
            children,
        )),
        ("Folder", NETWORK_FOLDER) => {
            Some(folder("network", dc(), &["Folder", "Network"], children))
        }
        ("Datacenter", DATACENTER) => Some(vec![
            ("name", Value::str(inv.datacenter.clone())),
            ("parent", Value::Ref(Moref::new("Folder", ROOT_FOLDER))),
            ("vmFolder", Value::Ref(Moref::new("Folder", VM_FOLDER))),
            ("hostFolder", Value::Ref(Moref::new("Folder", HOST_FOLDER))),
            (
                "datastoreFolder",
                Value::Ref(Moref::new("Folder", DATASTORE_FOLDER)),
            ),
            (
                "networkFolder",
                Value::Ref(Moref::new("Folder", NETWORK_FOLDER)),
            ),
            ("datastore", datastores()),
            ("overallStatus", Value::str("green")),
        ]),
        ("ComputeResource", moid) => {
            let (index, host) = inv.host_by(moid, "domain-s")?;
            Some(vec![
                ("name", Value::str(host.name())),
                ("parent", Value::Ref(Moref::new("Folder", HOST_FOLDER))),
                (
                    "host",
                    Value::array(
                        "ManagedObjectReference",
                        vec![Value::Ref(inv.host_ref(index))],
                    ),
                ),
                ("datastore", datastores()),
                ("overallStatus", Value::str("green")),
            ])
        }
        _ => None,
    }
}
