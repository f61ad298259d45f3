//! The esxcli command line: an argv split into namespace, verb and options, and the options
//! mapped onto a command's parameters through its CLI info. The typed commands build their argv
//! here too, so a typed command and a raw one reach the host as the same request.

use crate::error::Error;

use super::wire::CommandMethod;

/// An argv split into namespace, verb and options: `["storage","core","device","list","-d",x]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine<'a> {
    pub namespace: Vec<&'a str>,
    pub verb: &'a str,
    pub options: &'a [&'a str],
}

impl<'a> CommandLine<'a> {
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

    pub fn display(&self) -> String {
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

/// Owned argv words, for the typed commands.
pub(super) fn words(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esxcli::wire::CommandParam;

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
        let c = CommandLine::parse(&argv).unwrap();
        assert_eq!(c.moid(), "ha-cli-handler-storage-core-device");
        assert_eq!(c.method(), "vim.EsxCLI.storage.core.device.list");
        assert_eq!(c.options, &["-d", "naa.1"]);
        assert!(CommandLine::parse(&["list"]).is_err());
        assert!(CommandLine::parse(&["a<b", "c"]).is_err());
        assert!(CommandLine::parse(&[]).is_err());
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
}
