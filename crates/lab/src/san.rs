//! The SAN model shared by all simulated arrays: volumes, initiator groups, LUN mappings, clone counters
//! and each device's VAAI clone status.
//!
//! Every vendor facade (`crate::arrays`) is a view over this one model, so the rules that make a SAN a
//! SAN live here once: a volume is a sparse file; a host sees a volume only while it is mapped to a group
//! holding one of the host's initiators; LUN ids are unique per group; clone (XCOPY) counters are kept
//! per device as ESXi's `vsish` reports them. Whether a host has *rescanned* since a mapping changed is
//! host state and belongs to the simulated ESXi host, which waits on [`San::subscribe`] instead of polling.

mod initiator;
mod vendor;

pub use initiator::InitiatorId;
pub use vendor::ArrayVendor;
pub(crate) use vendor::{stable_hash, stable_uuid};

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::scenario::VaaiStatusSpec;
use serde::Serialize;
use tokio::sync::watch;

/// The highest LUN id ESXi addresses by default (`Disk.MaxLUN` = 1024 → ids 0..=1023).
pub const MAX_LUN_ID: u32 = 1023;

const SECTOR: u64 = 512;

/// A volume (LUN) on a simulated array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub array: String,
    /// The array's name for the volume (for ONTAP the LUN path, e.g. `/vol/pvc_x/lun0`).
    pub name: String,
    pub uuid: String,
    pub serial: String,
    /// ESXi canonical device name, e.g. `naa.600a0980…`.
    pub naa: String,
    pub size_bytes: u64,
    /// The sparse file holding the volume's blocks.
    pub backing_path: PathBuf,
}

/// An initiator group (ONTAP igroup, Pure host, PowerStore host …) on one array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitiatorGroup {
    pub array: String,
    pub name: String,
    pub uuid: String,
    /// Initiator ids as the array API was given them.
    pub initiators: Vec<String>,
    /// Transport the group admits (`iscsi`, `fcp`, `mixed`), when the vendor records one.
    pub protocol: Option<String>,
    /// Host OS personality (`vmware`, `ESXi`, …), when the vendor records one.
    pub os_type: Option<String>,
    /// Free text the array keeps with the group (ONTAP's igroup `comment`), exactly as given.
    pub comment: Option<String>,
}

/// What a new initiator group looks like.
#[derive(Debug, Clone, Default)]
pub struct GroupSpec {
    pub name: String,
    pub initiators: Vec<String>,
    pub protocol: Option<String>,
    pub os_type: Option<String>,
}

/// A volume exposed to a group under a LUN id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LunMapping {
    pub array: String,
    pub volume: String,
    pub group: String,
    pub lun_id: u32,
}

/// A device a host could see if it rescanned now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VisibleLun {
    pub naa: String,
    pub lun_id: u32,
    pub volume: Volume,
}

/// Per-device VAAI clone statistics, as `vsish -e cat /storage/scsifw/devices/<naa>/stats` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CloneCounters {
    pub clone_read_ops: u64,
    pub clone_write_ops: u64,
    pub failed_clone_ops: u64,
}

