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
    CloneStarted, MAX_NAME_BYTES, MAX_PATH_BYTES, TaskId, TaskStatus, VersionInfo, WrapperCommand,
    WrapperReply, accepts_client_task_id, decode_message, is_path_char,
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
        let started: CloneStarted = decode_message(&self.call(command).await?)?;
        // The id is sent back in every later call: a wrapper must not be able to smuggle text in.
        checked_task_id(&started.task_id)?;
        Ok(started)
    }

    async fn task_status(&self, task_id: &str) -> Result<TaskStatus, EsxiError> {
        let task_id = checked_task_id(task_id)?.into();
        Ok(decode_message(
            &self.call(WrapperCommand::TaskGet { task_id }).await?,
        )?)
    }

    async fn abort(&self, task_id: &str) -> Result<TaskStatus, EsxiError> {
        let task_id = checked_task_id(task_id)?.into();
        Ok(decode_message(
            &self.call(WrapperCommand::TaskAbort { task_id }).await?,
        )?)
    }

    async fn clean(&self, task_id: &str) -> Result<(), EsxiError> {
        let task_id = checked_task_id(task_id)?.into();
        self.call(WrapperCommand::TaskClean { task_id })
            .await
            .map(drop)
    }
}

/// `task_id` as a [`TaskId`], or the refusal that keeps it from the host.
pub fn checked_task_id(task_id: &str) -> Result<TaskId, EsxiError> {
    TaskId::parse(task_id).map_err(|invalid| EsxiError::InvalidArgument {
        what: "clone task id",
        value: invalid.value,
        reason: "a task id must be a lowercase hyphenated UUID; the journal entry that holds it \
                 was altered or corrupted",
    })
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
        checked_task_id(id)?;
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

/// Checks paths before they leave for the host, with the rules both wrappers apply again: a
/// source `/vmfs/volumes/<datastore>/…/<disk>.vmdk` (any letters, Unicode spaces and quotes;
/// no control or invisible characters, no `.`/`..` segment, at most [`MAX_PATH_BYTES`]), and a
/// target `/vmfs/devices/disks/<device>` that names a whole device, not a partition.
pub fn check_clone_arguments(source_vmdk: &str, target_device: &str) -> Result<(), EsxiError> {
    let invalid = |what, value: &str, reason| EsxiError::InvalidArgument {
        what,
        value: value.chars().take(200).collect(),
        reason,
    };
    let source = "source VMDK";
    if source_vmdk.len() > MAX_PATH_BYTES {
        return Err(invalid(
            source,
            source_vmdk,
            "longer than 1024 bytes, more than any vSphere datastore path",
        ));
    }
    let Some(relative) = source_vmdk.strip_prefix("/vmfs/volumes/") else {
        return Err(invalid(
            source,
            source_vmdk,
            "path outside /vmfs/volumes/<datastore>/",
        ));
    };
    if !source_vmdk.chars().all(is_path_char) {
        return Err(invalid(
            source,
            source_vmdk,
            "control and invisible formatting characters are not allowed",
        ));
    }
    let segments: Vec<&str> = relative.split('/').collect();
    if segments.len() < 2
        || segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err(invalid(
            source,
            source_vmdk,
            "must be /vmfs/volumes/<datastore>/…/<disk>.vmdk without empty, '.' or '..' segments",
        ));
    }
    let disk = segments[segments.len() - 1];
    if disk.len() <= ".vmdk".len()
        || !disk.to_ascii_lowercase().ends_with(".vmdk")
        || disk.starts_with('-')
    {
        return Err(invalid(source, source_vmdk, "not a .vmdk descriptor"));
    }
    check_target_device(target_device)
}

/// Checks a datastore name before it names a folder on a host (the SSH script's
/// `/vmfs/volumes/<datastore>/`, the key line): one path segment of text, no `.`/`..`.
pub fn check_datastore_name(datastore: &str) -> Result<(), EsxiError> {
    let valid = !datastore.is_empty()
        && datastore.len() <= MAX_NAME_BYTES
        && datastore != "."
        && datastore != ".."
        && !datastore.contains('/')
        && datastore.chars().all(is_path_char);
    if valid {
        Ok(())
    } else {
        Err(EsxiError::InvalidArgument {
            what: "datastore name",
            value: datastore.chars().take(200).collect(),
            reason: "a datastore name is one path segment (no '/', '.' or '..') of at most 255 \
                     bytes without control or invisible characters",
        })
    }
}

/// The rules for a clone target: `/vmfs/devices/disks/<device>` naming a whole device.
fn check_target_device(target_device: &str) -> Result<(), EsxiError> {
    let invalid = |reason| EsxiError::InvalidArgument {
        what: "target device",
        value: target_device.chars().take(200).collect(),
        reason,
    };
    let device = target_device
        .strip_prefix("/vmfs/devices/disks/")
        .ok_or_else(|| invalid("path outside /vmfs/devices/disks/"))?;
    let well_formed = !device.is_empty()
        && device.len() <= MAX_NAME_BYTES
        && device.as_bytes()[0].is_ascii_alphanumeric()
        && device
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if !well_formed {
        return Err(invalid(
            "a device name has only letters, digits and . _ : - (naa.…, eui.…, t10.…, mpx.…)",
        ));
    }
    if is_partition(device) {
        return Err(invalid(
            "names a partition (`<device>:<n>`); a clone target is a whole device",
        ));
    }
    Ok(())
}

