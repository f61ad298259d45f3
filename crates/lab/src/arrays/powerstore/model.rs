//! The PowerStore resources the facade serves, as JSON records built from the SAN model on each
//! request: their field names (those of the `*_instance` models of the PowerStore REST API 4.0),
//! their relations (`host.host_group`, `host_group.hosts`, `volume.mapped_volumes`, …) and the
//! projection of a `select=` onto them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::query::Selected;

/// A resource type of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Volume,
    Host,
    HostGroup,
    Mapping,
    Initiator,
    Cluster,
    Software,
    LoginSession,
    Job,
}

/// How a relation finds its records.
#[derive(Debug, Clone, Copy)]
enum Link {
    /// The record's own field holds the target's id.
    One(Kind, &'static str),
    /// Targets whose field holds this record's id.
    Many(Kind, &'static str),
    /// A relation to objects the lab has none of (policies, snapshots, replication): `null`.
    NoneOne,
    /// As [`Link::NoneOne`] for a to-many relation: `[]`.
    NoneMany,
}

/// Scalar fields per resource (filterable, orderable, selectable).
pub fn scalar_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Volume => &[
            "id",
            "name",
            "description",
            "type",
            "wwn",
            "nsid",
            "nguid",
            "appliance_id",
            "state",
            "size",
            "logical_used",
            "node_affinity",
            "creation_timestamp",
            "protection_policy_id",
            "performance_policy_id",
            "qos_performance_policy_id",
            "is_replication_destination",
            "migration_session_id",
            "metro_replication_session_id",
            "is_host_access_available",
            "protection_data",
            "location_history",
            "app_type",
            "app_type_other",
            "type_l10n",
            "state_l10n",
            "node_affinity_l10n",
            "app_type_l10n",
        ],
        Kind::Host => &[
            "id",
            "name",
            "description",
            "type",
            "os_type",
            "host_group_id",
            "import_host_system_id",
            "host_connectivity",
            "host_initiators",
            "type_l10n",
            "os_type_l10n",
            "host_connectivity_l10n",
        ],
        Kind::HostGroup => &[
            "id",
            "name",
            "description",
            "host_connectivity",
            "host_connectivity_l10n",
        ],
        Kind::Mapping => &[
            "id",
            "host_id",
            "host_group_id",
            "volume_id",
            "logical_unit_number",
        ],
        Kind::Initiator => &[
            "id",
            "host_id",
            "port_name",
            "port_type",
            "chap_single_username",
            "chap_mutual_username",
            "active_sessions",
        ],
        Kind::Cluster => &[
            "id",
            "global_id",
            "name",
            "management_address",
            "storage_discovery_address",
            "master_appliance_id",
            "primary_appliance_id",
            "appliance_count",
            "physical_mtu",
            "is_encryption_enabled",
            "compatibility_level",
            "state",
            "state_l10n",
            "system_time",
            "nvm_subsystem_nqn",
        ],
        Kind::Software => &[
            "id",
            "is_cluster",
            "release_version",
            "build_version",
            "release_timestamp",
            "installed_date",
            "build_flavor",
            "build_type",
            "build_id",
            "build_flavor_l10n",
            "build_type_l10n",
        ],
        Kind::LoginSession => &[
            "id",
            "user",
            "role_ids",
            "idle_timeout",
            "is_password_change_required",
            "is_built_in_user",
        ],
        Kind::Job => &[
            "id",
            "resource_action",
            "resource_type",
            "resource_id",
            "resource_name",
            "description_l10n",
            "state",
            "start_time",
            "phase",
            "end_time",
            "estimated_completion_time",
            "progress_percentage",
            "parent_id",
            "root_id",
            "user",
            "response_body",
            "response_status",
            "step_order",
            "resource_action_l10n",
            "resource_type_l10n",
            "state_l10n",
            "phase_l10n",
            "response_status_l10n",
        ],
    }
}

fn relation(kind: Kind, name: &str) -> Option<Link> {
    use Kind::*;
    Some(match (kind, name) {
        (Volume, "mapped_volumes") => Link::Many(Mapping, "volume_id"),
        (
            Volume,
            "appliance" | "protection_policy" | "qos_performance_policy" | "migration_session",
        ) => Link::NoneOne,
        (
            Volume,
            "remote_snapshot_sessions"
            | "current_remote_snapshot_sessions"
            | "remote_snapshots"
            | "volume_groups"
            | "datastores"
            | "replication_sessions",
        ) => Link::NoneMany,
        (Host, "host_group") => Link::One(HostGroup, "host_group_id"),
        (Host, "initiators") => Link::Many(Initiator, "host_id"),
        (Host, "mapped_hosts") => Link::Many(Mapping, "host_id"),
        (Host, "import_host_system") => Link::NoneOne,
        (Host, "host_virtual_volume_mappings" | "vsphere_hosts") => Link::NoneMany,
        (HostGroup, "hosts") => Link::Many(Host, "host_group_id"),
        (HostGroup, "mapped_host_groups") => Link::Many(Mapping, "host_group_id"),
        (HostGroup, "host_virtual_volume_mappings") => Link::NoneMany,
        (Mapping, "host") => Link::One(Host, "host_id"),
        (Mapping, "host_group") => Link::One(HostGroup, "host_group_id"),
        (Mapping, "volume") => Link::One(Volume, "volume_id"),
        (Initiator, "host") => Link::One(Host, "host_id"),
        (Job, "parent" | "root") => Link::NoneOne,
        (Job, "children" | "leafs") => Link::NoneMany,
        _ => return None,
    })
}

