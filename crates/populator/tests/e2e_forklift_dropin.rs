//! "Forklift drop-in" acceptance, populator side (lab + kube-apiserver peer): the populator runs as
//! a ServiceAccount `populator` holding exactly the rights Forklift's plan builder grants (PVC
//! reads and leases in the target namespace, leases and one secret in the Forklift namespace, PV
//! get), with the arguments Forklift passes, by VIB and by SSH: the copy is verified, the lab is
//! clean, completion is in the metrics, and the journal lives in a Lease of its own. Then the same
//! with our full RBAC (`deploy/populator-rbac.yaml`), where the journal is on the CR and host keys
//! are recorded for the cluster. In both, Forklift's single completion update of the CR, made with
//! the CR as read when completion was scraped, succeeds: nothing of ours wrote the CR since.

use crate::e2e_support;
use crate::kube_support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use co_api::contract::names::OFFLOAD_COMPLETED_LABEL;
use co_lab::faults::FaultRule;
use co_populator::ExitCode;
use co_populator::host_keys::HOST_KEYS_CONFIG_MAP;
use co_populator::journal::{JOURNAL_ANNOTATION, journal_lease_name};
use co_populator::metrics::names;
use co_populator::rights::{self, AccessCheck};
use co_populator::run_with;
use e2e_support::{LabRig, MIB};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use kube_support::ScratchNamespace;

/// The Forklift namespace's one secret the populator may touch (FlashSystem token cache).
const STORAGE_ARRAY_SECRET: &str = "storage-array-secret";

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|r| (*r).into()).collect()),
        verbs: verbs.iter().map(|v| (*v).into()).collect(),
        ..PolicyRule::default()
    }
}

/// Which grant the populator's ServiceAccount holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    /// Exactly what Forklift's plan builder creates, nothing else.
    Forklift,
    /// Every Role of `deploy/populator-rbac.yaml` (optional ones included) in both namespaces.
    Full,
}

/// (target-namespace rules, Forklift-namespace rules, cluster rules).
fn rules(grant: Grant) -> (Vec<PolicyRule>, Vec<PolicyRule>, Vec<PolicyRule>) {
    match grant {
        Grant::Forklift => {
            let mut secret = rule("", &["secrets"], &["get", "update", "patch"]);
            secret.resource_names = Some(vec![STORAGE_ARRAY_SECRET.into()]);
            (
                vec![
                    rule("", &["persistentvolumeclaims"], &["get", "list", "watch"]),
                    rule(
                        "coordination.k8s.io",
                        &["leases"],
                        &["get", "list", "watch", "create", "update", "patch"],
                    ),
                ],
                vec![
                    rule(
                        "coordination.k8s.io",
                        &["leases"],
                        &["get", "list", "watch", "create", "update"],
                    ),
                    secret,
                ],
                vec![rule("", &["persistentvolumes"], &["get"])],
            )
        }
        Grant::Full => {
            let (namespaced, cluster) = shipped_populator_rules();
            (namespaced.clone(), namespaced, cluster)
        }
    }
}

/// The rules of every Role and of the ClusterRole in `deploy/populator-rbac.yaml`.
fn shipped_populator_rules() -> (Vec<PolicyRule>, Vec<PolicyRule>) {
    use serde::Deserialize;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/populator-rbac.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let (mut namespaced, mut cluster) = (Vec::new(), Vec::new());
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(document).unwrap();
        if value["kind"] == "Role" {
            let role: Role = serde_yaml::from_value(value).unwrap();
            namespaced.extend(role.rules.unwrap_or_default());
        } else if value["kind"] == "ClusterRole" {
            let role: ClusterRole = serde_yaml::from_value(value).unwrap();
            cluster.extend(role.rules.unwrap_or_default());
        }
    }
    assert!(!namespaced.is_empty() && !cluster.is_empty(), "{path:?}");
    (namespaced, cluster)
}

