//! `esxcli storage core device vaai status get`: each device's VAAI primitives. The clone (XCOPY)
//! status is the SAN's for the device (a scenario's `vaai_clone`); the lab's arrays answer every
//! other primitive.

use super::{CliAnswer, Command, DEVICE, Invocation, Output, cli_fault, not_found};
use crate::host::Device;

pub(super) const NAMESPACE: &str = "storage.core.device.vaai.status";

pub(super) const COMMANDS: &[Command] = &[Command {
    name: "get",
    help: "Display the hardware acceleration (VAAI) status of devices.",
    params: &[DEVICE],
    formatter: "table",
}];

fn status_row(call: &Invocation<'_>, device: &Device) -> Vec<(&'static str, String)> {
    let naa = &device.lun.naa;
    vec![
        ("Device", naa.clone()),
        ("VAAIPluginName", String::new()),
        ("ATSStatus", "supported".into()),
        (
            "CloneStatus",
            call.host.san().vaai_clone_status(naa).as_str().into(),
        ),
        ("ZeroStatus", "supported".into()),
        ("DeleteStatus", "supported".into()),
    ]
}

pub(super) fn run(call: &Invocation<'_>, name: &str) -> Result<Output, CliAnswer> {
    match name {
        "get" => {
            let devices = match call.arg("device") {
                Some(naa) => vec![
                    call.host
                        .device(naa)
                        .ok_or_else(|| cli_fault(&format!("Unknown device {naa}")))?,
                ],
                None => call.host.devices(),
            };
            Ok(Output::Rows(
                "vim.EsxCLI.storage.core.device.vaai.status.get.DeviceVAAIStatus".into(),
                devices.iter().map(|d| status_row(call, d)).collect(),
            ))
        }
        _ => Err(not_found()),
    }
}
