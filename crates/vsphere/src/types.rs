//! The VIM wire types this client reads and writes: managed object references and the service
//! content.

use std::fmt;

use crate::decode::{DecodeError, Node};

/// A reference to a server-side managed object, e.g. `HostSystem:host-21`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ManagedObjectReference {
    /// The managed object type (`HostSystem`, `VirtualMachine`, …).
    pub kind: String,
    /// The managed object id (`host-21`, `vm-54`, …).
    pub value: String,
}

impl ManagedObjectReference {
    pub fn new(kind: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            value: value.into(),
        }
    }

    /// Reads a reference from an element such as `<obj type="HostSystem">host-21</obj>`.
    pub fn from_node(node: &Node) -> Result<Self, DecodeError> {
        let kind = node.type_attr.clone().ok_or_else(|| DecodeError::Invalid {
            element: node.name.clone(),
            value: node.text.clone(),
            reason: "managed object reference without a type attribute".into(),
        })?;
        if node.text.is_empty() {
            return Err(DecodeError::Invalid {
                element: node.name.clone(),
                value: String::new(),
                reason: "empty managed object reference".into(),
            });
        }
        Ok(Self {
            kind,
            value: node.text.clone(),
        })
    }

    /// Reads the required reference child `name` of `node`.
    pub fn child_of(node: &Node, name: &str) -> Result<Self, DecodeError> {
        let child = node
            .child(name)
            .ok_or_else(|| DecodeError::Missing(format!("{}/{name}", node.name)))?;
        Self::from_node(child)
    }
}

impl fmt::Display for ManagedObjectReference {
    /// `Type:value`, the form upstream uses to name hosts (`HostSystem:host-21`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

/// The entry points of the API, from `RetrieveServiceContent`.
#[derive(Debug, Clone)]
pub struct ServiceContent {
    pub root_folder: ManagedObjectReference,
    pub property_collector: ManagedObjectReference,
    pub session_manager: Option<ManagedObjectReference>,
    pub file_manager: Option<ManagedObjectReference>,
    pub search_index: Option<ManagedObjectReference>,
    pub authorization_manager: Option<ManagedObjectReference>,
    pub about: AboutInfo,
}

/// What the endpoint says about itself.
#[derive(Debug, Clone, Default)]
pub struct AboutInfo {
    pub full_name: String,
    pub api_type: String,
    pub api_version: String,
    pub instance_uuid: String,
}

impl AboutInfo {
    /// True for vCenter, false for a standalone ESXi host.
    pub fn is_vcenter(&self) -> bool {
        self.api_type == "VirtualCenter"
    }
}

impl ServiceContent {
    pub(crate) fn from_node(rv: &Node) -> Result<Self, DecodeError> {
        let optional = |name: &str| {
            rv.child(name)
                .map(ManagedObjectReference::from_node)
                .transpose()
        };
        let about = rv.child("about");
        let about_text = |name: &str| {
            about
                .and_then(|a| a.text_of(name))
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Self {
            root_folder: ManagedObjectReference::child_of(rv, "rootFolder")?,
            property_collector: ManagedObjectReference::child_of(rv, "propertyCollector")?,
            session_manager: optional("sessionManager")?,
            file_manager: optional("fileManager")?,
            search_index: optional("searchIndex")?,
            authorization_manager: optional("authorizationManager")?,
            about: AboutInfo {
                full_name: about_text("fullName"),
                api_type: about_text("apiType"),
                api_version: about_text("apiVersion"),
                instance_uuid: about_text("instanceUuid"),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moref_display_matches_upstream_host_string() {
        let m = ManagedObjectReference::new("HostSystem", "host-21");
        assert_eq!(m.to_string(), "HostSystem:host-21");
    }
}
