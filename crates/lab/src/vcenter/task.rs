//! Task and TaskManager: long-running methods return a `Task` whose `info` moves from `queued` through
//! `running` to `success` (with `result`) or `error` (with `error`); `TaskManager.recentTask` lists them.
//!
//! The work runs on a blocking thread after the method has answered, so a client sees the task before
//! it completes and waits for it the way it would on vCenter (`WaitForUpdatesEx` or polling `info`).
//! Every state change wakes the property collector's waiters.

use std::sync::Arc;

use super::soap::Fault;
use super::value::{Moref, Value, s};
use super::{VcenterState, now_datetime};

/// How many finished tasks `recentTask` keeps, oldest dropped first (vCenter keeps a bounded list too).
const RECENT_TASKS: usize = 200;

/// `TaskInfo.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskState {
    Queued,
    Running,
    Success,
    Error,
}

impl TaskState {
    fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Success => "success",
            TaskState::Error => "error",
        }
    }
}

/// One task as the lab tracks it.
#[derive(Debug, Clone)]
pub(crate) struct TaskRecord {
    pub moid: String,
    /// The method that started it (`SearchDatastore_Task`).
    pub method: &'static str,
    /// vCenter's description id of the operation (`host.DatastoreBrowser.search`).
    pub description_id: &'static str,
    pub entity: Moref,
    pub entity_name: String,
    pub user: String,
    pub state: TaskState,
    pub progress: Option<i32>,
    pub result: Option<Value>,
    pub error: Option<Fault>,
    pub queue_time: String,
    pub start_time: Option<String>,
    pub complete_time: Option<String>,
    pub event_chain_id: i32,
}

/// What a task operates on and what it is, for its `TaskInfo`.
pub(crate) struct TaskSpec {
    pub method: &'static str,
    pub description_id: &'static str,
    pub entity: Moref,
    pub entity_name: String,
}

/// Registers a queued task, answers its reference, and runs `work` on a blocking thread; the task ends
/// in `success` with the value `work` returns or in `error` with its fault.
pub(crate) fn start(
    state: &VcenterState,
    user: &str,
    spec: TaskSpec,
    work: impl FnOnce() -> Result<Value, Fault> + Send + 'static,
) -> Moref {
    let moid = {
        let mut mutable = state.lock();
        mutable.next_id += 1;
        let id = mutable.next_id;
        let moid = format!("task-{id}");
        mutable.tasks.push(TaskRecord {
            moid: moid.clone(),
            method: spec.method,
            description_id: spec.description_id,
            entity: spec.entity,
            entity_name: spec.entity_name,
            user: user.to_owned(),
            state: TaskState::Queued,
            progress: None,
            result: None,
            error: None,
            queue_time: now_datetime(),
            start_time: None,
            complete_time: None,
            event_chain_id: i32::try_from(id).unwrap_or(i32::MAX),
        });
        let finished = mutable
            .tasks
            .iter()
            .filter(|t| matches!(t.state, TaskState::Success | TaskState::Error))
            .count();
        if finished > RECENT_TASKS
            && let Some(oldest) = mutable
                .tasks
                .iter()
                .position(|t| matches!(t.state, TaskState::Success | TaskState::Error))
        {
            mutable.tasks.remove(oldest);
        }
        moid
    };
    state.changed.notify_waiters();
    let owner = state.me.clone();
    let task = moid.clone();
    tokio::spawn(async move {
        let Some(state) = owner.upgrade() else {
            return;
        };
        update(&state, &task, |t| {
            t.state = TaskState::Running;
            t.progress = Some(0);
            t.start_time = Some(now_datetime());
        });
        let outcome = match tokio::task::spawn_blocking(work).await {
            Ok(outcome) => outcome,
            Err(e) => Err(Fault::SystemError(format!("task {task} failed: {e}"))),
        };
        update(&state, &task, |t| {
            t.complete_time = Some(now_datetime());
            match outcome {
                // vCenter reports progress only while a task runs.
                Ok(value) => {
                    t.state = TaskState::Success;
                    t.progress = None;
                    t.result = Some(value);
                }
                Err(fault) => {
                    t.state = TaskState::Error;
                    t.progress = None;
                    t.error = Some(fault);
                }
            }
        });
    });
    Moref::new("Task", moid)
}

fn update(state: &Arc<VcenterState>, moid: &str, change: impl FnOnce(&mut TaskRecord)) {
    if let Some(task) = state.lock().tasks.iter_mut().find(|t| t.moid == moid) {
        change(task);
    }
    state.changed.notify_waiters();
}

fn info(task: &TaskRecord) -> Value {
    let mut fields = vec![
        ("key", s(task.moid.clone())),
        ("task", Value::Ref(Moref::new("Task", task.moid.clone()))),
        ("name", s(task.method)),
        ("descriptionId", s(task.description_id)),
        ("entity", Value::Ref(task.entity.clone())),
        ("entityName", s(task.entity_name.clone())),
        ("state", s(task.state.as_str())),
        ("cancelled", Value::Bool(false)),
        ("cancelable", Value::Bool(false)),
    ];
    if let Some(fault) = &task.error {
        fields.push((
            "error",
            Value::obj(
                "LocalizedMethodFault",
                vec![
                    ("fault", fault.to_value()),
                    ("localizedMessage", s(fault.to_string())),
                ],
            ),
        ));
    }
    if let Some(result) = &task.result {
        fields.push(("result", Value::Any(Box::new(result.clone()))));
    }
    if let Some(progress) = task.progress {
        fields.push(("progress", Value::Int(progress)));
    }
    fields.push((
        "reason",
        Value::obj("TaskReasonUser", vec![("userName", s(task.user.clone()))]),
    ));
    fields.push(("queueTime", Value::DateTime(task.queue_time.clone())));
    if let Some(start) = &task.start_time {
        fields.push(("startTime", Value::DateTime(start.clone())));
    }
    if let Some(complete) = &task.complete_time {
        fields.push(("completeTime", Value::DateTime(complete.clone())));
    }
    fields.push(("eventChainId", Value::Int(task.event_chain_id)));
    Value::obj("TaskInfo", fields)
}

/// Properties of a `Task` (`info`) or of the `TaskManager` (`recentTask`).
pub(super) fn properties(state: &VcenterState, obj: &Moref) -> Option<Vec<(&'static str, Value)>> {
    let mutable = state.lock();
    match obj.kind.as_str() {
        "Task" => {
            let task = mutable.tasks.iter().find(|t| t.moid == obj.value)?;
            Some(vec![("info", info(task))])
        }
        "TaskManager" if obj.value == "TaskManager" => Some(vec![
            (
                "recentTask",
                Value::refs("Task", mutable.tasks.iter().map(|t| t.moid.clone())),
            ),
            ("maxCollector", Value::Int(32)),
        ]),
        _ => None,
    }
}
