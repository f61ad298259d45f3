//! A corpus of hostile `SSH_ORIGINAL_COMMAND`s sent through OpenSSH to the real SSH wrapper:
//! every one must be refused with a wrapper envelope, and nothing may be executed or created.
//! The VIB's shell wrapper gets the equivalent argv corpus.

use crate::support;

use co_esxi::protocol::WrapperReply;
use futures::StreamExt as _;
use support::{FakeEsxi, Shell, SshRig};

/// `{PWN}` is replaced by a marker path that must never come into existence; `{SRC}`/`{DEV}` by a
/// valid source VMDK and device, so that only the hostile part can cause the refusal.
fn corpus() -> Vec<String> {
    // Below Linux's 128 KiB limit for one environment string, so it reaches the wrapper.
    let huge = "A".repeat(100_000);
    let many_words = "-s x ".repeat(2000);
    let mut corpus: Vec<String> = [
        // Shell injection in every position.
        "id",
        "touch {PWN}",
        "--version; touch {PWN}",
        "--version && touch {PWN}",
        "--version | touch {PWN}",
        "--version `touch {PWN}`",
        "--version $(touch {PWN})",
        "--clone -s '{SRC}' -t '{DEV}'; touch {PWN}",
        "--clone -s \"$(touch {PWN})\" -t {DEV}",
        "--clone -s '{SRC}' -t '{DEV}' > {PWN}",
        "--task-get -i $(touch {PWN})",
        "--task-get -i 00000000-0000-4000-8000-000000000000;touch {PWN}",
        "DS=ds1;CMD=touch {PWN}",
        "DS=ds1;CMD=--version; touch {PWN}",
        "DS=$(touch {PWN});CMD=--version",
        "DS=../../tmp;CMD=--version",
        "DS=..;CMD=--version",
        "DS=a/b;CMD=--version",
        // Traversal and paths outside the allowed roots.
        "--clone -s /vmfs/volumes/ds1/../../../etc/shadow.vmdk -t {DEV}",
        "--clone -s /vmfs/volumes/ds1/vm/../../../../tmp/x.vmdk -t {DEV}",
        "--clone -s /etc/passwd -t {DEV}",
        "--clone -s {SRC} -t /vmfs/devices/disks/../../../dev/sda",
        "--clone -s {SRC} -t /dev/sda",
        "--clone -s {SRC} -t /vmfs/devices/disks/naa.1/extra",
        "--clone -s {SRC} -t /vmfs/devices/disks/-rf",
        "--clone -s vmfs/volumes/ds1/vm/vm.vmdk -t {DEV}",
        "--clone -s /vmfs/volumes/ds1/vm/vm.vmx -t {DEV}",
        "--clone -s /vmfs/volumes/ds1 -t {DEV}",
        "--task-clean -i ../../etc",
        "--task-clean -i /",
        "--task-get -i ..",
        "--task-abort -i 00000000-0000-4000-8000-00000000000Z",
        // Quoting.
        "--clone -s '{SRC} -t {DEV}",
        "--clone -s \"{SRC} -t {DEV}",
        "--version \\",
        // Control characters and non-printables.
        "--clone -s '{SRC}\n' -t {DEV}",
        "--version\ntouch {PWN}",
        "--version\rtouch {PWN}",
        "--task-get -i \t00000000-0000-4000-8000-000000000000",
        "--clone -s '/vmfs/volumes/ds1/vm/\u{202e}kdmv.vm' -t {DEV}",
        "--version \u{1b}[2J",
        // Unknown operations, options and extra words.
        "",
        "   ",
        "--help",
        "--version extra",
        "--version --output simple",
        "--clone -s {SRC} -t {DEV} -x",
        "--clone -s {SRC} -t {DEV} --force",
        "--clone -s {SRC} -s {SRC} -t {DEV}",
        "--clone -s {SRC}",
        "--clone -t {DEV}",
        "--clone -s {SRC} -t",
        "--task-get",
        "--task-get -i",
        "--version --clone -s {SRC} -t {DEV}",
        "vmkfstools -i {SRC} -d rdm:{DEV} /vmfs/volumes/ds1/x.vmdk",
        "python -c 'import os'",
        "scp -t /tmp",
        "internal-sftp",
        "--task-get -i 0",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    corpus.push(huge);
    corpus.push(format!("--clone {many_words}"));
    corpus.push(format!(
        "--clone -s /vmfs/volumes/ds1/{}.vmdk -t {{DEV}}",
        "a/".repeat(3000)
    ));
    corpus
}

fn render(template: &str, esxi: &FakeEsxi, marker: &str, source: &str, device: &str) -> String {
    let _ = esxi;
    template
        .replace("{PWN}", marker)
        .replace("{SRC}", source)
        .replace("{DEV}", device)
}

fn assert_refused(command: &str, stdout: &str) {
    let reply = WrapperReply::from_xml(stdout)
        .unwrap_or_else(|err| panic!("{:?}: no envelope ({err}): {stdout:?}", truncated(command)));
    assert_ne!(
        reply.status,
        0,
        "{:?} was accepted: {reply:?}",
        truncated(command)
    );
}

fn truncated(text: &str) -> String {
    text.chars().take(120).collect()
}

#[tokio::test]
async fn hostile_commands_through_sshd_are_all_refused_and_nothing_runs() {
    let rig = SshRig::start("ds1");
    let esxi = &rig.esxi;
    let source = esxi.add_vmdk("vm/vm.vmdk", r#"{"steps": 1}"#);
    let device = esxi.add_device("naa.1", Some(0));
    let marker = esxi.fs_root().join("PWNED").display().to_string();
    let session = rig.raw().await;

    let corpus = corpus();
    assert!(corpus.len() >= 40, "corpus has {} entries", corpus.len());
    let commands: Vec<String> = corpus
        .iter()
        .map(|t| render(t, esxi, &marker, &source, &device))
        .collect();
    // A few channels at a time on the one connection, as a populator's calls would share it.
    let outputs: Vec<_> = futures::stream::iter(&commands)
        .map(|command| {
            let session = &session;
            async move { (command, session.run(command, None).await.unwrap()) }
        })
        .buffered(4)
        .collect()
        .await;
    for (command, output) in outputs {
        assert_refused(command, &output.stdout);
        assert_eq!(output.exit_status, Some(1), "{:?}", truncated(command));
    }
    assert!(
        !std::path::Path::new(&marker).exists(),
        "an injected command ran"
    );
    assert!(
        esxi.vmkfstools_runs().is_empty(),
        "vmkfstools ran: {:?}",
        esxi.vmkfstools_runs()
    );
    assert!(
        esxi.task_dirs().is_empty(),
        "tasks created: {:?}",
        esxi.task_dirs()
    );

    // A session without a command (interactive shell) is refused too.
    let shell = session.run("", None).await.unwrap();
    assert_refused("<no command>", &shell.stdout);
    // And the same key still works for a legitimate request.
    let version = session.run("--version", None).await.unwrap();
    assert_eq!(WrapperReply::from_xml(&version.stdout).unwrap().status, 0);
}

#[test]
fn missing_original_command_is_refused() {
    let esxi = FakeEsxi::new("ds1");
    esxi.install_ssh_wrapper();
    let (stdout, code) = esxi.run_ssh_wrapper_directly(None);
    assert_refused("<unset>", &stdout);
    assert_eq!(code, 1);
}

#[test]
fn hostile_arguments_to_the_vib_wrapper_are_all_refused() {
    for shell in [Shell::Dash, Shell::Busybox] {
        hostile_arguments_refused_under(shell);
    }
}

fn hostile_arguments_refused_under(shell: Shell) {
    let esxi = FakeEsxi::new("ds1");
    let wrapper = esxi.install_vib_wrapper(shell);
    let source = esxi.add_vmdk("vm/vm.vmdk", r#"{"steps": 1}"#);
    let device = esxi.add_device("naa.1", Some(0));
    let marker = esxi.fs_root().join("PWNED").display().to_string();
    let argv_corpus: Vec<Vec<String>> = [
        vec!["--clone", "-s", "{SRC}'; touch {PWN}; '", "-t", "{DEV}"],
        vec!["--clone", "-s", "$(touch {PWN})", "-t", "{DEV}"],
        vec!["--clone", "-s", "{SRC}", "-t", "{DEV}`touch {PWN}`"],
        vec![
            "--clone",
            "-s",
            "/vmfs/volumes/ds1/../../etc/x.vmdk",
            "-t",
            "{DEV}",
        ],
        vec!["--clone", "-s", "/etc/passwd", "-t", "{DEV}"],
        vec!["--clone", "-s", "{SRC}", "-t", "/dev/sda"],
        vec![
            "--clone",
            "-s",
            "{SRC}",
            "-t",
            "/vmfs/devices/disks/../../../dev/sda",
        ],
        vec!["--clone", "-s", "{SRC}", "-t", "/vmfs/devices/disks/a b"],
        vec!["--clone", "-s", "{SRC}\n", "-t", "{DEV}"],
        vec!["--clone", "-s", "{SRC}"],
        vec!["--clone", "-s", "{SRC}", "-t", "{DEV}", "-x"],
        vec!["--clone", "-s", "{SRC}", "-s", "{SRC}", "-t", "{DEV}"],
        vec!["--task-get", "-i", "../../etc"],
        vec!["--task-clean", "-i", "/"],
        vec!["--task-abort", "-i", "$(touch {PWN})"],
        vec!["--task-get"],
        vec!["--version", "--clone"],
        vec!["--help"],
        vec!["touch", "{PWN}"],
        vec![],
    ]
    .into_iter()
    .map(|argv| {
        argv.into_iter()
            .map(|word| render(word, &esxi, &marker, &source, &device))
            .collect()
    })
    .collect();
    for argv in &argv_corpus {
        let output = std::process::Command::new(&wrapper)
            .args(argv)
            .output()
            .unwrap();
        assert_refused(&argv.join(" "), &String::from_utf8_lossy(&output.stdout));
    }
    assert!(
        !std::path::Path::new(&marker).exists(),
        "an injected command ran"
    );
    assert!(esxi.vmkfstools_runs().is_empty());
    assert!(esxi.task_dirs().is_empty(), "{:?}", esxi.task_dirs());
}
