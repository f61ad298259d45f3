//! `copy-offload plan --dry-run`: the real binary against the API server peer
//! (`scripts/peers.sh start`) and the lab's vCenter — the objects it would create for a plan, the
//! mixed-usage refusal, a missing Plan, and the flag it requires.

use crate::plan_objects;
use crate::support;

use assert_cmd::cargo::cargo_bin_cmd;
use co_lab::lab::{Lab, RunningLab};
use plan_objects::{create_plan_objects, ensure_populator_crd, scenario};
use serde_json::{Value, json};
use support::Scratch;

/// Runs `copy-offload plan --dry-run -n <namespace> <plan>` with only the peer's kubeconfig;
/// exit code, stdout, stderr.
async fn dry_run(namespace: &str, plan: &str) -> (i32, String, String) {
    let mut cmd = cargo_bin_cmd!("copy-offload");
    cmd.env_clear().args([
        "plan",
        "--dry-run",
        "--kubeconfig",
        &co_testpeers::kubeconfig_path().to_string_lossy(),
        "-n",
        namespace,
        plan,
    ]);
    // The lab answers on this runtime's workers while the binary runs.
    let output = tokio::task::spawn_blocking(move || cmd.output().expect("the binary runs"))
        .await
        .expect("the binary's thread");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn lab_and_scratch(prefix: &str) -> (RunningLab, tempfile::TempDir, Scratch) {
    let scratch = Scratch::new(prefix).await;
    ensure_populator_crd(&scratch.client).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let lab = Lab::start(scenario(), dir.path())
        .await
        .expect("the lab starts");
    (lab, dir, scratch)
}

fn documents(yaml: &str) -> Vec<Value> {
    yaml.split("\n---\n")
        .map(|document| serde_yaml::from_str::<Value>(document).expect("a YAML document"))
        .filter(|document| !document.is_null())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_lists_the_pvc_populator_and_redacted_secret_of_each_disk() {
    let (lab, _dir, scratch) = lab_and_scratch("plan-cli").await;
    create_plan_objects(&scratch, &lab, json!([{ "name": "vm-1" }])).await;
    let (code, stdout, stderr) = dry_run(&scratch.namespace, "my-plan").await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");

    let objects = documents(&stdout);
    let kinds: Vec<&str> = objects
        .iter()
        .map(|object| object["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        kinds,
        [
            "PersistentVolumeClaim",
            "VSphereXcopyVolumePopulator",
            "Secret"
        ],
        "{stdout}"
    );
    let (pvc, populator, secret) = (&objects[0], &objects[1], &objects[2]);
    let name = pvc["metadata"]["name"].as_str().expect("a PVC name");
    assert!(name.starts_with("my-plan-vm-"), "{name}");
    for object in &objects {
        assert_eq!(object["metadata"]["name"], name);
        assert_eq!(object["metadata"]["namespace"], scratch.namespace.as_str());
    }
    assert_eq!(pvc["spec"]["volumeMode"], "Block");
    assert_eq!(pvc["spec"]["storageClassName"], "ontap-san");
    assert_eq!(
        pvc["spec"]["resources"]["requests"]["storage"],
        (64u64 << 20).to_string()
    );
    assert_eq!(
        pvc["spec"]["dataSourceRef"]["kind"],
        "VSphereXcopyVolumePopulator"
    );
    assert_eq!(
        pvc["metadata"]["annotations"]["forklift.konveyor.io/disk-source"],
        "[ds1] vm-1/vm-1.vmdk"
    );
    let naa = lab
        .san
        .volume("ontap1", "ds-ds1")
        .expect("the ds1 LUN")
        .naa
        .to_ascii_lowercase();
    assert_eq!(
        pvc["metadata"]["labels"]["volume.csi.k8s.io/affinity-source-naa"],
        naa.as_str()
    );
    assert_eq!(populator["spec"]["vmdkPath"], "[ds1] vm-1/vm-1.vmdk");
    assert_eq!(populator["spec"]["secretName"], name);
    assert_eq!(populator["spec"]["storageVendorProduct"], "ontap");
    assert_eq!(
        secret["data"]["STORAGE_PASSWORD"],
        format!("<redacted: {} bytes>", lab.arrays[0].password.len())
    );
    assert!(
        secret["data"]["GOVMOMI_HOSTNAME"]
            .as_str()
            .is_some_and(|value| value.starts_with("<redacted: ")),
        "{secret}"
    );
    assert!(
        !stdout.contains(&lab.arrays[0].password) && !stdout.contains(&lab.password),
        "a secret value leaked:\n{stdout}"
    );
    drop(lab);
    scratch.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_plan_prints_the_condition_and_fails_permanently() {
    let (lab, _dir, scratch) = lab_and_scratch("plan-cli-mixed").await;
    create_plan_objects(&scratch, &lab, json!([{ "name": "vm-2" }])).await;
    let (code, stdout, stderr) = dry_run(&scratch.namespace, "my-plan").await;
    assert_eq!(code, 3, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let condition = documents(&stdout).remove(0);
    assert_eq!(condition["type"], "VDDKAndOffloadMixedUsage");
    assert_eq!(condition["category"], "Critical");
    let items = condition["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{condition}");
    let item = items[0].as_str().unwrap_or_default();
    assert!(
        item.starts_with("VM vm-2 (vm-")
            && item.contains("disk [ds2] vm-2/vm-2_3.vmdk on datastore ds2"),
        "{item}"
    );
    assert!(stderr.contains("cannot mix VDDK mappings"), "{stderr}");
    drop(lab);
    scratch.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_plan_is_a_clear_permanent_error() {
    let scratch = Scratch::new("plan-cli-none").await;
    let (code, stdout, stderr) = dry_run(&scratch.namespace, "nope").await;
    assert_eq!(code, 3, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "Plan {}/nope does not exist; check the name and the namespace",
            scratch.namespace
        )),
        "{stderr}"
    );
    scratch.finish().await;
}

#[test]
fn without_dry_run_it_points_at_the_controller() {
    let output = cargo_bin_cmd!("copy-offload")
        .env_clear()
        .args(["plan", "-n", "mtv", "my-plan"])
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("only --dry-run is supported; the planner controller"),
        "{stderr}"
    );
}
