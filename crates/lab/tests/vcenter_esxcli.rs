//! esxcli over `ExecuteSoap` against the lab, driven as govmomi's executor does: device discovery after
//! mapping + rescan, detach/remove, the VIB-missing NotFound fault, and a full VIB clone with XCOPY.

use crate::support;

use std::time::Duration;

use co_lab::lab::{Lab, PATTERN_BLOCK, pattern_block};
use co_lab::scenario::Scenario;
use co_testpeers::eventually;
use support::{Soap, status_message};

const HOST1: &str = "host-10";
const HOST2: &str = "host-11";

fn device_status(list: &co_lab::xml::Element) -> String {
    list.child("DataObject")
        .and_then(|d| d.child_text("Status"))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapped_lun_appears_after_rescan_and_detaches_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let lab = Lab::start(Scenario::default_embedded(), data.path())
        .await
        .unwrap();
    let soap = Soap::login(&lab).await;

    let info = soap.cli_info(HOST1, "storage.core.device").await.unwrap();
    let list = info
        .children_named("method")
        .find(|m| m.child_text("name") == Some("list"))
        .unwrap();
    let aliases: Vec<_> = list
        .child("param")
        .unwrap()
        .children_named("aliases")
        .map(|a| a.text.clone())
        .collect();
    assert_eq!(aliases, ["--device", "-d"]);

    let initiator = lab.host("esxi-1.lab.local").unwrap().sim.initiators()[0].clone();
    let volume = lab
        .san
        .create_volume("ontap1", "pvc-target", 64 * 1024 * 1024)
        .unwrap();
    lab.san
        .ensure_group(
            "ontap1",
            "xcopy-hostsystem-host-10",
            std::slice::from_ref(&initiator),
        )
        .unwrap();
    lab.san
        .map("ontap1", "pvc-target", "xcopy-hostsystem-host-10")
        .unwrap();

    let (message, _) = soap
        .esxcli(
            HOST1,
            &["storage", "core", "device", "list"],
            &[("device", &volume.naa)],
        )
        .await
        .unwrap_err();
    assert!(
        message.contains(&volume.naa),
        "mapped but not rescanned must be unknown: {message}"
    );
    let rescan = soap
        .esxcli(
            HOST1,
            &["storage", "core", "adapter", "rescan"],
            &[("type", "add"), ("all", "1")],
        )
        .await
        .unwrap();
    assert_eq!(rescan.text, "true");
    let listed = soap
        .esxcli(
            HOST1,
            &["storage", "core", "device", "list"],
            &[("device", &volume.naa)],
        )
        .await
        .unwrap();
    assert_eq!(device_status(&listed), "on");
    let other_host = soap
        .esxcli(
            HOST2,
            &["storage", "core", "device", "list"],
            &[("device", &volume.naa)],
        )
        .await;
    assert!(
        other_host.is_err(),
        "the LUN is mapped to host 1's initiator only"
    );

    // Unmapped devices go dead until detached, as on ESXi.
    lab.san
        .unmap("ontap1", "pvc-target", "xcopy-hostsystem-host-10")
        .unwrap();
    soap.esxcli(
        HOST1,
        &["storage", "core", "adapter", "rescan"],
        &[("adapter", "vmhba64")],
    )
    .await
    .unwrap();
    let listed = soap
        .esxcli(
            HOST1,
            &["storage", "core", "device", "list"],
            &[("device", &volume.naa)],
        )
        .await
        .unwrap();
    assert_eq!(device_status(&listed), "dead timeout");

    soap.esxcli(
        HOST1,
        &["storage", "core", "device", "set"],
        &[("state", "off"), ("device", &volume.naa)],
    )
    .await
    .unwrap();
    let listed = soap
        .esxcli(
            HOST1,
            &["storage", "core", "device", "list"],
            &[("device", &volume.naa)],
        )
        .await
        .unwrap();
    assert_eq!(device_status(&listed), "off");
    soap.esxcli(
        HOST1,
        &["storage", "core", "device", "detached", "remove"],
        &[("device", &volume.naa)],
    )
    .await
    .unwrap();
    assert!(
        soap.esxcli(
            HOST1,
            &["storage", "core", "device", "list"],
            &[("device", &volume.naa)]
        )
        .await
        .is_err()
    );

    let version = soap
        .esxcli(HOST1, &["system", "version", "get"], &[])
        .await
        .unwrap();
    assert_eq!(version.child_text("Version"), Some("8.0.3"));
    assert_eq!(version.child_text("Product"), Some("VMware ESXi"));

    let (message, detail) = soap
        .esxcli(
            HOST1,
            &["storage", "core", "adapter", "rescan"],
            &[("adapter", "vmhba9")],
        )
        .await
        .unwrap_err();
    assert_eq!(message, "Unknown adapter vmhba9");
    assert!(detail.contains("vim.EsxCLI.CLIFault"));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_vib_answers_the_esxi_not_found_fault() {
    let data = tempfile::tempdir().unwrap();
    let lab = Lab::start(Scenario::default_embedded(), data.path())
        .await
        .unwrap();
    let soap = Soap::login(&lab).await;
    let (message, detail) = soap
        .esxcli(HOST2, &["vmkfstools", "version"], &[])
        .await
        .unwrap_err();
    assert_eq!(
        message,
        "The object or item referred to could not be found."
    );
    assert!(
        detail.contains("xsi:type=\"LocalizedMethodFault\"><fault xsi:type=\"NotFound\"></fault>"),
        "{detail}"
    );
    assert!(soap.cli_info(HOST2, "vmkfstools").await.is_err());

    let version = soap
        .esxcli(HOST1, &["vmkfstools", "version"], &[])
        .await
        .unwrap();
    assert_eq!(
        status_message(&version),
        (
            "0".to_owned(),
            format!("{{\"version\":\"{}\"}}", co_esxi::assets::WRAPPER_VERSION)
        )
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vib_clone_copies_the_disk_with_xcopy_and_cleans_up() {
    let data = tempfile::tempdir().unwrap();
    let lab = Lab::start(Scenario::default_embedded(), data.path())
        .await
        .unwrap();
    let soap = Soap::login(&lab).await;
    let initiator = lab.host("esxi-1.lab.local").unwrap().sim.initiators()[0].clone();
    let volume = lab
        .san
        .create_volume("ontap1", "pvc-clone", 64 * 1024 * 1024)
        .unwrap();
    lab.san
        .ensure_group("ontap1", "xcopy-hostsystem-host-10", &[initiator])
        .unwrap();
    lab.san
        .map("ontap1", "pvc-clone", "xcopy-hostsystem-host-10")
        .unwrap();
    soap.esxcli(
        HOST1,
        &["storage", "core", "adapter", "rescan"],
        &[("type", "add"), ("all", "1")],
    )
    .await
    .unwrap();

    let target = format!("/vmfs/devices/disks/{}", volume.naa);
    let started = soap
        .esxcli(
            HOST1,
            &["vmkfstools", "clone"],
            &[
                ("source-vmdk", "/vmfs/volumes/ds1/vm-1/vm-1.vmdk"),
                ("target-lun", &target),
            ],
        )
        .await
        .unwrap();
    let (status, message) = status_message(&started);
    assert_eq!(status, "0", "{message}");
    let started: serde_json::Value = serde_json::from_str(&message).unwrap();
    let task_id = started["taskId"].as_str().unwrap().to_owned();
    assert_eq!(task_id.len(), 36);
    assert_eq!(started["xcopyUsed"], false);

    let finished = eventually(Duration::from_secs(60), "clone task to finish", || {
        let soap = &soap;
        let task_id = task_id.clone();
        async move {
            let status = soap
                .esxcli(HOST1, &["vmkfstools", "taskGet"], &[("id", &task_id)])
                .await
                .unwrap();
            let (_, message) = status_message(&status);
            let json: serde_json::Value = serde_json::from_str(&message).unwrap();
            (json["exitCode"] != "").then_some(json)
        }
    })
    .await;
    assert_eq!(finished["exitCode"], "0", "{finished}");
    assert_eq!(finished["lastLine"], "Clone: 100% done.");
    assert_eq!(finished["xcopyUsed"], true, "same array ⇒ offloaded");
    assert_eq!(finished["taskId"], task_id.as_str());

    let copied = std::fs::read(&volume.backing_path).unwrap();
    for mib in [0usize, 1, 63] {
        let at = mib * 1024 * 1024;
        assert_eq!(
            &copied[at..at + PATTERN_BLOCK],
            pattern_block(mib as u64).as_slice(),
            "MiB {mib}"
        );
    }
    assert!(lab.san.clone_counters(&volume.naa).clone_write_ops > 0);
    let vm_dir = lab.datastore_dir("ds1").join("vm-1");
    let rdm_files = || {
        std::fs::read_dir(&vm_dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("-rdmdisk-")
            })
            .count()
    };
    assert_eq!(
        rdm_files(),
        2,
        "the RDM descriptor and its -rdm.vmdk mapping file sit next to the source"
    );

    let cleaned = soap
        .esxcli(HOST1, &["vmkfstools", "taskClean"], &[("id", &task_id)])
        .await
        .unwrap();
    assert_eq!(status_message(&cleaned).0, "0");
    assert_eq!(
        rdm_files(),
        0,
        "task-clean removes the RDM descriptor and mapping file"
    );
    let gone = soap
        .esxcli(HOST1, &["vmkfstools", "taskGet"], &[("id", &task_id)])
        .await
        .unwrap();
    assert_eq!(status_message(&gone).0, "1");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_surface_in_each_protocol() {
    let data = tempfile::tempdir().unwrap();
    let mut scenario = Scenario::default_embedded();
    scenario.faults.push(co_lab::faults::FaultRule {
        site: "esxcli:system version get".into(),
        latency_ms: 0,
        error: Some("hostd is restarting".into()),
        times: Some(1),
    });
    let lab = Lab::start(scenario, data.path()).await.unwrap();
    let soap = Soap::login(&lab).await;
    let (message, _) = soap
        .esxcli(HOST1, &["system", "version", "get"], &[])
        .await
        .unwrap_err();
    assert_eq!(message, "hostd is restarting");
    assert!(
        soap.esxcli(HOST1, &["system", "version", "get"], &[])
            .await
            .is_ok(),
        "the rule applied once"
    );

    lab.faults.add(co_lab::faults::FaultRule {
        site: "soap:RetrieveManagedMethodExecuter".into(),
        latency_ms: 0,
        error: Some("vpxd overloaded".into()),
        times: None,
    });
    let fault = soap
        .call("RetrieveManagedMethodExecuter", "HostSystem", HOST1, "")
        .await
        .unwrap_err();
    assert_eq!(fault.xsi_type(), Some("SystemError"));
    assert_eq!(fault.child_text("reason"), Some("vpxd overloaded"));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_faults_match_vcenter() {
    let data = tempfile::tempdir().unwrap();
    let lab = Lab::start(Scenario::default_embedded(), data.path())
        .await
        .unwrap();
    let soap = Soap::login(&lab).await;
    let missing = soap
        .call("RetrieveManagedMethodExecuter", "HostSystem", "host-99", "")
        .await
        .unwrap_err();
    assert_eq!(missing.xsi_type(), Some("ManagedObjectNotFound"));
    let unknown = soap
        .call("PowerOnVM_Task", "VirtualMachine", "vm-40", "")
        .await
        .unwrap_err();
    assert_eq!(unknown.xsi_type(), Some("MethodNotFound"));
    soap.call("Logout", "SessionManager", "SessionManager", "")
        .await
        .unwrap();
    let after = soap
        .call("RetrieveManagedMethodExecuter", "HostSystem", HOST1, "")
        .await
        .unwrap_err();
    assert_eq!(after.xsi_type(), Some("NotAuthenticated"));
    lab.shutdown().await;
}

const CLIENT_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

/// Maps a new volume to host-10 and rescans; returns its device path.
async fn mapped_target(lab: &co_lab::lab::RunningLab, soap: &Soap, name: &str) -> (String, String) {
    let initiator = lab.host("esxi-1.lab.local").unwrap().sim.initiators()[0].clone();
    let volume = lab
        .san
        .create_volume("ontap1", name, 64 * 1024 * 1024)
        .unwrap();
    lab.san
        .ensure_group("ontap1", "xcopy-hostsystem-host-10", &[initiator])
        .unwrap();
    lab.san
        .map("ontap1", name, "xcopy-hostsystem-host-10")
        .unwrap();
    soap.esxcli(
        HOST1,
        &["storage", "core", "adapter", "rescan"],
        &[("type", "add"), ("all", "1")],
    )
    .await
    .unwrap();
    let target = format!("/vmfs/devices/disks/{}", volume.naa);
    (volume.naa, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_task_id_makes_the_start_idempotent_and_a_writing_device_cannot_be_detached() {
    let data = tempfile::tempdir().unwrap();
    let lab = Lab::start(Scenario::default_embedded(), data.path())
        .await
        .unwrap();
    let soap = Soap::login(&lab).await;
    let host = lab.host("esxi-1.lab.local").unwrap().sim.clone();
    let (naa, target) = mapped_target(&lab, &soap, "pvc-held").await;
    let info = soap.cli_info(HOST1, "vmkfstools").await.unwrap();
    let clone = info
        .children_named("method")
        .find(|m| m.child_text("name") == Some("clone"))
        .unwrap();
    let params: Vec<_> = clone
        .children_named("param")
        .filter_map(|p| p.child_text("name"))
        .collect();
    assert_eq!(params, ["source-vmdk", "target-lun", "task-id"]);

    host.hold_next_clone();
    let clone_args = [
        ("source-vmdk", "/vmfs/volumes/ds1/vm-1/vm-1.vmdk"),
        ("target-lun", target.as_str()),
        ("task-id", CLIENT_ID),
    ];
    let start = || soap.esxcli(HOST1, &["vmkfstools", "clone"], &clone_args);
    let first = start().await.unwrap();
    let (status, message) = status_message(&first);
    assert_eq!(status, "0", "{message}");
    let first: serde_json::Value = serde_json::from_str(&message).unwrap();
    assert_eq!(first["taskId"], CLIENT_ID);
    let again: serde_json::Value =
        serde_json::from_str(&status_message(&start().await.unwrap()).1).unwrap();
    assert_eq!(again, first, "a repeated start answers the same task");
    assert_eq!(host.task_ids(), [CLIENT_ID]);

    let off_args = [("device", naa.as_str()), ("state", "off")];
    let set_off = || soap.esxcli(HOST1, &["storage", "core", "device", "set"], &off_args);
    let (busy, _) = set_off().await.unwrap_err();
    assert!(
        busy.contains("Busy") && busy.contains(&naa),
        "a device a clone writes to cannot be detached: {busy}"
    );
    assert_eq!(host.device(&naa).unwrap().state.as_str(), "on");

    let aborted = soap
        .esxcli(HOST1, &["vmkfstools", "taskAbort"], &[("id", CLIENT_ID)])
        .await
        .unwrap();
    assert_eq!(status_message(&aborted).0, "0");
    eventually(Duration::from_secs(10), "the aborted clone to end", || {
        let host = host.clone();
        async move { host.task_status(CLIENT_ID).unwrap().exit_code }
    })
    .await;
    set_off().await.unwrap();
    let cleaned = soap
        .esxcli(HOST1, &["vmkfstools", "taskClean"], &[("id", CLIENT_ID)])
        .await
        .unwrap();
    assert_eq!(status_message(&cleaned).0, "0");
    assert!(host.task_ids().is_empty());
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_wrapper_1_0_0_has_no_clone_task_id() {
    let data = tempfile::tempdir().unwrap();
    let mut scenario = Scenario::default_embedded();
    scenario.hosts[0].wrapper_version = Some("1.0.0".into());
    let lab = Lab::start(scenario, data.path()).await.unwrap();
    let soap = Soap::login(&lab).await;
    let (_, target) = mapped_target(&lab, &soap, "pvc-old").await;
    let version = soap
        .esxcli(HOST1, &["vmkfstools", "version"], &[])
        .await
        .unwrap();
    assert_eq!(status_message(&version).1, r#"{"version":"1.0.0"}"#);
    let info = soap.cli_info(HOST1, "vmkfstools").await.unwrap();
    let clone = info
        .children_named("method")
        .find(|m| m.child_text("name") == Some("clone"))
        .unwrap();
    assert_eq!(clone.children_named("param").count(), 2);
    let (refused, _) = soap
        .esxcli(
            HOST1,
            &["vmkfstools", "clone"],
            &[
                ("source-vmdk", "/vmfs/volumes/ds1/vm-1/vm-1.vmdk"),
                ("target-lun", &target),
                ("task-id", CLIENT_ID),
            ],
        )
        .await
        .unwrap_err();
    assert!(refused.contains("--task-id"), "{refused}");
    let host = lab.host("esxi-1.lab.local").unwrap().sim.clone();
    assert!(host.task_ids().is_empty());
    lab.shutdown().await;
}
