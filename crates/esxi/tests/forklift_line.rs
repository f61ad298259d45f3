//! Hosts set up for Forklift's populator: OpenSSH sshd with Forklift's key line (an inline `sh -c`
//! routing `DS=<datastore>;CMD=<operation>` to `/vmfs/volumes/$DS/secure-vmkfstools-wrapper`) in
//! front of copy-offload's shell wrapper, run by dash and by busybox. The executor detects the
//! line, says so in the log with the steps to copy-offload's line, places its shell wrapper and
//! copies through it; hostile requests and traversing or foreign `DS=` values reach nothing.

use crate::support;

use std::time::Duration;

use co_esxi::EsxiError;
use co_esxi::executor::{CloneTask, PollSchedule};
use co_esxi::protocol::WrapperReply;
use co_esxi::ssh::{KeyLine, SshExecutor};
use support::{CapturedLogs, Shell, SshRig};
use tokio_util::sync::CancellationToken;

const FAST: PollSchedule = PollSchedule {
    first: Duration::from_millis(50),
    max: Duration::from_millis(200),
};

const SHELLS: [Shell; 2] = [Shell::Dash, Shell::Busybox];

/// Detection, the log line, placement of the verified shell wrapper, and whole copies of disks
/// with the names vSphere allows (apostrophes, non-ASCII, Unicode spaces, shell metacharacters).
#[tokio::test]
async fn a_forklift_key_line_is_detected_logged_and_copied_through() {
    for shell in SHELLS {
        let rig = SshRig::start_forklift("ds1", shell);
        let esxi = &rig.esxi;
        std::fs::remove_file(
            esxi.datastore_dir()
                .join(co_esxi::assets::SSH_SHELL_WRAPPER_FILE_NAME),
        )
        .unwrap();
        let files = esxi.datastore_transfers(shell);
        let logs = CapturedLogs::default();
        let executor = {
            let _guard = logs.install();
            SshExecutor::prepare("127.0.0.1", "ds1", &rig.settings, &files)
                .await
                .unwrap()
        };
        assert_eq!(executor.key_line(), KeyLine::ForkliftRouting, "{shell:?}");
        let log = logs.text();
        assert!(log.contains("Forklift's key line"), "{shell:?}: {log}");
        assert!(log.contains("key_line=\"forklift\""), "{shell:?}: {log}");
        assert!(
            log.contains(&co_esxi::restricted_key_line(
                "ds1",
                &rig.key.public_key_without_comment()
            )),
            "{shell:?}: the recommended line is logged: {log}"
        );
        assert_eq!(
            std::fs::read_to_string(
                esxi.datastore_dir()
                    .join(co_esxi::assets::SSH_SHELL_WRAPPER_FILE_NAME)
            )
            .unwrap(),
            esxi.vib_wrapper_source(shell),
            "{shell:?}: the shell wrapper was placed"
        );
        executor.probe().await.unwrap();

        let device = esxi.add_device("naa.600a0980", Some(0));
        for relative in [
            "Bob's VM/Bob's VM.vmdk",
            "仮想マシン/ディスク.vmdk",
            "no\u{a0}break\u{3000}vm/disk\u{a0}1.vmdk",
            "a;b|c&d $(id) `id`/x\"y\\z.vmdk",
        ] {
            let source = esxi.add_vmdk(relative, r#"{"steps": 2}"#);
            let outcome = CloneTask::new(&executor)
                .with_schedule(FAST)
                .run(&source, &device, &CancellationToken::new(), |_| {})
                .await
                .unwrap_or_else(|e| panic!("{shell:?} {relative}: {e}"));
            assert_eq!(outcome.xcopy_used, Some(false), "{shell:?} {relative}");
            let run: Vec<String> =
                serde_json::from_str(esxi.vmkfstools_runs().last().unwrap()).unwrap();
            assert_eq!(
                std::path::Path::new(&run[1]),
                std::fs::canonicalize(esxi.datastore_dir().join(relative)).unwrap(),
                "{shell:?} {relative}"
            );
        }
        assert!(esxi.task_dirs().is_empty(), "{shell:?}");
    }
}

/// copy-offload's own line is detected as such on the same kind of host.
#[tokio::test]
async fn copy_offloads_key_line_is_detected_as_its_own() {
    let rig = SshRig::start("ds1");
    let files = rig.esxi.datastore_transfers(Shell::Dash);
    let executor = SshExecutor::prepare("127.0.0.1", "ds1", &rig.settings, &files)
        .await
        .unwrap();
    assert_eq!(executor.key_line(), KeyLine::CopyOffload);
    assert!(
        !rig.esxi
            .datastore_dir()
            .join(co_esxi::assets::SSH_SHELL_WRAPPER_FILE_NAME)
            .exists(),
        "no shell wrapper is placed for copy-offload's line"
    );
}

/// A datastore name Forklift's line would split into words reaches nothing: the executor refuses
/// before placing the shell wrapper, naming copy-offload's line.
#[tokio::test]
async fn a_datastore_name_forklifts_line_cannot_route_is_refused_with_our_line() {
    let rig = SshRig::start_forklift("ds 1", Shell::Dash);
    std::fs::remove_file(
        rig.esxi
            .datastore_dir()
            .join(co_esxi::assets::SSH_SHELL_WRAPPER_FILE_NAME),
    )
    .unwrap();
    let files = rig.esxi.datastore_transfers(Shell::Dash);
    let err = SshExecutor::prepare("127.0.0.1", "ds 1", &rig.settings, &files)
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(err, EsxiError::DatastoreNotRoutable { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("splits"), "{message}");
    assert!(
        message.contains(&co_esxi::restricted_key_line(
            "ds 1",
            &rig.key.public_key_without_comment()
        )),
        "{message}"
    );
    assert!(
        !rig.esxi
            .datastore_dir()
            .join(co_esxi::assets::SSH_SHELL_WRAPPER_FILE_NAME)
            .exists()
    );
}

/// Hostile requests through Forklift's line: injection in CMD, traversal and word splitting in
/// DS (with a copy of the wrapper planted where a traversal would lead), frames naming another
/// datastore. Every request is refused or runs no script; no marker appears, vmkfstools never
/// runs, no task is made.
#[tokio::test]
async fn hostile_requests_through_forklifts_line_reach_nothing() {
    for shell in SHELLS {
        let rig = SshRig::start_forklift("ds1", shell);
        let esxi = &rig.esxi;
        let source = esxi.add_vmdk("vm/vm.vmdk", r#"{"steps": 1}"#);
        let device = esxi.add_device("naa.1", Some(0));
        let marker = esxi.fs_root().join("PWNED").display().to_string();
        // A copy of the wrapper outside /vmfs/volumes, and a second datastore holding one.
        let planted = esxi.fs_root().join("tmp/evil");
        std::fs::create_dir_all(&planted).unwrap();
        std::fs::write(
            planted.join(co_esxi::assets::SSH_SHELL_WRAPPER_FILE_NAME),
            esxi.vib_wrapper_source(shell),
        )
        .unwrap();
        let session = rig.raw().await;
        let hex = |text: &str| co_esxi::protocol::encode_esxcli_value(text);
        let hostile = [
            format!("DS=ds1;CMD=touch {marker}"),
            format!("DS=ds1;CMD=--version; touch {marker}"),
            format!("DS=ds1;CMD=--version $(touch {marker})"),
            format!("DS=ds1;CMD=--version `touch {marker}`"),
            format!("DS=ds1;CMD=--clone -s '{source}' -t '{device}'; touch {marker}"),
            format!("DS=ds1;CMD=--clone -s {source} -t {device} > {marker}"),
            format!("DS=ds1;CMD=--task-get -i ../../{marker}"),
            format!("DS=ds1;CMD=--clone -s * -t {device}"),
            format!("DS=ds1;CMD=--clone -s /vmfs/volumes/ds1/../../etc/x.vmdk -t {device}"),
            format!(
                "DS=ds1;CMD=--clone -s {} -t {}",
                hex("/vmfs/volumes/ds1/../../etc/x.vmdk"),
                hex(&device)
            ),
            format!(
                "DS=ds1;CMD=--clone -s {} -t {}",
                hex(&format!("{source}\n")),
                hex(&device)
            ),
            format!("DS=ds1;CMD=DS=ds1;CMD=--clone -s {source} -t {device}; touch {marker}"),
            "DS=ds1;CMD=DS=other;CMD=--version".to_owned(),
            format!("DS=ds1;CMD={}", "A".repeat(5000)),
            // Traversal and splitting in DS.
            "DS=../../tmp/evil;CMD=--version".to_owned(),
            "DS=ds1/../../../tmp/evil;CMD=--version".to_owned(),
            "DS=..;CMD=--version".to_owned(),
            format!("DS=ds1/x {marker};CMD=--version"),
            format!("DS=$(touch {marker});CMD=--version"),
        ];
        for request in &hostile {
            let output = session.run(request, None).await.unwrap();
            if let Ok(reply) = WrapperReply::from_xml(&output.stdout) {
                assert_ne!(reply.status, 0, "{shell:?} {request:?} accepted: {reply:?}");
            } else {
                // No envelope: no script ran (the shell found none to run).
                assert_ne!(output.exit_status, Some(0), "{shell:?} {request:?}");
            }
        }
        assert!(
            !std::path::Path::new(&marker).exists(),
            "{shell:?}: an injected command ran"
        );
        assert!(
            esxi.vmkfstools_runs().is_empty(),
            "{shell:?}: {:?}",
            esxi.vmkfstools_runs()
        );
        assert!(esxi.task_dirs().is_empty(), "{shell:?}");

        // Forklift's line keeps only the first line of a request: the rest never reaches anything.
        let split = session
            .run(&format!("DS=ds1;CMD=--version\ntouch {marker}"), None)
            .await
            .unwrap();
        assert_eq!(
            WrapperReply::from_xml(&split.stdout).unwrap().message,
            format!(r#"{{"version": "{}"}}"#, co_esxi::assets::WRAPPER_VERSION)
        );
        assert!(!std::path::Path::new(&marker).exists(), "{shell:?}");

        // The planted copy, reached by traversal, refuses to serve: it is not a datastore's.
        let (stdout, _) = {
            let output = session
                .run("DS=../../tmp/evil;CMD=--version", None)
                .await
                .unwrap();
            (output.stdout, output.exit_status)
        };
        let reply = WrapperReply::from_xml(&stdout).unwrap();
        assert!(
            reply
                .message
                .contains("serves SSH only as /vmfs/volumes/<datastore>/"),
            "{shell:?}: {reply:?}"
        );
        // And the same key still works for a legitimate request.
        let version = session.run("DS=ds1;CMD=--version", None).await.unwrap();
        assert_eq!(WrapperReply::from_xml(&version.stdout).unwrap().status, 0);
    }
}
