//! esxcli over the vSphere API (the internal reflect API hostd exposes and vCenter proxies):
//! `RetrieveManagedMethodExecuter` on the host, then `ExecuteSoap` with moid
//! `ha-cli-handler-<ns-with-dashes>` and method `vim.EsxCLI.<ns>.<verb>`. Option names in argv are
//! mapped to parameter names through the command's CLI info (`vim.CLIInfo.FetchCLIInfo`), which is
//! fetched once per host and namespace and cached, as is the host's method executer: after the
//! first call on a namespace, each esxcli call is exactly one round trip (upstream pays about four).
//!
//! Argument values are XML fragments `<name>value</name>` carried as strings, so values are
//! escaped twice: once inside the fragment, once as the string's text. Faults come back inside
//! `returnval`, not as SOAP faults.

use std::collections::BTreeMap;
use std::sync::Arc;

use quick_xml::escape::escape;
use tracing::debug;

use crate::client::{Client, returnval};
use crate::decode::{self, DecodeError, Node};
use crate::error::{Error, FaultKind};
use crate::soap::Request;
use crate::types::ManagedObjectReference;

const CLI_INFO_MOID: &str = "ha-dynamic-type-manager-local-cli-cliinfo";
const CLI_INFO_METHOD: &str = "vim.CLIInfo.FetchCLIInfo";
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

/// An argv split into namespace, verb and options: `["storage","core","device","list","-d",x]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsxcliCommand<'a> {
    pub namespace: Vec<&'a str>,
    pub verb: &'a str,
    pub options: &'a [&'a str],
}

impl<'a> EsxcliCommand<'a> {
    pub fn parse(argv: &'a [&'a str]) -> Result<Self, Error> {
        let split = argv
            .iter()
            .position(|a| a.starts_with('-'))
            .unwrap_or(argv.len());
        let (words, options) = argv.split_at(split);
        let usage = |reason: &str| Error::EsxcliUsage {
            argv: argv.join(" "),
            reason: reason.to_owned(),
        };
        let Some((verb, namespace)) = words.split_last() else {
            return Err(usage("no command given"));
        };
        if namespace.is_empty() {
            return Err(usage(
                "a namespace and a command are needed, e.g. \"storage core device list\"",
            ));
        }
        let valid = |w: &str| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !words.iter().all(|w| valid(w)) {
            return Err(usage(
                "namespace and command words must be plain identifiers",
            ));
        }
        Ok(Self {
            namespace: namespace.to_vec(),
            verb,
            options,
        })
    }

    /// `storage.core.device`
    pub fn namespace_dotted(&self) -> String {
        self.namespace.join(".")
    }

    /// `ha-cli-handler-storage-core-device`
    pub fn moid(&self) -> String {
        format!("ha-cli-handler-{}", self.namespace.join("-"))
    }

    /// `vim.EsxCLI.storage.core.device.list`
    pub fn method(&self) -> String {
        format!("vim.EsxCLI.{}.{}", self.namespace_dotted(), self.verb)
    }

    fn display(&self) -> String {
        format!("{} {}", self.namespace.join(" "), self.verb)
    }
}

/// Maps `-x v` / `--long v` / `--long=v` / flags onto the method's parameters, in the order the
/// CLI info declares them. Repeated options accumulate values.
pub fn map_arguments(
    method: &CommandMethod,
    options: &[&str],
) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut values: Vec<Vec<String>> = vec![Vec::new(); method.params.len()];
    let mut i = 0;
    while i < options.len() {
        let token = options[i];
        i += 1;
        if !token.starts_with('-') || token == "-" || token == "--" {
            return Err(format!(
                "unexpected argument {token:?}: options start with - or --"
            ));
        }
        let (spelling, inline) = match token.split_once('=') {
            Some((k, v)) if token.starts_with("--") => (k, Some(v)),
            _ => (token, None),
        };
        let Some(index) = method.params.iter().position(|p| {
            p.aliases.iter().any(|a| a == spelling)
                || spelling.strip_prefix("--") == Some(p.name.as_str())
        }) else {
            let known: Vec<&str> = method
                .params
                .iter()
                .flat_map(|p| p.aliases.iter().map(String::as_str))
                .collect();
            return Err(format!(
                "unknown option {spelling:?} for {}; known options: {known:?}",
                method.name
            ));
        };
        let param = &method.params[index];
        let value = match (inline, param.flag) {
            (Some(v), _) => v.to_owned(),
            (None, true) => "true".to_owned(),
            (None, false) => {
                let v = options
                    .get(i)
                    .ok_or_else(|| format!("option {spelling:?} needs a value"))?;
                i += 1;
                (*v).to_owned()
            }
        };
        values[index].push(value);
    }
    Ok(method
        .params
        .iter()
        .zip(values)
        .filter(|(_, v)| !v.is_empty())
        .map(|(p, v)| (p.name.clone(), v))
        .collect())
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

