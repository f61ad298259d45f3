//! `copy-offload preflight --provider … --storage-map …`: the settings read from Forklift's
//! Provider, its credentials Secret and the StorageMap's offload Secret on the real API server
//! peer (`scripts/peers.sh start`), the checks run against the lab.

use crate::plan_objects;
use crate::support;

use assert_cmd::cargo::cargo_bin_cmd;
use co_lab::lab::{Lab, RunningLab};
use co_lab::rig::facade;
use co_lab::scenario::{AdvancedOptionValue, Scenario};
use plan_objects::{create_forklift, create_secret};
use serde_json::json;
use support::Scratch;

async fn start_lab() -> (RunningLab, tempfile::TempDir) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut scenario = Scenario::default_embedded();
    scenario.hosts[0].advanced_options.insert(
        "DataMover.MaxHWTransferSize".into(),
        AdvancedOptionValue::Long(16384),
    );
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::start(scenario, dir.path()).await.unwrap();
    (lab, dir)
}

/// A vSphere Provider for the lab's vCenter (credentials in its Secret, as Forklift keeps them)
/// and a StorageMap whose one pair offloads to the lab's array with `offload_secret`.
async fn migration_objects(scratch: &Scratch, lab: &RunningLab, offload: Option<&str>) {
    migration_objects_with(scratch, lab, offload, "vib").await;
}

async fn migration_objects_with(
    scratch: &Scratch,
    lab: &RunningLab,
    offload: Option<&str>,
    clone_method: &str,
) {
    let settings = json!({ "esxiCloneMethod": clone_method });
    plan_objects::create_vcenter_provider(scratch, lab, settings).await;
    let array = &lab.arrays[0];
    let facade = facade(array.vendor);
    let mut data = json!({
        "STORAGE_HOSTNAME": array.url,
        "STORAGE_USERNAME": array.username,
        "STORAGE_PASSWORD": array.password,
        "STORAGE_SKIP_SSL_VERIFICATION": "true",
    });
    for (flag, value) in facade.vendor_flags(array) {
        data[flag.env_name()] = json!(value);
    }
    create_secret(scratch, "offload-ontap", data).await;
    let plugin = offload.map(|secret| {
        json!({ "vsphereXcopyConfig": {
            "secretRef": secret,
            "storageVendorProduct": facade.product(),
        }})
    });
    create_forklift(
        scratch,
        "StorageMap",
        "offload-map",
        json!({
            "provider": {
                "source": { "name": "vcenter", "namespace": scratch.namespace },
            },
            "map": [{
                "source": { "name": "ds1" },
                "destination": { "storageClass": "ontap-san" },
                "offloadPlugin": plugin,
            }],
        }),
    )
    .await;
}

/// Runs preflight in cluster mode with nothing in its environment; exit code, stdout, stderr.
async fn preflight_in_cluster(scratch: &Scratch) -> (i32, String, String) {
    let mut cmd = cargo_bin_cmd!("copy-offload");
    cmd.env_clear().args([
        "preflight",
        "--vm",
        "vm-1",
        "-o",
        "json",
        "--kubeconfig",
        &co_testpeers::kubeconfig_path().to_string_lossy(),
        "--provider",
        &format!("{}/vcenter", scratch.namespace),
        "--storage-map",
        &format!("{}/offload-map", scratch.namespace),
    ]);
    // The lab answers on this runtime's workers while the binary runs.
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_and_storage_map_give_every_setting() {
    let (lab, _dir) = start_lab().await;
    let scratch = Scratch::new("pf-cluster").await;
    migration_objects(&scratch, &lab, Some("offload-ontap")).await;
    let (code, stdout, stderr) = preflight_in_cluster(&scratch).await;
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}\nstderr: {stderr}"));
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let outcome = |id: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["outcome"].clone())
    };
    for id in [
        "vsphere.login",
        "storage.login",
        "host.vib",
        "disk.same-array",
    ] {
        assert_eq!(outcome(id), Some(json!("pass")), "{id}: {report:#}");
    }
    assert_eq!(report["disks"][0]["path"], "xcopy", "{report:#}");
    assert!(!stderr.contains(&lab.password), "no credential in the logs");
    scratch.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_map_without_offload_says_so() {
    let (lab, _dir) = start_lab().await;
    let scratch = Scratch::new("pf-cluster").await;
    migration_objects(&scratch, &lab, None).await;
    let (code, stdout, stderr) = preflight_in_cluster(&scratch).await;
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("has no storage pair with offloadPlugin.vsphereXcopyConfig"),
        "{stderr}"
    );
    scratch.finish().await;
}

/// The SSH method's key pair comes from the Secrets the provider controller writes for the
/// Provider, base64-encoded as `populate` takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssh_method_takes_the_providers_key_pair() {
    use base64::Engine as _;
    let (lab, _dir) = start_lab().await;
    let scratch = Scratch::new("pf-cluster").await;
    migration_objects_with(&scratch, &lab, Some("offload-ontap"), "ssh").await;
    let private_pem =
        "-----BEGIN OPENSSH PRIVATE KEY-----\nlab\n-----END OPENSSH PRIVATE KEY-----\n";
    let public_line = "ssh-rsa AAAAB3NzaC1yc2E lab@provider";
    create_secret(
        &scratch,
        "offload-ssh-keys-vcenter-private",
        json!({ "private-key": private_pem }),
    )
    .await;
    create_secret(
        &scratch,
        "offload-ssh-keys-vcenter-public",
        json!({ "public-key": public_line }),
    )
    .await;
    let object = |name: &str| co_preflight::cluster::ObjectName {
        namespace: scratch.namespace.clone(),
        name: name.to_owned(),
    };
    let flags = co_preflight::cluster::populate_flags(
        &scratch.client,
        &object("vcenter"),
        &object("offload-map"),
        None,
    )
    .await
    .unwrap();
    let value = |name: &str| {
        flags
            .iter()
            .find_map(|f| f.strip_prefix(&format!("--{name}=")))
            .unwrap_or_else(|| panic!("no --{name}"))
            .to_owned()
    };
    let decode = |text: String| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(value("esxi-clone-method"), "ssh");
    assert_eq!(decode(value("ssh-public-key")), public_line);
    assert_eq!(decode(value("ssh-private-key")), private_pem.trim_end());
    assert_eq!(value("vsphere-hostname"), lab.vcenter_url);
    scratch.finish().await;
}
