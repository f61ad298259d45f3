use co_storage::{
    ArrayCopySession, ArrayCopySource, DeviceName, EsxiHostRef, GroupKind, GroupRef,
    InitiatorGroup, StorageProtocol, Volume,
};

use super::recovery::compact;
use super::*;

/// A clone task id as the wrappers make them.
const T1: &str = "5d0f3c9e-2b7a-4c61-9e8d-0a1b2c3d4e5f";

fn records(entries: Vec<(&str, JournalEntry)>) -> Vec<JournalRecord> {
    entries
        .into_iter()
        .enumerate()
        .map(|(seq, (run, entry))| JournalRecord {
            seq: seq as u64,
            run: run.into(),
            at: String::new(),
            entry,
        })
        .collect()
}

fn volume() -> Volume {
    Volume {
        id: "uuid-1".into(),
        name: "/vol/trident_pvc_1/lun0".into(),
        naa: DeviceName::parse("naa.600a0980383044372f5d4a2d6b6e6f70").unwrap(),
        serial: "80D72d5-kno".into(),
        size_bytes: 1 << 30,
    }
}

fn host() -> EsxiHostRef {
    EsxiHostRef {
        host_id: "hostsystem-host-12".into(),
        initiators: vec![],
    }
}

fn group() -> InitiatorGroup {
    let igroup = GroupRef {
        kind: GroupKind::Igroup,
        name: "xcopy-hostsystem-host-12-iscsi".into(),
        id: "g1".into(),
    };
    InitiatorGroup {
        host: host(),
        protocol: StorageProtocol::Iscsi,
        targets: vec![igroup.clone()],
        owned: vec![igroup],
    }
}

fn change(undo: CleanupStep) -> JournalEntry {
    JournalEntry::ChangeMade { undo }
}

fn done(step: CleanupStep) -> JournalEntry {
    JournalEntry::CleanupDone { step }
}

fn unmap() -> CleanupStep {
    CleanupStep::UnmapVolume {
        volume: volume(),
        group: group(),
    }
}

fn restore(groups: Vec<GroupRef>) -> CleanupStep {
    CleanupStep::RestoreMappings {
        volume: volume(),
        groups,
    }
}

fn device() -> CleanupStep {
    CleanupStep::RemoveDevice {
        host: "HostSystem:host-12".into(),
        naa: "naa.1".into(),
    }
}

fn task(id: &str) -> CleanupStep {
    CleanupStep::CleanTask {
        host: "HostSystem:host-12".into(),
        task_id: id.into(),
    }
}

#[test]
fn outstanding_steps_are_undone_newest_first_and_cancelled_by_cleanup() {
    let recovery = Recovery::fold(&records(vec![
        ("r1", change(restore(vec![]))),
        ("r1", change(unmap())),
        ("r1", change(device())),
        (
            "r1",
            JournalEntry::CloneRequested {
                host: "HostSystem:host-12".into(),
                device: "naa.1".into(),
                task_id: None,
            },
        ),
        (
            "r1",
            JournalEntry::CloneStarted {
                host: "HostSystem:host-12".into(),
                task_id: T1.into(),
            },
        ),
        ("r1", done(device())),
    ]));
    assert_eq!(recovery.previous_run.as_deref(), Some("r1"));
    assert_eq!(
        recovery.outstanding,
        vec![task(T1), unmap(), restore(vec![])]
    );
    let running = recovery.clone_may_be_running().unwrap();
    assert_eq!(running.task_id.as_deref(), Some(T1));
    assert_eq!(running.device.as_deref(), Some("naa.1"));
    assert!(!recovery.is_clean());
    assert_eq!(
        recovery.original_mappings[&volume().name],
        Vec::<String>::new()
    );
}

#[test]
fn clone_requested_without_task_id_may_still_be_running() {
    let recovery = Recovery::fold(&records(vec![(
        "r1",
        JournalEntry::CloneRequested {
            host: "HostSystem:host-12".into(),
            device: "naa.2".into(),
            task_id: None,
        },
    )]));
    let clone = recovery.clone_may_be_running().unwrap();
    assert_eq!(clone.task_id, None);
    assert!(!recovery.is_clean());
}

#[test]
fn a_later_run_without_a_finish_resets_the_previous_outcome() {
    let recovery = Recovery::fold(&records(vec![
        (
            "r1",
            JournalEntry::RunFinished {
                outcome: Outcome::Failed,
            },
        ),
        ("r2", change(device())),
    ]));
    assert_eq!(recovery.previous_run.as_deref(), Some("r2"));
    assert_eq!(recovery.previous_outcome, None);
}

