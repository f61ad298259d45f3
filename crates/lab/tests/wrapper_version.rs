//! The wrapper version a lab host answers is the one of the script actually on the host — the VIB's
//! installed shell wrapper for esxcli, the script on the datastore for SSH — not a constant: replacing
//! the script changes the answer, as it would on ESXi.

use crate::support;

use co_esxi::assets::{SSH_WRAPPER, WRAPPER_VERSION};
use co_esxi::protocol::WrapperReply;
use co_lab::lab::Lab;
use co_lab::scenario::Scenario;
use co_lab::{host_root, vib_wrapper_path};
use support::{Soap, SshClient, restricted_line, status_message};

const HOST1: &str = "host-10";

fn with_version(script: &str, version: &str) -> String {
    script.replacen(
        &format!("SCRIPT_VERSION = \"{WRAPPER_VERSION}\""),
        &format!("SCRIPT_VERSION = \"{version}\""),
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esxcli_answers_the_version_of_the_installed_vib_script() {
    let data = tempfile::tempdir().unwrap();
    let lab = Lab::start(Scenario::default_embedded(), data.path())
        .await
        .unwrap();
    let soap = Soap::login(&lab).await;
    let version = || async {
        let answer = soap
            .esxcli(HOST1, &["vmkfstools", "version"], &[])
            .await
            .unwrap();
        status_message(&answer)
    };
    assert_eq!(
        version().await,
        ("0".into(), format!("{{\"version\":\"{WRAPPER_VERSION}\"}}"))
    );

    let script = vib_wrapper_path(&host_root(&lab.data_dir, "esxi-1.lab.local"));
    let installed = std::fs::read_to_string(&script).unwrap();
    std::fs::write(
        &script,
        installed.replacen(
            &format!("SCRIPT_VERSION=\"{WRAPPER_VERSION}\""),
            "SCRIPT_VERSION=\"1.0.0\"",
            1,
        ),
    )
    .unwrap();
    assert_eq!(
        version().await,
        ("0".into(), r#"{"version":"1.0.0"}"#.into())
    );
    // The older plugin no longer declares the clone task id.
    let info = soap.cli_info(HOST1, "vmkfstools").await.unwrap();
    let clone = info
        .children_named("method")
        .find(|m| m.child_text("name") == Some("clone"))
        .unwrap();
    assert_eq!(clone.children_named("param").count(), 2);

    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let (status, message) = version().await;
    assert_ne!(status, "0");
    assert!(message.contains("no SCRIPT_VERSION line"), "{message}");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_answers_the_version_of_the_script_on_the_datastore() {
    let data = tempfile::tempdir().unwrap();
    let lab = Lab::start(Scenario::default_embedded(), data.path())
        .await
        .unwrap();
    let host = lab.host("esxi-2.lab.local").unwrap();
    let client = SshClient::new(9);
    host.sim
        .set_authorized_keys(vec![restricted_line(&client.public_line())]);
    let script = lab.datastore_dir("ds1").join("secure-vmkfstools-wrapper");
    let mut answered = Vec::new();
    for version in [WRAPPER_VERSION, "0.9.0"] {
        std::fs::write(&script, with_version(SSH_WRAPPER, version)).unwrap();
        let output = client
            .run(host.ssh_addr, "DS=ds1;CMD=--version")
            .await
            .unwrap();
        let reply = WrapperReply::from_xml(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {:?}", output.stdout));
        answered.push((reply.status, reply.message));
    }
    assert_eq!(
        answered,
        [
            (0, format!("{{\"version\":\"{WRAPPER_VERSION}\"}}")),
            (0, r#"{"version":"0.9.0"}"#.to_owned()),
        ]
    );
    lab.shutdown().await;
}
