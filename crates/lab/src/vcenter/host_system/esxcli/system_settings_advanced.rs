//! `esxcli system settings advanced list [-o /Group/Name]`: the host's advanced settings in esxcli's
//! spelling, the same values `configManager.advancedOption` answers.

use super::{CliAnswer, Command, Invocation, Output, Param, cli_fault, not_found};
use crate::scenario::{AdvancedOptionValue, api_option_key};

pub(super) const NAMESPACE: &str = "system.settings.advanced";

pub(super) const COMMANDS: &[Command] = &[Command {
    name: "list",
    help: "List the advanced options available from the VMkernel.",
    params: &[Param {
        name: "option",
        aliases: &["--option", "-o"],
        help: "Only get the information for a single option, e.g. /DataMover/HardwareAcceleratedMove.",
    }],
    formatter: "simple",
}];

/// `DataMover.MaxHWTransferSize` → `/DataMover/MaxHWTransferSize`.
fn esxcli_path(api_key: &str) -> String {
    format!("/{}", api_key.replace('.', "/"))
}

pub(super) fn run(call: &Invocation<'_>, name: &str) -> Result<Output, CliAnswer> {
    if name != "list" {
        return Err(not_found());
    }
    let wanted = call.arg("option").map(api_option_key);
    let rows: Vec<_> = call
        .settings
        .iter()
        .filter(|s| wanted.as_ref().is_none_or(|w| *w == s.key))
        .map(|s| {
            let (kind, int, string) = match &s.value {
                AdvancedOptionValue::Long(v) => ("integer", v.to_string(), String::new()),
                AdvancedOptionValue::Str(v) => ("string", "0".to_owned(), v.clone()),
            };
            let def = s.def;
            vec![
                ("Path", esxcli_path(&s.key)),
                ("Type", kind.to_owned()),
                ("IntValue", int),
                (
                    "DefaultIntValue",
                    def.map_or_else(|| "0".to_owned(), |d| d.default.to_string()),
                ),
                ("MinValue", def.map_or(0, |d| d.min).to_string()),
                ("MaxValue", def.map_or(0, |d| d.max).to_string()),
                ("StringValue", string),
                ("DefaultStringValue", String::new()),
                ("ValidCharacters", String::new()),
                ("Description", def.map_or("", |d| d.description).to_owned()),
                ("HostSpecific", "false".to_owned()),
                ("Impact", "none".to_owned()),
            ]
        })
        .collect();
    if let (Some(option), true) = (call.arg("option"), rows.is_empty()) {
        return Err(cli_fault(&format!("Unable to find option {option}")));
    }
    Ok(Output::Rows(
        "vim.EsxCLI.system.settings.advanced.list.SettingsAdvancedOption".into(),
        rows,
    ))
}
