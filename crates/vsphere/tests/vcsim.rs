//! The client against a real vcsim (govmomi's simulator, started per test by co-testpeers):
//! session, faults, property collection, inventory lookups, adapters, `/folder` transfers,
//! timeouts and TLS trust modes.

use std::time::Duration;

use co_testpeers::Vcsim;
use co_vsphere::object::DiskKind;
use co_vsphere::property::{ObjectSpec, PropertySpec};
use co_vsphere::{
    Client, ClientConfig, Datastore, DatastorePath, Error, FaultKind, HostSystem,
    ManagedObjectReference, Request, Secret, TlsTrust, VirtualMachine,
};
use futures::TryStreamExt;

fn vcsim() -> Vcsim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Vcsim::start().expect("vcsim (install it with `scripts/peers.sh install vcsim`)")
}

fn config(sim: &Vcsim) -> ClientConfig {
    let mut cfg = ClientConfig::new(&sim.url, &sim.username, Secret::new(sim.password.clone()));
    cfg.trust = TlsTrust::Verify {
        extra_ca_pem: Some(sim.ca_pem.clone()),
    };
    cfg.timeout = Duration::from_secs(20);
    cfg
}

async fn login(sim: &Vcsim) -> Client {
    Client::login(config(sim)).await.expect("login")
}

#[tokio::test]
async fn login_reads_service_content_and_logout_ends_the_session() {
    let sim = vcsim();
    let client = login(&sim).await;
    let about = &client.service_content().about;
    assert!(about.is_vcenter(), "{about:?}");
    assert_eq!(client.round_trips(), 2, "RetrieveServiceContent + Login");

    client.logout().await.unwrap();
    let err = client.find_vm("DC0_H0_VM0").await.unwrap_err();
    assert!(matches!(err, Error::LoggedOut), "{err}");
}

