//! The VIB clone method: the wrapper's operations as esxcli commands in the `vmkfstools`
//! namespace, one vSphere API round trip per call. The esxcli transport is a seam
//! ([`EsxcliRunner`]) implemented for a host over `co_vsphere` by the caller.
//!
//! The plugin places values in an `<execute>` line that the host may run through a shell. A
//! wrapper from 1.2.0 on is sent every value encoded (only `hex:` and hex digits), so no path,
//! however named, is ever shell text; an older wrapper gets plain values, and only ones that
//! single quotes keep inert (no quote character).

use std::collections::BTreeMap;

use async_trait::async_trait;
use tokio::sync::OnceCell;

use crate::error::EsxiError;
use crate::executor::{CloneExecutor, WrapperTransport, reply_message};
use crate::protocol::{WrapperCommand, WrapperReply, accepts_encoded_values};

/// One esxcli output structure: field name → values.
pub type EsxcliRecord = BTreeMap<String, Vec<String>>;

/// Runs an esxcli command on one ESXi host.
#[async_trait]
pub trait EsxcliRunner: Send + Sync {
    /// Host name for messages.
    fn host(&self) -> &str;
    async fn esxcli(&self, argv: &[&str]) -> Result<Vec<EsxcliRecord>, EsxiError>;
}

/// Folds esxcli records into the wrapper reply: the first non-zero `status` wins, and the
/// `message` values of all records are concatenated (esxcli may split a long string).
pub fn reply_from_records(records: &[EsxcliRecord]) -> Result<WrapperReply, EsxiError> {
    let mut status = None;
    let mut message = String::new();
    for record in records {
        if let Some(value) = record.get("status") {
            let text = value.concat();
            let parsed: i32 = text.trim().parse().map_err(|_| {
                crate::protocol::ProtocolError::MalformedEnvelope {
                    reason: format!("esxcli status {text:?} is not a number"),
                    excerpt: String::new(),
                }
            })?;
            if status.is_none_or(|s| s == 0) {
                status = Some(parsed);
            }
        }
        if let Some(value) = record.get("message") {
            message.push_str(&value.concat());
        }
    }
    let status = status.ok_or(crate::protocol::ProtocolError::MissingField("status"))?;
    Ok(WrapperReply { status, message })
}

/// Clone executor over esxcli `vmkfstools …`.
pub struct VibExecutor<R> {
    runner: R,
    /// The wrapper version, read once: the VIB does not change under a running copy.
    version: OnceCell<String>,
}

impl<R: EsxcliRunner> VibExecutor<R> {
    pub fn new(runner: R) -> Self {
        Self {
            runner,
            version: OnceCell::new(),
        }
    }

    /// The esxcli transport this executor calls through.
    pub fn runner(&self) -> &R {
        &self.runner
    }
}

#[async_trait]
impl<R: EsxcliRunner> WrapperTransport for VibExecutor<R> {
    async fn call(&self, command: WrapperCommand) -> Result<String, EsxiError> {
        let args = if command.values().is_empty() {
            command
                .esxcli_args()
                .iter()
                .map(|a| (*a).to_owned())
                .collect()
        } else if accepts_encoded_values(&self.version().await?) {
            command.esxcli_args_encoded()
        } else {
            if let Some(quoted) = command.values().into_iter().find(|v| v.contains('\'')) {
                return Err(EsxiError::InvalidArgument {
                    what: "value",
                    value: quoted.to_owned(),
                    reason: "the host's vmkfstools-wrapper VIB is older than 1.2.0 and hands values \
                             to a shell in single quotes; upgrade the VIB (copy-offload vib install) \
                             to copy a disk whose path contains a quote",
                });
            }
            command
                .esxcli_args()
                .iter()
                .map(|a| (*a).to_owned())
                .collect()
        };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let records = self.runner.esxcli(&argv).await?;
        reply_message(command.esxcli_command(), reply_from_records(&records)?)
    }

    fn version_cache(&self) -> &OnceCell<String> {
        &self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pairs: &[(&str, &str)]) -> EsxcliRecord {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
            .collect()
    }

    #[test]
    fn records_fold_into_one_reply() {
        let reply = reply_from_records(&[
            record(&[("status", "0"), ("message", "{\"taskId\": \"a\",")]),
            record(&[("message", " \"pid\": 1}")]),
        ])
        .unwrap();
        assert_eq!(reply, WrapperReply::ok("{\"taskId\": \"a\", \"pid\": 1}"));
        let failed =
            reply_from_records(&[record(&[("status", "28"), ("message", "low space")])]).unwrap();
        assert_eq!(failed, WrapperReply::failed(28, "low space"));
        assert!(reply_from_records(&[record(&[("message", "x")])]).is_err());
    }
}