/// Killed between journaling the request and the host's answer: the task has a name, so the
/// re-run aborts and cleans it like a started one, before anything else is undone.
#[test]
fn a_named_clone_request_is_undone_like_a_started_task() {
    let requested = (
        "r1",
        JournalEntry::CloneRequested {
            host: "HostSystem:host-12".into(),
            device: "naa.1".into(),
            task_id: Some(T1.into()),
        },
    );
    let recovery = Recovery::fold(&records(vec![("r1", change(device())), requested.clone()]));
    assert_eq!(recovery.outstanding, vec![task(T1), device()]);
    let started = (
        "r1",
        JournalEntry::CloneStarted {
            host: "HostSystem:host-12".into(),
            task_id: T1.into(),
        },
    );
    let recovery = Recovery::fold(&records(vec![
        ("r1", change(device())),
        requested.clone(),
        started.clone(),
    ]));
    assert_eq!(recovery.outstanding, vec![task(T1), device()]);
    let recovery = Recovery::fold(&records(vec![
        ("r1", change(device())),
        requested,
        started,
        ("r1", done(task(T1))),
        (
            "r1",
            JournalEntry::CloneFinished {
                task_id: T1.into(),
                outcome: Outcome::Aborted,
            },
        ),
    ]));
    assert_eq!(recovery.outstanding, vec![device()]);
    assert!(recovery.clone_may_be_running().is_none());
}

