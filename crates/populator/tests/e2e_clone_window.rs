//! The window between journaling a clone request and learning the task id from the host (issue 6,
//! upstream #2236). With wrapper 1.1.0 the populator names the task itself before the request, so
//! a run killed in that window leaves an id the re-run aborts and cleans before copying. With an
//! older wrapper the id is unknown; the re-run then refuses to undo anything while the host
//! still refuses to detach the device (a clone writes to it) and never starts a second clone.
//!
//! The kill is the run's future dropped (as `kill -9` leaves it: nothing more runs), after the
//! clone task exists and its start is journaled; the journal is then cut back to what a kill
//! between the request and the host's answer leaves (no `cloneStarted`).

use crate::e2e_support;

use std::path::Path;
use std::time::Duration;

use co_esxi::protocol::WrapperCommand;
use co_lab::SimHost;
use co_lab::arrays::ontap::trident_lun_path;
use co_lab::scenario::Scenario;
use co_populator::CopyError;
use co_populator::ExitCode;
use co_populator::Phase;
use co_populator::run_with;
use e2e_support::{ARRAY, LabRig, MIB};

/// Re-checks `check` (in-process state of the lab's host and the run) until it answers, failing
/// after 20 s.
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    co_testpeers::eventually(
        Duration::from_secs(20),
        what,
        || std::future::ready(check()),
    )
    .await
}

fn journal(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default())
        .unwrap_or(serde_json::Value::Null)
}

