//! The decision function, state by state: each test is one observation a (possibly restarted)
//! controller can make, and the actions it must take.

use std::collections::BTreeMap;

use co_api::{CopyPhase, VSphereXcopyVolumePopulatorSpec, VSphereXcopyVolumePopulatorStatus};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, ObjectReference,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeSpec, PodStatus,
    TypedLocalObjectReference, TypedObjectReference, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::*;

const UID: &str = "0d2e-11";
const NOW: &str = "2026-12-04T09:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn settings() -> Settings {
    Settings::defaults("quay.io/copy-offload:test")
}

fn user_pvc() -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("disk-0".into()),
            namespace: Some("mig".into()),
            uid: Some(UID.into()),
            finalizers: Some(vec![FINALIZER.into()]),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            volume_mode: Some("Block".into()),
            storage_class_name: Some("san".into()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity("64Mi".into()),
                )])),
                ..Default::default()
            }),
            data_source_ref: Some(TypedObjectReference {
                api_group: Some(GROUP.into()),
                kind: KIND.into(),
                name: "vm-1-disk-0".into(),
                namespace: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn cr() -> VSphereXcopyVolumePopulator {
    let mut cr = VSphereXcopyVolumePopulator::new(
        "vm-1-disk-0",
        VSphereXcopyVolumePopulatorSpec {
            vm_id: Some("vm-1".into()),
            vmdk_path: "[ds1] vm-1/vm-1.vmdk".into(),
            secret_name: Some("creds".into()),
            storage_vendor_product: "ontap".into(),
            migration_host: Some("host-7".into()),
            ..Default::default()
        },
    );
    cr.metadata.namespace = Some("mig".into());
    cr.metadata.labels = Some(BTreeMap::from([
        ("migration".into(), "m-1".into()),
        ("plan".into(), "p-1".into()),
    ]));
    cr
}

fn prime(volume: Option<&str>, phase: &str) -> PersistentVolumeClaim {
    let mut prime = objects::prime_pvc(&user_pvc(), &cr());
    prime.spec.as_mut().unwrap().volume_name = volume.map(str::to_owned);
    prime.status = Some(PersistentVolumeClaimStatus {
        phase: Some(phase.into()),
        ..Default::default()
    });
    prime
}

fn pod(phase: &str, exit: Option<(i32, &str)>) -> Pod {
    let mut pod = objects::populator_pod(
        &user_pvc(),
        &cr(),
        &cr().spec.normalized().unwrap(),
        &settings(),
        "img",
    );
    pod.status = Some(PodStatus {
        phase: Some(phase.into()),
        pod_ip: (phase == "Running").then(|| "10.0.0.7".into()),
        container_statuses: exit.map(|(code, message)| {
            vec![ContainerStatus {
                name: objects::CONTAINER_NAME.into(),
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: code,
                        message: Some(message.into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]
        }),
        ..Default::default()
    });
    pod
}

fn pv(claim_uid: &str) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some("pv-1".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            claim_ref: Some(ObjectReference {
                uid: Some(claim_uid.into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

struct World {
    pvc: PersistentVolumeClaim,
    cr: Option<VSphereXcopyVolumePopulator>,
    class: ClassBinding,
    prime: Option<PersistentVolumeClaim>,
    pod: Option<Pod>,
    pv: Option<PersistentVolume>,
    inflight: usize,
    settings: Settings,
}

impl World {
    fn new() -> Self {
        Self {
            pvc: user_pvc(),
            cr: Some(cr()),
            class: ClassBinding::Immediate,
            prime: Some(prime(Some("pv-1"), "Bound")),
            pod: None,
            pv: None,
            inflight: 0,
            settings: settings(),
        }
    }

    fn decide(&self) -> Vec<Action> {
        let observed = Observed {
            pvc: &self.pvc,
            populator: self.cr.as_ref(),
            class: self.class,
            prime: self.prime.as_ref(),
            pod: self.pod.as_ref(),
            prime_pv: self.pv.as_ref(),
            inflight_on_host: self.inflight,
            now: now(),
        };
        decide(&observed, &self.settings, "quay.io/copy-offload:test")
    }

    fn with_cr_phase(mut self, phase: CopyPhase) -> Self {
        self.cr.as_mut().unwrap().status = Some(VSphereXcopyVolumePopulatorStatus {
            phase: Some(phase),
            ..Default::default()
        });
        self
    }
}

fn kinds(actions: &[Action]) -> Vec<&'static str> {
    actions
        .iter()
        .map(|a| match a {
            Action::AddFinalizer => "AddFinalizer",
            Action::RemoveFinalizer => "RemoveFinalizer",
            Action::CreatePrime(_) => "CreatePrime",
            Action::CreatePod(_) => "CreatePod",
            Action::DeletePod => "DeletePod",
            Action::DeletePrime => "DeletePrime",
            Action::RecordAttempt { .. } => "RecordAttempt",
            Action::RebindPv { .. } => "RebindPv",
            Action::Monitor { .. } => "Monitor",
            Action::StopMonitor => "StopMonitor",
            Action::Status(_) => "Status",
            Action::Event(_) => "Event",
            Action::Requeue(_) => "Requeue",
        })
        .collect()
}

fn events(actions: &[Action]) -> Vec<&Event> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn status(actions: &[Action]) -> &StatusUpdate {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Status(s) => Some(s),
            _ => None,
        })
        .expect("a status update")
}

#[test]
fn pvcs_of_other_sources_are_ignored() {
    let mut world = World::new();
    world.pvc.spec.as_mut().unwrap().data_source_ref = None;
    assert!(world.decide().is_empty());
    world.pvc.spec.as_mut().unwrap().data_source_ref = Some(TypedObjectReference {
        api_group: None,
        kind: "PersistentVolumeClaim".into(),
        name: "other".into(),
        namespace: None,
    });
    assert!(world.decide().is_empty());
    world.pvc.spec.as_mut().unwrap().data_source_ref = Some(TypedObjectReference {
        api_group: Some("cdi.kubevirt.io".into()),
        kind: KIND.into(),
        name: "x".into(),
        namespace: None,
    });
    assert!(world.decide().is_empty());
}

#[test]
fn data_source_ref_wins_and_data_source_is_the_fallback() {
    let mut pvc = user_pvc();
    assert_eq!(source_name(&pvc).as_deref(), Some("vm-1-disk-0"));
    let spec = pvc.spec.as_mut().unwrap();
    spec.data_source = Some(TypedLocalObjectReference {
        api_group: Some(GROUP.into()),
        kind: KIND.into(),
        name: "from-data-source".into(),
    });
    assert_eq!(source_name(&pvc).as_deref(), Some("vm-1-disk-0"));
    pvc.spec.as_mut().unwrap().data_source_ref = None;
    assert_eq!(source_name(&pvc).as_deref(), Some("from-data-source"));
    // A cross-namespace reference is not ours to follow (it needs a ReferenceGrant).
    let mut cross = user_pvc();
    cross
        .spec
        .as_mut()
        .unwrap()
        .data_source_ref
        .as_mut()
        .unwrap()
        .namespace = Some("elsewhere".into());
    assert_eq!(source_name(&cross), None);
}

#[test]
fn a_new_pvc_gets_finalizer_prime_pvc_and_pod_at_once() {
    // The populator waits for the prime PVC's volume itself, so its logins overlap the
    // provisioning instead of following it.
    let mut world = World::new();
    world.pvc.metadata.finalizers = None;
    world.prime = None;
    let actions = world.decide();
    assert_eq!(
        kinds(&actions),
        [
            "AddFinalizer",
            "CreatePrime",
            "CreatePod",
            "Status",
            "Event"
        ]
    );
    assert_eq!(
        status(&actions).condition.as_ref().unwrap().reason,
        "PopulatorCreated"
    );
    let Action::CreatePrime(prime) = &actions[1] else {
        unreachable!()
    };
    assert_eq!(prime.metadata.name.as_deref(), Some("prime-0d2e-11"));
    assert_eq!(prime.metadata.namespace.as_deref(), Some("mig"));
    let spec = prime.spec.as_ref().unwrap();
    assert_eq!(spec.storage_class_name.as_deref(), Some("san"));
    assert_eq!(spec.volume_mode.as_deref(), Some("Block"));
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".into()]));
    assert_eq!(
        spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
        "64Mi"
    );
    assert_eq!(
        prime.metadata.owner_references.as_ref().unwrap()[0].uid,
        UID
    );
}

#[test]
fn the_pod_carries_the_populate_contract() {
    let actions = World::new().decide();
    let pod = actions
        .iter()
        .find_map(|a| match a {
            Action::CreatePod(p) => Some(p),
            _ => None,
        })
        .unwrap();
    assert_eq!(pod.metadata.name.as_deref(), Some("populate-0d2e-11"));
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("populator"));
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.node_name, None);
    assert!(
        spec.volumes.is_none(),
        "the pod must not mount the prime PVC"
    );
    let container = &spec.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("quay.io/copy-offload:test")
    );
    assert_eq!(
        container.args.as_ref().unwrap(),
        &[
            "--source-vm-id=vm-1",
            "--source-vmdk=[ds1] vm-1/vm-1.vmdk",
            "--target-namespace=mig",
            "--cr-name=vm-1-disk-0",
            "--cr-namespace=mig",
            "--owner-name=disk-0",
            "--secret-name=creds",
            "--storage-vendor-product=ontap",
            "--migration-host=host-7",
            "--pvc-size=67108864",
            "--owner-uid=0d2e-11",
        ]
    );
    assert_eq!(
        container.env_from.as_ref().unwrap()[0]
            .secret_ref
            .as_ref()
            .unwrap()
            .name,
        "creds"
    );
    let port = &container.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("metrics"), 8443)
    );
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(
        security.capabilities.as_ref().unwrap().drop,
        Some(vec!["ALL".into()])
    );
    let labels = pod.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["sourceHost"], "host-7");
    assert_eq!(labels["pvcName"], "disk-0");
    assert_eq!(labels["migration"], "m-1");
}

