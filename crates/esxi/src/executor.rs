//! The clone executor seam shared by the VIB and SSH methods — each method is only a
//! [`WrapperTransport`] (one request/reply exchange with the wrapper); the operations on top are
//! written once — and [`CloneTask`], which drives one clone from start to cleanup: adaptive polling, progress events, cancellation (abort, then clean).
//! A status poll that fails in transit (vCenter or SSH hiccup) is repeated a few times before the
//! clone is given up, so one lost round trip does not abort a copy that runs on regardless.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::EsxiError;
use crate::protocol::{
    CloneStarted, TaskStatus, VersionInfo, WrapperCommand, WrapperReply, accepts_client_task_id,
    decode_message, is_task_id,
};

/// One ESXi-side wrapper, reached by whichever method.
#[async_trait]
pub trait CloneExecutor: Send + Sync {
    /// Wrapper version reported by the host.
    async fn version(&self) -> Result<String, EsxiError>;
    /// Whether the host's wrapper accepts a client-chosen task id in [`Self::start_clone`]
    /// (version 1.1.0 or later).
    async fn accepts_client_task_id(&self) -> Result<bool, EsxiError> {
        Ok(accepts_client_task_id(&self.version().await?))
    }
    /// Starts `vmkfstools -i <source_vmdk> -d rdm:<target_device>` as a host-side task. With
    /// `task_id` the task gets that id, and a repeated start with the same id answers the task
    /// already running instead of starting a second clone; a wrapper older than 1.1.0 is never
    /// sent the id ([`EsxiError::ClientTaskIdUnsupported`]).
    async fn start_clone(
        &self,
        source_vmdk: &str,
        target_device: &str,
        task_id: Option<&str>,
    ) -> Result<CloneStarted, EsxiError>;
    async fn task_status(&self, task_id: &str) -> Result<TaskStatus, EsxiError>;
    /// Stops a running clone; returns the final status.
    async fn abort(&self, task_id: &str) -> Result<TaskStatus, EsxiError>;
    /// Removes the task's RDM descriptor and state; refused while the clone runs.
    async fn clean(&self, task_id: &str) -> Result<(), EsxiError>;
}

/// One request/reply exchange with the host's wrapper — the only thing the clone methods do
/// differently (esxcli through vCenter for the VIB, a session for SSH). Every transport is a
/// [`CloneExecutor`]: the operations on top of the exchange are the same for both.
#[async_trait]
pub trait WrapperTransport: Send + Sync {
    /// Sends `command`; returns the reply's message when its status is 0, otherwise
    /// [`EsxiError::OperationFailed`].
    async fn call(&self, command: WrapperCommand) -> Result<String, EsxiError>;

    /// Asks the host for the wrapper version (the executor caches the answer).
    async fn read_version(&self) -> Result<String, EsxiError> {
        let reply = self.call(WrapperCommand::Version).await?;
        Ok(decode_message::<VersionInfo>(&reply)?.version)
    }

    /// Where the version is kept once read: a wrapper does not change under a running copy.
    fn version_cache(&self) -> &OnceCell<String>;
}

#[async_trait]
impl<T: WrapperTransport> CloneExecutor for T {
    async fn version(&self) -> Result<String, EsxiError> {
        self.version_cache()
            .get_or_try_init(|| self.read_version())
            .await
            .cloned()
    }

    async fn start_clone(
        &self,
        source_vmdk: &str,
        target_device: &str,
        task_id: Option<&str>,
    ) -> Result<CloneStarted, EsxiError> {
        let version = match task_id {
            Some(_) => Some(self.version().await?),
            None => None,
        };
        let command = clone_command(source_vmdk, target_device, task_id, version.as_deref())?;
        Ok(decode_message(&self.call(command).await?)?)
    }

    async fn task_status(&self, task_id: &str) -> Result<TaskStatus, EsxiError> {
        let task_id = task_id.to_owned();
        Ok(decode_message(
            &self.call(WrapperCommand::TaskGet { task_id }).await?,
        )?)
    }

