//! Discover: make the freshly mapped LUN appear on the ESXi host, fast and without fixed sleeps.
//!
//! Only the adapters that reach the source datastore are rescanned (add-only), and the device is
//! polled with a short, growing interval under a deadline instead of upstream's five 5 s sleeps.
//! A device left `off` or `dead timeout` by an earlier run is removed from the detached list and
//! rescanned, as upstream does, but a bounded number of times. This module also owns the
//! host-side device operations cleanup needs (off, detach, rescan-delete). Each is a typed
//! command of `co_vsphere::esxcli` with a typed answer.

use std::time::Duration;

use co_vsphere::esxcli::{
    DeviceState, Esxcli, RescanType, StorageCoreAdapterRescan, StorageCoreDeviceDetachedRemove,
    StorageCoreDeviceList, StorageCoreDeviceSet,
};
use co_vsphere::{Client, ManagedObjectReference};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::CopyError;

pub use co_vsphere::esxcli::DeviceInfo;

/// How often a stale (`off`/`dead timeout`) device is removed and rescanned before giving up.
const STALE_DEVICE_RETRIES: u32 = 3;

/// The storage side of one ESXi host, through esxcli over vCenter.
#[derive(Debug, Clone)]
pub struct HostStorage {
    esxcli: Esxcli,
}

impl HostStorage {
    pub fn new(client: Client, host: ManagedObjectReference) -> Self {
        Self {
            esxcli: Esxcli::new(client, host),
        }
    }

    pub fn host(&self) -> &ManagedObjectReference {
        self.esxcli.host()
    }

    /// Readies every esxcli command this type runs (see [`Esxcli::prepare`]), so that discovery
    /// and cleanup pay one round trip per command. Run while the array maps the volume.
    pub async fn prepare(&self) -> Result<(), CopyError> {
        self.esxcli
            .prepare(&[
                &["storage", "core", "device", "list"],
                &["storage", "core", "adapter", "rescan"],
                &["storage", "core", "device", "detached", "remove"],
            ])
            .await
            .map_err(CopyError::vsphere("preparing esxcli on the host"))
    }

    /// The device, or `None` when the host does not know it (esxcli answers with a CLI fault).
    pub async fn device(&self, naa: &str) -> Result<Option<DeviceInfo>, CopyError> {
        let list = StorageCoreDeviceList {
            device: Some(naa.to_owned()),
        };
        match self.esxcli.execute(&list).await {
            Ok(devices) => Ok(devices.into_iter().next()),
            Err(co_vsphere::Error::Esxcli { message, .. }) => {
                debug!(host = %self.host(), naa, %message, "device not known to the host");
                Ok(None)
            }
            Err(source) => Err(CopyError::vsphere("esxcli storage core device list")(
                source,
            )),
        }
    }

    /// `esxcli storage core adapter rescan -t <rescan> -A <adapter>`.
    pub async fn rescan(&self, adapter: &str, rescan: RescanType) -> Result<(), CopyError> {
        let command = StorageCoreAdapterRescan {
            adapter: adapter.to_owned(),
            rescan,
        };
        self.esxcli
            .execute(&command)
            .await
            .map_err(CopyError::vsphere("esxcli storage core adapter rescan"))
    }

    /// `esxcli storage core device set --state off -d <naa>`; an unknown device is fine.
    pub async fn set_off(&self, naa: &str) -> Result<(), CopyError> {
        let command = StorageCoreDeviceSet {
            device: naa.to_owned(),
            state: DeviceState::Off,
        };
        match self.esxcli.execute(&command).await {
            Ok(()) => Ok(()),
            Err(co_vsphere::Error::Esxcli { message, .. }) if self.device(naa).await?.is_none() => {
                debug!(naa, %message, "device already gone");
                Ok(())
            }
            Err(source) => Err(CopyError::vsphere(
                "esxcli storage core device set --state off",
            )(source)),
        }
    }