#[test]
fn a_missing_cr_waits_with_a_normal_event() {
    let mut world = World::new();
    world.cr = None;
    let actions = world.decide();
    assert_eq!(kinds(&actions), ["Event"]);
    assert!(!events(&actions)[0].warning);
    assert!(events(&actions)[0].message.contains("vm-1-disk-0"));
}

#[test]
fn an_invalid_spec_fails_once_with_the_problems() {
    let mut world = World::new();
    world.cr.as_mut().unwrap().spec.secret_name = None;
    let actions = world.decide();
    assert_eq!(kinds(&actions), ["Event", "Status"]);
    let update = status(&actions);
    assert_eq!(update.phase, Some(CopyPhase::Failed));
    assert!(
        update
            .condition
            .as_ref()
            .unwrap()
            .message
            .contains("secretName")
    );
    assert!(events(&actions)[0].warning);
    let failed = World {
        cr: world.cr.clone(),
        ..World::new()
    }
    .with_cr_phase(CopyPhase::Failed);
    let mut failed = failed;
    failed.cr.as_mut().unwrap().spec.secret_name = None;
    assert!(
        failed.decide().is_empty(),
        "no second event for the same failure"
    );
}

#[test]
fn a_target_pvc_naming_another_pvc_is_refused() {
    let mut world = World::new();
    world.cr.as_mut().unwrap().spec.target_pvc = Some("disk-9".into());
    let actions = world.decide();
    assert_eq!(
        status(&actions).condition.as_ref().unwrap().reason,
        "TargetMismatch"
    );
    world.cr.as_mut().unwrap().spec.target_pvc = Some("disk-0".into());
    assert!(kinds(&world.decide()).contains(&"CreatePod"));
}

