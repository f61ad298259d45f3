//! The metrics endpoint as the populator controller sees it: scraped over HTTPS (certificate not
//! verified, as the controller does), parsed by a Prometheus text-format parser, and checked
//! against the pinned upstream names, types and label sets (compatibility contract).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use co_populator::metrics::{
    CONTENT_TYPE, CloneMethodLabel, CopyCompletion, CopyResult, METRICS_PATH, MetricsEndpoint,
    PopulatorMetrics, StorageArrayInfo, StorageProtocolLabel, names,
};
use prometheus_parse::{Sample, Scrape, Value};

const OWNER: &str = "6f1c7d2e-0c1a-4d55-9a49-5b2f3c0e9d11";

/// (name, labels) of every upstream metric: the contract the controller and Forklift rely on.
const UPSTREAM_CONTRACT: &[(&str, &[&str])] = &[
    ("vsphere_xcopy_volume_populator_progress", &["owner_uid"]),
    (
        "vsphere_xcopy_volume_populator_xcopy_used",
        &["owner_uid", "storage_vendor", "clone_method"],
    ),
    (
        "vsphere_xcopy_volume_populator_vib_version",
        &["owner_uid", "version"],
    ),
    (
        "vsphere_xcopy_volume_populator_storage_array_info",
        &[
            "storage_vendor",
            "storage_array_vendor",
            "storage_array_product",
            "storage_array_model",
            "storage_array_version",
        ],
    ),
    (
        "vsphere_xcopy_volume_populator_source_disk_bytes",
        &[
            "owner_uid",
            "storage_vendor",
            "clone_method",
            "storage_protocol",
            "type",
        ],
    ),
    (
        "vsphere_xcopy_volume_populator_copy_duration_seconds",
        &[
            "owner_uid",
            "result",
            "storage_vendor",
            "clone_method",
            "xcopy_used",
            "storage_protocol",
        ],
    ),
];

fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn start(metrics: &PopulatorMetrics) -> MetricsEndpoint {
    MetricsEndpoint::serve(SocketAddr::from(([127, 0, 0, 1], 0)), metrics.clone()).unwrap()
}

async fn scrape(endpoint: &MetricsEndpoint) -> (reqwest::header::HeaderMap, String) {
    let url = format!("https://{}{METRICS_PATH}", endpoint.local_addr());
    let response = http_client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    (headers, response.text().await.unwrap())
}

/// Parses `body` and checks the parser accounted for every sample line (prometheus-parse skips
/// lines it cannot read, which must not hide a malformed one).
fn parse(body: &str) -> Scrape {
    let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let sample_lines = body
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(
        scrape.samples.len(),
        sample_lines,
        "some sample lines did not parse:\n{body}"
    );
    scrape
}

fn samples<'a>(scrape: &'a Scrape, name: &str) -> Vec<&'a Sample> {
    scrape.samples.iter().filter(|s| s.metric == name).collect()
}

fn gauge(sample: &Sample) -> f64 {
    match sample.value {
        Value::Gauge(v) => v,
        ref other => panic!("{} is not a gauge: {other:?}", sample.metric),
    }
}

fn label_names(sample: &Sample) -> BTreeSet<&str> {
    sample.labels.keys().map(String::as_str).collect()
}

fn completed_run(metrics: &PopulatorMetrics) {
    metrics.set_progress(42);
    metrics.set_xcopy_used("ontap", CloneMethodLabel::Vib, true);
    metrics.set_vib_version(Some("0.3.3"));
    metrics.set_storage_array_info(
        "ontap",
        &StorageArrayInfo {
            vendor: "NetApp".into(),
            product: "ONTAP".into(),
            model: String::new(),
            version: "9.14.1".into(),
        },
    );
    metrics.set_copied_bytes(1 << 30);
    metrics.set_copy_rate(5.0e8);
    metrics.set_phase("clone");
    metrics.record_completion(&CopyCompletion {
        result: CopyResult::Success,
        storage_vendor: "ontap".into(),
        clone_method: CloneMethodLabel::Vib,
        storage_protocol: StorageProtocolLabel::Iscsi,
        xcopy_used: true,
        duration: Duration::from_millis(12_500),
        provisioned_bytes: 10 << 30,
        datastore_allocated_bytes: 3 << 30,
    });
}

