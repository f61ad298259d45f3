//! The lab rig: what a copy into one of the lab's arrays needs, shared by `copy-offload lab demo`
//! and the end-to-end tests so both exercise the same setup. Parametric in the array vendor
//! through [`ArrayFacade`]: a target volume as the vendor's CSI driver makes it for a PVC,
//! attached to a worker node (as the prime PVC's volume is while the populator runs), the
//! `populate` arguments that copy a disk into it (the pod contract's `--name=value` flags), and
//! the list of what a copy left behind.

use std::path::PathBuf;

use co_api::contract::flags::{self, Flag};
use co_api::contract::names::is_array_object_ours;

use crate::lab::{ArrayEndpoint, RunningLab};
use crate::san::{GroupSpec, San, SanError};
use crate::scenario::VendorSpec;

/// The worker node the target volume is attached to before the copy (the prime PVC's node).
pub const WORKER_GROUP: &str = "ocp-worker-1";
/// That node's iSCSI initiator.
pub const WORKER_IQN: &str = "iqn.2020-01.io.openshift:worker-1";

/// A target volume as a CSI driver created it for a PVC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetVolume {
    /// The name the rig was asked for (the PVC's volume).
    pub pvc: String,
    /// The array it lives on.
    pub array: String,
    /// The SAN model's name for it (ONTAP: the LUN path).
    pub name: String,
    /// The PV's `csi.volumeHandle`.
    pub volume_handle: String,
    /// The PV's `csi.volumeAttributes`.
    pub attributes: Vec<(String, String)>,
    /// The device name ESXi shows for it.
    pub naa: String,
    /// The file holding its bytes.
    pub backing_path: PathBuf,
    pub size_bytes: u64,
}

impl TargetVolume {
    /// The target `volume` of the PVC whose volume is `pvc`, as its PV names it.
    pub fn new(
        pvc: &str,
        volume: crate::san::Volume,
        volume_handle: String,
        attributes: Vec<(String, String)>,
    ) -> TargetVolume {
        TargetVolume {
            pvc: pvc.to_owned(),
            array: volume.array,
            name: volume.name,
            volume_handle,
            attributes,
            naa: volume.naa,
            backing_path: volume.backing_path,
            size_bytes: volume.size_bytes,
        }
    }
}

/// What a vendor adds to the rig: how its CSI driver makes volumes and which of its own keys
/// `populate` needs. One implementation per array facade, next to it in `arrays/`.
pub trait ArrayFacade: Send + Sync {
    /// `storageVendorProduct` of the vendor.
    fn product(&self) -> &'static str;

    /// Creates the volume the vendor's CSI driver creates for the PVC whose volume is `name`.
    fn create_csi_volume(
        &self,
        san: &San,
        array: &ArrayEndpoint,
        name: &str,
        size_bytes: u64,
    ) -> Result<TargetVolume, SanError>;

    /// The vendor's own `populate` flags for `array` (e.g. the SVM).
    fn vendor_flags(&self, array: &ArrayEndpoint) -> Vec<(Flag, String)>;

    /// Whether the API works by sessions (a login whose token can expire mid-run, and a client
    /// that logs in again once when it does) rather than credentials on every request.
    fn has_sessions(&self) -> bool {
        true
    }
}

/// The facade of `vendor` (the vendor list of the rig: one line per vendor).
pub fn facade(vendor: VendorSpec) -> &'static dyn ArrayFacade {
    match vendor {
        VendorSpec::Ontap => &crate::arrays::ontap::OntapFacade,
        VendorSpec::PureFlashArray => &crate::arrays::pure::PureFacade,
        VendorSpec::PowerStore => &crate::arrays::powerstore::PowerStoreFacade,
        VendorSpec::FlashSystem => &crate::arrays::flashsystem::FlashSystemFacade,
        VendorSpec::PowerMax => &crate::arrays::powermax::PowerMaxFacade,
        VendorSpec::InfiniBox => &crate::arrays::infinibox::InfiniBoxFacade,
        VendorSpec::PowerFlex => &crate::arrays::powerflex::PowerFlexFacade,
        VendorSpec::Primera3Par => &crate::arrays::primera3par::Primera3ParFacade,
        VendorSpec::Vantara => &crate::arrays::vantara::VantaraFacade,
    }
}

/// A running lab seen through the rig.
pub struct Rig<'a> {
    pub lab: &'a RunningLab,
    /// The array copies go to.
    pub array: &'a ArrayEndpoint,
}

