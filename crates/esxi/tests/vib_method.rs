//! The VIB method: the real esxcli plugin XML and shell wrapper behind the VIB executor. The
//! esxcli transport is the seam: a test runner reads the plugin's `<execute>` template, fills in
//! the values as esxcli does and runs it with `/bin/sh`, like hostd's esxcli plugin host.

mod support;

use std::time::Duration;

use async_trait::async_trait;
use co_esxi::executor::{CloneExecutor, CloneTask, PollSchedule};
use co_esxi::vib_executor::{EsxcliRecord, EsxcliRunner, VibExecutor};
use co_esxi::{EsxiError, protocol::WrapperReply};
use support::{FakeEsxi, Shell};
use tokio_util::sync::CancellationToken;

const FAST: PollSchedule = PollSchedule {
    first: Duration::from_millis(50),
    max: Duration::from_millis(200),
};

/// Runs esxcli `vmkfstools` commands from the plugin XML against the installed shell wrapper.
struct PluginHost {
    wrapper: std::path::PathBuf,
}

impl PluginHost {
    fn execute_line(&self, argv: &[&str]) -> String {
        let plugin = co_esxi::assets::ESXCLI_PLUGIN;
        let (namespace, command) = (argv[0], argv[1]);
        let start = plugin
            .find(&format!("<command path=\"{namespace}.{command}\">"))
            .expect("command in plugin");
        let block = &plugin[start..start + plugin[start..].find("</command>").unwrap()];
        let mut line = between(block, "<execute>", "</execute>").to_owned();
        let mut given = Vec::new();
        for pair in argv[2..].chunks(2) {
            let short = pair[0].trim_start_matches('-');
            let name_at = block
                .find(&format!("shortname=\"{short}\""))
                .expect("option in plugin");
            let name = between(
                &block[block[..name_at].rfind("<parameter").unwrap()..],
                "name=\"",
                "\"",
            );
            given.push((name.to_owned(), pair[1]));
        }
        // esxcli's `$if{name, text}` expands to `text` only when the parameter was given.
        while let Some(at) = line.find("$if{") {
            let mut depth = 0;
            let end = line[at..]
                .char_indices()
                .find_map(|(i, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    (depth == 0 && c == '}').then_some(at + i)
                })
                .expect("closed $if{");
            let (name, text) = line[at + 4..end].split_once(',').expect("$if{name, text}");
            let expansion = if given.iter().any(|(n, _)| n == name.trim()) {
                text.to_owned()
            } else {
                String::new()
            };
            line.replace_range(at..=end, &expansion);
        }
        for (name, value) in &given {
            line = line.replace(&format!("$val{{{name}}}"), value);
        }
        assert!(!line.contains("$val{"), "unexpanded value in {line}");
        line.replace(
            "/opt/redhat/vmkfstools-wrapper",
            &self.wrapper.display().to_string(),
        )
    }
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let from = text.find(open).unwrap() + open.len();
    &text[from..from + text[from..].find(close).unwrap()]
}

#[async_trait]
impl EsxcliRunner for PluginHost {
    fn host(&self) -> &str {
        "esxi-test"
    }

    async fn esxcli(&self, argv: &[&str]) -> Result<Vec<EsxcliRecord>, EsxiError> {
        let line = self.execute_line(argv);
        let output = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&line)
            .output()
            .await
            .unwrap();
        let reply = WrapperReply::from_xml(&String::from_utf8_lossy(&output.stdout))?;
        let record = [
            ("status", reply.status.to_string()),
            ("message", reply.message),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), vec![value]))
        .collect();
        Ok(vec![record])
    }
}

fn rig(shell: Shell) -> (FakeEsxi, VibExecutor<PluginHost>) {
    let esxi = FakeEsxi::new("ds 1");
    let wrapper = esxi.install_vib_wrapper(shell);
    (esxi, VibExecutor::new(PluginHost { wrapper }))
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

#[tokio::test]
async fn quotes_never_reach_the_esxcli_execute_line() {
    let (esxi, executor) = rig(Shell::Dash);
    let device = esxi.add_device("naa.1", None);
    let err = executor
        .start_clone("/vmfs/volumes/ds 1/x'; reboot; '.vmdk", &device, None)
        .await
        .unwrap_err();
    assert!(matches!(err, EsxiError::InvalidArgument { .. }), "{err}");
    assert!(esxi.vmkfstools_runs().is_empty());
}
