//! `esxcli storage core adapter rescan`: rescans one adapter or all of them (`--type add|delete|update`).

use super::{CliAnswer, Command, Invocation, Output, Param, cli_fault, not_found};
use crate::host::RescanKind;

pub(super) const NAMESPACE: &str = "storage.core.adapter";

pub(super) const COMMANDS: &[Command] = &[Command {
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
}];

pub(super) fn run(call: &Invocation<'_>, name: &str) -> Result<Output, CliAnswer> {
    let host = call.host;
    match name {
        "rescan" => {
            if let Some(adapter) = call.arg("adapter")
                && !host.adapters.iter().any(|a| a.device == adapter)
            {
                return Err(cli_fault(&format!("Unknown adapter {adapter}")));
            }
            let kind = match call.arg("type") {
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
        _ => Err(not_found()),
    }
}
