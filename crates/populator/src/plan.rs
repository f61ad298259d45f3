//! Plan: which way a disk is copied, decided from its backing, the array's capabilities and the
//! `DISABLE_VVOL_METHOD`/`DISABLE_RDM_METHOD` switches, plus the size rule every path
//! shares: the target must hold the whole source.

use co_api::CloneMethod;
use co_storage::ArrayCopySource;
use co_vsphere::inventory::DiskKind;

use crate::error::CopyError;
use crate::metrics::CloneMethodLabel;

/// How the bytes move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyPath {
    /// The array copies its own volume (vVol or RDM source) onto the target; no ESXi involvement.
    ArrayCopy(ArrayCopySource),
    /// ESXi `vmkfstools` clones into an RDM on the target LUN, offloaded with XCOPY where possible.
    Xcopy(CloneMethod),
}

impl CopyPath {
    /// The `clone_method` metric label.
    pub fn metric_label(&self) -> CloneMethodLabel {
        match self {
            CopyPath::ArrayCopy(ArrayCopySource::VVol { .. }) => CloneMethodLabel::Vvol,
            CopyPath::ArrayCopy(ArrayCopySource::Rdm { .. }) => CloneMethodLabel::Rdm,
            CopyPath::Xcopy(CloneMethod::Vib) => CloneMethodLabel::Vib,
            CopyPath::Xcopy(CloneMethod::Ssh) => CloneMethodLabel::Ssh,
        }
    }
}

/// What the planner needs to know.
#[derive(Clone, Copy)]
pub struct PlanInput<'a> {
    pub disk: &'a DiskKind,
    pub clone_method: CloneMethod,
    pub disable_vvol_method: bool,
    pub disable_rdm_method: bool,
    /// `Some(supports)` when the array has an array-side copy; `supports` answers per source.
    pub array_copy: Option<&'a dyn Fn(&ArrayCopySource) -> bool>,
}

/// Picks the copy path. An array without the capability (or refusing this source) falls back to
/// XCOPY, as upstream does, and the decision is logged by the caller.
pub fn choose_path(input: &PlanInput<'_>) -> CopyPath {
    let source = match input.disk {
        DiskKind::Vvol { backing_object_id } if !input.disable_vvol_method => {
            Some(ArrayCopySource::VVol {
                vvol_id: backing_object_id.clone(),
            })
        }
        DiskKind::Rdm {
            device_name,
            lun_uuid,
        } if !input.disable_rdm_method => Some(ArrayCopySource::Rdm {
            device_name: device_name.clone(),
            lun_uuid: lun_uuid.clone(),
        }),
        _ => None,
    };
    match (source, input.array_copy) {
        (Some(source), Some(supports)) if supports(&source) => CopyPath::ArrayCopy(source),
        _ => CopyPath::Xcopy(input.clone_method),
    }
}

/// Refuses a target smaller than the source disk, before anything is changed.
pub fn check_capacity(
    source_bytes: u64,
    target_bytes: u64,
    target_name: &str,
) -> Result<(), CopyError> {
    if target_bytes < source_bytes {
        return Err(CopyError::Refused(format!(
            "the target volume {target_name} holds {target_bytes} bytes but the source disk has {source_bytes}; \
             request a PVC at least as large as the disk"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(disk: DiskKind, disable: (bool, bool), array: Option<bool>) -> CopyPath {
        let supports = move |_: &ArrayCopySource| array.unwrap_or(false);
        choose_path(&PlanInput {
            disk: &disk,
            clone_method: CloneMethod::Ssh,
            disable_vvol_method: disable.0,
            disable_rdm_method: disable.1,
            array_copy: array
                .is_some()
                .then_some(&supports as &dyn Fn(&ArrayCopySource) -> bool),
        })
    }

    #[test]
    fn vvol_and_rdm_use_the_array_only_when_it_can_and_is_allowed() {
        let vvol = DiskKind::Vvol {
            backing_object_id: "rfc4122.1".into(),
        };
        let rdm = DiskKind::Rdm {
            device_name: "vml.1".into(),
            lun_uuid: "0200".into(),
        };
        assert_eq!(
            plan(vvol.clone(), (false, false), Some(true)),
            CopyPath::ArrayCopy(ArrayCopySource::VVol {
                vvol_id: "rfc4122.1".into()
            })
        );
        assert_eq!(
            plan(vvol.clone(), (true, false), Some(true)),
            CopyPath::Xcopy(CloneMethod::Ssh),
            "DISABLE_VVOL_METHOD"
        );
        assert_eq!(
            plan(rdm.clone(), (false, true), Some(true)),
            CopyPath::Xcopy(CloneMethod::Ssh),
            "DISABLE_RDM_METHOD"
        );
        assert_eq!(
            plan(rdm.clone(), (false, false), None),
            CopyPath::Xcopy(CloneMethod::Ssh),
            "array without the capability (ONTAP)"
        );
        assert_eq!(
            plan(rdm, (false, false), Some(false)),
            CopyPath::Xcopy(CloneMethod::Ssh),
            "array refusing this source"
        );
        assert_eq!(
            plan(DiskKind::Vmdk, (false, false), Some(true)),
            CopyPath::Xcopy(CloneMethod::Ssh)
        );
    }

    #[test]
    fn smaller_targets_are_refused() {
        assert!(check_capacity(10, 10, "v").is_ok());
        let err = check_capacity(11, 10, "v").unwrap_err();
        assert!(err.to_string().contains("at least as large"), "{err}");
    }
}
