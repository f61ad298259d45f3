//! The esxcli wire format over the vSphere API (the internal reflect API hostd exposes and
//! vCenter proxies): the `ExecuteSoap` request on the host's `ManagedMethodExecuter` (moid
//! `ha-cli-handler-<ns-with-dashes>`, method `vim.EsxCLI.<ns>.<verb>`), the `vim.CLIInfo`
//! document that names a namespace's parameters, and the answer documents.
//!
//! Argument values are XML fragments `<name>value</name>` carried as strings, so values are
//! escaped twice: once inside the fragment, once as the string's text. Faults come back inside
//! `returnval`, not as SOAP faults.

use std::collections::BTreeMap;

use quick_xml::escape::escape;

use crate::decode::{self, DecodeError, Node};
use crate::error::FaultKind;
use crate::soap::Request;
use crate::types::ManagedObjectReference;

pub(crate) const CLI_INFO_MOID: &str = "ha-dynamic-type-manager-local-cli-cliinfo";
pub(crate) const CLI_INFO_METHOD: &str = "vim.CLIInfo.FetchCLIInfo";
const ESXCLI_VERSION: &str = "urn:vim25/5.0";

/// The CLI description of one esxcli namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandInfo {
    pub methods: Vec<CommandMethod>,
}

/// One command (verb) of a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandMethod {
    pub name: String,
    pub params: Vec<CommandParam>,
}

/// One parameter: its name on the wire and its command-line spellings (`-s`, `--source-vmdk`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandParam {
    pub name: String,
    pub aliases: Vec<String>,
    /// A flag takes no value on the command line.
    pub flag: bool,
}

/// The decoded result of an esxcli command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EsxcliResponse {
    /// Structured results: one map per returned object, field name → values (lists flattened).
    pub records: Vec<BTreeMap<String, Vec<String>>>,
    /// A scalar result (`xsd:string`, `xsd:boolean`, …), when the command returns one.
    pub value: Option<String>,
}

impl EsxcliResponse {
    /// Field `key` of record `i`, values joined (the usual case is a single value).
    pub fn field(&self, i: usize, key: &str) -> Option<String> {
        self.records.get(i)?.get(key).map(|v| v.concat())
    }

    /// Field `key` of the first record that has it.
    pub fn first(&self, key: &str) -> Option<String> {
        self.records
            .iter()
            .find_map(|r| r.get(key))
            .map(|v| v.concat())
    }
}

/// The `ExecuteSoap` request for one call on `executer`.
pub fn execute_soap_request(
    executer: &ManagedObjectReference,
    moid: &str,
    method: &str,
    arguments: &[(String, Vec<String>)],
) -> Request {
    let mut req = Request::new("ExecuteSoap", executer);
    req.text("moid", moid)
        .text("version", ESXCLI_VERSION)
        .text("method", method);
    for (name, values) in arguments {
        let fragment: String = values
            .iter()
            .map(|v| format!("<{name}>{}</{name}>", escape(v.as_str())))
            .collect();
        req.open("argument")
            .text("name", name)
            .text("val", &fragment)
            .close("argument");
    }
    req
}

/// What `ExecuteSoap` returned inside `returnval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoapResult {
    /// The method's answer, an XML document as a string (absent for void methods).
    Response(Option<String>),
    /// The method failed on the host.
    Fault(CliFault),
}

/// A fault raised by the command on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliFault {
    pub kind: FaultKind,
    /// `faultMsg`, plus the `errMsg` lines of the detail when present.
    pub message: String,
    /// The raw `faultDetail` XML.
    pub detail: String,
}

/// Reads the `ExecuteSoapResponse` element.
pub fn decode_execute_soap(response: &Node) -> Result<SoapResult, DecodeError> {
    let Some(rv) = response.child("returnval") else {
        return Ok(SoapResult::Response(None));
    };
    if let Some(fault) = rv.child("fault") {
        let fault_msg = fault
            .text_of("faultMsg")
            .unwrap_or_default()
            .trim()
            .to_owned();
        let detail = fault.text_of("faultDetail").unwrap_or_default().to_owned();
        let (kind, err_msgs) = classify_fault_detail(&detail);
        let mut message = fault_msg;
        for line in err_msgs {
            if !message.contains(&line) {
                if !message.is_empty() {
                    message.push_str("; ");
                }
                message.push_str(&line);
            }
        }
        let kind = if kind == FaultKind::Other && looks_not_found(&message) {
            FaultKind::NotFound
        } else {
            kind
        };
        return Ok(SoapResult::Fault(CliFault {
            kind,
            message,
            detail,
        }));
    }
    Ok(SoapResult::Response(
        rv.text_of("response").map(str::to_owned),
    ))
}

