//! The shared kube-apiserver (with etcd and kube-controller-manager) that `scripts/peers.sh start` runs
//! on loopback. Tests get a client for it only through its own kubeconfig, never the user's
//! `KUBECONFIG`, so a test run cannot touch a real cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::layout::state_dir;

const REACHABLE_DEADLINE: Duration = Duration::from_secs(20);

/// The kubeconfig `scripts/peers.sh start` writes: `$COPY_OFFLOAD_PEERS_DIR/kubeconfig`.
pub fn kubeconfig_path() -> PathBuf {
    state_dir().join("kubeconfig")
}

/// A client for the apiserver started by `scripts/peers.sh start` (cluster-admin via a token), after
/// checking that the server answers.
pub async fn kube_client() -> anyhow::Result<kube::Client> {
    client_from(&kubeconfig_path()).await
}

async fn client_from(path: &Path) -> anyhow::Result<kube::Client> {
    if !path.is_file() {
        bail!(
            "kubeconfig not found at {}: run `scripts/peers.sh install kube && scripts/peers.sh start`",
            path.display()
        );
    }
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading {}", path.display()))?;
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).context("building the kube client")?;
    match tokio::time::timeout(REACHABLE_DEADLINE, client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(e).with_context(|| {
            format!("kube-apiserver at {server} does not answer: run `scripts/peers.sh start` (state: `scripts/peers.sh status`)")
        }),
        Err(_) => bail!(
            "kube-apiserver at {server} did not answer within {REACHABLE_DEADLINE:?}: run `scripts/peers.sh start` (state: `scripts/peers.sh status`)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn error_of(path: &Path) -> String {
        match client_from(path).await {
            Ok(_) => panic!("a client for {}", path.display()),
            Err(e) => format!("{e:#}"),
        }
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_names_the_start_command() {
        let empty = tempfile::tempdir().unwrap();
        let err = error_of(&empty.path().join("kubeconfig")).await;
        assert!(
            err.contains("scripts/peers.sh install kube && scripts/peers.sh start"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_apiserver_that_is_down_names_the_start_command() {
        let dir = tempfile::tempdir().unwrap();
        // A port that was free a moment ago: nothing answers there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let kubeconfig = dir.path().join("kubeconfig");
        let yaml = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:{port}
users:
- name: u
  user:
    token: t
contexts:
- name: x
  context:
    cluster: c
    user: u
current-context: x
"
        );
        std::fs::write(&kubeconfig, yaml).unwrap();
        let err = error_of(&kubeconfig).await;
        assert!(
            err.contains("does not answer: run `scripts/peers.sh start`"),
            "{err}"
        );
    }
}