    /// `esxcli storage core device detached remove -d <naa>`; an unknown device is fine.
    pub async fn remove_detached(&self, naa: &str) -> Result<(), CopyError> {
        let command = StorageCoreDeviceDetachedRemove {
            device: naa.to_owned(),
        };
        match self.esxcli.execute(&command).await {
            Ok(()) => Ok(()),
            Err(co_vsphere::Error::Esxcli { message, .. }) if self.device(naa).await?.is_none() => {
                debug!(naa, %message, "device already removed");
                Ok(())
            }
            Err(source) => Err(CopyError::vsphere(
                "esxcli storage core device detached remove",
            )(source)),
        }
    }

    /// Sets the device off, waits until the host reports it off, and forgets it.
    pub async fn detach(&self, naa: &str, deadline: Instant) -> Result<(), CopyError> {
        self.set_off(naa).await?;
        let mut pause = Duration::from_millis(50);
        loop {
            match self.device(naa).await? {
                None => return Ok(()),
                Some(d) if d.is_stale() => break,
                Some(d) if Instant::now() >= deadline => {
                    return Err(CopyError::Refused(format!(
                        "device {naa} on host {} is still {:?} after being set off; a process on the host may \
                         still use it",
                        self.host(),
                        d.status
                    )));
                }
                Some(_) => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
        self.remove_detached(naa).await
    }
}

/// How long and how often to look for the device.
#[derive(Debug, Clone, Copy)]
pub struct DiscoverySchedule {
    pub timeout: Duration,
    pub first_pause: Duration,
    pub max_pause: Duration,
}

impl Default for DiscoverySchedule {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            first_pause: Duration::from_millis(100),
            max_pause: Duration::from_secs(2),
        }
    }
}

/// Rescans `adapters` until `naa` is visible and `on`, or the schedule's timeout passes.
pub async fn discover_device(
    host: &HostStorage,
    naa: &str,
    adapters: &[String],
    schedule: DiscoverySchedule,
    cancel: &CancellationToken,
) -> Result<DeviceInfo, CopyError> {
    let started = Instant::now();
    let deadline = started + schedule.timeout;
    let mut pause = schedule.first_pause;
    let mut stale_retries = 0;
    let mut rescans = 0u32;
    loop {
        if cancel.is_cancelled() {
            return Err(CopyError::Cancelled);
        }
        match host.device(naa).await? {
            Some(device) if device.is_stale() && stale_retries < STALE_DEVICE_RETRIES => {
                stale_retries += 1;
                warn!(naa, status = %device.status, "stale device from an earlier run; removing it and rescanning");
                host.remove_detached(naa).await?;
                rescan_adapters(host, adapters, RescanType::Add).await?;
                rescans += 1;
                continue;
            }
            Some(device) if !device.is_stale() => {
                info!(
                    naa,
                    rescans,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "device visible"
                );
                return Ok(device);
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(CopyError::DeviceNotVisible {
                host: host.host().to_string(),
                device: naa.to_owned(),
                adapters: adapters.to_vec(),
                waited_s: schedule.timeout.as_secs(),
            });
        }
        if rescans == 0 || pause >= schedule.max_pause {
            rescan_adapters(host, adapters, RescanType::Add).await?;
            rescans += 1;
            // The rescan itself is the wait; look again right away.
            if rescans == 1 {
                continue;
            }
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(CopyError::Cancelled),
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(schedule.max_pause);
    }
}

/// Rescans every adapter in `adapters`.
pub async fn rescan_adapters(
    host: &HostStorage,
    adapters: &[String],
    rescan: RescanType,
) -> Result<(), CopyError> {
    for adapter in adapters {
        host.rescan(adapter, rescan).await?;
    }
    Ok(())
}

/// [`rescan_adapters`] with the rescan type as esxcli spells it (`add`, `delete`, `all`,
/// `update`), for callers that name it by string.
pub async fn rescan_all(
    host: &HostStorage,
    adapters: &[String],
    kind: &str,
) -> Result<(), CopyError> {
    let rescan = RescanType::parse(kind).ok_or_else(|| {
        CopyError::Refused(format!(
            "unknown rescan type {kind:?}; esxcli takes add, delete, all or update"
        ))
    })?;
    rescan_adapters(host, adapters, rescan).await
}
