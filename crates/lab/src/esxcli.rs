//! esxcli over `ExecuteSoap`: the namespaces the product uses, answered from the simulated host state.
//!
//! Wire format: `vim.CLIInfo.FetchCLIInfo` (moid `ha-dynamic-type-manager-local-cli-cliinfo`) describes a
//! namespace's commands and parameter aliases; commands run as `vim.EsxCLI.<ns>.<cmd>` on moid
//! `ha-cli-handler-<ns parts joined by '-'>` with `<param>value</param>` arguments. Results and CLI faults
//! are XML documents carried as strings inside the SOAP result.

use std::fmt::Write as _;
use std::path::Path;

use crate::faults::FaultPlan;
use crate::host::{DeviceState, RescanKind, SimHost};
use crate::host_files::{installed_version, version_reply, vib_wrapper_path};
use crate::vcenter::xml::{self, escape};
use crate::wrapper;
use co_esxi::protocol::{WrapperCommand, accepts_client_task_id};

const OBJ_OPEN: &str = "<obj xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns=\"urn:vim25\" versionId=\"5.0\"";

/// The string result of `ExecuteSoap`: a response document or a CLI fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliAnswer {
    Response(String),
    Fault { message: String, detail: String },
}

struct Param {
    name: &'static str,
    aliases: &'static [&'static str],
    help: &'static str,
}

struct Command {
    namespace: &'static str,
    name: &'static str,
    help: &'static str,
    params: &'static [Param],
    formatter: &'static str,
}

const DEVICE: Param = Param {
    name: "device",
    aliases: &["--device", "-d"],
    help: "Filter the output to this device.",
};
const TASK_ID: Param = Param {
    name: "id",
    aliases: &["--id", "-i"],
    help: "Task id returned by clone.",
};

/// The clone's optional task id: only in the plugin of wrapper 1.1.0 and later.
const CLONE_TASK_ID: Param = Param {
    name: "task-id",
    aliases: &["--task-id", "-i"],
    help: "Task id to give the clone; an existing task with this id is answered, not started again.",
};

/// Every command the lab's esxcli knows. `vmkfstools` exists only on hosts with the VIB.
const COMMANDS: &[Command] = &[
    Command {
        namespace: "storage.core.device",
        name: "list",
        help: "List the devices currently registered with the PSA.",
        params: &[DEVICE],
        formatter: "table",
    },
    Command {
        namespace: "storage.core.device",
        name: "set",
        help: "Provide control to allow a user to modify a SCSI device's state.",
        params: &[
            DEVICE,
            Param {
                name: "state",
                aliases: &["--state"],
                help: "Set the SCSI device state (on|off).",
            },
        ],
        formatter: "simple",
    },
    Command {
        namespace: "storage.core.device.detached",
        name: "remove",
        help: "Allow a user to permanently remove a detached device from the detached list.",
        params: &[DEVICE],
        formatter: "simple",
    },
    Command {
        namespace: "storage.core.adapter",
        name: "rescan",
        help: "Rescan SCSI HBAs to search for new Devices, remove DEAD paths and update path state.",
        params: &[
            Param {
                name: "adapter",
                aliases: &["--adapter", "-A"],
                help: "Select the adapter to rescan.",
            },
            Param {
                name: "all",
                aliases: &["--all", "-a"],
                help: "Rescan all adapters.",
            },
            Param {
                name: "type",
                aliases: &["--type", "-t"],
                help: "Type of rescan: add, delete or update.",
            },
        ],
        formatter: "simple",
    },
    Command {
        namespace: "system.version",
        name: "get",
        help: "Display the product name, version and build information.",
        params: &[],
        formatter: "simple",
    },
    Command {
        namespace: "vmkfstools",
        name: "clone",
        help: "Clone a virtual disk onto a device as an RDM.",
        params: &[
            Param {
                name: "source-vmdk",
                aliases: &["--source-vmdk", "-s"],
                help: "Source VMDK path.",
            },
            Param {
                name: "target-lun",
                aliases: &["--target-lun", "-t"],
                help: "Target device path.",
            },
            CLONE_TASK_ID,
        ],
        formatter: "simple",
    },
    Command {
        namespace: "vmkfstools",
        name: "taskGet",
        help: "Get a clone task's status.",
        params: &[TASK_ID],
        formatter: "simple",
    },
    Command {
        namespace: "vmkfstools",
        name: "taskClean",
        help: "Clean up a clone task.",
        params: &[TASK_ID],
        formatter: "simple",
    },
    Command {
        namespace: "vmkfstools",
        name: "taskAbort",
        help: "Abort a running clone task.",
        params: &[TASK_ID],
        formatter: "simple",
    },
    Command {
        namespace: "vmkfstools",
        name: "version",
        help: "Print the wrapper version.",
        params: &[],
        formatter: "simple",
    },
];

