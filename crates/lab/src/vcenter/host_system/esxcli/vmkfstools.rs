//! `esxcli vmkfstools` — the namespace the copy-offload VIB adds: `clone`, `taskGet`, `taskClean`,
//! `taskAbort` and `version`, answered by the lab's wrapper ([`crate::wrapper`]) as the VIB's plugin
//! runs its installed script. It exists only on hosts with the VIB; what the plugin declares and the
//! version it answers come from the files the VIB installed under the host's root.

use std::path::Path;

use co_esxi::protocol::{WrapperCommand, accepts_client_task_id};

use super::{CliAnswer, Command, Invocation, Output, Param, cli_fault, not_found};
use crate::host::SimHost;
use crate::host_files::{installed_version, version_reply, vib_wrapper_path};
use crate::wrapper;

pub(super) const NAMESPACE: &str = "vmkfstools";

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

pub(super) const COMMANDS: &[Command] = &[
    Command {
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
        name: "taskGet",
        help: "Get a clone task's status.",
        params: &[TASK_ID],
        formatter: "simple",
    },
    Command {
        name: "taskClean",
        help: "Clean up a clone task.",
        params: &[TASK_ID],
        formatter: "simple",
    },
    Command {
        name: "taskAbort",
        help: "Abort a running clone task.",
        params: &[TASK_ID],
        formatter: "simple",
    },
    Command {
        name: "version",
        help: "Print the wrapper version.",
        params: &[],
        formatter: "simple",
    },
];

/// Whether the host has the VIB (and so this namespace).
pub(super) fn installed(host: &SimHost) -> bool {
    host.spec.vib_installed
}

/// Whether the VIB installed under the host's `root` takes a clone task id (an older plugin lacks
/// the parameter).
fn plugin_takes_task_id(root: &Path) -> bool {
    installed_version(&vib_wrapper_path(root)).is_ok_and(|v| accepts_client_task_id(&v))
}

/// The parameters the installed plugin does not declare.
pub(super) fn absent_params(root: &Path) -> &'static [&'static str] {
    if plugin_takes_task_id(root) {
        &[]
    } else {
        &[CLONE_TASK_ID.name]
    }
}

pub(super) async fn run(call: &Invocation<'_>, name: &str) -> Result<Output, CliAnswer> {
    let op = match name {
        "clone" => {
            let task_id = call.arg("task-id");
            if task_id.is_some() && !plugin_takes_task_id(call.root) {
                return Err(cli_fault("Invalid option --task-id"));
            }
            WrapperCommand::Clone {
                source_vmdk: call.required("source-vmdk")?.to_owned(),
                target_device: call.required("target-lun")?.to_owned(),
                // The plugin passes an omitted option as an empty value: no id.
                task_id: task_id.filter(|id| !id.is_empty()).map(str::to_owned),
            }
        }
        "taskGet" => WrapperCommand::TaskGet {
            task_id: call.required("id")?.to_owned(),
        },
        "taskClean" => WrapperCommand::TaskClean {
            task_id: call.required("id")?.to_owned(),
        },
        "taskAbort" => WrapperCommand::TaskAbort {
            task_id: call.required("id")?.to_owned(),
        },
        "version" => WrapperCommand::Version,
        _ => return Err(not_found()),
    };
    let reply = if op == WrapperCommand::Version {
        // The plugin runs the installed script, which answers its own version.
        call.host.record_wrapper_command(&op);
        version_reply(&vib_wrapper_path(call.root))
    } else {
        wrapper::run(call.host, op).await
    };
    Ok(Output::Structure(
        format!("vim.EsxCLI.vmkfstools.{name}.result"),
        vec![
            ("status", reply.status.to_string()),
            ("message", reply.message),
        ],
    ))
}
