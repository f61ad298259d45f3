//! The lab inventory (hosts, datastores, VMs, disks, arrays) from a small YAML scenario file.
//!
//! Everything has a default so a scenario only names what differs; [`Scenario::default_embedded`] is
//! the inventory `copy-offload lab serve` uses without `--scenario`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::faults::FaultRule;

const DEFAULT_SCENARIO: &str = include_str!("../scenarios/default.yaml");

/// A lab inventory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default = "default_datacenter")]
    pub datacenter: String,
    #[serde(default)]
    pub vcenter: VcenterSpec,
    /// Port every host's SSH endpoint listens on at its management IP, as ESXi does on 22. A port
    /// below 1024 needs root (or `CAP_NET_BIND_SERVICE`); when the port cannot be had the host
    /// listens on an ephemeral port instead and the running lab says why (`ssh_port_fallback` of
    /// its host endpoint). `0` always picks an ephemeral port.
    #[serde(default = "default_esxi_ssh_port")]
    pub esxi_ssh_port: u16,
    pub arrays: Vec<ArraySpec>,
    pub hosts: Vec<HostSpec>,
    pub datastores: Vec<DatastoreSpec>,
    #[serde(default)]
    pub vms: Vec<VmSpec>,
    /// Faults active from the start; more can be set at runtime through [`crate::faults::FaultPlan`].
    #[serde(default)]
    pub faults: Vec<FaultRule>,
    /// Snapshots the VMs have (`VirtualMachine.snapshot`), as a user left them before a migration.
    #[serde(default)]
    pub snapshots: Vec<SnapshotSpec>,
    /// Datastore LUNs whose VAAI clone (XCOPY) status is not `supported`, as
    /// `esxcli storage core device vaai status get` reports it on every host.
    #[serde(default)]
    pub vaai_clone: Vec<VaaiCloneSpec>,
}

/// The VAAI clone status of a VMFS datastore's LUN: `unsupported` as when the array does not
/// offer XCOPY or a claim rule disables it, `unknown` as before ESXi has tried the primitive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VaaiCloneSpec {
    pub datastore: String,
    pub status: VaaiStatusSpec,
}

/// A VAAI primitive's status as ESXi words it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum VaaiStatusSpec {
    #[default]
    Supported,
    Unsupported,
    Unknown,
}

impl VaaiStatusSpec {
    pub fn as_str(self) -> &'static str {
        match self {
            VaaiStatusSpec::Supported => "supported",
            VaaiStatusSpec::Unsupported => "unsupported",
            VaaiStatusSpec::Unknown => "unknown",
        }
    }
}

/// A snapshot of a VM: vCenter reports it in the VM's snapshot tree. The lab does not add the
/// snapshot's delta disk to the backing chain; the tree alone is what a pre-migration check reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSpec {
    pub vm: String,
    pub name: String,
}

/// vCenter login.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VcenterSpec {
    pub username: String,
    pub password: String,
    /// Privilege ids (`Host.Config.AdvancedConfig`, …) the user's role lacks on every object; by
    /// default the user holds every privilege, as an administrator does.
    #[serde(default)]
    pub missing_privileges: Vec<String>,
}

impl Default for VcenterSpec {
    fn default() -> Self {
        VcenterSpec {
            username: "administrator@vsphere.local".into(),
            password: "lab-Passw0rd".into(),
            missing_privileges: Vec::new(),
        }
    }
}

