//! Array-side copy of an RDM disk on a VSP: a Thin Image clone pair from the RDM's LDEV (P-VOL)
//! onto the PVC's LDEV (S-VOL) in a snapshot group named after the session, followed until the
//! array reports the clone complete, then deleted with its group.
//!
//! - **Completion.** The pair is created without `clonesAutomation`/`autoSplit`, so the array
//!   keeps it once copied: completion is the pair seen `PSUS` with `isClone` and
//!   `concordanceRate` 100, never `PSUP` (the clone copy still runs there; upstream declared
//!   success at `PSUP` and handed over a half-written volume). A pair that vanishes mid-copy is an
//!   error, not a success: it cannot be told from one deleted on the array.
//! - **Pool.** `snapshotPoolId` is the pool of the source LDEV (`poolId`), the pool Thin Image
//!   Advanced keeps the pair's data in; an LDEV without one is refused with what to check.
//! - **Pace.** `COPY_SPEED` goes to the API's `copySpeed` as `slower`/`medium`/`faster`.
//! - **Idempotent.** A pair of the same P-VOL in the session's group (an earlier run's) is
//!   adopted; one from another P-VOL on the target is refused. [`ArrayCopy::end`] deletes the
//!   session's group (every pair in it), and treats a group already gone as done.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{CopySpeed, DataList, LdevRecord, VantaraArray};
use crate::api::{ArrayCopy, ArrayCopySession, ArrayCopySource, ProgressSink};
use crate::error::StorageError;

/// The NAA vendor prefix of Hitachi LDEVs, lower case.
const HITACHI_NAA_PREFIX: &str = "60060e80";

/// Pause between looks at a copying pair: `concordanceRate` is a cheap read, and a VSP clone of
/// a small disk completes in seconds.
const COPY_POLL: Duration = Duration::from_millis(500);

/// How long a clone may go without progress before the copy gives up on it.
const STALL_DEADLINE: Duration = Duration::from_secs(1800);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PairRecord {
    pvol_ldev_id: u32,
    mu_number: u32,
    #[serde(default)]
    svol_ldev_id: Option<u32>,
    #[serde(default)]
    snapshot_group_name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    concordance_rate: Option<u8>,
    #[serde(default)]
    is_clone: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PairCreate<'a> {
    pvol_ldev_id: u32,
    svol_ldev_id: u32,
    snapshot_pool_id: u32,
    snapshot_group_name: &'a str,
    is_clone: bool,
    can_cascade: bool,
    copy_speed: &'static str,
}

/// The API's `copySpeed` for `COPY_SPEED`.
pub fn copy_speed_value(speed: CopySpeed) -> &'static str {
    match speed {
        CopySpeed::Slower => "slower",
        CopySpeed::Medium => "medium",
        CopySpeed::Faster => "faster",
    }
}

/// The 32-hex Hitachi NAA inside an RDM `deviceName` (`naa.60060e80…` or `vml.…60060e80…`),
/// lower case, and the LDEV number its last four hex digits carry.
pub fn rdm_ldev(device_name: &str) -> Option<(String, u32)> {
    let lower = device_name.to_ascii_lowercase();
    let start = lower.find(HITACHI_NAA_PREFIX)?;
    let naa = lower.get(start..start + 32)?;
    if !naa.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let ldev = u32::from_str_radix(naa.get(28..)?, 16).ok()?;
    Some((naa.to_owned(), ldev))
}

/// The LDEV number a Hitachi vVol id ends in: its last four hex digits.
pub fn vvol_ldev(vvol_id: &str) -> Option<u32> {
    let tail = vvol_id.get(vvol_id.len().checked_sub(4)?..)?;
    if !tail.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(tail, 16).ok()
}

impl VantaraArray {
    /// The pairs whose S-VOL is `svol`.
    async fn pairs_on(&self, svol: u32) -> Result<Vec<PairRecord>, StorageError> {
        let listed: DataList<PairRecord> = self
            .http
            .get(&["objects", "snapshots"])
            .query("svolLdevId", &svol.to_string())
            .send_json()
            .await?;
        Ok(listed
            .data
            .into_iter()
            .filter(|p| p.svol_ldev_id == Some(svol))
            .collect())
    }

