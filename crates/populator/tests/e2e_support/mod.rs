//! The copy engine's end-to-end tests over the lab rig (`co_lab::rig`, shared with `lab demo`): a
//! running lab (vCenter/ESXi simulators with a real byte-copying vmkfstools, the array's REST
//! facade over one SAN), a CSI-style target volume attached to a worker node as the prime PVC's
//! would be, and the checks that the array, the hosts and the datastore are left exactly as found.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use clap::Parser as _;
use co_esxi::PollSchedule;
use co_lab::lab::{Lab, RunningLab};
use co_lab::rig::{Rig, TargetVolume};
use co_lab::scenario::{Scenario, VendorSpec};
use co_populator::DiscoverySchedule;
use co_populator::RunOptions;
use co_populator::Timing;
use co_populator::{PopulateArgs, PopulateConfig};
use co_vsphere::TlsTrust;

pub const ARRAY: &str = "ontap1";
pub const SOURCE_VMDK: &str = "[ds1] vm-1/vm-1.vmdk";
pub const SOURCE_FLAT: &str = "vm-1/vm-1-flat.vmdk";
pub const MIB: u64 = 1024 * 1024;

/// Every vendor the lab serves and the populator has a plugin for: the end-to-end tests that are
/// parametric in the vendor run each of them.
pub const VENDORS: [VendorSpec; 9] = [
    VendorSpec::Ontap,
    VendorSpec::PureFlashArray,
    VendorSpec::PowerStore,
    VendorSpec::FlashSystem,
    VendorSpec::PowerMax,
    VendorSpec::InfiniBox,
    VendorSpec::Primera3Par,
    VendorSpec::Vantara,
    VendorSpec::PowerFlex,
];

/// The embedded scenario with its array served as `vendor`.
pub fn scenario_for(vendor: VendorSpec) -> Scenario {
    let mut scenario = Scenario::default_embedded();
    scenario.arrays[0].vendor = vendor;
    scenario
}

pub struct LabRig {
    pub lab: RunningLab,
    pub dir: tempfile::TempDir,
    /// The target volumes made so far, by name.
    targets: Mutex<HashMap<String, TargetVolume>>,
}

impl LabRig {
    pub async fn start() -> LabRig {
        Self::start_with(Scenario::default_embedded()).await
    }

    pub async fn start_with(scenario: Scenario) -> LabRig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let lab = Lab::start(scenario, dir.path()).await.unwrap();
        LabRig {
            lab,
            dir,
            targets: Mutex::default(),
        }
    }

    pub fn rig(&self) -> Rig<'_> {
        Rig::new(&self.lab)
    }

    /// A CSI-style volume named `name`, attached to a worker node as the prime PVC's volume is
    /// while the populator runs.
    pub fn target_volume(&self, name: &str, size_bytes: u64) {
        let target = self.rig().target_volume(name, size_bytes).unwrap();
        self.targets.lock().unwrap().insert(name.to_owned(), target);
    }

    pub fn target(&self, name: &str) -> TargetVolume {
        self.targets.lock().unwrap()[name].clone()
    }

    /// Populate arguments for copying the lab VM's disk into target `name` (VIB method, no
    /// Kubernetes), parsed from the command line the rig builds.
    pub fn args(&self, name: &str) -> PopulateArgs {
        self.args_with(name, |_| {})
    }

    /// [`LabRig::args`] after `change` edited the rig's flags (a wrong password, another address).
    pub fn args_with(
        &self,
        name: &str,
        change: impl FnOnce(&mut Vec<(co_api::contract::flags::Flag, String)>),
    ) -> PopulateArgs {
        let mut flags = self.rig().populate_flags(SOURCE_VMDK, &self.target(name));
        change(&mut flags);
        let args = flags.iter().map(|(flag, value)| flag.with_value(value));
        PopulateArgs::try_parse_from(std::iter::once("populate".to_owned()).chain(args)).unwrap()
    }

    pub fn config(&self, args: &PopulateArgs) -> PopulateConfig {
        args.validate().unwrap()
    }

    /// Options pinning the lab's certificate, with a journal file in the rig's directory and
    /// cadences fit for a lab whose operations answer in milliseconds.
    pub fn options(&self, journal: &str) -> RunOptions {
        RunOptions {
            handle_signals: false,
            vsphere_trust: Some(TlsTrust::Thumbprint(self.lab.thumbprint.clone())),
            storage_ca_pem: Some(self.lab.certificate_pem.clone()),
            journal_path: Some(self.journal_path(journal)),
            // Each rig's hosts have their own keys at the same addresses: a machine-wide file
            // would make the second rig's first contact a "changed key".
            local_known_hosts: Some(self.dir.path().join("known_hosts")),
            timing: Timing {
                discovery: DiscoverySchedule {
                    timeout: Duration::from_secs(20),
                    first_pause: Duration::from_millis(20),
                    max_pause: Duration::from_millis(500),
                },
                poll: PollSchedule {
                    first: Duration::from_millis(20),
                    max: Duration::from_millis(200),
                },
                cleanup_budget: Duration::from_secs(20),
            },
            final_scrape_wait: Duration::ZERO,
            ..RunOptions::default()
        }
    }

    pub fn journal_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.journal.json"))
    }

    pub fn source_bytes(&self) -> Vec<u8> {
        std::fs::read(self.lab.datastore_dir("ds1").join(SOURCE_FLAT)).unwrap()
    }

    pub fn target_bytes(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.target(name).backing_path).unwrap_or_default()
    }

    /// The target holds the source disk byte for byte.
    pub fn assert_copied(&self, flexvol: &str) {
        self.assert_copied_from(&self.source_bytes(), flexvol);
    }

    /// The target starts with `source`.
    pub fn assert_copied_from(&self, source: &[u8], flexvol: &str) {
        let target = self.target_bytes(flexvol);
        assert!(target.len() >= source.len(), "target shorter than source");
        assert!(
            target[..source.len()] == *source,
            "target bytes differ from the source disk"
        );
    }

    /// The target's first MiB is still untouched (all zero).
    pub fn assert_untouched(&self, flexvol: &str) {
        let target = self.target_bytes(flexvol);
        assert!(
            target.iter().take(MIB as usize).all(|b| *b == 0),
            "the target was written to"
        );
    }

    /// Nothing the copy created is left: no copy-offload group or mapping on the array, the
    /// volume mapped to the worker only, no device, task or RDM descriptor on any host.
    pub fn assert_clean(&self, name: &str) {
        let target = self.target(name);
        let left = self.rig().leftovers(&[&target]);
        assert!(left.is_empty(), "left behind: {left:?}");
        assert_eq!(
            self.vm_files("vm-1"),
            ["vm-1-flat.vmdk", "vm-1.vmdk"],
            "files in the VM folder"
        );
    }

    /// The files in a VM's folder on `ds1`, sorted.
    pub fn vm_files(&self, vm: &str) -> Vec<String> {
        let mut files: Vec<String> = std::fs::read_dir(self.lab.datastore_dir("ds1").join(vm))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        files
    }
}

