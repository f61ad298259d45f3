//! The VIB method: the real esxcli plugin XML and shell wrapper behind the VIB executor. The
//! esxcli transport is the seam: a test runner reads the plugin's `<execute>` template, fills in
//! the values as esxcli does and runs it with `/bin/sh`, like hostd's esxcli plugin host.

use crate::support;

use std::time::Duration;

use co_esxi::EsxiError;
use co_esxi::executor::{CloneExecutor, CloneTask, PollSchedule};
use co_esxi::vib_executor::{EsxcliRunner, VibExecutor};
use support::{FakeEsxi, PluginHost, Shell};
use tokio_util::sync::CancellationToken;

const FAST: PollSchedule = PollSchedule {
    first: Duration::from_millis(50),
    max: Duration::from_millis(200),
};

fn rig(shell: Shell) -> (FakeEsxi, VibExecutor<PluginHost>) {
    let esxi = FakeEsxi::new("ds 1");
    let wrapper = esxi.install_vib_wrapper(shell);
    (esxi, VibExecutor::new(PluginHost::new(wrapper)))
}

/// A host whose VIB still carries wrapper `version` (the script as shipped, version line changed).
fn rig_with_wrapper_version(version: &str) -> (FakeEsxi, VibExecutor<PluginHost>) {
    let (esxi, executor) = rig(Shell::Dash);
    let script = std::fs::read_to_string(executor_wrapper(&executor)).unwrap();
    let current = format!("SCRIPT_VERSION=\"{}\"", co_esxi::assets::WRAPPER_VERSION);
    assert!(script.contains(&current));
    let older = script.replacen(&current, &format!("SCRIPT_VERSION=\"{version}\""), 1);
    std::fs::write(executor_wrapper(&executor), older).unwrap();
    (esxi, executor)
}

fn executor_wrapper(executor: &VibExecutor<PluginHost>) -> std::path::PathBuf {
    executor.runner().wrapper.clone()
}

const CLIENT_ID: &str = "5d0f3c9e-2b7a-4c61-9e8d-0a1b2c3d4e5f";

#[tokio::test]
async fn a_client_task_id_names_the_clone_and_a_repeated_start_answers_it() {
    for shell in [Shell::Dash, Shell::Busybox] {
        client_task_id_under(shell).await;
    }
}

async fn client_task_id_under(shell: Shell) {
    let (esxi, executor) = rig(shell);
    assert!(executor.accepts_client_task_id().await.unwrap());
    let source = esxi.add_vmdk(
        "vm/vm.vmdk",
        r#"{"steps": 2, "interval": 0.01, "hang": true}"#,
    );
    let device = esxi.add_device("naa.1", Some(0));
    let other = esxi.add_device("naa.2", Some(0));

    let started = executor
        .start_clone(&source, &device, Some(CLIENT_ID))
        .await
        .unwrap();
    assert_eq!(started.task_id, CLIENT_ID, "{shell:?}");
    assert_eq!(esxi.task_dirs(), [CLIENT_ID]);

    let again = executor
        .start_clone(&source, &device, Some(CLIENT_ID))
        .await
        .unwrap();
    assert_eq!(
        again, started,
        "{shell:?}: a repeated start answers the running task"
    );
    let refused = executor
        .start_clone(&source, &other, Some(CLIENT_ID))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("already names another clone"),
        "{shell:?}: {refused}"
    );
    assert_eq!(esxi.vmkfstools_runs().len(), 1, "{shell:?}: one clone only");

    let status = executor.abort(CLIENT_ID).await.unwrap();
    assert!(status.exit_code.is_some(), "{status:?}");
    executor.clean(CLIENT_ID).await.unwrap();
    assert!(esxi.task_dirs().is_empty());
    assert_eq!(esxi.datastore_files(), ["vm/vm.vmdk"]);
}

