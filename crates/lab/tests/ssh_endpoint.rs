//! The per-host SSH endpoint with the restricted-key semantics: probe, wrapper routing by datastore,
//! a full clone over SSH, and refusal of everything else (other keys, shells, forwarding, traversal).

use crate::support;

use std::time::Duration;

use co_esxi::protocol::{WrapperCommand, WrapperReply};
use co_lab::RescanKind;
use co_lab::lab::Lab;
use co_lab::scenario::Scenario;
use co_testpeers::eventually;
use support::{SshClient, restricted_line};

/// `(status, message)` from the wrapper's XML envelope, decoded by the product's own parser.
fn envelope(stdout: &str) -> (String, String) {
    let reply = WrapperReply::from_xml(stdout).unwrap_or_else(|e| panic!("{e}: {stdout:?}"));
    (reply.status.to_string(), reply.message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_key_routes_to_the_wrapper_and_clones() {
    let data = tempfile::tempdir().unwrap();
    let lab = Lab::start(Scenario::default_embedded(), data.path())
        .await
        .unwrap();
    let host = lab.host("esxi-1.lab.local").unwrap();
    let client = SshClient::new(7);
    host.sim
        .set_authorized_keys(vec![restricted_line(&client.public_line())]);
    let addr = host.ssh_addr;

    let probe = client
        .run(addr, "DS=;CMD=status test-task-id")
        .await
        .unwrap();
    assert_eq!((probe.stdout.as_str(), probe.status), ("SSH_OK\n", Some(0)));

    let before_upload = client.run(addr, "DS=ds1;CMD=--version").await.unwrap();
    assert_eq!(before_upload.status, Some(2));
    assert!(
        before_upload
            .stderr
            .contains("/vmfs/volumes/ds1/secure-vmkfstools-wrapper"),
        "{}",
        before_upload.stderr
    );

    // The lab answers `--version` from the script's own version line.
    std::fs::write(
        lab.datastore_dir("ds1").join("secure-vmkfstools-wrapper"),
        format!(
            "#!/bin/sh\nSCRIPT_VERSION=\"{}\"\n",
            co_esxi::assets::WRAPPER_VERSION
        ),
    )
    .unwrap();
    let version = client.run(addr, "DS=ds1;CMD=--version").await.unwrap();
    assert_eq!(
        envelope(&version.stdout),
        (
            "0".to_owned(),
            format!("{{\"version\":\"{}\"}}", co_esxi::assets::WRAPPER_VERSION)
        )
    );

    let traversal = client
        .run(
            addr,
            "DS=ds1;CMD=--clone -s /vmfs/volumes/ds1/../../etc/passwd -t /vmfs/devices/disks/x",
        )
        .await
        .unwrap();
    let (status, message) = envelope(&traversal.stdout);
    assert_eq!(status, "1");
    assert!(message.starts_with("Path validation error"), "{message}");

    let volume = lab
        .san
        .create_volume("ontap1", "pvc-ssh", 64 * 1024 * 1024)
        .unwrap();
    lab.san
        .ensure_group("ontap1", "xcopy-hostsystem-host-10", &host.sim.initiators())
        .unwrap();
    lab.san
        .map("ontap1", "pvc-ssh", "xcopy-hostsystem-host-10")
        .unwrap();
    host.sim.rescan(RescanKind::Add);
    let clone = client
        .run(
            addr,
            &format!(
                "DS=ds1;CMD=--clone -s /vmfs/volumes/ds1/vm-1/vm-1.vmdk -t /vmfs/devices/disks/{}",
                volume.naa
            ),
        )
        .await
        .unwrap();
    let (status, message) = envelope(&clone.stdout);
    assert_eq!(status, "0", "{message}");
    let task_id = serde_json::from_str::<serde_json::Value>(&message).unwrap()["taskId"]
        .as_str()
        .unwrap()
        .to_owned();

    let finished = eventually(Duration::from_secs(60), "SSH clone to finish", || {
        let (client, task_id) = (&client, task_id.clone());
        async move {
            let out = client
                .run(addr, &format!("DS=ds1;CMD=--task-get -i {task_id}"))
                .await
                .unwrap();
            let json: serde_json::Value = serde_json::from_str(&envelope(&out.stdout).1).unwrap();
            (json["exitCode"] != "").then_some(json)
        }
    })
    .await;
    assert_eq!(finished["exitCode"], "0", "{finished}");
    assert_eq!(finished["xcopyUsed"], true);
    let clean = client
        .run(addr, &format!("DS=ds1;CMD=--task-clean -i {task_id}"))
        .await
        .unwrap();
    assert_eq!(envelope(&clean.stdout).0, "0");
    assert!(host.sim.task_ids().is_empty());
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_but_the_wrapper_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let lab = Lab::start(Scenario::default_embedded(), data.path())
        .await
        .unwrap();
    let host = lab.host("esxi-1.lab.local").unwrap();
    let restricted = SshClient::new(7);
    let unrestricted = SshClient::new(8);
    let stranger = SshClient::new(9);
    host.sim.set_authorized_keys(vec![
        restricted_line(&restricted.public_line()),
        unrestricted.public_line(),
    ]);
    // The lab answers `--version` from the script's own version line.
    std::fs::write(
        lab.datastore_dir("ds1").join("secure-vmkfstools-wrapper"),
        format!(
            "#!/bin/sh\nSCRIPT_VERSION=\"{}\"\n",
            co_esxi::assets::WRAPPER_VERSION
        ),
    )
    .unwrap();
    let addr = host.ssh_addr;

    assert_eq!(
        stranger.run(addr, "DS=;CMD=x").await.unwrap_err(),
        "authentication rejected"
    );
    let other_host = lab.host("esxi-2.lab.local").unwrap().ssh_addr;
    assert!(
        restricted.run(other_host, "DS=;CMD=x").await.is_err(),
        "keys are per host"
    );

    let shell = restricted.shell(addr).await.unwrap();
    assert_eq!(shell.status, Some(126));
    assert!(
        restricted
            .forward(addr, lab.vcenter_addr.port())
            .await
            .is_err(),
        "port forwarding is refused"
    );

    // Without a forced command only the direct wrapper form runs.
    let direct = unrestricted
        .run(
            addr,
            "sh /vmfs/volumes/ds1/secure-vmkfstools-wrapper --version",
        )
        .await
        .unwrap();
    assert_eq!(envelope(&direct.stdout).0, "0");
    let arbitrary = unrestricted
        .run(addr, "id; touch /tmp/pwned")
        .await
        .unwrap();
    assert_eq!(arbitrary.status, Some(126));

    // A restricted key cannot escape the template with an arbitrary command either.
    let escaped = restricted.run(addr, "id").await.unwrap();
    assert_eq!(
        escaped.stdout, "SSH_OK\n",
        "no DS= ⇒ the template only probes"
    );

    lab.faults.add(co_lab::faults::FaultRule {
        site: "ssh:version".into(),
        latency_ms: 0,
        error: Some("connection reset by peer".into()),
        times: Some(1),
    });
    let injected = restricted.run(addr, "DS=ds1;CMD=--version").await.unwrap();
    assert_eq!(
        (injected.status, injected.stderr.as_str()),
        (Some(1), "connection reset by peer\n")
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_port_and_task() {
    let data = tempfile::tempdir().unwrap();
    let lab = Lab::start(Scenario::default_embedded(), data.path())
        .await
        .unwrap();
    let mut addrs = vec![lab.vcenter_addr];
    addrs.extend(lab.hosts.iter().map(|h| h.ssh_addr));
    addrs.extend(lab.arrays.iter().map(|a| {
        a.url
            .trim_start_matches("https://")
            .parse::<std::net::SocketAddr>()
            .unwrap()
    }));
    assert_eq!(addrs.len(), 4);
    for addr in &addrs {
        tokio::net::TcpStream::connect(addr).await.unwrap();
    }
    let host = lab.host("esxi-1.lab.local").unwrap().sim.clone();
    lab.shutdown().await;
    for addr in &addrs {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{addr} still accepts connections"
        );
    }
    assert!(host.task_ids().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_key_line_runs_the_python_wrapper_by_path() {
    let data = tempfile::tempdir().unwrap();
    let lab = Lab::start(Scenario::default_embedded(), data.path())
        .await
        .unwrap();
    let host = lab.host("esxi-2.lab.local").unwrap();
    let client = SshClient::new(11);
    host.sim
        .set_authorized_keys(vec![co_esxi::restricted_key_line(
            "ds1",
            &client.public_line(),
        )]);
    let addr = host.ssh_addr;

    let missing = client
        .run(addr, &WrapperCommand::Version.to_ssh_command())
        .await
        .unwrap();
    assert_eq!(missing.status, Some(2), "the script is not uploaded yet");
    std::fs::write(
        lab.datastore_dir("ds1")
            .join("secure-vmkfstools-wrapper.py"),
        co_esxi::assets::SSH_WRAPPER,
    )
    .unwrap();

    for probe in [
        WrapperCommand::Probe.to_ssh_command(),
        WrapperCommand::Probe.to_legacy_frame(""),
    ] {
        let out = client.run(addr, &probe).await.unwrap();
        assert_eq!(out.stdout, "SSH_OK\n", "{probe}");
    }
    let version = client
        .run(addr, &WrapperCommand::Version.to_legacy_frame("ds1"))
        .await
        .unwrap();
    let reply = WrapperReply::from_xml(&version.stdout).unwrap();
    let info: co_esxi::protocol::VersionInfo =
        co_esxi::protocol::decode_message(&reply.message).unwrap();
    assert_eq!(info.version, co_esxi::assets::WRAPPER_VERSION);

    // A malformed client task id is refused in the script's own words, before anything else.
    let bad_id = client
        .run(
            addr,
            "--clone -s /vmfs/volumes/ds1/vm-1/vm-1.vmdk -t /vmfs/devices/disks/naa.1 -i NOT-A-UUID",
        )
        .await
        .unwrap();
    let reply = WrapperReply::from_xml(&bad_id.stdout).unwrap();
    assert_eq!(
        reply,
        WrapperReply::failed(1, "task id must be a lowercase UUID")
    );
    assert!(host.sim.task_ids().is_empty());

    let unknown = client
        .run(addr, "--format-disk /vmfs/devices/disks/x")
        .await
        .unwrap();
    let reply = WrapperReply::from_xml(&unknown.stdout).unwrap();
    assert_eq!((reply.status, unknown.status), (1, Some(1)));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_lab_without_shutdown_still_stops_its_servers() {
    let data = tempfile::tempdir().unwrap();
    let lab = Lab::start(Scenario::default_embedded(), data.path())
        .await
        .unwrap();
    let addrs = [lab.vcenter_addr, lab.hosts[0].ssh_addr];
    drop(lab);
    for addr in addrs {
        eventually(
            Duration::from_secs(10),
            "the port to close",
            || async move {
                tokio::net::TcpStream::connect(addr)
                    .await
                    .is_err()
                    .then_some(())
            },
        )
        .await;
    }
}