/// Creates ServiceAccount `populator` in `target`, binds `grant` to it, and returns a client that
/// impersonates it.
async fn populator_client(admin: &Client, grant: Grant, target: &str, forklift: &str) -> Client {
    let (target_rules, forklift_rules, cluster_rules) = rules(grant);
    let account = "populator";
    Api::<ServiceAccount>::namespaced(admin.clone(), target)
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(account.into()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap();
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: account.into(),
        namespace: Some(target.into()),
        ..Subject::default()
    };
    for (namespace, name, rules) in [
        (target, "populator-pvc-reader", target_rules),
        (forklift, "populator-lease-reader", forklift_rules),
    ] {
        let metadata = ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        };
        Api::<Role>::namespaced(admin.clone(), namespace)
            .create(
                &PostParams::default(),
                &Role {
                    metadata: metadata.clone(),
                    rules: Some(rules),
                },
            )
            .await
            .unwrap();
        Api::<RoleBinding>::namespaced(admin.clone(), namespace)
            .create(
                &PostParams::default(),
                &RoleBinding {
                    metadata,
                    role_ref: RoleRef {
                        api_group: Some("rbac.authorization.k8s.io".into()),
                        kind: "Role".into(),
                        name: name.into(),
                    },
                    subjects: Some(vec![subject.clone()]),
                },
            )
            .await
            .unwrap();
    }
    let cluster_name = format!("{target}-populator-pv-reader");
    let metadata = ObjectMeta {
        name: Some(cluster_name.clone()),
        ..ObjectMeta::default()
    };
    Api::<ClusterRole>::all(admin.clone())
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: metadata.clone(),
                rules: Some(cluster_rules),
                ..ClusterRole::default()
            },
        )
        .await
        .unwrap();
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata,
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: cluster_name,
                },
                subjects: Some(vec![subject]),
            },
        )
        .await
        .unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(co_testpeers::kubeconfig_path()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{target}:{account}"));
    Client::try_from(config).unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Vib,
    Ssh,
}

