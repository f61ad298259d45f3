//! `copy-offload lab demo --cluster` against the shared kube-apiserver peer (`scripts/peers.sh
//! start`): the PVC comes out Bound, the bound volume's bytes equal the source disk, and the
//! demo's namespace is gone afterwards, also after Ctrl-C mid-copy; with no API server the demo
//! says how to start one.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

fn command(kubeconfig: &std::path::Path, size: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_copy-offload"));
    command
        .args(["lab", "demo", "--cluster", "--size", size, "--kubeconfig"])
        .arg(kubeconfig)
        .env_remove("RUST_LOG")
        .env_remove("KUBECONFIG");
    command
}

fn demo_cluster(kubeconfig: &std::path::Path) -> Output {
    command(kubeconfig, "64MiB")
        .output()
        .expect("the copy-offload binary runs")
}

/// The namespace the demo printed it created.
fn created_namespace(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("created namespace "))
        .unwrap_or_else(|| panic!("no namespace in:\n{stdout}"))
        .trim()
        .to_owned()
}

async fn assert_namespace_gone(namespace: &str) {
    let client = co_testpeers::kube_client()
        .await
        .unwrap_or_else(|error| panic!("kube-apiserver peer unavailable: {error:#}"));
    let namespaces: Api<Namespace> = Api::all(client);
    assert!(
        namespaces.get_opt(namespace).await.unwrap().is_none(),
        "namespace {namespace} is still there"
    );
}

#[tokio::test]
async fn the_pvc_is_bound_with_the_source_bytes_and_the_namespace_removed() {
    let output = demo_cluster(&co_testpeers::kubeconfig_path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("PVC vm-1-disk-1 is Bound"), "{stdout}");
    assert!(
        stdout.contains("bytes verified: 67108864 bytes"),
        "{stdout}"
    );
    let namespace = created_namespace(&stdout);
    assert!(
        stdout.contains(&format!("namespace {namespace} removed")),
        "{stdout}"
    );
    assert_namespace_gone(&namespace).await;
}

#[tokio::test]
async fn ctrl_c_mid_copy_removes_the_namespace() {
    // Each poll of the clone task takes a second, so the copy is still running at the interrupt.
    let mut child = command(&co_testpeers::kubeconfig_path(), "1GiB")
        .arg("--lab-latency=esxcli:vmkfstools taskGet=1000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the copy-offload binary runs");
    let mut stdout = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The populator has started once the controller reports the copy's first progress.
    for line in lines.by_ref() {
        let line = line.unwrap();
        stdout.push_str(&line);
        stdout.push('\n');
        if line.contains('%') {
            break;
        }
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    for line in lines {
        stdout.push_str(&line.unwrap());
        stdout.push('\n');
    }
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(5),
        "exit code of a cancelled demo:\n{stdout}"
    );
    let namespace = created_namespace(&stdout);
    assert!(
        stdout.contains(&format!("namespace {namespace} removed")),
        "{stdout}"
    );
    assert_namespace_gone(&namespace).await;
}

#[test]
fn without_an_api_server_the_demo_names_the_command_that_starts_one() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters: [{{name: k, cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}}}]\n\
             users: [{{name: u, user: {{token: t}}}}]\n\
             contexts: [{{name: c, context: {{cluster: k, user: u}}}}]\n"
        ),
    )
    .unwrap();
    let output = demo_cluster(&kubeconfig);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("no Kubernetes API server answers"),
        "{stderr}"
    );
    assert!(stderr.contains("scripts/peers.sh start"), "{stderr}");
}
