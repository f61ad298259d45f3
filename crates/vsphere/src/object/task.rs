//! `Task`: waiting for a task to finish.

use std::time::{Duration, Instant};

use tracing::debug;

use crate::client::Client;
use crate::error::{Error, Fault, FaultKind};
use crate::types::ManagedObjectReference;

/// A task the endpoint runs.
#[derive(Debug, Clone)]
pub struct Task {
    client: Client,
    moref: ManagedObjectReference,
}

impl Task {
    pub fn new(client: Client, moref: ManagedObjectReference) -> Self {
        Self { client, moref }
    }

    /// Polls the task until it succeeds or fails (the task's fault becomes `Error::Fault`), for
    /// at most ten request timeouts.
    pub async fn wait(&self) -> Result<(), Error> {
        let task = &self.moref;
        let limit = self.client.transport().timeout() * 10;
        let deadline = Instant::now() + limit;
        let mut delay = Duration::from_millis(50);
        loop {
            let info = self
                .client
                .retrieve_one(task, &["info.state", "info.error"])
                .await?;
            match info.text("info.state").unwrap_or_default() {
                "success" => return Ok(()),
                "error" => {
                    let err = info.prop("info.error");
                    let detail_type = err
                        .and_then(|e| e.child("fault"))
                        .and_then(|f| f.xsi_type.clone())
                        .unwrap_or_default();
                    let message = err
                        .and_then(|e| e.text_of("localizedMessage"))
                        .unwrap_or_default()
                        .to_owned();
                    return Err(Error::Fault {
                        method: format!("task {}", task.value),
                        fault: Fault {
                            kind: FaultKind::from_type_name(&detail_type),
                            message,
                            detail_type,
                        },
                    });
                }
                state => {
                    if Instant::now() >= deadline {
                        return Err(Error::Timeout {
                            method: format!("task {} (state {state})", task.value),
                            timeout: limit,
                        });
                    }
                    debug!(task = %task, state, "waiting for task");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}
