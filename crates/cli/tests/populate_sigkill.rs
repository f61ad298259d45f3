//! `copy-offload populate` killed with SIGKILL, then run again: the real binary, in Kubernetes-less
//! mode against the lab, is held in a phase by lab latency at a read-only call site, killed with
//! `kill -9` once the lab shows the changes that phase made (so nothing of the process could
//! clean up), and re-run with the same arguments. The re-run finds the leftovers in the journal,
//! undoes them — a clone still on the host included — copies the disk byte for byte and leaves no
//! initiator group, mapping, device, clone task or RDM file behind.

use crate::e2e_support;

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use co_lab::arrays::ontap::trident_lun_path;
use co_lab::faults::FaultRule;
use co_populator::journal::{CleanupStep, FileJournalStore, Journal, Outcome, Recovery};
use e2e_support::{ARRAY, LabRig, MIB, SOURCE_VMDK};

/// Long enough that only the kill ends the held call; the lab serves nothing for it meanwhile.
const HOLD: Duration = Duration::from_secs(120);
const PHASE_DEADLINE: Duration = Duration::from_secs(60);

/// The command line a user runs outside Kubernetes: target by volume handle and attributes, the
/// journal in `$TMPDIR` (its default place without a cluster), vCenter's certificate trusted
/// through `cacert`, structured logs on stderr.
fn populate(rig: &LabRig, flexvol: &str, tmp: &Path) -> Command {
    let array = &rig.lab.arrays[0];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_copy-offload"));
    cmd.env_clear()
        .env("TMPDIR", tmp)
        .env("COPY_OFFLOAD_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("STORAGE_HOSTNAME", &array.url)
        .env("STORAGE_USERNAME", &array.username)
        .env("STORAGE_PASSWORD", &array.password)
        .env("STORAGE_SKIP_SSL_VERIFICATION", "true")
        .env("GOVMOMI_HOSTNAME", &rig.lab.vcenter_url)
        .env("GOVMOMI_USERNAME", &rig.lab.username)
        .env("GOVMOMI_PASSWORD", &rig.lab.password)
        .env("cacert", &rig.lab.certificate_pem)
        .env("ESXI_CLONE_METHOD", "vib")
        .arg("populate")
        .arg(format!("--source-vmdk={SOURCE_VMDK}"))
        .arg(format!("--target-volume-handle=pvc-{flexvol}"))
        .arg(format!("--target-volume-attribute=internalName={flexvol}"))
        .arg(format!("--owner-uid=uid-{flexvol}"))
        .arg("--storage-vendor-product=ontap")
        .arg("--http-endpoint=127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// Where a Kubernetes-less run keeps its journal for volume handle `pvc-<flexvol>`.
fn journal_path(tmp: &Path, flexvol: &str) -> PathBuf {
    tmp.join(format!("copy-offload-journal-pvc-{flexvol}.json"))
}

/// A running populate whose stderr lines arrive on a channel.
struct Populate {
    child: Child,
    lines: mpsc::Receiver<String>,
    transcript: Vec<String>,
}

impl Populate {
    fn spawn(mut cmd: Command) -> Populate {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Populate {
            child,
            lines,
            transcript: Vec::new(),
        }
    }

    /// Reads stderr until the structured `phase started` line for `phase`.
    fn wait_for_phase(&mut self, phase: &str) {
        let deadline = Instant::now() + PHASE_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => panic!(
                    "populate never started phase {phase} ({e}); stderr:\n{}",
                    self.transcript.join("\n")
                ),
            };
            let started = serde_json::from_str::<serde_json::Value>(&line).is_ok_and(|v| {
                v["fields"]["message"] == "phase started" && v["fields"]["phase"] == phase
            });
            self.transcript.push(line);
            if started {
                return;
            }
        }
    }

    /// `kill -9`, and proof that the signal is what ended the process.
    fn sigkill(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }
}

/// Polls `condition` until it holds, failing with `what` at the deadline.
fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PHASE_DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What the killed run left on the lab and in its journal.
struct Leftovers<'a> {
    rig: &'a LabRig,
    flexvol: &'a str,
    journal: PathBuf,
    runtime: &'a tokio::runtime::Runtime,
}

impl Leftovers<'_> {
    /// The journal as the next run's recovery reads it.
    fn recovery(&self) -> Recovery {
        let store = FileJournalStore::new(&self.journal);
        self.runtime.block_on(Journal::load(store)).unwrap().1
    }

    /// The array's name for the host's initiator group reached the journal (a kill between the
    /// array creating the group and journaling its name leaves a group the re-run cannot name).
    fn copy_group_journaled(&self) -> bool {
        self.recovery().outstanding.iter().any(|step| match step {
            CleanupStep::ReleaseGroup { group, .. } => group.is_some(),
            _ => false,
        })
    }

    /// The clone's task id reached the journal (a kill between starting the task and journaling
    /// its id leaves a task the re-run cannot name; the engine logs that case).
    fn clone_task_journaled(&self) -> bool {
        self.recovery()
            .clone_may_be_running()
            .is_some_and(|clone| clone.task_id.is_some())
    }

    fn copy_groups(&self) -> Vec<String> {
        self.rig
            .lab
            .san
            .groups(ARRAY)
            .into_iter()
            .map(|g| g.name)
            .filter(|n| co_api::contract::names::is_array_object_ours(n))
            .collect()
    }

    fn mapped_to_a_copy_group(&self) -> bool {
        let lun = trident_lun_path(self.flexvol);
        self.rig
            .lab
            .san
            .mappings(ARRAY)
            .into_iter()
            .any(|m| m.volume == lun && m.group.starts_with("xcopy-"))
    }

    fn device_on_host(&self) -> bool {
        let lun = trident_lun_path(self.flexvol);
        let naa = self.rig.lab.san.volume(ARRAY, &lun).unwrap().naa;
        self.rig.lab.hosts[0].sim.device(&naa).is_some()
    }

    fn clone_tasks(&self) -> Vec<String> {
        self.rig.lab.hosts[0].sim.task_ids()
    }

    /// Files next to the source disk besides its descriptor and flat extent: the clone's RDM.
    fn rdm_files(&self) -> Vec<String> {
        self.rig
            .vm_files("vm-1")
            .into_iter()
            .filter(|f| f != "vm-1.vmdk" && f != "vm-1-flat.vmdk")
            .collect()
    }
}