fn namespace_installed(host: &SimHost, namespace: &str) -> bool {
    namespace != "vmkfstools" || host.spec.vib_installed
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

/// Whether the VIB installed under the host's `root` takes a clone task id (an older plugin lacks
/// the parameter).
fn plugin_takes_task_id(root: &Path) -> bool {
    installed_version(&vib_wrapper_path(root)).is_ok_and(|v| accepts_client_task_id(&v))
}

/// `CLIInfo` of a namespace; `clone_task_id` says whether the installed plugin declares it.
fn cli_info(namespace: &str, clone_task_id: bool) -> String {
    let mut out =
        format!("{OBJ_OPEN} xsi:type=\"vim.CLIInfo\"><name>vim.EsxCLI.{namespace}</name>");
    for command in COMMANDS.iter().filter(|c| c.namespace == namespace) {
        let _ = write!(
            out,
            "<method><name>{0}</name><displayName>{0}</displayName><help>{1}</help>",
            command.name,
            escape(command.help)
        );
        for param in command
            .params
            .iter()
            .filter(|p| clone_task_id || p.name != CLONE_TASK_ID.name)
        {
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

fn device_row(device: &crate::host::Device) -> Vec<(&'static str, String)> {
    let naa = &device.lun.naa;
    let (vendor, model) = crate::vcenter::scsi_inquiry(naa);
    vec![
        ("Device", naa.clone()),
        ("DisplayName", format!("{vendor} iSCSI Disk ({naa})")),
        (
            "Size",
            (device.lun.volume.size_bytes / (1024 * 1024)).to_string(),
        ),
        ("DeviceType", "Direct-Access".into()),
        ("MultipathPlugin", "NMP".into()),
        ("DevfsPath", format!("/vmfs/devices/disks/{naa}")),
        ("Vendor", vendor.into()),
        ("Model", model.into()),
        ("Revision", "9800".into()),
        ("Status", device.state.as_str().into()),
        ("IsOffline", (device.state != DeviceState::On).to_string()),
        ("IsLocal", "false".into()),
        ("IsSSD", "true".into()),
        ("VAAIStatus", "supported".into()),
    ]
}

async fn run(
    host: &SimHost,
    root: &Path,
    namespace: &str,
    name: &str,
    args: &[(String, Vec<String>)],
) -> Result<Output, CliAnswer> {
    let arg = |n: &str| {
        args.iter()
            .find(|(k, _)| k == n)
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
    };
    let required =
        |n: &str| arg(n).ok_or_else(|| cli_fault(&format!("Missing required parameter --{n}")));
    match (namespace, name) {
        ("storage.core.device", "list") => {
            let devices = match arg("device") {
                Some(naa) => vec![
                    host.device(naa)
                        .ok_or_else(|| cli_fault(&format!("Unknown device {naa}")))?,
                ],
                None => host.devices(),
            };
            let rows = devices.iter().map(device_row).collect();
            Ok(Output::Rows(
                "vim.EsxCLI.storage.core.device.list.ScsiDevice".into(),
                rows,
            ))
        }
        ("storage.core.device", "set") => {
            let naa = required("device")?;
            let on = match arg("state") {
                Some("on") => true,
                Some("off") => false,
                other => {
                    return Err(cli_fault(&format!(
                        "Invalid state {other:?}: use on or off"
                    )));
                }
            };
            host.set_device_state(naa, on).map_err(|m| cli_fault(&m))?;
            Ok(Output::Bool(true))
        }
        ("storage.core.device.detached", "remove") => {
            host.remove_detached(required("device")?)
                .map_err(|m| cli_fault(&m))?;
            Ok(Output::Bool(true))
        }
        ("storage.core.adapter", "rescan") => {
            if let Some(adapter) = arg("adapter")
                && !host.adapters.iter().any(|a| a.device == adapter)
            {
                return Err(cli_fault(&format!("Unknown adapter {adapter}")));
            }
            let kind = match arg("type") {
                None | Some("update") => RescanKind::All,
                Some("add") => RescanKind::Add,
                Some("delete") => RescanKind::Delete,
                Some(other) => {
                    return Err(cli_fault(&format!(
                        "Invalid rescan type {other}: use add, delete or update"
                    )));
                }
            };
            host.rescan(kind);
            Ok(Output::Bool(true))
        }
        ("system.version", "get") => {
            let version = &host.spec.esxi_version;
            let update = version.split('.').nth(2).unwrap_or("0").to_owned();
            Ok(Output::Structure(
                "vim.EsxCLI.system.version.get.VersionGet".into(),
                vec![
                    ("Build", "Releasebuild-24022510".into()),
                    ("Patch", "0".into()),
                    ("Product", "VMware ESXi".into()),
                    ("Update", update),
                    ("Version", version.clone()),
                ],
            ))
        }
        ("vmkfstools", command) => {
            let op = match command {
                "clone" => {
                    let task_id = arg("task-id");
                    if task_id.is_some() && !plugin_takes_task_id(root) {
                        return Err(cli_fault("Invalid option --task-id"));
                    }
                    WrapperCommand::Clone {
                        source_vmdk: required("source-vmdk")?.to_owned(),
                        target_device: required("target-lun")?.to_owned(),
                        // The plugin passes an omitted option as an empty value: no id.
                        task_id: task_id.filter(|id| !id.is_empty()).map(str::to_owned),
                    }
                }
                "taskGet" => WrapperCommand::TaskGet {
                    task_id: required("id")?.to_owned(),
                },
                "taskClean" => WrapperCommand::TaskClean {
                    task_id: required("id")?.to_owned(),
                },
                "taskAbort" => WrapperCommand::TaskAbort {
                    task_id: required("id")?.to_owned(),
                },
                "version" => WrapperCommand::Version,
                _ => return Err(not_found()),
            };
            let reply = if op == WrapperCommand::Version {
                // The plugin runs the installed script, which answers its own version.
                host.record_wrapper_command(&op);
                version_reply(&vib_wrapper_path(root))
            } else {
                wrapper::run(host, op).await
            };
            Ok(Output::Structure(
                format!("vim.EsxCLI.vmkfstools.{command}.result"),
                vec![
                    ("status", reply.status.to_string()),
                    ("message", reply.message),
                ],
            ))
        }
        _ => Err(not_found()),
    }
}

/// Answers one `ExecuteSoap` call on `host`'s method executer.
/// `root` is the host's own file system, where the VIB's files are.
pub async fn execute(
    host: &SimHost,
    root: &Path,
    faults: &FaultPlan,
    moid: &str,
    method: &str,
    arguments: &[(String, String)],
) -> CliAnswer {
    let args = decode_arguments(arguments);
    if moid == "ha-dynamic-type-manager-local-cli-cliinfo" && method == "vim.CLIInfo.FetchCLIInfo" {
        let type_name = args
            .iter()
            .find(|(n, _)| n == "typeName")
            .and_then(|(_, v)| v.first())
            .cloned()
            .unwrap_or_default();
        let namespace = type_name.strip_prefix("vim.EsxCLI.").unwrap_or_default();
        if !namespace_installed(host, namespace)
            || !COMMANDS.iter().any(|c| c.namespace == namespace)
        {
            return not_found();
        }
        return CliAnswer::Response(cli_info(namespace, plugin_takes_task_id(root)));
    }
    let Some(full) = method.strip_prefix("vim.EsxCLI.") else {
        return not_found();
    };
    let Some((namespace, name)) = full.rsplit_once('.') else {
        return not_found();
    };
    if moid != format!("ha-cli-handler-{}", namespace.replace('.', "-"))
        || !namespace_installed(host, namespace)
        || !COMMANDS
            .iter()
            .any(|c| c.namespace == namespace && c.name == name)
    {
        return not_found();
    }
    let site = format!("esxcli:{} {name}", namespace.replace('.', " "));
    if let Err(injected) = faults.apply(&site).await {
        return cli_fault(&injected.message);
    }
    match run(host, root, namespace, name, &args).await {
        Ok(output) => CliAnswer::Response(encode(output)),
        Err(fault) => fault,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_info_lists_methods_with_aliases() {
        let info = xml::parse(&cli_info("storage.core.device", true)).unwrap();
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
