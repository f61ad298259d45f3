//! Discover: make the freshly mapped LUN appear on the ESXi host, fast and without fixed sleeps.
//!
//! Only the adapters that reach the source datastore are rescanned (add-only), and the device is
//! polled with a short, growing interval under a deadline instead of upstream's five 5 s sleeps
//! (core.md §5.3). A device left `off` or `dead timeout` by an earlier run is removed from the
//! detached list and rescanned, as upstream does, but a bounded number of times. This module also
//! owns the host-side device operations cleanup needs (off, detach, rescan-delete).

use std::time::Duration;

use co_vsphere::{Client, ManagedObjectReference};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::CopyError;

const MIB: u64 = 1024 * 1024;
/// How often a stale (`off`/`dead timeout`) device is removed and rescanned before giving up.
const STALE_DEVICE_RETRIES: u32 = 3;

/// A SCSI device as `esxcli storage core device list -d` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub naa: String,
    /// `Size` (MiB) in bytes.
    pub size_bytes: u64,
    /// `Status`: `on`, `off`, `dead timeout`, …
    pub status: String,
}

impl DeviceInfo {
    fn is_stale(&self) -> bool {
        matches!(self.status.as_str(), "off" | "dead timeout")
    }
}

/// The storage side of one ESXi host, through esxcli over vCenter.
#[derive(Debug, Clone)]
pub struct HostStorage {
    client: Client,
    host: ManagedObjectReference,
}

impl HostStorage {
    pub fn new(client: Client, host: ManagedObjectReference) -> Self {
        Self { client, host }
    }

    pub fn host(&self) -> &ManagedObjectReference {
        &self.host
    }

    /// Readies every esxcli command this type runs (see [`Client::prepare_esxcli`]), so that
    /// discovery and cleanup pay one round trip per command. Run while the array maps the volume.
    pub async fn prepare(&self) -> Result<(), CopyError> {
        self.client
            .prepare_esxcli(
                &self.host,
                &[
                    &["storage", "core", "device", "list"],
                    &["storage", "core", "adapter", "rescan"],
                    &["storage", "core", "device", "detached", "remove"],
                ],
            )
            .await
            .map_err(CopyError::vsphere("preparing esxcli on the host"))
    }

    /// The device, or `None` when the host does not know it (esxcli answers with a CLI fault).
    pub async fn device(&self, naa: &str) -> Result<Option<DeviceInfo>, CopyError> {
        match self
            .client
            .esxcli(
                &self.host,
                &["storage", "core", "device", "list", "-d", naa],
            )
            .await
        {
            Ok(response) => Ok(Some(DeviceInfo {
                naa: response.first("Device").unwrap_or_else(|| naa.to_owned()),
                size_bytes: response
                    .first("Size")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .unwrap_or(0)
                    .saturating_mul(MIB),
                status: response.first("Status").unwrap_or_default(),
            })),
            Err(co_vsphere::Error::Esxcli { message, .. }) => {
                debug!(host = %self.host, naa, %message, "device not known to the host");
                Ok(None)
            }
            Err(source) => Err(CopyError::vsphere("esxcli storage core device list")(
                source,
            )),
        }
    }

    /// `esxcli storage core adapter rescan -t <kind> -A <adapter>`.
    pub async fn rescan(&self, adapter: &str, kind: &str) -> Result<(), CopyError> {
        self.client
            .esxcli(
                &self.host,
                &[
                    "storage", "core", "adapter", "rescan", "-t", kind, "-A", adapter,
                ],
            )
            .await
            .map(drop)
            .map_err(CopyError::vsphere("esxcli storage core adapter rescan"))
    }

    /// `esxcli storage core device set --state off -d <naa>`; an unknown device is fine.
    pub async fn set_off(&self, naa: &str) -> Result<(), CopyError> {
        match self
            .client
            .esxcli(
                &self.host,
                &[
                    "storage", "core", "device", "set", "--state", "off", "-d", naa,
                ],
            )
            .await
        {
            Ok(_) => Ok(()),
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
        match self
            .client
            .esxcli(
                &self.host,
                &["storage", "core", "device", "detached", "remove", "-d", naa],
            )
            .await
        {
            Ok(_) => Ok(()),
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
                Some(d) if d.status == "off" || d.status == "dead timeout" => break,
                Some(d) if Instant::now() >= deadline => {
                    return Err(CopyError::Refused(format!(
                        "device {naa} on host {} is still {:?} after being set off; a process on the host may \
                         still use it",
                        self.host, d.status
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
                rescan_all(host, adapters, "add").await?;
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
            rescan_all(host, adapters, "add").await?;
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

/// Rescans every adapter in `adapters` with `-t kind`.
pub async fn rescan_all(
    host: &HostStorage,
    adapters: &[String],
    kind: &str,
) -> Result<(), CopyError> {
    for adapter in adapters {
        host.rescan(adapter, kind).await?;
    }
    Ok(())
}
