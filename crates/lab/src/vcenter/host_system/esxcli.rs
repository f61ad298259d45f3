//! esxcli over `ExecuteSoap` on a host's ManagedMethodExecuter: the wire format and the dispatch to
//! one module per esxcli namespace, each answering from the simulated host state (as govmomi's
//! simulator keeps one file per managed object).
//!
//! Wire format: `vim.CLIInfo.FetchCLIInfo` (moid `ha-dynamic-type-manager-local-cli-cliinfo`) describes a
//! namespace's commands and parameter aliases; commands run as `vim.EsxCLI.<ns>.<cmd>` on moid
//! `ha-cli-handler-<ns parts joined by '-'>` with `<param>value</param>` arguments. Results and CLI faults
//! are XML documents carried as strings inside the SOAP result.

mod storage_core_adapter;
mod storage_core_device;
mod storage_core_device_detached;
mod storage_core_device_vaai_status;
mod system_settings_advanced;
mod system_version;
mod vmkfstools;

use std::fmt::Write as _;
use std::path::Path;

use super::super::option_manager::AdvancedSetting;
use crate::faults::FaultPlan;
use crate::host::SimHost;
use crate::vcenter::xml::{self, escape};

const OBJ_OPEN: &str = "<obj xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns=\"urn:vim25\" versionId=\"5.0\"";

/// The string result of `ExecuteSoap`: a response document or a CLI fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliAnswer {
    Response(String),
    Fault { message: String, detail: String },
}

/// A command parameter as `CLIInfo` describes it.
struct Param {
    name: &'static str,
    aliases: &'static [&'static str],
    help: &'static str,
}

/// One command of a namespace.
struct Command {
    name: &'static str,
    help: &'static str,
    params: &'static [Param],
    formatter: &'static str,
}

/// `--device`, shared by the device namespaces.
const DEVICE: Param = Param {
    name: "device",
    aliases: &["--device", "-d"],
    help: "Filter the output to this device.",
};

/// Every namespace the lab's esxcli knows with its commands. `vmkfstools` exists only on hosts with
/// the VIB.
const NAMESPACES: &[(&str, &[Command])] = &[
    (
        storage_core_device::NAMESPACE,
        storage_core_device::COMMANDS,
    ),
    (
        storage_core_device_detached::NAMESPACE,
        storage_core_device_detached::COMMANDS,
    ),
    (
        storage_core_device_vaai_status::NAMESPACE,
        storage_core_device_vaai_status::COMMANDS,
    ),
    (
        storage_core_adapter::NAMESPACE,
        storage_core_adapter::COMMANDS,
    ),
    (
        system_settings_advanced::NAMESPACE,
        system_settings_advanced::COMMANDS,
    ),
    (system_version::NAMESPACE, system_version::COMMANDS),
    (vmkfstools::NAMESPACE, vmkfstools::COMMANDS),
];

fn commands_of(namespace: &str) -> Option<&'static [Command]> {
    NAMESPACES
        .iter()
        .find(|(name, _)| *name == namespace)
        .map(|(_, commands)| *commands)
}

fn namespace_installed(host: &SimHost, namespace: &str) -> bool {
    namespace != vmkfstools::NAMESPACE || vmkfstools::installed(host)
}

fn not_found() -> CliAnswer {
    let message = "The object or item referred to could not be found.";
    CliAnswer::Fault {
        message: message.into(),
        detail: format!(
            "{OBJ_OPEN} xsi:type=\"LocalizedMethodFault\"><fault xsi:type=\"NotFound\"></fault>\
             <localizedMessage>{message}</localizedMessage></obj>"
        ),
    }
}

fn cli_fault(message: &str) -> CliAnswer {
    let m = escape(message);
    CliAnswer::Fault {
        message: message.to_owned(),
        detail: format!(
            "{OBJ_OPEN} xsi:type=\"LocalizedMethodFault\"><fault xsi:type=\"vim.EsxCLI.CLIFault\">\
             <errMsg>{m}</errMsg></fault><localizedMessage>{m}</localizedMessage></obj>"
        ),
    }
}