/// The JSON of the vocabulary is a contract with journals already written.
#[test]
fn steps_are_typed_json() {
    let record = JournalRecord {
        seq: 3,
        run: "r".into(),
        at: "t".into(),
        entry: change(CleanupStep::RescanDelete {
            host: "HostSystem:host-12".into(),
            adapters: vec!["vmhba64".into()],
        }),
    };
    let text = serde_json::to_string(&record).unwrap();
    assert_eq!(
        text,
        r#"{"seq":3,"run":"r","at":"t","kind":"changeMade","undo":{"step":"rescanDelete","host":"HostSystem:host-12","adapters":["vmhba64"]}}"#
    );
    assert_eq!(
        serde_json::from_str::<JournalRecord>(&text).unwrap(),
        record
    );
    let session = ArrayCopySession {
        source: ArrayCopySource::VVol {
            vvol_id: "rfc4122.1".into(),
        },
        target: volume(),
        name: "xcopy-copy-uuid-1".into(),
    };
    let step = CleanupStep::EndArrayCopy { session };
    let text = serde_json::to_string(&change(step.clone())).unwrap();
    assert!(text.contains(r#""step":"endArrayCopy""#), "{text}");
    assert_eq!(
        Recovery::fold(&records(vec![("r", change(step.clone()))])).outstanding,
        vec![step]
    );
}

/// What a finished run leaves is one record, however many runs came before.
#[test]
fn a_clean_run_compacts_to_its_outcome() {
    let mut all = Vec::new();
    for run in ["r1", "r2", "r3"] {
        for entry in [
            change(restore(vec![])),
            change(unmap()),
            change(device()),
            done(device()),
            done(unmap()),
            done(restore(vec![])),
            JournalEntry::RunFinished {
                outcome: Outcome::Succeeded,
            },
        ] {
            all.push((run, entry));
        }
    }
    let compacted = compact(&records(all));
    assert_eq!(compacted.len(), 1);
    assert_eq!(compacted[0].run, "r3");
    assert_eq!(compacted[0].seq, 20, "records keep their numbers");
    assert_eq!(
        compacted[0].entry,
        JournalEntry::RunFinished {
            outcome: Outcome::Succeeded
        }
    );
}

/// Compaction keeps what recovery needs: the outstanding steps in undo order, the clone that may
/// run, the last run and its outcome — for every prefix of a journal with crashes in it.
#[test]
fn compaction_preserves_recovery_at_every_point() {
    let history = records(vec![
        (
            "r1",
            change(CleanupStep::ReleaseGroup {
                host: host(),
                group: None,
            }),
        ),
        ("r1", change(restore(vec![]))),
        ("r1", change(unmap())),
        ("r1", change(device())),
        (
            "r1",
            JournalEntry::CloneRequested {
                host: "HostSystem:host-12".into(),
                device: "/vmfs/devices/disks/naa.1".into(),
                task_id: Some(T1.into()),
            },
        ),
        // r1 killed; r2 undoes part of it and is killed too.
        ("r2", done(task(T1))),
        (
            "r2",
            JournalEntry::CloneFinished {
                task_id: T1.into(),
                outcome: Outcome::Aborted,
            },
        ),
        ("r2", done(device())),
        ("r3", done(unmap())),
        ("r3", done(restore(vec![]))),
        (
            "r3",
            JournalEntry::RunFinished {
                outcome: Outcome::Failed,
            },
        ),
    ]);
    for end in 0..=history.len() {
        let prefix = &history[..end];
        let (original, compacted) = (Recovery::fold(prefix), Recovery::fold(&compact(prefix)));
        assert_eq!(compacted.outstanding, original.outstanding, "prefix {end}");
        assert_eq!(
            compacted.clone_may_be_running(),
            original.clone_may_be_running(),
            "prefix {end}"
        );
        assert_eq!(
            compacted.previous_run, original.previous_run,
            "prefix {end}"
        );
        assert_eq!(
            compacted.previous_outcome, original.previous_outcome,
            "prefix {end}"
        );
        assert_eq!(
            compacted.original_mappings, original.original_mappings,
            "prefix {end}"
        );
        // Bounded by what is outstanding: a step each, the running clone, the last outcome.
        assert!(
            compact(prefix).len() <= original.outstanding.len() + 2,
            "prefix {end}"
        );
    }
}

#[test]
fn newer_and_unknown_formats_are_refused_not_misread() {
    let err = parse_document(r#"{"version": 99, "records": []}"#, "file x").unwrap_err();
    assert!(
        matches!(err, JournalError::UnsupportedVersion { found: 99, .. }),
        "{err}"
    );
    let err = parse_document(
        r#"{"version": 2, "records": [{"seq":0,"run":"r","at":"","kind":"launchMissiles"}]}"#,
        "file x",
    )
    .unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { .. }), "{err}");
}

/// A journal edited to smuggle shell syntax or another kind of object into a value that reaches
/// an ESXi host is refused as a whole when it is loaded.
#[test]
fn values_that_would_reach_a_host_are_checked_on_load() {
    for bad in [
        r#"{"kind":"changeMade","undo":{"step":"cleanTask","host":"HostSystem:host-12","taskId":"x'; reboot; '"}}"#,
        r#"{"kind":"cloneStarted","host":"HostSystem:host-12","taskId":"$(touch /tmp/p)"}"#,
        r#"{"kind":"changeMade","undo":{"step":"removeDevice","host":"VirtualMachine:vm-1","naa":"naa.1"}}"#,
        r#"{"kind":"changeMade","undo":{"step":"rescanDelete","host":"HostSystem:host-12","adapters":["vmhba1 && x"]}}"#,
    ] {
        let text = format!(
            r#"{{"version":2,"records":[{{"seq":0,"run":"r","at":"",{}}}]}}"#,
            &bad[1..bad.len() - 1]
        );
        let err = parse_document(&text, "file x").unwrap_err();
        assert!(matches!(err, JournalError::Corrupt { .. }), "{bad}: {err}");
        assert!(err.to_string().contains("delete it"), "{err}");
    }
}

/// Version 1 journals (custom steps with JSON details) are read, converted to typed steps and so
/// undone after an upgrade.
#[test]
fn version_1_journals_convert_to_typed_steps() {
    let custom = |name: &str, detail: serde_json::Value| serde_json::json!({"step": "custom", "name": name, "detail": detail});
    let v1 = serde_json::json!({
        "version": 1,
        "records": [
            {"seq": 0, "run": "old", "at": "t", "kind": "changeMade",
             "undo": custom("releaseGroup", serde_json::json!({"host": host(), "group": null}))},
            {"seq": 1, "run": "old", "at": "t", "kind": "changeMade",
             "undo": custom("releaseGroup", serde_json::json!({"host": host(), "group": group()}))},
            {"seq": 2, "run": "old", "at": "t", "kind": "cleanupDone",
             "step": custom("releaseGroup", serde_json::json!({"host": host(), "group": null}))},
            {"seq": 3, "run": "old", "at": "t", "kind": "changeMade",
             "undo": custom("restoreMappings", serde_json::json!({"volume": volume(), "groups": []}))},
            {"seq": 4, "run": "old", "at": "t", "kind": "changeMade",
             "undo": custom("rescanDelete", serde_json::json!({"host": "HostSystem:host-12", "adapters": ["vmhba64"]}))},
            {"seq": 5, "run": "old", "at": "t", "kind": "changeMade",
             "undo": custom("unmapVolume", serde_json::json!({"volume": volume(), "group": group()}))},
            {"seq": 6, "run": "old", "at": "t", "kind": "deviceDiscovered", "host": "HostSystem:host-12", "naa": "naa.1"},
            {"seq": 7, "run": "old", "at": "t", "kind": "cloneRequested", "host": "HostSystem:host-12", "device": "naa.1", "taskId": "5d0f3c9e-2b7a-4c61-9e8d-0a1b2c3d4e5f"},
            {"seq": 8, "run": "old", "at": "t", "kind": "note", "name": "x", "detail": {}},
        ]
    });
    let records = parse_document(&v1.to_string(), "file x").unwrap();
    let recovery = Recovery::fold(&records);
    assert_eq!(
        recovery.outstanding,
        vec![
            task(T1),
            device(),
            unmap(),
            CleanupStep::RescanDelete {
                host: "HostSystem:host-12".into(),
                adapters: vec!["vmhba64".into()]
            },
            restore(vec![]),
            CleanupStep::ReleaseGroup {
                host: host(),
                group: Some(group())
            },
        ]
    );
}
