//! Where the lab's ESXi hosts answer SSH: each on its own loopback address (the management IP vCenter
//! reports for it) and on ESXi's port 22 when the lab may bind it, else on an ephemeral port with the
//! reason recorded — so a client that only knows the management IP reaches the right host.

use crate::support;

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;

use co_lab::lab::{Lab, RunningLab};
use co_lab::scenario::Scenario;
use support::{SshClient, restricted_line};

/// Whether this process may bind ports below 1024: files it creates are owned by root.
fn running_as_root() -> bool {
    let probe = tempfile::NamedTempFile::new().unwrap();
    probe.as_file().metadata().unwrap().uid() == 0
}

/// The forced command's probe over SSH at `addr` answers `SSH_OK` (the host is reachable there).
async fn probe(lab: &RunningLab, host: &str, addr: SocketAddr) {
    let client = SshClient::new(21);
    lab.host(host)
        .unwrap()
        .sim
        .set_authorized_keys(vec![restricted_line(&client.public_line())]);
    let reply = client.run(addr, "DS=;CMD=--probe").await.unwrap();
    assert_eq!(reply.stdout, "SSH_OK\n", "{host} at {addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_host_listens_on_its_own_loopback_address_at_the_configured_port() {
    let first = IpAddr::from([127, 0, 0, 11]);
    let second = IpAddr::from([127, 0, 0, 12]);
    // The configured port is taken on the first host's address only: that host falls back to an
    // ephemeral port and says why, the second gets the port.
    let taken = std::net::TcpListener::bind((first, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut scenario = Scenario::default_embedded();
    scenario.esxi_ssh_port = port;
    let data = tempfile::tempdir().unwrap();
    let lab = Lab::start(scenario, data.path()).await.unwrap();

    let (one, two) = (&lab.hosts[0], &lab.hosts[1]);
    assert_eq!(one.sim.spec.management_ip, first.to_string());
    assert_eq!(two.sim.spec.management_ip, second.to_string());
    assert_eq!(one.ssh_addr.ip(), first);
    assert_ne!(one.ssh_addr.port(), port);
    let reason = one.ssh_port_fallback.as_deref().unwrap_or_default();
    assert!(
        reason.contains(&format!("port {port} on 127.0.0.11 is not available")),
        "{reason}"
    );
    assert!(
        lab.summary()
            .contains(&format!("ssh on an ephemeral port: {reason}")),
        "the lab's summary says why"
    );
    assert_eq!(two.ssh_addr, SocketAddr::new(second, port));
    assert_eq!(two.ssh_port_fallback, None);
    probe(&lab, &one.name, one.ssh_addr).await;
    probe(&lab, &two.name, two.ssh_addr).await;
    drop(taken);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_22_is_taken_as_root_and_refused_cleanly_otherwise() {
    // Addresses of its own, so labs of other tests (on 127.0.0.11 and .12) cannot hold port 22 here.
    let mut scenario = Scenario::default_embedded();
    scenario.hosts[0].management_ip = "127.0.0.201".into();
    scenario.hosts[1].management_ip = "127.0.0.202".into();
    assert_eq!(scenario.esxi_ssh_port, 22, "ESXi's port is the default");
    let data = tempfile::tempdir().unwrap();
    let lab = Lab::start(scenario, data.path()).await.unwrap();
    for host in &lab.hosts {
        assert_eq!(host.ssh_addr.ip().to_string(), host.sim.spec.management_ip);
        if running_as_root() {
            // Another lab on this machine (a concurrent test run) may hold the address's port 22:
            // then the host says so instead.
            match &host.ssh_port_fallback {
                None => assert_eq!(host.ssh_addr.port(), 22, "{}", host.name),
                Some(reason) => assert!(reason.contains("in use"), "{reason}"),
            }
        } else {
            assert_ne!(host.ssh_addr.port(), 22);
            let reason = host.ssh_port_fallback.as_deref().unwrap_or_default();
            assert!(reason.contains("needs root"), "{reason}");
        }
        probe(&lab, &host.name, host.ssh_addr).await;
    }
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_0_asks_for_an_ephemeral_port() {
    let mut scenario = Scenario::default_embedded();
    scenario.esxi_ssh_port = 0;
    let data = tempfile::tempdir().unwrap();
    let lab = Lab::start(scenario, data.path()).await.unwrap();
    for host in &lab.hosts {
        assert_ne!(host.ssh_addr.port(), 0);
        assert_eq!(host.ssh_port_fallback, None);
    }
    lab.shutdown().await;
}