impl<'a> Rig<'a> {
    /// The rig over `lab`, copying into its first array.
    pub fn new(lab: &'a RunningLab) -> Rig<'a> {
        Rig {
            lab,
            array: &lab.arrays[0],
        }
    }

    pub fn facade(&self) -> &'static dyn ArrayFacade {
        facade(self.array.vendor)
    }

    /// A volume for a PVC, attached to the worker node as the prime PVC's volume is.
    pub fn target_volume(&self, name: &str, size_bytes: u64) -> Result<TargetVolume, SanError> {
        let san = &self.lab.san;
        let target = self
            .facade()
            .create_csi_volume(san, self.array, name, size_bytes)?;
        if san.group(&self.array.name, WORKER_GROUP).is_none() {
            san.create_group(
                &self.array.name,
                GroupSpec {
                    name: WORKER_GROUP.into(),
                    initiators: vec![WORKER_IQN.into()],
                    protocol: Some("iscsi".into()),
                    os_type: Some("linux".into()),
                },
            )?;
        }
        san.map(&self.array.name, &target.name, WORKER_GROUP)?;
        Ok(target)
    }

    /// The `populate` flags that copy `vmdk` into `target` without Kubernetes (the default clone
    /// method, VIB; metrics on an ephemeral loopback port), as a user would type them.
    pub fn populate_flags(&self, vmdk: &str, target: &TargetVolume) -> Vec<(Flag, String)> {
        let mut list = vec![
            (flags::SOURCE_VMDK, vmdk.to_owned()),
            (flags::TARGET_VOLUME_HANDLE, target.volume_handle.clone()),
        ];
        list.extend(
            target
                .attributes
                .iter()
                .map(|(k, v)| (flags::TARGET_VOLUME_ATTRIBUTE, format!("{k}={v}"))),
        );
        list.extend([
            (flags::OWNER_UID, format!("uid-{}", target.pvc)),
            (
                flags::STORAGE_VENDOR_PRODUCT,
                self.facade().product().to_owned(),
            ),
            (flags::STORAGE_HOSTNAME, self.array.url.clone()),
            (flags::STORAGE_USERNAME, self.array.username.clone()),
            (flags::STORAGE_PASSWORD, self.array.password.clone()),
            (flags::VSPHERE_HOSTNAME, self.lab.vcenter_url.clone()),
            (flags::VSPHERE_USERNAME, self.lab.username.clone()),
            (flags::VSPHERE_PASSWORD, self.lab.password.clone()),
            (flags::HTTP_ENDPOINT, "127.0.0.1:0".to_owned()),
        ]);
        list.extend(self.facade().vendor_flags(self.array));
        list
    }

    /// [`Rig::populate_flags`] as command-line arguments (`--name=value`).
    pub fn populate_args(&self, vmdk: &str, target: &TargetVolume) -> Vec<String> {
        self.populate_flags(vmdk, target)
            .iter()
            .map(|(flag, value)| flag.with_value(value))
            .collect()
    }

    /// What a copy into `targets` left behind: initiator groups of copy-offload's, mappings of
    /// the targets other than the worker's (or a lost worker mapping), their devices, any clone
    /// task on a host, and what the array's facade holds of a copy beyond the SAN model (clone
    /// pairs, FlashCopy maps, array-side copies, vendor-private groups). Empty when cleanup was
    /// complete.
    pub fn leftovers(&self, targets: &[&TargetVolume]) -> Vec<String> {
        let san = &self.lab.san;
        let array = &self.array.name;
        let mut left: Vec<String> = san
            .groups(array)
            .into_iter()
            .filter(|g| is_array_object_ours(&g.name))
            .map(|g| format!("initiator group {} on {array}", g.name))
            .collect();
        let mappings = san.mappings(array);
        for target in targets {
            left.extend(
                mappings
                    .iter()
                    .filter(|m| m.volume == target.name && m.group != WORKER_GROUP)
                    .map(|m| format!("mapping of {} to {}", m.volume, m.group)),
            );
            if !mappings
                .iter()
                .any(|m| m.volume == target.name && m.group == WORKER_GROUP)
            {
                left.push(format!(
                    "{} lost its original mapping to {WORKER_GROUP}",
                    target.name
                ));
            }
            for host in &self.lab.hosts {
                if host.sim.device(&target.naa).is_some() {
                    left.push(format!("device {} on {}", target.naa, host.name));
                }
            }
        }
        for host in &self.lab.hosts {
            left.extend(
                host.sim
                    .task_ids()
                    .into_iter()
                    .map(|id| format!("clone task {id} on {}", host.name)),
            );
        }
        left.extend(self.array.array_side.leftovers());
        left
    }
}
