//! The clone executor seam shared by the VIB and SSH methods, and [`CloneTask`], which drives one
//! clone from start to cleanup: adaptive polling, progress events, cancellation (abort, then clean).

use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::EsxiError;
use crate::protocol::{CloneStarted, TaskStatus};

/// One ESXi-side wrapper, reached by whichever method.
#[async_trait]
pub trait CloneExecutor: Send + Sync {
    /// Wrapper version reported by the host.
    async fn version(&self) -> Result<String, EsxiError>;
    /// Starts `vmkfstools -i <source_vmdk> -d rdm:<target_device>` as a host-side task.
    async fn start_clone(
        &self,
        source_vmdk: &str,
        target_device: &str,
    ) -> Result<CloneStarted, EsxiError>;
    async fn task_status(&self, task_id: &str) -> Result<TaskStatus, EsxiError>;
    /// Stops a running clone; returns the final status.
    async fn abort(&self, task_id: &str) -> Result<TaskStatus, EsxiError>;
    /// Removes the task's RDM descriptor and state; refused while the clone runs.
    async fn clean(&self, task_id: &str) -> Result<(), EsxiError>;
}

/// A progress observation streamed while a clone runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneProgress {
    pub percent: u8,
    /// `None` until the host can tell (no VAAI statistics for the device).
    pub xcopy_used: Option<bool>,
}

/// How a successful clone ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneOutcome {
    pub task_id: String,
    pub xcopy_used: Option<bool>,
}

/// Polling cadence: start fast (short clones finish in seconds), back off to `max` so progress is
/// never staler than `max`.
#[derive(Debug, Clone, Copy)]
pub struct PollSchedule {
    pub first: Duration,
    pub max: Duration,
}

impl Default for PollSchedule {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(250),
            max: Duration::from_secs(2),
        }
    }
}

/// Drives one clone through an executor.
pub struct CloneTask<'a, E: CloneExecutor + ?Sized> {
    executor: &'a E,
    schedule: PollSchedule,
}

impl<'a, E: CloneExecutor + ?Sized> CloneTask<'a, E> {
    pub fn new(executor: &'a E) -> Self {
        Self {
            executor,
            schedule: PollSchedule::default(),
        }
    }

    pub fn with_schedule(mut self, schedule: PollSchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Runs the clone to completion. `on_progress` sees every change of percent or xcopy use.
    /// Cancelling `cancel` aborts the clone on the host. The task is cleaned in every case.
    pub async fn run(
        &self,
        source_vmdk: &str,
        target_device: &str,
        cancel: &CancellationToken,
        mut on_progress: impl FnMut(CloneProgress) + Send,
    ) -> Result<CloneOutcome, EsxiError> {
        let started = self
            .executor
            .start_clone(source_vmdk, target_device)
            .await?;
        let task_id = started.task_id.clone();
        info!(
            task_id,
            pid = started.pid,
            source_vmdk,
            target_device,
            "clone task started"
        );
        let result = self.follow(&task_id, cancel, &mut on_progress).await;
        if let Err(err) = self.executor.clean(&task_id).await {
            warn!(task_id, error = %err, "clone task cleanup failed");
        }
        result
    }

    async fn follow(
        &self,
        task_id: &str,
        cancel: &CancellationToken,
        on_progress: &mut (impl FnMut(CloneProgress) + Send),
    ) -> Result<CloneOutcome, EsxiError> {
        let mut interval = self.schedule.first;
        let mut last: Option<CloneProgress> = None;
        loop {
            let status = tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(self.abort(task_id).await),
                status = self.executor.task_status(task_id) => status?,
            };
            let percent = status.progress_percent().or(last.map(|p| p.percent));
            if let Some(percent) = percent {
                let progress = CloneProgress {
                    percent,
                    xcopy_used: status.xcopy_used,
                };
                if last != Some(progress) {
                    debug!(task_id, percent, xcopy_used = ?status.xcopy_used, "clone progress");
                    on_progress(progress);
                    last = Some(progress);
                }
            }
            if let Some(exit_code) = status.exit_code {
                return if exit_code == 0 {
                    info!(task_id, xcopy_used = ?status.xcopy_used, "clone task finished");
                    Ok(CloneOutcome {
                        task_id: task_id.to_owned(),
                        xcopy_used: status.xcopy_used,
                    })
                } else {
                    Err(EsxiError::CloneFailed {
                        task_id: task_id.to_owned(),
                        exit_code,
                        std_err: status.std_err.trim().to_owned(),
                    })
                };
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(self.abort(task_id).await),
                () = tokio::time::sleep(interval) => {}
            }
            interval = (interval * 2).min(self.schedule.max);
        }
    }

