//! A small owned XML tree for reading SOAP requests, and the escaping used when writing answers.
//!
//! Requests are small and arrive whole, so a tree is simpler to query than a streaming reader.
//! Element and attribute names keep their prefix; lookups go by local name.

use quick_xml::Reader;
use quick_xml::events::Event;

/// One parsed element: local name, attributes (qualified name, value), children and text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

/// The request body was not well-formed XML.
#[derive(Debug, thiserror::Error)]
#[error("malformed XML request: {0}")]
pub struct XmlError(pub String);

fn local(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, l)| l)
}

impl Element {
    /// First child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All children with this local name, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Text of the first child with this local name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// Unprefixed attribute (e.g. the `type` of a managed object reference).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `xsi:type` attribute, whatever prefix the client bound the instance namespace to.
    pub fn xsi_type(&self) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k.contains(':') && local(k) == "type" && !k.starts_with("xmlns"))
            .map(|(_, v)| local(v))
    }

    /// Depth-first search for the first descendant (or self) with this local name.
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }
}

/// Parses a whole document and returns its root element.
pub fn parse(input: &str) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(input);
    let mut stack: Vec<Element> = Vec::new();
    let err = |e: &dyn std::fmt::Display| XmlError(e.to_string());
    loop {
        match reader.read_event().map_err(|e| err(&e))? {
            Event::Start(start) => stack.push(open(&start)?),
            Event::Empty(start) => {
                let element = open(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| XmlError("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::Text(text) => {
                if let Some(top) = stack.last_mut() {
                    top.text
                        .push_str(&text.xml_content(quick_xml::XmlVersion::Implicit1_0));
                }
            }
            Event::CData(data) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(data.as_ref());
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(|e| err(&e))? {
                    Some(ch) => ch,
                    None => match &*reference.xml_content(quick_xml::XmlVersion::Implicit1_0) {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(XmlError(format!("unknown entity &{other};"))),
                    },
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push(resolved);
                }
            }
            Event::Eof => {
                return Err(XmlError(
                    "document ended before the root element closed".into(),
                ));
            }
            _ => {}
        }
    }
}

fn open(start: &quick_xml::events::BytesStart<'_>) -> Result<Element, XmlError> {
    let qname = start.name().as_ref().to_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError(e.to_string()))?;
        let key = attr.key.as_ref().to_owned();
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| XmlError(e.to_string()))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name: local(&qname).to_owned(),
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// Escapes text for element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixed_names_attributes_and_entities() {
        let doc = r#"<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="x" xmlns:xsi="i"><soapenv:Body>
            <ExecuteSoap xmlns="urn:vim25"><_this type="ManagedMethodExecuter">host-1</_this>
            <val xsi:type="xsd:string">&lt;typeName&gt;vim.EsxCLI.storage&lt;/typeName&gt;</val></ExecuteSoap>
            </soapenv:Body></soapenv:Envelope>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "Envelope");
        let call = root.child("Body").unwrap().child("ExecuteSoap").unwrap();
        let this = call.child("_this").unwrap();
        assert_eq!(this.attr("type"), Some("ManagedMethodExecuter"));
        assert_eq!(this.text, "host-1");
        let val = call.child("val").unwrap();
        assert_eq!(val.xsi_type(), Some("string"));
        assert_eq!(val.text, "<typeName>vim.EsxCLI.storage</typeName>");
    }

    #[test]
    fn rejects_truncated_documents() {
        assert!(parse("<a><b>").is_err());
    }

    #[test]
    fn escape_round_trips_through_parse() {
        let text = r#"a<b>&"c'"#;
        let root = parse(&format!("<x>{}</x>", escape(text))).unwrap();
        assert_eq!(root.text, text);
    }
}