/// Storage vendor of a simulated array.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum VendorSpec {
    /// NetApp ONTAP (REST API; Trident `ontap-san` volumes). The array's `svm` applies.
    #[serde(rename = "ontap")]
    Ontap,
    /// Pure FlashArray (REST 2.x; Portworx FlashArray Direct Access volumes).
    #[serde(rename = "pureFlashArray")]
    PureFlashArray,
    /// Dell PowerStore (REST API; CSI PowerStore volumes).
    #[serde(rename = "powerstore")]
    PowerStore,
    /// IBM FlashSystem / Storage Virtualize (REST API; IBM block CSI volumes).
    #[serde(rename = "flashsystem")]
    FlashSystem,
    /// Dell PowerMax (Unisphere REST; CSI PowerMax volumes).
    #[serde(rename = "powermax")]
    PowerMax,
    /// Infinidat InfiniBox (REST API; InfiniBox CSI volumes).
    #[serde(rename = "infinibox")]
    InfiniBox,
    /// Dell PowerFlex (REST gateway; CSI PowerFlex volumes). Every host of the lab gets a
    /// PowerFlex SDC (a `scini` module with a GUID) unless the scenario gives it one, and each
    /// host's SDC is registered with the array.
    #[serde(rename = "powerflex")]
    PowerFlex,
    /// HPE Primera / 3PAR (WSAPI; HPE CSI driver volumes).
    #[serde(rename = "primera3par")]
    Primera3Par,
    /// Hitachi Vantara VSP (Configuration Manager REST API; Hitachi CSI volumes).
    #[serde(rename = "vantara")]
    Vantara,
}

/// A simulated storage array and the credentials of its REST API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArraySpec {
    pub name: String,
    pub vendor: VendorSpec,
    #[serde(default = "default_svm")]
    pub svm: String,
    #[serde(default = "default_array_user")]
    pub username: String,
    #[serde(default = "default_password")]
    pub password: String,
}

/// Kind of storage adapter a host uses to reach the SAN.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    #[default]
    Iscsi,
    Fc,
    /// Only a local (AHCI) controller: the host reaches no SAN, only NFS datastores.
    Local,
    /// The PowerFlex SDC (`scini` driver). Never a scenario's choice: a host has one next to its
    /// `adapter` when it loads the `scini` module with an `IoctlIniGuidStr` GUID
    /// ([`HostSpec::sdc_guid`]), and reaches PowerFlex volumes only through it.
    #[serde(skip)]
    Sdc,
}

/// A simulated ESXi host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub name: String,
    #[serde(default)]
    pub adapter: AdapterKind,
    /// Address reported as the management vmk IP; the host's SSH endpoint listens there. Empty (the
    /// default): the lab gives the N-th host (from 0) its own loopback address `127.0.0.<11+N>`, so
    /// a client that connects to the management IP reaches that host and no other.
    #[serde(default)]
    pub management_ip: String,
    /// Whether the `vmkfstools` esxcli namespace (the VIB) is installed.
    #[serde(default)]
    pub vib_installed: bool,
    /// authorized_keys lines for root (OpenSSH format, options allowed).
    #[serde(default)]
    pub authorized_keys: Vec<String>,
    #[serde(default = "default_esxi_version")]
    pub esxi_version: String,
    /// Version the host's vmkfstools wrapper (VIB and SSH script) reports; `None` is this build's
    /// [`co_esxi::assets::WRAPPER_VERSION`]. An older version also behaves as that wrapper did
    /// (a wrapper before 1.1.0 refuses a client-chosen clone task id).
    #[serde(default)]
    pub wrapper_version: Option<String>,
    /// Kernel modules reported by `QueryModules` (name → option string), e.g. `scini` for PowerFlex.
    #[serde(default)]
    pub kernel_modules: Vec<KernelModuleSpec>,
    /// Advanced settings that differ from ESXi's defaults (`configManager.advancedOption`), keyed as
    /// the API names them (`DataMover.HardwareAcceleratedMove`) or as esxcli does
    /// (`/DataMover/HardwareAcceleratedMove`); see [`HostSpec::advanced_option_overrides`].
    #[serde(default)]
    pub advanced_options: BTreeMap<String, AdvancedOptionValue>,
}

/// The value of an ESXi advanced setting: integer settings travel as `xsd:long`, the rest as strings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum AdvancedOptionValue {
    Long(i64),
    Str(String),
}

