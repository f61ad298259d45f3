//! Map and discover: journal the initiator group, the volume's original mappings, the mapping and
//! the rescan-delete before the array changes anything; map the volume to the host's group; rescan
//! only the adapters in use, under the host lease, until the device appears; and verify the device
//! is the volume (identity and size) — nothing is written unless it provably is.

use co_storage::{EsxiHostRef, Initiator};
use co_vsphere::ManagedObjectReference;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::resolve::Source;
use super::{Phase, Run};
use crate::discover::{HostStorage, discover_device};
use crate::error::CopyError;
use crate::journal::{CleanupStep, JournalEntry};
use crate::lease::HostId;
use crate::metrics::StorageProtocolLabel;
use crate::verify::{Expected, verify_device};

/// The ESXi host the clone runs on, in the forms the phases need.
pub(super) struct HostTarget {
    pub host: ManagedObjectReference,
    /// The host's id in lease and array object names.
    pub id: HostId,
    pub storage: HostStorage,
}

impl Run<'_> {
    /// Map (journaled first), discover under the host lease, and verify that the device is the
    /// volume: nothing is written unless this succeeds.
    pub(super) async fn map_and_discover(
        &self,
        target: &HostTarget,
        source: &Source,
        cancel: &CancellationToken,
    ) -> Result<(), CopyError> {
        let engine = self.engine;
        let (job, host, host_id, host_storage) =
            (self.job, &target.host, &target.id, &target.storage);
        let (disk, volume) = (&source.disk, &source.volume);
        let host_key = host.to_string();
        // Reads that do not depend on each other run at once: the host's SAN side (vSphere), the
        // volume's current mappings (array) and esxcli's command metadata (so each esxcli later
        // costs one round trip).
        let san = async {
            let datastore = engine
                .vsphere
                .datastore_device(host, job.vmdk.datastore())
                .await
                .map_err(CopyError::vsphere("reading the source datastore"))?;
            let adapters = engine
                .vsphere
                .source_adapters(host, &datastore, engine.storage.requires_sdc())
                .await
                .map_err(CopyError::vsphere("finding the host's SAN adapters"))?;
            let chosen: Vec<&str> = adapters
                .adapters
                .iter()
                .map(|a| a.device.as_str())
                .collect();
            match &adapters.device {
                Some(device) if !adapters.fallback => {
                    info!(datastore = %datastore.name, %device, adapters = ?chosen, "adapters with active paths to the source datastore's device chosen");
                }
                Some(device) => {
                    info!(datastore = %datastore.name, %device, adapters = ?chosen, "no active path to the source datastore's device goes through a SAN adapter; the host's first FC, else iSCSI, adapter chosen");
                }
                None => {
                    info!(datastore = %datastore.name, info_type = %datastore.info_type, adapters = ?chosen, "the source datastore has no SAN device (NFS): the host's SAN adapter chosen (PowerFlex SDC if the array needs it, else first FC, else iSCSI); the clone will be a host copy (no XCOPY from NFS to a SAN LUN)");
                }
            }
            Ok::<_, CopyError>((datastore, adapters))
        };
        let originals = async {
            engine
                .storage
                .current_mappings(volume)
                .await
                .map_err(CopyError::storage("reading the volume's current mappings"))
        };
        let ((datastore, adapters), originals, ()) =
            tokio::try_join!(san, originals, host_storage.prepare())?;
        let storage_protocol = adapters
            .adapters
            .iter()
            .find_map(|a| match a.protocol() {
                "iscsi" => Some(StorageProtocolLabel::Iscsi),
                "fc" => Some(StorageProtocolLabel::Fc),
                _ => None,
            })
            .unwrap_or(StorageProtocolLabel::Unknown);
        self.report(|report| report.storage_protocol = storage_protocol);
        let esx = EsxiHostRef {
            host_id: host_id.as_str().to_owned(),
            initiators: adapters
                .adapters
                .iter()
                .map(|a| Initiator::from_adapter_id(&a.id))
                .collect(),
        };
        let adapter_devices: Vec<String> =
            adapters.adapters.iter().map(|a| a.device.clone()).collect();

        // Map: every change is journaled first.
        let pending_group = CleanupStep::ReleaseGroup {
            host: esx.clone(),
            group: None,
        };
        self.record(JournalEntry::ChangeMade {
            undo: pending_group.clone(),
        })
        .await?;
        let group = engine
            .storage
            .ensure_initiator_group(&esx)
            .await
            .map_err(CopyError::storage("ensuring the host's initiator group"))?;
        // What the mapping will change, in one durable write before it is made. The group entry
        // that knows the array's objects supersedes the pending one.
        let change = |undo| JournalEntry::ChangeMade { undo };
        let entries = vec![
            change(CleanupStep::ReleaseGroup {
                host: esx.clone(),
                group: Some(group.clone()),
            }),
            JournalEntry::CleanupDone {
                step: pending_group,
            },
            change(CleanupStep::RestoreMappings {
                volume: volume.clone(),
                groups: originals,
            }),
            change(CleanupStep::RescanDelete {
                host: host_key.clone(),
                adapters: adapter_devices.clone(),
            }),
            change(CleanupStep::UnmapVolume {
                volume: volume.clone(),
                group: group.clone(),
            }),
        ];
        self.journal
            .lock()
            .await
            .record_all(entries)
            .await
            .map_err(CopyError::from)?;
        if cancel.is_cancelled() {
            return Err(CopyError::Cancelled);
        }
        let mapping = engine
            .storage
            .map(volume, &group)
            .await
            .map_err(CopyError::storage("mapping the volume to the host"))?;
        if mapping.naa != volume.naa {
            return Err(CopyError::WrongDevice {
                host: host_key,
                device: mapping.naa.to_string(),
                reason: format!(
                    "the array mapped it for volume {} whose device is {}",
                    volume.name, volume.naa
                ),
            });
        }

        // Discover, under the host lease.
        let naa = volume.naa.as_str();
        self.record(JournalEntry::ChangeMade {
            undo: CleanupStep::RemoveDevice {
                host: host_key.clone(),
                naa: naa.to_owned(),
            },
        })
        .await?;
        let schedule = engine.timing.discovery;
        let discover = |token: CancellationToken| {
            let adapter_devices = &adapter_devices;
            async move {
                self.enter(Phase::Discover);
                discover_device(host_storage, naa, adapter_devices, schedule, &token).await
            }
        };
        let device = match &engine.lease {
            Some(lease) => lease.with_slot(host_id, cancel, discover).await??,
            None => discover(cancel.clone()).await?,
        };
        if cancel.is_cancelled() {
            return Err(CopyError::Cancelled);
        }

        // Verify: nothing is written unless the device is provably the volume. A datastore
        // without a SAN device (NFS) has no extents the target could be.
        self.enter(Phase::Verify);
        verify_device(
            Expected {
                volume,
                source_bytes: disk.provisioned_bytes,
                datastore_devices: &datastore.extents,
            },
            &device,
        )
        .map_err(|reason| CopyError::WrongDevice {
            host: host_key.clone(),
            device: device.naa.clone(),
            reason,
        })
    }
}
