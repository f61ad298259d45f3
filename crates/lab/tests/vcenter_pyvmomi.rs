//! VMware's own SDK (pyVmomi) against the lab's vCenter endpoint: login with the printed thumbprint,
//! hosts, adapters, LUNs, multipath, datastores, VM devices, layoutEx, paging, faults and `/folder` upload.

use std::process::Command;

use co_lab::lab::Lab;
use co_lab::scenario::{DatastoreKind, DatastoreSpec, DiskSpec, Scenario, VmSpec};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyvmomi_reads_the_default_inventory_and_uploads() {
    let python = co_testpeers::python_with_pyvmomi().unwrap_or_else(|e| panic!("{e:#}"));
    let data = tempfile::tempdir().unwrap();
    let mut scenario = Scenario::default_embedded();
    // A second VM whose disk is a physical-mode RDM, for the RDM backing shape.
    scenario.vms.push(VmSpec {
        name: "vm-rdm".into(),
        host: "esxi-2.lab.local".into(),
        disks: vec![DiskSpec {
            datastore: "ds1".into(),
            size_mib: 8,
            rdm_array: Some("ontap1".into()),
            vvol: false,
        }],
    });
    // A third VM whose flat disk is presented as a vVol, for the `backingObjectId` field.
    scenario.vms.push(VmSpec {
        name: "vm-vvol".into(),
        host: "esxi-2.lab.local".into(),
        disks: vec![DiskSpec {
            datastore: "ds1".into(),
            size_mib: 8,
            rdm_array: None,
            vvol: true,
        }],
    });
    // An NFS 4.1 datastore, for the `NasDatastoreInfo` shape.
    scenario.datastores.push(DatastoreSpec {
        name: "nfs1".into(),
        kind: DatastoreKind::Nfs41,
        array: None,
        capacity_gib: 16,
    });
    let lab = Lab::start(scenario.clone(), data.path()).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pyvmomi/read_lab.py");
    let (port, user, password, thumbprint, dc) = (
        lab.vcenter_addr.port().to_string(),
        lab.username.clone(),
        lab.password.clone(),
        lab.thumbprint.clone(),
        lab.datacenter.clone(),
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("LAB_PORT", port)
            .env("LAB_USER", user)
            .env("LAB_PASSWORD", password)
            .env("LAB_THUMBPRINT", thumbprint)
            .env("LAB_DATACENTER", dc)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "pyvmomi script failed:\n{stderr}");
    let seen: Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));

    let wrong = seen["wrong_thumbprint"].as_str().unwrap();
    assert!(
        wrong.to_lowercase().contains("thumbprint"),
        "a wrong thumbprint must not connect: {wrong}"
    );
    assert_eq!(
        seen["negotiated_version"]
            .as_str()
            .unwrap()
            .trim_matches('"'),
        "urn:vim25/8.0.3.0"
    );
    assert_eq!(seen["wrong_password"], "InvalidLogin");
    assert_eq!(seen["api_type"], "VirtualCenter");
    assert_eq!(seen["current_user"], scenario.vcenter.username.as_str());

    let hosts = seen["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    let datastore_naa = lab.san.volume("ontap1", "ds-ds1").unwrap().naa;
    assert!(datastore_naa.starts_with("naa.600a0980"), "{datastore_naa}");
    for (host, spec) in hosts.iter().zip(&scenario.hosts) {
        assert_eq!(host["name"], spec.name.as_str());
        let hba = &host["hbas"][0];
        assert_eq!(hba["type"], "vim.host.InternetScsiHba");
        assert_eq!(hba["device"], "vmhba64");
        let expected_iqn = lab.host(&spec.name).unwrap().sim.initiators()[0].clone();
        assert_eq!(hba["iqn"], expected_iqn.as_str());
        assert!(expected_iqn.starts_with("iqn.1998-01.com.vmware:"));
        let luns = host["luns"].as_array().unwrap();
        let datastore_lun = luns
            .iter()
            .find(|l| l["canonical"] == datastore_naa.as_str())
            .unwrap();
        assert_eq!(datastore_lun["bytes"], 64u64 * 1024 * 1024 * 1024);
        assert_eq!(
            luns.len(),
            2,
            "the datastore LUN and the RDM LUN are mapped to every host"
        );
        assert_eq!(host["lun_keys_match"], true);
        assert_eq!(host["path_adapters_known"], true);
        assert_eq!(host["path_states"], serde_json::json!(["active"]));
        let management_ip = &lab.host(&spec.name).unwrap().sim.spec.management_ip;
        assert_eq!(host["management_ips"], serde_json::json!([management_ip]));
        assert_eq!(host["datastores"], serde_json::json!(["ds1", "nfs1"]));
        assert_eq!(host["kernel_modules"], serde_json::json!([]));
    }
    let iqns: Vec<_> = hosts.iter().map(|h| h["hbas"][0]["iqn"].clone()).collect();
    assert_ne!(iqns[0], iqns[1], "every host has its own IQN");

    let ds = &seen["datastores"][0];
    assert_eq!(ds["name"], "ds1");
    assert_eq!(ds["info_type"], "vim.host.VmfsDatastoreInfo");
    assert_eq!(ds["extent"], datastore_naa.as_str());
    assert_eq!(ds["type"], "VMFS");
    assert_eq!(ds["nas"], Value::Null);
    let nfs = &seen["datastores"][1];
    assert_eq!(nfs["name"], "nfs1");
    assert_eq!(nfs["info_type"], "vim.host.NasDatastoreInfo");
    assert_eq!(nfs["extent"], Value::Null, "an NFS datastore has no extent");
    assert_eq!(nfs["type"], "NFS41");
    assert_eq!(nfs["capacity"], 16u64 << 30);
    assert_eq!(
        nfs["nas"],
        serde_json::json!({
            "type": "NFS41",
            "name": "nfs1",
            "capacity": 16u64 << 30,
            "remote_host": co_lab::lab::NFS_SERVER,
            "remote_path": "/export/nfs1",
            "remote_host_names": [co_lab::lab::NFS_SERVER],
        })
    );

    let vm = &seen["vms"][0];
    assert_eq!(vm["name"], "vm-1");
    assert_eq!(vm["host"], "esxi-1.lab.local");
    let disk = &vm["disks"][0];
    assert_eq!(disk["file"], "[ds1] vm-1/vm-1.vmdk");
    assert_eq!(
        disk["backing"],
        "vim.vm.device.VirtualDisk.FlatVer2BackingInfo"
    );
    assert_eq!(disk["capacity"], 64 * 1024 * 1024);
    assert_eq!(disk["datastore"], "ds1");
    let chain = vm["layout"][0]["files"].as_array().unwrap();
    assert_eq!(chain[0][0], "[ds1] vm-1/vm-1.vmdk");
    assert_eq!(chain[0][1], "diskDescriptor");
    assert_eq!(chain[1][0], "[ds1] vm-1/vm-1-flat.vmdk");
    assert_eq!(chain[1][1], "diskExtent");
    // Sparse: one 4 KiB pattern block per MiB is allocated, far below the 64 MiB provisioned.
    let allocated = chain[1][2].as_u64().unwrap();
    assert!(
        (64 * 4096..64 * 1024 * 1024).contains(&allocated),
        "allocated {allocated}"
    );

    let rdm_vm = &seen["vms"][1];
    assert_eq!(rdm_vm["name"], "vm-rdm");
    let rdm = &rdm_vm["disks"][0];
    let rdm_naa = lab.san.volume("ontap1", "rdm-vm-rdm-0").unwrap().naa;
    assert_eq!(
        rdm["backing"],
        "vim.vm.device.VirtualDisk.RawDiskMappingVer1BackingInfo"
    );
    assert_eq!(rdm["file"], "[ds1] vm-rdm/vm-rdm.vmdk");
    assert_eq!(
        rdm["rdm_device"],
        format!("/vmfs/devices/disks/{rdm_naa}").as_str()
    );
    assert_eq!(rdm["rdm_mode"], "physicalMode");
    let lun_uuid = rdm["rdm_lun_uuid"].as_str().unwrap();
    assert!(
        lun_uuid.contains(rdm_naa.trim_start_matches("naa.")),
        "{lun_uuid}"
    );

    assert_eq!(rdm["backing_object_id"], Value::Null);
    assert_eq!(
        disk["backing_object_id"],
        Value::Null,
        "a flat disk is no vVol"
    );

    let vvol_vm = &seen["vms"][2];
    assert_eq!(vvol_vm["name"], "vm-vvol");
    let vvol = &vvol_vm["disks"][0];
    assert_eq!(
        vvol["backing"],
        "vim.vm.device.VirtualDisk.FlatVer2BackingInfo"
    );
    assert_eq!(vvol["file"], "[ds1] vm-vvol/vm-vvol.vmdk");
    let vvol_id = vvol["backing_object_id"].as_str().unwrap();
    assert!(
        vvol_id.starts_with("rfc4122.") && vvol_id.len() == "rfc4122.".len() + 36,
        "{vvol_id}"
    );

    let pages = seen["pages"].as_array().unwrap();
    assert_eq!(
        pages.len(),
        2,
        "maxObjects=1 over two hosts pages twice: {pages:?}"
    );
    assert_eq!(pages[0][0]["name"], "esxi-1.lab.local");
    assert_eq!(pages[1][0]["name"], "esxi-2.lab.local");
    assert_eq!(pages[0][0]["config.storageDevice.hostBusAdapter"], 1);

    assert_eq!(seen["missing_host"], "ManagedObjectNotFound");
    assert_eq!(seen["upload_status"], 201);
    assert_eq!(seen["download_matches"], true);
    assert_eq!(seen["anonymous_download"], 401);
    assert_eq!(seen["after_logout"], "NotAuthenticated");
    let uploaded = std::fs::read(lab.datastore_dir("ds1").join("uploads/hello.txt")).unwrap();
    assert_eq!(uploaded.len(), "copy-offload lab upload\n".len() * 100);
    assert_eq!(
        lab.vcenter_sessions(),
        0,
        "every pyVmomi session logged out"
    );

    lab.shutdown().await;
}