    async fn abort(&self, task_id: &str) -> Result<TaskStatus, EsxiError> {
        let task_id = task_id.to_owned();
        Ok(decode_message(
            &self.call(WrapperCommand::TaskAbort { task_id }).await?,
        )?)
    }

    async fn clean(&self, task_id: &str) -> Result<(), EsxiError> {
        let task_id = task_id.to_owned();
        self.call(WrapperCommand::TaskClean { task_id })
            .await
            .map(drop)
    }
}

/// The reply's message when `reply` reports success, else the operation's failure.
pub fn reply_message(operation: &'static str, reply: WrapperReply) -> Result<String, EsxiError> {
    if reply.is_success() {
        Ok(reply.message)
    } else {
        Err(EsxiError::OperationFailed {
            operation,
            status: reply.status,
            message: reply.message,
        })
    }
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

/// How a status poll that failed in transit ([`EsxiError::is_transport_fault`]) is repeated: up to
/// `attempts` tries in a row, waiting `first_delay` and then twice as long each time. The defaults
/// (5 tries, 100 + 200 + 400 + 800 ms) fit inside the 2 s staleness bound of [`PollSchedule`], so a
/// recovered hiccup never delays progress reports noticeably.
#[derive(Debug, Clone, Copy)]
pub struct PollRetry {
    pub attempts: u32,
    pub first_delay: Duration,
}

impl Default for PollRetry {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_delay: Duration::from_millis(100),
        }
    }
}

/// Drives one clone through an executor.
pub struct CloneTask<'a, E: CloneExecutor + ?Sized> {
    executor: &'a E,
    schedule: PollSchedule,
    retry: PollRetry,
}

impl<'a, E: CloneExecutor + ?Sized> CloneTask<'a, E> {
    pub fn new(executor: &'a E) -> Self {
        Self {
            executor,
            schedule: PollSchedule::default(),
            retry: PollRetry::default(),
        }
    }

    pub fn with_schedule(mut self, schedule: PollSchedule) -> Self {
        self.schedule = schedule;
        self
    }

