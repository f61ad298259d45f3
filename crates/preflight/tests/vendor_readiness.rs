//! The array's part of preflight for every vendor, against the lab's facade of that vendor: the
//! ESXi host's initiators known to the array pass, an initiator the array does not know fails
//! naming it, each vendor prerequisite the plugin reads fails with its remedy when unmet, and the
//! source LUN is recognised as a volume of the configured array.

use crate::support;

use co_lab::lab::DATASTORE_GROUP;
use co_lab::rig::facade;
use co_lab::scenario::{Scenario, VendorSpec};
use co_preflight::{Check, Outcome, Report};
use support::{DISK, HOST, LabRun, assert_check_fails, ready_scenario, the_one};

/// Every vendor the lab serves and preflight has a plugin for.
const VENDORS: [VendorSpec; 9] = [
    VendorSpec::Ontap,
    VendorSpec::PureFlashArray,
    VendorSpec::PowerStore,
    VendorSpec::FlashSystem,
    VendorSpec::PowerMax,
    VendorSpec::InfiniBox,
    VendorSpec::Primera3Par,
    VendorSpec::Vantara,
    VendorSpec::PowerFlex,
];

/// The prepared site with its array served as `vendor`.
fn scenario_for(vendor: VendorSpec) -> Scenario {
    let mut scenario = ready_scenario();
    scenario.arrays[0].vendor = vendor;
    scenario
}

/// The initiator of the lab host the array maps through: the SDC for PowerFlex, the SAN adapter
/// otherwise.
fn host_initiator(run: &LabRun, vendor: VendorSpec) -> String {
    let host = &run.lab.hosts[0].sim;
    if vendor == VendorSpec::PowerFlex {
        return host
            .spec
            .sdc_guid()
            .expect("a PowerFlex lab gives every host an SDC")
            .to_owned();
    }
    host.initiators()
        .into_iter()
        .next()
        .expect("the lab host has a SAN adapter")
}

/// `<product> <address>`, the subject of the array's checks.
fn array_subject(run: &LabRun) -> String {
    let array = &run.lab.arrays[0];
    format!("{} {}", facade(array.vendor).product(), array.url)
}

fn prerequisite<'a>(report: &'a Report, run: &LabRun, name: &str) -> &'a Check {
    the_one(
        report,
        "storage.vendor-prerequisite",
        &format!("{}: {name}", array_subject(run)),
    )
}

/// Whether the vendor's plugin tells its own volumes from another array's of the same vendor.
fn tells_its_own_volumes(vendor: VendorSpec) -> bool {
    vendor != VendorSpec::Vantara
}

async fn knows_the_hosts_initiators(vendor: VendorSpec) {
    let run = LabRun::start(scenario_for(vendor)).await;
    let report = run.preflight(&[], run.options()).await;
    let table = report.to_table();
    let initiator = host_initiator(&run, vendor);
    let check = the_one(&report, "storage.initiators", HOST);
    assert_eq!(check.outcome, Outcome::Pass, "{vendor:?}: {table}");
    assert!(
        check
            .message
            .to_ascii_lowercase()
            .contains(&initiator.to_ascii_lowercase()),
        "{vendor:?}: {}",
        check.message
    );
    let failed: Vec<&Check> = report
        .checks
        .iter()
        .filter(|c| c.id.starts_with("storage.") && c.outcome != Outcome::Pass)
        .collect();
    assert!(failed.is_empty(), "{vendor:?}: {table}");
    let same_array = the_one(&report, "disk.same-array", DISK);
    if tells_its_own_volumes(vendor) {
        assert_eq!(same_array.outcome, Outcome::Pass, "{vendor:?}: {table}");
        assert!(
            same_array.message.contains("is a volume of the array at"),
            "{}",
            same_array.message
        );
    } else {
        assert_eq!(same_array.outcome, Outcome::Warn, "{vendor:?}: {table}");
        assert!(
            same_array.message.contains("cannot tell"),
            "{}",
            same_array.message
        );
    }
    assert!(report.ready, "{vendor:?}: {table}");
}

