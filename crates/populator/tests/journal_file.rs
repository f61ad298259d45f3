//! The file-backed journal (Kubernetes-less mode): round trip across runs, refusal of a second
//! writer and of unreadable content, and crash safety against a writer killed with SIGKILL at
//! arbitrary points.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::journal_support;
use co_populator::journal::{
    CleanupStep, FileJournalStore, Journal, JournalEntry, JournalError, Outcome,
};

use journal_support::{igroup, mapped, restore, unmap};

const CRASH_WRITER_ENV: &str = "CO_POPULATOR_JOURNAL_CRASH_WRITER";

#[tokio::test]
async fn a_rerun_sees_what_the_crashed_run_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("journal.json");

    let (mut first, recovery) = Journal::load(FileJournalStore::new(&path)).await.unwrap();
    assert!(recovery.is_clean());
    assert_eq!(recovery.previous_run, None);
    first
        .record(JournalEntry::ChangeMade {
            undo: restore("vol-1", vec![igroup("other")]),
        })
        .await
        .unwrap();
    first.record(mapped("vol-1")).await.unwrap();
    first
        .record(JournalEntry::ChangeMade {
            undo: CleanupStep::RemoveDevice {
                host: "HostSystem:host-1".into(),
                naa: "naa.600a0980".into(),
            },
        })
        .await
        .unwrap();
    first
        .record(JournalEntry::CloneRequested {
            host: "HostSystem:host-1".into(),
            device: "naa.600a0980".into(),
            task_id: None,
        })
        .await
        .unwrap();
    first
        .record(JournalEntry::CloneStarted {
            host: "HostSystem:host-1".into(),
            task_id: "5d0f3c9e-2b7a-4c61-9e8d-0a1b2c3d4e5f".into(),
        })
        .await
        .unwrap();
    let first_run = first.run_id().to_owned();
    let written = first.records().to_vec();
    drop(first); // the "crash": no RunFinished

    let (mut second, recovery) = Journal::load(FileJournalStore::new(&path)).await.unwrap();
    assert_ne!(second.run_id(), first_run);
    // Nothing was undone yet: compaction at load keeps every record that matters.
    assert_eq!(second.records().len(), written.len());
    assert_eq!(recovery.previous_run.as_deref(), Some(first_run.as_str()));
    assert_eq!(recovery.previous_outcome, None);
    assert_eq!(
        recovery
            .clone_may_be_running()
            .and_then(|c| c.task_id.as_deref()),
        Some("5d0f3c9e-2b7a-4c61-9e8d-0a1b2c3d4e5f")
    );
    assert_eq!(
        recovery.outstanding,
        vec![
            CleanupStep::CleanTask {
                host: "HostSystem:host-1".into(),
                task_id: "5d0f3c9e-2b7a-4c61-9e8d-0a1b2c3d4e5f".into()
            },
            CleanupStep::RemoveDevice {
                host: "HostSystem:host-1".into(),
                naa: "naa.600a0980".into()
            },
            unmap("vol-1"),
            restore("vol-1", vec![igroup("other")]),
        ]
    );

    // The second run aborts the clone and undoes everything; a third run finds nothing to do.
    second
        .record(JournalEntry::CloneFinished {
            task_id: "5d0f3c9e-2b7a-4c61-9e8d-0a1b2c3d4e5f".into(),
            outcome: Outcome::Aborted,
        })
        .await
        .unwrap();
    for step in recovery.outstanding {
        second
            .record(JournalEntry::CleanupDone { step })
            .await
            .unwrap();
    }
    second
        .record(JournalEntry::RunFinished {
            outcome: Outcome::Failed,
        })
        .await
        .unwrap();
    let (third, recovery) = Journal::load(FileJournalStore::new(&path)).await.unwrap();
    assert!(recovery.is_clean(), "{recovery:?}");
    assert_eq!(recovery.previous_outcome, Some(Outcome::Failed));
    // A run that leaves nothing to undo leaves one record: how it ended.
    assert_eq!(third.records().len(), 1);
    assert_eq!(
        second.undone_by_this_run().len(),
        4,
        "the run reports what it undid"
    );
}

#[tokio::test]
async fn a_failed_write_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    let (mut journal, _) = Journal::load(FileJournalStore::new(blocker.join("journal.json")))
        .await
        .unwrap();
    // The journal's directory turns out to be a file when the first write happens.
    std::fs::write(&blocker, "x").unwrap();
    let err = journal.record(mapped("vol-1")).await.unwrap_err();
    assert!(matches!(err, JournalError::Io { .. }), "{err}");
    assert!(err.to_string().contains("not-a-directory"), "{err}");
    assert!(journal.records().is_empty());
    assert!(journal.recovery().is_clean());
}

