//! `--probe`: the one mode that writes. It rehearses the copy of one small disk per host onto a
//! throw-away volume, through the populator's own engine (the same run `populate` makes: map,
//! rescan under the host lease, verify the device, clone, clean up, journaled), and reports each
//! step as a `probe.*` check. The volume is the caller's — a volume of the StorageClass made for
//! this, which the probe overwrites — because no storage plugin creates volumes: the CSI driver
//! does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use co_api::DatastorePath;
use co_populator::{
    ArgProblem, ArgProblems, CopyError, Phase, PopulateArgs, PopulateConfig, RunOptions, RunSummary,
};

use crate::catalog::{
    PROBE_CLEANUP, PROBE_CLONE, PROBE_MAP, PROBE_PREPARE, PROBE_RESCAN, PROBE_VERIFY,
};
use crate::report::Check;
use crate::run::PreflightOptions;

/// The steps a probe reports, in order: the check id and the engine phases that make it up.
const STEPS: &[(&str, &[Phase])] = &[
    (
        PROBE_PREPARE,
        &[Phase::Recover, Phase::Resolve, Phase::Plan],
    ),
    (PROBE_MAP, &[Phase::Map]),
    (PROBE_RESCAN, &[Phase::Discover]),
    (PROBE_VERIFY, &[Phase::Verify]),
    (PROBE_CLONE, &[Phase::Clone, Phase::ArrayCopy]),
];

/// The copies a probe makes: each of `disks` onto the throw-away volume `settings` names with
/// `populate`'s target flags (`--target-volume-handle` and its attributes, or `--pv-file`), with
/// `populate`'s settings otherwise; metrics on an ephemeral loopback port. Every problem at once.
pub fn probe_copies(
    settings: &PopulateArgs,
    disks: &[DatastorePath],
) -> Result<Vec<PopulateConfig>, ArgProblems> {
    if disks.is_empty() {
        return Err(ArgProblems(vec![ArgProblem::new(
            "--probe-disk",
            "missing: --probe copies one small disk per host to rehearse, e.g. \
             --probe-disk \"[datastore1] probe-vm/probe-vm.vmdk\" (a disk of a VM on each host to probe)",
        )]));
    }
    disks
        .iter()
        .map(|disk| {
            let mut args = settings.clone();
            args.source_vmdk = Some(disk.to_string());
            args.source_vm_id = None;
            args.http_endpoint = Some("127.0.0.1:0".to_owned());
            args.validate()
        })
        .collect()
}