#[tokio::test]
async fn invalid_login_is_a_typed_error_with_the_server_message() {
    let sim = vcsim();
    let mut cfg = config(&sim);
    cfg.password = Secret::new("wrong");
    let err = Client::login(cfg).await.unwrap_err();
    match &err {
        Error::InvalidLogin { username, fault } => {
            assert_eq!(username, "user");
            assert_eq!(fault.kind, FaultKind::InvalidLogin);
            assert!(!fault.message.is_empty());
        }
        other => panic!("expected InvalidLogin, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("GOVMOMI_PASSWORD"), "{text}");
    assert!(
        !text.contains("wrong"),
        "the password must not appear: {text}"
    );
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_transparently() {
    let sim = vcsim();
    let victim = login(&sim).await;
    let admin = login(&sim).await;
    let sm = victim.service_content().session_manager.clone().unwrap();
    let session = victim.retrieve_one(&sm, &["currentSession"]).await.unwrap();
    let key = session
        .prop("currentSession")
        .and_then(|s| s.text_of("key"))
        .unwrap()
        .to_owned();
    let mut terminate = Request::new("TerminateSession", &sm);
    terminate.text("sessionId", &key);
    admin.invoke(&terminate).await.unwrap();

    let before = victim.round_trips();
    let vm = victim
        .find_vm("DC0_H0_VM0")
        .await
        .expect("re-login and retry");
    assert_eq!(vm.kind, "VirtualMachine");
    assert_eq!(
        victim.round_trips() - before,
        3,
        "rejected call + Login + retried call"
    );
}

/// vcsim 0.24 ignores `maxObjects` (one page, no token); continuation itself is exercised
/// against the in-test hostd endpoint (tests/hostd_endpoint.rs).
#[tokio::test]
async fn paged_property_collection_returns_the_same_objects() {
    let sim = vcsim();
    let client = login(&sim).await;
    let root = client.service_content().root_folder.clone();
    let spec = [PropertySpec::new("VirtualMachine", &["name"])];

    let before = client.round_trips();
    let all = client
        .retrieve(&ObjectSpec::inventory(&root), &spec)
        .await
        .unwrap();
    assert_eq!(
        client.round_trips() - before,
        1,
        "one traversal, one round trip"
    );
    assert!(
        all.len() >= 2,
        "vcsim's VPX model has several VMs: {}",
        all.len()
    );

    let paged = client
        .retrieve_paged(&ObjectSpec::inventory(&root), &spec, Some(1))
        .await
        .unwrap();
    let mut a: Vec<_> = all.iter().map(|o| o.obj.clone()).collect();
    let mut b: Vec<_> = paged.iter().map(|o| o.obj.clone()).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert!(
        paged
            .iter()
            .all(|o| o.text("name").is_some_and(|n| !n.is_empty()))
    );
}

#[tokio::test]
async fn vms_are_found_by_name_path_and_id_and_their_disks_read() {
    let sim = vcsim();
    let client = login(&sim).await;
    let vm = client.find_vm("DC0_H0_VM0").await.unwrap();
    assert_eq!(client.find_vm("/DC0/vm/DC0_H0_VM0").await.unwrap(), vm);
    assert_eq!(client.find_vm(&vm.value).await.unwrap(), vm);
    assert_eq!(client.find_vm(&vm.to_string()).await.unwrap(), vm);
    let err = client.find_vm("no-such-vm").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    let disks = client.vm_disks(&vm).await.unwrap();
    assert_eq!(disks.len(), 1, "{disks:?}");
    let co_vsphere::object::DiskBacking::File { chain, .. } = &disks[0].backing else {
        panic!("flat backing expected: {disks:?}");
    };
    let path = chain[0].file_name.clone();
    assert_eq!(path, "[LocalDS_0] DC0_H0_VM0/disk1.vmdk");

    let wanted = DatastorePath::parse(&path.to_uppercase()).unwrap();
    let source = client.source_disk(&vm, &wanted).await.unwrap();
    assert_eq!(source.kind, DiskKind::Vmdk);
    assert_eq!(source.provisioned_bytes, 1024 * 1024);
    assert_eq!(
        source.allocated_bytes,
        Some(0),
        "vcsim's disk files are empty"
    );
    let err = client
        .source_disk(
            &vm,
            &DatastorePath::parse("[LocalDS_0] DC0_H0_VM0/other.vmdk").unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { what: "disk", .. }), "{err}");

    let exact = DatastorePath::parse(&path).unwrap();
    assert_eq!(client.find_vm_by_disk(&exact).await.unwrap(), vm);
}

#[tokio::test]
async fn hosts_are_found_from_vms_by_name_and_by_id() {
    let sim = vcsim();
    let client = login(&sim).await;
    let vm = client.find_vm("DC0_H0_VM0").await.unwrap();
    let host = client.vm_host(&vm).await.unwrap();
    assert_eq!(host.kind, "HostSystem");
    let name = client.entity_name(&host).await.unwrap();
    assert_eq!(client.find_host(&name).await.unwrap(), host);
    assert_eq!(client.find_host(&host.value).await.unwrap(), host);
    assert!(client.find_host("nope").await.is_err());

    // vcsim's host model selects vmk0 (127.0.0.1) for management, not the unselected vmk1.
    let ips = client.host_management_ips(&host).await.unwrap();
    assert_eq!(ips, vec!["127.0.0.1"]);

    let dc = client.datacenter_of(&host).await.unwrap();
    assert_eq!(dc.path, "DC0");
    assert_eq!(dc.moref.kind, "Datacenter");

    // The same through the typed handles: the VM's host is a HostSystem handle.
    let host_system = VirtualMachine::new(client.clone(), vm)
        .host()
        .await
        .unwrap();
    assert_eq!(host_system.reference(), &host);
    assert_eq!(host_system.name().await.unwrap(), name);
    assert_eq!(host_system.esxcli().host(), &host);
    let storage = host_system.storage_system().await.unwrap();
    assert_eq!(storage.reference().kind, "HostStorageSystem");
}

#[tokio::test]
async fn a_non_vmfs_datastore_has_no_device() {
    let sim = vcsim();
    let client = login(&sim).await;
    let host = client
        .vm_host(&client.find_vm("DC0_H0_VM0").await.unwrap())
        .await
        .unwrap();
    let ds = client.datastore_device(&host, "LocalDS_0").await.unwrap();
    assert_eq!(ds.info_type, "LocalDatastoreInfo");
    let err = ds.canonical_device().unwrap_err();
    assert!(err.to_string().contains("not VMFS"), "{err}");
    let err = client
        .datastore_adapters(&host, "LocalDS_0", false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DatastoreDevice { .. }), "{err}");
    assert!(client.datastore_device(&host, "missing").await.is_err());

    // A copy from it needs one of the host's SAN adapters, and vcsim's host shows none at first.
    let err = client.source_adapters(&host, &ds, false).await.unwrap_err();
    assert!(matches!(err, Error::NoSanAdapter { .. }), "{err}");
    let message = err.to_string();
    for named in ["DC0_H0", "LocalDS_0", "vmhba0 (pvscsi)", "iSCSI"] {
        assert!(message.contains(named), "{named} missing: {message}");
    }

    // Its FC adapters appear with a rescan: the lowest-numbered one is chosen, every time.
    rescan_all_hba(&client, &host).await;
    let chosen = client.source_adapters(&host, &ds, false).await.unwrap();
    assert_eq!((chosen.device.as_deref(), chosen.fallback), (None, true));
    let fc: Vec<_> = HostSystem::new(client.clone(), host.clone())
        .adapters()
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.protocol() == "fc")
        .collect();
    assert_eq!(chosen.adapters, fc[..1], "{chosen:?}");
    assert_eq!(
        client.source_adapters(&host, &ds, false).await.unwrap(),
        chosen
    );
}

