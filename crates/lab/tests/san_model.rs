//! The SAN model's rules, as the simulated hosts and array facades rely on them: who sees which LUN
//! under which id, what may not be deleted while in use, and that every change wakes subscribers.

use std::time::Duration;

use co_lab::san::{ArrayVendor, CloneCounters, GroupSpec, San, SanError};

const HOST_FC: &str = "fc.20000025b500a001:20000025b500b001";
const HOST_IQN: &str = "iqn.1998-01.com.vmware:esx-1";

fn san() -> (tempfile::TempDir, San) {
    let dir = tempfile::tempdir().unwrap();
    let san = San::new(dir.path());
    san.add_array("ontap1", ArrayVendor::Ontap).unwrap();
    san.add_array("ontap2", ArrayVendor::Ontap).unwrap();
    (dir, san)
}

#[test]
fn volumes_are_sparse_files_with_ontap_identities() {
    let (dir, san) = san();
    let volume = san
        .create_volume("ontap1", "/vol/pvc_1/lun0", 1 << 30)
        .unwrap();

    assert!(volume.backing_path.starts_with(dir.path()));
    let meta = std::fs::metadata(&volume.backing_path).unwrap();
    assert_eq!(meta.len(), 1 << 30);
    assert!(
        std::os::unix::fs::MetadataExt::blocks(&meta) < 64,
        "thin: nothing allocated"
    );
    assert_eq!(volume.serial.len(), 12);
    let hex: String = volume.serial.bytes().map(|b| format!("{b:02x}")).collect();
    assert_eq!(volume.naa, format!("naa.600a0980{hex}"));
    assert_eq!(
        san.volume_by_naa(&volume.naa.to_uppercase()),
        Some(volume.clone())
    );

    let other = san
        .create_volume("ontap2", "/vol/pvc_1/lun0", 4096)
        .unwrap();
    assert_ne!(
        other.naa, volume.naa,
        "device names are unique across arrays"
    );
    assert!(matches!(
        san.create_volume("ontap1", "/vol/pvc_1/lun0", 4096),
        Err(SanError::VolumeExists { .. })
    ));
    assert_eq!(
        san.create_volume("ontap1", "/vol/odd/lun0", 1000)
            .unwrap()
            .size_bytes,
        1024,
        "rounded up to whole sectors"
    );
}

#[test]
fn a_host_sees_a_volume_only_while_mapped_to_a_group_holding_one_of_its_initiators() {
    let (_dir, san) = san();
    let volume = san
        .create_volume("ontap1", "/vol/pvc_1/lun0", 1 << 20)
        .unwrap();
    let host = vec![HOST_FC.to_owned(), HOST_IQN.to_owned()];
    // The array spells the FC port the way ONTAP's REST API does: the WWPN, colon separated.
    san.ensure_group(
        "ontap1",
        "xcopy-host-1-fcp",
        &["20:00:00:25:B5:00:B0:01".to_owned()],
    )
    .unwrap();
    san.ensure_group(
        "ontap1",
        "someone-else",
        &["iqn.1998-01.com.vmware:esx-9".to_owned()],
    )
    .unwrap();

    assert!(san.visible_luns(&host).is_empty(), "not mapped yet");
    san.map("ontap1", &volume.name, "someone-else").unwrap();
    assert!(
        san.visible_luns(&host).is_empty(),
        "mapped, but not to this host"
    );

    let lun_id = san.map("ontap1", &volume.name, "xcopy-host-1-fcp").unwrap();
    let visible = san.visible_luns(&host);
    assert_eq!(visible.len(), 1);
    assert_eq!(visible[0].naa, volume.naa);
    assert_eq!(visible[0].lun_id, lun_id);
    assert_eq!(visible[0].volume, volume);

    san.unmap("ontap1", &volume.name, "xcopy-host-1-fcp")
        .unwrap();
    assert!(san.visible_luns(&host).is_empty(), "unmapped again");
    assert!(matches!(
        san.unmap("ontap1", &volume.name, "xcopy-host-1-fcp"),
        Err(SanError::NotMapped { .. })
    ));
}

#[test]
fn lun_ids_are_the_lowest_free_per_group() {
    let (_dir, san) = san();
    for n in 0..3 {
        san.create_volume("ontap1", &format!("/vol/v{n}/lun0"), 4096)
            .unwrap();
    }
    san.ensure_group("ontap1", "g", &[HOST_IQN.to_owned()])
        .unwrap();
    san.ensure_group("ontap1", "h", &[HOST_IQN.to_owned()])
        .unwrap();

    assert_eq!(san.map("ontap1", "/vol/v0/lun0", "g").unwrap(), 0);
    assert_eq!(san.map("ontap1", "/vol/v1/lun0", "g").unwrap(), 1);
    assert_eq!(
        san.map("ontap1", "/vol/v1/lun0", "h").unwrap(),
        0,
        "ids are per group"
    );
    san.unmap("ontap1", "/vol/v0/lun0", "g").unwrap();
    assert_eq!(
        san.map("ontap1", "/vol/v2/lun0", "g").unwrap(),
        0,
        "a freed id is reused"
    );
    assert!(matches!(
        san.map("ontap1", "/vol/v2/lun0", "g"),
        Err(SanError::AlreadyMapped { lun_id: 0, .. })
    ));
    assert!(matches!(
        san.map_at("ontap1", "/vol/v0/lun0", "g", Some(1)),
        Err(SanError::LunIdInUse { lun_id: 1, .. })
    ));
    assert_eq!(
        san.map_at("ontap1", "/vol/v0/lun0", "g", Some(7)).unwrap(),
        7
    );

    // The same device visible through two groups shows once, under its lowest id.
    let visible = san.visible_luns(&[HOST_IQN.to_owned()]);
    let v1 = visible
        .iter()
        .find(|l| l.volume.name == "/vol/v1/lun0")
        .unwrap();
    assert_eq!(v1.lun_id, 0);
    assert_eq!(visible.len(), 3);
}

