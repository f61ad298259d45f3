//! The in-process vmkfstools wrapper: the operations of `vmkfstools-wrapper` (VIB) and
//! `secure-vmkfstools-wrapper` (SSH) answered from a [`SimHost`]'s task table. The wire shapes (XML
//! envelope, JSON task documents, command parsing) come from [`co_esxi::protocol`], the module the
//! product's executors use, so the lab cannot drift from the real wrappers. Both the esxcli
//! `vmkfstools` namespace ([`run`], which decodes the VIB's encoded values as wrapper 1.2.0 does)
//! and the SSH endpoint ([`run_ssh`]) dispatch here.

use co_esxi::protocol::{
    VersionInfo, WrapperCommand, WrapperReply, accepts_encoded_values, encode_message,
};

use crate::host::{SimHost, WrapperError};

fn failed(error: WrapperError) -> WrapperReply {
    WrapperReply::failed(error.status, error.message)
}

/// Runs one esxcli `vmkfstools` operation against a host and answers as the VIB wrapper would:
/// from wrapper 1.2.0 on, `hex:` values are decoded first.
pub async fn run(host: &SimHost, command: WrapperCommand) -> WrapperReply {
    if !accepts_encoded_values(host.wrapper_version()) {
        return run_ssh(host, command).await;
    }
    match command.decode_esxcli_values() {
        Ok(command) => run_ssh(host, command).await,
        Err(e) => WrapperReply::failed(1, e.to_string()),
    }
}

/// Runs one operation against a host and answers as the SSH wrapper would.
pub async fn run_ssh(host: &SimHost, command: WrapperCommand) -> WrapperReply {
    host.record_wrapper_command(&command);
    match command {
        WrapperCommand::Probe => WrapperReply::ok(co_esxi::protocol::PROBE_REPLY),
        WrapperCommand::Version => WrapperReply::ok(encode_message(&VersionInfo {
            version: host.wrapper_version().to_owned(),
        })),
        WrapperCommand::Clone {
            source_vmdk,
            target_device,
            task_id,
        } => match host.start_clone(&source_vmdk, &target_device, task_id.as_deref()) {
            Ok(started) => WrapperReply::ok(encode_message(&started)),
            Err(e) => failed(e),
        },
        WrapperCommand::TaskGet { task_id } => match host.task_status(&task_id) {
            Ok(status) => WrapperReply::ok(encode_message(&status)),
            Err(e) => WrapperReply::failed(
                e.status,
                encode_message(&serde_json::json!({ "taskId": task_id, "stdErr": e.message })),
            ),
        },
        WrapperCommand::TaskClean { task_id } => match host.clean_task(&task_id).await {
            Ok(()) => WrapperReply::ok(""),
            Err(e) => failed(e),
        },
        WrapperCommand::TaskAbort { task_id } => match host.abort_task(&task_id) {
            Ok(status) => WrapperReply::ok(encode_message(&status)),
            Err(e) => failed(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_the_fault_sites_the_docs_list() {
        let names: Vec<_> = [
            WrapperCommand::Probe,
            WrapperCommand::Version,
            WrapperCommand::Clone {
                source_vmdk: String::new(),
                target_device: String::new(),
                task_id: None,
            },
            WrapperCommand::TaskGet {
                task_id: String::new(),
            },
            WrapperCommand::TaskAbort {
                task_id: String::new(),
            },
            WrapperCommand::TaskClean {
                task_id: String::new(),
            },
        ]
        .iter()
        .map(WrapperCommand::operation)
        .collect();
        assert_eq!(
            names,
            [
                "probe",
                "version",
                "clone",
                "task-get",
                "task-abort",
                "task-clean"
            ]
        );
    }
}
