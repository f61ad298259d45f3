//! Test fixtures: a fake ESXi file system (datastores, devices, task root) under a temp dir, the
//! real wrapper scripts installed there with only their ESXi constants substituted, and the
//! stand-in `vmkfstools`/`vsish` executables the wrappers run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use async_trait::async_trait;
use co_esxi::EsxiError;
use co_esxi::protocol::WrapperReply;
use co_esxi::ssh::{HostKeyPolicy, SshExecutor, SshSession, SshSettings};
use co_esxi::vib_executor::{EsxcliRecord, EsxcliRunner};
use co_testpeers::Sshd;
use tempfile::TempDir;

/// The interpreter ESXi calls `python`; the tests run the wrapper with Debian's python3.
pub const PYTHON: &str = "/usr/bin/python3";
const BUSYBOX: &str = "/usr/bin/busybox";
/// The boot device of every fake host unless a test sets another.
pub const BOOT_DEVICE: &str = "mpx.vmhba32:C0:T0:L0";
/// Shebang interpreter for the wrapper under busybox.
const BUSYBOX_SH: &str = "/usr/bin/busybox sh";

/// The shell the VIB wrapper runs under: Debian's dash, or busybox with only its applets on PATH
/// (what ESXi has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Dash,
    Busybox,
}

/// A fake ESXi host's file system.
pub struct FakeEsxi {
    dir: TempDir,
    pub datastore: String,
}

impl FakeEsxi {
    pub fn new(datastore: &str) -> Self {
        assert!(
            Path::new(PYTHON).is_file(),
            "{PYTHON} is missing: run `scripts/peers.sh install` (apt-get install -y python3)"
        );
        let dir = tempfile::Builder::new()
            .prefix("fake-esxi-")
            .tempdir()
            .unwrap();
        let esxi = Self {
            dir,
            datastore: datastore.to_owned(),
        };
        std::fs::create_dir_all(esxi.fs_root().join("vmfs/volumes").join(datastore)).unwrap();
        std::fs::create_dir_all(esxi.fs_root().join("vmfs/devices/disks")).unwrap();
        std::fs::create_dir_all(esxi.bin().join("counters")).unwrap();
        for stand_in in ["vmkfstools", "vsish"] {
            let source = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(stand_in);
            let text = std::fs::read_to_string(source).unwrap().replacen(
                "#!/usr/bin/python3",
                &format!("#!{PYTHON}"),
                1,
            );
            write_executable(&esxi.bin().join(stand_in), &text);
        }
        std::fs::write(esxi.bin().join("invocations.log"), "").unwrap();
        for volume in esxi.boot_volumes() {
            std::fs::create_dir_all(&volume).unwrap();
        }
        esxi.set_boot_device(BOOT_DEVICE);
        esxi
    }

    /// The host's boot bank folders (`/bootbank`, `/altbootbank` on ESXi).
    pub fn boot_volumes(&self) -> [PathBuf; 2] {
        let boot = self.dir.path().join("boot");
        [boot.join("bootbank"), boot.join("altbootbank")]
    }

    /// Makes both boot banks live on partitions 5 and 6 of `device` (what `vmkfstools -P` reports).
    pub fn set_boot_device(&self, device: &str) {
        for (volume, partition) in self.boot_volumes().iter().zip([5, 6]) {
            std::fs::write(volume.join("partitions"), format!("{device}:{partition}\n")).unwrap();
        }
    }

    /// FS_ROOT: `/vmfs/...` paths live below it.
    pub fn fs_root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    pub fn task_root(&self) -> PathBuf {
        self.dir.path().join("tasks")
    }

    pub fn datastore_dir(&self) -> PathBuf {
        self.fs_root().join("vmfs/volumes").join(&self.datastore)
    }

