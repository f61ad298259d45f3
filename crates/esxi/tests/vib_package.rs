//! The `.vib` file checked by independent tools (binutils `ar`, GNU `tar`, `gzip`, coreutils
//! `sha256sum`/`sha1sum`, Python's XML parser), and `vib::install` against real sshd hosts
//! running a stand-in `esxcli`.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use co_esxi::ssh::{HostKeyPolicy, SshSettings};
use co_esxi::vib::{EsxiCommands, HostOutcome, InstallOptions, build_at, install};
use co_testpeers::Sshd;
use support::ClientKey;

fn sh(script: &str, vib: &Path) -> String {
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(vib)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn tag<'a>(xml: &'a str, open: &str) -> &'a str {
    let from = xml.find(open).unwrap_or_else(|| panic!("{open} missing")) + open.len();
    &xml[from..from + xml[from..].find('<').unwrap()]
}

#[test]
fn vib_structure_and_checksums_verified_by_independent_tools() {
    let dir = tempfile::tempdir().unwrap();
    let vib = dir.path().join("vmkfstools-wrapper.vib");
    let released: jiff::Timestamp = "2026-11-25T21:30:05Z".parse().unwrap();
    let info = build_at(&vib, "1.2.3", released).unwrap();

    assert_eq!(
        sh("ar t \"$1\"", &vib)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["descriptor.xml", "sig.pkcs7", "payload1"]
    );
    assert_eq!(sh("ar p \"$1\" sig.pkcs7 | wc -c", &vib).trim(), "0");
    let descriptor = sh("ar p \"$1\" descriptor.xml", &vib);
    sh(
        "ar p \"$1\" descriptor.xml | /usr/bin/python3 -c 'import sys, xml.dom.minidom as m; m.parse(sys.stdin)'",
        &vib,
    );

    let size = sh("ar p \"$1\" payload1 | wc -c", &vib).trim().to_owned();
    let sha256 = sh("ar p \"$1\" payload1 | sha256sum | cut -d' ' -f1", &vib)
        .trim()
        .to_owned();
    let sha256_gunzipped = sh(
        "ar p \"$1\" payload1 | gzip -dc | sha256sum | cut -d' ' -f1",
        &vib,
    )
    .trim()
    .to_owned();
    let sha1_gunzipped = sh(
        "ar p \"$1\" payload1 | gzip -dc | sha1sum | cut -d' ' -f1",
        &vib,
    )
    .trim()
    .to_owned();
    assert!(
        descriptor.contains(&format!(
            "<payload name=\"payload1\" type=\"tgz\" size=\"{size}\">"
        )),
        "{descriptor}"
    );
    assert!(descriptor.contains(&format!(
        "<checksum checksum-type=\"sha-256\">{sha256}</checksum>"
    )));
    assert!(descriptor.contains(&format!("<checksum checksum-type=\"sha-256\" verify-process=\"gunzip\">{sha256_gunzipped}</checksum>")));
    assert!(descriptor.contains(&format!(
        "<checksum checksum-type=\"sha-1\" verify-process=\"gunzip\">{sha1_gunzipped}</checksum>"
    )));
    assert_eq!(info.payload_sha256, sha256);

    assert_eq!(tag(&descriptor, "<name>"), "vmkfstools-wrapper");
    assert_eq!(tag(&descriptor, "<version>"), "1.2.3");
    assert_eq!(tag(&descriptor, "<vendor>"), "REDHAT");
    assert_eq!(tag(&descriptor, "<type>"), "bootbank");
    assert_eq!(tag(&descriptor, "<acceptance-level>"), "community");
    assert_eq!(
        tag(&descriptor, "<release-date>"),
        "2026-11-25T21:30:05+00:00"
    );
    assert_eq!(tag(&descriptor, "<live-install-allowed>"), "true");

    let listing = sh("ar p \"$1\" payload1 | tar -tzvf -", &vib);
    let files: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "opt/redhat/vmkfstools-wrapper",
            "usr/lib/vmware/esxcli/ext/esxcli-vmkfstools.xml"
        ]
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with("opt/redhat/vmkfstools-wrapper")),
        "{listing}"
    );
    for file in &files {
        assert!(
            descriptor.contains(&format!("<file>{file}</file>")),
            "file-list lacks {file}"
        );
    }
    let wrapper = sh(
        "ar p \"$1\" payload1 | tar -xzOf - opt/redhat/vmkfstools-wrapper",
        &vib,
    );
    assert!(
        wrapper.contains("\nSCRIPT_VERSION=\"1.2.3\"\n"),
        "script version rewritten to the VIB version"
    );
    let version = sh(
        "ar p \"$1\" payload1 | tar -xzOf - opt/redhat/vmkfstools-wrapper > \"$1.sh\" && sh \"$1.sh\" --version --output simple",
        &vib,
    );
    assert_eq!(version.trim(), "1.2.3");
}