/// hostd's text for `vim.fault.NotFound` when the fault detail carries no type. Narrow on
/// purpose: a command's own "task not found" must not read as a missing namespace.
fn looks_not_found(message: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains("the object or item referred to could not be found")
}

/// The fault class and `errMsg` lines inside a `faultDetail` document (best effort: a detail
/// that does not parse still leaves the fault message).
fn classify_fault_detail(detail: &str) -> (FaultKind, Vec<String>) {
    let Ok(root) = decode::parse(detail.as_bytes()) else {
        return (FaultKind::Other, Vec::new());
    };
    let mut kind = FaultKind::Other;
    let mut err_msgs = Vec::new();
    let mut stack = vec![&root];
    while let Some(node) = stack.pop() {
        if kind == FaultKind::Other {
            let ty = node.xsi_type.as_deref().unwrap_or(node.name.as_str());
            kind = FaultKind::from_type_name(ty.rsplit('.').next().unwrap_or(ty));
        }
        if node.name == "errMsg" && !node.text.trim().is_empty() {
            err_msgs.push(node.text.trim().to_owned());
        }
        stack.extend(node.children.iter().rev());
    }
    (kind, err_msgs)
}

/// Decodes the `vim.CLIInfo` document of a namespace.
pub fn decode_command_info(xml: &str) -> Result<CommandInfo, DecodeError> {
    let root = decode::parse(xml.as_bytes())?;
    let methods = root
        .children_named("method")
        .map(|m| CommandMethod {
            name: m.text_of("name").unwrap_or_default().to_owned(),
            params: m
                .children_named("param")
                .map(|p| CommandParam {
                    name: p.text_of("name").unwrap_or_default().to_owned(),
                    aliases: p
                        .children_named("aliases")
                        .map(|a| a.text.clone())
                        .collect(),
                    flag: p.bool_of("flag").unwrap_or(false),
                })
                .filter(|p| !p.name.is_empty())
                .collect(),
        })
        .collect();
    Ok(CommandInfo { methods })
}

/// Decodes a command's answer document into records (or a scalar value).
pub fn decode_cli_response(xml: &str) -> Result<EsxcliResponse, DecodeError> {
    let root = decode::parse(xml.as_bytes())?;
    if root.children.is_empty() {
        return Ok(EsxcliResponse {
            records: Vec::new(),
            value: Some(root.text.clone()),
        });
    }
    let records = if root.is_type("ArrayOfDataObject") {
        root.children.iter().map(record).collect()
    } else {
        vec![record(&root)]
    };
    Ok(EsxcliResponse {
        records,
        value: None,
    })
}

