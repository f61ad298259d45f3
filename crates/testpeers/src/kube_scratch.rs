//! What the tests of several crates do on the shared API server peer: a scratch namespace per
//! test, a CRD installed once (idempotently, as tests run in parallel) and waited for, and a
//! client acting as a ServiceAccount bound to a ClusterRole read from the YAML that `deploy/`
//! ships, so a test proves a shipped role is enough.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use serde::Deserialize;

use crate::kube_peer::kubeconfig_path;

/// How long a CRD may take to be served.
const ESTABLISHED_DEADLINE: Duration = Duration::from_secs(120);

/// Creates namespace `<prefix>-<8 hex>` and returns its name.
pub async fn create_scratch_namespace(client: &Client, prefix: &str) -> anyhow::Result<String> {
    let suffix: u32 = rand::random();
    let namespace = format!("{prefix}-{suffix:08x}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(namespace.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("creating namespace {namespace}"))?;
    Ok(namespace)
}

/// Installs `crd` unless one of its name exists, and waits until it is served.
pub async fn install_crd(client: &Client, crd: &CustomResourceDefinition) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().unwrap_or_default();
    match crds.create(&PostParams::default(), crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.is_already_exists() => {}
        Err(error) => return Err(error).with_context(|| format!("installing CRD {name}")),
    }
    let established = await_condition(crds, &name, |crd: Option<&CustomResourceDefinition>| {
        crd.and_then(|c| c.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            })
    });
    match tokio::time::timeout(ESTABLISHED_DEADLINE, established).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error).with_context(|| format!("watching CRD {name}")),
        Err(_) => bail!("CRD {name} not established within {ESTABLISHED_DEADLINE:?}"),
    }
}

/// The rules of the first ClusterRole in the YAML file at `path` (several documents allowed).
pub fn shipped_cluster_role_rules(path: &Path) -> anyhow::Result<Vec<PolicyRule>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(document)
            .with_context(|| format!("parsing {}", path.display()))?;
        if value["kind"] == "ClusterRole" {
            let role: ClusterRole = serde_yaml::from_value(value)
                .with_context(|| format!("reading the ClusterRole of {}", path.display()))?;
            return Ok(role.rules.unwrap_or_default());
        }
    }
    bail!("no ClusterRole in {}", path.display())
}

/// A client acting as ServiceAccount `account` of `namespace` (impersonated), bound to a
/// ClusterRole `role` holding `rules` and nothing else. Remove both with [`delete_cluster_role`].
pub async fn client_as_account(
    client: &Client,
    namespace: &str,
    account: &str,
    role: &str,
    rules: Vec<PolicyRule>,
) -> anyhow::Result<Client> {
    let roles: Api<ClusterRole> = Api::all(client.clone());
    roles
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: ObjectMeta {
                    name: Some(role.to_owned()),
                    ..Default::default()
                },
                rules: Some(rules),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("creating ClusterRole {role}"))?;
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    bindings
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(role.to_owned()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: role.to_owned(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: account.into(),
                    namespace: Some(namespace.into()),
                    ..Default::default()
                }]),
            },
        )
        .await
        .with_context(|| format!("creating ClusterRoleBinding {role}"))?;
    let path = kubeconfig_path();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)
        .with_context(|| format!("reading {}", path.display()))?;
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .with_context(|| format!("loading {}", path.display()))?;
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{namespace}:{account}"));
    Client::try_from(config).context("building the impersonating client")
}

/// Deletes the ClusterRole and ClusterRoleBinding [`client_as_account`] created; best effort, for
/// cleanup.
pub async fn delete_cluster_role(client: &Client, role: &str) {
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let _ = bindings.delete(role, &DeleteParams::default()).await;
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let _ = roles.delete(role, &DeleteParams::default()).await;
}
