//! The planner's ClusterRole in `deploy/planner-rbac.yaml`, against the real API server peer: it is
//! bound to the controller's ServiceAccount, grants exactly the verbs the planner uses, is enough
//! for the planner to run (keys created, a Provider's and a StorageMap's conditions written, as
//! that account), and the API server refuses everything broader.

use crate::support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use co_planner::ssh_keys::KeysOutcome;
use co_planner::{Observed, ProviderOutcome, StorageMapOutcome};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};
use support::Scratch;

const SEED_STORAGE_MAP: &str = include_str!("fixtures/seed-storagemap.yaml");

fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file)
}

/// (API group, resource, verb) for each call the planner makes: the contract of the shipped role.
const GRANTED: &[(&str, &str, &[&str])] = &[
    (
        "forklift.konveyor.io",
        "providers",
        &["get", "list", "watch"],
    ),
    (
        "forklift.konveyor.io",
        "storagemaps",
        &["get", "list", "watch"],
    ),
    ("forklift.konveyor.io", "plans", &["get", "list", "watch"]),
    ("forklift.konveyor.io", "providers/status", &["patch"]),
    ("forklift.konveyor.io", "storagemaps/status", &["patch"]),
    ("forklift.konveyor.io", "plans/status", &["patch"]),
    (
        "forklift.konveyor.io",
        "forkliftcontrollers",
        &["get", "list", "watch"],
    ),
    ("", "configmaps", &["get", "list", "watch"]),
    ("", "secrets", &["get", "list", "watch", "create", "patch"]),
    (
        "",
        "persistentvolumeclaims",
        &["get", "list", "watch", "create", "patch"],
    ),
    (
        "forklift.konveyor.io",
        "vspherexcopyvolumepopulators",
        &["get", "list", "watch", "create", "patch"],
    ),
];

/// Requests the planner never makes, each one step beyond a granted one.
const REFUSED: &[(&str, &str, &str)] = &[
    ("forklift.konveyor.io", "providers", "patch"),
    ("forklift.konveyor.io", "providers", "update"),
    ("forklift.konveyor.io", "providers", "delete"),
    ("forklift.konveyor.io", "providers", "create"),
    ("forklift.konveyor.io", "providers/status", "update"),
    ("forklift.konveyor.io", "storagemaps", "patch"),
    ("forklift.konveyor.io", "plans", "patch"),
    ("forklift.konveyor.io", "plans", "delete"),
    ("forklift.konveyor.io", "plans/status", "update"),
    ("forklift.konveyor.io", "forkliftcontrollers", "patch"),
    ("forklift.konveyor.io", "migrations", "create"),
    (
        "forklift.konveyor.io",
        "vspherexcopyvolumepopulators",
        "delete",
    ),
    (
        "forklift.konveyor.io",
        "vspherexcopyvolumepopulators/status",
        "patch",
    ),
    ("", "secrets", "delete"),
    ("", "secrets", "update"),
    ("", "configmaps", "create"),
    ("", "configmaps", "patch"),
    ("", "persistentvolumeclaims", "delete"),
    ("", "persistentvolumeclaims", "update"),
    ("", "persistentvolumes", "get"),
    ("", "pods", "create"),
    ("", "pods", "list"),
    ("", "events", "create"),
    ("", "namespaces", "list"),
    ("", "serviceaccounts", "create"),
    ("coordination.k8s.io", "leases", "create"),
    ("rbac.authorization.k8s.io", "clusterroles", "create"),
    ("rbac.authorization.k8s.io", "rolebindings", "create"),
    ("events.k8s.io", "events", "create"),
];

