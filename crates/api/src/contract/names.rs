//! Names of objects that more than one process creates or finds: they must not drift, because
//! old and new populators, the controller and Forklift's controller meet through them.

/// Prefix of every array object copy-offload creates for an ESXi host (`xcopy-<hostID>…`);
/// upstream uses the same prefix, so its leftovers are recognised as ours.
pub const ARRAY_OBJECT_PREFIX: &str = "xcopy-";

/// Annotation holding the copy journal in cluster mode (on the CR, else on the target PVC).
pub const JOURNAL_ANNOTATION: &str = "copy-offload.konveyor.io/journal";

/// Annotation by which a Forklift `Plan` opts in to copy-offload's planner (value `"true"`):
/// only such plans get their per-disk PVCs, Secrets and populator CRs from copy-offload, so that
/// where Forklift's own controller plans disks the two never create objects for the same plan.
pub const PLAN_OPT_IN_ANNOTATION: &str = "copy-offload.konveyor.io/plan";

/// ConfigMap (in the host lease namespace) recording the first-seen SSH host key of each ESXi host.
pub const HOST_KEYS_CONFIG_MAP: &str = "copy-offload-esxi-ssh-host-keys";

/// Namespace of the host leases when `HOST_LEASE_NAMESPACE` is unset (upstream's default).
pub const DEFAULT_LEASE_NAMESPACE: &str = "openshift-mtv";

/// Concurrent rescans per ESXi host (upstream's hard-coded lease slot count).
pub const DEFAULT_LEASE_SLOTS: u32 = 2;

/// Label the Forklift controller sets on a CR whose copy completed.
pub const OFFLOAD_COMPLETED_LABEL: &str = "forklift.konveyor.io/offload-completed";

/// Name of the prime PVC the controller creates for the PVC with this UID (lib-volume-populator's
/// convention, which Forklift and the populator both rely on).
pub fn prime_pvc_name(pvc_uid: &str) -> String {
    format!("prime-{pvc_uid}")
}

/// Name of the populator pod for the PVC with this UID.
pub fn populator_pod_name(pvc_uid: &str) -> String {
    format!("populate-{pvc_uid}")
}

/// The host id upstream derives from a host's managed-object reference (`HostSystem:host-1234`
/// → `hostsystem-host-1234`); it names both the host leases and the array objects.
pub fn host_id_from_managed_object(moref: &str) -> String {
    moref.to_lowercase().replace(':', "-")
}

/// Name of one host-lease slot (`esxi-lock-<hostID>-slot-<k>`).
pub fn host_lease_name(host_id: &str, slot: u32) -> String {
    format!("esxi-lock-{host_id}-slot-{slot}")
}

/// Base name of the array objects created for an ESXi host (`xcopy-<hostID>`).
pub fn array_object_base_name(host_id: &str) -> String {
    format!("{ARRAY_OBJECT_PREFIX}{host_id}")
}

/// Whether an array object's name says copy-offload (or upstream) created it.
pub fn is_array_object_ours(name: &str) -> bool {
    name.starts_with(ARRAY_OBJECT_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_pinned() {
        assert_eq!(prime_pvc_name("0d2e-11"), "prime-0d2e-11");
        assert_eq!(populator_pod_name("0d2e-11"), "populate-0d2e-11");
        let host = host_id_from_managed_object("HostSystem:host-1234");
        assert_eq!(host, "hostsystem-host-1234");
        assert_eq!(
            host_lease_name(&host, 1),
            "esxi-lock-hostsystem-host-1234-slot-1"
        );
        assert_eq!(array_object_base_name(&host), "xcopy-hostsystem-host-1234");
        assert!(is_array_object_ours("xcopy-hostsystem-host-1234-iscsi"));
        assert!(!is_array_object_ours("worker-0"));
        assert_eq!(JOURNAL_ANNOTATION, "copy-offload.konveyor.io/journal");
        assert_eq!(PLAN_OPT_IN_ANNOTATION, "copy-offload.konveyor.io/plan");
        assert_eq!(HOST_KEYS_CONFIG_MAP, "copy-offload-esxi-ssh-host-keys");
        assert_eq!(DEFAULT_LEASE_NAMESPACE, "openshift-mtv");
    }
}
