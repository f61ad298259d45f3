//! The product's vSphere client (`co_vsphere::Client`) against the lab, as the populator drives it:
//! login pinning the lab's certificate thumbprint, esxcli end to end (and its per-call cost), VM
//! lookup by disk, source disks (flat, RDM and vVol), the device under a datastore and the adapters
//! that reach it, management IPs, and `/folder` transfers. Then the same client against vcsim and
//! the lab side by side: for the calls both serve, the answers have the same shape.

use std::net::IpAddr;
use std::time::Duration;

use co_lab::lab::{Lab, RunningLab};
use co_lab::scenario::{DiskSpec, Scenario, VmSpec};
use co_testpeers::Vcsim;
use co_vsphere::inventory::{DiskBacking, DiskKind};
use co_vsphere::{Client, ClientConfig, DatastorePath, Error, FaultKind, Secret, TlsTrust};
use futures::TryStreamExt;

const HOST1: &str = "esxi-1.lab.local";
const ARRAY: &str = "ontap1";

/// The default scenario plus a VM whose only disk is a physical-mode RDM of a LUN on the array,
/// and one whose only disk is presented as a vVol.
async fn start_lab(data: &std::path::Path) -> RunningLab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut scenario = Scenario::default_embedded();
    scenario.vms.push(VmSpec {
        name: "vm-rdm".into(),
        host: HOST1.into(),
        disks: vec![DiskSpec {
            datastore: "ds1".into(),
            size_mib: 16,
            rdm_array: Some(ARRAY.into()),
            vvol: false,
        }],
    });
    scenario.vms.push(VmSpec {
        name: "vm-vvol".into(),
        host: HOST1.into(),
        disks: vec![DiskSpec {
            datastore: "ds1".into(),
            size_mib: 16,
            rdm_array: None,
            vvol: true,
        }],
    });
    Lab::start(scenario, data).await.unwrap()
}

fn lab_config(lab: &RunningLab) -> ClientConfig {
    let mut cfg = ClientConfig::new(
        &lab.vcenter_url,
        &lab.username,
        Secret::new(lab.password.clone()),
    );
    cfg.trust = TlsTrust::Thumbprint(lab.thumbprint.clone());
    cfg.timeout = Duration::from_secs(20);
    cfg
}

fn vcsim() -> Vcsim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Vcsim::start().expect("vcsim (install it with `scripts/peers.sh install vcsim`)")
}

fn vcsim_config(sim: &Vcsim) -> ClientConfig {
    let mut cfg = ClientConfig::new(&sim.url, &sim.username, Secret::new(sim.password.clone()));
    cfg.trust = TlsTrust::Verify {
        extra_ca_pem: Some(sim.ca_pem.clone()),
    };
    cfg.timeout = Duration::from_secs(20);
    cfg
}

