//! The privilege check against vcsim (govmomi's simulator, started per test by co-testpeers): a
//! second opinion on the lab's `HasPrivilegeOnEntities`, from an independent implementation of
//! the same API. vcsim's session is an administrator's; `docs/preflight.md` records where vcsim
//! and the lab differ.

use clap::Parser as _;
use co_populator::{EnvironmentConfig, PopulateArgs};
use co_preflight::{Outcome, PreflightOptions, Selection};
use co_testpeers::Vcsim;
use co_vsphere::{AuthorizationManager, Client, ClientConfig, Secret, TlsTrust};

/// vCenter from vcsim; the array at a port nothing listens on (this test is about vCenter).
fn environment(sim: &Vcsim) -> EnvironmentConfig {
    let argv = [
        "populate".to_owned(),
        "--storage-vendor-product=ontap".to_owned(),
        "--storage-hostname=https://127.0.0.1:9".to_owned(),
        "--storage-username=admin".to_owned(),
        "--storage-password=unused".to_owned(),
        format!("--vsphere-hostname={}", sim.url),
        format!("--vsphere-username={}", sim.username),
        format!("--vsphere-password={}", sim.password),
    ];
    PopulateArgs::try_parse_from(argv)
        .unwrap()
        .validate_environment()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcsim_grants_an_administrator_session_every_privilege_preflight_asks_for() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Vcsim::start().expect("vcsim (install it with `scripts/peers.sh install vcsim`)");
    let options = PreflightOptions {
        vsphere_trust: Some(TlsTrust::Verify {
            extra_ca_pem: Some(sim.ca_pem.clone()),
        }),
        ..PreflightOptions::default()
    };
    let selection = Selection {
        vms: vec!["DC0_H0_VM0".into()],
        disks: Vec::new(),
    };
    let report = co_preflight::run(&environment(&sim), &selection, &options).await;
    let table = report.to_table();
    let privileges: Vec<_> = report.checks_with_id("vsphere.privileges").collect();
    let subjects: Vec<&str> = privileges.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(
        subjects,
        ["vCenter", "DC0_H0", "LocalDS_0"],
        "vCenter, the VM's host and its datastore: {table}"
    );
    for check in privileges {
        assert_eq!(check.outcome, Outcome::Pass, "{table}");
    }
    assert_eq!(
        report
            .checks_with_id("vsphere.login")
            .next()
            .map(|c| c.outcome),
        Some(Outcome::Pass),
        "{table}"
    );
}

/// Why vcsim is a second opinion for the granted case only: it grants any privilege id, even one
/// vSphere does not define, where the lab (and vCenter) grant only privileges the role holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcsim_grants_even_an_undefined_privilege() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Vcsim::start().expect("vcsim (install it with `scripts/peers.sh install vcsim`)");
    let mut config = ClientConfig::new(&sim.url, &sim.username, Secret::new(sim.password.clone()));
    config.trust = TlsTrust::Verify {
        extra_ca_pem: Some(sim.ca_pem.clone()),
    };
    let client = Client::login(config).await.unwrap();
    let root = client.service_content().root_folder.clone();
    let answers = AuthorizationManager::of(&client)
        .unwrap()
        .session_privileges(&[root], &["Global.Settings", "CopyOffload.NotAPrivilege"])
        .await
        .unwrap();
    assert_eq!(answers.len(), 1);
    assert!(answers[0].missing().is_empty(), "{:?}", answers[0]);
}