    /// The SSH wrapper with its ESXi constants pointed into this fake host.
    pub fn ssh_wrapper_source(&self) -> String {
        substitute(
            co_esxi::assets::SSH_WRAPPER,
            &[
                (
                    "VMKFSTOOLS = ",
                    format!("{:?}", self.bin().join("vmkfstools").display().to_string()),
                ),
                (
                    "VSISH = ",
                    format!("{:?}", self.bin().join("vsish").display().to_string()),
                ),
                (
                    "TASK_ROOT = ",
                    format!("{:?}", self.task_root().display().to_string()),
                ),
                (
                    "FS_ROOT = ",
                    format!("{:?}", self.fs_root().display().to_string()),
                ),
                (
                    "BOOT_VOLUMES = ",
                    format!(
                        "({:?}, {:?})",
                        self.boot_volumes()[0].display().to_string(),
                        self.boot_volumes()[1].display().to_string()
                    ),
                ),
            ],
        )
    }

    /// The VIB's shell wrapper with its ESXi constants pointed into this fake host.
    pub fn vib_wrapper_source(&self, shell: Shell) -> String {
        let quoted = |path: PathBuf| format!("{:?}", path.display().to_string());
        let mut constants = vec![
            ("VMKFSTOOLS=", quoted(self.bin().join("vmkfstools"))),
            ("VSISH=", quoted(self.bin().join("vsish"))),
            ("TASK_ROOT=", quoted(self.task_root())),
            ("FS_ROOT=", quoted(self.fs_root())),
            (
                "BOOT_VOLUMES=",
                format!(
                    "\"{} {}\"",
                    self.boot_volumes()[0].display(),
                    self.boot_volumes()[1].display()
                ),
            ),
        ];
        if shell == Shell::Busybox {
            constants.push(("PATH=", self.busybox_applets().display().to_string()));
        }
        let source = substitute(co_esxi::assets::VIB_WRAPPER, &constants);
        match shell {
            Shell::Dash => source,
            Shell::Busybox => source.replacen("#!/bin/sh", &format!("#!{BUSYBOX_SH}"), 1),
        }
    }

    /// What the wrappers sent to syslog (the busybox shell's `logger` writes here).
    pub fn syslog(&self) -> PathBuf {
        self.bin().join("syslog.log")
    }

    /// A directory of busybox applets, the only tools on ESXi's shell PATH.
    fn busybox_applets(&self) -> PathBuf {
        let dir = self.dir.path().join("busybox");
        if !dir.exists() {
            assert!(
                Path::new(BUSYBOX).is_file(),
                "{BUSYBOX} is missing (ESXi's shell): run `scripts/peers.sh install` (apt-get install -y busybox)"
            );
            std::fs::create_dir_all(&dir).unwrap();
            for applet in [
                "sh", "sed", "awk", "od", "tr", "cut", "find", "setsid", "logger", "mv", "rm",
                "mkdir", "chmod", "cat", "tail", "grep", "head", "date", "sleep", "kill", "printf",
                "readlink", "id", "ls", "rmdir",
            ] {
                std::os::unix::fs::symlink(BUSYBOX, dir.join(applet)).unwrap();
            }
            // syslog as a file the tests can read: every `logger` line, as received.
            std::fs::remove_file(dir.join("logger")).unwrap();
            write_executable(
                &dir.join("logger"),
                &format!(
                    "#!{BUSYBOX_SH}\nprintf '%s\\n' \"$*\" >>{:?}\n",
                    self.syslog().display().to_string()
                ),
            );
        }
        dir
    }

    /// Installs the SSH wrapper at the datastore root, as the populator would.
    pub fn install_ssh_wrapper(&self) -> PathBuf {
        let path = self
            .datastore_dir()
            .join(co_esxi::assets::SSH_WRAPPER_FILE_NAME);
        std::fs::write(&path, self.ssh_wrapper_source()).unwrap();
        path
    }

    /// Installs the SSH shell wrapper (what Forklift's key line runs) at the datastore root, as the
    /// populator would: the VIB's script, its ESXi constants pointed into this fake host.
    pub fn install_ssh_shell_wrapper(&self, shell: Shell) -> PathBuf {
        let path = self
            .datastore_dir()
            .join(co_esxi::assets::SSH_SHELL_WRAPPER_FILE_NAME);
        std::fs::write(&path, self.vib_wrapper_source(shell)).unwrap();
        path
    }

