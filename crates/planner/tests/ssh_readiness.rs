//! SSH readiness of a Provider using the SSH clone method, against the real API server peer, the
//! lab's vCenter (two ESXi hosts) and, for each host, OpenSSH's sshd on the host's management IP
//! standing in for its SSH service. One host accepts the Provider's key through the restricted
//! line, the other refuses it: `SSHNotReady` names it with the exact line to add; once the line is
//! installed and a key Secret touched, the hosts are probed again and the Provider is `SSHReady`.
//! Forklift's `sh -c` line and the seed's `.py` line are probed directly and count as ready.
//!
//! The stand-in hosts have no `/vmfs`: the `python … /vmfs/…` of a key line is mapped to python3
//! and a temporary directory, the rest of the line kept byte for byte.

use crate::support;

use std::net::{IpAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use co_esxi::assets::{SSH_WRAPPER, SSH_WRAPPER_FILE_NAME};
use co_esxi::guidance::{forklift_key_line, restricted_key_line};
use co_esxi::ssh::{HostKeyPolicy, SshPrivateKey, SshSettings};
use co_lab::lab::{Lab, RunningLab};
use co_lab::scenario::Scenario;
use co_planner::Observed;
use co_planner::ssh_readiness::{self, MemoryHostKeys, Readiness, SSH_NOT_READY, SSH_READY};
use co_testpeers::Sshd;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::Scratch;
use tempfile::TempDir;

const PYTHON: &str = "/usr/bin/python3";
const PROVIDER: &str = "vcenter-ssh";
const DATASTORE: &str = "ds1";

/// A stand-in ESXi file system: `/vmfs/volumes/<datastore>` below a temporary directory.
struct HostRoot(TempDir);

impl HostRoot {
    fn new() -> Self {
        assert!(
            Path::new(PYTHON).is_file(),
            "{PYTHON} is missing: run `scripts/peers.sh install` (apt-get install -y python3)"
        );
        let dir = tempfile::Builder::new()
            .prefix("sshready-host-")
            .tempdir()
            .expect("a temporary directory");
        std::fs::create_dir_all(dir.path().join("vmfs/volumes").join(DATASTORE))
            .expect("the datastore directory");
        Self(dir)
    }

    /// Places copy-offload's SSH wrapper at the datastore root, as the populator does.
    fn place_wrapper(&self) {
        let path = self
            .0
            .path()
            .join("vmfs/volumes")
            .join(DATASTORE)
            .join(SSH_WRAPPER_FILE_NAME);
        std::fs::write(path, SSH_WRAPPER).expect("writing the wrapper");
    }

    /// `line` with its `python [-I] /vmfs/` mapped into this directory.
    fn map(&self, line: &str) -> String {
        let root = self.0.path().display();
        let mapped = line
            .replacen("python -I /vmfs/", &format!("{PYTHON} -I {root}/vmfs/"), 1)
            .replacen("python /vmfs/", &format!("{PYTHON} {root}/vmfs/"), 1);
        assert_ne!(mapped, line, "no python command in {line}");
        format!("{mapped}\n")
    }
}

/// One sshd on each of `addresses`, all on the same port (the planner probes one port).
fn sshds_on(addresses: &[IpAddr]) -> (Vec<Sshd>, u16) {
    let mut last_error = String::new();
    for _ in 0..5 {
        let Ok(first) = TcpListener::bind((addresses[0], 0)) else {
            panic!("cannot listen on {}: the lab host's address", addresses[0]);
        };
        let port = first.local_addr().expect("a bound address").port();
        drop(first);
        let started: Result<Vec<Sshd>, _> = addresses
            .iter()
            .map(|address| Sshd::start_on("", *address, Some(port)))
            .collect();
        match started {
            Ok(sshds) => return (sshds, port),
            Err(error) => last_error = format!("{error:#}"),
        }
    }
    panic!("no port free on all of {addresses:?}: {last_error}");
}

async fn start_lab() -> (RunningLab, TempDir) {
    let mut scenario = Scenario::default_embedded();
    // The lab's own SSH endpoints move to ephemeral ports; the sshds take the hosts' addresses.
    scenario.esxi_ssh_port = 0;
    assert_eq!(scenario.hosts.len(), 2, "the default lab has two hosts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let lab = Lab::start(scenario, dir.path())
        .await
        .unwrap_or_else(|error| panic!("starting the lab: {error}"));
    (lab, dir)
}

async fn create_provider(scratch: &Scratch, lab: &RunningLab) {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": "vcenter-credentials", "namespace": scratch.namespace },
        "stringData": {
            "user": lab.username,
            "password": lab.password,
            "url": lab.vcenter_url,
            "insecureSkipVerify": "true",
        },
    }))
    .expect("a valid Secret");
    Api::<Secret>::namespaced(scratch.client.clone(), &scratch.namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating the provider Secret");
    scratch
        .create_provider(
            PROVIDER,
            json!({
                "type": "vsphere",
                "url": lab.vcenter_url,
                "secret": { "name": "vcenter-credentials", "namespace": scratch.namespace },
                "settings": { "esxiCloneMethod": "ssh" },
            }),
        )
        .await;
}

