//! govc (our small govc over govmomi's client library, `peers/govc`) as a second real client of the
//! lab: every command a vSphere admin would run first, each checked for the answer vCenter gives.
//! govmomi's finder, lister, property collector, task waiter (`WaitForUpdatesEx`), datastore browser
//! and `/folder` transfers run unmodified against `lab serve`.

use std::path::Path;

use co_lab::lab::{Lab, RunningLab};
use co_lab::scenario::{AdvancedOptionValue, Scenario};
use co_testpeers::{GovcTarget, govc};

/// Runs govc and returns its stdout, failing the test with its stderr when it fails.
async fn run(target: &GovcTarget, args: &[&str]) -> String {
    let (target, owned): (GovcTarget, Vec<String>) = (
        target.clone(),
        args.iter().map(|a| (*a).to_owned()).collect(),
    );
    let output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = owned.iter().map(String::as_str).collect();
        govc(&target, &args).unwrap_or_else(|e| panic!("{e:#}"))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "govc {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The value of a `Key: value` line.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

fn lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    lines.sort_unstable();
    lines
}

fn target(lab: &RunningLab, dir: &Path) -> GovcTarget {
    let ca_file = dir.join("lab-ca.pem");
    std::fs::write(&ca_file, &lab.certificate_pem).unwrap();
    GovcTarget {
        url: lab.vcenter_url.clone(),
        username: lab.username.clone(),
        password: lab.password.clone(),
        ca_file,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn govc_reads_and_transfers_like_against_vcenter() {
    let data = tempfile::tempdir().unwrap();
    let mut scenario = Scenario::default_embedded();
    scenario.hosts[1].advanced_options.insert(
        "/DataMover/HardwareAcceleratedMove".into(),
        AdvancedOptionValue::Long(0),
    );
    let lab = Lab::start(scenario, data.path()).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let t = target(&lab, work.path());

    let about = run(&t, &["about"]).await;
    assert_eq!(field(&about, "Name"), Some("VMware vCenter Server"));
    assert_eq!(field(&about, "API type"), Some("VirtualCenter"));
    assert_eq!(field(&about, "API version"), Some("8.0.3.0"));
    assert_eq!(field(&about, "Product ID"), Some("vpx"));

    let everything = run(&t, &["find", "/"]).await;
    for path in [
        "/DC0",
        "/DC0/vm/vm-1",
        "/DC0/host/esxi-1.lab.local/esxi-1.lab.local",
        "/DC0/host/esxi-2.lab.local/esxi-2.lab.local",
        "/DC0/datastore/ds1",
    ] {
        assert!(
            everything.lines().any(|l| l == path),
            "{path}:\n{everything}"
        );
    }
    assert_eq!(
        lines(&run(&t, &["find", "-type", "m", "/"]).await),
        ["/DC0/vm/vm-1"]
    );
    assert_eq!(
        lines(&run(&t, &["find", "-type", "h", "/"]).await),
        [
            "/DC0/host/esxi-1.lab.local/esxi-1.lab.local",
            "/DC0/host/esxi-2.lab.local/esxi-2.lab.local"
        ]
    );
    assert_eq!(
        lines(&run(&t, &["ls", "/DC0"]).await),
        ["/DC0/datastore", "/DC0/host", "/DC0/network", "/DC0/vm"]
    );

    let vm = run(&t, &["vm.info", "-r", "vm-1"]).await;
    assert_eq!(field(&vm, "Name"), Some("vm-1"));
    assert_eq!(field(&vm, "Path"), Some("/DC0/vm/vm-1"));
    assert_eq!(field(&vm, "Host"), Some("esxi-1.lab.local"));
    assert_eq!(field(&vm, "Datastore"), Some("ds1"));
    assert_eq!(field(&vm, "Disks"), Some("1"));
    assert_eq!(field(&vm, "VMX"), Some("[ds1] vm-1/vm-1.vmx"));
    assert_ne!(field(&vm, "UUID"), field(&vm, "Instance UUID"));

    let devices = run(&t, &["device.info", "-vm", "vm-1"]).await;
    assert!(
        devices.contains("Type:         VirtualLsiLogicController"),
        "{devices}"
    );
    assert_eq!(field(&devices, "File"), Some("[ds1] vm-1/vm-1.vmdk"));
    assert_eq!(field(&devices, "Capacity"), Some("67108864"));

    let naa = lab.san.volume("ontap1", "ds-ds1").unwrap().naa;
    let storage = run(&t, &["host.storage.info", "-host", "esxi-1.lab.local"]).await;
    let datastore_lun = storage
        .lines()
        .find(|l| l.starts_with(&naa))
        .unwrap_or_else(|| panic!("{naa} not in\n{storage}"));
    assert!(
        datastore_lun.ends_with(&(64u64 << 30).to_string()),
        "{datastore_lun}"
    );

    let esxcli = |words: &'static [&'static str]| {
        let mut args = vec!["host.esxcli", "-host", "esxi-1.lab.local", "--"];
        args.extend_from_slice(words);
        args
    };
    let listed = run(&t, &esxcli(&["storage", "core", "device", "list"])).await;
    assert!(
        listed.lines().any(|l| l == format!("Device: {naa}")),
        "{listed}"
    );
    let one = run(
        &t,
        &[
            "host.esxcli",
            "-host",
            "esxi-1.lab.local",
            "--",
            "storage",
            "core",
            "device",
            "list",
            "-d",
            &naa,
        ],
    )
    .await;
    assert_eq!(one.matches("Device: ").count(), 1, "{one}");
    assert_eq!(field(&one, "Status"), Some("on"));
    assert_eq!(
        run(
            &t,
            &esxcli(&[
                "storage",
                "core",
                "adapter",
                "rescan",
                "--adapter",
                "vmhba64"
            ])
        )
        .await
        .trim(),
        "true"
    );
    let version = run(&t, &esxcli(&["system", "version", "get"])).await;
    assert_eq!(field(&version, "Product"), Some("VMware ESXi"));
    let wrapper = run(&t, &esxcli(&["vmkfstools", "version"])).await;
    assert_eq!(field(&wrapper, "status"), Some("0"));
    assert!(
        field(&wrapper, "message").is_some_and(|m| m.contains(co_esxi::assets::WRAPPER_VERSION)),
        "{wrapper}"
    );

    // The advanced settings preflight reads, in esxcli's spelling, per host.
    for (host, full_copy) in [("esxi-1.lab.local", "1"), ("esxi-2.lab.local", "0")] {
        let setting = run(
            &t,
            &[
                "host.esxcli",
                "-host",
                host,
                "--",
                "system",
                "settings",
                "advanced",
                "list",
                "-o",
                "/DataMover/HardwareAcceleratedMove",
            ],
        )
        .await;
        assert_eq!(
            field(&setting, "Path"),
            Some("/DataMover/HardwareAcceleratedMove")
        );
        assert_eq!(field(&setting, "IntValue"), Some(full_copy), "{host}");
        assert_eq!(field(&setting, "DefaultIntValue"), Some("1"));
    }

    let listing = run(&t, &["datastore.ls", "-ds", "ds1", "vm-1"]).await;
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(
        names,
        ["vm-1.vmdk"],
        "the flat extent is listed through its descriptor"
    );

    let local = work.path().join("hello.txt");
    let payload = "uploaded by govc\n".repeat(1000);
    std::fs::write(&local, &payload).unwrap();
    run(
        &t,
        &[
            "datastore.upload",
            "-ds",
            "ds1",
            local.to_str().unwrap(),
            "vm-1/govc-hello.txt",
        ],
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(lab.datastore_dir("ds1").join("vm-1/govc-hello.txt")).unwrap(),
        payload
    );
    let back = work.path().join("back.txt");
    run(
        &t,
        &[
            "datastore.download",
            "-ds",
            "ds1",
            "vm-1/govc-hello.txt",
            back.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(std::fs::read_to_string(&back).unwrap(), payload);

    assert_eq!(lab.vcenter_sessions(), 0, "every govc run logged out");
    lab.shutdown().await;
}