/// Whether an ESXi device name names a partition: its last `:`-separated part is a number
/// (`naa.…:1`, `mpx.vmhba0:C0:T0:L0:3`); whole devices end in their id or in `L<lun>`.
pub fn is_partition(device: &str) -> bool {
    device
        .rsplit_once(':')
        .is_some_and(|(_, last)| !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
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
    fn legitimate_disk_names_pass_the_client_checks() {
        for source in [
            "/vmfs/volumes/ds 1/vm/a.vmdk",
            "/vmfs/volumes/ds1/Bob's VM/Bob's VM.vmdk",
            "/vmfs/volumes/データストア/仮想マシン/ディスク.vmdk",
            "/vmfs/volumes/ds1/Müller Prüfung/Ünïcödé éà.vmdk",
            "/vmfs/volumes/ds1/no\u{a0}break/wide\u{3000}space.vmdk",
            "/vmfs/volumes/ds1/[web] (prod) {1}/DISK.VMDK",
            "/vmfs/volumes/ds1/a$b`c\"d\\e/x.vmdk",
        ] {
            check_clone_arguments(source, "/vmfs/devices/disks/naa.1")
                .unwrap_or_else(|err| panic!("{source}: {err}"));
        }
        check_clone_arguments(
            "/vmfs/volumes/ds/a.vmdk",
            "/vmfs/devices/disks/mpx.vmhba0:C0:T0:L0",
        )
        .unwrap();
    }

    #[test]
    fn partitions_traversal_invisible_characters_and_overlong_paths_are_refused() {
        let long = format!("/vmfs/volumes/ds/{}.vmdk", "a".repeat(MAX_PATH_BYTES));
        for (source, target) in [
            ("/vmfs/volumes/ds/a.vmdk", "/vmfs/devices/disks/naa.1:1"),
            (
                "/vmfs/volumes/ds/a.vmdk",
                "/vmfs/devices/disks/mpx.vmhba0:C0:T0:L0:3",
            ),
            ("/vmfs/volumes/ds/a.vmdk", "/vmfs/devices/disks/-rf"),
            ("/vmfs/volumes/ds/a.vmdk", "/vmfs/devices/disks/naa 1"),
            ("/vmfs/volumes/ds/./a.vmdk", "/vmfs/devices/disks/naa.1"),
            ("/vmfs/volumes/ds//a.vmdk", "/vmfs/devices/disks/naa.1"),
            ("/vmfs/volumes/a.vmdk", "/vmfs/devices/disks/naa.1"),
            ("/vmfs/volumes/ds/.vmdk", "/vmfs/devices/disks/naa.1"),
            ("/vmfs/volumes/ds/a.vmx", "/vmfs/devices/disks/naa.1"),
            (
                "/vmfs/volumes/ds/\u{202e}kdmv.a",
                "/vmfs/devices/disks/naa.1",
            ),
            (
                "/vmfs/volumes/ds/a\u{2028}b.vmdk",
                "/vmfs/devices/disks/naa.1",
            ),
            (
                "/vmfs/volumes/ds/a\u{200b}b.vmdk",
                "/vmfs/devices/disks/naa.1",
            ),
            (long.as_str(), "/vmfs/devices/disks/naa.1"),
        ] {
            assert!(
                check_clone_arguments(source, target).is_err(),
                "{source} {target}"
            );
        }
    }

    /// Records what would be sent: a unit-test seam for the transport.
    #[derive(Default)]
    struct Recording {
        sent: Mutex<Vec<WrapperCommand>>,
        version: OnceCell<String>,
    }

    #[async_trait]
    impl WrapperTransport for Recording {
        async fn call(&self, command: WrapperCommand) -> Result<String, EsxiError> {
            self.sent.lock().unwrap().push(command);
            Ok(r#"{"taskId": "t1'; reboot; '", "pid": 1, "xcopyUsed": false}"#.into())
        }
        fn version_cache(&self) -> &OnceCell<String> {
            &self.version
        }
    }

    #[tokio::test]
    async fn altered_task_ids_never_reach_a_host() {
        let transport = Recording::default();
        for id in [
            "t1'; reboot; '",
            "../../etc",
            "5D0F3C9E-2B7A-4C61-9E8D-0A1B2C3D4E5F",
            "",
        ] {
            for result in [
                transport.task_status(id).await.map(drop),
                transport.abort(id).await.map(drop),
                transport.clean(id).await,
            ] {
                assert!(
                    matches!(result, Err(EsxiError::InvalidArgument { .. })),
                    "{id:?}: {result:?}"
                );
            }
        }
        assert!(transport.sent.lock().unwrap().is_empty());
        // A wrapper answering a start with a malformed id is not believed either.
        let started = transport
            .start_clone("/vmfs/volumes/ds/a.vmdk", "/vmfs/devices/disks/naa.1", None)
            .await;
        assert!(
            matches!(started, Err(EsxiError::InvalidArgument { .. })),
            "{started:?}"
        );
    }

    #[test]
    fn datastore_names_are_one_clean_segment() {
        for good in ["ds1", "ds 1", "データストア", "Bob's [ds]"] {
            check_datastore_name(good).unwrap_or_else(|err| panic!("{good}: {err}"));
        }
        for bad in ["", ".", "..", "a/b", "a\nb", "\u{202e}sd", &"d".repeat(256)] {
            assert!(check_datastore_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn arguments_with_traversal_or_control_characters_are_refused() {
        for (source, target) in [
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