/// A client key pair made by `ssh-keygen`, as the provider controller generates one.
pub struct ClientKey {
    pub private_pem: String,
    pub public_openssh: String,
}

impl ClientKey {
    pub fn generate() -> ClientKey {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ed25519");
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-t", "ed25519", "-f"])
            .arg(&path)
            .status()
            .expect("ssh-keygen is missing: run `scripts/peers.sh install` (apt-get install -y openssh-client)");
        assert!(status.success());
        ClientKey {
            private_pem: std::fs::read_to_string(&path).unwrap(),
            public_openssh: std::fs::read_to_string(path.with_extension("pub"))
                .unwrap()
                .trim()
                .to_owned(),
        }
    }
}

impl LabRig {
    /// Switches `args`/`options` to the SSH method on the VM's host, with the restricted key line
    /// installed in that host's authorized_keys and its host key pinned.
    pub fn use_ssh(&self, args: &mut PopulateArgs, options: &mut RunOptions) {
        self.use_ssh_with_line(args, options, |key| {
            co_esxi::restricted_key_line("ds1", key)
        });
    }

    /// Like [`Self::use_ssh`], with the host's key line for the key made by `key_line` (for
    /// example Forklift's, [`co_esxi::forklift_key_line`]).
    pub fn use_ssh_with_line(
        &self,
        args: &mut PopulateArgs,
        options: &mut RunOptions,
        key_line: impl Fn(&str) -> String,
    ) {
        use base64::Engine as _;
        let key = ClientKey::generate();
        let host = &self.lab.hosts[0];
        host.sim
            .set_authorized_keys(vec![key_line(&key.public_openssh)]);
        let b64 = base64::engine::general_purpose::STANDARD;
        args.esxi_clone_method = Some("ssh".into());
        args.ssh_private_key = Some(b64.encode(&key.private_pem));
        args.ssh_public_key = Some(b64.encode(&key.public_openssh));
        options.ssh_address = Some(host.ssh_addr.ip().to_string());
        options.ssh_port = Some(host.ssh_addr.port());
        options.ssh_host_key = Some(co_esxi::ssh::HostKeyPolicy::Pinned(
            russh::keys::PublicKey::from_openssh(&host.ssh_host_key).unwrap(),
        ));
    }
}

/// Binds the metrics endpoint of an in-process run on loopback: points `args` at it and hands
/// the bound listener to `options`; returns its port.
pub fn metrics_listener(args: &mut co_populator::PopulateArgs, options: &mut RunOptions) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    args.http_endpoint = Some(format!("127.0.0.1:{port}"));
    options.metrics_listener = Some(std::sync::Arc::new(listener));
    port
}

/// Scrapes the populator's metrics endpoint on `port`, as the controller does, until the
/// completion metric is up (within `within`); returns that scrape's body.
pub async fn scrape_until_complete(port: u16, within: Duration) -> String {
    let client = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no completion metric within {within:?}"
        );
        if let Ok(response) = client
            .get(format!("https://127.0.0.1:{port}/metrics"))
            .send()
            .await
            && let Ok(body) = response.text().await
            && body.contains(co_populator::metrics::names::COPY_DURATION_SECONDS)
        {
            return body;
        }
        // The tests' polling cadence only (Forklift scrapes every 5 s): it bounds how soon the
        // completion is seen, not whether.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