async fn names_an_initiator_the_array_does_not_know(vendor: VendorSpec) {
    let run = LabRun::start(scenario_for(vendor)).await;
    let initiator = host_initiator(&run, vendor);
    let array = &run.lab.arrays[0].name;
    // As on a site where the host was never zoned to (or registered on) this array.
    for group in run.lab.san.groups(array) {
        if let Some(held) = group
            .initiators
            .iter()
            .find(|i| i.eq_ignore_ascii_case(&initiator))
        {
            run.lab
                .san
                .remove_initiator(array, &group.name, held)
                .unwrap();
        }
    }
    let report = run.preflight(&[], run.options()).await;
    let check = the_one(&report, "storage.initiators", HOST);
    assert_eq!(
        check.outcome,
        Outcome::Fail,
        "{vendor:?}: {}",
        report.to_table()
    );
    assert!(
        check
            .message
            .to_ascii_lowercase()
            .contains(&format!("does not know {}", initiator.to_ascii_lowercase())),
        "{vendor:?}: {}",
        check.message
    );
    assert!(
        check
            .remedy
            .to_ascii_lowercase()
            .contains(&format!("register {}", initiator.to_ascii_lowercase())),
        "{vendor:?}: {}",
        check.remedy
    );
    assert!(!report.ready);
}

/// One test per vendor and case, so the vendors run side by side.
macro_rules! every_vendor {
    ($($module:ident => $vendor:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn knows_the_hosts_initiators_and_its_own_source_lun() {
                knows_the_hosts_initiators($vendor).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn names_an_initiator_the_array_does_not_know() {
                super::names_an_initiator_the_array_does_not_know($vendor).await;
            }
        }
    )*};
}

every_vendor! {
    ontap => VendorSpec::Ontap,
    pure_flash_array => VendorSpec::PureFlashArray,
    powerstore => VendorSpec::PowerStore,
    flashsystem => VendorSpec::FlashSystem,
    powermax => VendorSpec::PowerMax,
    infinibox => VendorSpec::InfiniBox,
    primera3par => VendorSpec::Primera3Par,
    vantara => VendorSpec::Vantara,
    powerflex => VendorSpec::PowerFlex,
}

#[test]
fn every_vendor_is_checked_here() {
    let source = include_str!("vendor_readiness.rs");
    for vendor in VENDORS {
        assert!(
            source.contains(&format!("=> VendorSpec::{vendor:?},")),
            "add `{vendor:?}` to every_vendor!"
        );
    }
    assert_eq!(
        VENDORS.len(),
        co_api::StorageVendorProduct::ALL.len(),
        "a vendor is missing from VENDORS"
    );
}

