//! FlashSystem's read-only readiness: the hosts holding each ESXi host's ports (the source
//! datastore's vdisk reaches the ESXi host through one of them), volume protection (on for the
//! system and a pool, it refuses to unmap a volume ESXi wrote to, which every copy does), and
//! whether a device is a vdisk of this system (looked up by its `vdisk_UID`).

use serde::Deserialize;
use serde_json::json;

use super::{FlashSystemArray, HostDetail, HostRecord, SystemRecord, host_port};
use crate::api::{ArrayReadiness, HostInitiators, StorageApi, VendorPrerequisite};
use crate::error::StorageError;
use crate::model::EsxiHostRef;
use crate::naa::DeviceName;

#[derive(Debug, Deserialize)]
struct PoolFacts {
    name: String,
    #[serde(default)]
    vdisk_protection_enabled: String,
}

impl FlashSystemArray {
    pub(super) async fn check_readiness(
        &self,
        hosts: &[EsxiHostRef],
    ) -> Result<ArrayReadiness, StorageError> {
        let info = self.array_info().await?;
        let listed: Vec<HostRecord> = self.info("lshost", None, json!({})).await?;
        let mut details: Vec<HostDetail> = Vec::new();
        for host in &listed {
            if let Some(detail) = self.info_of::<HostDetail>("lshost", &host.id).await? {
                details.push(detail);
            }
        }
        let initiators = HostInitiators::sort_each(
            hosts,
            |i| host_port(i).is_some(),
            |i| host_port(i).is_some_and(|port| details.iter().any(|d| port.on(d))),
        );
        Ok(ArrayReadiness {
            info,
            initiators,
            prerequisites: vec![volume_protection(self).await?],
        })
    }
}

/// Protection blocks a copy only where it is on for the system and the volume's pool; which pool
/// the target volumes come from is the storage class's choice, so every protected pool counts.
async fn volume_protection(array: &FlashSystemArray) -> Result<VendorPrerequisite, StorageError> {
    let system: SystemRecord = array.info("lssystem", None, json!({})).await?;
    let name = "volume protection".to_owned();
    if system.vdisk_protection_enabled != "yes" {
        return Ok(VendorPrerequisite {
            name,
            satisfied: true,
            detail:
                "volume protection is off for the system (lssystem vdisk_protection_enabled no)"
                    .into(),
            remedy: String::new(),
        });
    }
    let listed: Vec<PoolFacts> = array.info("lsmdiskgrp", None, json!({})).await?;
    let mut protected = Vec::new();
    for pool in listed {
        // The detailed view carries the pool's own setting.
        let detail = array
            .info_of::<PoolFacts>("lsmdiskgrp", &pool.name)
            .await?
            .unwrap_or(pool);
        if detail.vdisk_protection_enabled == "yes" {
            protected.push(detail.name);
        }
    }
    let minutes = &system.vdisk_protection_time;
    Ok(VendorPrerequisite {
        name,
        satisfied: protected.is_empty(),
        detail: if protected.is_empty() {
            format!(
                "volume protection is on for the system ({minutes} minutes) but off for every pool"
            )
        } else {
            format!(
                "volume protection is on for the system ({minutes} minutes) and pool(s) {}: after \
                 ESXi writes to a volume there, the system refuses to unmap it from the ESXi host for \
                 {minutes} minutes, and the copy's cleanup fails",
                protected.join(", ")
            )
        },
        remedy: format!(
            "Turn volume protection off for the pools the target storage classes use ({}), or for \
             the system: `chsystem -vdiskprotectionenabled no` (GUI: Settings › System › Volume \
             Protection).",
            protected
                .iter()
                .map(|p| format!("`chmdiskgrp -vdiskprotectionenabled no {p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

impl FlashSystemArray {
    pub(super) async fn lookup_device(
        &self,
        device: &DeviceName,
    ) -> Result<Option<bool>, StorageError> {
        let uid = device.identifier().to_ascii_uppercase();
        Ok(Some(self.vdisk_by_uid(&uid).await?.is_some()))
    }
}
