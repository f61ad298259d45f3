//! Prints what one disk's storage work costs against the lab's ONTAP facade over HTTPS on
//! loopback: requests and wall time per `StorageApi` step, averaged over many copies.
//! Run: `cargo bench -p co-storage --bench ontap_lifecycle` (add `--profile dev` to reuse the test
//! build). Figures only, no assertions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use co_lab::arrays::ontap::{create_trident_volume, router};
use co_lab::san::{ArrayVendor, GroupSpec, San};
use co_storage::http::{
    ConnectionSettings, Credentials, ObservedRequest, RequestObserver, RetryPolicy, Secret,
};
use co_storage::ontap::{OntapArray, TRIDENT_CSI_DRIVER};
use co_storage::{EsxiHostRef, Initiator, PersistentVolumeRef, StorageApi};

const COPIES: usize = 50;

#[derive(Default)]
struct Counter(Mutex<usize>);

impl RequestObserver for Counter {
    fn observe(&self, _: &ObservedRequest) {
        *self.0.lock().unwrap() += 1;
    }
}

impl Counter {
    fn take(&self) -> usize {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array("ontap1", ArrayVendor::Ontap).unwrap();
    san.create_group(
        "ontap1",
        GroupSpec {
            name: "ocp-worker-1".into(),
            initiators: vec!["iqn.2020-01.io.openshift:worker-1".into()],
            protocol: Some("iscsi".into()),
            os_type: Some("linux".into()),
        },
    )
    .unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        cert_pem.clone().into_bytes(),
        key_pem.into_bytes(),
    )
    .await
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = axum_server::tls_rustls::from_tcp_rustls(listener, tls).unwrap();
    let app = router(san.clone(), "ontap1", "svm1", "admin", "pw");
    tokio::spawn(async move { server.serve(app.into_make_service()).await.unwrap() });

    let settings = ConnectionSettings {
        hostname: format!("127.0.0.1:{port}"),
        credentials: Credentials {
            username: "admin".into(),
            password: Secret::new("pw"),
            token: None,
        },
        skip_tls_verify: false,
        ca_certificate_pem: Some(cert_pem.into_bytes()),
        http_timeout: Duration::from_secs(30),
        retry: RetryPolicy::default(),
    };
    let counter = Arc::new(Counter::default());
    let array = OntapArray::connect(&settings, &Default::default(), Some(counter.clone()))
        .await
        .unwrap();
    counter.take();

    let mut totals: BTreeMap<&str, (usize, Duration)> = BTreeMap::new();
    for copy in 0..COPIES {
        let flexvol = format!("trident_pvc_{copy}");
        create_trident_volume(&san, "ontap1", &flexvol, 1 << 30).unwrap();
        san.map("ontap1", &format!("/vol/{flexvol}/lun0"), "ocp-worker-1")
            .unwrap();
        let pv = PersistentVolumeRef {
            name: flexvol.clone(),
            csi_driver: Some(TRIDENT_CSI_DRIVER.into()),
            volume_handle: flexvol.clone(),
            volume_attributes: BTreeMap::from([("internalName".to_owned(), flexvol.clone())]),
        };
        let host = EsxiHostRef {
            host_id: format!("hostsystem-host-{}", copy % 4),
            initiators: vec![Initiator::from_adapter_id(&format!(
                "iqn.1998-01.com.vmware:esx{}",
                copy % 4
            ))],
        };
        let mut record = |step: &'static str, started: Instant| {
            let entry = totals.entry(step).or_default();
            entry.0 += counter.take();
            entry.1 += started.elapsed();
        };
        let t = Instant::now();
        let volume = array.resolve_volume(&pv).await.unwrap();
        record("1 resolve_volume", t);
        let t = Instant::now();
        let group = array.ensure_initiator_group(&host).await.unwrap();
        record("2 ensure_initiator_group", t);
        let t = Instant::now();
        let originals = array.current_mappings(&volume).await.unwrap();
        record("3 current_mappings", t);
        let t = Instant::now();
        array.map(&volume, &group).await.unwrap();
        record("4 map", t);
        let t = Instant::now();
        array.unmap(&volume, &group).await.unwrap();
        record("5 unmap", t);
        let t = Instant::now();
        array.restore(&volume, &originals).await.unwrap();
        record("6 restore", t);
        let t = Instant::now();
        array.release_group(&group).await.unwrap();
        record("7 release_group", t);
    }

    println!("ONTAP plugin vs lab facade (HTTPS, loopback), {COPIES} copies over 4 ESXi hosts");
    println!("{:<28} {:>14} {:>14}", "step", "requests/copy", "ms/copy");
    let (mut requests, mut time) = (0, Duration::ZERO);
    for (step, (n, elapsed)) in &totals {
        requests += n;
        time += *elapsed;
        println!(
            "{step:<28} {:>14.2} {:>14.3}",
            *n as f64 / COPIES as f64,
            elapsed.as_secs_f64() * 1e3 / COPIES as f64
        );
    }
    println!(
        "{:<28} {:>14.2} {:>14.3}",
        "total",
        requests as f64 / COPIES as f64,
        time.as_secs_f64() * 1e3 / COPIES as f64
    );
}
