//! VIM data values (data objects, arrays, primitives, managed object references) and their SOAP encoding.
//!
//! Managed objects build their properties as [`Value`] trees once per request; the property collector
//! walks dotted paths through them and the encoder writes them with the `xsi:type` annotations that
//! pyVmomi and govmomi need to pick the right subtype.

use std::fmt::Write as _;

use super::xml::escape;

/// A managed object reference (`type` attribute + moid text).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Moref {
    pub kind: String,
    pub value: String,
}

impl Moref {
    pub fn new(kind: &str, value: impl Into<String>) -> Moref {
        Moref {
            kind: kind.to_owned(),
            value: value.into(),
        }
    }
}

impl std::fmt::Display for Moref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

/// A VIM value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i32),
    Long(i64),
    Bool(bool),
    /// `xsd:dateTime`, already formatted.
    DateTime(String),
    Ref(Moref),
    /// A data object of a concrete VIM type, fields in WSDL order.
    Obj {
        kind: &'static str,
        fields: Vec<(&'static str, Value)>,
    },
    /// An array whose items are declared as `item_kind` (e.g. `VirtualDevice`, `string`).
    Array {
        item_kind: &'static str,
        items: Vec<Value>,
    },
    /// A field declared `anyType` (`DynamicProperty.val`): written with full type annotations.
    Any(Box<Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn obj(kind: &'static str, fields: Vec<(&'static str, Value)>) -> Value {
        Value::Obj { kind, fields }
    }

    pub fn array(item_kind: &'static str, items: Vec<Value>) -> Value {
        Value::Array { item_kind, items }
    }

    pub fn refs(kind: &str, ids: impl IntoIterator<Item = String>) -> Value {
        Value::array(
            "ManagedObjectReference",
            ids.into_iter()
                .map(|id| Value::Ref(Moref::new(kind, id)))
                .collect(),
        )
    }

    /// Field of a data object by name.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Obj { fields, .. } => fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows a dotted property path (`config.storageDevice`) from this value.
    pub fn path(&self, path: &[&str]) -> Option<&Value> {
        match path.split_first() {
            None => Some(self),
            Some((head, rest)) => self.field(head)?.path(rest),
        }
    }

    fn xsd_kind(&self) -> String {
        match self {
            Value::Str(_) => "xsd:string".into(),
            Value::Int(_) => "xsd:int".into(),
            Value::Long(_) => "xsd:long".into(),
            Value::Bool(_) => "xsd:boolean".into(),
            Value::DateTime(_) => "xsd:dateTime".into(),
            Value::Ref(_) => "ManagedObjectReference".into(),
            Value::Obj { kind, .. } => (*kind).into(),
            Value::Array { item_kind, .. } => array_kind(item_kind),
            Value::Any(inner) => inner.xsd_kind(),
        }
    }

    fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Str(s) | Value::DateTime(s) => Some(escape(s)),
            Value::Int(i) => Some(i.to_string()),
            Value::Long(l) => Some(l.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Ref(r) => Some(escape(&r.value)),
            _ => None,
        }
    }

    /// Writes this value as element `name` where the schema declares `anyType` (property values, method
    /// results of polymorphic type): every value carries its `xsi:type`.
    pub fn write_any(&self, out: &mut String, name: &str) {
        match self {
            Value::Any(inner) => inner.write_any(out, name),
            Value::Array { item_kind, items } => {
                let _ = write!(out, "<{name} xsi:type=\"{}\">", array_kind(item_kind));
                for item in items {
                    item.write_any(out, item_kind);
                }
                let _ = write!(out, "</{name}>");
            }
            _ => self.write_element(out, name, true),
        }
    }

    /// Writes this value as a field: arrays become repeated elements, data objects carry `xsi:type` so
    /// subtypes (`HostInternetScsiHba` in a `HostHostBusAdapter[]`) decode correctly.
    pub fn write_field(&self, out: &mut String, name: &str) {
        match self {
            Value::Any(inner) => inner.write_any(out, name),
            Value::Array { items, .. } => {
                for item in items {
                    item.write_element(out, name, false);
                }
            }
            _ => self.write_element(out, name, false),
        }
    }

    fn write_element(&self, out: &mut String, name: &str, typed: bool) {
        match self {
            Value::Ref(r) => {
                let xsi = if typed {
                    " xsi:type=\"ManagedObjectReference\""
                } else {
                    ""
                };
                let _ = write!(
                    out,
                    "<{name} type=\"{}\"{xsi}>{}</{name}>",
                    escape(&r.kind),
                    escape(&r.value)
                );
            }
            Value::Obj { kind, fields } => {
                let _ = write!(out, "<{name} xsi:type=\"{kind}\">");
                for (field, value) in fields {
                    value.write_field(out, field);
                }
                let _ = write!(out, "</{name}>");
            }
            Value::Array { .. } | Value::Any(_) => self.write_any(out, name),
            scalar => {
                let text = scalar.scalar_text().unwrap_or_default();
                if typed {
                    let _ = write!(
                        out,
                        "<{name} xsi:type=\"{}\">{text}</{name}>",
                        scalar.xsd_kind()
                    );
                } else {
                    let _ = write!(out, "<{name}>{text}</{name}>");
                }
            }
        }
    }
}

/// Shorthand for [`Value::Str`] in the property builders.
pub fn s(text: impl Into<String>) -> Value {
    Value::Str(text.into())
}

fn array_kind(item_kind: &str) -> String {
    let mut chars = item_kind.chars();
    match chars.next() {
        Some(first) => format!("ArrayOf{}{}", first.to_ascii_uppercase(), chars.as_str()),
        None => "ArrayOfAnyType".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_values_carry_array_and_subtype_annotations() {
        let hbas = Value::array(
            "HostHostBusAdapter",
            vec![Value::obj(
                "HostInternetScsiHba",
                vec![("device", Value::str("vmhba64"))],
            )],
        );
        let mut out = String::new();
        hbas.write_any(&mut out, "val");
        assert_eq!(
            out,
            "<val xsi:type=\"ArrayOfHostHostBusAdapter\"><HostHostBusAdapter xsi:type=\"HostInternetScsiHba\">\
             <device>vmhba64</device></HostHostBusAdapter></val>"
        );
    }

    #[test]
    fn fields_repeat_array_items_and_type_references() {
        let host = Value::obj(
            "X",
            vec![
                (
                    "datastore",
                    Value::refs(
                        "Datastore",
                        ["datastore-1".to_owned(), "datastore-2".to_owned()],
                    ),
                ),
                ("wwn", Value::Long(-1)),
            ],
        );
        let mut out = String::new();
        host.write_field(&mut out, "x");
        assert_eq!(
            out,
            "<x xsi:type=\"X\"><datastore type=\"Datastore\">datastore-1</datastore>\
             <datastore type=\"Datastore\">datastore-2</datastore><wwn>-1</wwn></x>"
        );
    }

    #[test]
    fn paths_walk_nested_objects() {
        let v = Value::obj(
            "A",
            vec![("b", Value::obj("B", vec![("c", Value::Int(3))]))],
        );
        assert_eq!(v.path(&["b", "c"]), Some(&Value::Int(3)));
        assert_eq!(v.path(&["b", "d"]), None);
    }
}
