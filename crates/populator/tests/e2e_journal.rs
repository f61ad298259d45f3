//! The journal end to end. In daily use: the same volume copied 100 times, with runs killed
//! mid-way mixed in (the run's future dropped as its phase starts: nothing more of it runs or is
//! journaled, as after SIGKILL), in file mode and in annotation mode — every run that is not killed
//! succeeds and leaves the lab clean, and the journal never grows past a small fixed size. After an
//! upgrade: a journal an older populator wrote (format 1) is undone. And an unreadable journal
//! stops the run before anything changes.

use crate::e2e_support;
use crate::kube_support;

use std::sync::{Arc, Mutex};

use co_api::contract::names::JOURNAL_ANNOTATION;
use co_populator::ExitCode;
use co_populator::{Phase, PhaseObserver};
use co_populator::{RunOptions, run_with};
use e2e_support::{LabRig, MIB};
use kube::Api;
use kube_support::ScratchNamespace;
use tokio::sync::oneshot;

const RUNS: usize = 100;
/// Every seventh run is killed, in each of these phases in turn.
const KILL_EVERY: usize = 7;
const KILL_PHASES: [Phase; 4] = [Phase::Map, Phase::Discover, Phase::Clone, Phase::Cleanup];
/// The most a journal may hold between runs: a killed run's outstanding steps with their volume
/// and group objects, and nothing that accumulates.
const MAX_JOURNAL_BYTES: usize = 8 * 1024;