    /// The vVol's LDEV: the last four hex digits of the vVol id, as Hitachi's VASA provider names
    /// vVols (the rule upstream relies on; Hitachi does not document it, so the LDEV must exist
    /// and, below, have exactly the target's size).
    async fn vvol_source(&self, vvol_id: &str) -> Result<(LdevRecord, u32), StorageError> {
        let ldev_id = vvol_ldev(vvol_id).ok_or_else(|| StorageError::Unsupported {
            message: format!("the vVol id {vvol_id} does not end in a Hitachi LDEV number"),
        })?;
        let ldev = self.ldev(ldev_id).await?;
        if ldev.emulation_type.as_deref() == Some("NOT DEFINED") {
            return Err(StorageError::not_found(
                format!("the LDEV of vVol {vvol_id}"),
                format!(
                    "LDEV {ldev_id} of storage {} is not defined; the vVol is on another array",
                    self.storage_device_id
                ),
            ));
        }
        let pool = ldev.pool_id.ok_or_else(|| {
            StorageError::config(format!(
                "LDEV {ldev_id} of vVol {vvol_id} reports no poolId, and the clone pair's snapshot \
                 pool is the source LDEV's pool"
            ))
        })?;
        Ok((ldev, pool))
    }

    /// The RDM's LDEV, checked to be the LUN the RDM names.
    async fn rdm_source(&self, device_name: &str) -> Result<(LdevRecord, u32), StorageError> {
        let (naa, ldev_id) = rdm_ldev(device_name).ok_or_else(|| StorageError::Unsupported {
            message: format!(
                "the RDM disk {device_name} names no Hitachi LDEV (no {HITACHI_NAA_PREFIX} NAA); \
                 is the RDM LUN on this VSP?"
            ),
        })?;
        let ldev = self.ldev(ldev_id).await?;
        let matches = ldev
            .naa_id
            .as_deref()
            .is_some_and(|id| id.eq_ignore_ascii_case(&naa));
        if ldev.emulation_type.as_deref() == Some("NOT DEFINED") || !matches {
            return Err(StorageError::not_found(
                format!("the LDEV of RDM disk {device_name}"),
                format!(
                    "LDEV {ldev_id} of storage {} does not carry NAA {naa}; the RDM LUN is on another array",
                    self.storage_device_id
                ),
            ));
        }
        let pool = ldev.pool_id.ok_or_else(|| {
            StorageError::config(format!(
                "LDEV {ldev_id} of RDM disk {device_name} reports no poolId, and the clone pair's \
                 snapshot pool is the source LDEV's pool; the RDM must be a Dynamic Provisioning \
                 volume"
            ))
        })?;
        Ok((ldev, pool))
    }
}

#[async_trait]
impl ArrayCopy for VantaraArray {
    fn supports(&self, source: &ArrayCopySource) -> bool {
        match source {
            ArrayCopySource::Rdm { .. } => true,
            ArrayCopySource::VVol { vvol_id } => vvol_ldev(vvol_id).is_some(),
        }
    }

