//! Resolve and plan: find the VM, the source disk and the array volume behind the PV (the vSphere
//! side and the array side at once: neither needs the other), check the volume can hold the disk,
//! and choose the copy path (array-side copy or XCOPY through ESXi).

use co_storage::{ArrayCopySource, Volume};
use co_vsphere::ManagedObjectReference;
use co_vsphere::inventory::SourceDisk;
use tracing::info;

use super::Run;
use crate::error::CopyError;
use crate::plan::{CopyPath, PlanInput, check_capacity, choose_path};

/// What the copy reads from and writes to.
pub(super) struct Source {
    pub vm: ManagedObjectReference,
    pub disk: SourceDisk,
    pub volume: Volume,
}

impl Run<'_> {
    pub(super) async fn resolve(&self) -> Result<Source, CopyError> {
        let (engine, job) = (self.engine, self.job);
        let source = async {
            let vm = match &job.vm_id {
                Some(id) => engine.vsphere.find_vm(id).await,
                None => engine.vsphere.find_vm_by_disk(&job.vmdk).await,
            }
            .map_err(CopyError::vsphere("finding the source VM"))?;
            let disk = engine
                .vsphere
                .source_disk(&vm, &job.vmdk)
                .await
                .map_err(CopyError::vsphere("reading the source disk"))?;
            Ok::<_, CopyError>((vm, disk))
        };
        let target = async {
            engine
                .storage
                .resolve_volume(&job.pv)
                .await
                .map_err(CopyError::storage("resolving the PV to an array volume"))
        };
        let ((vm, disk), volume) = tokio::try_join!(source, target)?;
        self.report(|report| {
            report.provisioned_bytes = disk.provisioned_bytes;
            report.allocated_bytes = disk.allocated_bytes.unwrap_or(0);
        });
        check_capacity(disk.provisioned_bytes, volume.size_bytes, &volume.name)?;
        Ok(Source { vm, disk, volume })
    }

    pub(super) fn plan(&self, source: &Source) -> CopyPath {
        let array_copy = self.engine.storage.array_copy();
        let supports =
            |candidate: &ArrayCopySource| array_copy.is_some_and(|a| a.supports(candidate));
        let path = choose_path(&PlanInput {
            disk: &source.disk.kind,
            clone_method: self.job.clone_method,
            disable_vvol_method: self.job.disable_vvol_method,
            disable_rdm_method: self.job.disable_rdm_method,
            array_copy: array_copy.map(|_| &supports as &dyn Fn(&ArrayCopySource) -> bool),
        });
        self.report(|report| report.clone_method = path.metric_label());
        info!(disk_kind = ?source.disk.kind, path = ?path, provisioned_bytes = source.disk.provisioned_bytes, volume = %source.volume.name, "copy path chosen");
        path
    }
}
