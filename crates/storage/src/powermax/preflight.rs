//! PowerMax's read-only readiness: which of each ESXi host's initiators of the port group's
//! protocol the array has seen log in (it maps only through those), and whether a device is a
//! volume of this array (looked up by its WWN).

use serde::Deserialize;

use super::{InitiatorList, PowerMaxArray, hba_of};
use crate::api::{ArrayReadiness, HostInitiators, StorageApi};
use crate::error::StorageError;
use crate::model::EsxiHostRef;
use crate::naa::DeviceName;

/// A Unisphere iterator's first answer: how many items matched.
#[derive(Debug, Deserialize)]
struct IteratorCount {
    #[serde(default)]
    count: u64,
}

impl PowerMaxArray {
    pub(super) async fn check_readiness(
        &self,
        hosts: &[EsxiHostRef],
    ) -> Result<ArrayReadiness, StorageError> {
        let info = self.array_info().await?;
        let mut logged_in: Vec<String> = Vec::new();
        for hba in hosts
            .iter()
            .flat_map(|h| h.initiators.iter())
            .filter_map(|i| hba_of(i, self.protocol))
        {
            let list: InitiatorList = self
                .send(|| {
                    Ok(self
                        .http
                        .get(&self.provisioning(&["initiator"]))
                        .query("initiator_hba", &hba))
                })
                .await?
                .success()?
                .json()?;
            if !list.ids.is_empty() {
                logged_in.push(hba);
            }
        }
        let initiators = HostInitiators::sort_each(
            hosts,
            |i| hba_of(i, self.protocol).is_some(),
            |i| hba_of(i, self.protocol).is_some_and(|hba| logged_in.contains(&hba)),
        );
        Ok(ArrayReadiness {
            info,
            initiators,
            prerequisites: Vec::new(),
        })
    }
}

impl PowerMaxArray {
    pub(super) async fn lookup_device(
        &self,
        device: &DeviceName,
    ) -> Result<Option<bool>, StorageError> {
        let wwn = device.identifier().to_ascii_uppercase();
        let found: IteratorCount = self
            .send(|| {
                Ok(self
                    .http
                    .get(&self.provisioning(&["volume"]))
                    .query("wwn", &wwn))
            })
            .await?
            .success()?
            .json()?;
        Ok(Some(found.count > 0))
    }
}