/// Why a SAN operation was refused. Messages name the object and say what to change.
#[derive(Debug, thiserror::Error)]
pub enum SanError {
    #[error("array {array:?} does not exist in the lab SAN; declare it in the scenario's arrays")]
    UnknownArray { array: String },
    #[error("array {array:?} already exists in the lab SAN; array names must be unique")]
    ArrayExists { array: String },
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("invalid volume size {size_bytes} bytes: a volume needs at least one 512-byte sector")]
    InvalidSize { size_bytes: u64 },
    #[error("volume {volume:?} already exists on array {array:?}; pick another name or reuse it")]
    VolumeExists { array: String, volume: String },
    #[error("volume {volume:?} does not exist on array {array:?}")]
    UnknownVolume { array: String, volume: String },
    #[error("volume {volume:?} on array {array:?} is still mapped to {groups:?}; unmap it first")]
    VolumeMapped {
        array: String,
        volume: String,
        groups: Vec<String>,
    },
    #[error("initiator group {group:?} already exists on array {array:?}")]
    GroupExists { array: String, group: String },
    #[error("initiator group {group:?} does not exist on array {array:?}; create it first")]
    UnknownGroup { array: String, group: String },
    #[error(
        "initiator group {group:?} on array {array:?} still has volumes mapped: {volumes:?}; unmap them first"
    )]
    GroupInUse {
        array: String,
        group: String,
        volumes: Vec<String>,
    },
    #[error("initiator {initiator:?} is already in group {group:?} on array {array:?}")]
    InitiatorExists {
        array: String,
        group: String,
        initiator: String,
    },
    #[error("initiator {initiator:?} is not in group {group:?} on array {array:?}")]
    UnknownInitiator {
        array: String,
        group: String,
        initiator: String,
    },
    #[error("invalid initiator id {initiator:?}: {reason}")]
    InvalidInitiator {
        initiator: String,
        reason: &'static str,
    },
    #[error(
        "volume {volume:?} is already mapped to group {group:?} on array {array:?} as LUN {lun_id}"
    )]
    AlreadyMapped {
        array: String,
        volume: String,
        group: String,
        lun_id: u32,
    },
    #[error("volume {volume:?} is not mapped to group {group:?} on array {array:?}")]
    NotMapped {
        array: String,
        volume: String,
        group: String,
    },
    #[error(
        "LUN id {lun_id} is already used in group {group:?} on array {array:?}; omit the id to get a free one"
    )]
    LunIdInUse {
        array: String,
        group: String,
        lun_id: u32,
    },
    #[error("LUN id {lun_id} is out of range 0..={MAX_LUN_ID}")]
    LunIdOutOfRange { lun_id: u32 },
    #[error(
        "group {group:?} on array {array:?} has no free LUN id left (0..={MAX_LUN_ID}); unmap unused volumes"
    )]
    LunIdsExhausted { array: String, group: String },
    #[error(
        "cannot {action} the backing file {path}: {source}; check that the lab data directory is writable"
    )]
    Backing {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The simulated SAN. Cheap to clone; all clones share one model.
#[derive(Clone)]
pub struct San {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("San")
            .field("data_dir", &self.shared.data_dir)
            .finish_non_exhaustive()
    }
}

struct Shared {
    data_dir: PathBuf,
    model: Mutex<Model>,
    changes: watch::Sender<u64>,
}

#[derive(Default)]
struct Model {
    arrays: BTreeMap<String, ArrayState>,
    counters: HashMap<String, CloneCounters>,
    /// Devices whose VAAI clone status is not `supported`, by lowercase NAA.
    vaai_clone: HashMap<String, VaaiStatusSpec>,
}

struct ArrayState {
    vendor: ArrayVendor,
    seed: u64,
    next_sequence: u64,
    volumes: BTreeMap<String, Volume>,
    groups: BTreeMap<String, GroupState>,
    mappings: Vec<LunMapping>,
    /// Volumes that back a vSphere vVol, with its id (`backingObjectId`) — what the array's VASA
    /// provider records, and what a vendor's vVol array copy looks the volume up by.
    vvols: BTreeMap<String, String>,
}

struct GroupState {
    group: InitiatorGroup,
    ids: Vec<InitiatorId>,
}

impl San {
    /// A SAN whose volumes are sparse files under `data_dir/<array>/`.
    pub fn new(data_dir: &Path) -> San {
        San {
            shared: Arc::new(Shared {
                data_dir: data_dir.to_path_buf(),
                model: Mutex::new(Model::default()),
                changes: watch::Sender::new(0),
            }),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.shared.data_dir
    }

    /// Bumps on every change (mapping, group, volume), so waiters never sleep-poll.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    pub fn add_array(&self, name: &str, vendor: ArrayVendor) -> Result<(), SanError> {
        validate_name("array", name)?;
        self.change(|model| {
            if model.arrays.contains_key(name) {
                return Err(SanError::ArrayExists {
                    array: name.to_owned(),
                });
            }
            model.arrays.insert(
                name.to_owned(),
                ArrayState {
                    vendor,
                    seed: stable_hash(&[name]),
                    next_sequence: 1,
                    volumes: BTreeMap::new(),
                    groups: BTreeMap::new(),
                    mappings: Vec::new(),
                    vvols: BTreeMap::new(),
                },
            );
            Ok(())
        })
    }

    /// Arrays and their vendors, by name.
    pub fn arrays(&self) -> Vec<(String, ArrayVendor)> {
        self.read(|model| {
            model
                .arrays
                .iter()
                .map(|(name, array)| (name.clone(), array.vendor))
                .collect()
        })
    }

    pub fn array_vendor(&self, array: &str) -> Option<ArrayVendor> {
        self.read(|model| model.arrays.get(array).map(|a| a.vendor))
    }