    async fn abort(&self, task_id: &str) -> EsxiError {
        info!(task_id, "cancellation requested: aborting clone task");
        if let Err(err) = self.executor.abort(task_id).await {
            warn!(task_id, error = %err, "aborting the clone task failed; it may still run on the host");
        }
        EsxiError::Cancelled {
            task_id: task_id.to_owned(),
        }
    }
}

/// Checks values before they leave for the host: both wrappers validate again, but an esxcli
/// `<execute>` line single-quotes values for a shell, so quotes must never reach it.
pub fn check_clone_arguments(source_vmdk: &str, target_device: &str) -> Result<(), EsxiError> {
    let invalid = |what, value: &str, reason| EsxiError::InvalidArgument {
        what,
        value: value.to_owned(),
        reason,
    };
    for (what, value, prefix) in [
        ("source VMDK", source_vmdk, "/vmfs/volumes/"),
        ("target device", target_device, "/vmfs/devices/disks/"),
    ] {
        if !value.starts_with(prefix) {
            return Err(invalid(
                what,
                value,
                "path outside the allowed ESXi directory",
            ));
        }
        if value
            .chars()
            .any(|c| c.is_control() || matches!(c, '\'' | '"' | '\\' | '`' | '$'))
        {
            return Err(invalid(
                what,
                value,
                "quotes, backslashes, $ and control characters are not allowed",
            ));
        }
        if value.split('/').any(|part| part == "..") {
            return Err(invalid(what, value, "'..' is not allowed"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;

    /// Scripted executor: a unit-test seam for the driver's control flow only.
    #[derive(Default)]
    struct Scripted {
        statuses: Mutex<VecDeque<TaskStatus>>,
        calls: Mutex<Vec<String>>,
    }

    fn status(line: &str, exit_code: Option<i32>, xcopy: Option<bool>) -> TaskStatus {
        TaskStatus {
            task_id: "t1".into(),
            pid: 1,
            exit_code,
            last_line: line.into(),
            xcopy_used: xcopy,
            std_err: if exit_code.unwrap_or(0) == 0 {
                String::new()
            } else {
                "disk full\n".into()
            },
        }
    }

    #[async_trait]
    impl CloneExecutor for Scripted {
        async fn version(&self) -> Result<String, EsxiError> {
            Ok("1".into())
        }
        async fn start_clone(&self, _: &str, _: &str) -> Result<CloneStarted, EsxiError> {
            self.calls.lock().unwrap().push("start".into());
            Ok(CloneStarted {
                task_id: "t1".into(),
                pid: 1,
                xcopy_used: false,
            })
        }
        async fn task_status(&self, _: &str) -> Result<TaskStatus, EsxiError> {
            self.calls.lock().unwrap().push("get".into());
            let mut queue = self.statuses.lock().unwrap();
            Ok(if queue.len() > 1 {
                queue.pop_front().unwrap()
            } else {
                queue[0].clone()
            })
        }
        async fn abort(&self, _: &str) -> Result<TaskStatus, EsxiError> {
            self.calls.lock().unwrap().push("abort".into());
            Ok(status("", Some(143), None))
        }
        async fn clean(&self, _: &str) -> Result<(), EsxiError> {
            self.calls.lock().unwrap().push("clean".into());
            Ok(())
        }
    }

    fn scripted(statuses: Vec<TaskStatus>) -> Scripted {
        Scripted {
            statuses: Mutex::new(statuses.into()),
            calls: Mutex::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn progress_is_streamed_once_per_change_and_task_cleaned() {
        let executor = scripted(vec![
            status("", None, None),
            status("Clone: 10% done.", None, Some(true)),
            status("Clone: 10% done.", None, Some(true)),
            status("garbage", None, Some(true)),
            status("Clone: 100% done.", Some(0), Some(true)),
        ]);
        let mut seen = Vec::new();
        let outcome = CloneTask::new(&executor)
            .run(
                "/vmfs/volumes/ds/a.vmdk",
                "/vmfs/devices/disks/naa.1",
                &CancellationToken::new(),
                |p| seen.push(p),
            )
            .await
            .unwrap();
        assert_eq!(outcome.xcopy_used, Some(true));
        assert_eq!(
            seen,
            [
                CloneProgress {
                    percent: 10,
                    xcopy_used: Some(true)
                },
                CloneProgress {
                    percent: 100,
                    xcopy_used: Some(true)
                },
            ]
        );
        assert_eq!(executor.calls.lock().unwrap().last().unwrap(), "clean");
    }

    #[tokio::test(start_paused = true)]
    async fn failure_carries_exit_code_and_stderr() {
        let executor = scripted(vec![status("", Some(5), None)]);
        let err = CloneTask::new(&executor)
            .run(
                "/vmfs/volumes/ds/a.vmdk",
                "/vmfs/devices/disks/naa.1",
                &CancellationToken::new(),
                |_| {},
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "clone task t1 failed with exit code 5, stderr: disk full"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_aborts_then_cleans() {
        let executor = scripted(vec![status("Clone: 1% done.", None, None)]);
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        let err = CloneTask::new(&executor)
            .run(
                "/vmfs/volumes/ds/a.vmdk",
                "/vmfs/devices/disks/naa.1",
                &cancel,
                move |_| trigger.cancel(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, EsxiError::Cancelled { .. }));
        let calls = executor.calls.lock().unwrap();
        assert_eq!(&calls[calls.len() - 2..], ["abort", "clean"]);
    }

    #[tokio::test(start_paused = true)]
    async fn polling_backs_off_to_the_maximum() {
        let executor = scripted(vec![status("", None, None)]);
        let cancel = CancellationToken::new();
        let stopper = cancel.clone();
        let started = tokio::time::Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            stopper.cancel();
        });
        let _ = CloneTask::new(&executor)
            .run(
                "/vmfs/volumes/ds/a.vmdk",
                "/vmfs/devices/disks/naa.1",
                &cancel,
                |_| {},
            )
            .await;
        let polls = executor
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == "get")
            .count();
        // Polls at 0, 0.25, 0.75, 1.75, 3.75 s and then every 2 s: 13 in 20 s, never one per 5 s.
        assert!(
            (12..=14).contains(&polls),
            "{polls} polls in {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn arguments_with_quotes_or_traversal_are_refused() {
        assert!(
            check_clone_arguments("/vmfs/volumes/ds 1/vm/a.vmdk", "/vmfs/devices/disks/naa.1")
                .is_ok()
        );
        for (source, target) in [
            ("/vmfs/volumes/ds/a'b.vmdk", "/vmfs/devices/disks/naa.1"),
            ("/vmfs/volumes/../etc/a.vmdk", "/vmfs/devices/disks/naa.1"),
            ("/etc/passwd", "/vmfs/devices/disks/naa.1"),
            ("/vmfs/volumes/ds/a.vmdk", "/vmfs/devices/disks/$(id)"),
            ("/vmfs/volumes/ds/a\n.vmdk", "/vmfs/devices/disks/naa.1"),
        ] {
            assert!(
                check_clone_arguments(source, target).is_err(),
                "{source} {target}"
            );
        }
    }
}
