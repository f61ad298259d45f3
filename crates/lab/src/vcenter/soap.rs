//! SOAP 1.1 framing for the VIM API: request decoding, response envelopes and VIM faults.

use std::fmt::Write as _;

use super::value::{Moref, Value};
use super::xml::{self, Element, escape};

const ENVELOPE_OPEN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope \
xmlns:soapenc=\"http://schemas.xmlsoap.org/soap/encoding/\" \
xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n<soapenv:Body>";
const ENVELOPE_CLOSE: &str = "</soapenv:Body>\n</soapenv:Envelope>";

/// One decoded VIM call.
#[derive(Debug)]
pub struct Call {
    /// WSDL method name (`RetrievePropertiesEx`).
    pub method: String,
    /// The object the method is invoked on.
    pub this: Moref,
    /// The method element with all arguments.
    pub body: Element,
}

/// Decodes the SOAP envelope of a request.
pub fn decode_call(text: &str) -> Result<Call, Fault> {
    let root = xml::parse(text).map_err(|e| Fault::InvalidRequest(e.to_string()))?;
    let body = root
        .child("Body")
        .ok_or_else(|| Fault::InvalidRequest("SOAP envelope has no Body".into()))?;
    let call = body
        .children
        .first()
        .ok_or_else(|| Fault::InvalidRequest("SOAP Body is empty".into()))?;
    let this = call
        .child("_this")
        .and_then(moref_of)
        .ok_or_else(|| Fault::InvalidRequest(format!("{} has no _this argument", call.name)))?;
    Ok(Call {
        method: call.name.clone(),
        this,
        body: call.clone(),
    })
}

/// Reads a managed object reference element (`<obj type="HostSystem">host-10</obj>`).
pub fn moref_of(element: &Element) -> Option<Moref> {
    let kind = element.attr("type")?;
    Some(Moref::new(kind, element.text.trim()))
}

/// Encodes a successful answer. `None` is a void method.
pub fn response(method: &str, returnval: Option<&Value>) -> String {
    let mut out = String::from(ENVELOPE_OPEN);
    let _ = write!(out, "<{method}Response xmlns=\"urn:vim25\">");
    if let Some(value) = returnval {
        value.write_field(&mut out, "returnval");
    }
    let _ = write!(out, "</{method}Response>{ENVELOPE_CLOSE}");
    out
}

/// A VIM fault, encoded as a SOAP fault whose detail names the fault type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Fault {
    #[error("Cannot complete login due to an incorrect user name or password.")]
    InvalidLogin,
    #[error("The session is not authenticated.")]
    NotAuthenticated { object: Moref },
    #[error("The object '{obj}' has already been deleted or has not been completely created")]
    ManagedObjectNotFound { obj: Moref },
    #[error("A specified parameter was not correct: {property}")]
    InvalidArgument { property: String },
    #[error("Method {method} is not implemented on {receiver}")]
    MethodNotFound { receiver: Moref, method: String },
    #[error("Invalid property: {name}")]
    InvalidProperty { name: String },
    #[error("Invalid name: {name}")]
    InvalidName { name: String },
    #[error("The object or item referred to could not be found: {0}")]
    NotFound(String),
    #[error("File {file} was not found")]
    FileNotFound { file: String },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("A general system error occurred: {0}")]
    SystemError(String),
}

impl Fault {
    fn kind(&self) -> &'static str {
        match self {
            Fault::InvalidLogin => "InvalidLogin",
            Fault::NotAuthenticated { .. } => "NotAuthenticated",
            Fault::ManagedObjectNotFound { .. } => "ManagedObjectNotFound",
            Fault::InvalidArgument { .. } => "InvalidArgument",
            Fault::MethodNotFound { .. } => "MethodNotFound",
            Fault::InvalidProperty { .. } => "InvalidProperty",
            Fault::InvalidName { .. } => "InvalidName",
            Fault::NotFound(_) => "NotFound",
            Fault::FileNotFound { .. } => "FileNotFound",
            Fault::InvalidRequest(_) => "InvalidRequest",
            Fault::SystemError(_) => "SystemError",
        }
    }

    fn fields(&self) -> Vec<(&'static str, Value)> {
        match self {
            Fault::NotAuthenticated { object } => {
                vec![
                    ("object", Value::Ref(object.clone())),
                    ("privilegeId", Value::str("System.View")),
                ]
            }
            Fault::ManagedObjectNotFound { obj } => vec![("obj", Value::Ref(obj.clone()))],
            Fault::InvalidArgument { property } => vec![("invalidProperty", Value::str(property))],
            Fault::MethodNotFound { receiver, method } => {
                vec![
                    ("receiver", Value::Ref(receiver.clone())),
                    ("method", Value::str(method)),
                ]
            }
            Fault::InvalidProperty { name } | Fault::InvalidName { name } => {
                vec![("name", Value::str(name))]
            }
            Fault::FileNotFound { file } => vec![("file", Value::str(file))],
            Fault::SystemError(reason) => vec![("reason", Value::str(reason))],
            Fault::InvalidLogin | Fault::NotFound(_) | Fault::InvalidRequest(_) => Vec::new(),
        }
    }

    /// The fault as the data object `LocalizedMethodFault.fault` carries.
    pub fn to_value(&self) -> Value {
        Value::obj(self.kind(), self.fields())
    }

    /// The SOAP envelope for this fault.
    pub fn envelope(&self) -> String {
        let kind = self.kind();
        let code = if matches!(self, Fault::InvalidRequest(_)) {
            "ClientFaultCode"
        } else {
            "ServerFaultCode"
        };
        let mut detail = String::new();
        for (name, value) in self.fields() {
            value.write_field(&mut detail, name);
        }
        format!(
            "{ENVELOPE_OPEN}<soapenv:Fault><faultcode>{code}</faultcode><faultstring>{}</faultstring>\
             <detail><{kind}Fault xmlns=\"urn:vim25\" xsi:type=\"{kind}\">{detail}</{kind}Fault></detail>\
             </soapenv:Fault>{ENVELOPE_CLOSE}",
            escape(&self.to_string())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pyvmomi_style_request() {
        let text = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>u</userName><password>p&amp;w</password></Login></soapenv:Body>
</soapenv:Envelope>"#;
        let call = decode_call(text).unwrap();
        assert_eq!(call.method, "Login");
        assert_eq!(call.this, Moref::new("SessionManager", "SessionManager"));
        assert_eq!(call.body.child_text("password"), Some("p&w"));
    }

    #[test]
    fn faults_name_their_type_in_the_detail() {
        let fault = Fault::ManagedObjectNotFound {
            obj: Moref::new("HostSystem", "host-99"),
        };
        let text = fault.envelope();
        let root = xml::parse(&text).unwrap();
        let detail = root.find("detail").unwrap().children.first().unwrap();
        assert_eq!(detail.name, "ManagedObjectNotFoundFault");
        assert_eq!(detail.xsi_type(), Some("ManagedObjectNotFound"));
        assert_eq!(
            detail.child("obj").unwrap().attr("type"),
            Some("HostSystem")
        );
        assert!(
            root.find("faultstring")
                .unwrap()
                .text
                .contains("HostSystem:host-99")
        );
    }
}