#[test]
fn objects_in_use_cannot_be_deleted() {
    let (_dir, san) = san();
    let volume = san.create_volume("ontap1", "/vol/v/lun0", 4096).unwrap();
    san.ensure_group("ontap1", "g", &[HOST_IQN.to_owned()])
        .unwrap();
    san.map("ontap1", &volume.name, "g").unwrap();

    let err = san.delete_volume("ontap1", &volume.name).unwrap_err();
    assert!(err.to_string().contains("unmap it first"), "{err}");
    assert!(matches!(
        san.delete_group("ontap1", "g"),
        Err(SanError::GroupInUse { .. })
    ));

    san.unmap("ontap1", &volume.name, "g").unwrap();
    san.delete_volume("ontap1", &volume.name).unwrap();
    assert!(!volume.backing_path.exists());
    san.delete_group("ontap1", "g").unwrap();
    assert!(san.groups("ontap1").is_empty());
}

#[test]
fn groups_keep_initiators_unique_under_any_spelling() {
    let (_dir, san) = san();
    san.create_group(
        "ontap1",
        GroupSpec {
            name: "xcopy-host-1-mixed".into(),
            initiators: vec![HOST_IQN.into()],
            protocol: Some("mixed".into()),
            os_type: Some("vmware".into()),
        },
    )
    .unwrap();
    assert!(matches!(
        san.add_initiator("ontap1", "xcopy-host-1-mixed", &HOST_IQN.to_uppercase()),
        Err(SanError::InitiatorExists { .. })
    ));
    san.ensure_group(
        "ontap1",
        "xcopy-host-1-mixed",
        &[HOST_IQN.into(), HOST_FC.into()],
    )
    .unwrap();
    let group = san.group("ontap1", "xcopy-host-1-mixed").unwrap();
    assert_eq!(group.initiators, [HOST_IQN, HOST_FC]);
    assert_eq!(group.protocol.as_deref(), Some("mixed"));

    san.remove_initiator("ontap1", "xcopy-host-1-mixed", "20000025B500B001")
        .unwrap();
    assert_eq!(
        san.group("ontap1", "xcopy-host-1-mixed")
            .unwrap()
            .initiators,
        [HOST_IQN]
    );
    assert!(matches!(
        san.create_group(
            "ontap1",
            GroupSpec {
                name: "xcopy-host-1-mixed".into(),
                ..GroupSpec::default()
            }
        ),
        Err(SanError::GroupExists { .. })
    ));
    assert!(matches!(
        san.ensure_group("ontap1", "bad", &["fc.zz:zz".into()]),
        Err(SanError::InvalidInitiator { .. })
    ));
}

#[test]
fn unknown_arrays_and_unsafe_names_are_refused_with_guidance() {
    let (_dir, san) = san();
    let err = san.create_volume("nope", "/vol/v/lun0", 4096).unwrap_err();
    assert!(err.to_string().contains("scenario"), "{err}");
    assert!(matches!(
        san.add_array("ontap1", ArrayVendor::Ontap),
        Err(SanError::ArrayExists { .. })
    ));
    assert!(matches!(
        san.add_array("../escape", ArrayVendor::Ontap),
        Err(SanError::InvalidName { .. })
    ));
    assert!(matches!(
        san.create_volume("ontap1", "/vol/v/lun0", 0),
        Err(SanError::InvalidSize { .. })
    ));
}

#[test]
fn clone_counters_accumulate_per_device() {
    let (_dir, san) = san();
    let volume = san.create_volume("ontap1", "/vol/v/lun0", 4096).unwrap();
    assert_eq!(san.clone_counters(&volume.naa), CloneCounters::default());
    san.record_clone(&volume.naa, 3, false);
    san.record_clone(&volume.naa, 2, true);
    san.record_clone_reads(&volume.naa, 5);
    assert_eq!(
        san.clone_counters(&volume.naa),
        CloneCounters {
            clone_read_ops: 5,
            clone_write_ops: 5,
            failed_clone_ops: 1
        }
    );
}

#[tokio::test]
async fn every_change_wakes_subscribers() {
    let (_dir, san) = san();
    let mut changes = san.subscribe();
    let volume = san.create_volume("ontap1", "/vol/v/lun0", 4096).unwrap();
    san.ensure_group("ontap1", "g", &[HOST_IQN.to_owned()])
        .unwrap();
    changes.borrow_and_update();

    let waiter = tokio::spawn(async move {
        changes.changed().await.unwrap();
        *changes.borrow()
    });
    san.map("ontap1", &volume.name, "g").unwrap();
    let generation = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("a mapping change wakes the waiter")
        .unwrap();
    assert!(generation >= 3);

    let mut changes = san.subscribe();
    changes.borrow_and_update();
    assert!(
        san.map("ontap1", &volume.name, "g").is_err(),
        "a refused change…"
    );
    assert!(!changes.has_changed().unwrap(), "…does not wake anyone");
}
