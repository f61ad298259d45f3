//! Generic vSphere automation against the lab, through pyVmomi (VMware's SDK): the search index,
//! tasks waited on with `WaitForUpdatesEx` and with pyVim's `WaitForTask`, the datastore browser, host
//! advanced options set per host by the scenario, disk UUIDs, clone tickets, `summary.hardware`, the
//! `InvalidProperty` fault and a VM's two UUIDs — each held to the answer vCenter gives.
//!
//! The same script runs against vcsim (govmomi's simulator), and the test prints both side by side
//! with vCenter's answer, so a difference between the two simulators shows in the output.

use std::process::Command;

use co_lab::lab::Lab;
use co_lab::scenario::{AdvancedOptionValue, Scenario};
use co_testpeers::Vcsim;
use serde_json::{Value, json};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pyvmomi/automation.py");

/// Runs the suite against `127.0.0.1:port` and returns its answers.
async fn run_suite(port: u16, user: &str, password: &str) -> Value {
    let python = co_testpeers::python_with_pyvmomi().unwrap_or_else(|e| panic!("{e:#}"));
    let (user, password) = (user.to_owned(), password.to_owned());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(SCRIPT)
            .env("TARGET_PORT", port.to_string())
            .env("TARGET_USER", user)
            .env("TARGET_PASSWORD", password)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "pyvmomi suite failed:\n{stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

fn port_of(url: &str) -> u16 {
    let authority = url.trim_start_matches("https://");
    let authority = authority.split('/').next().unwrap_or_default();
    authority.rsplit(':').next().unwrap().parse().unwrap()
}

fn cell(value: Option<&Value>) -> String {
    let text = value.map_or_else(|| "-".to_owned(), Value::to_string);
    if text.chars().count() > 100 {
        format!("{}…", text.chars().take(99).collect::<String>())
    } else {
        text
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_automation_gets_vcenter_answers_from_the_lab() {
    let data = tempfile::tempdir().unwrap();
    let mut scenario = Scenario::default_embedded();
    // The second host has full-copy offload switched off and a larger XCOPY segment, written once in
    // esxcli's spelling and once in the API's: preflight must see each host's own settings.
    let host2 = &mut scenario.hosts[1].advanced_options;
    host2.insert(
        "/DataMover/HardwareAcceleratedMove".into(),
        AdvancedOptionValue::Long(0),
    );
    host2.insert(
        "DataMover.MaxHWTransferSize".into(),
        AdvancedOptionValue::Long(16384),
    );
    let lab = Lab::start(scenario, data.path()).await.unwrap();
    let from_lab = run_suite(lab.vcenter_addr.port(), &lab.username, &lab.password).await;

    let sim = Vcsim::start().expect("vcsim (install it with `scripts/peers.sh install vcsim`)");
    let from_vcsim = run_suite(port_of(&sim.url), &sim.username, &sim.password).await;

    let long = |v: i64| json!([true, v, "long"]);
    let host_options = |mov: i64, max: i64| {
        json!({
            "DataMover.HardwareAcceleratedInit": long(1),
            "DataMover.HardwareAcceleratedMove": long(mov),
            "DataMover.MaxHWTransferSize": long(max),
            "Disk.MaxLUN": long(1024),
        })
    };
    // What vCenter 8.0 U3 answers, check by check.
    let vcenter: Vec<(&str, Value)> = vec![
        ("service_content.missing_managers", json!([])),
        ("service_content.unreadable_managers", json!([])),
        ("search_index.vm_by_inventory_path", json!("expected")),
        ("search_index.host_by_inventory_path", json!("expected")),
        ("search_index.missing_inventory_path", json!("none")),
        ("search_index.find_child", json!("expected")),
        ("search_index.vm_by_datastore_path", json!("expected")),
        ("search_index.vm_by_bios_uuid", json!("expected")),
        ("search_index.vm_by_instance_uuid", json!("expected")),
        ("search_index.bios_uuid_as_instance_uuid", json!("none")),
        ("search_index.host_by_uuid", json!("expected")),
        ("search_index.host_by_dns_name", json!("expected")),
        (
            "vm.uuids",
            json!({"bios_is_uuid": true, "instance_is_uuid": true, "distinct": true}),
        ),
        (
            "host.summary.hardware",
            json!({"uuid_is_uuid": true, "has_vendor_and_model": true, "memory": true, "cpu": true,
                   "hbas_counted": true}),
        ),
        (
            "property_collector.invalid_property",
            json!("fault:InvalidProperty name=config.noSuchThing"),
        ),
        (
            "virtual_disk.uuid",
            json!({"vim_form": true, "is_the_backing_uuid": true}),
        ),
        (
            "virtual_disk.uuid_of_missing_disk",
            json!("fault:FileNotFound"),
        ),
        (
            "advanced_options.per_host",
            json!({
                "host 1": host_options(1, 4096),
                "host 2": host_options(0, 16384),
            }),
        ),
        (
            "advanced_options.group",
            json!([
                "DataMover.HardwareAcceleratedInit",
                "DataMover.HardwareAcceleratedMove",
                "DataMover.MaxHWTransferSize",
                "DataMover.MaxHeapSize"
            ]),
        ),
        (
            "advanced_options.update",
            json!({"int_value": "fault:InvalidArgument", "out_of_range": "fault:InvalidArgument",
                   "long_value_applied": true, "restored": true, "range_and_default": [4, 16384, 4096]}),
        ),
        ("advanced_options.unknown", json!("fault:InvalidName")),
        (
            "task.error",
            json!({"raised": "fault:FileNotFound", "state": "error", "error": "fault:FileNotFound",
                   "result": null}),
        ),
        (
            "task.pyvim_wait_for_task",
            json!({"state": "success", "disk_found_in": ["[<ds>] <vm>/"]}),
        ),
        (
            "folder.dc_path",
            json!({"/<dc>": true, "<dc>": true, "NoSuchDC": 404}),
        ),
        (
            "session.clone_ticket",
            json!({"user": true, "cloned_session_works": true, "ticket_reused": "fault:InvalidLogin"}),
        ),
    ];

    // WaitForUpdatesEx on a datastore search of the VM's folder: the disk is listed once, by its
    // descriptor (no `-flat.vmdk`), with the capacity the VM's device reports; a finished task has no
    // progress; with nothing changed, a zero wait answers no update.
    let expected_wait = json!({
        "first_update": "enter",
        "final_state": "success",
        "no_change_answers_none": true,
        "destroy_twice": "fault:ManagedObjectNotFound",
        "folder_path": "[<ds>] <vm>/",
        "files": [["<disk>", "VmDiskInfo", true]],
        "in_recent_tasks": true,
        "entity_is_the_datastore": true,
        "progress_on_success": null,
    });

    println!(
        "{:<40} {:<8} {:<8} vCenter's answer / lab / vcsim where it differs",
        "check", "lab", "vcsim"
    );
    let mut wrong = Vec::new();
    let all = vcenter
        .iter()
        .cloned()
        .chain([("task.wait_for_updates_ex", expected_wait)]);
    assert_eq!(
        from_lab.as_object().map(|o| o.len()),
        Some(vcenter.len() + 1),
        "every answer of the suite is checked: {from_lab}"
    );
    for (check, expected) in all {
        let lab_answer = from_lab.get(check);
        let sim_answer = from_vcsim.get(check);
        let verdict = |answer: Option<&Value>| {
            if answer == Some(&expected) {
                "same"
            } else {
                "DIFFERS"
            }
        };
        println!(
            "{check:<40} {:<8} {:<8}",
            verdict(lab_answer),
            verdict(sim_answer)
        );
        if lab_answer != Some(&expected) || sim_answer != Some(&expected) {
            println!("    vCenter {}", cell(Some(&expected)));
            println!("    lab     {}", cell(lab_answer));
            println!("    vcsim   {}", cell(sim_answer));
        }
        if lab_answer != Some(&expected) {
            wrong.push(format!(
                "{check}: vCenter answers {expected}, the lab answered {}",
                cell(lab_answer)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "the lab differs from vCenter:\n{}",
        wrong.join("\n")
    );
    assert_eq!(
        lab.vcenter_sessions(),
        0,
        "the suite logged every session out"
    );
    lab.shutdown().await;
}