/// Runs the copy `RUNS` times; `journal` reads the stored journal after each run.
async fn copy_again_and_again<F, Fut>(
    rig: &LabRig,
    flexvol: &str,
    config: co_populator::PopulateConfig,
    options: impl Fn() -> RunOptions,
    journal: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let mut largest = 0;
    let mut killed = 0;
    for run in 0..RUNS {
        let kill_in = (run % KILL_EVERY == KILL_EVERY - 1)
            .then(|| KILL_PHASES[(run / KILL_EVERY) % KILL_PHASES.len()]);
        match kill_in {
            None => {
                let summary = run_with(config.clone(), options()).await;
                assert_eq!(
                    summary.exit_code,
                    ExitCode::Success,
                    "run {run}: {:?}",
                    summary.error
                );
                rig.assert_clean(flexvol);
            }
            Some(phase) => {
                let (entered, reached) = oneshot::channel();
                let entered = Mutex::new(Some(entered));
                let observer: PhaseObserver = Arc::new(move |current| {
                    if current == phase
                        && let Some(sender) = entered.lock().unwrap().take()
                    {
                        let _ = sender.send(());
                    }
                });
                let run_options = RunOptions {
                    observer: Some(observer),
                    ..options()
                };
                let copy = tokio::spawn(run_with(config.clone(), run_options));
                // Resolves when the phase starts, or when the run ends without it (sender dropped).
                let _ = reached.await;
                copy.abort();
                let _ = copy.await;
                killed += 1;
            }
        }
        let size = journal().await.map_or(0, |text| text.len());
        largest = largest.max(size);
        assert!(
            size <= MAX_JOURNAL_BYTES,
            "run {run}: the journal holds {size} bytes"
        );
    }
    rig.assert_copied(flexvol);
    rig.assert_clean(flexvol);
    println!("{RUNS} runs ({killed} killed): the journal peaked at {largest} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_copies_of_one_volume_keep_the_file_journal_small() {
    let rig = LabRig::start().await;
    let flexvol = "trident_pvc_daily";
    rig.target_volume(flexvol, 64 * MIB);
    let config = rig.config(&rig.args(flexvol));
    let path = rig.journal_path(flexvol);
    copy_again_and_again(
        &rig,
        flexvol,
        config,
        || rig.options(flexvol),
        || async { std::fs::read_to_string(&path).ok() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_copies_of_one_volume_keep_the_annotation_journal_small() {
    let client = kube_support::client().await;
    let namespace = ScratchNamespace::new(&client, "journal-daily").await;
    let crs = kube_support::create_cr(&client, &namespace.name, "disk-0").await;
    let rig = LabRig::start().await;
    let flexvol = "trident_pvc_daily_cr";
    rig.target_volume(flexvol, 64 * MIB);
    let mut args = rig.args(flexvol);
    args.cr_name = Some("disk-0".into());
    args.cr_namespace = Some(namespace.name.clone());
    args.host_lease_namespace = Some(namespace.name.clone());
    let config = rig.config(&args);
    let crs: &Api<_> = &crs;
    copy_again_and_again(
        &rig,
        flexvol,
        config,
        || RunOptions {
            kube_client: Some(client.clone()),
            ..rig.options(flexvol)
        },
        || async {
            crs.get("disk-0")
                .await
                .unwrap()
                .metadata
                .annotations
                .and_then(|mut a| a.remove(JOURNAL_ANNOTATION))
        },
    )
    .await;
    namespace.delete().await;
}

/// A journal that cannot be read stops the run before anything is changed, as a permanent
/// failure (re-running cannot help) whose message says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_journal_is_permanent_and_says_what_to_do() {
    let rig = LabRig::start().await;
    let flexvol = "trident_pvc_garbled";
    rig.target_volume(flexvol, 64 * MIB);
    let path = rig.journal_path(flexvol);
    std::fs::write(&path, r#"{"version":2,"records":[{"seq":0,"#).unwrap();
    let summary = run_with(rig.config(&rig.args(flexvol)), rig.options(flexvol)).await;
    assert_eq!(
        summary.exit_code,
        ExitCode::Permanent,
        "{:?}",
        summary.error
    );
    let message = summary.error.unwrap().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("then delete it"), "{message}");
    rig.assert_untouched(flexvol);
    rig.assert_clean(flexvol);
}

/// A crashed run of an older version (journal format 1, array steps as `custom` steps) left the
/// volume mapped to the host's initiator group: the upgraded populator undoes it from that
/// journal, then copies, and the array is left as it was found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_of_the_previous_format_is_undone() {
    use co_storage::{EsxiHostRef, Initiator, PersistentVolumeRef};

    let rig = LabRig::start().await;
    let flexvol = "trident_pvc_upgrade";
    rig.target_volume(flexvol, 64 * MIB);
    let config = rig.config(&rig.args(flexvol));

    // What the old run did on the array, through the product's own ONTAP plugin.
    let array_endpoint = &rig.lab.arrays[0];
    let mut connection = co_storage::http::ConnectionSettings::new(
        array_endpoint.url.clone(),
        co_storage::http::Credentials {
            username: array_endpoint.username.clone(),
            password: co_storage::http::Secret::new(array_endpoint.password.clone()),
            token: None,
        },
    );
    connection.ca_certificate_pem = Some(rig.lab.certificate_pem.clone().into_bytes());
    let array = co_storage::connect(&config.storage.vendor, &connection, None)
        .await
        .unwrap();
    let volume = array
        .resolve_volume(&PersistentVolumeRef {
            name: format!("pvc-{flexvol}"),
            csi_driver: None,
            volume_handle: format!("pvc-{flexvol}"),
            volume_attributes: [("internalName".to_owned(), flexvol.to_owned())].into(),
        })
        .await
        .unwrap();
    let host = EsxiHostRef {
        host_id: "hostsystem-host-10".into(),
        initiators: rig.lab.hosts[0]
            .sim
            .initiators()
            .iter()
            .map(|id| Initiator::from_adapter_id(id))
            .collect(),
    };
    let originals = array.current_mappings(&volume).await.unwrap();
    let group = array.ensure_initiator_group(&host).await.unwrap();
    array.map(&volume, &group).await.unwrap();
    let mapped = rig.lab.san.mappings(e2e_support::ARRAY);
    assert!(
        mapped.iter().any(|m| m.group.starts_with("xcopy-")),
        "the old run's mapping is there: {mapped:?}"
    );

    let custom = |name: &str, detail: serde_json::Value| serde_json::json!({"step": "custom", "name": name, "detail": detail});
    let record = |seq: u64, undo: serde_json::Value| serde_json::json!({"seq": seq, "run": "v1-run", "at": "2026-11-30T10:00:00Z", "kind": "changeMade", "undo": undo});
    let v1 = serde_json::json!({"version": 1, "records": [
        record(0, custom("releaseGroup", serde_json::json!({"host": host, "group": group}))),
        record(1, custom("restoreMappings", serde_json::json!({"volume": volume, "groups": originals}))),
        record(2, custom("unmapVolume", serde_json::json!({"volume": volume, "group": group}))),
    ]});
    std::fs::write(rig.journal_path(flexvol), v1.to_string()).unwrap();

    // Recovery comes first: by the time the run resolves its target, the old mapping is gone.
    let san = rig.lab.san.clone();
    let mapped_at_resolve = Arc::new(Mutex::new(None));
    let seen = mapped_at_resolve.clone();
    let observer: PhaseObserver = Arc::new(move |phase| {
        if phase == Phase::Resolve {
            let mappings = san.mappings(e2e_support::ARRAY);
            *seen.lock().unwrap() = Some(mappings.iter().any(|m| m.group.starts_with("xcopy-")));
        }
    });
    let options = RunOptions {
        observer: Some(observer),
        ..rig.options(flexvol)
    };
    let summary = run_with(config, options).await;
    assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);
    assert_eq!(
        *mapped_at_resolve.lock().unwrap(),
        Some(false),
        "the old run's mapping was undone before the copy began"
    );
    rig.assert_copied(flexvol);
    rig.assert_clean(flexvol);
}