impl Client {
    /// Runs an esxcli command on `host`, e.g. `["storage","core","device","list","-d",naa]` or
    /// `["vmkfstools","clone","-s",src,"-t",dst]`.
    pub async fn esxcli(
        &self,
        host: &ManagedObjectReference,
        argv: &[&str],
    ) -> Result<EsxcliResponse, Error> {
        let command = EsxcliCommand::parse(argv)?;
        debug!(host = %host, command = %argv.join(" "), "running esxcli command");
        let executer = self.method_executer(host).await?;
        let info = self.command_info(host, &executer, &command).await?;
        let method = info
            .methods
            .iter()
            .find(|m| m.name == command.verb)
            .ok_or_else(|| Error::EsxcliUsage {
                argv: argv.join(" "),
                reason: format!(
                    "command {:?} not found in namespace {:?}",
                    command.verb,
                    command.namespace_dotted()
                ),
            })?;
        let arguments =
            map_arguments(method, command.options).map_err(|reason| Error::EsxcliUsage {
                argv: argv.join(" "),
                reason,
            })?;
        let req = execute_soap_request(&executer, &command.moid(), &command.method(), &arguments)
            .not_idempotent();
        match self.execute_soap(host, &command, &req).await? {
            None => Ok(EsxcliResponse::default()),
            Some(xml) => decode_cli_response(&xml).map_err(|source| Error::Decode {
                method: command.method(),
                source,
            }),
        }
    }

    /// Fetches, concurrently, what the first run of each of `commands` (argv prefixes such as
    /// `["storage","core","device","list"]`) would fetch — the host's method executer and the
    /// CLI info of each namespace — so that each later [`Client::esxcli`] costs one round trip.
    /// A caller overlaps this with work the commands must wait for anyway (array calls).
    pub async fn prepare_esxcli(
        &self,
        host: &ManagedObjectReference,
        commands: &[&[&str]],
    ) -> Result<(), Error> {
        let executer = self.method_executer(host).await?;
        let parsed = commands
            .iter()
            .map(|argv| EsxcliCommand::parse(argv))
            .collect::<Result<Vec<_>, _>>()?;
        let mut namespaces = std::collections::BTreeSet::new();
        let fetches = parsed
            .iter()
            .filter(|command| namespaces.insert(command.namespace_dotted()))
            .map(|command| self.command_info(host, &executer, command));
        futures::future::try_join_all(fetches).await.map(drop)
    }