impl HostSpec {
    /// The scenario's advanced settings keyed as the vSphere API names them (`Group.Name`): the esxcli
    /// spelling `/Group/Name` is accepted in the scenario because that is how administrators read them.
    pub fn advanced_option_overrides(&self) -> Vec<(String, AdvancedOptionValue)> {
        self.advanced_options
            .iter()
            .map(|(key, value)| (api_option_key(key), value.clone()))
            .collect()
    }
}

/// The kernel module of the PowerFlex SDC and its option holding the SDC's GUID.
pub const SCINI_MODULE: &str = "scini";
pub const SCINI_GUID_OPTION: &str = "IoctlIniGuidStr";

impl HostSpec {
    /// The GUID of the host's PowerFlex SDC: `IoctlIniGuidStr` of its `scini` module, as ESXi
    /// reports the module's options.
    pub fn sdc_guid(&self) -> Option<&str> {
        let module = self
            .kernel_modules
            .iter()
            .find(|m| m.name == SCINI_MODULE)?;
        module.options.split_whitespace().find_map(|option| {
            let (key, value) = option.split_once('=')?;
            (key.eq_ignore_ascii_case(SCINI_GUID_OPTION) && !value.is_empty()).then_some(value)
        })
    }
}

/// `/DataMover/MaxHWTransferSize` → `DataMover.MaxHWTransferSize`; an API key is returned unchanged.
pub fn api_option_key(key: &str) -> String {
    match key.strip_prefix('/') {
        Some(path) => path.replace('/', "."),
        None => key.to_owned(),
    }
}

/// A loaded kernel module.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KernelModuleSpec {
    pub name: String,
    #[serde(default)]
    pub options: String,
}

/// What a datastore is made of, as vCenter reports its `summary.type`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DatastoreKind {
    /// VMFS on a SAN volume of the datastore's array.
    #[default]
    Vmfs,
    /// An NFS 3 export (no SAN device; `NasDatastoreInfo`).
    Nfs,
    /// An NFS 4.1 export.
    Nfs41,
}

/// A datastore whose files live in the lab's datastore directory: VMFS (the default) backed by a
/// SAN volume `ds-<name>` on `array`, or an NFS export (`kind: nfs`/`nfs41`, no array).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatastoreSpec {
    pub name: String,
    #[serde(default)]
    pub kind: DatastoreKind,
    /// The array of a VMFS datastore's volume; an NFS datastore has none.
    #[serde(default)]
    pub array: Option<String>,
    #[serde(default = "default_capacity_gib")]
    pub capacity_gib: u64,
}

/// A VM registered on a host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    pub name: String,
    pub host: String,
    #[serde(default)]
    pub disks: Vec<DiskSpec>,
}

/// A virtual disk `[<datastore>] <vm>/<vm>[_N].vmdk` filled with the lab's known pattern: a flat
/// extent on the datastore, or (with `rdm_array`) a physical-mode RDM of a new volume on that array.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    pub datastore: String,
    pub size_mib: u64,
    #[serde(default)]
    pub rdm_array: Option<String>,
    /// Present the flat disk as a vVol: its backing carries a `backingObjectId` (`rfc4122.<uuid>`),
    /// as vCenter reports a disk on a vVol datastore, while its files stay on the VMFS datastore so
    /// vmkfstools can still clone it (the lab has no vVol datastore). As the array's VASA provider
    /// would, the scenario's first array also holds the vVol's data as a volume
    /// (`vvol-<vm>-<disk index>`) recorded as backing that vVol id, for vendors whose vVol copy
    /// is done by the array.
    #[serde(default)]
    pub vvol: bool,
}

fn default_datacenter() -> String {
    "DC0".into()
}
fn default_svm() -> String {
    "svm0".into()
}
fn default_array_user() -> String {
    "admin".into()
}
fn default_password() -> String {
    "lab-Passw0rd".into()
}
fn default_esxi_ssh_port() -> u16 {
    22
}
fn default_esxi_version() -> String {
    "8.0.3".into()
}
fn default_capacity_gib() -> u64 {
    64
}