/// Holds populate in `phase` with latency at `held_site`, waits until `made` shows the changes
/// that phase makes, kills it with SIGKILL, checks the changes survived the kill, then re-runs.
fn killed_in_phase_then_rerun(phase: &str, held_site: &str, made: impl Fn(&Leftovers<'_>) -> bool) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rig = runtime.block_on(LabRig::start());
    let flexvol = format!("trident_pvc_sigkill_{phase}");
    rig.target_volume(&flexvol, 64 * MIB);
    let tmp = tempfile::tempdir().unwrap();
    let leftovers = Leftovers {
        rig: &rig,
        flexvol: &flexvol,
        journal: journal_path(tmp.path(), &flexvol),
        runtime: &runtime,
    };

    rig.lab.faults.add(FaultRule {
        site: held_site.into(),
        latency_ms: HOLD.as_millis() as u64,
        error: None,
        times: None,
    });
    let mut killed = Populate::spawn(populate(&rig, &flexvol, tmp.path()));
    killed.wait_for_phase(phase);
    wait_until(&format!("the {phase} phase made its changes"), || {
        made(&leftovers)
    });
    killed.sigkill();
    rig.lab.faults.clear();

    // Nothing ran after the kill: the changes are still there, and the journal says so.
    assert!(made(&leftovers), "leftovers of the {phase} phase vanished");
    assert!(
        !leftovers.copy_groups().is_empty(),
        "no initiator group left"
    );
    let recovery = leftovers.recovery();
    assert_eq!(
        recovery.previous_outcome, None,
        "the killed run recorded an end"
    );
    assert!(!recovery.outstanding.is_empty(), "nothing left to undo");
    if phase != "clone" {
        rig.assert_untouched(&flexvol);
    }

    let rerun = populate(&rig, &flexvol, tmp.path())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        rerun.status.code(),
        Some(0),
        "re-run after SIGKILL in {phase}; stderr:\n{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    // The leftovers were undone by the recovery, before the copy started again.
    let messages: Vec<String> = String::from_utf8_lossy(&rerun.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let fields = &v["fields"];
            match fields["phase"].as_str() {
                Some(phase) => format!("{} {phase}", fields["message"].as_str().unwrap_or("")),
                None => fields["message"].as_str().unwrap_or("").to_owned(),
            }
        })
        .collect();
    let position = |wanted: &str| {
        messages
            .iter()
            .position(|m| m == wanted)
            .unwrap_or_else(|| panic!("no `{wanted}` in the re-run's log: {messages:#?}"))
    };
    let undone = position("cleanup started: undoing recorded changes");
    assert!(
        position("phase started recover") < undone && undone < position("phase started resolve"),
        "{messages:#?}"
    );
    rig.assert_copied(&flexvol);
    rig.assert_clean(&flexvol);
    assert!(
        leftovers.rdm_files().is_empty(),
        "{:?}",
        leftovers.rdm_files()
    );
    let recovery = leftovers.recovery();
    assert_eq!(recovery.previous_outcome, Some(Outcome::Succeeded));
    assert!(
        recovery.outstanding.is_empty(),
        "{:?}",
        recovery.outstanding
    );
}

/// Killed after the host's initiator group was made and the mapping journaled, while the array
/// is asked to map the volume.
#[test]
fn sigkill_in_map_then_rerun_copies_and_leaves_nothing() {
    killed_in_phase_then_rerun(
        "map",
        &format!("array:{ARRAY}:POST /api/protocols/san/lun-maps"),
        |left| !left.copy_groups().is_empty() && left.copy_group_journaled(),
    );
}

/// Killed with the volume mapped to the host's group, while the host is asked for the device.
#[test]
fn sigkill_in_discover_then_rerun_copies_and_leaves_nothing() {
    killed_in_phase_then_rerun("discover", "esxcli:storage core device list", |left| {
        left.mapped_to_a_copy_group()
    });
}

/// Killed while polling the clone: the task, its RDM file and the device stay on the host.
#[test]
fn sigkill_in_clone_then_rerun_copies_and_leaves_nothing() {
    killed_in_phase_then_rerun("clone", "esxcli:vmkfstools taskGet", |left| {
        left.mapped_to_a_copy_group()
            && left.device_on_host()
            && !left.clone_tasks().is_empty()
            && left.clone_task_journaled()
            && !left.rdm_files().is_empty()
    });
}