/// The Provider's public key without its comment, as the key lines carry it.
async fn public_key(scratch: &Scratch) -> String {
    let secret = Api::<Secret>::namespaced(scratch.client.clone(), &scratch.namespace)
        .get(&format!("offload-ssh-keys-{PROVIDER}-public"))
        .await
        .expect("the public key Secret");
    let text = secret
        .data
        .and_then(|data| data.get("public-key").cloned())
        .map(|value| String::from_utf8_lossy(&value.0).into_owned())
        .expect("a public-key field");
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Changes the public key Secret's metadata: what an administrator does to have the hosts
/// probed again at once.
async fn touch_key_secret(scratch: &Scratch, round: u32) {
    Api::<Secret>::namespaced(scratch.client.clone(), &scratch.namespace)
        .patch(
            &format!("offload-ssh-keys-{PROVIDER}-public"),
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": { "annotations": { "example.com/probe-again": round.to_string() } }
            })),
        )
        .await
        .expect("annotating the public key Secret");
}

fn probed(wanted: impl Fn(&Readiness) -> bool) -> impl Fn(&Observed) -> bool {
    move |observed| match observed {
        Observed::SshProbed {
            name, readiness, ..
        } => name == PROVIDER && wanted(readiness),
        _ => false,
    }
}

/// The Provider's condition of `type_`, if any.
async fn condition(scratch: &Scratch, type_: &str) -> Option<Value> {
    let provider = scratch
        .forklift("Provider")
        .get(PROVIDER)
        .await
        .expect("reading the Provider");
    provider.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .cloned()
}

