//! Decoder of VIM XML into a small element tree. VIM answers are polymorphic: a `<val>` carries
//! its type in `xsi:type` and a managed object reference carries the referenced type in a plain
//! `type` attribute, often on the same element. Serde-based decoding cannot hold both, so this
//! module reads events with a namespace-aware reader and records `xsi:type` by namespace URI
//! (`http://www.w3.org/2001/XMLSchema-instance`), whatever prefix the server chose (`xsi:`,
//! vcsim's `XMLSchema-instance:`, …).
//!
//! The decoder must never panic and never recurse without bound on hostile input: building the
//! tree is iterative and nesting depth (which bounds the recursion of dropping the tree) and
//! element count are capped.

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// VIM data nests a few dozen levels at most; anything deeper is hostile or broken.
pub const MAX_DEPTH: usize = 128;
/// Upper bound on elements in one document (a large inventory page is well below this).
pub const MAX_ELEMENTS: usize = 2_000_000;

/// Why a document could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the answer is not UTF-8: {0}")]
    Utf8(String),
    #[error("malformed XML: {0}")]
    Xml(String),
    #[error("XML nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("XML has more than {MAX_ELEMENTS} elements")]
    TooLarge,
    #[error("the document has no root element")]
    Empty,
    #[error("element <{0}> is missing")]
    Missing(String),
    #[error("element <{element}> has invalid value {value:?}: {reason}")]
    Invalid {
        element: String,
        value: String,
        reason: String,
    },
}

