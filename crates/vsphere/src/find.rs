//! Finding objects in the inventory: a VM, host or datacenter by managed object id, name or
//! inventory path across datacenters (one listing each); the VM owning a disk; the datacenter of
//! an object and its inventory path; the name of any entity.

use std::collections::{HashMap, HashSet};

use co_api::DatastorePath;

use crate::client::Client;
use crate::error::Error;
use crate::object::{Datacenter, disks_from_devices, match_disk};
use crate::property::{ObjectContent, ObjectSpec, PropertySpec};
use crate::types::ManagedObjectReference;

impl Client {
    /// Finds a VM by inventory path (`/DC0/vm/folder/name`), name (unique across datacenters),
    /// or managed object id (`vm-42`), in that order of preference, in one listing.
    pub async fn find_vm(&self, id: &str) -> Result<ManagedObjectReference, Error> {
        self.find_entity("VirtualMachine", "virtual machine", id)
            .await
    }

    /// Finds a host by inventory path, name, or managed object id.
    pub async fn find_host(&self, id: &str) -> Result<ManagedObjectReference, Error> {
        self.find_entity("HostSystem", "ESXi host", id).await
    }

    pub(crate) async fn find_entity(
        &self,
        kind: &'static str,
        what: &'static str,
        id: &str,
    ) -> Result<ManagedObjectReference, Error> {
        let id = id.trim();
        let listing = self
            .retrieve(
                &ObjectSpec::inventory(&self.inner.service.root_folder),
                &[PropertySpec::new("ManagedEntity", &["name", "parent"])],
            )
            .await?;
        let paths = inventory_paths(&listing, &self.inner.service.root_folder);
        let candidates: Vec<&ObjectContent> =
            listing.iter().filter(|o| o.obj.kind == kind).collect();
        if id.contains('/') {
            let wanted = format!("/{}", id.trim_start_matches('/'));
            if let Some(o) = candidates
                .iter()
                .find(|o| paths.get(&o.obj).is_some_and(|p| *p == wanted))
            {
                return Ok(o.obj.clone());
            }
        }
        let by_name: Vec<&&ObjectContent> = candidates
            .iter()
            .filter(|o| o.text("name") == Some(id))
            .collect();
        match by_name.as_slice() {
            [one] => return Ok(one.obj.clone()),
            [] => {}
            many => {
                return Err(Error::Ambiguous {
                    what,
                    id: id.to_owned(),
                    candidates: many
                        .iter()
                        .map(|o| {
                            paths
                                .get(&o.obj)
                                .cloned()
                                .unwrap_or_else(|| o.obj.to_string())
                        })
                        .collect(),
                });
            }
        }
        let moid = id.rsplit(':').next().unwrap_or(id);
        candidates
            .iter()
            .find(|o| o.obj.value == moid)
            .map(|o| o.obj.clone())
            .ok_or_else(|| Error::NotFound {
                what,
                id: id.to_owned(),
                hint: "; give its managed object id, its name or its inventory path".into(),
            })
    }

    /// The VM whose disks include `wanted`, for when no VM id was given.
    pub async fn find_vm_by_disk(
        &self,
        wanted: &DatastorePath,
    ) -> Result<ManagedObjectReference, Error> {
        let listing = self
            .retrieve(
                &ObjectSpec::inventory(&self.inner.service.root_folder),
                &[PropertySpec::new(
                    "VirtualMachine",
                    &["config.hardware.device"],
                )],
            )
            .await?;
        let owners: Vec<ManagedObjectReference> = listing
            .iter()
            .filter(|o| {
                o.prop("config.hardware.device")
                    .map(disks_from_devices)
                    .is_some_and(|disks| match_disk(&disks, wanted).is_some())
            })
            .map(|o| o.obj.clone())
            .collect();
        match owners.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(Error::NotFound {
                what: "virtual machine owning disk",
                id: wanted.to_string(),
                hint: "; check --source-vmdk".into(),
            }),
            many => Err(Error::Ambiguous {
                what: "disk",
                id: wanted.to_string(),
                candidates: many.iter().map(ToString::to_string).collect(),
            }),
        }
    }

    /// The name of any managed entity.
    pub async fn entity_name(&self, obj: &ManagedObjectReference) -> Result<String, Error> {
        let content = self.retrieve_one(obj, &["name"]).await?;
        Ok(content.text("name").unwrap_or_default().to_owned())
    }

    /// The datacenter containing `obj`, with its inventory path.
    pub async fn datacenter_of(&self, obj: &ManagedObjectReference) -> Result<Datacenter, Error> {
        let listing = self
            .retrieve(
                &ObjectSpec::ancestors(obj),
                &[PropertySpec::new("ManagedEntity", &["name", "parent"])],
            )
            .await?;
        let paths = inventory_paths(&listing, &self.inner.service.root_folder);
        listing
            .iter()
            .find(|o| o.obj.kind == "Datacenter")
            .map(|o| Datacenter {
                moref: o.obj.clone(),
                path: paths
                    .get(&o.obj)
                    .map(|p| p.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
            })
            .ok_or_else(|| Error::NotFound {
                what: "datacenter of",
                id: obj.to_string(),
                hint: String::new(),
            })
    }

    /// Finds a datacenter by name or inventory path.
    pub async fn find_datacenter(&self, id: &str) -> Result<Datacenter, Error> {
        let moref = self.find_entity("Datacenter", "datacenter", id).await?;
        self.datacenter_of(&moref).await
    }
}

/// Inventory paths (`/DC0/vm/name`) of every object in a listing that has `name` and `parent`.
/// The root folder is not part of paths.
fn inventory_paths(
    listing: &[ObjectContent],
    root: &ManagedObjectReference,
) -> HashMap<ManagedObjectReference, String> {
    let by_ref: HashMap<&ManagedObjectReference, &ObjectContent> =
        listing.iter().map(|o| (&o.obj, o)).collect();
    let mut out = HashMap::new();
    for o in listing {
        let mut names = Vec::new();
        let mut cur = Some(o);
        let mut seen = HashSet::new();
        while let Some(node) = cur {
            if &node.obj == root || !seen.insert(&node.obj) {
                break;
            }
            names.push(node.text("name").unwrap_or_default());
            cur = node.moref("parent").and_then(|p| by_ref.get(&p).copied());
        }
        names.reverse();
        out.insert(o.obj.clone(), format!("/{}", names.join("/")));
    }
    out
}