struct FakeHost {
    sshd: Sshd,
}

fn install_options(
    vib: PathBuf,
    hosts: Vec<String>,
    key: &ClientKey,
    known_hosts: &Path,
    bin: &Path,
) -> InstallOptions {
    let mut ssh = SshSettings::from_base64_pem(
        &key.base64_pem(),
        HostKeyPolicy::TrustOnFirstUse {
            known_hosts: known_hosts.to_owned(),
        },
    )
    .unwrap();
    ssh.timeout = Duration::from_secs(20);
    InstallOptions {
        vib_path: vib,
        version: "1.0.0".into(),
        hosts,
        ssh,
        parallelism: 2,
        restart_hostd: true,
        hostd_ready_timeout: Duration::from_secs(10),
        commands: EsxiCommands {
            esxcli: bin.join("esxcli").display().to_string(),
            restart_hostd: format!("{} hostd-restart", bin.join("esxcli").display()),
            upload_dir: bin.display().to_string(),
        },
    }
}

#[tokio::test]
async fn install_skips_current_hosts_restarts_hostd_only_when_needed_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let esxcli = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/esxcli"),
    )
    .unwrap();
    std::fs::write(bin.join("esxcli"), esxcli).unwrap();
    std::fs::set_permissions(
        bin.join("esxcli"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let vib = dir.path().join("vmkfstools-wrapper.vib");
    build_at(&vib, "1.0.0", jiff::Timestamp::now()).unwrap();
    let key = ClientKey::generate();
    let authorized = format!("{}\n", key.public_openssh);
    let fresh = FakeHost {
        sshd: Sshd::start(&authorized).unwrap(),
    };
    let current = FakeHost {
        sshd: Sshd::start(&authorized).unwrap(),
    };
    // `current` already runs this version.
    let current_state = bin.join("state").join(current.sshd.port.to_string());
    std::fs::create_dir_all(&current_state).unwrap();
    std::fs::write(current_state.join("installed"), "1.0.0").unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let hosts = vec![
        format!("127.0.0.1:{}", fresh.sshd.port),
        format!("127.0.0.1:{}", current.sshd.port),
        format!("127.0.0.1:{closed}"),
    ];
    let options = install_options(
        vib.clone(),
        hosts.clone(),
        &key,
        &dir.path().join("known_hosts"),
        &bin,
    );
    let summary = install(&options).await;

    assert_eq!(
        summary
            .hosts
            .iter()
            .map(|h| h.host.clone())
            .collect::<Vec<_>>(),
        hosts
    );
    assert_eq!(
        summary.hosts[0].outcome,
        HostOutcome::Installed {
            previous: None,
            hostd_restarted: true
        }
    );
    assert_eq!(summary.hosts[1].outcome, HostOutcome::AlreadyInstalled);
    assert!(
        matches!(&summary.hosts[2].outcome, HostOutcome::Failed(reason) if reason.contains("SSH")),
        "{:?}",
        summary.hosts[2]
    );
    assert!(!summary.all_succeeded());
    let fresh_state = bin.join("state").join(fresh.sshd.port.to_string());
    assert_eq!(
        std::fs::read_to_string(fresh_state.join("installed")).unwrap(),
        "1.0.0"
    );
    assert_eq!(
        std::fs::read_to_string(fresh_state.join("hostd-restarts"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    assert!(
        !current_state.join("hostd-restarts").exists(),
        "hostd untouched on a current host"
    );
    assert!(
        !bin.join("vmkfstools-wrapper-1.0.0.vib").exists(),
        "uploaded VIB removed"
    );

    // A second run finds every reachable host current and restarts nothing.
    let options = install_options(
        vib,
        hosts[..2].to_vec(),
        &key,
        &dir.path().join("known_hosts"),
        &bin,
    );
    let again = install(&options).await;
    assert!(
        again
            .hosts
            .iter()
            .all(|h| h.outcome == HostOutcome::AlreadyInstalled),
        "{again:?}"
    );
    assert_eq!(
        std::fs::read_to_string(fresh_state.join("hostd-restarts"))
            .unwrap()
            .lines()
            .count(),
        1
    );
}