    /// Runs the SSH shell wrapper as Forklift's key line does after routing
    /// (`sh /vmfs/volumes/<ds>/secure-vmkfstools-wrapper`, the request in `SSH_ORIGINAL_COMMAND`),
    /// without sshd; returns stdout and the exit code.
    pub fn run_ssh_shell_wrapper(&self, shell: Shell, request: Option<&str>) -> (String, i32) {
        let script = self
            .datastore_dir()
            .join(co_esxi::assets::SSH_SHELL_WRAPPER_FILE_NAME);
        let argv = shell.argv();
        let mut command = Command::new(argv[0]);
        command
            .args(&argv[1..])
            .arg(script)
            .env_clear()
            .env("PATH", "/usr/bin:/bin");
        if let Some(request) = request {
            command.env("SSH_ORIGINAL_COMMAND", request);
        }
        let output = command.output().unwrap();
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            output.status.code().unwrap_or(-1),
        )
    }

    /// Forklift's key line for `public_key`, mapped to this fake host: the routed script is run by
    /// `shell` under FS_ROOT; the inline routing script is kept byte for byte.
    pub fn forklift_key_line(&self, public_key: &str, shell: Shell) -> String {
        let line = co_esxi::forklift_key_line(public_key);
        let mapped = line.replacen(
            "exec sh /vmfs/volumes/$DS/",
            &format!(
                "exec {} {}/vmfs/volumes/$DS/",
                shell.argv().join(" "),
                self.fs_root().display()
            ),
            1,
        );
        assert_ne!(
            mapped, line,
            "Forklift's line did not run `sh /vmfs/volumes/$DS/…`"
        );
        mapped
    }

    /// The datastore transfer seam over this host's datastores, as vCenter's `/folder` endpoint
    /// would serve them: the embedded wrappers are stored with their ESXi constants pointed into
    /// this fake host (so they run here) and read back as the embedded bytes.
    pub fn datastore_transfers(&self, shell: Shell) -> FakeDatastores {
        FakeDatastores {
            volumes: self.fs_root().join("vmfs/volumes"),
            mapped: vec![
                (
                    co_esxi::assets::SSH_WRAPPER.to_owned(),
                    self.ssh_wrapper_source(),
                ),
                (
                    co_esxi::assets::SSH_SHELL_WRAPPER.to_owned(),
                    self.vib_wrapper_source(shell),
                ),
            ],
        }
    }

    /// Installs the VIB wrapper (as `/opt/redhat/vmkfstools-wrapper` would be) and returns its path.
    pub fn install_vib_wrapper(&self, shell: Shell) -> PathBuf {
        let source = self.vib_wrapper_source(shell);
        let path = self.dir.path().join("opt/redhat/vmkfstools-wrapper");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_executable(&path, &source);
        path
    }

    /// The restricted key line as the product prints it, with `python -I /vmfs/...` mapped to this
    /// fake host (interpreter path and FS_ROOT prefix); everything else, quoting included, is kept.
    pub fn restricted_key_line(&self, public_key: &str) -> String {
        let line = co_esxi::restricted_key_line(&self.datastore, public_key);
        let mapped = line.replacen(
            "python -I '/vmfs/",
            &format!("{PYTHON} -I '{}/vmfs/", self.fs_root().display()),
            1,
        );
        let mapped = mapped.replacen(
            "python -I /vmfs/",
            &format!("{PYTHON} -I {}/vmfs/", self.fs_root().display()),
            1,
        );
        assert_ne!(
            mapped, line,
            "key line did not contain the python command: {line}"
        );
        mapped
    }

    /// Creates a source "VMDK" whose content is the stand-in vmkfstools' JSON scenario;
    /// returns its ESXi path.
    pub fn add_vmdk(&self, relative: &str, scenario: &str) -> String {
        let path = self.datastore_dir().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, scenario).unwrap();
        format!("/vmfs/volumes/{}/{relative}", self.datastore)
    }

    /// Creates a device node; with a counter, vsish reports VAAI clone statistics for it.
    pub fn add_device(&self, name: &str, clone_write_ops: Option<u64>) -> String {
        std::fs::write(self.fs_root().join("vmfs/devices/disks").join(name), "").unwrap();
        if let Some(value) = clone_write_ops {
            std::fs::write(
                self.bin().join("counters").join(name),
                format!("{value:#x}"),
            )
            .unwrap();
        }
        format!("/vmfs/devices/disks/{name}")
    }

    /// argv of every vmkfstools run (JSON arrays), in order.
    pub fn vmkfstools_runs(&self) -> Vec<String> {
        std::fs::read_to_string(self.bin().join("invocations.log"))
            .unwrap()
            .lines()
            .filter(|line| line.starts_with('['))
            .map(str::to_owned)
            .collect()
    }

    /// Task directories present in the task root.
    pub fn task_dirs(&self) -> Vec<String> {
        match std::fs::read_dir(self.task_root()) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Files in the datastore (relative paths), for checking RDM descriptors come and go.
    pub fn datastore_files(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else {
                    out.push(path.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.datastore_dir(), &self.datastore_dir(), &mut out);
        out.sort();
        out
    }

    /// Runs the SSH wrapper directly with `SSH_ORIGINAL_COMMAND` (no sshd), returning stdout.
    pub fn run_ssh_wrapper_directly(&self, original_command: Option<&str>) -> (String, i32) {
        let script = self
            .datastore_dir()
            .join(co_esxi::assets::SSH_WRAPPER_FILE_NAME);
        let mut command = Command::new(PYTHON);
        command.arg(script).env_clear().env("PATH", "/usr/bin:/bin");
        if let Some(original) = original_command {
            command.env("SSH_ORIGINAL_COMMAND", original);
        }
        let output = command.output().unwrap();
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            output.status.code().unwrap_or(-1),
        )
    }
}