#[tokio::test]
async fn fibre_channel_adapters_appear_after_rescan_and_win_the_fallback() {
    let sim = vcsim();
    let client = login(&sim).await;
    let host = client
        .vm_host(&client.find_vm("DC0_H0_VM0").await.unwrap())
        .await
        .unwrap();
    let before = HostSystem::new(client.clone(), host.clone())
        .adapters()
        .await
        .unwrap();
    assert!(!before.is_empty());
    assert!(
        before.iter().all(|a| !a.id.starts_with("fc.")),
        "{before:?}"
    );

    rescan_all_hba(&client, &host).await;
    let after = HostSystem::new(client.clone(), host.clone())
        .adapters()
        .await
        .unwrap();
    let fc: Vec<_> = after.iter().filter(|a| a.id.starts_with("fc.")).collect();
    assert_eq!(fc.len(), 2, "{after:?}");
    for a in &fc {
        let (wwnn, wwpn) = a.id["fc.".len()..].split_once(':').unwrap();
        assert_eq!((wwnn.len(), wwpn.len()), (16, 16), "{}", a.id);
        assert!(a.id.chars().all(|c| !c.is_ascii_uppercase()));
    }

    // The local disk's only path is not SAN: the choice falls back to the first FC adapter.
    let chosen = HostSystem::new(client.clone(), host.clone())
        .device_adapters("mpx.vmhba0:C0:T0:L0", false)
        .await
        .unwrap();
    assert!(chosen.fallback);
    assert_eq!(chosen.adapters.len(), 1);
    assert_eq!(
        chosen.adapters[0].id, fc[0].id,
        "deterministic: lowest device first"
    );
    assert_eq!(chosen.adapters[0].protocol(), "fc");
    let again = HostSystem::new(client.clone(), host.clone())
        .device_adapters("mpx.vmhba0:C0:T0:L0", false)
        .await
        .unwrap();
    assert_eq!(again, chosen);
    let err = HostSystem::new(client.clone(), host.clone())
        .device_adapters("naa.nope", false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

#[tokio::test]
async fn folder_upload_download_round_trip_is_byte_identical_and_delete_removes_the_file() {
    let sim = vcsim();
    let client = login(&sim).await;
    // 5 MiB + a ragged tail, from a simple deterministic generator.
    let len = 5 * 1024 * 1024 + 12345;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = data
        .chunks(256 * 1024)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let path = "DC0_H0_VM0/copy offload test.bin";

    let before = client.round_trips();
    client
        .upload_file("DC0", "LocalDS_0", path, body, len as u64)
        .await
        .unwrap();
    assert_eq!(client.round_trips() - before, 1);

    let stream = client
        .download_file("DC0", "LocalDS_0", path)
        .await
        .unwrap();
    let got: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    let got: Vec<u8> = got.concat();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "downloaded bytes differ from the upload");

    Datastore::new(client.clone(), "DC0", "LocalDS_0")
        .delete(path)
        .await
        .unwrap();
    let err = match client.download_file("DC0", "LocalDS_0", path).await {
        Ok(_) => panic!("the file was deleted"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::File { op: "download", .. }), "{err}");
    let err = Datastore::new(client.clone(), "DC0", "LocalDS_0")
        .delete(path)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::File { op: "delete", .. }), "{err}");
}

