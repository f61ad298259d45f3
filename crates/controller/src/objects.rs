//! The objects the controller creates for one PVC, built from the observed PVC and CR: the prime
//! PVC and the populator pod. Pure: what they contain is decided here and tested without a cluster.

use std::collections::BTreeMap;

use co_api::contract::{flags, metrics, names};
use co_api::{NormalizedSpec, VSphereXcopyVolumePopulator};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvFromSource, EnvVar, EnvVarSource,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, Pod, PodSecurityContext, PodSpec,
    ResourceRequirements, SeccompProfile, SecretEnvSource, SecretKeySelector, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::settings::Settings;

/// PVC annotation the scheduler sets on a WaitForFirstConsumer claim.
pub const SELECTED_NODE_ANNOTATION: &str = "volume.kubernetes.io/selected-node";
/// Service account of populator pods (Forklift creates it in each target namespace).
pub const POPULATOR_SERVICE_ACCOUNT: &str = "populator";
/// The populator container's name (lib-volume-populator's).
pub const CONTAINER_NAME: &str = "populate";
/// Label naming the user PVC on the pod.
pub const PVC_NAME_LABEL: &str = "pvcName";
/// Label naming the ESXi host a pod copies through: the throttle counts pods by it.
pub const SOURCE_HOST_LABEL: &str = "sourceHost";
/// Labels copied from the CR (Forklift sets them) onto the pod and prime PVC.
const COPIED_LABELS: [&str; 3] = ["migration", "plan", "vmID"];
/// UID the populator runs as (upstream's image user).
const POPULATOR_UID: i64 = 107;

/// The ESXi host a copy runs through, when known: `spec.migrationHost`, else the CR's
/// `sourceHost` label. It keys the per-host throttle.
pub fn source_host(cr: &VSphereXcopyVolumePopulator, spec: &NormalizedSpec) -> Option<String> {
    spec.migration_host.clone().or_else(|| {
        cr.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SOURCE_HOST_LABEL))
            .filter(|h| is_label_value(h))
            .cloned()
    })
}

/// Whether `value` can be a label value (≤ 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends).
fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn owner_reference(pvc: &PersistentVolumeClaim) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "PersistentVolumeClaim".into(),
        name: pvc.metadata.name.clone().unwrap_or_default(),
        uid: pvc.metadata.uid.clone().unwrap_or_default(),
        ..Default::default()
    }
}

fn copied_labels(cr: &VSphereXcopyVolumePopulator) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    if let Some(cr_labels) = &cr.metadata.labels {
        for key in COPIED_LABELS {
            if let Some(value) = cr_labels.get(key).filter(|v| is_label_value(v)) {
                labels.insert(key.to_owned(), value.clone());
            }
        }
    }
    labels
}

/// The requested size of a PVC in bytes, when it has one we can read.
pub fn requested_bytes(pvc: &PersistentVolumeClaim) -> Option<u64> {
    let quantity = pvc
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?;
    parse_quantity_bytes(&quantity.0)
}

/// Parses the byte quantities PVCs use; shared with the lab's CSI provisioner.
pub use co_api::parse_quantity_bytes;

/// `prime-<uid>` in the CR's namespace: the user PVC's class, size, mode and access modes, owned by
/// the user PVC, with the selected node copied for WaitForFirstConsumer classes.
pub fn prime_pvc(
    pvc: &PersistentVolumeClaim,
    cr: &VSphereXcopyVolumePopulator,
) -> PersistentVolumeClaim {
    let uid = pvc.metadata.uid.clone().unwrap_or_default();
    let spec = pvc.spec.clone().unwrap_or_default();
    let annotations = pvc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SELECTED_NODE_ANNOTATION))
        .map(|node| BTreeMap::from([(SELECTED_NODE_ANNOTATION.to_owned(), node.clone())]));
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(names::prime_pvc_name(&uid)),
            namespace: cr.metadata.namespace.clone(),
            labels: Some(copied_labels(cr)).filter(|l| !l.is_empty()),
            annotations,
            owner_references: Some(vec![owner_reference(pvc)]),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: spec.access_modes,
            resources: spec.resources,
            storage_class_name: spec.storage_class_name,
            volume_mode: spec.volume_mode,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The populate arguments, `--name=value`, from the shared flag contract.
