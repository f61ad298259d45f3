//! The metrics a copy feeds, scraped from its HTTPS endpoint during the final-scrape wait as the
//! populator controller does, parsed with a Prometheus text parser and checked against the
//! upstream names and labels.

use crate::e2e_support;

use std::collections::HashMap;
use std::time::Duration;

use co_populator::ExitCode;
use co_populator::metrics::names;
use co_populator::run_with;
use e2e_support::{LabRig, MIB};
use prometheus_parse::{Sample, Scrape, Value};

fn sample<'a>(scrape: &'a Scrape, name: &str) -> &'a Sample {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .unwrap_or_else(|| panic!("{name} missing"))
}

fn value(sample: &Sample) -> f64 {
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => panic!("unexpected value type for {}", sample.metric),
    }
}

fn labels(sample: &Sample) -> HashMap<String, String> {
    sample
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_is_scraped_with_the_upstream_names_and_labels() {
    let rig = LabRig::start().await;
    rig.target_volume("trident_pvc_metrics", 64 * MIB);
    let mut args = rig.args("trident_pvc_metrics");
    let mut options = rig.options("metrics");
    let port = e2e_support::metrics_listener(&mut args, &mut options);
    options.final_scrape_wait = Duration::from_secs(30);
    let run = tokio::spawn(run_with(rig.config(&args), options));

    let body = e2e_support::scrape_until_complete(port, Duration::from_secs(60)).await;
    let summary = run.await.unwrap();
    assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);

    let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let owner = "uid-trident_pvc_metrics";

    let progress = sample(&scrape, names::PROGRESS);
    assert_eq!(value(progress), 100.0);
    assert_eq!(labels(progress)["owner_uid"], owner);

    let xcopy = sample(&scrape, names::XCOPY_USED);
    assert_eq!(value(xcopy), 1.0);
    let xcopy_labels = labels(xcopy);
    assert_eq!(xcopy_labels["storage_vendor"], "ontap");
    assert_eq!(xcopy_labels["clone_method"], "vib");

    let done = sample(&scrape, names::COPY_DURATION_SECONDS);
    assert!(value(done) > 0.0);
    let done_labels = labels(done);
    for (key, want) in [
        ("owner_uid", owner),
        ("result", "success"),
        ("storage_vendor", "ontap"),
        ("clone_method", "vib"),
        ("xcopy_used", "1"),
        ("storage_protocol", "iscsi"),
    ] {
        assert_eq!(done_labels[key], want, "{key}");
    }

    let provisioned = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == names::SOURCE_DISK_BYTES && s.labels.get("type") == Some("provisioned")
        })
        .expect("provisioned bytes");
    assert_eq!(value(provisioned), (64 * MIB) as f64);

    let array = labels(sample(&scrape, names::STORAGE_ARRAY_INFO));
    assert_eq!(array["storage_vendor"], "ontap");
    assert_eq!(array["storage_array_vendor"], "NetApp");
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == names::VIB_VERSION),
        "vib_version reported for the VIB method"
    );
}