fn record(node: &Node) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for field in &node.children {
        let entry = map.entry(field.name.clone()).or_default();
        if field.children.is_empty() {
            entry.push(field.text.clone());
        } else {
            entry.extend(field.leaf_texts());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_flatten_lists_and_keep_repeats() {
        let xml = r#"<obj xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="urn:vim25" versionId="5.0" xsi:type="ArrayOfDataObject"><DataObject xsi:type="vim.EsxCLI.storage.core.device.list.ScsiDevice"><Device>naa.1</Device><Status>on</Status><OtherUIDs><string>a</string><string>b</string></OtherUIDs></DataObject><DataObject><Device>naa.2</Device><Status>off</Status></DataObject></obj>"#;
        let r = decode_cli_response(xml).unwrap();
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.field(0, "Device").as_deref(), Some("naa.1"));
        assert_eq!(r.records[0]["OtherUIDs"], vec!["a", "b"]);
        assert_eq!(r.field(1, "Status").as_deref(), Some("off"));
        assert_eq!(r.first("Missing"), None);

        let scalar = decode_cli_response(
            r#"<obj xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xsd:boolean">false</obj>"#,
        )
        .unwrap();
        assert_eq!(scalar.value.as_deref(), Some("false"));
    }

    /// The request bytes match the format govc emits.
    #[test]
    fn request_bytes_match_the_captured_format() {
        let host = ManagedObjectReference::new("HostSystem", "host-37");
        let rmme = Request::new("RetrieveManagedMethodExecuter", &host);
        assert_eq!(
            rmme.body_xml(),
            r#"<RetrieveManagedMethodExecuter xmlns="urn:vim25"><_this type="HostSystem">host-37</_this></RetrieveManagedMethodExecuter>"#
        );
        let mme = ManagedObjectReference::new("ManagedMethodExecuter", "host-37");
        let info = execute_soap_request(
            &mme,
            CLI_INFO_MOID,
            CLI_INFO_METHOD,
            &[("typeName".into(), vec!["vim.EsxCLI.iscsi.software".into()])],
        );
        assert_eq!(
            info.body_xml(),
            concat!(
                r#"<ExecuteSoap xmlns="urn:vim25"><_this type="ManagedMethodExecuter">host-37</_this><moid>ha-dynamic-type-manager-local-cli-cliinfo</moid>"#,
                r#"<version>urn:vim25/5.0</version><method>vim.CLIInfo.FetchCLIInfo</method>"#,
                r#"<argument><name>typeName</name><val>&lt;typeName&gt;vim.EsxCLI.iscsi.software&lt;/typeName&gt;</val></argument></ExecuteSoap>"#
            )
        );
        let call = execute_soap_request(
            &mme,
            "ha-cli-handler-iscsi-software",
            "vim.EsxCLI.iscsi.software.get",
            &[],
        );
        assert_eq!(
            call.body_xml(),
            concat!(
                r#"<ExecuteSoap xmlns="urn:vim25"><_this type="ManagedMethodExecuter">host-37</_this><moid>ha-cli-handler-iscsi-software</moid>"#,
                r#"<version>urn:vim25/5.0</version><method>vim.EsxCLI.iscsi.software.get</method></ExecuteSoap>"#
            )
        );
    }

    #[test]
    fn argument_values_are_escaped_inside_and_outside_the_fragment() {
        let mme = ManagedObjectReference::new("ManagedMethodExecuter", "ha-host");
        let req = execute_soap_request(
            &mme,
            "ha-cli-handler-vmkfstools",
            "vim.EsxCLI.vmkfstools.clone",
            &[("source-vmdk".into(), vec!["[ds] a&b/<x>.vmdk".into()])],
        );
        assert!(
            req.body_xml().contains(
                "<val>&lt;source-vmdk&gt;[ds] a&amp;amp;b/&amp;lt;x&amp;gt;.vmdk&lt;/source-vmdk&gt;</val>"
            ),
            "{}",
            req.body_xml()
        );
    }

    #[test]
    fn captured_response_and_in_band_faults_decode() {
        let response = crate::decode::parse(
            br#"<ExecuteSoapResponse xmlns="urn:vim25"><returnval><response>&lt;obj xmlns="urn:vim25" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" versionId="5.0" xsi:type="xsd:boolean"&gt;false&lt;/obj&gt;</response></returnval></ExecuteSoapResponse>"#,
        )
        .unwrap();
        let SoapResult::Response(Some(xml)) = decode_execute_soap(&response).unwrap() else {
            panic!("response expected");
        };
        assert_eq!(
            decode_cli_response(&xml).unwrap().value.as_deref(),
            Some("false")
        );

        let fault = crate::decode::parse(
            br#"<ExecuteSoapResponse xmlns="urn:vim25"><returnval><fault><faultMsg>Unable to clone</faultMsg><faultDetail>&lt;obj xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="LocalizedMethodFault"&gt;&lt;fault xsi:type="VimEsxCLICLIFault"&gt;&lt;errMsg&gt;target busy&lt;/errMsg&gt;&lt;/fault&gt;&lt;/obj&gt;</faultDetail></fault></returnval></ExecuteSoapResponse>"#,
        )
        .unwrap();
        let SoapResult::Fault(f) = decode_execute_soap(&fault).unwrap() else {
            panic!("fault expected");
        };
        assert_eq!(f.message, "Unable to clone; target busy");
        assert_eq!(f.kind, FaultKind::Other);

        let not_found = crate::decode::parse(
            br#"<ExecuteSoapResponse><returnval><fault><faultMsg>The object or item referred to could not be found.</faultMsg></fault></returnval></ExecuteSoapResponse>"#,
        )
        .unwrap();
        let SoapResult::Fault(f) = decode_execute_soap(&not_found).unwrap() else {
            panic!("fault expected");
        };
        assert_eq!(f.kind, FaultKind::NotFound);
    }

    #[test]
    fn cli_info_decodes_params_aliases_and_flags() {
        let xml = r#"<obj xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="urn:vim25" versionId="5.0" xsi:type="vim.CLIInfo"><name>vim.EsxCLI.vmkfstools</name><method><name>clone</name><param><name>source-vmdk</name><aliases>-s</aliases><aliases>--source-vmdk</aliases><flag>false</flag></param><param><name>verbose</name><aliases>--verbose</aliases><flag>true</flag></param></method><method><name>version</name></method></obj>"#;
        let info = decode_command_info(xml).unwrap();
        assert_eq!(info.methods.len(), 2);
        assert_eq!(
            info.methods[0].params[0].aliases,
            vec!["-s", "--source-vmdk"]
        );
        assert!(info.methods[0].params[1].flag);
        assert!(info.methods[1].params.is_empty());
    }
}