/// `CLIInfo` of a namespace, leaving out the parameters the host's installed version lacks.
fn cli_info(namespace: &str, commands: &[Command], absent: &[&str]) -> String {
    let mut out =
        format!("{OBJ_OPEN} xsi:type=\"vim.CLIInfo\"><name>vim.EsxCLI.{namespace}</name>");
    for command in commands {
        let _ = write!(
            out,
            "<method><name>{0}</name><displayName>{0}</displayName><help>{1}</help>",
            command.name,
            escape(command.help)
        );
        for param in command.params.iter().filter(|p| !absent.contains(&p.name)) {
            let _ = write!(
                out,
                "<param><name>{0}</name><displayName>{0}</displayName><help>{1}</help>",
                param.name,
                escape(param.help)
            );
            for alias in param.aliases {
                let _ = write!(out, "<aliases>{alias}</aliases>");
            }
            out.push_str("<flag>false</flag></param>");
        }
        let _ = write!(
            out,
            "<hints><key>formatter</key><value>{}</value></hints></method>",
            command.formatter
        );
    }
    out.push_str("</obj>");
    out
}

/// Output of a command before encoding.
enum Output {
    /// A table: one data object per row, fields in order.
    Rows(String, Vec<Vec<(&'static str, String)>>),
    /// One structure.
    Structure(String, Vec<(&'static str, String)>),
    Bool(bool),
}

fn encode(output: Output) -> String {
    let fields = |out: &mut String, row: &[(&str, String)]| {
        for (name, value) in row {
            let _ = write!(out, "<{name}>{}</{name}>", escape(value));
        }
    };
    match output {
        Output::Rows(kind, rows) => {
            let mut out = format!("{OBJ_OPEN} xsi:type=\"ArrayOfDataObject\">");
            for row in rows {
                let _ = write!(out, "<DataObject xsi:type=\"{kind}\">");
                fields(&mut out, &row);
                out.push_str("</DataObject>");
            }
            out.push_str("</obj>");
            out
        }
        Output::Structure(kind, row) => {
            let mut out = format!("{OBJ_OPEN} xsi:type=\"{kind}\">");
            fields(&mut out, &row);
            out.push_str("</obj>");
            out
        }
        Output::Bool(b) => format!("{OBJ_OPEN} xsi:type=\"xsd:boolean\">{b}</obj>"),
    }
}

/// Decodes `ExecuteSoap` arguments (`<name>value</name>` fragments) into name → values.
fn decode_arguments(arguments: &[(String, String)]) -> Vec<(String, Vec<String>)> {
    arguments
        .iter()
        .map(|(name, val)| {
            let values = xml::parse(&format!("<args>{val}</args>"))
                .map(|root| root.children.into_iter().map(|c| c.text).collect())
                .unwrap_or_else(|_| vec![val.clone()]);
            (name.clone(), values)
        })
        .collect()
}

/// What esxcli answers from on a host.
pub(super) struct HostState<'a> {
    pub host: &'a SimHost,
    /// The host's own file system, where the VIB's files are.
    pub root: &'a Path,
    /// The host's advanced settings.
    pub settings: &'a [AdvancedSetting],
}

/// One command invocation: the host, its own file system and settings, and the decoded arguments.
struct Invocation<'a> {
    host: &'a SimHost,
    root: &'a Path,
    settings: &'a [AdvancedSetting],
    args: &'a [(String, Vec<String>)],
}

impl Invocation<'_> {
    /// First value of an argument.
    fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
    }

    fn required(&self, name: &str) -> Result<&str, CliAnswer> {
        self.arg(name)
            .ok_or_else(|| cli_fault(&format!("Missing required parameter --{name}")))
    }
}

async fn run(call: &Invocation<'_>, namespace: &str, name: &str) -> Result<Output, CliAnswer> {
    match namespace {
        storage_core_device::NAMESPACE => storage_core_device::run(call, name),
        storage_core_device_detached::NAMESPACE => storage_core_device_detached::run(call, name),
        storage_core_device_vaai_status::NAMESPACE => {
            storage_core_device_vaai_status::run(call, name)
        }
        storage_core_adapter::NAMESPACE => storage_core_adapter::run(call, name),
        system_settings_advanced::NAMESPACE => system_settings_advanced::run(call, name),
        system_version::NAMESPACE => system_version::run(call, name),
        vmkfstools::NAMESPACE => vmkfstools::run(call, name).await,
        _ => Err(not_found()),
    }
}