#[test]
fn wait_for_first_consumer_waits_for_the_selected_node_then_pins_the_pod() {
    let mut world = World::new();
    world.class = ClassBinding::WaitForFirstConsumer;
    let actions = world.decide();
    assert_eq!(kinds(&actions), ["Status"]);
    assert_eq!(
        status(&actions).condition.as_ref().unwrap().reason,
        "WaitingForFirstConsumer"
    );
    world.pvc.metadata.annotations = Some(BTreeMap::from([(
        SELECTED_NODE_ANNOTATION.into(),
        "worker-1".into(),
    )]));
    world.prime = None;
    let actions = world.decide();
    let prime = actions.iter().find_map(|a| match a {
        Action::CreatePrime(p) => Some(p),
        _ => None,
    });
    let mut bound = (**prime.unwrap()).clone();
    bound.spec.as_mut().unwrap().volume_name = Some("pv-1".into());
    world.prime = Some(bound);
    let actions_with_volume = world.decide();
    assert_eq!(
        prime.unwrap().metadata.annotations.as_ref().unwrap()[SELECTED_NODE_ANNOTATION],
        "worker-1"
    );
    let pod = actions_with_volume.iter().find_map(|a| match a {
        Action::CreatePod(p) => Some(p),
        _ => None,
    });
    assert_eq!(
        pod.unwrap().spec.as_ref().unwrap().node_name.as_deref(),
        Some("worker-1")
    );
}