#[tokio::test]
async fn scrape_matches_the_upstream_contract() {
    let metrics = PopulatorMetrics::new(OWNER);
    completed_run(&metrics);
    let endpoint = start(&metrics);
    let (headers, body) = scrape(&endpoint).await;
    assert_eq!(headers[reqwest::header::CONTENT_TYPE], CONTENT_TYPE);
    assert!(CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
    let scrape = parse(&body);

    for (name, labels) in UPSTREAM_CONTRACT {
        let found = samples(&scrape, name);
        assert!(!found.is_empty(), "{name} missing from:\n{body}");
        for sample in found {
            gauge(sample);
            assert_eq!(
                label_names(sample),
                labels.iter().copied().collect(),
                "labels of {name}"
            );
            if labels.contains(&"owner_uid") {
                assert_eq!(sample.labels.get("owner_uid"), Some(OWNER));
            }
        }
    }
    // No counter anywhere: prometheus-client would rename it with `_total`.
    assert!(!body.contains("_total"), "{body}");

    assert_eq!(gauge(samples(&scrape, names::PROGRESS)[0]), 42.0);
    // The controller's scrape reads the integer after the progress series.
    assert!(
        body.lines()
            .any(|l| l == format!("{}{{owner_uid=\"{OWNER}\"}} 42", names::PROGRESS)),
        "{body}"
    );

    let xcopy = samples(&scrape, names::XCOPY_USED)[0];
    assert_eq!(
        (
            xcopy.labels.get("storage_vendor"),
            xcopy.labels.get("clone_method"),
            gauge(xcopy)
        ),
        (Some("ontap"), Some("vib"), 1.0)
    );
    assert_eq!(
        samples(&scrape, names::VIB_VERSION)[0]
            .labels
            .get("version"),
        Some("0.3.3")
    );

    let array = samples(&scrape, names::STORAGE_ARRAY_INFO)[0];
    assert_eq!(array.labels.get("storage_array_model"), Some("n/a"));
    assert_eq!(array.labels.get("storage_array_version"), Some("9.14.1"));
    assert_eq!(array.labels.get("storage_array_vendor"), Some("NetApp"));

    let mut disk: Vec<_> = samples(&scrape, names::SOURCE_DISK_BYTES)
        .into_iter()
        .map(|s| {
            (
                s.labels.get("type").unwrap().to_owned(),
                gauge(s),
                s.labels.get("storage_protocol").unwrap().to_owned(),
            )
        })
        .collect();
    disk.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        disk,
        vec![
            (
                "datastore_allocated".into(),
                (3u64 << 30) as f64,
                "iscsi".into()
            ),
            ("provisioned".into(), (10u64 << 30) as f64, "iscsi".into())
        ]
    );

    let done = samples(&scrape, names::COPY_DURATION_SECONDS);
    assert_eq!(done.len(), 1);
    assert_eq!(gauge(done[0]), 12.5);
    for (label, value) in [
        ("result", "success"),
        ("xcopy_used", "1"),
        ("storage_protocol", "iscsi"),
        ("clone_method", "vib"),
    ] {
        assert_eq!(done[0].labels.get(label), Some(value), "{label}");
    }

    assert_eq!(
        gauge(samples(&scrape, names::COPIED_BYTES)[0]),
        (1u64 << 30) as f64
    );
    assert_eq!(gauge(samples(&scrape, names::COPY_RATE)[0]), 5.0e8);
    let phase = samples(&scrape, names::PHASE)[0];
    assert_eq!(
        (phase.labels.get("phase"), gauge(phase)),
        (Some("clone"), 1.0)
    );
    endpoint.shutdown().await;
}