#[tokio::test]
async fn a_malformed_client_task_id_is_refused_by_executor_and_wrapper() {
    let (esxi, executor) = rig(Shell::Dash);
    let source = esxi.add_vmdk("vm/vm.vmdk", r#"{"steps": 1}"#);
    let device = esxi.add_device("naa.1", None);
    let err = executor
        .start_clone(&source, &device, Some("../../etc"))
        .await
        .unwrap_err();
    assert!(matches!(err, EsxiError::InvalidArgument { .. }), "{err}");
    // Past the executor's check, the wrapper refuses it itself.
    let runner = executor.runner();
    let records = runner
        .esxcli(&[
            "vmkfstools",
            "clone",
            "-s",
            &source,
            "-t",
            &device,
            "-i",
            "ABC",
        ])
        .await
        .unwrap();
    let reply = co_esxi::vib_executor::reply_from_records(&records).unwrap();
    assert_eq!(reply.status, 1);
    assert_eq!(reply.message, "task id must be a lowercase UUID");
    assert!(esxi.vmkfstools_runs().is_empty());
    assert!(esxi.task_dirs().is_empty());
}

/// A host with wrapper 1.0.0: it refuses options it does not know, so the id never leaves.
#[tokio::test]
async fn an_older_wrapper_never_receives_a_client_task_id() {
    let (esxi, executor) = rig_with_wrapper_version("1.0.0");
    assert!(!executor.accepts_client_task_id().await.unwrap());
    let source = esxi.add_vmdk("vm/vm.vmdk", r#"{"steps": 1}"#);
    let device = esxi.add_device("naa.1", None);
    let err = executor
        .start_clone(&source, &device, Some(CLIENT_ID))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EsxiError::ClientTaskIdUnsupported { version } if version == "1.0.0"),
        "{err}"
    );
    assert!(esxi.vmkfstools_runs().is_empty());
    assert!(esxi.task_dirs().is_empty());
    let started = executor.start_clone(&source, &device, None).await.unwrap();
    assert_ne!(started.task_id, CLIENT_ID);
}

#[tokio::test]
async fn clone_through_esxcli_streams_progress_and_cleans() {
    for shell in [Shell::Dash, Shell::Busybox] {
        clone_streams_progress_and_cleans_under(shell).await;
    }
}

async fn clone_streams_progress_and_cleans_under(shell: Shell) {
    let (esxi, executor) = rig(shell);
    assert_eq!(
        executor.version().await.unwrap(),
        co_esxi::assets::WRAPPER_VERSION
    );
    let source = esxi.add_vmdk(
        "my vm/my vm.vmdk",
        r#"{"steps": 5, "interval": 0.05, "xcopy": true}"#,
    );
    let device = esxi.add_device("naa.600a", Some(7));
    let mut percents = Vec::new();
    let outcome = CloneTask::new(&executor)
        .with_schedule(FAST)
        .run(&source, &device, &CancellationToken::new(), |p| {
            percents.push(p.percent)
        })
        .await
        .unwrap();
    assert_eq!(outcome.xcopy_used, Some(true));
    assert_eq!(percents.last(), Some(&100));
    let argv: Vec<String> = serde_json::from_str(&esxi.vmkfstools_runs()[0]).unwrap();
    assert_eq!(
        argv[1],
        format!(
            "{}/vmfs/volumes/ds 1/my vm/my vm.vmdk",
            esxi.fs_root().display()
        )
    );
    assert!(esxi.task_dirs().is_empty());
    assert_eq!(esxi.datastore_files(), ["my vm/my vm.vmdk"]);
}

#[tokio::test]
async fn failure_and_abort_through_esxcli() {
    for shell in [Shell::Dash, Shell::Busybox] {
        failure_and_abort_under(shell).await;
    }
}

async fn failure_and_abort_under(shell: Shell) {
    let (esxi, executor) = rig(shell);
    let device = esxi.add_device("naa.1", None);
    let failing = esxi.add_vmdk(
        "vm/a.vmdk",
        r#"{"steps": 1, "exit": 4, "stderr": "Failed to clone disk: I/O error"}"#,
    );
    let err = CloneTask::new(&executor)
        .with_schedule(FAST)
        .run(&failing, &device, &CancellationToken::new(), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EsxiError::CloneFailed { exit_code: 4, std_err, .. } if std_err == "Failed to clone disk: I/O error"),
        "{err}"
    );

    let hanging = esxi.add_vmdk("vm/b.vmdk", r#"{"steps": 1, "hang": true}"#);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let err = CloneTask::new(&executor)
        .with_schedule(FAST)
        .run(&hanging, &device, &cancel, move |_| trigger.cancel())
        .await
        .unwrap_err();
    assert!(matches!(err, EsxiError::Cancelled { .. }), "{err}");
    assert!(esxi.task_dirs().is_empty());
    assert_eq!(esxi.datastore_files(), ["vm/a.vmdk", "vm/b.vmdk"]);
}

/// A VIB older than 1.2.0 takes plain values inside single quotes: a value with a quote is never
/// sent to it (only the version is asked), and the error says to upgrade.
#[tokio::test]
async fn a_quote_is_never_sent_to_a_vib_older_than_1_2_0() {
    let (esxi, executor) = rig_with_wrapper_version("1.1.0");
    let source = esxi.add_vmdk("vm/x'; reboot; '.vmdk", r#"{"steps": 1}"#);
    let device = esxi.add_device("naa.1", None);
    let err = executor
        .start_clone(&source, &device, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EsxiError::InvalidArgument { reason, .. } if reason.contains("upgrade the VIB")),
        "{err}"
    );
    assert!(esxi.vmkfstools_runs().is_empty());
    let lines = executor.runner().lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 1, "only the version was asked: {lines:?}");
    assert!(lines[0].ends_with(" --version"), "{lines:?}");
}