#[test]
fn a_missing_storage_class_waits() {
    let mut world = World::new();
    world.class = ClassBinding::Missing;
    let actions = world.decide();
    assert_eq!(kinds(&actions), ["Status"]);
    assert!(
        status(&actions)
            .condition
            .as_ref()
            .unwrap()
            .message
            .contains("\"san\"")
    );
}

#[test]
fn the_throttle_waits_for_a_slot_on_the_host() {
    let mut world = World::new();
    world.settings.max_populator_inflight = 2;
    world.inflight = 2;
    let actions = world.decide();
    assert_eq!(kinds(&actions), ["Status", "Event", "Requeue"]);
    let event = events(&actions)[0];
    assert_eq!(event.reason, "PopulatorThrottled");
    assert!(!event.warning);
    assert!(
        event.message.contains("host-7 (2/2 in flight)"),
        "{}",
        event.message
    );
    world.inflight = 1;
    assert!(kinds(&world.decide()).contains(&"CreatePod"));
    // 0 disables the limit; so does an unknown host.
    world.inflight = 50;
    world.settings.max_populator_inflight = 0;
    assert!(kinds(&world.decide()).contains(&"CreatePod"));
    world.settings.max_populator_inflight = 2;
    world.cr.as_mut().unwrap().spec.migration_host = None;
    assert!(kinds(&world.decide()).contains(&"CreatePod"));
    // The CR's sourceHost label keys the throttle when no migration host is pinned.
    world
        .cr
        .as_mut()
        .unwrap()
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("sourceHost".into(), "host-9".into());
    assert_eq!(events(&world.decide())[0].reason, "PopulatorThrottled");
}

#[test]
fn a_running_pod_is_monitored() {
    let mut world = World::new();
    world.prime = Some(prime(Some("pv-1"), "Bound"));
    world.pod = Some(pod("Running", None));
    assert_eq!(
        world.decide(),
        [Action::Monitor {
            pod_ip: "10.0.0.7".into(),
            port: 8443
        }]
    );
    // Pending without an IP: nothing to do until the pod changes.
    world.pod = Some(pod("Pending", None));
    assert!(world.decide().is_empty());
}

#[test]
fn a_retryable_failure_deletes_the_pod_and_records_the_attempt() {
    let mut world = World::new();
    world.prime = Some(prime(Some("pv-1"), "Bound"));
    world.pod = Some(pod(
        "Failed",
        Some((4, "INFO starting\nERROR SOAP fault: host busy\n")),
    ));
    let actions = world.decide();
    assert_eq!(
        kinds(&actions),
        [
            "StopMonitor",
            "RecordAttempt",
            "DeletePod",
            "Event",
            "Status"
        ]
    );
    let Action::RecordAttempt {
        attempts,
        not_before,
    } = &actions[1]
    else {
        unreachable!()
    };
    assert_eq!(*attempts, 1);
    assert_eq!(
        *not_before,
        now().checked_add(Duration::from_secs(30)).unwrap()
    );
    let event = events(&actions)[0];
    assert_eq!(event.reason, "PopulatorRetrying");
    assert!(
        event.message.contains("ERROR SOAP fault: host busy"),
        "{}",
        event.message
    );
    // The second failure doubles the backoff.
    world.pvc.metadata.annotations =
        Some(BTreeMap::from([(ATTEMPTS_ANNOTATION.into(), "1".into())]));
    let Action::RecordAttempt {
        attempts,
        not_before,
    } = &world.decide()[1]
    else {
        panic!()
    };
    assert_eq!(*attempts, 2);
    assert_eq!(
        *not_before,
        now().checked_add(Duration::from_secs(60)).unwrap()
    );
}

#[test]
fn the_next_run_waits_for_the_backoff() {
    let mut world = World::new();
    world.prime = Some(prime(Some("pv-1"), "Bound"));
    world.pvc.metadata.annotations = Some(BTreeMap::from([
        (ATTEMPTS_ANNOTATION.into(), "1".into()),
        (
            RETRY_NOT_BEFORE_ANNOTATION.into(),
            "2026-12-04T09:00:30Z".into(),
        ),
    ]));
    assert_eq!(world.decide(), [Action::Requeue(Duration::from_secs(30))]);
    world.pvc.metadata.annotations.as_mut().unwrap().insert(
        RETRY_NOT_BEFORE_ANNOTATION.into(),
        "2026-12-04T08:59:00Z".into(),
    );
    let actions = world.decide();
    assert_eq!(kinds(&actions), ["CreatePod", "Status", "Event"]);
    assert!(events(&actions)[0].message.contains("run 2 of at most 3"));
}

