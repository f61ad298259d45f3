//! The lab's ESXi hosts as PowerFlex SDCs, seen by the product's vSphere client and the gateway's
//! REST API: with a PowerFlex array every host loads `scini` with its GUID, has a `scini` adapter
//! and is a registered SDC of the array; a volume mapped to one host's SDC appears on that host
//! (as `eui.<system id><volume id>`, through the SDC only) after a rescan and is gone after the
//! unmap and the next rescan. Without a PowerFlex array the hosts are as they were.

use std::time::Duration;

use co_lab::arrays::powerflex;
use co_lab::lab::{Lab, RunningLab};
use co_lab::scenario::{Scenario, VendorSpec};
use co_vsphere::adapters::AdapterKind;
use co_vsphere::{Client, ClientConfig, HostSystem, Secret, TlsTrust};
use serde_json::{Value, json};

const HOST1: &str = "esxi-1.lab.local";
const HOST2: &str = "esxi-2.lab.local";

async fn start(vendor: VendorSpec, data: &std::path::Path) -> RunningLab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut scenario = Scenario::default_embedded();
    scenario.arrays[0].vendor = vendor;
    Lab::start(scenario, data).await.unwrap()
}

async fn vsphere(lab: &RunningLab) -> Client {
    let mut cfg = ClientConfig::new(
        &lab.vcenter_url,
        &lab.username,
        Secret::new(lab.password.clone()),
    );
    cfg.trust = TlsTrust::Thumbprint(lab.thumbprint.clone());
    cfg.timeout = Duration::from_secs(20);
    Client::login(cfg).await.unwrap()
}

/// The gateway of the lab's array, logged in.
struct Gateway {
    base: String,
    user: String,
    token: String,
    http: reqwest::Client,
}

impl Gateway {
    async fn login(lab: &RunningLab) -> Gateway {
        let array = &lab.arrays[0];
        let http = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(lab.certificate_pem.as_bytes()).unwrap(),
            )
            .build()
            .unwrap();
        let base = format!("{}/api", array.url);
        let token: String = http
            .get(format!("{base}/login"))
            .basic_auth(&array.username, Some(&array.password))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        Gateway {
            base,
            user: array.username.clone(),
            token,
            http,
        }
    }

    /// `request` with the session's token, answered with success.
    async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        request
            .basic_auth(&self.user, Some(&self.token))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await.json().await.unwrap()
    }

    async fn action(&self, volume: &str, action: &str, body: Value) {
        let url = format!("{}/instances/Volume::{volume}/action/{action}", self.base);
        self.send(self.http.post(url).json(&body)).await;
    }
}

/// The GUID the host reports in its `scini` module options, read as the product reads it.
async fn reported_guid(client: &Client, host: &str) -> (HostSystem, String) {
    let moref = client.find_host(host).await.unwrap();
    let system = HostSystem::new(client.clone(), moref.clone());
    let adapters = client
        .datastore_adapters(&moref, "ds1", true)
        .await
        .unwrap();
    let sdc = adapters
        .adapters
        .iter()
        .find(|a| a.kind == AdapterKind::Scini)
        .unwrap_or_else(|| {
            panic!("{host}: the datastore is reached through the SDC: {adapters:?}")
        });
    assert_eq!(sdc.driver, "scini");
    assert!(
        adapters
            .adapters
            .iter()
            .all(|a| a.kind == AdapterKind::Scini),
        "{host}: no iSCSI path to a PowerFlex volume: {adapters:?}"
    );
    (system, sdc.id.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_mapped_to_a_hosts_sdc_appears_there_after_a_rescan_and_goes_after_the_unmap() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start(VendorSpec::PowerFlex, dir.path()).await;
    let client = vsphere(&lab).await;
    let (host1, guid1) = reported_guid(&client, HOST1).await;
    let (host2, guid2) = reported_guid(&client, HOST2).await;
    assert_ne!(guid1, guid2, "each host has its own SDC");

    // Both hosts are registered SDCs of the system, under the GUIDs they report.
    let gateway = Gateway::login(&lab).await;
    let sdcs = gateway.get("/types/Sdc/instances").await;
    let registered = |guid: &str| {
        sdcs.as_array()
            .unwrap()
            .iter()
            .find(|s| s["sdcGuid"].as_str() == Some(guid))
            .cloned()
            .unwrap_or_else(|| panic!("no SDC with GUID {guid}: {sdcs}"))
    };
    let sdc1 = registered(&guid1);
    assert_eq!(sdc1["name"], HOST1);
    assert_eq!(sdc1["osType"], "Esx");
    registered(&guid2);

    // A CSI volume, mapped to host 1's SDC through the gateway.
    let array = &lab.arrays[0].name;
    let csi = powerflex::create_csi_volume(&lab.san, array, "pvc-sdc", 8 << 20).unwrap();
    let volume_id = powerflex::volume_id(&csi.volume);
    let device = format!("eui.{}{volume_id}", powerflex::system_id(array));
    assert_eq!(csi.volume.naa, device);
    gateway
        .action(
            &volume_id,
            "addMappedSdc",
            json!({"sdcId": sdc1["id"], "allowMultipleMappings": "TRUE"}),
        )
        .await;

    // Not there before the rescan; there after it, through the SDC only; not on host 2.
    let storage1 = host1.storage_system().await.unwrap();
    assert!(host1.device_adapters(&device, true).await.is_err());
    storage1.rescan_all_hba().await.unwrap();
    let found = host1.device_adapters(&device, true).await.unwrap();
    assert!(!found.fallback, "{found:?}");
    assert_eq!(found.adapters.len(), 1, "{found:?}");
    assert_eq!(found.adapters[0].kind, AdapterKind::Scini);
    assert_eq!(found.adapters[0].id, guid1);
    host2
        .storage_system()
        .await
        .unwrap()
        .rescan_all_hba()
        .await
        .unwrap();
    assert!(
        host2.device_adapters(&device, true).await.is_err(),
        "host 2's SDC is not mapped"
    );

    // Unmapped: the device stops answering, and a rescan that drops dead devices removes it.
    gateway
        .action(&volume_id, "removeMappedSdc", json!({"sdcId": sdc1["id"]}))
        .await;
    storage1.rescan_all_hba().await.unwrap();
    let sim1 = &lab.host(HOST1).unwrap().sim;
    assert_eq!(
        sim1.device(&device).map(|d| d.state.as_str()),
        Some("dead timeout")
    );
    sim1.rescan(co_lab::RescanKind::Delete);
    assert!(host1.device_adapters(&device, true).await.is_err());
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_powerflex_array_hosts_have_no_sdc() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start(VendorSpec::Ontap, dir.path()).await;
    for host in &lab.hosts {
        assert_eq!(host.sim.spec.sdc_guid(), None, "{}", host.name);
        assert!(
            host.sim.spec.kernel_modules.is_empty(),
            "{}: {:?}",
            host.name,
            host.sim.spec.kernel_modules
        );
        assert_eq!(host.sim.adapters.len(), 1, "{}", host.name);
    }
    let client = vsphere(&lab).await;
    let moref = client.find_host(HOST1).await.unwrap();
    let adapters = client
        .datastore_adapters(&moref, "ds1", true)
        .await
        .unwrap();
    assert!(
        adapters
            .adapters
            .iter()
            .all(|a| a.kind == AdapterKind::Iscsi),
        "{adapters:?}"
    );
    lab.shutdown().await;
}