#[tokio::test]
async fn labels_are_printed_in_client_golang_order() {
    let metrics = PopulatorMetrics::new("u");
    completed_run(&metrics);
    let body = metrics.encode();
    let line = body
        .lines()
        .find(|l| l.starts_with(names::COPY_DURATION_SECONDS))
        .unwrap();
    assert_eq!(
        line,
        "vsphere_xcopy_volume_populator_copy_duration_seconds{clone_method=\"vib\",owner_uid=\"u\",result=\"success\",\
         storage_protocol=\"iscsi\",storage_vendor=\"ontap\",xcopy_used=\"1\"} 12.5"
    );
}

#[test]
fn progress_only_rises_and_is_clamped() {
    let metrics = PopulatorMetrics::new(OWNER);
    let progress = |m: &PopulatorMetrics| gauge(samples(&parse(&m.encode()), names::PROGRESS)[0]);
    assert_eq!(
        progress(&metrics),
        0.0,
        "progress is exported before the first report"
    );
    metrics.set_progress(0);
    assert_eq!(progress(&metrics), 0.0);
    metrics.set_progress(30);
    metrics.set_progress(10);
    assert_eq!(progress(&metrics), 30.0);
    metrics.set_progress(250);
    assert_eq!(progress(&metrics), 100.0);
}

#[test]
fn failed_copy_reports_unknown_protocol_and_no_disk_sizes() {
    let metrics = PopulatorMetrics::new(OWNER);
    metrics.record_completion(&CopyCompletion {
        result: CopyResult::Failure,
        storage_vendor: "pureFlashArray".into(),
        clone_method: CloneMethodLabel::Ssh,
        storage_protocol: StorageProtocolLabel::Fc,
        xcopy_used: false,
        duration: Duration::from_secs(3),
        provisioned_bytes: 1 << 30,
        datastore_allocated_bytes: 1 << 30,
    });
    let scrape = parse(&metrics.encode());
    assert!(samples(&scrape, names::SOURCE_DISK_BYTES).is_empty());
    let done = samples(&scrape, names::COPY_DURATION_SECONDS)[0];
    assert_eq!(done.labels.get("result"), Some("failure"));
    assert_eq!(done.labels.get("storage_protocol"), Some("n/a"));
    assert_eq!(done.labels.get("xcopy_used"), Some("0"));
}

#[test]
fn zero_disk_sizes_are_not_reported() {
    let metrics = PopulatorMetrics::new(OWNER);
    metrics.record_completion(&CopyCompletion {
        result: CopyResult::Success,
        storage_vendor: "ontap".into(),
        clone_method: CloneMethodLabel::Vvol,
        storage_protocol: StorageProtocolLabel::Unknown,
        xcopy_used: false,
        duration: Duration::from_secs(1),
        provisioned_bytes: 5,
        datastore_allocated_bytes: 0,
    });
    let scrape = parse(&metrics.encode());
    let disk = samples(&scrape, names::SOURCE_DISK_BYTES);
    assert_eq!(disk.len(), 1);
    assert_eq!(disk[0].labels.get("type"), Some("provisioned"));
}

#[test]
fn changed_labels_replace_the_series_instead_of_adding_one() {
    let metrics = PopulatorMetrics::new(OWNER);
    metrics.set_xcopy_used("ontap", CloneMethodLabel::Vib, false);
    metrics.set_xcopy_used("ontap", CloneMethodLabel::Ssh, true);
    metrics.set_vib_version(None);
    let scrape = parse(&metrics.encode());
    let xcopy = samples(&scrape, names::XCOPY_USED);
    assert_eq!(xcopy.len(), 1);
    assert_eq!(
        (xcopy[0].labels.get("clone_method"), gauge(xcopy[0])),
        (Some("ssh"), 1.0)
    );
    assert_eq!(
        samples(&scrape, names::VIB_VERSION)[0]
            .labels
            .get("version"),
        Some("unknown")
    );
}

