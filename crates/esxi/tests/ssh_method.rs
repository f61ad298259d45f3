//! The SSH method end to end: russh client → OpenSSH sshd with the restricted authorized_keys line
//! → the real `secure-vmkfstools-wrapper.py` under python3 → stand-in vmkfstools/vsish.

use crate::support;

use std::time::Duration;

use co_esxi::EsxiError;
use co_esxi::executor::{CloneExecutor, CloneProgress, CloneTask, PollSchedule};
use co_esxi::protocol::{TaskStatus, WrapperReply, decode_message};
use co_esxi::ssh::{HostKeyPolicy, SshExecutor, SshSession, SshSettings};
use co_testpeers::Sshd;
use support::{CapturedLogs, ClientKey, FakeEsxi, SshRig};
use tokio_util::sync::CancellationToken;

const FAST: PollSchedule = PollSchedule {
    first: Duration::from_millis(50),
    max: Duration::from_millis(200),
};

type Rig = SshRig;

#[tokio::test]
async fn clone_streams_progress_and_succeeds_with_spaces_in_names() {
    let rig = Rig::start("ds 1");
    let source = rig.esxi.add_vmdk(
        "my vm/my vm.vmdk",
        r#"{"steps": 8, "interval": 0.05, "xcopy": true}"#,
    );
    let device = rig.esxi.add_device("naa.600a098038314b6b", Some(0x40));
    let executor = rig.executor().await;
    executor.probe().await.unwrap();
    executor.check_wrapper_version().await.unwrap();

    let mut seen: Vec<CloneProgress> = Vec::new();
    let outcome = CloneTask::new(&executor)
        .with_schedule(FAST)
        .run(&source, &device, &CancellationToken::new(), |progress| {
            seen.push(progress)
        })
        .await
        .unwrap();

    assert_eq!(
        outcome.xcopy_used,
        Some(true),
        "clone writes grew from the start value"
    );
    assert_eq!(seen.last().unwrap().percent, 100);
    assert!(
        seen.windows(2).all(|w| w[0].percent <= w[1].percent),
        "{seen:?}"
    );
    let runs = rig.esxi.vmkfstools_runs();
    assert_eq!(runs.len(), 1);
    let root = rig.esxi.fs_root().display().to_string();
    let argv: Vec<String> = serde_json::from_str(&runs[0]).unwrap();
    assert_eq!(
        argv[..4],
        [
            "-i".to_owned(),
            format!("{root}/vmfs/volumes/ds 1/my vm/my vm.vmdk"),
            "-d".to_owned(),
            format!("rdm:{root}/vmfs/devices/disks/naa.600a098038314b6b"),
        ]
    );
    assert!(
        rig.esxi.task_dirs().is_empty(),
        "task state cleaned: {:?}",
        rig.esxi.task_dirs()
    );
    assert_eq!(
        rig.esxi.datastore_files(),
        ["my vm/my vm.vmdk", "secure-vmkfstools-wrapper.py"],
        "RDM removed"
    );
}

