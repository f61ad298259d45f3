//! Hostile inputs from everyone the wrappers do not trust — a datastore writer, a local non-root
//! user, an edited journal — and the legitimate disk names they must still accept, against every
//! real wrapper: the SSH script under Debian's python3, the VIB's shell script under dash and
//! busybox (values through the plugin's `<execute>` line run by `sh -c`), and the same shell
//! script as the SSH shell wrapper under dash and busybox (requests as Forklift's key line hands
//! them over: `SSH_ORIGINAL_COMMAND`, the script run from the datastore root). Every case asserts
//! on evidence: the stand-in vmkfstools' argv log (resolved through symlinks), marker files that
//! must not appear, a canary process that must survive, files that must stay, syslog lines.

use crate::support;

use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use co_esxi::EsxiError;
use co_esxi::executor::CloneExecutor;
use co_esxi::protocol::{
    CloneStarted, TaskStatus, WrapperCommand, WrapperReply, decode_message, encode_esxcli_value,
};
use co_esxi::vib_executor::{EsxcliRunner, VibExecutor, reply_from_records};
use support::{FakeEsxi, PYTHON, PluginHost, Shell};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrapper {
    Ssh,
    Vib(Shell),
    SshShell(Shell),
}

const WRAPPERS: [Wrapper; 5] = [
    Wrapper::Ssh,
    Wrapper::Vib(Shell::Dash),
    Wrapper::Vib(Shell::Busybox),
    Wrapper::SshShell(Shell::Dash),
    Wrapper::SshShell(Shell::Busybox),
];

/// A fake host running one wrapper.
struct Host {
    esxi: FakeEsxi,
    wrapper: Wrapper,
    plugin: Option<PluginHost>,
}

impl Host {
    fn new(wrapper: Wrapper, datastore: &str) -> Self {
        let esxi = FakeEsxi::new(datastore);
        let plugin = match wrapper {
            Wrapper::Ssh => {
                esxi.install_ssh_wrapper();
                None
            }
            Wrapper::SshShell(shell) => {
                esxi.install_ssh_shell_wrapper(shell);
                None
            }
            Wrapper::Vib(shell) => Some(PluginHost::new(esxi.install_vib_wrapper(shell))),
        };
        Self {
            esxi,
            wrapper,
            plugin,
        }
    }

    /// Sends a command as the populator does: SSH_ORIGINAL_COMMAND for the script (for the shell
    /// wrapper the routed request, as Forklift's line hands it over after `DS=<ds>;CMD=`), esxcli
    /// values encoded into the plugin's `<execute>` line for the VIB.
    async fn call(&self, command: &WrapperCommand) -> WrapperReply {
        if let Wrapper::SshShell(shell) = self.wrapper {
            let routed = command.to_routed_request(&self.esxi.datastore);
            let (_, request) = routed.split_once(";CMD=").unwrap();
            let (stdout, _) = self.esxi.run_ssh_shell_wrapper(shell, Some(request));
            return WrapperReply::from_xml(&stdout).unwrap();
        }
        match &self.plugin {
            None => {
                let (stdout, _) = self
                    .esxi
                    .run_ssh_wrapper_directly(Some(&command.to_ssh_command()));
                WrapperReply::from_xml(&stdout).unwrap()
            }
            Some(plugin) => {
                let args = command.esxcli_args_encoded();
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                reply_from_records(&plugin.esxcli(&argv).await.unwrap()).unwrap()
            }
        }
    }

    /// Sends raw wrapper words, unchecked by any client: SSH_ORIGINAL_COMMAND of the quoted words
    /// for the Python script, of the words joined by spaces for the shell wrapper, argv for the
    /// VIB wrapper (as a hostile esxcli caller could).
    fn call_raw(&self, words: &[&str]) -> WrapperReply {
        let stdout = match (&self.plugin, self.wrapper) {
            (_, Wrapper::SshShell(shell)) => {
                self.esxi
                    .run_ssh_shell_wrapper(shell, Some(&words.join(" ")))
                    .0
            }
            (plugin, _) => self.call_raw_plain(plugin.as_ref(), words),
        };
        WrapperReply::from_xml(&stdout)
            .unwrap_or_else(|err| panic!("{:?}: no envelope ({err}): {stdout:?}", self.wrapper))
    }

