//! `esxcli storage core device`: `list` (one row per device the host sees) and `set --state on|off`
//! (attach, detach).

use super::{CliAnswer, Command, DEVICE, Invocation, Output, Param, cli_fault, not_found};
use crate::host::{Device, DeviceState, SimHost};
use crate::vcenter::scsi_inquiry;

pub(super) const NAMESPACE: &str = "storage.core.device";

pub(super) const COMMANDS: &[Command] = &[
    Command {
        name: "list",
        help: "List the devices currently registered with the PSA.",
        params: &[DEVICE],
        formatter: "table",
    },
    Command {
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
];

fn device_row(host: &SimHost, device: &Device) -> Vec<(&'static str, String)> {
    let naa = &device.lun.naa;
    let (vendor, model) = scsi_inquiry(naa);
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
        // The lab's arrays answer every primitive but a clone the scenario turned off.
        (
            "VAAIStatus",
            host.san().vaai_clone_status(naa).as_str().into(),
        ),
    ]
}

pub(super) fn run(call: &Invocation<'_>, name: &str) -> Result<Output, CliAnswer> {
    let host = call.host;
    match name {
        "list" => {
            let devices = match call.arg("device") {
                Some(naa) => vec![
                    host.device(naa)
                        .ok_or_else(|| cli_fault(&format!("Unknown device {naa}")))?,
                ],
                None => host.devices(),
            };
            let rows = devices.iter().map(|d| device_row(host, d)).collect();
            Ok(Output::Rows(
                "vim.EsxCLI.storage.core.device.list.ScsiDevice".into(),
                rows,
            ))
        }
        "set" => {
            let naa = call.required("device")?;
            let on = match call.arg("state") {
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
        _ => Err(not_found()),
    }
}