fn records_of_kind(journal: &serde_json::Value, kind: &str) -> Vec<serde_json::Value> {
    journal["records"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .filter(|r| r["kind"] == kind)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Rewrites the journal without its `cloneStarted` records: what a kill between journaling the
/// request and the host's answer leaves.
fn cut_before_the_start_reply(path: &Path) {
    let mut document = journal(path);
    let records = document["records"].as_array_mut().unwrap();
    records.retain(|r| r["kind"] != "cloneStarted");
    std::fs::write(path, serde_json::to_string(&document).unwrap()).unwrap();
}

/// Starts a copy whose clone stays running, and kills the run once the clone's start is
/// journaled; returns the id of the clone left running on the host.
async fn kill_while_cloning(rig: &LabRig, host: &SimHost, flexvol: &str) -> String {
    let config = rig.config(&rig.args(flexvol));
    let journal_path = rig.journal_path(flexvol);
    host.hold_next_clone();
    let mut options = rig.options(flexvol);
    let (phases, mut entered) = tokio::sync::mpsc::unbounded_channel();
    options.observer = Some(std::sync::Arc::new(move |p| {
        let _ = phases.send(p);
    }));
    let run = tokio::spawn(run_with(config, options));
    while entered
        .recv()
        .await
        .expect("the run reaches the clone phase")
        != Phase::Clone
    {}
    let task_id = eventually("the clone task", || host.task_ids().first().cloned()).await;
    eventually("the journaled start", || {
        (!records_of_kind(&journal(&journal_path), "cloneStarted").is_empty()).then_some(())
    })
    .await;
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    cut_before_the_start_reply(&journal_path);
    let running = host.task_status(&task_id).unwrap();
    assert_eq!(running.exit_code, None, "the killed run's clone still runs");
    task_id
}

fn clones_sent(host: &SimHost) -> Vec<Option<String>> {
    host.wrapper_commands()
        .into_iter()
        .filter_map(|c| match c {
            WrapperCommand::Clone { task_id, .. } => Some(task_id),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_named_before_its_start_is_aborted_and_cleaned_by_the_rerun() {
    let rig = LabRig::start().await;
    let host = rig.lab.hosts[0].sim.clone();
    let flexvol = "trident_pvc_window";
    rig.target_volume(flexvol, 64 * MIB);
    let task_id = kill_while_cloning(&rig, &host, flexvol).await;

    let requested = records_of_kind(&journal(&rig.journal_path(flexvol)), "cloneRequested");
    assert_eq!(requested.len(), 1);
    assert_eq!(
        requested[0]["taskId"], task_id,
        "the id is journaled before the host hears of the clone"
    );
    assert_eq!(clones_sent(&host), [Some(task_id.clone())]);

    let sent_before = host.wrapper_commands().len();
    let rerun = run_with(rig.config(&rig.args(flexvol)), rig.options(flexvol)).await;
    assert_eq!(rerun.exit_code, ExitCode::Success, "{:?}", rerun.error);
    let sent = host.wrapper_commands()[sent_before..].to_vec();
    let at = |wanted: &dyn Fn(&WrapperCommand) -> bool| {
        sent.iter()
            .position(wanted)
            .unwrap_or_else(|| panic!("not sent: {sent:?}"))
    };
    let abort = at(&|c| matches!(c, WrapperCommand::TaskAbort { task_id: id } if *id == task_id));
    let clean = at(&|c| matches!(c, WrapperCommand::TaskClean { task_id: id } if *id == task_id));
    let clone = at(&|c| matches!(c, WrapperCommand::Clone { .. }));
    assert!(
        abort < clean && clean < clone,
        "the old task is aborted and cleaned before the new clone: {sent:?}"
    );
    let clones = clones_sent(&host);
    assert_eq!(clones.len(), 2);
    assert!(clones[1].as_ref().is_some_and(|id| *id != task_id));
    rig.assert_copied(flexvol);
    rig.assert_clean(flexvol);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_older_wrapper_a_still_writing_unnamed_clone_stops_the_rerun_safely() {
    let mut scenario = Scenario::default_embedded();
    scenario.hosts[0].wrapper_version = Some("1.0.0".into());
    let rig = LabRig::start_with(scenario).await;
    let host = rig.lab.hosts[0].sim.clone();
    let flexvol = "trident_pvc_unnamed";
    rig.target_volume(flexvol, 64 * MIB);
    let task_id = kill_while_cloning(&rig, &host, flexvol).await;
    assert_eq!(
        clones_sent(&host),
        [None],
        "wrapper 1.0.0 is never sent an id"
    );
    let journal_path = rig.journal_path(flexvol);
    let requested = records_of_kind(&journal(&journal_path), "cloneRequested");
    assert!(requested[0].get("taskId").is_none(), "{requested:?}");

    let naa = rig
        .lab
        .san
        .volume(ARRAY, &trident_lun_path(flexvol))
        .unwrap()
        .naa;
    let mappings_before = rig.lab.san.mappings(ARRAY);
    let config = rig.config(&rig.args(flexvol));
    let refused = run_with(config.clone(), rig.options(flexvol)).await;
    assert_eq!(
        refused.exit_code,
        ExitCode::Retryable,
        "{:?}",
        refused.error
    );
    let error = refused.error.expect("an error");
    assert!(
        matches!(&error, CopyError::UnnamedCloneRunning { reason, .. } if reason.contains("Busy")),
        "{error}"
    );
    assert!(
        error.to_string().contains("started no second clone"),
        "{error}"
    );
    assert_eq!(clones_sent(&host), [None], "no second clone");
    assert_eq!(host.task_ids(), std::slice::from_ref(&task_id));
    assert_eq!(host.task_status(&task_id).unwrap().exit_code, None);
    // Nothing was undone under the writing clone, and the refused run changed nothing itself.
    assert_eq!(host.device(&naa).unwrap().state.as_str(), "on");
    assert_eq!(rig.lab.san.mappings(ARRAY), mappings_before);
    let document = journal(&journal_path);
    let records = document["records"].as_array().unwrap();
    let last_run = records.last().unwrap()["run"].clone();
    let kinds: Vec<_> = records
        .iter()
        .filter(|r| r["run"] == last_run)
        .map(|r| r["kind"].clone())
        .collect();
    assert_eq!(
        kinds,
        ["runFinished"],
        "the refused run journaled no change"
    );

    // The administrator stops the stray clone; the next run undoes the rest and copies.
    host.abort_task(&task_id).unwrap();
    eventually("the stray clone to end", || {
        host.task_status(&task_id).unwrap().exit_code
    })
    .await;
    let rerun = run_with(config, rig.options(flexvol)).await;
    assert_eq!(rerun.exit_code, ExitCode::Success, "{:?}", rerun.error);
    assert_eq!(clones_sent(&host), [None, None]);
    rig.assert_copied(flexvol);
    // An unnamed task can only be cleaned by whoever knows its id: here, the administrator.
    host.clean_task(&task_id).await.unwrap();
    rig.assert_clean(flexvol);
}

/// A named clone the host never started (its start was refused): cleaning it finds the task
/// unknown to the host, which is done, and the run leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_clone_the_host_never_started_is_cleaned_as_done() {
    let rig = LabRig::start().await;
    let host = rig.lab.hosts[0].sim.clone();
    let flexvol = "trident_pvc_refused";
    rig.target_volume(flexvol, 64 * MIB);
    rig.lab.faults.add(co_lab::faults::FaultRule {
        site: "esxcli:vmkfstools clone".into(),
        latency_ms: 0,
        error: Some("injected: clone refused".into()),
        times: Some(1),
    });
    let config = rig.config(&rig.args(flexvol));
    let failed = run_with(config.clone(), rig.options(flexvol)).await;
    assert_ne!(failed.exit_code, ExitCode::Success);
    // The journal compacted away the cleaned task; the run's report names it.
    let task_id = failed
        .cleanup
        .iter()
        .find_map(|step| match step {
            co_populator::journal::CleanupStep::CleanTask { task_id, .. } => Some(task_id.clone()),
            _ => None,
        })
        .expect("the run reports cleaning the named task");
    assert!(
        host.wrapper_commands()
            .iter()
            .any(|c| matches!(c, WrapperCommand::TaskGet { task_id: id } if *id == task_id)),
        "the cleanup asked the host about the named task"
    );
    rig.assert_clean(flexvol);
    let rerun = run_with(config, rig.options(flexvol)).await;
    assert_eq!(rerun.exit_code, ExitCode::Success, "{:?}", rerun.error);
    rig.assert_copied(flexvol);
    rig.assert_clean(flexvol);
}