/// Whether the API server lets `client`'s identity make the request.
async fn allowed(
    client: &Client,
    namespace: &str,
    group: &str,
    resource: &str,
    verb: &str,
) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((resource, subresource)) => (resource, Some(subresource.to_owned())),
        None => (resource, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                subresource,
                verb: Some(verb.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap_or_else(|error| {
            panic!("asking whether {verb} {group}/{resource} is allowed: {error}")
        })
        .status
        .is_some_and(|status| status.allowed)
}

#[test]
fn the_shipped_role_grants_exactly_the_planners_calls_to_the_controllers_account() {
    let rules = co_testpeers::shipped_cluster_role_rules(&deploy("planner-rbac.yaml"))
        .unwrap_or_else(|error| panic!("{error:#}"));
    let mut shipped = BTreeSet::new();
    for rule in &rules {
        assert!(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            "{rule:?}"
        );
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    assert_ne!(verb, "*", "no wildcard verbs: {rule:?}");
                    assert_ne!(resource, "*", "no wildcard resources: {rule:?}");
                    shipped.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    let contract: BTreeSet<(String, String, String)> = GRANTED
        .iter()
        .flat_map(|(group, resource, verbs)| {
            verbs.iter().map(|verb| {
                (
                    (*group).to_owned(),
                    (*resource).to_owned(),
                    (*verb).to_owned(),
                )
            })
        })
        .collect();
    assert_eq!(shipped, contract);

    // Bound to the account the controller's Deployment runs as.
    let binding = std::fs::read_to_string(deploy("planner-rbac.yaml")).expect("the RBAC file");
    let documents: Vec<Value> = serde_yaml::Deserializer::from_str(&binding)
        .map(|document| serde::Deserialize::deserialize(document).expect("a YAML document"))
        .collect();
    let binding = documents
        .iter()
        .find(|d| d["kind"] == "ClusterRoleBinding")
        .expect("a ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], "copy-offload-planner");
    assert_eq!(
        binding["subjects"],
        json!([{ "kind": "ServiceAccount", "name": support::CONTROLLER_ACCOUNT, "namespace": "copy-offload" }])
    );
    let deployment: Value = serde_yaml::from_str(
        &std::fs::read_to_string(deploy("controller.yaml")).expect("the Deployment"),
    )
    .expect("a YAML Deployment");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        support::CONTROLLER_ACCOUNT
    );
    // The planner runs: nothing restricts the controllers to the populator any more.
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .into_iter()
            .flatten()
            .all(|e| e["name"] != "COPY_OFFLOAD_CONTROLLERS"),
        "{env}"
    );
    let kustomization = std::fs::read_to_string(deploy("kustomization.yaml")).expect("kustomize");
    assert!(
        kustomization.contains("- planner-rbac.yaml"),
        "{kustomization}"
    );
}

#[tokio::test]
async fn the_planner_runs_with_the_shipped_role_and_nothing_broader_is_granted() {
    let mut scratch = Scratch::new("planner-rbac").await;
    // The flag from copy-offload's ConfigMap; a Provider using the SSH method without credentials
    // (its hosts cannot be listed: reported, not probed) and the seed's StorageMap.
    scratch.set_flag_on_config_map("true").await;
    scratch
        .create_provider(
            "vcenter",
            json!({ "type": "vsphere", "url": "https://vcenter.invalid/sdk",
                    "settings": { "esxiCloneMethod": "ssh" } }),
        )
        .await;
    scratch
        .apply_manifest(SEED_STORAGE_MAP, "openshift-mtv")
        .await;
    let account = scratch.start_planner_with_shipped_role().await;

    for (group, resource, verbs) in GRANTED {
        for verb in *verbs {
            assert!(
                allowed(&account, &scratch.namespace, group, resource, verb).await,
                "{verb} {group}/{resource} is refused"
            );
        }
    }
    for (group, resource, verb) in REFUSED {
        assert!(
            !allowed(&account, &scratch.namespace, group, resource, verb).await,
            "{verb} {group}/{resource} is granted"
        );
    }

    let seen = std::cell::Cell::new([false; 3]);
    scratch
        .observe(
            "keys created, the hosts' readiness and the StorageMap checked, as the account",
            |observed| {
                let mut now = seen.get();
                if let Observed::Provider { outcome, .. } = observed {
                    now[0] |= *outcome == ProviderOutcome::Keys(KeysOutcome::Created);
                }
                now[1] |= matches!(observed, Observed::SshProbed { .. });
                if let Observed::StorageMap { outcome, .. } = observed {
                    now[2] |= matches!(outcome, StorageMapOutcome::Checked(p) if !p.is_empty());
                }
                seen.set(now);
                now.iter().all(|done| *done)
            },
        )
        .await;
    // The conditions were written through the status subresource, as the account.
    let provider = scratch.forklift("Provider").get("vcenter").await.unwrap();
    assert!(
        provider.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "SSHNotReady" && c["reason"] == "HostListError"),
        "{}",
        provider.data["status"]
    );
    let map = scratch
        .forklift("StorageMap")
        .get("copy-offload")
        .await
        .unwrap();
    assert!(
        map.data["status"]["conditions"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{}",
        map.data["status"]
    );

    scratch.finish().await;
}