#[tokio::test]
async fn a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    let (mut one, _) = Journal::load(FileJournalStore::new(&path)).await.unwrap();
    let (mut two, _) = Journal::load(FileJournalStore::new(&path)).await.unwrap();
    one.record(mapped("vol-1")).await.unwrap();
    let err = two.record(mapped("vol-2")).await.unwrap_err();
    assert!(
        matches!(err, JournalError::ConcurrentWriter { .. }),
        "{err}"
    );
    let (reread, _) = Journal::load(FileJournalStore::new(&path)).await.unwrap();
    assert_eq!(reread.records().len(), 1);
}

#[tokio::test]
async fn entries_recorded_together_land_together_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    let (mut one, _) = Journal::load(FileJournalStore::new(&path)).await.unwrap();
    let (mut two, _) = Journal::load(FileJournalStore::new(&path)).await.unwrap();
    one.record_all(vec![mapped("vol-1"), mapped("vol-2")])
        .await
        .unwrap();
    let err = two
        .record_all(vec![mapped("vol-3"), mapped("vol-4")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, JournalError::ConcurrentWriter { .. }),
        "{err}"
    );
    assert!(two.records().is_empty(), "the refused batch is not kept");
    let (reread, recovery) = Journal::load(FileJournalStore::new(&path)).await.unwrap();
    let seqs: Vec<u64> = reread.records().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [0, 1]);
    assert_eq!(recovery.outstanding.len(), 2);
}

#[tokio::test]
async fn unreadable_content_is_an_error_with_the_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    std::fs::write(&path, "{\"version\":1,\"records\":[{\"seq\":0").unwrap();
    let err = Journal::load(FileJournalStore::new(&path))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, JournalError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn leftover_temporary_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    let (mut journal, _) = Journal::load(FileJournalStore::new(&path)).await.unwrap();
    journal.record(mapped("vol-1")).await.unwrap();
    std::fs::write(
        dir.path().join(".journal.json.abc123.tmp"),
        "{\"version\":2,\"rec",
    )
    .unwrap();
    let (reread, recovery) = Journal::load(FileJournalStore::new(&path)).await.unwrap();
    assert_eq!(reread.records().len(), 1);
    assert_eq!(recovery.outstanding.len(), 1);
}

/// Kills a writer process with SIGKILL while it appends as fast as it can, several times over the
/// same journal; every time the journal must load and hold a gap-free prefix of what was written.
#[test]
fn journal_survives_sigkill_mid_write() {
    if let Ok(path) = std::env::var(CRASH_WRITER_ENV) {
        write_until_killed(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut previous = 0;
    for round in 0..4 {
        let mut writer = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                // This test by its full name in the suite binary (`journal_file::…`).
                &format!(
                    "{}::journal_survives_sigkill_mid_write",
                    module_path!().split_once("::").map_or("", |(_, file)| file)
                ),
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_WRITER_ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let the writer get somewhere (a varying amount each round), then kill it mid-stream.
        let target = previous + 5 + round * 7;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let count = runtime.block_on(load_count(&path));
            if count >= target {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "writer stalled at {count} records"
            );
            assert!(
                writer.try_wait().unwrap().is_none(),
                "writer exited on its own"
            );
            std::thread::yield_now();
        }
        writer.kill().unwrap();
        writer.wait().unwrap();

        let (journal, _) = runtime
            .block_on(Journal::load(FileJournalStore::new(&path)))
            .unwrap();
        let seqs: Vec<u64> = journal.records().iter().map(|r| r.seq).collect();
        assert_eq!(
            seqs,
            (0..seqs.len() as u64).collect::<Vec<_>>(),
            "round {round}: gap or reorder"
        );
        assert!(seqs.len() >= previous, "round {round}: records were lost");
        previous = seqs.len();
    }
}

async fn load_count(path: &std::path::Path) -> usize {
    match Journal::load(FileJournalStore::new(path)).await {
        Ok((journal, _)) => journal.records().len(),
        Err(error) => panic!("journal unreadable while being written: {error}"),
    }
}

fn write_until_killed(path: &str) -> ! {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (mut journal, _) = Journal::load(FileJournalStore::new(path)).await.unwrap();
        // Distinct outstanding steps across every writer, so compaction at load keeps them all.
        let first = journal.records().last().map_or(0, |r| r.seq + 1);
        for i in first.. {
            journal
                .record(JournalEntry::ChangeMade {
                    undo: CleanupStep::RemoveDevice {
                        host: "HostSystem:host-1".into(),
                        naa: format!("naa.{i:032x}"),
                    },
                })
                .await
                .unwrap();
        }
    });
    unreachable!("the writer loops until it is killed")
}