#[test]
fn phases_left_drop_to_zero() {
    let metrics = PopulatorMetrics::new(OWNER);
    metrics.set_phase("map");
    metrics.set_phase("rescan");
    metrics.set_phase("rescan");
    let scrape = parse(&metrics.encode());
    let mut phases: Vec<_> = samples(&scrape, names::PHASE)
        .into_iter()
        .map(|s| (s.labels.get("phase").unwrap().to_owned(), gauge(s)))
        .collect();
    phases.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        phases,
        vec![("map".to_owned(), 0.0), ("rescan".to_owned(), 1.0)]
    );
}

#[tokio::test]
async fn final_scrape_wait_ends_at_the_first_scrape_after_completion() {
    let metrics = PopulatorMetrics::new(OWNER);
    let endpoint = start(&metrics);
    // A scrape before completion does not count.
    scrape(&endpoint).await;
    completed_run(&metrics);
    let url = format!("https://{}{METRICS_PATH}", endpoint.local_addr());
    let scraper = tokio::spawn(async move {
        let client = http_client();
        // The controller scrapes periodically; keep scraping until the waiter has been satisfied.
        loop {
            let body = client.get(&url).send().await.unwrap().text().await.unwrap();
            assert!(body.contains(names::COPY_DURATION_SECONDS));
            tokio::task::yield_now().await;
        }
    });
    assert!(endpoint.await_final_scrape(Duration::from_secs(30)).await);
    scraper.abort();
    endpoint.shutdown().await;
}

#[tokio::test]
async fn a_scrape_that_read_the_completion_before_the_wait_counts() {
    // The controller may scrape between the completion being recorded and the wait starting, and
    // then stop scraping: that scrape must end the wait at once.
    let metrics = PopulatorMetrics::new(OWNER);
    let endpoint = start(&metrics);
    completed_run(&metrics);
    assert!(
        scrape(&endpoint)
            .await
            .1
            .contains(names::COPY_DURATION_SECONDS)
    );
    assert!(endpoint.await_final_scrape(Duration::from_secs(30)).await);
    endpoint.shutdown().await;
}

#[tokio::test]
async fn a_scrape_before_completion_does_not_end_the_wait() {
    let metrics = PopulatorMetrics::new(OWNER);
    let endpoint = start(&metrics);
    scrape(&endpoint).await;
    completed_run(&metrics);
    assert!(
        !endpoint
            .await_final_scrape(Duration::from_millis(200))
            .await
    );
    endpoint.shutdown().await;
}

#[tokio::test]
async fn other_paths_are_not_served_and_plain_http_is_refused() {
    let metrics = PopulatorMetrics::new(OWNER);
    let endpoint = start(&metrics);
    let response = http_client()
        .get(format!("https://{}/", endpoint.local_addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let plain = http_client()
        .get(format!("http://{}{METRICS_PATH}", endpoint.local_addr()))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
    endpoint.shutdown().await;
}

#[test]
fn binding_a_busy_port_says_so() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let err = MetricsEndpoint::serve(taken.local_addr().unwrap(), PopulatorMetrics::new(OWNER))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("cannot listen for metrics"),
        "{err}"
    );
}

#[test]
fn clone_method_labels_use_the_api_spelling() {
    for method in [co_api::CloneMethod::Vib, co_api::CloneMethod::Ssh] {
        assert_eq!(CloneMethodLabel::from(method).as_str(), method.as_str());
    }
    assert_eq!(CloneMethodLabel::Vvol.as_str(), "vvol");
    assert_eq!(CloneMethodLabel::Rdm.as_str(), "rdm");
    assert_eq!(StorageProtocolLabel::Iscsi.as_str(), "iscsi");
    assert_eq!(StorageProtocolLabel::Fc.as_str(), "fc");
    assert_eq!(StorageProtocolLabel::Unknown.as_str(), "n/a");
}
