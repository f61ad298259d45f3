//! `esxcli system version get`: the host's product, version and build.

use super::{CliAnswer, Command, Invocation, Output, not_found};

pub(super) const NAMESPACE: &str = "system.version";

pub(super) const COMMANDS: &[Command] = &[Command {
    name: "get",
    help: "Display the product name, version and build information.",
    params: &[],
    formatter: "simple",
}];

pub(super) fn run(call: &Invocation<'_>, name: &str) -> Result<Output, CliAnswer> {
    match name {
        "get" => {
            let version = &call.host.spec.esxi_version;
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
        _ => Err(not_found()),
    }
}