/// A scenario file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("scenario is not valid YAML for the lab schema: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("scenario is inconsistent: {0}; fix the scenario file")]
    Inconsistent(String),
}

impl Scenario {
    /// The built-in default inventory.
    pub fn default_embedded() -> Scenario {
        // The embedded file is validated by a unit test, so this cannot fail at runtime.
        Scenario::from_yaml(DEFAULT_SCENARIO)
            .unwrap_or_else(|e| unreachable!("embedded scenario invalid: {e}"))
    }

    /// Parses and validates a scenario.
    pub fn from_yaml(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = serde_yaml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    pub(crate) fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Inconsistent(m));
        let unique = |names: Vec<&str>, what: &str| -> Result<(), ScenarioError> {
            let mut seen = BTreeSet::new();
            for n in names {
                if !seen.insert(n) {
                    return Err(ScenarioError::Inconsistent(format!(
                        "{what} name {n:?} is used twice"
                    )));
                }
            }
            Ok(())
        };
        unique(
            self.arrays.iter().map(|a| a.name.as_str()).collect(),
            "array",
        )?;
        unique(self.hosts.iter().map(|h| h.name.as_str()).collect(), "host")?;
        unique(
            self.datastores.iter().map(|d| d.name.as_str()).collect(),
            "datastore",
        )?;
        unique(self.vms.iter().map(|v| v.name.as_str()).collect(), "VM")?;
        if self.hosts.is_empty() {
            return bad("at least one host is required".into());
        }
        for ds in &self.datastores {
            match (ds.kind, &ds.array) {
                (DatastoreKind::Vmfs, None) => {
                    return bad(format!(
                        "VMFS datastore {:?} needs the `array` its volume is on",
                        ds.name
                    ));
                }
                (DatastoreKind::Vmfs, Some(array))
                    if !self.arrays.iter().any(|a| &a.name == array) =>
                {
                    return bad(format!(
                        "datastore {:?} names unknown array {array:?}",
                        ds.name
                    ));
                }
                (DatastoreKind::Nfs | DatastoreKind::Nfs41, Some(array)) => {
                    return bad(format!(
                        "NFS datastore {:?} is on no array; remove `array: {array}`",
                        ds.name
                    ));
                }
                _ => {}
            }
            if ds.name.is_empty() || ds.name.contains(['/', '\\']) || ds.name.starts_with('.') {
                return bad(format!(
                    "datastore name {:?} must be a plain directory name",
                    ds.name
                ));
            }
        }
        if self.hosts.len() > 240 {
            return bad("at most 240 hosts (one loopback address each)".into());
        }
        for host in &self.hosts {
            if !host.management_ip.is_empty()
                && host.management_ip.parse::<std::net::IpAddr>().is_err()
            {
                return bad(format!(
                    "host {:?}: management_ip {:?} is not an IP address",
                    host.name, host.management_ip
                ));
            }
            for key in host.advanced_options.keys() {
                let api = api_option_key(key);
                let well_formed = api.split('.').all(|part| {
                    !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
                if !well_formed || !api.contains('.') {
                    return bad(format!(
                        "host {:?}: advanced option {key:?} is not `Group.Name` or `/Group/Name`",
                        host.name
                    ));
                }
            }
        }
        for snapshot in &self.snapshots {
            if !self.vms.iter().any(|v| v.name == snapshot.vm) {
                return bad(format!(
                    "snapshot {:?} names unknown VM {:?}",
                    snapshot.name, snapshot.vm
                ));
            }
        }
        for vaai in &self.vaai_clone {
            if !self
                .datastores
                .iter()
                .any(|d| d.name == vaai.datastore && d.array.is_some())
            {
                return bad(format!(
                    "vaai_clone names {:?}, which is not a VMFS datastore of the scenario",
                    vaai.datastore
                ));
            }
        }
        for vm in &self.vms {
            if !self.hosts.iter().any(|h| h.name == vm.host) {
                return bad(format!("VM {:?} names unknown host {:?}", vm.name, vm.host));
            }
            if vm.name.is_empty() || vm.name.contains(['/', '\\']) || vm.name.starts_with('.') {
                return bad(format!(
                    "VM name {:?} must be a plain directory name",
                    vm.name
                ));
            }
            for disk in &vm.disks {
                if !self.datastores.iter().any(|d| d.name == disk.datastore) {
                    return bad(format!(
                        "VM {:?} has a disk on unknown datastore {:?}",
                        vm.name, disk.datastore
                    ));
                }
                if let Some(array) = &disk.rdm_array
                    && !self.arrays.iter().any(|a| &a.name == array)
                {
                    return bad(format!(
                        "VM {:?} has an RDM disk on unknown array {array:?}",
                        vm.name
                    ));
                }
                if disk.vvol && disk.rdm_array.is_some() {
                    return bad(format!(
                        "VM {:?} has a disk that is both a vVol and an RDM; set `vvol` or `rdm_array`, not both",
                        vm.name
                    ));
                }
                if disk.size_mib == 0 {
                    return bad(format!("VM {:?} has a zero-sized disk", vm.name));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_matches_the_documented_shape() {
        let s = Scenario::default_embedded();
        assert_eq!(s.datacenter, "DC0");
        assert_eq!(s.hosts.len(), 2);
        assert!(s.hosts[0].vib_installed && !s.hosts[1].vib_installed);
        assert_eq!(s.arrays[0].vendor, VendorSpec::Ontap);
        assert_eq!(s.datastores[0].array.as_ref(), Some(&s.arrays[0].name));
        assert_eq!(s.datastores[0].kind, DatastoreKind::Vmfs);
        assert_eq!(s.vms[0].disks[0].size_mib, 64);
        assert!(s.hosts.iter().all(|h| h.adapter == AdapterKind::Iscsi));
    }

    #[test]
    fn minimal_scenario_fills_defaults() {
        let s = Scenario::from_yaml(
            "arrays: [{name: a, vendor: ontap}]\nhosts: [{name: h}]\ndatastores: [{name: d, array: a}]\n",
        )
        .unwrap();
        assert_eq!(s.vcenter, VcenterSpec::default());
        assert_eq!(
            s.hosts[0].management_ip, "",
            "the lab picks a loopback address per host"
        );
        assert_eq!(s.esxi_ssh_port, 22);
        assert!(s.vms.is_empty());
    }

    #[test]
    fn rejects_dangling_references_and_unknown_fields() {
        let dangling = "arrays: [{name: a, vendor: ontap}]\nhosts: [{name: h}]\ndatastores: [{name: d, array: b}]\n";
        assert!(
            matches!(Scenario::from_yaml(dangling), Err(ScenarioError::Inconsistent(m)) if m.contains("\"b\""))
        );
        let typo = "arrays: []\nhosts: [{name: h, vib: true}]\ndatastores: []\n";
        assert!(matches!(
            Scenario::from_yaml(typo),
            Err(ScenarioError::Yaml(_))
        ));
        let traversal = "arrays: [{name: a, vendor: ontap}]\nhosts: [{name: h}]\ndatastores: [{name: ../x, array: a}]\n";
        assert!(Scenario::from_yaml(traversal).is_err());
    }

    #[test]
    fn a_vaai_clone_status_names_a_vmfs_datastore() {
        let base = "arrays: [{name: a, vendor: ontap}]\nhosts: [{name: h}]\ndatastores: [{name: d, array: a}, {name: n, kind: nfs}]\n";
        let ok = Scenario::from_yaml(&format!(
            "{base}vaai_clone: [{{datastore: d, status: unsupported}}]\n"
        ))
        .unwrap();
        assert_eq!(ok.vaai_clone[0].status, VaaiStatusSpec::Unsupported);
        for wrong in ["n", "x"] {
            let text = format!("{base}vaai_clone: [{{datastore: {wrong}, status: unknown}}]\n");
            assert!(
                matches!(Scenario::from_yaml(&text), Err(ScenarioError::Inconsistent(m)) if m.contains("not a VMFS datastore")),
                "{wrong}"
            );
        }
    }

    #[test]
    fn an_nfs_datastore_has_no_array_and_a_vmfs_one_needs_one() {
        let base = "arrays: [{name: a, vendor: ontap}]\nhosts: [{name: h, adapter: local}]\n";
        let nfs = Scenario::from_yaml(&format!(
            "{base}datastores: [{{name: n, kind: nfs}}, {{name: m, kind: nfs41}}]\n"
        ))
        .unwrap();
        assert_eq!(
            nfs.datastores.iter().map(|d| d.kind).collect::<Vec<_>>(),
            [DatastoreKind::Nfs, DatastoreKind::Nfs41]
        );
        assert_eq!(nfs.hosts[0].adapter, AdapterKind::Local);
        let nfs_on_array = format!("{base}datastores: [{{name: n, kind: nfs, array: a}}]\n");
        assert!(
            matches!(Scenario::from_yaml(&nfs_on_array), Err(ScenarioError::Inconsistent(m)) if m.contains("on no array"))
        );
        let vmfs_without = format!("{base}datastores: [{{name: d}}]\n");
        assert!(
            matches!(Scenario::from_yaml(&vmfs_without), Err(ScenarioError::Inconsistent(m)) if m.contains("needs the `array`"))
        );
    }

    #[test]
    fn advanced_options_accept_api_and_esxcli_keys() {
        let base = "arrays: [{name: a, vendor: ontap}]\ndatastores: [{name: d, array: a}]\n";
        let s = Scenario::from_yaml(&format!(
            "{base}hosts: [{{name: h, advanced_options: {{/DataMover/HardwareAcceleratedMove: 0, Disk.MaxLUN: 256, Misc.HostName: h1}}}}]\n"
        ))
        .unwrap();
        assert_eq!(
            s.hosts[0].advanced_option_overrides(),
            vec![
                (
                    "DataMover.HardwareAcceleratedMove".to_owned(),
                    AdvancedOptionValue::Long(0)
                ),
                ("Disk.MaxLUN".to_owned(), AdvancedOptionValue::Long(256)),
                (
                    "Misc.HostName".to_owned(),
                    AdvancedOptionValue::Str("h1".into())
                ),
            ]
        );
        let bad_key = format!("{base}hosts: [{{name: h, advanced_options: {{NoGroup: 1}}}}]\n");
        assert!(
            matches!(Scenario::from_yaml(&bad_key), Err(ScenarioError::Inconsistent(m)) if m.contains("NoGroup"))
        );
    }

    #[test]
    fn a_disk_is_a_vvol_or_an_rdm_not_both() {
        let base = "arrays: [{name: a, vendor: ontap}]\nhosts: [{name: h}]\ndatastores: [{name: d, array: a}]\n";
        let vvol = format!(
            "{base}vms: [{{name: v, host: h, disks: [{{datastore: d, size_mib: 8, vvol: true}}]}}]\n"
        );
        let s = Scenario::from_yaml(&vvol).unwrap();
        assert!(s.vms[0].disks[0].vvol);
        assert!(!Scenario::default_embedded().vms[0].disks[0].vvol);
        let both = format!(
            "{base}vms: [{{name: v, host: h, disks: [{{datastore: d, size_mib: 8, vvol: true, rdm_array: a}}]}}]\n"
        );
        assert!(
            matches!(Scenario::from_yaml(&both), Err(ScenarioError::Inconsistent(m)) if m.contains("both a vVol and an RDM"))
        );
    }
}
