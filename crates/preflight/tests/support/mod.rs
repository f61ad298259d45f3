//! The lab run every preflight test starts from: a running lab, the `populate` flags a Secret
//! gives for its vCenter and first array, and the assertions on the report's checks.

use std::collections::BTreeMap;

use clap::Parser as _;
use co_api::DatastorePath;
use co_lab::lab::{Lab, RunningLab};
use co_lab::rig::{Rig, TargetVolume, facade};
use co_lab::scenario::{AdvancedOptionValue, Scenario};
use co_populator::{EnvironmentConfig, PopulateArgs};
use co_preflight::{Check, Outcome, PreflightOptions, Report, Selection};
use co_vsphere::TlsTrust;

pub const HOST: &str = "esxi-1.lab.local";
pub const DISK: &str = "[ds1] vm-1/vm-1.vmdk";

pub struct LabRun {
    pub lab: RunningLab,
    _dir: tempfile::TempDir,
}

impl LabRun {
    pub async fn start(scenario: Scenario) -> LabRun {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let lab = Lab::start(scenario, dir.path()).await.unwrap();
        LabRun { lab, _dir: dir }
    }

    /// The `populate` flags for the lab's vCenter and its first array, as a Secret gives them.
    pub fn flags(&self) -> Vec<String> {
        let array = &self.lab.arrays[0];
        let facade = facade(array.vendor);
        let mut flags = vec![
            format!("--storage-vendor-product={}", facade.product()),
            format!("--storage-hostname={}", array.url),
            format!("--storage-username={}", array.username),
            format!("--storage-password={}", array.password),
            format!("--vsphere-hostname={}", self.lab.vcenter_url),
            format!("--vsphere-username={}", self.lab.username),
            format!("--vsphere-password={}", self.lab.password),
        ];
        flags.extend(
            facade
                .vendor_flags(array)
                .iter()
                .map(|(flag, value)| flag.with_value(value)),
        );
        flags
    }

    pub fn environment(&self, extra: &[String]) -> EnvironmentConfig {
        let argv = std::iter::once("populate".to_owned())
            .chain(self.flags())
            .chain(extra.iter().cloned());
        PopulateArgs::try_parse_from(argv)
            .unwrap()
            .validate_environment()
            .unwrap()
    }

    pub fn options(&self) -> PreflightOptions {
        PreflightOptions {
            vsphere_trust: Some(TlsTrust::Thumbprint(self.lab.thumbprint.clone())),
            storage_ca_pem: Some(self.lab.certificate_pem.clone()),
            ssh_endpoints: self
                .lab
                .hosts
                .iter()
                .map(|h| (h.name.clone(), h.ssh_addr))
                .collect::<BTreeMap<_, _>>(),
            ssh_host_key: None,
            probe_handles_signals: false,
            probe_journal: Some(self._dir.path().join("probe-journal.json")),
        }
    }

    /// The NAA name of the LUN behind a VMFS datastore of the lab.
    pub fn datastore_lun(&self, datastore: &str) -> String {
        let array = &self.lab.arrays[0].name;
        self.lab
            .san
            .volume(array, &format!("ds-{datastore}"))
            .map(|v| v.naa)
            .unwrap_or_else(|| panic!("no volume for datastore {datastore} on {array}"))
    }

    /// A throw-away volume as the StorageClass's CSI driver makes one, attached to a worker node.
    pub fn throw_away_volume(&self) -> TargetVolume {
        Rig::new(&self.lab)
            .target_volume("probe", 64 * 1024 * 1024)
            .unwrap()
    }

    /// Preflight with `--probe`, copying the lab's 64 MiB disk onto `volume`.
    pub async fn probe(&self, volume: &TargetVolume) -> Report {
        let mut argv = vec!["preflight".to_owned()];
        argv.extend(self.flags());
        argv.push(format!("--target-volume-handle={}", volume.volume_handle));
        argv.extend(
            volume
                .attributes
                .iter()
                .map(|(k, v)| format!("--target-volume-attribute={k}={v}")),
        );
        let settings = PopulateArgs::try_parse_from(argv).unwrap();
        let copies =
            co_preflight::probe_copies(&settings, &[DatastorePath::parse(DISK).unwrap()]).unwrap();
        let report = self.preflight(&[], self.options()).await;
        report.with_probe(co_preflight::probe(copies, &self.options()).await)
    }

    pub async fn preflight(&self, extra: &[String], options: PreflightOptions) -> Report {
        let selection = Selection {
            vms: vec!["vm-1".into()],
            disks: Vec::new(),
        };
        co_preflight::run(&self.environment(extra), &selection, &options).await
    }
}

/// The default lab tuned as a well-prepared site: XCOPY segments at the recommended size.
pub fn ready_scenario() -> Scenario {
    let mut scenario = Scenario::default_embedded();
    scenario.hosts[0].advanced_options.insert(
        "/DataMover/MaxHWTransferSize".into(),
        AdvancedOptionValue::Long(16384),
    );
    scenario
}

pub fn the_one<'a>(report: &'a Report, id: &str, subject: &str) -> &'a Check {
    let found: Vec<&Check> = report
        .checks
        .iter()
        .filter(|c| c.id == id && c.subject == subject)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {id} check of {subject}: {}",
        report.to_table()
    );
    found[0]
}

pub fn assert_fails(report: &Report, id: &str, subject: &str, remedy: &str) {
    assert_check_fails(report, the_one(report, id, subject), remedy);
}

/// `check` of `report` failed with a remedy containing `remedy`, and the report is not ready.
pub fn assert_check_fails(report: &Report, check: &Check, remedy: &str) {
    assert_eq!(check.outcome, Outcome::Fail, "{}", report.to_table());
    assert!(
        check.remedy.contains(remedy),
        "remedy of {} on {} should contain {remedy:?}: {}",
        check.id,
        check.subject,
        check.remedy
    );
    assert!(!report.ready);
}