async fn drop_in(grant: Grant, method: Method) {
    let admin = kube_support::client().await;
    let target = ScratchNamespace::new(&admin, "dropin-target").await;
    let forklift = ScratchNamespace::new(&admin, "dropin-mtv").await;
    let cr_name = "vm-1-disk-0";
    let crs = kube_support::create_cr(&admin, &target.name, cr_name).await;
    let client = populator_client(&admin, grant, &target.name, &forklift.name).await;

    let rig = LabRig::start().await;
    let flexvol = "trident_pvc_dropin";
    rig.target_volume(flexvol, 64 * MIB);
    let uid = kube_support::target_claims(&admin, &target.name, flexvol).await;

    // The arguments Forklift's builder passes (the rest comes from the secret's environment).
    let mut args = rig.args(flexvol);
    args.target_volume_handle = None;
    args.target_volume_attribute = Vec::new();
    args.owner_name = Some("disk-0".into());
    args.owner_uid = Some(uid.clone());
    args.target_namespace = Some(target.name.clone());
    args.cr_name = Some(cr_name.into());
    args.cr_namespace = Some(target.name.clone());
    args.secret_name = Some("storage-secret".into());
    args.host_lease_namespace = Some(forklift.name.clone());
    let mut options = rig.options("dropin");
    let port = e2e_support::metrics_listener(&mut args, &mut options);
    if method == Method::Ssh {
        // A host set up for Forklift carries Forklift's `sh -c` key line; with our full RBAC, the
        // line we recommend.
        match grant {
            Grant::Forklift => {
                rig.use_ssh_with_line(&mut args, &mut options, co_esxi::forklift_key_line)
            }
            Grant::Full => rig.use_ssh(&mut args, &mut options),
        }
        // The configured host-key policy, not the pinned key of the other SSH tests.
        options.ssh_host_key = None;
    }
    options.kube_client = Some(client.clone());
    options.final_scrape_wait = Duration::from_secs(60);
    // The host's rescans take as long as on a busy host, so a CR write of ours after completion
    // (the journaled rescan-delete overlapping the final scrape) lands well after Forklift's read
    // below, and its update then conflicts.
    rig.lab.faults.add(FaultRule {
        site: "esxcli:storage core adapter rescan".into(),
        latency_ms: 700,
        error: None,
        times: None,
    });

    let run = tokio::spawn(run_with(rig.config(&args), options));
    let metrics = e2e_support::scrape_until_complete(port, Duration::from_secs(120)).await;
    // What Forklift's controller does once on completion: read the CR, then a plain Update
    // (label and status) that it never retries. The update is sent as late as possible, after
    // the populator has ended, so any CR write of ours after completion makes it conflict.
    let mut seen = crs.get(cr_name).await.unwrap();
    let summary = run.await.unwrap();
    assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);
    seen.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(OFFLOAD_COMPLETED_LABEL.into(), "true".into());
    if let Err(error) = crs.replace(cr_name, &PostParams::default(), &seen).await {
        panic!("Forklift's completion update of the CR failed: {error}");
    }
    rig.assert_copied(flexvol);
    rig.assert_clean(flexvol);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(names::PROGRESS) && l.contains(&uid) && l.ends_with(" 100")),
        "progress 100 for owner {uid} not in\n{metrics}"
    );

    let on_cr = crs
        .get(cr_name)
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default()
        .remove(JOURNAL_ANNOTATION);
    let lease = Api::<Lease>::namespaced(admin.clone(), &target.name)
        .get_opt(&journal_lease_name(&format!("pvc-{flexvol}")))
        .await
        .unwrap()
        .and_then(|l| l.metadata.annotations)
        .and_then(|mut a| a.remove(JOURNAL_ANNOTATION));
    let journal = match grant {
        Grant::Forklift => {
            assert!(on_cr.is_none(), "journal written on the CR: {on_cr:?}");
            lease.expect("journal Lease")
        }
        Grant::Full => {
            assert!(lease.is_none(), "journal Lease with full rights: {lease:?}");
            on_cr.expect("journal annotation on the CR")
        }
    };
    let journal: serde_json::Value = serde_json::from_str(&journal).unwrap();
    assert!(
        journal["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "runFinished" && r["outcome"] == "succeeded"),
        "{journal}"
    );

    let host_keys = Api::<ConfigMap>::namespaced(admin.clone(), &forklift.name)
        .get_opt(HOST_KEYS_CONFIG_MAP)
        .await
        .unwrap();
    let expect_record = grant == Grant::Full && method == Method::Ssh;
    assert_eq!(host_keys.is_some(), expect_record, "{host_keys:?}");
    // Without the right to record it for the cluster, the key is trusted on first use locally.
    let local = std::fs::read_to_string(rig.dir.path().join("known_hosts")).unwrap_or_default();
    let expect_local = grant == Grant::Forklift && method == Method::Ssh;
    let entries = local.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(entries == 1, expect_local, "{local:?}");

    target.delete().await;
    forklift.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forklift_rbac_vib() {
    drop_in(Grant::Forklift, Method::Vib).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forklift_rbac_ssh() {
    drop_in(Grant::Forklift, Method::Ssh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_rbac_vib() {
    drop_in(Grant::Full, Method::Vib).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_rbac_ssh() {
    drop_in(Grant::Full, Method::Ssh).await;
}

/// The start-up probe sees exactly what each grant allows.
#[tokio::test]
async fn the_probe_tells_forklifts_grant_from_ours() {
    let admin = kube_support::client().await;
    for (grant, expected) in [(Grant::Forklift, false), (Grant::Full, true)] {
        let target = ScratchNamespace::new(&admin, "dropin-probe").await;
        let forklift = ScratchNamespace::new(&admin, "dropin-probe-mtv").await;
        let client = populator_client(&admin, grant, &target.name, &forklift.name).await;
        let found = rights::probe(
            &client,
            Some(AccessCheck::patch_journal_object(true, &target.name)),
            Some(AccessCheck::write_host_key_record(&forklift.name)),
        )
        .await;
        assert_eq!(found.journal_on_object, expected, "{grant:?}");
        assert_eq!(found.host_key_record, expected, "{grant:?}");
        target.delete().await;
        forklift.delete().await;
    }
}