    /// Creates a thin volume; its size is rounded up to whole 512-byte sectors.
    pub fn create_volume(
        &self,
        array: &str,
        name: &str,
        size_bytes: u64,
    ) -> Result<Volume, SanError> {
        if name.is_empty() || name.contains('\0') {
            return Err(SanError::InvalidName {
                what: "volume",
                name: name.to_owned(),
                reason: "it must be non-empty and free of NUL characters",
            });
        }
        if size_bytes == 0 {
            return Err(SanError::InvalidSize { size_bytes });
        }
        let size_bytes = size_bytes.div_ceil(SECTOR) * SECTOR;
        let data_dir = self.shared.data_dir.clone();
        self.change(|model| {
            let taken_naas: Vec<String> = model
                .arrays
                .values()
                .flat_map(|a| a.volumes.values().map(|v| v.naa.clone()))
                .collect();
            let state = array_mut(model, array)?;
            if state.volumes.contains_key(name) {
                return Err(SanError::VolumeExists {
                    array: array.to_owned(),
                    volume: name.to_owned(),
                });
            }
            let (serial, naa) = loop {
                let serial = state.vendor.serial(state.seed, state.next_sequence);
                state.next_sequence += 1;
                let naa = state.vendor.naa(&serial);
                if !taken_naas.contains(&naa) {
                    break (serial, naa);
                }
            };
            let uuid = stable_uuid(&[array, "volume", &serial]);
            let backing_path = data_dir.join(array).join(format!("{uuid}.img"));
            create_sparse(&backing_path, size_bytes)?;
            let volume = Volume {
                array: array.to_owned(),
                name: name.to_owned(),
                uuid,
                serial,
                naa,
                size_bytes,
                backing_path,
            };
            state.volumes.insert(name.to_owned(), volume.clone());
            Ok(volume)
        })
    }