fn datastore_path(text: &str) -> DatastorePath {
    DatastorePath::parse(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_pins_the_thumbprint_and_a_wrong_one_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let lab = start_lab(data.path()).await;

    let client = Client::login(lab_config(&lab)).await.unwrap();
    assert!(client.service_content().about.is_vcenter());

    let mut wrong = lab_config(&lab);
    wrong.trust = TlsTrust::Thumbprint(["AB"; 32].join(":"));
    let err = Client::login(wrong).await.unwrap_err();
    assert!(
        matches!(&err, Error::UntrustedCertificate { reason, .. } if reason.contains("does not match")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esxcli_runs_end_to_end_and_repeated_calls_cost_one_round_trip() {
    let data = tempfile::tempdir().unwrap();
    let lab = start_lab(data.path()).await;
    let client = Client::login(lab_config(&lab)).await.unwrap();
    let host = client.find_host(HOST1).await.unwrap();

    let version = client
        .esxcli(&host, &["system", "version", "get"])
        .await
        .unwrap();
    assert_eq!(version.first("Product").as_deref(), Some("VMware ESXi"));
    assert!(
        version.first("Version").is_some_and(|v| !v.is_empty()),
        "{version:?}"
    );

    let datastore = lab.san.volume(ARRAY, "ds-ds1").unwrap();
    let devices = client
        .esxcli(&host, &["storage", "core", "device", "list"])
        .await
        .unwrap();
    assert!(
        devices
            .records
            .iter()
            .any(|r| r.get("Device").is_some_and(|d| d.concat() == datastore.naa)),
        "the datastore's LUN is listed: {devices:?}"
    );

    // The executer and the namespace's command info are cached: from the second call on, one
    // esxcli command is one ExecuteSoap round trip.
    let before = client.round_trips();
    let one = client
        .esxcli(
            &host,
            &["storage", "core", "device", "list", "-d", &datastore.naa],
        )
        .await
        .unwrap();
    assert_eq!(client.round_trips() - before, 1);
    assert_eq!(one.records.len(), 1, "{one:?}");

    // The wrapper's namespace, served by the VIB on this host: a status/message envelope.
    let wrapper = client
        .esxcli(&host, &["vmkfstools", "version"])
        .await
        .unwrap();
    assert_eq!(wrapper.first("status").as_deref(), Some("0"), "{wrapper:?}");
    let message = wrapper.first("message").unwrap();
    assert!(
        message.contains(co_esxi::assets::WRAPPER_VERSION),
        "{message}"
    );
    let before = client.round_trips();
    client
        .esxcli(&host, &["vmkfstools", "version"])
        .await
        .unwrap();
    assert_eq!(client.round_trips() - before, 1);

    // Without the VIB the namespace is unknown, and the error says so.
    let host2 = client.find_host("esxi-2.lab.local").await.unwrap();
    let err = client
        .esxcli(&host2, &["vmkfstools", "version"])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::VibMissing { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_populator_inventory_reads_answer_for_flat_rdm_and_vvol_disks() {
    let data = tempfile::tempdir().unwrap();
    let lab = start_lab(data.path()).await;
    let client = Client::login(lab_config(&lab)).await.unwrap();

    // Flat disk: the VM is found from its disk path alone, then the disk is classified and sized.
    let flat = datastore_path("[ds1] vm-1/vm-1.vmdk");
    let vm = client.find_vm_by_disk(&flat).await.unwrap();
    assert_eq!(vm, client.find_vm("vm-1").await.unwrap());
    let source = client.source_disk(&vm, &flat).await.unwrap();
    assert_eq!(source.kind, DiskKind::Vmdk);
    assert_eq!(source.chain_index, 0);
    assert_eq!(source.provisioned_bytes, 64 << 20);
    assert!(
        source
            .allocated_bytes
            .is_some_and(|b| b > 0 && b <= 64 << 20),
        "{source:?}"
    );

    // RDM disk: the LUN behind it, as the XCOPY path needs it.
    let rdm = datastore_path("[ds1] vm-rdm/vm-rdm.vmdk");
    let rdm_vm = client.find_vm_by_disk(&rdm).await.unwrap();
    assert_eq!(rdm_vm, client.find_vm("vm-rdm").await.unwrap());
    let source = client.source_disk(&rdm_vm, &rdm).await.unwrap();
    let lun = lab.san.volume(ARRAY, "rdm-vm-rdm-0").unwrap();
    match &source.kind {
        DiskKind::Rdm {
            device_name,
            lun_uuid,
        } => {
            assert_eq!(device_name, &format!("/vmfs/devices/disks/{}", lun.naa));
            assert!(!lun_uuid.is_empty(), "{source:?}");
        }
        other => panic!("RDM expected, got {other:?}"),
    }
    assert_eq!(source.provisioned_bytes, 16 << 20);
    assert!(matches!(
        source.disk.backing,
        DiskBacking::Rdm { ref compatibility_mode, .. } if compatibility_mode == "physicalMode"
    ));

    // vVol disk: the flat backing's `backingObjectId` is the vVol id the array-side copy needs.
    let vvol = datastore_path("[ds1] vm-vvol/vm-vvol.vmdk");
    let vvol_vm = client.find_vm_by_disk(&vvol).await.unwrap();
    let source = client.source_disk(&vvol_vm, &vvol).await.unwrap();
    match &source.kind {
        DiskKind::Vvol { backing_object_id } => {
            assert!(backing_object_id.starts_with("rfc4122."), "{source:?}")
        }
        other => panic!("vVol expected, got {other:?}"),
    }
    assert_eq!(source.provisioned_bytes, 16 << 20);

    // The host, the device under the datastore, and the iSCSI adapter that reaches it.
    let host = client.vm_host(&vm).await.unwrap();
    assert_eq!(client.entity_name(&host).await.unwrap(), HOST1);
    let endpoint = lab.host(HOST1).unwrap();
    let datastore = client.datastore_device(&host, "ds1").await.unwrap();
    assert_eq!(datastore.info_type, "VmfsDatastoreInfo");
    assert_eq!(
        datastore.canonical_device().unwrap(),
        lab.san.volume(ARRAY, "ds-ds1").unwrap().naa
    );
    let adapters = client
        .datastore_adapters(&host, "ds1", false)
        .await
        .unwrap();
    assert!(!adapters.fallback, "an active path exists: {adapters:?}");
    let iqn = &endpoint.sim.initiators()[0];
    assert!(
        adapters
            .adapters
            .iter()
            .any(|a| a.id == *iqn && a.kind == co_vsphere::adapters::AdapterKind::Iscsi),
        "{adapters:?}"
    );

    let ips = client.host_management_ips(&host).await.unwrap();
    assert_eq!(ips, std::slice::from_ref(&endpoint.sim.spec.management_ip));
    assert_eq!(
        client.datacenter_of(&host).await.unwrap().path,
        lab.datacenter
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_upload_and_download_round_trip_through_the_datastore() {
    let data = tempfile::tempdir().unwrap();
    let lab = start_lab(data.path()).await;
    let client = Client::login(lab_config(&lab)).await.unwrap();

    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let path = "vm-1/copy offload probe.bin";
    client
        .upload_file(
            &lab.datacenter,
            "ds1",
            path,
            reqwest::Body::from(content.clone()),
            content.len() as u64,
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(lab.datastore_dir("ds1").join(path)).unwrap(),
        content,
        "the file landed on the datastore"
    );

    let downloaded: Vec<u8> = client
        .download_file(&lab.datacenter, "ds1", path)
        .await
        .unwrap()
        .try_fold(Vec::new(), |mut all, chunk| async move {
            all.extend_from_slice(&chunk);
            Ok(all)
        })
        .await
        .unwrap();
    assert_eq!(downloaded, content);

    let missing = client
        .download_file(&lab.datacenter, "ds1", "vm-1/absent.bin")
        .await;
    assert!(missing.is_err(), "a missing file is an error");
}

/// What the populator learns from a vCenter about one VM with one flat disk, reduced to what does
/// not depend on inventory names or sizes.
#[derive(Debug, PartialEq, Eq)]
struct InventoryShape {
    vm_kind: String,
    /// Per disk: backing variant, backing type name, chain length, whether the path parses.
    disks: Vec<(&'static str, String, usize, bool)>,
    source_kind: DiskKind,
    source_chain_index: usize,
    source_allocated_known: bool,
    owner_found_by_disk: bool,
    host_kind: String,
    host_found_by_name: bool,
    management_ips_parse: bool,
    datacenter_path_relative: bool,
    unknown_vm: String,
    unknown_disk: String,
    unknown_datastore: String,
}

/// The error variant (and `what`, for `NotFound`) of a failed lookup.
fn error_shape<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Ok(value) => format!("unexpected success: {value:?}"),
        Err(Error::NotFound { what, .. }) => format!("NotFound({what})"),
        Err(other) => format!("{other:?}")
            .split([' ', '{', '('])
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

async fn inventory_shape(client: &Client, vm_name: &str) -> InventoryShape {
    let vm = client.find_vm(vm_name).await.unwrap();
    let disks = client.vm_disks(&vm).await.unwrap();
    assert!(!disks.is_empty(), "{vm_name} has disks");
    let first_file = match &disks[0].backing {
        DiskBacking::File { chain, .. } => chain[0].file_name.clone(),
        other => panic!("{vm_name}: a flat first disk expected, got {other:?}"),
    };
    let wanted = datastore_path(&first_file);
    let source = client.source_disk(&vm, &wanted).await.unwrap();
    let host = client.vm_host(&vm).await.unwrap();
    let host_name = client.entity_name(&host).await.unwrap();
    let ips = client.host_management_ips(&host).await.unwrap();
    let datacenter = client.datacenter_of(&host).await.unwrap();
    let elsewhere = DatastorePath::parse(&format!(
        "[{}] {vm_name}/not-a-disk.vmdk",
        wanted.datastore()
    ))
    .unwrap();
    InventoryShape {
        vm_kind: vm.kind.clone(),
        disks: disks
            .iter()
            .map(|d| match &d.backing {
                DiskBacking::File { kind, chain } => (
                    "file",
                    kind.clone(),
                    chain.len(),
                    chain
                        .iter()
                        .all(|f| DatastorePath::parse(&f.file_name).is_ok()),
                ),
                DiskBacking::Rdm { .. } => ("rdm", String::new(), 0, true),
                DiskBacking::Other { kind } => ("other", kind.clone(), 0, true),
            })
            .collect(),
        source_kind: source.kind,
        source_chain_index: source.chain_index,
        source_allocated_known: source.allocated_bytes.is_some(),
        owner_found_by_disk: client.find_vm_by_disk(&wanted).await.ok() == Some(vm.clone()),
        host_kind: host.kind.clone(),
        host_found_by_name: client.find_host(&host_name).await.ok() == Some(host.clone()),
        management_ips_parse: !ips.is_empty() && ips.iter().all(|ip| ip.parse::<IpAddr>().is_ok()),
        datacenter_path_relative: !datacenter.path.is_empty() && !datacenter.path.starts_with('/'),
        unknown_vm: error_shape(client.find_vm("no-such-vm-anywhere").await),
        unknown_disk: error_shape(client.source_disk(&vm, &elsewhere).await),
        unknown_datastore: error_shape(client.datastore_device(&host, "no-such-datastore").await),
    }
}

/// Invalid credentials, classified.
async fn invalid_login_shape(mut cfg: ClientConfig) -> (String, Option<FaultKind>) {
    cfg.password = Secret::new("definitely-wrong");
    let err = Client::login(cfg).await.unwrap_err();
    let kind = err.fault().map(|f| f.kind.clone());
    (error_shape::<()>(Err(err)), kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_and_vcsim_give_the_same_shape_of_answers() {
    let data = tempfile::tempdir().unwrap();
    let lab = start_lab(data.path()).await;
    let sim = vcsim();

    let lab_client = Client::login(lab_config(&lab)).await.unwrap();
    let sim_client = Client::login(vcsim_config(&sim)).await.unwrap();
    assert_eq!(
        lab_client.service_content().about.is_vcenter(),
        sim_client.service_content().about.is_vcenter()
    );

    let from_lab = inventory_shape(&lab_client, "vm-1").await;
    let from_vcsim = inventory_shape(&sim_client, "DC0_H0_VM0").await;
    assert_eq!(from_lab, from_vcsim);
    // The comparison is only worth something if the answers are the expected ones.
    assert_eq!(from_lab.source_kind, DiskKind::Vmdk);
    assert_eq!(from_lab.unknown_vm, "NotFound(virtual machine)");
    assert!(from_lab.owner_found_by_disk && from_lab.host_found_by_name);

    let lab_refusal = invalid_login_shape(lab_config(&lab)).await;
    let sim_refusal = invalid_login_shape(vcsim_config(&sim)).await;
    assert_eq!(lab_refusal, sim_refusal);
    assert_eq!(
        lab_refusal,
        ("InvalidLogin".to_owned(), Some(FaultKind::InvalidLogin))
    );

    // Both sessions end the same way.
    for client in [&lab_client, &sim_client] {
        client.logout().await.unwrap();
        let err = client.find_vm("anything").await.unwrap_err();
        assert!(matches!(err, Error::LoggedOut), "{err:?}");
    }
}