pub fn populate_args(
    pvc: &PersistentVolumeClaim,
    cr: &VSphereXcopyVolumePopulator,
    spec: &NormalizedSpec,
) -> Vec<String> {
    let namespace = cr.metadata.namespace.clone().unwrap_or_default();
    let mut args = Vec::new();
    if let Some(vm) = &spec.vm_id {
        args.push(flags::SOURCE_VM_ID.with_value(vm));
    }
    args.push(flags::SOURCE_VMDK.with_value(&spec.vmdk_path.to_string()));
    args.push(flags::TARGET_NAMESPACE.with_value(&namespace));
    args.push(flags::CR_NAME.with_value(cr.metadata.name.as_deref().unwrap_or_default()));
    args.push(flags::CR_NAMESPACE.with_value(&namespace));
    args.push(flags::OWNER_NAME.with_value(pvc.metadata.name.as_deref().unwrap_or_default()));
    args.push(flags::SECRET_NAME.with_value(&spec.secret_name));
    args.push(flags::STORAGE_VENDOR_PRODUCT.with_value(spec.vendor.as_str()));
    if let Some(host) = &spec.migration_host {
        args.push(flags::MIGRATION_HOST.with_value(host));
    }
    if let Some(bytes) = requested_bytes(pvc) {
        args.push(flags::PVC_SIZE.with_value(&bytes.to_string()));
    }
    args.push(flags::OWNER_UID.with_value(pvc.metadata.uid.as_deref().unwrap_or_default()));
    args
}

/// `populate-<uid>`: the populator pod. It does not mount the prime PVC: the populator never does
/// I/O on it (it finds the array volume through the prime PVC's PV), and mounting it would attach
/// the LUN to a worker while the ESXi host writes to it.
pub fn populator_pod(
    pvc: &PersistentVolumeClaim,
    cr: &VSphereXcopyVolumePopulator,
    spec: &NormalizedSpec,
    settings: &Settings,
    image: &str,
) -> Pod {
    let uid = pvc.metadata.uid.clone().unwrap_or_default();
    let mut labels = copied_labels(cr);
    if let Some(name) = pvc.metadata.name.as_ref().filter(|n| is_label_value(n)) {
        labels.insert(PVC_NAME_LABEL.into(), name.clone());
    }
    if let Some(host) = source_host(cr, spec).filter(|h| is_label_value(h)) {
        labels.insert(SOURCE_HOST_LABEL.into(), host);
    }
    let node_name = pvc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SELECTED_NODE_ANNOTATION))
        .cloned();
    let quantities = |cpu: &str, memory: &str| {
        Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ]))
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(names::populator_pod_name(&uid)),
            namespace: cr.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner_reference(pvc)]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            service_account_name: Some(POPULATOR_SERVICE_ACCOUNT.into()),
            node_name,
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(POPULATOR_UID),
                fs_group: Some(POPULATOR_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            containers: vec![Container {
                name: CONTAINER_NAME.into(),
                image: Some(image.to_owned()),
                args: Some(populate_args(pvc, cr, spec)),
                ports: Some(vec![ContainerPort {
                    name: Some(metrics::CONTAINER_PORT_NAME.into()),
                    container_port: i32::from(metrics::DEFAULT_PORT),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                env_from: Some(vec![EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: spec.secret_name.clone(),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }]),
                env: Some(vec![EnvVar {
                    name: flags::VSPHERE_CA_CERT.env_name().into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: spec.secret_name.clone(),
                            key: "ca.crt".into(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                resources: Some(ResourceRequirements {
                    requests: quantities(&settings.requests_cpu, &settings.requests_memory),
                    limits: quantities(&settings.limits_cpu, &settings.limits_memory),
                    ..Default::default()
                }),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    run_as_non_root: Some(true),
                    read_only_root_filesystem: Some(false),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".into()]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                // The last lines of the log become the termination message of a failed run: the
                // controller quotes the populator's last error from there.
                termination_message_policy: Some("FallbackToLogsOnError".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_checked() {
        assert!(is_label_value("host-12"));
        assert!(!is_label_value("HostSystem:host-12"));
        assert!(!is_label_value("-x"));
    }
}