#[test]
fn retries_stop_after_the_last_attempt() {
    let mut world = World::new();
    world.prime = Some(prime(Some("pv-1"), "Bound"));
    world.pvc.metadata.annotations =
        Some(BTreeMap::from([(ATTEMPTS_ANNOTATION.into(), "2".into())]));
    world.pod = Some(pod("Failed", Some((4, "ERROR lease lost"))));
    let actions = world.decide();
    assert_eq!(kinds(&actions), ["StopMonitor", "Event", "Status"]);
    let message = &status(&actions).condition.as_ref().unwrap().message;
    assert!(message.contains("failed 3 times"), "{message}");
    assert!(message.contains("ERROR lease lost"), "{message}");
}

#[test]
fn a_permanent_failure_stops_with_the_last_log_line() {
    let mut world = World::new();
    world.prime = Some(prime(Some("pv-1"), "Bound"));
    world.pod = Some(pod(
        "Failed",
        Some((
            3,
            "INFO resolving\nERROR vCenter refused the credentials of user admin\n\n",
        )),
    ));
    let actions = world.decide();
    assert_eq!(kinds(&actions), ["StopMonitor", "Event", "Status"]);
    let update = status(&actions);
    assert_eq!(update.phase, Some(CopyPhase::Failed));
    assert_eq!(update.result, Some("failure"));
    let condition = update.condition.as_ref().unwrap();
    assert_eq!(
        (condition.type_, condition.reason),
        ("Failed", "PopulatorFailed")
    );
    assert!(
        condition
            .message
            .contains("failed permanently (exit 3): ERROR vCenter refused"),
        "{}",
        condition.message
    );
    let event = events(&actions)[0];
    assert!(event.warning);
    assert!(
        event
            .message
            .contains("kubectl logs -n mig populate-0d2e-11")
    );
    // Bad arguments (2) and unknown codes are not retried either.
    world.pod = Some(pod("Failed", Some((2, "missing --source-vmdk"))));
    assert_eq!(status(&world.decide()).phase, Some(CopyPhase::Failed));
    world.pod = Some(pod("Failed", Some((137, ""))));
    let message = status(&world.decide())
        .condition
        .as_ref()
        .unwrap()
        .message
        .clone();
    assert!(message.contains("internal error (exit 137)"), "{message}");
    // A restarted controller that finds the failure recorded does nothing more.
    let world = World {
        pod: world.pod.clone(),
        prime: world.prime.clone(),
        ..World::new()
    }
    .with_cr_phase(CopyPhase::Failed);
    assert_eq!(kinds(&world.decide()), ["StopMonitor"]);
}

#[test]
fn a_cancelled_run_is_retried() {
    let mut world = World::new();
    world.prime = Some(prime(Some("pv-1"), "Bound"));
    world.pod = Some(pod("Failed", Some((5, "cancelled by SIGTERM"))));
    assert!(kinds(&world.decide()).contains(&"RecordAttempt"));
}

#[test]
fn success_moves_the_pv_to_the_user_pvc() {
    let mut world = World::new();
    world.prime = Some(prime(Some("pv-1"), "Bound"));
    world.pod = Some(pod("Succeeded", Some((0, ""))));
    world.pv = Some(pv("prime-uid"));
    let actions = world.decide();
    assert_eq!(kinds(&actions), ["StopMonitor", "RebindPv", "Status"]);
    assert_eq!(
        actions[1],
        Action::RebindPv {
            pv: "pv-1".into(),
            populated_from: "mig/vm-1-disk-0".into()
        }
    );
    let update = status(&actions);
    assert_eq!(update.phase, Some(CopyPhase::Succeeded));
    assert!(update.completed_label);
    // Restarted after the patch: the PV already points at the user PVC, status already written.
    let mut world = world.with_cr_phase(CopyPhase::Succeeded);
    world.pv = Some(pv(UID));
    assert_eq!(kinds(&world.decide()), ["StopMonitor"]);
}

