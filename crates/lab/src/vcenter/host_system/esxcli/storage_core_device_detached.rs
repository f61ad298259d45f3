//! `esxcli storage core device detached remove`: forgets a detached device for good.

use super::{CliAnswer, Command, DEVICE, Invocation, Output, cli_fault, not_found};

pub(super) const NAMESPACE: &str = "storage.core.device.detached";

pub(super) const COMMANDS: &[Command] = &[Command {
    name: "remove",
    help: "Allow a user to permanently remove a detached device from the detached list.",
    params: &[DEVICE],
    formatter: "simple",
}];

pub(super) fn run(call: &Invocation<'_>, name: &str) -> Result<Output, CliAnswer> {
    match name {
        "remove" => {
            call.host
                .remove_detached(call.required("device")?)
                .map_err(|m| cli_fault(&m))?;
            Ok(Output::Bool(true))
        }
        _ => Err(not_found()),
    }
}