/// Starts the `vendor` lab with the datastore's group given another OS personality (as an
/// administrator who set the host up for another OS would have) and runs preflight.
async fn with_datastore_group_personality(vendor: VendorSpec, os_type: &str) -> (LabRun, Report) {
    let run = LabRun::start(scenario_for(vendor)).await;
    let array = run.lab.arrays[0].name.clone();
    run.lab
        .san
        .set_group_os_type(&array, DATASTORE_GROUP, Some(os_type))
        .unwrap();
    let report = run.preflight(&[], run.options()).await;
    (run, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ontap_igroup_of_another_os_type_fails_with_the_modify_command() {
    let (run, report) = with_datastore_group_personality(VendorSpec::Ontap, "linux").await;
    let check = prerequisite(&report, &run, &format!("igroup {DATASTORE_GROUP} os_type"));
    assert!(check.message.contains("os_type linux"), "{}", check.message);
    assert_check_fails(
        &report,
        check,
        &format!("lun igroup modify -vserver svm0 -igroup {DATASTORE_GROUP} -ostype vmware"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn powerstore_host_of_another_os_fails_naming_esxi() {
    let (run, report) = with_datastore_group_personality(VendorSpec::PowerStore, "Linux").await;
    let check = prerequisite(&report, &run, &format!("host {DATASTORE_GROUP} os_type"));
    assert_check_fails(
        &report,
        check,
        &format!("Give host {DATASTORE_GROUP} the operating system ESXi"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primera3par_host_of_another_persona_fails_with_the_sethost_command() {
    // WSAPI persona 2: Generic-ALUA.
    let (run, report) = with_datastore_group_personality(VendorSpec::Primera3Par, "2").await;
    let check = prerequisite(&report, &run, &format!("host {DATASTORE_GROUP} persona"));
    assert!(check.message.contains("persona 2"), "{}", check.message);
    assert_check_fails(
        &report,
        check,
        &format!("sethost -persona 11 {DATASTORE_GROUP}"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vantara_host_group_of_another_host_mode_fails_with_the_raidcom_command() {
    let (run, report) = with_datastore_group_personality(VendorSpec::Vantara, "LINUX/IRIX").await;
    let subject = array_subject(&run);
    let host_mode: Vec<&Check> = report
        .checks
        .iter()
        .filter(|c| {
            c.id == "storage.vendor-prerequisite"
                && c.subject.starts_with(&subject)
                && c.subject.ends_with("host mode")
        })
        .collect();
    assert!(!host_mode.is_empty(), "{}", report.to_table());
    for check in host_mode {
        assert!(
            check.message.contains("host mode LINUX/IRIX"),
            "{}",
            check.message
        );
        assert_check_fails(&report, check, "-host_mode VMWARE_EX");
    }
    // The options are still 54 and 63.
    assert!(
        report
            .checks
            .iter()
            .filter(|c| c.subject.ends_with("host mode options 54 and 63"))
            .all(|c| c.outcome == Outcome::Pass),
        "{}",
        report.to_table()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vantara_checks_the_host_groups_hostgroup_id_list_names() {
    let run = LabRun::start(scenario_for(VendorSpec::Vantara)).await;
    // The host group the lab registers the host in, as the discovered check names it.
    let report = run.preflight(&[], run.options()).await;
    let subject = the_checks_ending(&report, "host mode")[0].subject.clone();
    let id = subject
        .split("host group ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("the check names the host group")
        .to_owned();

    let configured = [format!("--vantara-hostgroup-id-list={id}:CL9-Z,9")];
    let report = run.preflight(&configured, run.options()).await;
    let host_mode = the_checks_ending(&report, "host mode");
    assert_eq!(host_mode.len(), 1, "{}", report.to_table());
    assert!(host_mode[0].subject.contains(&id));
    assert!(host_mode[0].message.contains("admits every ESXi host"));
    assert_eq!(host_mode[0].outcome, Outcome::Pass);
    let missing = prerequisite(&report, &run, "host group CL9-Z,9");
    assert_check_fails(&report, missing, "Correct HOSTGROUP_ID_LIST");
}

fn the_checks_ending<'a>(report: &'a Report, suffix: &str) -> Vec<&'a Check> {
    report
        .checks
        .iter()
        .filter(|c| c.id == "storage.vendor-prerequisite" && c.subject.ends_with(suffix))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_listing_warns_instead_of_failing_the_login() {
    let run = LabRun::start(scenario_for(VendorSpec::Ontap)).await;
    run.lab.faults.add(co_lab::faults::FaultRule {
        site: format!(
            "array:{}:GET /api/protocols/san/igroups",
            run.lab.arrays[0].name
        ),
        latency_ms: 0,
        error: Some("403 not authorized for that command".into()),
        times: None,
    });
    let report = run.preflight(&[], run.options()).await;
    let subject = array_subject(&run);
    assert_eq!(
        the_one(&report, "storage.login", &subject).outcome,
        Outcome::Pass,
        "{}",
        report.to_table()
    );
    let refused = the_one(&report, "storage.vendor-prerequisite", &subject);
    assert_eq!(refused.outcome, Outcome::Warn);
    assert!(refused.message.contains("403"), "{}", refused.message);
    assert!(refused.remedy.contains("read access to hosts"));
    assert_eq!(
        the_one(&report, "storage.initiators", HOST).outcome,
        Outcome::Warn
    );
}