/// One XML element: local name, the two type attributes VIM uses, its text and its children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// Local name (namespace prefix removed).
    pub name: String,
    /// Local part of the `xsi:type` value (`xsd:string` → `string`, `HostSystem` → `HostSystem`).
    pub xsi_type: Option<String>,
    /// The unqualified `type` attribute (the referenced type of a ManagedObjectReference).
    pub type_attr: Option<String>,
    /// Concatenated, unescaped character data directly inside this element.
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All children named `name`, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follows a path of child names.
    pub fn descend(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, name| node.child(name))
    }

    /// Text of the first child named `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// Text of a required child.
    pub fn required_text(&self, name: &str) -> Result<&str, DecodeError> {
        self.text_of(name)
            .ok_or_else(|| DecodeError::Missing(format!("{}/{name}", self.name)))
    }

    /// A child's text parsed as a signed 64-bit number (VIM `xsd:long`/`xsd:int`).
    pub fn i64_of(&self, name: &str) -> Result<Option<i64>, DecodeError> {
        self.text_of(name)
            .map(|t| {
                t.trim().parse::<i64>().map_err(|e| DecodeError::Invalid {
                    element: name.to_owned(),
                    value: t.to_owned(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    /// A child's text parsed as `xsd:boolean`.
    pub fn bool_of(&self, name: &str) -> Option<bool> {
        self.text_of(name).map(|t| matches!(t.trim(), "true" | "1"))
    }

    /// True when the element's type (its `xsi:type`, else its name) is `ty`.
    pub fn is_type(&self, ty: &str) -> bool {
        self.xsi_type.as_deref() == Some(ty)
    }

    /// The texts of every leaf element below this one, in document order.
    pub fn leaf_texts(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack: Vec<&Node> = vec![self];
        while let Some(node) = stack.pop() {
            if node.children.is_empty() {
                out.push(node.text.clone());
            } else {
                stack.extend(node.children.iter().rev());
            }
        }
        out
    }
}

/// Parses a whole document and returns its root element.
pub fn parse(bytes: &[u8]) -> Result<Node, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::Utf8(e.to_string()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut elements = 0usize;

    loop {
        let event = reader
            .read_event()
            .map_err(|e| DecodeError::Xml(e.to_string()))?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(DecodeError::Xml("content after the root element".into()));
            }
            Event::Start(start) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(DecodeError::TooLarge);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(DecodeError::TooDeep);
                }
                stack.push(element(&reader, &start)?);
            }
            Event::Empty(start) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(DecodeError::TooLarge);
                }
                let node = element(&reader, &start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::End(_) => {
                let node = stack
                    .pop()
                    .ok_or_else(|| DecodeError::Xml("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(node) = stack.last_mut() {
                    let raw = t.into_inner();
                    node.text.push_str(&raw);
                }
            }
            Event::GeneralRef(r) => {
                let Some(node) = stack.last_mut() else {
                    continue;
                };
                if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => node.text.push(c),
                        _ => {
                            return Err(DecodeError::Xml(format!(
                                "invalid character reference &{};",
                                r.xml10_content()
                            )));
                        }
                    }
                } else {
                    let name = r.xml10_content();
                    match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(v) => node.text.push_str(v),
                        None => {
                            return Err(DecodeError::Xml(format!("unknown entity &{name};")));
                        }
                    }
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(DecodeError::Xml("document ends inside an element".into()));
    }
    root.ok_or(DecodeError::Empty)
}

fn element(reader: &NsReader<&[u8]>, start: &BytesStart<'_>) -> Result<Node, DecodeError> {
    let mut node = Node {
        name: local(start.name().0).to_owned(),
        ..Node::default()
    };
    for attr in start.attributes() {
        let attr = attr.map_err(|e| DecodeError::Xml(e.to_string()))?;
        let (ns, local_name) = reader.resolver().resolve_attribute(attr.key);
        let local_name = local_name.into_inner();
        let value = || {
            attr.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(|v| v.into_owned())
                .map_err(|e| DecodeError::Xml(e.to_string()))
        };
        match ns {
            ResolveResult::Bound(ns) if ns.0 == XSI_NS && local_name == "type" => {
                node.xsi_type = Some(local(&value()?).to_owned());
            }
            ResolveResult::Unbound if local_name == "type" => node.type_attr = Some(value()?),
            _ => {}
        }
    }
    Ok(node)
}

/// The part after the last `:` of a qualified name or QName-valued attribute.
fn local(qname: &str) -> &str {
    qname.rsplit(':').next().unwrap_or(qname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xsi_type_is_resolved_by_namespace_uri_not_prefix() {
        let doc = br#"<r xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance" xmlns:q="urn:other">
            <val XMLSchema-instance:type="ManagedObjectReference" type="HostSystem">host-21</val>
            <val q:type="Fake">x</val></r>"#;
        let root = parse(doc).unwrap();
        let vals: Vec<_> = root.children_named("val").collect();
        assert_eq!(vals[0].xsi_type.as_deref(), Some("ManagedObjectReference"));
        assert_eq!(vals[0].type_attr.as_deref(), Some("HostSystem"));
        assert_eq!(vals[0].text, "host-21");
        assert_eq!(
            vals[1].xsi_type, None,
            "a foreign namespace's type is not xsi:type"
        );
    }

    #[test]
    fn entities_and_char_refs_are_unescaped() {
        let root = parse(b"<a>&lt;b&gt; &amp; &#65;&#x42; &quot;q&apos;</a>").unwrap();
        assert_eq!(root.text, "<b> & AB \"q'");
    }

    #[test]
    fn hostile_documents_fail_cleanly() {
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(deep.as_bytes()), Err(DecodeError::TooDeep));
        assert!(matches!(parse(b"<a><b></a>"), Err(DecodeError::Xml(_))));
        assert!(matches!(parse(b"<a>&bogus;</a>"), Err(DecodeError::Xml(_))));
        assert!(matches!(parse(b"<a></a><b/>"), Err(DecodeError::Xml(_))));
        assert!(matches!(parse(b"\xff\xfe"), Err(DecodeError::Utf8(_))));
        assert_eq!(parse(b"  "), Err(DecodeError::Empty));
        assert!(parse(b"<a>").is_err());
    }

    #[test]
    fn leaf_texts_flatten_nested_lists() {
        let root = parse(b"<r><p><string>a</string><string>b</string></p></r>").unwrap();
        assert_eq!(root.leaf_texts(), vec!["a", "b"]);
    }
}