    /// Deletes an unmapped volume and its backing file.
    pub fn delete_volume(&self, array: &str, name: &str) -> Result<(), SanError> {
        let volume = self.change(|model| {
            let state = array_mut(model, array)?;
            let groups: Vec<String> = state
                .mappings
                .iter()
                .filter(|m| m.volume == name)
                .map(|m| m.group.clone())
                .collect();
            if !groups.is_empty() {
                return Err(SanError::VolumeMapped {
                    array: array.to_owned(),
                    volume: name.to_owned(),
                    groups,
                });
            }
            state.vvols.remove(name);
            state
                .volumes
                .remove(name)
                .ok_or_else(|| SanError::UnknownVolume {
                    array: array.to_owned(),
                    volume: name.to_owned(),
                })
        })?;
        match std::fs::remove_file(&volume.backing_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SanError::Backing {
                action: "remove",
                path: volume.backing_path,
                source,
            }),
        }
    }

    pub fn volume(&self, array: &str, name: &str) -> Option<Volume> {
        self.read(|model| model.arrays.get(array)?.volumes.get(name).cloned())
    }

    pub fn volume_by_naa(&self, naa: &str) -> Option<Volume> {
        let naa = naa.to_ascii_lowercase();
        self.read(|model| {
            model
                .arrays
                .values()
                .flat_map(|a| a.volumes.values())
                .find(|v| v.naa == naa)
                .cloned()
        })
    }

    /// Records that `volume` backs the vVol `vvol_id`, as the array's VASA provider does.
    pub fn back_vvol(&self, array: &str, volume: &str, vvol_id: &str) -> Result<(), SanError> {
        self.change(|model| {
            let state = array_mut(model, array)?;
            if !state.volumes.contains_key(volume) {
                return Err(SanError::UnknownVolume {
                    array: array.to_owned(),
                    volume: volume.to_owned(),
                });
            }
            state.vvols.insert(volume.to_owned(), vvol_id.to_owned());
            Ok(())
        })
    }

    /// The volumes of `array` that back vVols, with the vVol ids, ordered by volume name.
    pub fn vvol_backings(&self, array: &str) -> Vec<(String, String)> {
        self.read(|model| {
            model
                .arrays
                .get(array)
                .map(|a| a.vvols.clone().into_iter().collect())
                .unwrap_or_default()
        })
    }

    /// Volumes of `array` ordered by name (empty when the array does not exist).
    pub fn volumes(&self, array: &str) -> Vec<Volume> {
        self.read(|model| {
            model
                .arrays
                .get(array)
                .map(|a| a.volumes.values().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// Creates a group; fails with [`SanError::GroupExists`] when the name is taken.
    pub fn create_group(&self, array: &str, spec: GroupSpec) -> Result<InitiatorGroup, SanError> {
        self.create_group_with_comment(array, spec, None)
    }

    /// [`San::create_group`] for arrays that store a comment with the group; the group appears
    /// with its comment in one change, so no reader ever sees it without.
    pub fn create_group_with_comment(
        &self,
        array: &str,
        spec: GroupSpec,
        comment: Option<String>,
    ) -> Result<InitiatorGroup, SanError> {
        validate_name("initiator group", &spec.name)?;
        let ids = spec
            .initiators
            .iter()
            .map(|i| InitiatorId::parse(i))
            .collect::<Result<Vec<_>, _>>()?;
        self.change(|model| {
            let state = array_mut(model, array)?;
            if state.groups.contains_key(&spec.name) {
                return Err(SanError::GroupExists {
                    array: array.to_owned(),
                    group: spec.name.clone(),
                });
            }
            let mut unique = GroupState {
                group: InitiatorGroup {
                    array: array.to_owned(),
                    uuid: stable_uuid(&[array, "group", &spec.name]),
                    name: spec.name.clone(),
                    initiators: Vec::new(),
                    protocol: spec.protocol.clone(),
                    os_type: spec.os_type.clone(),
                    comment,
                },
                ids: Vec::new(),
            };
            for (raw, id) in spec.initiators.iter().zip(ids) {
                if !unique.ids.contains(&id) {
                    unique.ids.push(id);
                    unique.group.initiators.push(raw.clone());
                }
            }
            let group = unique.group.clone();
            state.groups.insert(spec.name.clone(), unique);
            Ok(group)
        })
    }

    /// Makes sure `group` exists and contains `initiators` (other members are left alone).
    pub fn ensure_group(
        &self,
        array: &str,
        group: &str,
        initiators: &[String],
    ) -> Result<(), SanError> {
        match self.create_group(
            array,
            GroupSpec {
                name: group.to_owned(),
                initiators: initiators.to_vec(),
                ..GroupSpec::default()
            },
        ) {
            Ok(_) => return Ok(()),
            Err(SanError::GroupExists { .. }) => {}
            Err(other) => return Err(other),
        }
        for initiator in initiators {
            match self.add_initiator(array, group, initiator) {
                Ok(()) | Err(SanError::InitiatorExists { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    pub fn add_initiator(&self, array: &str, group: &str, initiator: &str) -> Result<(), SanError> {
        let id = InitiatorId::parse(initiator)?;
        self.change(|model| {
            let state = group_mut(array_mut(model, array)?, array, group)?;
            if state.ids.contains(&id) {
                return Err(SanError::InitiatorExists {
                    array: array.to_owned(),
                    group: group.to_owned(),
                    initiator: initiator.to_owned(),
                });
            }
            state.ids.push(id);
            state.group.initiators.push(initiator.to_owned());
            Ok(())
        })
    }

    pub fn remove_initiator(
        &self,
        array: &str,
        group: &str,
        initiator: &str,
    ) -> Result<(), SanError> {
        let id = InitiatorId::parse(initiator)?;
        self.change(|model| {
            let state = group_mut(array_mut(model, array)?, array, group)?;
            let Some(index) = state.ids.iter().position(|known| *known == id) else {
                return Err(SanError::UnknownInitiator {
                    array: array.to_owned(),
                    group: group.to_owned(),
                    initiator: initiator.to_owned(),
                });
            };
            state.ids.remove(index);
            state.group.initiators.remove(index);
            Ok(())
        })
    }

    /// Sets the host personality the array records for `group` (ONTAP igroup `os_type`, Vantara
    /// host mode, ...): how a scenario gets a group an administrator set up for another OS.
    pub fn set_group_os_type(
        &self,
        array: &str,
        group: &str,
        os_type: Option<&str>,
    ) -> Result<(), SanError> {
        self.change(|model| {
            let state = group_mut(array_mut(model, array)?, array, group)?;
            state.group.os_type = os_type.map(str::to_owned);
            Ok(())
        })
    }

    /// Deletes a group that has no volumes mapped.
    pub fn delete_group(&self, array: &str, group: &str) -> Result<(), SanError> {
        self.change(|model| {
            let state = array_mut(model, array)?;
            let volumes: Vec<String> = state
                .mappings
                .iter()
                .filter(|m| m.group == group)
                .map(|m| m.volume.clone())
                .collect();
            if !volumes.is_empty() {
                return Err(SanError::GroupInUse {
                    array: array.to_owned(),
                    group: group.to_owned(),
                    volumes,
                });
            }
            state
                .groups
                .remove(group)
                .map(|_| ())
                .ok_or_else(|| SanError::UnknownGroup {
                    array: array.to_owned(),
                    group: group.to_owned(),
                })
        })
    }

    pub fn group(&self, array: &str, group: &str) -> Option<InitiatorGroup> {
        self.read(|model| Some(model.arrays.get(array)?.groups.get(group)?.group.clone()))
    }

    /// Groups of `array` ordered by name.
    pub fn groups(&self, array: &str) -> Vec<InitiatorGroup> {
        self.read(|model| {
            model
                .arrays
                .get(array)
                .map(|a| a.groups.values().map(|g| g.group.clone()).collect())
                .unwrap_or_default()
        })
    }

    /// Maps `volume` to `group` under the lowest free LUN id of that group.
    pub fn map(&self, array: &str, volume: &str, group: &str) -> Result<u32, SanError> {
        self.map_at(array, volume, group, None)
    }

    /// Maps `volume` to `group`, under `lun_id` when given, else under the lowest free id.
    pub fn map_at(
        &self,
        array: &str,
        volume: &str,
        group: &str,
        lun_id: Option<u32>,
    ) -> Result<u32, SanError> {
        if let Some(lun_id) = lun_id.filter(|id| *id > MAX_LUN_ID) {
            return Err(SanError::LunIdOutOfRange { lun_id });
        }
        self.change(|model| {
            let state = array_mut(model, array)?;
            if !state.volumes.contains_key(volume) {
                return Err(SanError::UnknownVolume {
                    array: array.to_owned(),
                    volume: volume.to_owned(),
                });
            }
            if !state.groups.contains_key(group) {
                return Err(SanError::UnknownGroup {
                    array: array.to_owned(),
                    group: group.to_owned(),
                });
            }
            let in_group: Vec<&LunMapping> =
                state.mappings.iter().filter(|m| m.group == group).collect();
            if let Some(existing) = in_group.iter().find(|m| m.volume == volume) {
                return Err(SanError::AlreadyMapped {
                    array: array.to_owned(),
                    volume: volume.to_owned(),
                    group: group.to_owned(),
                    lun_id: existing.lun_id,
                });
            }
            let used = |id: u32| in_group.iter().any(|m| m.lun_id == id);
            let lun_id = match lun_id {
                Some(id) if used(id) => {
                    return Err(SanError::LunIdInUse {
                        array: array.to_owned(),
                        group: group.to_owned(),
                        lun_id: id,
                    });
                }
                Some(id) => id,
                None => (0..=MAX_LUN_ID).find(|id| !used(*id)).ok_or_else(|| {
                    SanError::LunIdsExhausted {
                        array: array.to_owned(),
                        group: group.to_owned(),
                    }
                })?,
            };
            state.mappings.push(LunMapping {
                array: array.to_owned(),
                volume: volume.to_owned(),
                group: group.to_owned(),
                lun_id,
            });
            Ok(lun_id)
        })
    }

    pub fn unmap(&self, array: &str, volume: &str, group: &str) -> Result<(), SanError> {
        self.change(|model| {
            let state = array_mut(model, array)?;
            let before = state.mappings.len();
            state
                .mappings
                .retain(|m| !(m.volume == volume && m.group == group));
            if state.mappings.len() == before {
                return Err(SanError::NotMapped {
                    array: array.to_owned(),
                    volume: volume.to_owned(),
                    group: group.to_owned(),
                });
            }
            Ok(())
        })
    }

    /// All mappings on `array`, in creation order.
    pub fn mappings(&self, array: &str) -> Vec<LunMapping> {
        self.read(|model| {
            model
                .arrays
                .get(array)
                .map(|a| a.mappings.clone())
                .unwrap_or_default()
        })
    }

    /// What a host with these initiators could see if it rescanned now: every volume mapped to a
    /// group holding one of them, once per device (the lowest LUN id wins when several groups match).
    pub fn visible_luns(&self, initiators: &[String]) -> Vec<VisibleLun> {
        let host: Vec<InitiatorId> = initiators
            .iter()
            .filter_map(|i| InitiatorId::parse(i).ok())
            .collect();
        self.read(|model| {
            let mut seen: BTreeMap<String, VisibleLun> = BTreeMap::new();
            for state in model.arrays.values() {
                for mapping in &state.mappings {
                    let admits = state
                        .groups
                        .get(&mapping.group)
                        .is_some_and(|g| g.ids.iter().any(|id| host.contains(id)));
                    let Some(volume) = state.volumes.get(&mapping.volume).filter(|_| admits) else {
                        continue;
                    };
                    let candidate = VisibleLun {
                        naa: volume.naa.clone(),
                        lun_id: mapping.lun_id,
                        volume: volume.clone(),
                    };
                    seen.entry(volume.naa.clone())
                        .and_modify(|known| {
                            if candidate.lun_id < known.lun_id {
                                *known = candidate.clone();
                            }
                        })
                        .or_insert(candidate);
                }
            }
            seen.into_values().collect()
        })
    }

    /// The VAAI clone (XCOPY) status ESXi reports for device `naa`: `supported` unless set.
    pub fn vaai_clone_status(&self, naa: &str) -> VaaiStatusSpec {
        let naa = naa.to_ascii_lowercase();
        self.read(|model| model.vaai_clone.get(&naa).copied().unwrap_or_default())
    }

    /// Sets the VAAI clone status of device `naa` (a scenario's `vaai_clone`, or a test).
    pub fn set_vaai_clone_status(&self, naa: &str, status: VaaiStatusSpec) {
        let naa = naa.to_ascii_lowercase();
        self.record(|model| {
            model.vaai_clone.insert(naa, status);
        });
    }

    pub fn clone_counters(&self, naa: &str) -> CloneCounters {
        let naa = naa.to_ascii_lowercase();
        self.read(|model| model.counters.get(&naa).copied().unwrap_or_default())
    }

    /// Records an offloaded clone onto device `naa`: `write_ops` XCOPY segments written, and one
    /// failed clone when the copy did not complete.
    pub fn record_clone(&self, naa: &str, write_ops: u64, failed: bool) {
        let naa = naa.to_ascii_lowercase();
        self.record(|model| {
            let counters = model.counters.entry(naa).or_default();
            counters.clone_write_ops += write_ops;
            counters.failed_clone_ops += u64::from(failed);
        });
    }

    /// Records XCOPY segments read from device `naa` (the source side of an offloaded clone).
    pub fn record_clone_reads(&self, naa: &str, read_ops: u64) {
        let naa = naa.to_ascii_lowercase();
        self.record(|model| {
            model.counters.entry(naa).or_default().clone_read_ops += read_ops;
        });
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        // A panic while holding the lock leaves a consistent model (every mutation is a single
        // insert/remove), so a poisoned lock is still safe to use.
        self.shared
            .model
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn read<T>(&self, f: impl FnOnce(&Model) -> T) -> T {
        f(&self.lock())
    }

    fn change<T>(&self, f: impl FnOnce(&mut Model) -> Result<T, SanError>) -> Result<T, SanError> {
        let result = f(&mut self.lock());
        if result.is_ok() {
            self.shared
                .changes
                .send_modify(|generation| *generation += 1);
        }
        result
    }

    fn record(&self, f: impl FnOnce(&mut Model)) {
        f(&mut self.lock());
        self.shared
            .changes
            .send_modify(|generation| *generation += 1);
    }
}

fn array_mut<'m>(model: &'m mut Model, array: &str) -> Result<&'m mut ArrayState, SanError> {
    model
        .arrays
        .get_mut(array)
        .ok_or_else(|| SanError::UnknownArray {
            array: array.to_owned(),
        })
}

fn group_mut<'a>(
    state: &'a mut ArrayState,
    array: &str,
    group: &str,
) -> Result<&'a mut GroupState, SanError> {
    state
        .groups
        .get_mut(group)
        .ok_or_else(|| SanError::UnknownGroup {
            array: array.to_owned(),
            group: group.to_owned(),
        })
}

/// Array and group names become file names and URL segments, so keep them to a safe alphabet.
fn validate_name(what: &'static str, name: &str) -> Result<(), SanError> {
    let ok = !name.is_empty()
        && name.len() <= 96
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(SanError::InvalidName {
            what,
            name: name.to_owned(),
            reason: "use 1-96 characters from A-Z a-z 0-9 - _ . (not starting with '.')",
        })
    }
}

fn create_sparse(path: &Path, size_bytes: u64) -> Result<(), SanError> {
    let backing = |action, source| SanError::Backing {
        action,
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| backing("create the directory of", e))?;
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| backing("create", e))?;
    file.set_len(size_bytes).map_err(|e| backing("size", e))
}
