//! The lab rig for the copy engine's end-to-end tests: a running lab (vCenter/ESXi simulators
//! with a real byte-copying vmkfstools, the ONTAP REST simulator over one SAN), a Trident-style
//! target volume attached to a worker node as the prime PVC would be, and the checks that the
//! array, the hosts and the datastore are left exactly as found.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use co_esxi::PollSchedule;
use co_lab::arrays::ontap::{create_trident_volume, trident_lun_path};
use co_lab::lab::{Lab, RunningLab};
use co_lab::san::GroupSpec;
use co_lab::scenario::Scenario;
use co_populator::args::{PopulateArgs, PopulateConfig};
use co_populator::copy::Timing;
use co_populator::discover::DiscoverySchedule;
use co_populator::run::RunOptions;
use co_vsphere::TlsTrust;

pub const ARRAY: &str = "ontap1";
pub const WORKER_GROUP: &str = "ocp-worker-1";
pub const WORKER_IQN: &str = "iqn.2020-01.io.openshift:worker-1";
pub const SOURCE_VMDK: &str = "[ds1] vm-1/vm-1.vmdk";
pub const SOURCE_FLAT: &str = "vm-1/vm-1-flat.vmdk";
pub const MIB: u64 = 1024 * 1024;

pub struct LabRig {
    pub lab: RunningLab,
    pub dir: tempfile::TempDir,
}

impl LabRig {
    pub async fn start() -> LabRig {
        Self::start_with(Scenario::default_embedded()).await
    }

    pub async fn start_with(scenario: Scenario) -> LabRig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let lab = Lab::start(scenario, dir.path()).await.unwrap();
        LabRig { lab, dir }
    }

    /// A Trident `ontap-san` volume (`internalName` = `flexvol`) mapped to a worker node, as the
    /// prime PVC's volume is while the populator runs.
    pub fn target_volume(&self, flexvol: &str, size_bytes: u64) {
        create_trident_volume(&self.lab.san, ARRAY, flexvol, size_bytes).unwrap();
        if self.lab.san.group(ARRAY, WORKER_GROUP).is_none() {
            self.lab
                .san
                .create_group(
                    ARRAY,
                    GroupSpec {
                        name: WORKER_GROUP.into(),
                        initiators: vec![WORKER_IQN.into()],
                        protocol: Some("iscsi".into()),
                        os_type: Some("linux".into()),
                    },
                )
                .unwrap();
        }
        self.lab
            .san
            .map(ARRAY, &trident_lun_path(flexvol), WORKER_GROUP)
            .unwrap();
    }

    /// Populate arguments for copying the lab VM's disk into `flexvol` (VIB method, no Kubernetes).
    pub fn args(&self, flexvol: &str) -> PopulateArgs {
        let array = &self.lab.arrays[0];
        PopulateArgs {
            source_vmdk: Some(SOURCE_VMDK.into()),
            target_volume_handle: Some(format!("pvc-{flexvol}")),
            target_volume_attribute: vec![format!("internalName={flexvol}")],
            owner_uid: Some(format!("uid-{flexvol}")),
            storage_vendor_product: Some("ontap".into()),
            storage_hostname: Some(array.url.clone()),
            storage_username: Some(array.username.clone()),
            storage_password: Some(array.password.clone()),
            vsphere_hostname: Some(self.lab.vcenter_url.clone()),
            vsphere_username: Some(self.lab.username.clone()),
            vsphere_password: Some(self.lab.password.clone()),
            esxi_clone_method: Some("vib".into()),
            http_endpoint: Some("127.0.0.1:0".into()),
            ..PopulateArgs::default()
        }
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

    pub fn target_bytes(&self, flexvol: &str) -> Vec<u8> {
        let volume = self
            .lab
            .san
            .volume(ARRAY, &trident_lun_path(flexvol))
            .unwrap();
        std::fs::read(volume.backing_path).unwrap_or_default()
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
    pub fn assert_clean(&self, flexvol: &str) {
        let lun = trident_lun_path(flexvol);
        let groups: Vec<String> = self
            .lab
            .san
            .groups(ARRAY)
            .into_iter()
            .map(|g| g.name)
            .filter(|n| n.starts_with("xcopy-"))
            .collect();
        assert!(groups.is_empty(), "initiator groups left: {groups:?}");
        let mapped: Vec<String> = self
            .lab
            .san
            .mappings(ARRAY)
            .into_iter()
            .filter(|m| m.volume == lun)
            .map(|m| m.group)
            .collect();
        assert_eq!(mapped, [WORKER_GROUP], "mappings of the target volume");
        let naa = self.lab.san.volume(ARRAY, &lun).unwrap().naa;
        for host in &self.lab.hosts {
            assert!(
                host.sim.device(&naa).is_none(),
                "device {naa} left on {}",
                host.name
            );
            assert!(
                host.sim.task_ids().is_empty(),
                "clone tasks left on {}: {:?}",
                host.name,
                host.sim.task_ids()
            );
        }
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
        use base64::Engine as _;
        let key = ClientKey::generate();
        let host = &self.lab.hosts[0];
        host.sim
            .set_authorized_keys(vec![co_esxi::restricted_key_line(
                "ds1",
                &key.public_openssh,
            )]);
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