/// Answers one `ExecuteSoap` call on a host's method executer.
pub(super) async fn execute(
    on: &HostState<'_>,
    faults: &FaultPlan,
    moid: &str,
    method: &str,
    arguments: &[(String, String)],
) -> CliAnswer {
    let (host, root) = (on.host, on.root);
    let args = decode_arguments(arguments);
    if moid == "ha-dynamic-type-manager-local-cli-cliinfo" && method == "vim.CLIInfo.FetchCLIInfo" {
        let type_name = args
            .iter()
            .find(|(n, _)| n == "typeName")
            .and_then(|(_, v)| v.first())
            .cloned()
            .unwrap_or_default();
        let namespace = type_name.strip_prefix("vim.EsxCLI.").unwrap_or_default();
        let Some(commands) =
            commands_of(namespace).filter(|_| namespace_installed(host, namespace))
        else {
            return not_found();
        };
        let absent = if namespace == vmkfstools::NAMESPACE {
            vmkfstools::absent_params(root)
        } else {
            &[]
        };
        return CliAnswer::Response(cli_info(namespace, commands, absent));
    }
    let Some(full) = method.strip_prefix("vim.EsxCLI.") else {
        return not_found();
    };
    let Some((namespace, name)) = full.rsplit_once('.') else {
        return not_found();
    };
    if moid != format!("ha-cli-handler-{}", namespace.replace('.', "-"))
        || !namespace_installed(host, namespace)
        || !commands_of(namespace).is_some_and(|commands| commands.iter().any(|c| c.name == name))
    {
        return not_found();
    }
    let site = format!("esxcli:{} {name}", namespace.replace('.', " "));
    if let Err(injected) = faults.apply(&site).await {
        return cli_fault(&injected.message);
    }
    let call = Invocation {
        host,
        root,
        settings: on.settings,
        args: &args,
    };
    match run(&call, namespace, name).await {
        Ok(output) => CliAnswer::Response(encode(output)),
        Err(fault) => fault,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_info_lists_methods_with_aliases() {
        let info = xml::parse(&cli_info(
            storage_core_device::NAMESPACE,
            storage_core_device::COMMANDS,
            &[],
        ))
        .unwrap();
        assert_eq!(info.xsi_type(), Some("vim.CLIInfo"));
        let methods: Vec<_> = info.children_named("method").collect();
        assert_eq!(methods.len(), 2);
        let list = methods
            .iter()
            .find(|m| m.child_text("name") == Some("list"))
            .unwrap();
        let param = list.child("param").unwrap();
        assert_eq!(param.child_text("name"), Some("device"));
        let aliases: Vec<_> = param
            .children_named("aliases")
            .map(|a| a.text.as_str())
            .collect();
        assert_eq!(aliases, ["--device", "-d"]);
    }

    #[test]
    fn every_namespace_is_listed_once() {
        let mut names: Vec<_> = NAMESPACES.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), NAMESPACES.len());
    }

    #[test]
    fn arguments_decode_from_escaped_fragments() {
        let args = decode_arguments(&[("device".into(), "<device>naa.1</device>".into())]);
        assert_eq!(args, [("device".to_owned(), vec!["naa.1".to_owned()])]);
    }

    #[test]
    fn not_found_fault_matches_the_esxi_text() {
        let CliAnswer::Fault { message, detail } = not_found() else {
            panic!()
        };
        assert_eq!(
            message,
            "The object or item referred to could not be found."
        );
        assert!(detail.contains("<fault xsi:type=\"NotFound\"></fault>"));
        assert!(detail.starts_with("<obj xmlns:xsd="));
    }

    #[test]
    fn rows_encode_as_array_of_data_object() {
        let text = encode(Output::Rows(
            "K".into(),
            vec![vec![("Status", "on".into())]],
        ));
        let root = xml::parse(&text).unwrap();
        assert_eq!(root.xsi_type(), Some("ArrayOfDataObject"));
        assert_eq!(
            root.child("DataObject").unwrap().child_text("Status"),
            Some("on")
        );
    }
}
