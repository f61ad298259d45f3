//! Smoke test: VMware's own pyvmomi client reaches a vcsim started by co-testpeers, either trusting
//! its certificate (`ca_pem`) or pinning its SHA-256 thumbprint (`thumbprint_sha256`).

use std::process::{Command, Output};

use co_testpeers::{Vcsim, python_with_pyvmomi};

/// Connects with pyvmomi and prints the API type and the session's user. pyvmomi 9 consults the
/// pinned thumbprint only when normal certificate verification fails, and SmartConnect's version
/// probe ignores it altogether, hence `Connect`. Secrets travel in the environment, not on the
/// command line.
const CONNECT: &str = r#"
import os, ssl
from pyVim.connect import Connect, Disconnect
ctx = ssl.create_default_context(cafile=os.environ.get("VCSIM_CA"))
si = Connect(host="127.0.0.1", port=int(os.environ["VCSIM_PORT"]), user=os.environ["VCSIM_USER"],
             pwd=os.environ["VCSIM_PASSWORD"], sslContext=ctx, thumbprint=os.environ.get("VCSIM_THUMBPRINT"))
content = si.RetrieveContent()
print(content.about.apiType)
print(content.sessionManager.currentSession.userName)
Disconnect(si)
"#;

/// How the Python side decides to trust vcsim.
enum Trust<'a> {
    Certificate,
    Thumbprint(&'a str),
}

fn connect(vcsim: &Vcsim, trust: Trust<'_>) -> Output {
    let port = vcsim.authority().rsplit_once(':').unwrap().1.to_owned();
    let mut command = Command::new(python_with_pyvmomi().unwrap());
    command
        .args(["-c", CONNECT])
        .env("VCSIM_PORT", port)
        .env("VCSIM_USER", &vcsim.username)
        .env("VCSIM_PASSWORD", &vcsim.password)
        .env_remove("VCSIM_CA")
        .env_remove("VCSIM_THUMBPRINT");
    match trust {
        Trust::Certificate => {
            let ca = vcsim.dir().join("pyvmomi-ca.pem");
            std::fs::write(&ca, &vcsim.ca_pem).unwrap();
            command.env("VCSIM_CA", ca);
        }
        Trust::Thumbprint(thumbprint) => {
            command.env("VCSIM_THUMBPRINT", thumbprint);
        }
    }
    command.output().unwrap()
}

fn assert_logged_in(out: &Output, vcsim: &Vcsim) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, format!("VirtualCenter\n{}\n", vcsim.username));
}

#[test]
fn pyvmomi_logs_in_trusting_the_certificate() {
    let vcsim = Vcsim::start().unwrap();
    assert_logged_in(&connect(&vcsim, Trust::Certificate), &vcsim);
}

#[test]
fn pyvmomi_logs_in_pinning_the_thumbprint() {
    let vcsim = Vcsim::start().unwrap();
    assert_logged_in(
        &connect(&vcsim, Trust::Thumbprint(&vcsim.thumbprint_sha256)),
        &vcsim,
    );
}

#[test]
fn pyvmomi_refuses_a_different_thumbprint() {
    let vcsim = Vcsim::start().unwrap();
    let wrong = vec!["00"; 32].join(":");
    let out = connect(&vcsim, Trust::Thumbprint(&wrong));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("SHA thumbprint mismatch"), "{stderr}");
}