    pub fn with_poll_retry(mut self, retry: PollRetry) -> Self {
        self.retry = retry;
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
            .start_clone(source_vmdk, target_device, None)
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
                status = self.poll(task_id) => status?,
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

    /// One status poll; transport faults are repeated as [`PollRetry`] says, anything else (a
    /// wrapper reply such as "task not found", an unreadable reply) returns at once.
    async fn poll(&self, task_id: &str) -> Result<TaskStatus, EsxiError> {
        let mut failures = 0u32;
        let mut delay = self.retry.first_delay;
        loop {
            let err = match self.executor.task_status(task_id).await {
                Ok(status) => return Ok(status),
                Err(err) => err,
            };
            failures += 1;
            if !err.is_transport_fault() || failures >= self.retry.attempts {
                if failures > 1 {
                    warn!(task_id, failures, error = %err, "clone task poll failed again; giving up");
                }
                return Err(err);
            }
            warn!(
                task_id,
                failures,
                retry_in = ?delay,
                error = %err,
                "clone task poll failed in transit; repeating it"
            );
            tokio::time::sleep(delay).await;
            delay *= 2;
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

/// The wrapper's clone command for these paths, after [`check_clone_arguments`]: the one place
/// both executors build it, so neither can send an unchecked path or id. `wrapper_version` is
/// what the host reported (needed only with a task id): the id goes only to a wrapper that
/// accepts it.
pub fn clone_command(
    source_vmdk: &str,
    target_device: &str,
    task_id: Option<&str>,
    wrapper_version: Option<&str>,
) -> Result<WrapperCommand, EsxiError> {
    check_clone_arguments(source_vmdk, target_device)?;
    if let Some(id) = task_id {
        if !is_task_id(id) {
            return Err(EsxiError::InvalidArgument {
                what: "clone task id",
                value: id.to_owned(),
                reason: "a task id must be a lowercase hyphenated UUID",
            });
        }
        let version = wrapper_version.unwrap_or_default();
        if !accepts_client_task_id(version) {
            return Err(EsxiError::ClientTaskIdUnsupported {
                version: version.to_owned(),
            });
        }
    }
    Ok(WrapperCommand::Clone {
        source_vmdk: source_vmdk.to_owned(),
        target_device: target_device.to_owned(),
        task_id: task_id.map(str::to_owned),
    })
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
        polls: Mutex<VecDeque<Poll>>,
        calls: Mutex<Vec<String>>,
    }

    /// One scripted `task_status` answer; the last status repeats forever.
    enum Poll {
        Status(TaskStatus),
        Fail(EsxiError),
    }

    fn ssh_drop(n: u32) -> Poll {
        Poll::Fail(EsxiError::Ssh {
            host: "esx1".into(),
            message: format!("connection reset (drop {n})"),
        })
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
        async fn start_clone(
            &self,
            _: &str,
            _: &str,
            _: Option<&str>,
        ) -> Result<CloneStarted, EsxiError> {
            self.calls.lock().unwrap().push("start".into());
            Ok(CloneStarted {
                task_id: "t1".into(),
                pid: 1,
                xcopy_used: false,
            })
        }
        async fn task_status(&self, _: &str) -> Result<TaskStatus, EsxiError> {
            self.calls.lock().unwrap().push("get".into());
            let mut queue = self.polls.lock().unwrap();
            match queue.front() {
                Some(Poll::Status(last)) if queue.len() == 1 => return Ok(last.clone()),
                _ => {}
            }
            match queue.pop_front().expect("script exhausted") {
                Poll::Status(status) => Ok(status),
                Poll::Fail(err) => Err(err),
            }
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
        scripted_polls(statuses.into_iter().map(Poll::Status).collect())
    }

    fn scripted_polls(polls: Vec<Poll>) -> Scripted {
        Scripted {
            polls: Mutex::new(polls.into()),
            calls: Mutex::default(),
        }
    }

    fn count(executor: &Scripted, call: &str) -> usize {
        executor
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == call)
            .count()
    }

    async fn run_to_end(executor: &Scripted) -> Result<CloneOutcome, EsxiError> {
        CloneTask::new(executor)
            .run(
                "/vmfs/volumes/ds/a.vmdk",
                "/vmfs/devices/disks/naa.1",
                &CancellationToken::new(),
                |_| {},
            )
            .await
    }

    #[tokio::test(start_paused = true)]
    async fn transport_faults_while_polling_are_repeated_within_the_progress_budget() {
        let executor = scripted_polls(vec![
            Poll::Status(status("Clone: 10% done.", None, Some(true))),
            ssh_drop(1),
            ssh_drop(2),
            ssh_drop(3),
            ssh_drop(4),
            Poll::Status(status("Clone: 100% done.", Some(0), Some(true))),
        ]);
        let started = tokio::time::Instant::now();
        let outcome = run_to_end(&executor).await.unwrap();
        assert_eq!(outcome.xcopy_used, Some(true));
        assert_eq!(count(&executor, "get"), 6);
        // 0.25 s to the second poll, then 0.1 + 0.2 + 0.4 + 0.8 s of retries.
        assert_eq!(started.elapsed(), Duration::from_millis(250 + 1500));
        assert!(
            Duration::from_millis(100 + 200 + 400 + 800) < PollSchedule::default().max,
            "retries stay inside the progress budget"
        );
        assert_eq!(executor.calls.lock().unwrap().last().unwrap(), "clean");
    }

    #[tokio::test(start_paused = true)]
    async fn the_retry_budget_counts_consecutive_failures_only() {
        let executor = scripted_polls(vec![
            ssh_drop(1),
            ssh_drop(2),
            ssh_drop(3),
            ssh_drop(4),
            Poll::Status(status("Clone: 50% done.", None, Some(true))),
            ssh_drop(5),
            ssh_drop(6),
            ssh_drop(7),
            ssh_drop(8),
            Poll::Status(status("Clone: 100% done.", Some(0), Some(true))),
        ]);
        run_to_end(&executor).await.unwrap();
        assert_eq!(count(&executor, "get"), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn persistent_transport_faults_give_up_with_the_last_error_and_clean() {
        let executor = scripted_polls((1..=6).map(ssh_drop).collect());
        let err = run_to_end(&executor).await.unwrap_err();
        assert!(
            matches!(&err, EsxiError::Ssh { message, .. } if message.contains("drop 5")),
            "{err}"
        );
        assert_eq!(count(&executor, "get"), 5, "five tries in a row, no more");
        assert_eq!(executor.calls.lock().unwrap().last().unwrap(), "clean");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wrapper_error_while_polling_is_not_repeated() {
        let executor = scripted_polls(vec![
            Poll::Fail(EsxiError::OperationFailed {
                operation: "taskGet",
                status: 1,
                message: "task t1 not found".into(),
            }),
            Poll::Status(status("Clone: 100% done.", Some(0), None)),
        ]);
        let err = run_to_end(&executor).await.unwrap_err();
        assert!(matches!(err, EsxiError::OperationFailed { .. }), "{err}");
        assert_eq!(count(&executor, "get"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_during_a_poll_retry_aborts_at_once() {
        let executor = scripted_polls((1..=6).map(ssh_drop).collect());
        let cancel = CancellationToken::new();
        let stopper = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            stopper.cancel();
        });
        let err = CloneTask::new(&executor)
            .run(
                "/vmfs/volumes/ds/a.vmdk",
                "/vmfs/devices/disks/naa.1",
                &cancel,
                |_| {},
            )
            .await
            .unwrap_err();
        assert!(matches!(err, EsxiError::Cancelled { .. }), "{err}");
        assert_eq!(
            count(&executor, "get"),
            2,
            "cancelled in the second back-off"
        );
        let calls = executor.calls.lock().unwrap();
        assert_eq!(&calls[calls.len() - 2..], ["abort", "clean"]);
    }

    #[test]
    fn only_transit_failures_count_as_transport_faults() {
        assert!(
            EsxiError::EsxcliTransport {
                host: "h".into(),
                command: "vmkfstools taskGet".into(),
                message: "HTTP 503".into(),
            }
            .is_transport_fault()
        );
        assert!(
            EsxiError::Timeout {
                host: "h".into(),
                what: "task-get".into(),
                seconds: 30,
            }
            .is_transport_fault()
        );
        assert!(
            !EsxiError::Esxcli {
                host: "h".into(),
                command: "vmkfstools taskGet".into(),
                message: "CLIFault".into(),
            }
            .is_transport_fault()
        );
        assert!(
            !EsxiError::AuthRejected { host: "h".into() }.is_transport_fault(),
            "a rejected key does not heal by itself"
        );
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
    fn a_task_id_goes_only_to_a_wrapper_that_accepts_it() {
        let (source, target) = ("/vmfs/volumes/ds/a.vmdk", "/vmfs/devices/disks/naa.1");
        let id = "5d0f3c9e-2b7a-4c61-9e8d-0a1b2c3d4e5f";
        let command = clone_command(source, target, Some(id), Some("1.1.0")).unwrap();
        assert_eq!(command.wrapper_args().last(), Some(&id));
        for version in [Some("1.0.0"), Some("garbage"), None] {
            let err = clone_command(source, target, Some(id), version).unwrap_err();
            assert!(
                matches!(err, EsxiError::ClientTaskIdUnsupported { .. }),
                "{version:?}: {err}"
            );
        }
        assert!(matches!(
            clone_command(source, target, Some("T1"), Some("1.1.0")),
            Err(EsxiError::InvalidArgument { .. })
        ));
        let without = clone_command(source, target, None, None).unwrap();
        assert_eq!(
            without.wrapper_args(),
            ["--clone", "-s", source, "-t", target]
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