    fn call_raw_plain(&self, plugin: Option<&PluginHost>, words: &[&str]) -> String {
        match plugin {
            None => {
                let line: Vec<String> = words
                    .iter()
                    .map(|w| co_esxi::protocol::shell_quote(w))
                    .collect();
                self.esxi.run_ssh_wrapper_directly(Some(&line.join(" "))).0
            }
            Some(plugin) => {
                let output = Command::new(&plugin.wrapper).args(words).output().unwrap();
                String::from_utf8_lossy(&output.stdout).into_owned()
            }
        }
    }

    async fn start(&self, source: &str, device: &str) -> WrapperReply {
        self.call(&WrapperCommand::Clone {
            source_vmdk: source.to_owned(),
            target_device: device.to_owned(),
            task_id: None,
        })
        .await
    }

    /// Clones to the end and cleans; returns the final status.
    async fn clone_to_end(&self, source: &str, device: &str) -> TaskStatus {
        let reply = self.start(source, device).await;
        assert_eq!(reply.status, 0, "{:?} {source}: {reply:?}", self.wrapper);
        let started: CloneStarted = decode_message(&reply.message).unwrap();
        let task_id = started.task_id;
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            let reply = self
                .call(&WrapperCommand::TaskGet {
                    task_id: task_id.clone(),
                })
                .await;
            assert_eq!(reply.status, 0, "{reply:?}");
            let status: TaskStatus = decode_message(&reply.message).unwrap();
            if status.is_finished() {
                break status;
            }
            assert!(Instant::now() < deadline, "clone of {source} never ended");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let cleaned = self.call(&WrapperCommand::TaskClean { task_id }).await;
        assert_eq!(cleaned.status, 0, "{cleaned:?}");
        status
    }