impl Shell {
    /// The command that runs a script file with this shell.
    pub fn argv(self) -> Vec<&'static str> {
        match self {
            Shell::Dash => vec!["/bin/dash"],
            Shell::Busybox => vec![BUSYBOX, "sh"],
        }
    }
}

/// Datastore files of a fake host behind the [`co_esxi::ssh::DatastoreFiles`] seam; see
/// [`FakeEsxi::datastore_transfers`].
pub struct FakeDatastores {
    volumes: PathBuf,
    /// (embedded script, the same script as stored on this fake host)
    mapped: Vec<(String, String)>,
}

#[async_trait]
impl co_esxi::ssh::DatastoreFiles for FakeDatastores {
    async fn download(&self, datastore: &str, path: &str) -> Result<Option<Vec<u8>>, EsxiError> {
        let Ok(stored) = std::fs::read_to_string(self.volumes.join(datastore).join(path)) else {
            return Ok(None);
        };
        let embedded = self
            .mapped
            .iter()
            .find(|(_, on_host)| *on_host == stored)
            .map_or(stored.clone(), |(embedded, _)| embedded.clone());
        Ok(Some(embedded.into_bytes()))
    }

    async fn upload(&self, datastore: &str, path: &str, body: Vec<u8>) -> Result<(), EsxiError> {
        let body = String::from_utf8(body).unwrap();
        let stored = self
            .mapped
            .iter()
            .find(|(embedded, _)| *embedded == body)
            .map_or(body.clone(), |(_, on_host)| on_host.clone());
        std::fs::write(self.volumes.join(datastore).join(path), stored).unwrap();
        Ok(())
    }
}

fn substitute(script: &str, constants: &[(&str, String)]) -> String {
    let mut lines: Vec<String> = script.lines().map(str::to_owned).collect();
    for (prefix, value) in constants {
        let line = lines
            .iter_mut()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no constant {prefix}"));
        *line = format!("{prefix}{value}");
    }
    lines.join("\n") + "\n"
}

/// Writes an executable through `install`, another process: a file this multi-threaded test
/// process held open for writing could be inherited by a child another test thread forks at that
/// moment, and executing it would then fail with ETXTBSY ("Text file busy").
fn write_executable(path: &Path, text: &str) {
    let source = path.with_extension("source");
    std::fs::write(&source, text).unwrap();
    let status = Command::new("install")
        .arg("-m755")
        .arg(&source)
        .arg(path)
        .status()
        .expect("install (coreutils) is missing");
    assert!(status.success(), "install {} failed", path.display());
}

/// The VIB method's esxcli transport as a test seam: runs esxcli `vmkfstools` commands from the
/// plugin XML against the installed shell wrapper. The `<execute>` template is filled in as esxcli
/// does and run with `/bin/sh -c`: the worst case, a shell parsing the line.
pub struct PluginHost {
    pub wrapper: PathBuf,
    /// Every `<execute>` line run, as the shell received it.
    pub lines: std::sync::Mutex<Vec<String>>,
}