    async fn copy(
        &self,
        session: &ArrayCopySession,
        progress: ProgressSink<'_>,
    ) -> Result<(), StorageError> {
        let (source, pool) = match &session.source {
            ArrayCopySource::Rdm { device_name, .. } => self.rdm_source(device_name).await?,
            ArrayCopySource::VVol { vvol_id } => self.vvol_source(vvol_id).await?,
        };
        let target = &session.target;
        let svol = Self::ldev_of(target)?;
        let disk = match &session.source {
            ArrayCopySource::Rdm { .. } => "RDM",
            ArrayCopySource::VVol { .. } => "vVol",
        };
        if source.ldev_id == svol {
            return Err(StorageError::config(format!(
                "the {disk} disk and the target PVC volume are the same LDEV ({svol})"
            )));
        }
        let source_bytes = source.block_capacity.unwrap_or(0) * 512;
        if source_bytes != target.size_bytes {
            return Err(StorageError::config(format!(
                "{disk} LDEV {} has {source_bytes} bytes and the target PVC LDEV {svol} has {} \
                 bytes; a Thin Image clone needs both the same size, so request the PVC with \
                 exactly the disk's size",
                source.ldev_id, target.size_bytes
            )));
        }
        progress(0);
        let ours = |p: &PairRecord| p.snapshot_group_name.as_deref() == Some(session.name.as_str());
        let existing = self.pairs_on(svol).await?;
        if let Some(other) = existing
            .iter()
            .find(|p| !ours(p) || p.pvol_ldev_id != source.ldev_id)
        {
            return Err(StorageError::config(format!(
                "target LDEV {svol} is already the S-VOL of pair {},{} (snapshot group {}); \
                 delete that pair on the array",
                other.pvol_ldev_id,
                other.mu_number,
                other.snapshot_group_name.as_deref().unwrap_or("?")
            )));
        }
        if existing.is_empty() {
            let reply = self
                .http
                .post(&["objects", "snapshots"])
                .json(&PairCreate {
                    pvol_ldev_id: source.ldev_id,
                    svol_ldev_id: svol,
                    snapshot_pool_id: pool,
                    snapshot_group_name: &session.name,
                    is_clone: true,
                    can_cascade: true,
                    copy_speed: copy_speed_value(self.settings.copy_speed),
                })?
                .send()
                .await?;
            self.await_job(reply).await?;
            tracing::info!(pvol = source.ldev_id, svol, group = %session.name, pool, "Thin Image clone pair created");
        } else {
            tracing::info!(pvol = source.ldev_id, svol, group = %session.name, "adopting the clone pair of an earlier run");
        }
        let mut shown = 0u8;
        let mut last_change = tokio::time::Instant::now();
        loop {
            let pair = self
                .pairs_on(svol)
                .await?
                .into_iter()
                .find(|p| ours(p))
                .ok_or_else(|| {
                    StorageError::protocol(
                        "GET /objects/snapshots",
                        format!(
                            "the clone pair of LDEV {} onto LDEV {svol} (snapshot group {}) \
                             disappeared before the copy completed; was it deleted on the array?",
                            source.ldev_id, session.name
                        ),
                    )
                })?;
            let status = pair.status.as_deref().unwrap_or("");
            let rate = pair.concordance_rate.unwrap_or(0).min(100);
            let copied = status == "PSUS" && pair.is_clone == Some(true) && rate == 100;
            if copied {
                break;
            }
            match status {
                // The point in time is being taken: nothing is on the S-VOL yet.
                "COPY" => {}
                "PSUP" if rate > shown => {
                    // 100 only once the pair is PSUS.
                    shown = rate.min(99);
                    progress(shown);
                    last_change = tokio::time::Instant::now();
                }
                "PSUP" => {}
                other => {
                    return Err(StorageError::protocol(
                        "GET /objects/snapshots",
                        format!(
                            "the clone pair {},{} onto LDEV {svol} is {other} at {rate}% \
                             (isClone {:?}); check the pair and the pool on the array",
                            pair.pvol_ldev_id, pair.mu_number, pair.is_clone
                        ),
                    ));
                }
            }
            if last_change.elapsed() > STALL_DEADLINE {
                return Err(StorageError::protocol(
                    "GET /objects/snapshots",
                    format!(
                        "the clone pair {},{} made no progress for {} s (at {rate}%)",
                        pair.pvol_ldev_id,
                        pair.mu_number,
                        STALL_DEADLINE.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(COPY_POLL).await;
        }
        tracing::info!(pvol = source.ldev_id, svol, group = %session.name, "Thin Image clone complete");
        progress(100);
        Ok(())
    }

    async fn end(&self, session: &ArrayCopySession) -> Result<(), StorageError> {
        let group = ["objects", "snapshot-groups", session.name.as_str()];
        if self.delete_object(&group).await? {
            tracing::info!(group = %session.name, "clone pair and snapshot group deleted");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vvol_ids_give_the_ldev_of_their_last_four_hex_digits() {
        assert_eq!(
            vvol_ldev("rfc4122.6b4a2c1e-53e0-4b6c-9a44-0cf1a2b3002a"),
            Some(42)
        );
        assert_eq!(
            vvol_ldev("rfc4122.6b4a2c1e-53e0-4b6c-9a44-0cf1a2b3ffff"),
            Some(65535)
        );
        assert_eq!(
            vvol_ldev("rfc4122.6b4a2c1e-53e0-4b6c-9a44-0cf1a2b3-02a"),
            None
        );
        assert_eq!(vvol_ldev("2a"), None);
    }

    #[test]
    fn rdm_device_names_give_the_ldev() {
        let naa = "60060e8012345678000000000000002a";
        assert_eq!(
            rdm_ldev(&format!("naa.{}", naa.to_ascii_uppercase())),
            Some((naa.to_owned(), 42))
        );
        assert_eq!(
            rdm_ldev(&format!("vml.0200000000{naa}4f50454e2d56")),
            Some((naa.to_owned(), 42))
        );
        assert_eq!(rdm_ldev("naa.600a098038303053453f463045727a4b"), None);
        assert_eq!(rdm_ldev("naa.60060e80"), None);
    }

    #[test]
    fn copy_speeds_are_the_apis_words() {
        assert_eq!(copy_speed_value(CopySpeed::Slower), "slower");
        assert_eq!(copy_speed_value(CopySpeed::Medium), "medium");
        assert_eq!(copy_speed_value(CopySpeed::Faster), "faster");
    }
}