    /// The argv of every vmkfstools clone run so far.
    fn runs(&self) -> Vec<Vec<String>> {
        self.esxi
            .vmkfstools_runs()
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn assert_nothing_ran(&self, case: &str) {
        assert!(
            self.runs().is_empty(),
            "{:?} {case}: vmkfstools ran: {:?}",
            self.wrapper,
            self.runs()
        );
    }

    /// Writes the state of a task this wrapper never made, as a planted or edited task directory
    /// would hold it: `pid` is signalled and `rdm` deleted by a wrapper that believes it.
    /// With `nonce` the state looks like a 1.2.0 task (whose supervisor never proved anything);
    /// without, like a task of an older wrapper.
    fn plant_task(&self, root: &Path, task_id: &str, pid: u32, rdm: &Path, nonce: Option<&str>) {
        let dir = root.join(task_id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let rdm = rdm.display().to_string();
        match self.wrapper {
            Wrapper::Ssh => {
                let mut state = serde_json::json!({
                    "pid": pid, "source": "/vmfs/volumes/ds1/vm/vm.vmdk",
                    "target": "/vmfs/devices/disks/naa.1", "device": "naa.1", "rdm": rdm,
                });
                if let Some(nonce) = nonce {
                    state["nonce"] = nonce.into();
                }
                std::fs::write(dir.join("task.json"), state.to_string()).unwrap();
            }
            Wrapper::Vib(_) | Wrapper::SshShell(_) => {
                for (name, value) in [
                    ("pid", pid.to_string()),
                    ("device", "naa.1".to_owned()),
                    ("source", "/vmfs/volumes/ds1/vm/vm.vmdk".to_owned()),
                    ("rdm", rdm),
                ] {
                    std::fs::write(dir.join(name), value).unwrap();
                }
                if let Some(nonce) = nonce {
                    std::fs::write(dir.join("nonce"), nonce).unwrap();
                }
            }
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

fn refused(reply: &WrapperReply) -> bool {
    reply.status != 0
}

/// A process in its own process group that a wrongly believed pid would kill.
struct Canary(std::process::Child);

impl Canary {
    fn start() -> Self {
        use std::os::unix::process::CommandExt as _;
        Self(
            Command::new("sleep")
                .arg("300")
                .process_group(0)
                .spawn()
                .unwrap(),
        )
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const ID: &str = "0b6f1a52-94de-4c35-8d0e-5f0c2a7be113";

// ------------------------------------------------------------------ legitimate disk names

/// Every name class vSphere allows copies through both wrappers: the stand-in vmkfstools is run
/// with exactly the disk's resolved path and an RDM descriptor beside it, and clean leaves the
/// folder as it was.
#[tokio::test]
async fn legitimate_disk_names_copy_through_both_wrappers() {
    let names = [
        ("apostrophe", "Bob's VM/Bob's VM.vmdk"),
        ("Japanese", "仮想マシン/ディスク.vmdk"),
        ("umlauts and accents", "Müller Café/Prüfung é à.vmdk"),
        (
            "U+00A0 and U+3000 spaces",
            "no\u{a0}break\u{3000}vm/disk\u{a0}1.vmdk",
        ),
        ("brackets", "[web] (prod) {1}/disk [1].vmdk"),
        ("upper-case extension", "UPPER VM/DISK.VMDK"),
        (
            "shell metacharacters",
            "a;b|c&d $(id) `id` $HOME/x\"y\\z.vmdk",
        ),
    ];
    for wrapper in WRAPPERS {
        let host = Host::new(wrapper, "ds 1");
        let device = host.esxi.add_device("naa.600a0980", Some(0));
        for (class, relative) in names {
            let source = host.esxi.add_vmdk(relative, r#"{"steps": 2}"#);
            let status = host.clone_to_end(&source, &device).await;
            assert_eq!(status.exit_code, Some(0), "{wrapper:?} {class}: {status:?}");
            let run = host.runs().pop().unwrap();
            let on_disk = host.esxi.datastore_dir().join(relative);
            assert_eq!(
                Path::new(&run[1]),
                std::fs::canonicalize(&on_disk).unwrap(),
                "{wrapper:?} {class}: vmkfstools read another file"
            );
            let rdm = Path::new(&run[4]);
            assert_eq!(rdm.parent(), on_disk.parent(), "{wrapper:?} {class}");
            assert!(
                rdm.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .ends_with(".vmdk")
            );
            assert!(
                !rdm.exists(),
                "{wrapper:?} {class}: RDM descriptor left behind"
            );
        }
        assert_eq!(host.runs().len(), names.len());
        assert!(host.esxi.task_dirs().is_empty(), "{wrapper:?}");
    }
}

// ------------------------------------------------------------------ 1. values and shell quoting

/// Task ids from an edited journal are refused by the executor: nothing reaches the plugin's
/// shell line, so the injected command cannot run.
#[tokio::test]
async fn edited_journal_task_ids_never_reach_the_vib_plugin_line() {
    for shell in [Shell::Dash, Shell::Busybox] {
        let esxi = FakeEsxi::new("ds1");
        let executor = VibExecutor::new(PluginHost::new(esxi.install_vib_wrapper(shell)));
        let marker = esxi.fs_root().join("PWNED");
        let hostile = format!("{ID}'; touch {}; '", marker.display());
        for result in [
            executor.task_status(&hostile).await.map(drop),
            executor.abort(&hostile).await.map(drop),
            executor.clean(&hostile).await,
        ] {
            assert!(
                matches!(result, Err(EsxiError::InvalidArgument { .. })),
                "{result:?}"
            );
        }
        assert!(executor.runner().lines.lock().unwrap().is_empty());
        assert!(!marker.exists());
    }
}

/// Values reach the VIB's shell line only encoded: whatever the path holds, the line the shell
/// parses has no quote, `$`, backquote or separator of its own, and the injected command in the
/// name does not run.
#[tokio::test]
async fn vib_values_are_shell_inert_on_the_plugin_line() {
    for shell in [Shell::Dash, Shell::Busybox] {
        let host = Host::new(Wrapper::Vib(shell), "ds1");
        let marker = host.esxi.fs_root().join("PWNED");
        let name = format!("vm/x'; touch {}; '.vmdk", marker.display())
            .replace(&format!("{}/", host.esxi.fs_root().display()), "");
        let source = host.esxi.add_vmdk(&name, r#"{"steps": 1}"#);
        let device = host.esxi.add_device("naa.1", None);
        let status = host.clone_to_end(&source, &device).await;
        assert_eq!(status.exit_code, Some(0));
        let plugin = host.plugin.as_ref().unwrap();
        for line in plugin.lines.lock().unwrap().iter() {
            let values = line.split_once(" --").unwrap().1;
            assert!(
                !values.contains(['$', '`', ';', '|', '&', '"'])
                    && values.matches('\'').count() % 2 == 0,
                "{line}"
            );
        }
        assert!(!marker.exists(), "the name's command ran");
        assert!(!Path::new("PWNED").exists());
    }
}

/// The VIB wrapper decodes and checks every value itself: encodings of control, invisible and
/// invalid UTF-8 text, traversal in ids, and plain values with quotes are refused before
/// anything runs.
#[test]
fn the_vib_wrapper_refuses_bad_values_itself() {
    for shell in [Shell::Dash, Shell::Busybox] {
        let host = Host::new(Wrapper::Vib(shell), "ds1");
        let source = host.esxi.add_vmdk("vm/vm.vmdk", r#"{"steps": 1}"#);
        let device = host.esxi.add_device("naa.1", None);
        let hex_source = encode_esxcli_value(&source);
        let hex_device = encode_esxcli_value(&device);
        for bad in [
            encode_esxcli_value(&format!("{source}\n")),
            encode_esxcli_value(&source.replace("vm.vmdk", "\u{202e}kdmv.vm")),
            encode_esxcli_value(&source.replace("vm.vmdk", "v\u{85}m.vmdk")),
            format!("{hex_source}ff"),
            format!("{hex_source}c3"),
            "hex:2F".to_owned(),
            "hex:2".to_owned(),
            format!("{source}'"),
            source.replace("vm.vmdk", "vmä.vmdk"),
        ] {
            let reply = host.call_raw(&["--clone", "-s", &bad, "-t", &hex_device]);
            assert!(refused(&reply), "{shell:?} {bad}: {reply:?}");
        }
        for bad_id in ["../../etc", "/", ""] {
            let reply = host.call_raw(&["--task-clean", "-i", &encode_esxcli_value(bad_id)]);
            assert!(refused(&reply), "{shell:?} {bad_id}: {reply:?}");
        }
        host.assert_nothing_ran("bad values");
        assert!(host.esxi.task_dirs().is_empty());
    }
}

// ------------------------------------------------------------------ 2. module planting

/// Modules planted next to the SSH script on the datastore root are never imported, neither with
/// the key line's `python -I` through sshd nor by an older key line's plain `python`.
#[tokio::test]
async fn modules_planted_beside_the_ssh_script_never_run() {
    let rig = support::SshRig::start("ds1");
    let marker = rig.esxi.fs_root().join("PLANTED");
    for module in [
        "json", "re", "shlex", "signal", "stat", "errno", "time", "syslog", "os", "site",
    ] {
        std::fs::write(
            rig.esxi.datastore_dir().join(format!("{module}.py")),
            format!(
                "open({:?}, 'a').write({module:?} + '\\n')\n",
                marker.display().to_string()
            ),
        )
        .unwrap();
    }
    let source = rig.esxi.add_vmdk("vm/vm.vmdk", r#"{"steps": 1}"#);
    let device = rig.esxi.add_device("naa.1", None);
    // Through sshd and the key line.
    let session = rig.raw().await;
    let version = session.run("--version", None).await.unwrap();
    assert_eq!(WrapperReply::from_xml(&version.stdout).unwrap().status, 0);
    let clone = session
        .run(&format!("--clone -s {source} -t {device} -i {ID}"), None)
        .await
        .unwrap();
    assert_eq!(
        WrapperReply::from_xml(&clone.stdout).unwrap().status,
        0,
        "{clone:?}"
    );
    // As an older key line runs it: `python <script>`, the script's folder first on sys.path.
    let (stdout, _) = rig
        .esxi
        .run_ssh_wrapper_directly(Some(&format!("--task-get -i {ID}")));
    assert_eq!(
        WrapperReply::from_xml(&stdout).unwrap().status,
        0,
        "{stdout}"
    );
    // The key line's `-I` also ignores PYTHON* variables, should an sshd ever pass one through.
    let isolated = Command::new(PYTHON)
        .arg("-I")
        .arg(
            rig.esxi
                .datastore_dir()
                .join("secure-vmkfstools-wrapper.py"),
        )
        .env_clear()
        .env("SSH_ORIGINAL_COMMAND", "--version")
        .env("PYTHONPATH", rig.esxi.datastore_dir())
        .output()
        .unwrap();
    assert_eq!(
        WrapperReply::from_xml(&String::from_utf8_lossy(&isolated.stdout))
            .unwrap()
            .status,
        0
    );
    assert!(
        !marker.exists(),
        "planted modules ran: {:?}",
        std::fs::read_to_string(&marker)
    );
}

// ------------------------------------------------------------------ 3. symlinks on a datastore

/// Symlinks a datastore writer can make: a VM folder leading out of the datastore and back, a
/// disk leading to a host file, a datastore name leading to a host folder, a device leading out
/// of /vmfs/devices/disks. Nothing is read or written outside the datastore: the argv log,
/// resolved, stays on it, and the outside folder is unchanged.
#[tokio::test]
async fn symlinks_never_lead_a_wrapper_off_the_datastore() {
    for wrapper in WRAPPERS {
        let host = Host::new(wrapper, "ds1");
        let source = host.esxi.add_vmdk("vm/vm.vmdk", r#"{"steps": 1}"#);
        let device = host.esxi.add_device("naa.1", None);
        let outside = host.esxi.fs_root().join("etc");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("passwd"), "root:x:0:0").unwrap();
        std::fs::write(outside.join("x.vmdk"), "{}").unwrap();
        let ds = host.esxi.datastore_dir();
        // Out and back: ds1/evil -> /etc, /etc/back.vmdk -> ds1/vm/vm.vmdk.
        symlink(&outside, ds.join("evil")).unwrap();
        symlink(ds.join("vm/vm.vmdk"), outside.join("back.vmdk")).unwrap();
        // A disk that is a host file, a datastore that is a host folder, a device that is a file.
        symlink(outside.join("passwd"), ds.join("vm/passwd.vmdk")).unwrap();
        symlink(&outside, host.esxi.fs_root().join("vmfs/volumes/etc")).unwrap();
        symlink(
            outside.join("passwd"),
            host.esxi.fs_root().join("vmfs/devices/disks/naa.2"),
        )
        .unwrap();
        let before = std::fs::read_dir(&outside).unwrap().count();

        let status = host
            .clone_to_end("/vmfs/volumes/ds1/evil/back.vmdk", &device)
            .await;
        assert_eq!(status.exit_code, Some(0), "{wrapper:?}");
        let run = host.runs().pop().unwrap();
        let real_ds = std::fs::canonicalize(&ds).unwrap();
        assert!(
            Path::new(&run[1]).starts_with(&real_ds),
            "{wrapper:?} {run:?}"
        );
        assert!(
            Path::new(&run[4]).starts_with(real_ds.join("vm")),
            "{wrapper:?} {run:?}"
        );
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            before,
            "{wrapper:?}"
        );

        for (case, source, target) in [
            (
                "disk to a host file",
                "/vmfs/volumes/ds1/vm/passwd.vmdk",
                device.as_str(),
            ),
            (
                "datastore to a host folder",
                "/vmfs/volumes/etc/x.vmdk",
                device.as_str(),
            ),
            (
                "device to a file",
                source.as_str(),
                "/vmfs/devices/disks/naa.2",
            ),
        ] {
            let reply = host.start(source, target).await;
            assert!(refused(&reply), "{wrapper:?} {case}: {reply:?}");
        }
        assert_eq!(host.runs().len(), 1, "{wrapper:?}: {:?}", host.runs());
        assert!(host.esxi.task_dirs().is_empty(), "{wrapper:?}");
    }
}

// ------------------------------------------------------------------ 4. the task root

/// A task root a local user made before the first clone (not ours, world-writable) holding task
/// state that names a canary's process group and a host file: every operation is refused, the
/// canary lives, the file stays, and the root is not "repaired".
#[tokio::test]
async fn a_task_root_made_by_someone_else_is_never_trusted() {
    for wrapper in WRAPPERS {
        let host = Host::new(wrapper, "ds1");
        let source = host.esxi.add_vmdk("vm/vm.vmdk", r#"{"steps": 1}"#);
        let device = host.esxi.add_device("naa.1", None);
        let victim = host.esxi.fs_root().join("victim-rdmdisk-0b6f1a52.vmdk");
        std::fs::write(&victim, "keep").unwrap();
        let mut canary = Canary::start();
        let root = host.esxi.task_root();
        std::fs::create_dir(&root).unwrap();
        host.plant_task(&root, ID, canary.pid(), &victim, None);
        std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();

        for command in [
            WrapperCommand::TaskAbort { task_id: ID.into() },
            WrapperCommand::TaskClean { task_id: ID.into() },
            WrapperCommand::TaskGet { task_id: ID.into() },
        ] {
            let reply = host.call(&command).await;
            assert!(refused(&reply), "{wrapper:?} {command:?}: {reply:?}");
        }
        assert!(refused(&host.start(&source, &device).await), "{wrapper:?}");
        assert!(canary.alive(), "{wrapper:?}: the canary was killed");
        assert!(victim.exists(), "{wrapper:?}: the planted file was deleted");
        let meta = std::fs::metadata(&root).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o777, "{wrapper:?}");
        host.assert_nothing_ran("foreign task root");

        // A task root that is a symlink to a folder of ours is refused as well.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&root, Some(0), Some(0)).unwrap();
        let elsewhere = host.esxi.fs_root().join("elsewhere");
        std::fs::rename(&root, &elsewhere).unwrap();
        symlink(&elsewhere, &root).unwrap();
        let reply = host
            .call(&WrapperCommand::TaskAbort { task_id: ID.into() })
            .await;
        assert!(refused(&reply), "{wrapper:?}: {reply:?}");
        assert!(refused(&host.start(&source, &device).await), "{wrapper:?}");
        assert!(canary.alive() && victim.exists(), "{wrapper:?}");
        host.assert_nothing_ran("symlinked task root");
    }
}

/// Task state the wrapper did not write — edited in place, or left by another program — names a
/// pid and a file. Without the supervisor's proof the pid is never signalled: a task with a secret
/// but no proof counts as ended, one in an older wrapper's form (no secret) whose pid runs counts
/// as running and is neither signalled nor cleaned. A descriptor path the wrapper never makes is
/// never deleted.
#[tokio::test]
async fn task_state_never_makes_a_wrapper_kill_or_delete_what_is_not_its_own() {
    for wrapper in WRAPPERS {
        let host = Host::new(wrapper, "ds1");
        let source = host.esxi.add_vmdk("vm/vm.vmdk", r#"{"steps": 1}"#);
        let device = host.esxi.add_device("naa.1", None);
        // A private task root of ours, made by a first clone.
        host.clone_to_end(&source, &device).await;
        let victim = host.esxi.fs_root().join("etc-passwd");
        std::fs::write(&victim, "keep").unwrap();
        let mut canary = Canary::start();
        for (nonce, ended) in [(Some("0".repeat(32)), true), (None, false)] {
            host.plant_task(
                &host.esxi.task_root(),
                ID,
                canary.pid(),
                &victim,
                nonce.as_deref(),
            );
            let aborted = host
                .call(&WrapperCommand::TaskAbort { task_id: ID.into() })
                .await;
            let status: TaskStatus = decode_message(&aborted.message)
                .unwrap_or_else(|_| panic!("{wrapper:?}: {aborted:?}"));
            assert_eq!(
                status.is_finished(),
                ended,
                "{wrapper:?} {nonce:?}: {status:?}"
            );
            assert!(
                canary.alive(),
                "{wrapper:?} {nonce:?}: the canary was signalled"
            );
            let cleaned = host
                .call(&WrapperCommand::TaskClean { task_id: ID.into() })
                .await;
            assert!(refused(&cleaned), "{wrapper:?} {nonce:?}: {cleaned:?}");
            assert!(
                victim.exists(),
                "{wrapper:?} {nonce:?}: a file named by task state was deleted"
            );
            std::fs::remove_dir_all(host.esxi.task_root().join(ID)).unwrap();
        }
        assert_eq!(host.runs().len(), 1);
    }
}

// ------------------------------------------------------------------ 5. resource limits

/// A host keeps at most 64 tasks: the next start is refused before anything runs.
#[tokio::test]
async fn the_number_of_tasks_is_capped() {
    for wrapper in WRAPPERS {
        let host = Host::new(wrapper, "ds1");
        let source = host.esxi.add_vmdk("vm/vm.vmdk", r#"{"steps": 1}"#);
        let device = host.esxi.add_device("naa.1", None);
        host.clone_to_end(&source, &device).await;
        for n in 0..64u32 {
            let id = format!("{n:08x}-0000-4000-8000-000000000000");
            host.plant_task(
                &host.esxi.task_root(),
                &id,
                1,
                Path::new("/vmfs/volumes/ds1/vm/x.vmdk"),
                None,
            );
        }
        let reply = host.start(&source, &device).await;
        assert!(
            refused(&reply) && reply.message.contains("64 clone tasks"),
            "{wrapper:?}: {reply:?}"
        );
        assert_eq!(host.runs().len(), 1, "{wrapper:?}");
        assert_eq!(host.esxi.task_dirs().len(), 64, "{wrapper:?}");
    }
}

/// Oversized arguments are refused at once (the old shell wrapper spent ~15 s normalising a
/// 60 kB path), and nothing runs.
#[test]
fn oversized_arguments_are_refused_fast() {
    for wrapper in WRAPPERS {
        let host = Host::new(wrapper, "ds1");
        host.esxi.add_device("naa.1", None);
        let long = format!("/vmfs/volumes/ds1/{}x.vmdk", "a/".repeat(30_000));
        let long_hex = encode_esxcli_value(&format!("/vmfs/volumes/ds1/{}.vmdk", "a".repeat(1100)));
        let started = Instant::now();
        for value in [long.as_str(), long_hex.as_str()] {
            let reply = host.call_raw(&["--clone", "-s", value, "-t", "/vmfs/devices/disks/naa.1"]);
            assert!(refused(&reply), "{wrapper:?}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{wrapper:?}: took {:?}",
            started.elapsed()
        );
        host.assert_nothing_ran("oversized");
    }
}

/// Client text with control characters never makes a reply invalid XML or a syslog line forged.
#[test]
fn control_characters_never_reach_replies_or_syslog() {
    for wrapper in WRAPPERS {
        let host = Host::new(wrapper, "ds1");
        for words in [
            vec!["--bogus\u{1b}]0;owned\u{7}\u{1}"],
            vec![
                "--clone",
                "-s",
                "/vmfs/volumes/ds1/a\u{8}\u{b}.vmdk",
                "-t",
                "x",
            ],
            vec!["--output", "\u{1b}[2J\nline2"],
        ] {
            let reply = host.call_raw(&words);
            assert!(refused(&reply), "{wrapper:?}");
            assert!(
                !reply
                    .message
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t'),
                "{wrapper:?}: {reply:?}"
            );
        }
        if matches!(
            wrapper,
            Wrapper::Vib(Shell::Busybox) | Wrapper::SshShell(Shell::Busybox)
        ) {
            let syslog = std::fs::read(host.esxi.syslog()).unwrap();
            assert!(!syslog.is_empty());
            let text = String::from_utf8(syslog).unwrap();
            assert!(
                text.lines().all(|line| !line.chars().any(char::is_control)),
                "{text:?}"
            );
            assert_eq!(text.lines().count(), 3, "one line per refusal: {text:?}");
        }
        host.assert_nothing_ran("control characters");
    }
}

/// Partitions and the host's boot device (also through a `vml.` link) are never clone targets;
/// a link to a whole device resolves to it.
#[tokio::test]
async fn partitions_and_the_boot_device_are_refused_as_targets() {
    for wrapper in WRAPPERS {
        let host = Host::new(wrapper, "ds1");
        let source = host.esxi.add_vmdk("vm/vm.vmdk", r#"{"steps": 1}"#);
        let disks = host.esxi.fs_root().join("vmfs/devices/disks");
        host.esxi.add_device("naa.600a", None);
        host.esxi.add_device("naa.600a:1", None);
        host.esxi.add_device("mpx.vmhba0:C0:T0:L0", None);
        host.esxi.add_device("mpx.vmhba0:C0:T0:L0:3", None);
        host.esxi.set_boot_device("mpx.vmhba0:C0:T0:L0");
        symlink(
            disks.join("mpx.vmhba0:C0:T0:L0"),
            disks.join("vml.0100000000"),
        )
        .unwrap();
        symlink(disks.join("naa.600a:1"), disks.join("vml.0200000000")).unwrap();
        symlink(disks.join("naa.600a"), disks.join("vml.0300000000")).unwrap();
        for target in [
            "/vmfs/devices/disks/naa.600a:1",
            "/vmfs/devices/disks/mpx.vmhba0:C0:T0:L0:3",
            "/vmfs/devices/disks/mpx.vmhba0:C0:T0:L0",
            "/vmfs/devices/disks/vml.0100000000",
            "/vmfs/devices/disks/vml.0200000000",
        ] {
            let reply = host.start(&source, target).await;
            assert!(refused(&reply), "{wrapper:?} {target}: {reply:?}");
        }
        host.assert_nothing_ran("partitions and boot device");
        let status = host
            .clone_to_end(&source, "/vmfs/devices/disks/vml.0300000000")
            .await;
        assert_eq!(status.exit_code, Some(0), "{wrapper:?}: {status:?}");
        let run = host.runs().pop().unwrap();
        assert_eq!(
            run[3],
            format!("rdm:{}", disks.join("naa.600a").display()),
            "{wrapper:?}"
        );
    }
}

// ------------------------------------------------------------------ 6. the key line

/// The key line the guidance prints grants no pty: OpenSSH's own client, authenticated with the
/// key, asks for one (`-tt`) and is refused by the server.
#[test]
fn the_key_line_grants_no_pty() {
    let rig = support::SshRig::start("ds1");
    let key_file = rig.esxi.bin().join("id_key");
    std::fs::write(&key_file, &rig.key.private_pem).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = Command::new("ssh")
        .args(["-tt", "-v", "-F", "/dev/null", "-o", "BatchMode=yes"])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .arg("-i")
        .arg(&key_file)
        .args([
            "-p",
            &rig.sshd.port.to_string(),
            "--",
            "root@127.0.0.1",
            "--version",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect(
            "ssh is missing: run `scripts/peers.sh install` (apt-get install -y openssh-client)",
        );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PTY allocation request failed"), "{stderr}");
    assert!(stderr.contains("Authenticated to 127.0.0.1"), "{stderr}");
}