fn items(condition: &Value) -> Vec<String> {
    condition["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_host_refusing_the_key_is_named_with_its_line_until_it_is_installed() {
    let mut scratch = Scratch::new("planner-sshready").await;
    let (lab, _lab_dir) = start_lab().await;
    let addresses: Vec<IpAddr> = lab.hosts.iter().map(|h| h.ssh_addr.ip()).collect();
    assert_ne!(
        addresses[0], addresses[1],
        "the lab gives each host its own loopback address"
    );
    let (sshds, port) = sshds_on(&addresses);
    let roots = [HostRoot::new(), HostRoot::new()];
    // The first host copied before: its wrapper is on the datastore. The second never did.
    roots[0].place_wrapper();
    let (ready_host, refusing_host) = (&lab.hosts[0], &lab.hosts[1]);
    let item = |host: &co_lab::lab::HostEndpoint| {
        format!("{}|{}|{}", host.moid, host.name, host.ssh_addr.ip())
    };

    scratch.set_flag_on_forklift_controller("true").await;
    create_provider(&scratch, &lab).await;
    scratch.esxi_ssh_port = port;
    scratch.start_planner().await;

    // Keys are generated, and no host knows them yet.
    scratch
        .observe(
            "the first probe, refused by both hosts",
            probed(|r| r.failing_hosts().len() == 2),
        )
        .await;
    let public = public_key(&scratch).await;
    let line = restricted_key_line(DATASTORE, &public);

    sshds[0]
        .replace_authorized_keys(&roots[0].map(&line))
        .expect("installing the line on the first host");
    touch_key_secret(&scratch, 1).await;
    scratch
        .observe(
            "a probe finding the first host ready",
            probed(|r| r.ready_hosts() == [ready_host.name.as_str()]),
        )
        .await;
    let not_ready = condition(&scratch, SSH_NOT_READY)
        .await
        .expect("an SSHNotReady condition");
    assert_eq!(not_ready["category"], "Warn");
    assert_eq!(not_ready["reason"], "SSHConnectivityFailed");
    assert_eq!(items(&not_ready), [item(refusing_host)]);
    let message = not_ready["message"].as_str().unwrap_or_default();
    for needle in [
        format!("{} ({})", refusing_host.name, refusing_host.ssh_addr.ip()),
        "does not accept the provider's key".to_owned(),
        line.clone(),
        "/etc/ssh/keys-root/authorized_keys".to_owned(),
        "vim-cmd hostsvc/enable_ssh".to_owned(),
    ] {
        assert!(message.contains(&needle), "{needle:?} not in:\n{message}");
    }
    assert!(
        !message.contains(&format!("{} (", ready_host.name)),
        "the ready host is not listed as failing:\n{message}"
    );
    assert!(!message.contains("PRIVATE KEY"), "{message}");
    let ready = condition(&scratch, SSH_READY)
        .await
        .expect("an SSHReady condition");
    assert_eq!(ready["category"], "Advisory");
    assert_eq!(items(&ready), [item(ready_host)]);

    // The administrator installs the line the condition gives (the populator has not placed the
    // wrapper there yet) and touches the key Secret.
    sshds[1]
        .replace_authorized_keys(&roots[1].map(&line))
        .expect("installing the line on the second host");
    touch_key_secret(&scratch, 2).await;
    scratch
        .observe(
            "a probe finding both hosts ready",
            probed(|r| r.failing_hosts().is_empty() && r.ready_hosts().len() == 2),
        )
        .await;
    assert_eq!(condition(&scratch, SSH_NOT_READY).await, None);
    let ready = condition(&scratch, SSH_READY)
        .await
        .expect("an SSHReady condition");
    assert_eq!(items(&ready), [item(ready_host), item(refusing_host)]);

    scratch.finish().await;
    lab.shutdown().await;
}

#[tokio::test]
async fn forklifts_and_the_seeds_key_lines_are_ready_an_unrestricted_key_is_not() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let keys = tokio::task::spawn_blocking(|| co_planner::ssh_keys::generate("probe-test"))
        .await
        .expect("the generator did not panic")
        .expect("a key pair");
    let private = SshPrivateKey::from_pem(keys.private_pem.expose()).expect("a usable key");
    let sshd = Sshd::start("").expect("sshd");
    let mut settings = SshSettings::new(
        private,
        HostKeyPolicy::Store(Arc::new(MemoryHostKeys::default())),
    );
    settings.port = sshd.port;
    settings.timeout = Duration::from_secs(20);
    let root = HostRoot::new();
    root.place_wrapper();
    let public = keys.public_openssh;
    let seed_line = format!(
        "command=\"python /vmfs/volumes/{DATASTORE}/{SSH_WRAPPER_FILE_NAME}\",no-port-forwarding,\
         no-agent-forwarding,no-X11-forwarding {public}"
    );

    for (what, authorized_keys) in [
        (
            "Forklift's sh -c line",
            format!("{}\n", forklift_key_line(&public)),
        ),
        ("the seed's .py line", root.map(&seed_line)),
        (
            "copy-offload's line",
            root.map(&restricted_key_line(DATASTORE, &public)),
        ),
    ] {
        sshd.replace_authorized_keys(&authorized_keys)
            .expect("writing authorized_keys");
        assert_eq!(
            ssh_readiness::probe_host("127.0.0.1", &settings).await,
            Ok(()),
            "{what}: {authorized_keys}"
        );
    }

    for (what, authorized_keys) in [
        ("a key without a forced command", format!("{public}\n")),
        (
            "another forced command",
            format!("command=\"echo hello\",no-pty {public}\n"),
        ),
    ] {
        sshd.replace_authorized_keys(&authorized_keys)
            .expect("writing authorized_keys");
        let failure = ssh_readiness::probe_host("127.0.0.1", &settings)
            .await
            .expect_err(what);
        assert!(
            failure.contains("not through a restricted copy-offload or Forklift key line"),
            "{what}: {failure}"
        );
    }
}