#[test]
fn bound_pvc_waits_for_the_prime_pvc_to_be_lost_then_cleans_up() {
    let mut world = World::new();
    world.pvc.spec.as_mut().unwrap().volume_name = Some("pv-1".into());
    world.prime = Some(prime(Some("pv-1"), "Bound"));
    world.pod = Some(pod("Succeeded", Some((0, ""))));
    assert!(world.decide().is_empty());
    world.prime = Some(prime(Some("pv-1"), "Lost"));
    let actions = world.decide();
    assert_eq!(
        kinds(&actions),
        [
            "StopMonitor",
            "DeletePrime",
            "DeletePod",
            "Event",
            "RemoveFinalizer"
        ]
    );
    assert_eq!(events(&actions)[0].reason, "PopulatorFinished");
    world.settings.retain_populator_pods = true;
    assert!(!kinds(&world.decide()).contains(&"DeletePod"));
    // Restarted after the prime PVC was deleted but before the finalizer went.
    world.settings.retain_populator_pods = false;
    world.prime = None;
    world.pod = None;
    assert_eq!(kinds(&world.decide()), ["RemoveFinalizer"]);
    world.pvc.metadata.finalizers = None;
    assert!(world.decide().is_empty());
}

#[test]
fn a_deleted_pvc_stops_the_pod_before_letting_go() {
    let mut world = World::new();
    world.pvc.metadata.deletion_timestamp = Some(Time(now()));
    world.prime = Some(prime(Some("pv-1"), "Bound"));
    world.pod = Some(pod("Running", None));
    let actions = world.decide();
    assert_eq!(kinds(&actions), ["StopMonitor", "DeletePod", "Event"]);
    assert_eq!(events(&actions)[0].reason, "PopulatorCancelling");
    // The pod is terminating: wait for it.
    world.pod.as_mut().unwrap().metadata.deletion_timestamp = Some(Time(now()));
    assert_eq!(kinds(&world.decide()), ["StopMonitor"]);
    // Gone: delete the prime PVC, release the PVC.
    world.pod = None;
    assert_eq!(
        kinds(&world.decide()),
        ["StopMonitor", "DeletePrime", "RemoveFinalizer"]
    );
    // A finished pod needs no SIGTERM.
    world.pod = Some(pod("Failed", Some((3, "x"))));
    assert_eq!(
        kinds(&world.decide()),
        ["StopMonitor", "DeletePod", "DeletePrime", "RemoveFinalizer"]
    );
    world.pvc.metadata.finalizers = None;
    assert!(world.decide().is_empty());
}

#[test]
fn a_restart_while_the_prime_pvc_exists_creates_only_the_pod() {
    // Whether or not the provisioner has bound it yet: the populator waits for the volume itself.
    let mut world = World::new();
    world.prime = Some(prime(None, "Pending"));
    assert_eq!(kinds(&world.decide()), ["CreatePod", "Status", "Event"]);
    world.prime = Some(prime(Some("pv-1"), "Bound"));
    assert_eq!(kinds(&world.decide()), ["CreatePod", "Status", "Event"]);
}

#[test]
fn a_pod_being_deleted_for_a_retry_is_waited_for() {
    let mut world = World::new();
    world.prime = Some(prime(Some("pv-1"), "Bound"));
    let mut failed = pod("Failed", Some((4, "x")));
    failed.metadata.deletion_timestamp = Some(Time(now()));
    world.pod = Some(failed);
    assert!(world.decide().is_empty());
}

#[test]
fn success_without_a_prime_volume_is_reported() {
    let mut world = World::new();
    world.prime = Some(prime(None, "Pending"));
    world.pod = Some(pod("Succeeded", Some((0, ""))));
    let actions = world.decide();
    assert_eq!(
        status(&actions).condition.as_ref().unwrap().reason,
        "PrimeUnbound"
    );
}

#[test]
fn last_line_prefers_the_last_error_and_reads_json_logs() {
    assert_eq!(last_line("a\nb\n\n  \n").as_deref(), Some("b"));
    assert_eq!(last_line(""), None);
    let text = "2026-12-04T08:55:20Z ERROR co_populator: vCenter refused the login\n2026-12-04T08:55:21Z  INFO co_populator: cleanup finished";
    assert_eq!(
        last_line(text).as_deref(),
        Some("2026-12-04T08:55:20Z ERROR co_populator: vCenter refused the login")
    );
    let json = r#"{"timestamp":"t","level":"ERROR","fields":{"message":"copy failed","error":"array refused the credentials"},"target":"co_populator"}
{"timestamp":"t","level":"INFO","fields":{"message":"cleanup finished"},"target":"co_populator"}"#;
    assert_eq!(
        last_line(json).as_deref(),
        Some("copy failed error=array refused the credentials")
    );
}

#[test]
fn a_stale_unbound_view_after_success_starts_no_second_run() {
    let mut world = World::new().with_cr_phase(CopyPhase::Succeeded);
    world.prime = None;
    world.pod = None;
    assert!(world.decide().is_empty());
}