#[tokio::test]
async fn xcopy_is_measured_from_the_task_start_not_the_device_lifetime() {
    let rig = Rig::start("ds1");
    let source = rig
        .esxi
        .add_vmdk("vm/vm.vmdk", r#"{"steps": 2, "interval": 0.01}"#);
    // The device has done XCOPY before, but this clone does not.
    let device = rig.esxi.add_device("naa.1", Some(0x999));
    let executor = rig.executor().await;
    let outcome = CloneTask::new(&executor)
        .with_schedule(FAST)
        .run(&source, &device, &CancellationToken::new(), |_| {})
        .await
        .unwrap();
    assert_eq!(outcome.xcopy_used, Some(false));

    // Without VAAI statistics the host cannot tell.
    let unknown = rig.esxi.add_device("naa.2", None);
    let outcome = CloneTask::new(&executor)
        .with_schedule(FAST)
        .run(&source, &unknown, &CancellationToken::new(), |_| {})
        .await
        .unwrap();
    assert_eq!(outcome.xcopy_used, None);
}

#[tokio::test]
async fn failure_surfaces_exit_code_and_stderr() {
    let rig = Rig::start("ds1");
    let source = rig.esxi.add_vmdk(
        "vm/vm.vmdk",
        r#"{"steps": 2, "interval": 0.01, "exit": 3, "stderr": "Failed to clone disk: Out of space (0xbad0027)"}"#,
    );
    let device = rig.esxi.add_device("naa.1", Some(0));
    let executor = rig.executor().await;
    let err = CloneTask::new(&executor)
        .with_schedule(FAST)
        .run(&source, &device, &CancellationToken::new(), |_| {})
        .await
        .unwrap_err();
    match err {
        EsxiError::CloneFailed {
            exit_code, std_err, ..
        } => {
            assert_eq!(exit_code, 3);
            assert_eq!(std_err, "Failed to clone disk: Out of space (0xbad0027)");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(rig.esxi.task_dirs().is_empty());
}

#[tokio::test]
async fn abort_stops_vmkfstools_and_clean_removes_everything() {
    let rig = Rig::start("ds1");
    let source = rig.esxi.add_vmdk(
        "vm/vm.vmdk",
        r#"{"steps": 3, "interval": 0.01, "hang": true}"#,
    );
    let device = rig.esxi.add_device("naa.1", Some(0));
    let executor = rig.executor().await;
    let started = executor.start_clone(&source, &device, None).await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = executor.task_status(&started.task_id).await.unwrap();
        assert_eq!(
            status.exit_code, None,
            "the hanging clone must not finish by itself"
        );
        if status.progress_percent() == Some(100) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = executor.clean(&started.task_id).await.unwrap_err();
    assert!(refused.to_string().contains("still running"), "{refused}");

    let aborted = executor.abort(&started.task_id).await.unwrap();
    assert_eq!(aborted.exit_code, Some(143));
    assert!(
        aborted.std_err.contains("interrupted by signal 15"),
        "{aborted:?}"
    );
    assert!(aborted.std_err.contains("clone aborted on request"));
    assert!(
        !process_runs(started.pid),
        "supervisor {} still running",
        started.pid
    );

    executor.clean(&started.task_id).await.unwrap();
    assert!(rig.esxi.task_dirs().is_empty());
    assert_eq!(
        rig.esxi.datastore_files(),
        ["secure-vmkfstools-wrapper.py", "vm/vm.vmdk"]
    );
    let gone = executor.task_status(&started.task_id).await.unwrap_err();
    assert!(gone.to_string().contains("not found"), "{gone}");
}

#[tokio::test]
async fn cancelling_the_task_aborts_then_cleans() {
    let rig = Rig::start("ds1");
    let source = rig.esxi.add_vmdk(
        "vm/vm.vmdk",
        r#"{"steps": 1, "interval": 0.01, "hang": true}"#,
    );
    let device = rig.esxi.add_device("naa.1", Some(0));
    let executor = rig.executor().await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let err = CloneTask::new(&executor)
        .with_schedule(FAST)
        .run(&source, &device, &cancel, move |_| trigger.cancel())
        .await
        .unwrap_err();
    assert!(matches!(err, EsxiError::Cancelled { .. }), "{err}");
    assert!(rig.esxi.task_dirs().is_empty(), "aborted task cleaned");
    assert_eq!(
        rig.esxi.datastore_files(),
        ["secure-vmkfstools-wrapper.py", "vm/vm.vmdk"]
    );
}

#[tokio::test]
async fn upstream_framing_and_probe_still_work() {
    let rig = Rig::start("ds1");
    let session = rig.raw().await;
    let probe = session
        .run("DS=;CMD=status test-task-id", None)
        .await
        .unwrap();
    assert_eq!(probe.stdout.trim(), "SSH_OK");
    let version = session.run("DS=ds1;CMD=--version", None).await.unwrap();
    let reply = WrapperReply::from_xml(&version.stdout).unwrap();
    assert_eq!(reply.status, 0);
    assert_eq!(
        reply.message,
        format!("{{\"version\": \"{}\"}}", co_esxi::assets::WRAPPER_VERSION)
    );
    // Old populators send unquoted, space-joined words.
    let source = rig
        .esxi
        .add_vmdk("vm/vm.vmdk", r#"{"steps": 1, "interval": 0.01}"#);
    let device = rig.esxi.add_device("naa.1", Some(0));
    let started = session
        .run(&format!("DS=ds1;CMD=--clone -s {source} -t {device}"), None)
        .await
        .unwrap();
    let started: co_esxi::protocol::CloneStarted =
        decode_message(&WrapperReply::from_xml(&started.stdout).unwrap().message).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let get = session
            .run(
                &format!("DS=ds1;CMD=--task-get -i {}", started.task_id),
                None,
            )
            .await
            .unwrap();
        let status: TaskStatus =
            decode_message(&WrapperReply::from_xml(&get.stdout).unwrap().message).unwrap();
        if status.exit_code.is_some() {
            assert_eq!(status.exit_code, Some(0));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let clean = session
        .run(
            &format!("DS=ds1;CMD=--task-clean -i {}", started.task_id),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        WrapperReply::from_xml(&clean.stdout).unwrap(),
        WrapperReply::ok("")
    );
}

#[tokio::test]
async fn key_not_installed_logs_the_exact_line_and_steps() {
    let rig = Rig::start("ds 1");
    let ours = ClientKey::generate();
    let settings = rig.settings_for(&ours);

    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let err = SshExecutor::connect("127.0.0.1", "ds 1", &settings)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, EsxiError::KeyNotAccepted { .. }));
    assert!(
        err.to_string()
            .contains("manual SSH key configuration required"),
        "{err}"
    );
    let text = logs.text();
    let line = co_esxi::restricted_key_line("ds 1", &ours.public_key_without_comment());
    assert!(
        line.contains("python -I '/vmfs/volumes/ds 1/secure-vmkfstools-wrapper.py'"),
        "{line}"
    );
    for needle in [
        line.as_str(),
        "vim-cmd hostsvc/enable_ssh",
        "vim-cmd hostsvc/start_ssh",
        "/etc/ssh/keys-root/authorized_keys",
    ] {
        assert!(text.contains(needle), "log lacks {needle:?}:\n{text}");
    }
    assert!(!text.contains("PRIVATE KEY"), "no secret in logs");
}

#[tokio::test]
async fn host_key_mismatch_is_refused() {
    let rig = Rig::start("ds1");
    let other = ClientKey::generate();
    let mut settings = rig.settings.clone();
    settings.host_key =
        HostKeyPolicy::Pinned(russh::keys::PublicKey::from_openssh(&other.public_openssh).unwrap());
    let err = SshSession::connect("127.0.0.1", &settings)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, EsxiError::HostKeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("does not match the pinned key"));
}

#[tokio::test]
async fn trust_on_first_use_records_then_enforces() {
    let rig = Rig::start("ds1");
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    let mut settings = rig.settings.clone();
    settings.host_key = HostKeyPolicy::TrustOnFirstUse {
        known_hosts: known_hosts.clone(),
    };
    SshSession::connect("127.0.0.1", &settings)
        .await
        .unwrap()
        .disconnect()
        .await;
    let recorded = std::fs::read_to_string(&known_hosts).unwrap();
    let host_key_body = rig
        .sshd
        .host_public_key_openssh
        .split_whitespace()
        .nth(1)
        .unwrap();
    assert!(recorded.contains(host_key_body), "{recorded}");
    SshSession::connect("127.0.0.1", &settings)
        .await
        .unwrap()
        .disconnect()
        .await;

    // Another host answering on the same address is refused, whatever its key algorithm.
    for impostor in [ClientKey::generate(), ClientKey::generate_ed25519()] {
        let host_entry = format!(
            "{} {}",
            recorded.split_whitespace().next().unwrap(),
            impostor.public_key_without_comment()
        );
        std::fs::write(&known_hosts, host_entry + "\n").unwrap();
        let err = SshSession::connect("127.0.0.1", &settings)
            .await
            .err()
            .unwrap();
        assert!(matches!(err, EsxiError::HostKeyMismatch { .. }), "{err}");
    }
}

/// The process exists and is not a zombie.
fn process_runs(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn ssh_timeout_bounds_a_silent_host() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let key = ClientKey::generate();
    let mut settings = SshSettings::from_base64_pem(
        &key.base64_pem(),
        HostKeyPolicy::TrustOnFirstUse {
            known_hosts: "/nonexistent/known_hosts".into(),
        },
    )
    .unwrap();
    settings.port = port;
    settings.timeout = std::time::Duration::from_secs(1);
    let started = std::time::Instant::now();
    let err = SshSession::connect("127.0.0.1", &settings)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, EsxiError::Timeout { seconds: 1, .. }),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    accept.abort();
}

#[tokio::test]
async fn a_connection_not_prepared_for_forklifts_line_names_our_line() {
    // Forklift's key line answers SSH_OK to anything without `DS=<ds>;`; `prepare` detects it
    // (tests/forklift_line.rs), a bare `connect` reports it with copy-offload's line.
    let esxi = FakeEsxi::new("ds1");
    let key = ClientKey::generate();
    let legacy = format!(
        "command=\"echo SSH_OK\",no-port-forwarding,no-agent-forwarding,no-X11-forwarding {}\n",
        key.public_openssh
    );
    let sshd = Sshd::start(&legacy).unwrap();
    let host_key = russh::keys::PublicKey::from_openssh(&sshd.host_public_key_openssh).unwrap();
    let mut settings =
        SshSettings::from_base64_pem(&key.base64_pem(), HostKeyPolicy::Pinned(host_key)).unwrap();
    settings.port = sshd.port;
    let executor = SshExecutor::connect("127.0.0.1", &esxi.datastore, &settings)
        .await
        .unwrap();
    let err = executor.check_wrapper_version().await.unwrap_err();
    assert!(matches!(err, EsxiError::LegacyKeyLine { .. }), "{err}");
    assert!(err.to_string().contains(&co_esxi::restricted_key_line(
        "ds1",
        &key.public_key_without_comment()
    )));
}

/// Datastore transfer seam over the fake host's datastore directories.
struct FakeDatastores(std::path::PathBuf);

#[async_trait::async_trait]
impl co_esxi::ssh::DatastoreFiles for FakeDatastores {
    async fn download(&self, datastore: &str, path: &str) -> Result<Option<Vec<u8>>, EsxiError> {
        Ok(std::fs::read(self.0.join(datastore).join(path)).ok())
    }
    async fn upload(&self, datastore: &str, path: &str, body: Vec<u8>) -> Result<(), EsxiError> {
        std::fs::write(self.0.join(datastore).join(path), body).unwrap();
        Ok(())
    }
}

#[tokio::test]
async fn prepare_uploads_the_verified_wrapper_then_checks_it_through_the_key() {
    let rig = Rig::start("ds 1");
    let (esxi, settings) = (&rig.esxi, &rig.settings);
    std::fs::remove_file(esxi.datastore_dir().join("secure-vmkfstools-wrapper.py")).unwrap();
    let datastores = FakeDatastores(esxi.fs_root().join("vmfs/volumes"));

    // Nothing on the datastore yet: the embedded wrapper is uploaded, verified and run (`--version`).
    let executor = SshExecutor::prepare("127.0.0.1", "ds 1", settings, &datastores)
        .await
        .unwrap();
    assert_eq!(
        executor.version().await.unwrap(),
        co_esxi::assets::WRAPPER_VERSION
    );
    let placed =
        std::fs::read_to_string(esxi.datastore_dir().join("secure-vmkfstools-wrapper.py")).unwrap();
    assert_eq!(placed, co_esxi::assets::SSH_WRAPPER);
}

#[tokio::test]
async fn clean_deletes_only_the_tasks_own_rdm_files() {
    let rig = Rig::start("ds1");
    let source = rig
        .esxi
        .add_vmdk("vm/vm.vmdk", r#"{"steps": 1, "interval": 0.01}"#);
    let device = rig.esxi.add_device("naa.1", Some(0));
    let executor = rig.executor().await;
    let started = executor.start_clone(&source, &device, None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while executor
        .task_status(&started.task_id)
        .await
        .unwrap()
        .exit_code
        .is_none()
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Someone with datastore access points the RDM descriptor at the source disk.
    let descriptor = rig
        .esxi
        .datastore_files()
        .into_iter()
        .find(|f| f.contains("-rdmdisk-") && !f.ends_with("-rdm.vmdk"))
        .unwrap();
    std::fs::write(
        rig.esxi.datastore_dir().join(&descriptor),
        "RW 2048 VMFSRDM \"vm.vmdk\"\n",
    )
    .unwrap();
    executor.clean(&started.task_id).await.unwrap();
    let files = rig.esxi.datastore_files();
    assert!(
        files.contains(&"vm/vm.vmdk".to_owned()),
        "source disk deleted: {files:?}"
    );
    assert!(!files.contains(&descriptor), "descriptor itself removed");
}

#[tokio::test]
async fn a_key_line_running_another_wrapper_version_is_reported() {
    let rig = Rig::start("ds1");
    let script = rig
        .esxi
        .datastore_dir()
        .join("secure-vmkfstools-wrapper.py");
    let current = format!("SCRIPT_VERSION = \"{}\"", co_esxi::assets::WRAPPER_VERSION);
    let older = std::fs::read_to_string(&script).unwrap().replacen(
        &current,
        "SCRIPT_VERSION = \"0.9.0\"",
        1,
    );
    std::fs::write(&script, older).unwrap();
    let executor = rig.executor().await;
    let err = executor.check_wrapper_version().await.unwrap_err();
    assert!(
        matches!(&err, EsxiError::WrapperVersionMismatch { found, .. } if found == "0.9.0"),
        "{err}"
    );
}

const CLIENT_ID: &str = "5d0f3c9e-2b7a-4c61-9e8d-0a1b2c3d4e5f";

#[tokio::test]
async fn a_client_task_id_names_the_clone_and_a_repeated_start_answers_it() {
    let rig = Rig::start("ds1");
    let source = rig.esxi.add_vmdk(
        "vm/vm.vmdk",
        r#"{"steps": 2, "interval": 0.01, "hang": true}"#,
    );
    let device = rig.esxi.add_device("naa.1", Some(0));
    let other = rig.esxi.add_device("naa.2", Some(0));
    let executor = rig.executor().await;
    assert!(executor.accepts_client_task_id().await.unwrap());

    let started = executor
        .start_clone(&source, &device, Some(CLIENT_ID))
        .await
        .unwrap();
    assert_eq!(started.task_id, CLIENT_ID);
    // A re-run re-sends the start it journaled: same task, no second vmkfstools.
    let again = executor
        .start_clone(&source, &device, Some(CLIENT_ID))
        .await
        .unwrap();
    assert_eq!(again, started);
    let refused = executor
        .start_clone(&source, &other, Some(CLIENT_ID))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("already names the clone of"),
        "{refused}"
    );
    assert_eq!(rig.esxi.vmkfstools_runs().len(), 1);
    assert!(process_runs(started.pid));

    // The wire form, through the legacy framing as well, and a malformed id.
    let session = rig.raw().await;
    let framed = co_esxi::protocol::WrapperCommand::Clone {
        source_vmdk: source.clone(),
        target_device: device.clone(),
        task_id: Some(CLIENT_ID.to_owned()),
    }
    .to_legacy_frame("ds1");
    let output = session.run(&framed, None).await.unwrap();
    let reply = WrapperReply::from_xml(&output.stdout).unwrap();
    assert_eq!(reply.status, 0, "{reply:?}");
    assert_eq!(
        decode_message::<co_esxi::protocol::CloneStarted>(&reply.message).unwrap(),
        started
    );
    let output = session
        .run(
            &format!("--clone -s {source} -t {device} -i NOT-A-UUID"),
            None,
        )
        .await
        .unwrap();
    let reply = WrapperReply::from_xml(&output.stdout).unwrap();
    assert_eq!(
        reply,
        WrapperReply::failed(1, "task id must be a lowercase UUID")
    );
    assert_eq!(rig.esxi.vmkfstools_runs().len(), 1);

    let aborted = executor.abort(CLIENT_ID).await.unwrap();
    assert_eq!(aborted.exit_code, Some(143));
    executor.clean(CLIENT_ID).await.unwrap();
    assert!(rig.esxi.task_dirs().is_empty());
    assert_eq!(
        rig.esxi.datastore_files(),
        ["secure-vmkfstools-wrapper.py", "vm/vm.vmdk"]
    );
}

/// Wrapper 1.0.0 refuses `-i` on a clone: the executor must never send it there.
#[tokio::test]
async fn an_older_wrapper_never_receives_a_client_task_id() {
    let rig = Rig::start("ds1");
    let script = rig
        .esxi
        .datastore_dir()
        .join("secure-vmkfstools-wrapper.py");
    let current = format!("SCRIPT_VERSION = \"{}\"", co_esxi::assets::WRAPPER_VERSION);
    let older = std::fs::read_to_string(&script).unwrap().replacen(
        &current,
        "SCRIPT_VERSION = \"1.0.0\"",
        1,
    );
    std::fs::write(&script, older).unwrap();
    let source = rig.esxi.add_vmdk("vm/vm.vmdk", r#"{"steps": 1}"#);
    let device = rig.esxi.add_device("naa.1", None);
    let executor = rig.executor().await;
    assert!(!executor.accepts_client_task_id().await.unwrap());
    let err = executor
        .start_clone(&source, &device, Some(CLIENT_ID))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EsxiError::ClientTaskIdUnsupported { version } if version == "1.0.0"),
        "{err}"
    );
    assert!(rig.esxi.vmkfstools_runs().is_empty());
    assert!(rig.esxi.task_dirs().is_empty());
}