    /// The host's ManagedMethodExecuter, retrieved once per host (concurrent callers share the
    /// one request).
    async fn method_executer(
        &self,
        host: &ManagedObjectReference,
    ) -> Result<ManagedObjectReference, Error> {
        let cell = lock(&self.inner.executers)
            .entry(host.value.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let req = Request::new("RetrieveManagedMethodExecuter", host);
            let response = self.call(&req).await?;
            let rv = returnval(req.method(), &response)?;
            ManagedObjectReference::from_node(rv).map_err(|source| Error::Decode {
                method: req.method().into(),
                source,
            })
        })
        .await
        .cloned()
    }

    /// The CLI info of the command's namespace on `host`, fetched once (concurrent callers
    /// share the one request).
    async fn command_info(
        &self,
        host: &ManagedObjectReference,
        executer: &ManagedObjectReference,
        command: &EsxcliCommand<'_>,
    ) -> Result<Arc<CommandInfo>, Error> {
        let key = (host.value.clone(), command.namespace_dotted());
        let cell = lock(&self.inner.cli_info).entry(key).or_default().clone();
        cell.get_or_try_init(|| async {
            let type_name = format!("vim.EsxCLI.{}", command.namespace_dotted());
            let req = execute_soap_request(
                executer,
                CLI_INFO_MOID,
                CLI_INFO_METHOD,
                &[("typeName".to_owned(), vec![type_name])],
            );
            let xml = self
                .execute_soap(host, command, &req)
                .await?
                .ok_or_else(|| Error::Protocol {
                    method: CLI_INFO_METHOD.into(),
                    reason: format!("no CLI info for namespace {}", command.namespace_dotted()),
                })?;
            decode_command_info(&xml)
                .map(Arc::new)
                .map_err(|source| Error::Decode {
                    method: CLI_INFO_METHOD.into(),
                    source,
                })
        })
        .await
        .cloned()
    }

    /// Sends an `ExecuteSoap` and turns in-band faults into errors.
    async fn execute_soap(
        &self,
        host: &ManagedObjectReference,
        command: &EsxcliCommand<'_>,
        req: &Request,
    ) -> Result<Option<String>, Error> {
        let vib_missing = |message: String| Error::VibMissing {
            host: host.to_string(),
            message,
        };
        let response = match self.call(req).await {
            Err(e) if e.is_fault(FaultKind::NotFound) && command.namespace == ["vmkfstools"] => {
                return Err(vib_missing(e.to_string()));
            }
            other => other?,
        };
        let result = decode_execute_soap(&response).map_err(|source| Error::Decode {
            method: req.method().into(),
            source,
        })?;
        match result {
            SoapResult::Response(xml) => Ok(xml),
            SoapResult::Fault(f)
                if f.kind == FaultKind::NotFound && command.namespace == ["vmkfstools"] =>
            {
                Err(vib_missing(f.message))
            }
            SoapResult::Fault(f) => Err(Error::Esxcli {
                host: host.to_string(),
                command: command.display(),
                message: f.message,
                detail: f.detail,
            }),
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps hold plain data; a panic elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clone_method() -> CommandMethod {
        CommandMethod {
            name: "clone".into(),
            params: vec![
                CommandParam {
                    name: "source-vmdk".into(),
                    aliases: vec!["-s".into(), "--source-vmdk".into()],
                    flag: false,
                },
                CommandParam {
                    name: "target-lun".into(),
                    aliases: vec!["-t".into(), "--target-lun".into()],
                    flag: false,
                },
                CommandParam {
                    name: "force".into(),
                    aliases: vec!["-f".into(), "--force".into()],
                    flag: true,
                },
            ],
        }
    }

    #[test]
    fn argv_splits_into_namespace_verb_and_options() {
        let argv = ["storage", "core", "device", "list", "-d", "naa.1"];
        let c = EsxcliCommand::parse(&argv).unwrap();
        assert_eq!(c.moid(), "ha-cli-handler-storage-core-device");
        assert_eq!(c.method(), "vim.EsxCLI.storage.core.device.list");
        assert_eq!(c.options, &["-d", "naa.1"]);
        assert!(EsxcliCommand::parse(&["list"]).is_err());
        assert!(EsxcliCommand::parse(&["a<b", "c"]).is_err());
        assert!(EsxcliCommand::parse(&[]).is_err());
    }

    #[test]
    fn options_map_through_aliases_in_declared_order() {
        let m = clone_method();
        let args =
            map_arguments(&m, &["--target-lun=/dev/x", "-f", "-s", "[ds] a b/c.vmdk"]).unwrap();
        assert_eq!(
            args,
            vec![
                ("source-vmdk".to_owned(), vec!["[ds] a b/c.vmdk".to_owned()]),
                ("target-lun".to_owned(), vec!["/dev/x".to_owned()]),
                ("force".to_owned(), vec!["true".to_owned()]),
            ]
        );
        assert!(
            map_arguments(&m, &["-x", "1"])
                .unwrap_err()
                .contains("unknown option")
        );
        assert!(
            map_arguments(&m, &["-s"])
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(map_arguments(&m, &["stray"]).is_err());
    }

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

    /// The request bytes match the format govc emits (test-peers.md §1.4).
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
        let argv = ["iscsi", "software", "get"];
        let cmd = EsxcliCommand::parse(&argv).unwrap();
        let call = execute_soap_request(&mme, &cmd.moid(), &cmd.method(), &[]);
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