/// Copies each of `copies` (one small source disk each, all onto the throw-away volume, one
/// after the other) and reports every step of each.
pub async fn probe(copies: Vec<PopulateConfig>, options: &PreflightOptions) -> Vec<Check> {
    let mut checks = Vec::new();
    for config in copies {
        let subject = config.source.vmdk.to_string();
        let entered: Arc<Mutex<Vec<Phase>>> = Arc::default();
        let seen = entered.clone();
        let run_options = RunOptions {
            handle_signals: options.probe_handles_signals,
            vsphere_trust: options.vsphere_trust.clone(),
            storage_ca_pem: options.storage_ca_pem.clone(),
            ssh_host_key: options.ssh_host_key.clone(),
            journal_path: options.probe_journal.clone(),
            final_scrape_wait: Duration::ZERO,
            observer: Some(Arc::new(move |phase| {
                lock(&seen).push(phase);
            })),
            ..RunOptions::default()
        };
        tracing::info!(disk = %subject, "probe: copying onto the throw-away volume");
        let summary = co_populator::run_with(config, run_options).await;
        let entered = lock(&entered).clone();
        checks.extend(step_checks(&subject, &entered, &summary));
    }
    checks
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A list of phases: a panic elsewhere cannot leave it torn.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One check per step the run reached: passed steps, then the step that failed (with the
/// engine's own message, which says what to do), then the cleanup.
fn step_checks(subject: &str, entered: &[Phase], summary: &RunSummary) -> Vec<Check> {
    let failed_in = entered
        .iter()
        .rev()
        .find(|p| **p != Phase::Cleanup)
        .copied();
    let copy_error = summary
        .error
        .as_ref()
        .filter(|e| !matches!(e, CopyError::Recovery(_)));
    let mut out = Vec::new();
    for &(id, phases) in STEPS {
        let reached = entered.iter().any(|p| phases.contains(p));
        let ended_here = match failed_in {
            Some(phase) => phases.contains(&phase),
            // Nothing entered: the run stopped while connecting, before any phase.
            None => id == PROBE_PREPARE,
        };
        if summary.error.is_some() && ended_here {
            // A cleanup failure (reported below) leaves the outcome of the step it ended in
            // unknown: that step is not reported as passed.
            if let Some(error) = copy_error {
                out.push(Check::fail(
                    id,
                    subject,
                    format!("{}: {error}", failure_of(id)),
                    remedy_of(id),
                ));
            }
            break;
        }
        if !reached {
            continue;
        }
        out.push(match id {
            PROBE_CLONE if entered.contains(&Phase::ArrayCopy) => Check::pass(
                id,
                subject,
                "the array copied the disk onto the volume itself (array copy)",
            ),
            PROBE_CLONE => clone_check(subject, summary),
            _ => Check::pass(id, subject, success_of(id)),
        });
    }
    if entered.contains(&Phase::Cleanup) || !summary.cleanup.is_empty() {
        out.push(cleanup_check(subject, summary));
    }
    out
}

fn clone_check(subject: &str, summary: &RunSummary) -> Check {
    let xcopy = summary.report.as_ref().is_some_and(|r| r.xcopy_used);
    if xcopy {
        Check::pass(
            PROBE_CLONE,
            subject,
            "cloned onto the volume, and the array moved the blocks (XCOPY used)",
        )
    } else {
        Check::warn(
            PROBE_CLONE,
            subject,
            "cloned onto the volume, but as a host copy: the host's data mover moved every block \
             (XCOPY not used)",
            "Fix what the host.* and disk.* checks report for this host and datastore (hardware \
             accelerated move, the LUN's VAAI clone status, the same array) and probe again.",
        )
    }
}

fn cleanup_check(subject: &str, summary: &RunSummary) -> Check {
    let steps: Vec<String> = summary.cleanup.iter().map(ToString::to_string).collect();
    match &summary.error {
        Some(error @ CopyError::Recovery(_)) => Check::fail(
            PROBE_CLEANUP,
            subject,
            format!("the probe's changes could not all be undone: {error}"),
            "Run the same preflight --probe again: it undoes what its journal still lists before \
             anything else. If it keeps failing, undo the listed changes on the array and the host by \
             hand.",
        ),
        _ => Check::pass(
            PROBE_CLEANUP,
            subject,
            format!(
                "everything the probe changed is undone ({})",
                if steps.is_empty() {
                    "nothing to undo".to_owned()
                } else {
                    steps.join("; ")
                }
            ),
        ),
    }
}

fn success_of(id: &str) -> &'static str {
    match id {
        PROBE_PREPARE => {
            "the throw-away volume resolved on the array, vCenter and the array connected"
        }
        PROBE_MAP => "the array mapped the volume to the host's initiators",
        PROBE_RESCAN => "the host found the volume after rescanning its adapters",
        PROBE_VERIFY => "the device the host shows is the volume (NAA name and size)",
        _ => "done",
    }
}

fn failure_of(id: &str) -> &'static str {
    match id {
        PROBE_PREPARE => "the probe could not start",
        PROBE_MAP => "the array could not map the volume to the host",
        PROBE_RESCAN => "the host did not find the volume",
        PROBE_VERIFY => "the device the host shows is not provably the volume",
        PROBE_CLONE => "the clone failed",
        _ => "failed",
    }
}

fn remedy_of(id: &str) -> &'static str {
    match id {
        PROBE_PREPARE => {
            "Check the throw-away volume's handle (--target-volume-handle, its attributes) names a \
             volume on the array, and the login checks above."
        }
        PROBE_MAP => {
            "Check the storage.* checks above: the array must know the host's initiators and allow \
             copy-offload's initiator group."
        }
        PROBE_RESCAN => {
            "Check the SAN zoning or iSCSI targets between the array and the host, and the \
             host.max-lun check: the host must reach the array's ports and scan the LUN id the \
             array gave."
        }
        PROBE_VERIFY => {
            "The host shows another device than the array reports for the volume: check the \
             volume is the one the handle names and is not under a datastore."
        }
        _ => {
            "Check the host.vib or host.ssh-key checks above and the message: the clone runs as a copy does."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_has_its_own_wording() {
        for &(id, _) in STEPS {
            assert_ne!(failure_of(id), "failed", "{id}");
            if id != PROBE_CLONE {
                assert_ne!(success_of(id), "done", "{id}");
            }
        }
    }
}