impl PluginHost {
    pub fn new(wrapper: PathBuf) -> Self {
        Self {
            wrapper,
            lines: std::sync::Mutex::default(),
        }
    }

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
        self.lines.lock().unwrap().push(line.clone());
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

/// The SSH method's rig: OpenSSH sshd with the restricted key line in front of the real SSH
/// wrapper on a fake host.
pub struct SshRig {
    pub esxi: FakeEsxi,
    pub sshd: Sshd,
    pub settings: SshSettings,
    pub key: ClientKey,
}

impl SshRig {
    pub fn start(datastore: &str) -> Self {
        let esxi = FakeEsxi::new(datastore);
        esxi.install_ssh_wrapper();
        Self::with_key_line(esxi, |esxi, key| esxi.restricted_key_line(key))
    }

    /// sshd for `esxi` with the key line `key_line` makes for a fresh client key.
    fn with_key_line(esxi: FakeEsxi, key_line: impl Fn(&FakeEsxi, &str) -> String) -> Self {
        let key = ClientKey::generate();
        let sshd = Sshd::start(&format!("{}\n", key_line(&esxi, &key.public_openssh))).unwrap();
        let settings = settings_for(&sshd, &key);
        Self {
            esxi,
            sshd,
            settings,
            key,
        }
    }

    /// Client settings for `key` against this sshd (its host key pinned).
    pub fn settings_for(&self, key: &ClientKey) -> SshSettings {
        settings_for(&self.sshd, key)
    }

    /// OpenSSH sshd with Forklift's key line in front of the shell wrapper run by `shell`.
    pub fn start_forklift(datastore: &str, shell: Shell) -> Self {
        let esxi = FakeEsxi::new(datastore);
        esxi.install_ssh_shell_wrapper(shell);
        Self::with_key_line(esxi, |esxi, key| esxi.forklift_key_line(key, shell))
    }

    pub async fn executor(&self) -> SshExecutor {
        SshExecutor::connect("127.0.0.1", &self.esxi.datastore, &self.settings)
            .await
            .unwrap()
    }

    pub async fn raw(&self) -> SshSession {
        SshSession::connect("127.0.0.1", &self.settings)
            .await
            .unwrap()
    }
}

fn settings_for(sshd: &Sshd, key: &ClientKey) -> SshSettings {
    let host_key = russh::keys::PublicKey::from_openssh(&sshd.host_public_key_openssh).unwrap();
    let mut settings =
        SshSettings::from_base64_pem(&key.base64_pem(), HostKeyPolicy::Pinned(host_key)).unwrap();
    settings.port = sshd.port;
    settings.timeout = Duration::from_secs(20);
    settings
}

/// An RSA client key as the provider generates it: PEM ("RSA PRIVATE KEY") and authorized_keys form.
pub struct ClientKey {
    pub private_pem: String,
    pub public_openssh: String,
}

impl ClientKey {
    pub fn generate() -> Self {
        Self::generate_with(&["-t", "rsa", "-b", "2048", "-m", "PEM"])
    }

    pub fn generate_ed25519() -> Self {
        Self::generate_with(&["-t", "ed25519"])
    }

    /// `type base64` without the comment, as derived from the private key.
    pub fn public_key_without_comment(&self) -> String {
        self.public_openssh
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn generate_with(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_key");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-N", ""])
            .args(args)
            .arg("-f")
            .arg(&path)
            .status()
            .expect("ssh-keygen is missing: run `scripts/peers.sh install` (apt-get install -y openssh-client)");
        assert!(status.success());
        Self {
            private_pem: std::fs::read_to_string(&path).unwrap(),
            public_openssh: std::fs::read_to_string(path.with_extension("pub"))
                .unwrap()
                .trim()
                .to_owned(),
        }
    }

    /// The `SSH_PRIVATE_KEY` env value.
    pub fn base64_pem(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&self.private_pem)
    }
}

/// Collects tracing output of the current thread, for asserting on logged guidance.
#[derive(Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
