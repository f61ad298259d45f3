//! The only module that knows SOAP envelope bytes: it writes VIM request bodies (escaping every
//! value) and turns an HTTP answer into either the method's response element or a typed fault.

use quick_xml::escape::escape;

use crate::decode::{self, Node};
use crate::error::{Error, Fault, FaultKind};
use crate::types::ManagedObjectReference;

const ENVELOPE_OPEN: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8"?>"#,
    r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" "#,
    r#"xmlns:xsd="http://www.w3.org/2001/XMLSchema" "#,
    r#"xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
    "<soapenv:Body>"
);
const ENVELOPE_CLOSE: &str = "</soapenv:Body></soapenv:Envelope>";

/// One VIM method call being written: `<Method xmlns="urn:vim25"><_this …>…</Method>`.
#[derive(Debug, Clone)]
pub struct Request {
    method: &'static str,
    body: String,
    /// Whether the call may be re-sent after a transient fault without a second effect.
    pub(crate) idempotent: bool,
}

impl Request {
    /// Starts a call of `method` on the managed object `this`.
    pub fn new(method: &'static str, this: &ManagedObjectReference) -> Self {
        let mut req = Self {
            method,
            body: format!(r#"<{method} xmlns="urn:vim25">"#),
            idempotent: true,
        };
        req.moref("_this", this);
        req
    }

    /// Marks the call as one that changes state and must not be blindly re-sent.
    pub fn not_idempotent(mut self) -> Self {
        self.idempotent = false;
        self
    }

    pub fn method(&self) -> &'static str {
        self.method
    }

    /// `<name>escaped value</name>`.
    pub fn text(&mut self, name: &str, value: &str) -> &mut Self {
        self.body.push('<');
        self.body.push_str(name);
        self.body.push('>');
        self.body.push_str(&escape(value));
        self.body.push_str("</");
        self.body.push_str(name);
        self.body.push('>');
        self
    }

    /// `<name type="Kind">value</name>`.
    pub fn moref(&mut self, name: &str, moref: &ManagedObjectReference) -> &mut Self {
        self.body.push_str(&format!(
            r#"<{name} type="{}">{}</{name}>"#,
            escape(moref.kind.as_str()),
            escape(moref.value.as_str())
        ));
        self
    }

    /// Opens a nested element.
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.body.push('<');
        self.body.push_str(name);
        self.body.push('>');
        self
    }

    /// Opens a nested element of a derived type: `<name xsi:type="Type">`.
    pub fn open_typed(&mut self, name: &str, xsi_type: &str) -> &mut Self {
        self.body
            .push_str(&format!(r#"<{name} xsi:type="{}">"#, escape(xsi_type)));
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.body.push_str("</");
        self.body.push_str(name);
        self.body.push('>');
        self
    }

    /// The method element alone (what traces and the esxcli format in the docs show).
    pub fn body_xml(&self) -> String {
        format!("{}</{}>", self.body, self.method)
    }

    /// The complete SOAP 1.1 envelope.
    pub fn envelope(&self) -> String {
        format!("{ENVELOPE_OPEN}{}{ENVELOPE_CLOSE}", self.body_xml())
    }
}

/// Decodes an HTTP answer to `method`. Returns the `<MethodResponse>` element on success.
pub fn parse_response(method: &str, status: u16, body: &[u8]) -> Result<Node, Error> {
    let decoded = decode::parse(body);
    let envelope = match decoded {
        Ok(root) if root.name == "Envelope" => root,
        Ok(_) | Err(_) if status != 200 => {
            return Err(Error::HttpStatus {
                method: method.to_owned(),
                status,
                body: snippet(body),
            });
        }
        Ok(root) => {
            return Err(Error::Protocol {
                method: method.to_owned(),
                reason: format!("expected a SOAP Envelope, got <{}>", root.name),
            });
        }
        Err(source) => {
            return Err(Error::Decode {
                method: method.to_owned(),
                source,
            });
        }
    };
    let mut envelope = envelope;
    let body_pos = envelope
        .children
        .iter()
        .position(|c| c.name == "Body")
        .ok_or_else(|| Error::Protocol {
            method: method.to_owned(),
            reason: "SOAP Envelope without Body".into(),
        })?;
    let mut soap_body = envelope.children.swap_remove(body_pos);
    if soap_body.children.is_empty() {
        return Err(Error::Protocol {
            method: method.to_owned(),
            reason: "empty SOAP Body".into(),
        });
    }
    let first = soap_body.children.swap_remove(0);
    if first.name == "Fault" {
        return Err(Error::Fault {
            method: method.to_owned(),
            fault: fault_from_node(&first),
        });
    }
    if status != 200 {
        return Err(Error::HttpStatus {
            method: method.to_owned(),
            status,
            body: snippet(body),
        });
    }
    Ok(first)
}

/// Reads a SOAP 1.1 `<Fault>`: `faultstring` plus the type of the first `detail` child.
fn fault_from_node(fault: &Node) -> Fault {
    let message = fault
        .text_of("faultstring")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let detail_type = fault
        .child("detail")
        .and_then(|d| d.children.first())
        .map(|d| d.xsi_type.clone().unwrap_or_else(|| d.name.clone()))
        .unwrap_or_default();
    let kind = if detail_type.is_empty() {
        // vcsim and hostd answer some errors with no detail; recognise the common ones by text.
        classify_message(&message)
    } else {
        FaultKind::from_type_name(&detail_type)
    };
    Fault {
        kind,
        message,
        detail_type,
    }
}

fn classify_message(message: &str) -> FaultKind {
    if message.contains("has already been deleted or has not been completely created")
        || message.contains("ManagedObjectNotFound")
    {
        FaultKind::ManagedObjectNotFound
    } else if message.contains("NotAuthenticated") {
        FaultKind::NotAuthenticated
    } else if message.contains("does not implement") || message.contains("MethodNotFound") {
        FaultKind::MethodNotFound
    } else {
        FaultKind::Other
    }
}

/// The first bytes of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_values_are_escaped() {
        let mut req = Request::new(
            "Login",
            &ManagedObjectReference::new("SessionManager", "SessionManager"),
        );
        req.text("userName", "a<b>&\"c\"");
        assert_eq!(
            req.body_xml(),
            r#"<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>a&lt;b&gt;&amp;&quot;c&quot;</userName></Login>"#
        );
        assert!(
            req.envelope()
                .starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope"#)
        );
    }

    #[test]
    fn faults_are_typed_and_keep_the_message() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Login failure</faultstring><detail><InvalidLoginFault xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance" XMLSchema-instance:type="InvalidLogin"></InvalidLoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
        let err = parse_response("Login", 500, body).unwrap_err();
        let fault = err.fault().unwrap();
        assert_eq!(fault.kind, FaultKind::InvalidLogin);
        assert_eq!(fault.message, "Login failure");
        assert_eq!(fault.detail_type, "InvalidLogin");
    }

    #[test]
    fn non_soap_error_pages_become_http_errors() {
        let err = parse_response("Login", 503, b"<html>Service Unavailable</html>").unwrap_err();
        assert!(
            matches!(err, Error::HttpStatus { status: 503, .. }),
            "{err}"
        );
        let err = parse_response("Login", 200, b"<html/>").unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err}");
    }
}