#[tokio::test]
async fn slow_calls_time_out_with_a_typed_error() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Vcsim::start_with(&["-method-delay", "RetrievePropertiesEx:3000"])
        .expect("vcsim (install it with `scripts/peers.sh install vcsim`)");
    let mut cfg = config(&sim);
    cfg.timeout = Duration::from_millis(800);
    let client = Client::login(cfg).await.unwrap();
    let err = client.find_vm("DC0_H0_VM0").await.unwrap_err();
    match err {
        Error::Timeout { method, timeout } => {
            assert_eq!(method, "RetrievePropertiesEx");
            assert_eq!(timeout, Duration::from_millis(800));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_is_verified_unless_pinned_or_opted_out() {
    let sim = vcsim();

    let mut cfg = config(&sim);
    cfg.trust = TlsTrust::default();
    let err = Client::login(cfg).await.unwrap_err();
    assert!(
        matches!(err, Error::UntrustedCertificate { .. }),
        "self-signed must be refused by default: {err:?}"
    );
    assert!(err.to_string().contains("GOVMOMI_INSECURE"), "{err}");
    // In words, with the certificate the endpoint presented, never as Rust debug text.
    let message = err.to_string();
    assert!(
        message.contains("not signed by a CA this client trusts"),
        "{message}"
    );
    assert!(
        message
            .to_uppercase()
            .contains(&sim.thumbprint_sha256.to_uppercase()),
        "the presented certificate's fingerprint {} is named: {message}",
        sim.thumbprint_sha256
    );
    assert!(message.contains("`cacert`"), "{message}");

    let mut cfg = config(&sim);
    cfg.trust = TlsTrust::Thumbprint(sim.thumbprint_sha256.clone());
    Client::login(cfg).await.expect("pinned thumbprint");

    let mut cfg = config(&sim);
    cfg.trust = TlsTrust::Thumbprint("00".repeat(32));
    let err = Client::login(cfg).await.unwrap_err();
    match &err {
        Error::UntrustedCertificate { reason, .. } => {
            assert!(reason.contains("thumbprint"), "{reason}")
        }
        other => panic!("wrong pin must be refused: {other:?}"),
    }

    let mut cfg = config(&sim);
    cfg.trust = TlsTrust::Insecure;
    Client::login(cfg).await.expect("GOVMOMI_INSECURE=true");

    Client::login(config(&sim)).await.expect("CA bundle");
}

#[tokio::test]
async fn managed_object_not_found_is_typed() {
    let sim = vcsim();
    let client = login(&sim).await;
    let ghost = ManagedObjectReference::new("VirtualMachine", "vm-999999");
    let err = client.vm_host(&ghost).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = client
        .invoke(&Request::new("RefreshStorageInfo", &ghost))
        .await
        .unwrap_err();
    assert!(err.is_fault(FaultKind::ManagedObjectNotFound), "{err:?}");
}

#[tokio::test]
async fn esxcli_against_vcsim_reports_the_missing_method_executer() {
    let sim = vcsim();
    let client = login(&sim).await;
    let host = client
        .vm_host(&client.find_vm("DC0_H0_VM0").await.unwrap())
        .await
        .unwrap();
    let err = client
        .esxcli(&host, &["storage", "core", "device", "list"])
        .await
        .unwrap_err();
    assert!(
        err.is_fault(FaultKind::MethodNotFound),
        "vcsim 0.24 does not implement RetrieveManagedMethodExecuter: {err:?}"
    );
}

/// Pins (and prints) the SOAP/HTTP round trips each operation costs against vCenter.
#[tokio::test]
async fn round_trips_per_operation() {
    let sim = vcsim();
    let client = login(&sim).await;
    let mut table = vec![("login", client.round_trips())];
    let mut last = client.round_trips();
    let mut measure = |name: &'static str, client: &Client, expected: u64| {
        let now = client.round_trips();
        table.push((name, now - last));
        assert_eq!(now - last, expected, "{name}");
        last = now;
    };
    let vm = client.find_vm("DC0_H0_VM0").await.unwrap();
    measure("find_vm (name, path or id)", &client, 1);
    let host = client.vm_host(&vm).await.unwrap();
    measure("vm_host", &client, 1);
    let disk = DatastorePath::parse("[LocalDS_0] DC0_H0_VM0/disk1.vmdk").unwrap();
    client.source_disk(&vm, &disk).await.unwrap();
    measure("source_disk (refresh + devices + layoutEx)", &client, 2);
    client.datastore_device(&host, "LocalDS_0").await.unwrap();
    measure("datastore_device", &client, 1);
    HostSystem::new(client.clone(), host.clone())
        .device_adapters("mpx.vmhba0:C0:T0:L0", false)
        .await
        .unwrap();
    measure("device_adapters (no scini)", &client, 1);
    rescan_all_hba(&client, &host).await;
    measure("rescan_all_hba", &client, 2);
    client.datacenter_of(&host).await.unwrap();
    measure("datacenter_of", &client, 1);
    for (name, n) in &table {
        println!("{name:<45} {n}");
    }
}

#[tokio::test]
async fn a_standalone_esxi_host_is_navigated_the_same_way() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Vcsim::start_with(&["-esx"])
        .expect("vcsim (install it with `scripts/peers.sh install vcsim`)");
    let client = login(&sim).await;
    assert!(!client.service_content().about.is_vcenter());
    let root = client.service_content().root_folder.clone();
    let vms = client
        .retrieve(
            &ObjectSpec::inventory(&root),
            &[PropertySpec::new("VirtualMachine", &["name"])],
        )
        .await
        .unwrap();
    let name = vms[0].text("name").unwrap().to_owned();
    let vm = client.find_vm(&name).await.unwrap();
    assert_eq!(vm, vms[0].obj);
    let host = client.vm_host(&vm).await.unwrap();
    assert_eq!(
        client.datacenter_of(&host).await.unwrap().path,
        "ha-datacenter"
    );
}

/// `RescanAllHba` through the host's storage system (two round trips: the lookup and the call).
async fn rescan_all_hba(client: &Client, host: &ManagedObjectReference) {
    HostSystem::new(client.clone(), host.clone())
        .storage_system()
        .await
        .unwrap()
        .rescan_all_hba()
        .await
        .unwrap();
}