/// Every record of every resource at one moment.
#[derive(Debug, Default)]
pub struct World {
    pub records: BTreeMap<Kind, Vec<Map<String, Value>>>,
}

impl Kind {
    /// Every resource the facade serves.
    pub const ALL: [Kind; 9] = [
        Kind::Volume,
        Kind::Host,
        Kind::HostGroup,
        Kind::Mapping,
        Kind::Initiator,
        Kind::Cluster,
        Kind::Software,
        Kind::LoginSession,
        Kind::Job,
    ];

    /// The name of the resource's model in the PowerStore REST API definition.
    pub fn model(self) -> &'static str {
        match self {
            Kind::Volume => "volume_instance",
            Kind::Host => "host_instance",
            Kind::HostGroup => "host_group_instance",
            Kind::Mapping => "host_volume_mapping_instance",
            Kind::Initiator => "initiator_instance",
            Kind::Cluster => "cluster_instance",
            Kind::Software => "software_installed_instance",
            Kind::LoginSession => "login_session_instance",
            Kind::Job => "job_instance",
        }
    }
}

impl World {
    pub fn insert(&mut self, kind: Kind, record: Value) {
        if let Value::Object(map) = record {
            self.records.entry(kind).or_default().push(map);
        }
    }

    pub fn all(&self, kind: Kind) -> Vec<Map<String, Value>> {
        self.records.get(&kind).cloned().unwrap_or_default()
    }

    pub fn by_id(&self, kind: Kind, id: &str) -> Option<&Map<String, Value>> {
        self.records
            .get(&kind)?
            .iter()
            .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
    }

    /// `record` reduced to `select` (only `id` when there is none), relations expanded.
    pub fn project(
        &self,
        kind: Kind,
        record: &Map<String, Value>,
        select: Option<&[Selected]>,
    ) -> Result<Value, String> {
        let default = [Selected {
            name: "id".into(),
            nested: None,
        }];
        let select = select.unwrap_or(&default);
        let mut out = Map::new();
        for field in select {
            let value = if scalar_fields(kind).contains(&field.name.as_str()) {
                if field.nested.is_some() {
                    return Err(format!("{} is not a relation", field.name));
                }
                record.get(&field.name).cloned().unwrap_or(Value::Null)
            } else {
                let link = relation(kind, &field.name)
                    .ok_or_else(|| format!("unknown field {:?} of {kind:?}", field.name))?;
                let nested = field.nested.as_deref();
                match link {
                    Link::NoneOne => Value::Null,
                    Link::NoneMany => json!([]),
                    Link::One(target, own) => match record.get(own).and_then(Value::as_str) {
                        Some(id) => match self.by_id(target, id) {
                            Some(found) => self.project(target, found, nested)?,
                            None => Value::Null,
                        },
                        None => Value::Null,
                    },
                    Link::Many(target, theirs) => {
                        let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
                        let mut items = Vec::new();
                        for found in self.records.get(&target).into_iter().flatten() {
                            if found.get(theirs).and_then(Value::as_str) == Some(id) {
                                items.push(self.project(target, found, nested)?);
                            }
                        }
                        Value::Array(items)
                    }
                }
            };
            out.insert(field.name.clone(), value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::super::query::parse_select;
    use super::*;

    #[test]
    fn projection_follows_relations_and_rejects_unknown_fields() {
        let mut world = World::default();
        world.insert(Kind::HostGroup, json!({"id": "g1", "name": "cluster-a"}));
        world.insert(
            Kind::Host,
            json!({"id": "h1", "name": "esx-1", "host_group_id": "g1"}),
        );
        world.insert(
            Kind::Host,
            json!({"id": "h2", "name": "esx-2", "host_group_id": null}),
        );
        let group = world.by_id(Kind::HostGroup, "g1").unwrap().clone();
        let select = parse_select("name,hosts(name,host_group(name))").unwrap();
        let projected = world
            .project(Kind::HostGroup, &group, Some(&select))
            .unwrap();
        assert_eq!(
            projected,
            json!({"name": "cluster-a", "hosts": [{"name": "esx-1", "host_group": {"name": "cluster-a"}}]})
        );
        assert_eq!(
            world.project(Kind::HostGroup, &group, None).unwrap(),
            json!({"id": "g1"})
        );
        let bad = parse_select("id,colour").unwrap();
        assert!(world.project(Kind::HostGroup, &group, Some(&bad)).is_err());
        let bad = parse_select("name(id)").unwrap();
        assert!(world.project(Kind::HostGroup, &group, Some(&bad)).is_err());
    }
}
