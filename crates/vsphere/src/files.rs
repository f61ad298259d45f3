//! Datastore file transfer over `https://<endpoint>/folder/<path>?dcPath=<dc>&dsName=<ds>` with
//! the session cookie: streaming upload and download (nothing buffered whole), and delete through
//! `FileManager.DeleteDatastoreFile_Task`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use tracing::debug;
use url::Url;

use crate::client::{Client, returnval};
use crate::error::Error;
use crate::soap::Request;
use crate::types::ManagedObjectReference;

impl Client {
    /// The `/folder` URL of a datastore file.
    pub fn folder_url(&self, datacenter: &str, datastore: &str, path: &str) -> Url {
        let mut url = self.transport().sdk_url().clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.clear().push("folder");
            segments.extend(path.trim_start_matches('/').split('/'));
        }
        url.query_pairs_mut()
            .clear()
            .append_pair("dcPath", datacenter)
            .append_pair("dsName", datastore);
        url
    }

    /// Streams `body` (exactly `len` bytes) into `[datastore] path`, replacing any existing file.
    pub async fn upload_file(
        &self,
        datacenter: &str,
        datastore: &str,
        path: &str,
        body: reqwest::Body,
        len: u64,
    ) -> Result<(), Error> {
        let url = self.folder_url(datacenter, datastore, path);
        let file = format!("[{datastore}] {path}");
        let transport = self.transport();
        transport.count_round_trip();
        let response = transport
            .http()
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| file_error("upload", &file, e))?;
        check_status("upload", &file, response).await.map(|_| ())
    }

    /// Streams the content of `[datastore] path`.
    pub async fn download_file(
        &self,
        datacenter: &str,
        datastore: &str,
        path: &str,
    ) -> Result<impl Stream<Item = Result<Bytes, Error>> + Send + 'static, Error> {
        let url = self.folder_url(datacenter, datastore, path);
        let file = format!("[{datastore}] {path}");
        let transport = self.transport();
        transport.count_round_trip();
        let response = transport
            .http()
            .get(url)
            .send()
            .await
            .map_err(|e| file_error("download", &file, e))?;
        let response = check_status("download", &file, response).await?;
        Ok(response
            .bytes_stream()
            .map_err(move |e| file_error("download", &file, e)))
    }

    /// Deletes `[datastore] path` through the FileManager and waits for the task.
    pub async fn delete_file(
        &self,
        datacenter: &str,
        datastore: &str,
        path: &str,
    ) -> Result<(), Error> {
        let file_manager =
            self.inner
                .service
                .file_manager
                .clone()
                .ok_or_else(|| Error::Protocol {
                    method: "DeleteDatastoreFile_Task".into(),
                    reason: "the endpoint has no FileManager".into(),
                })?;
        let dc = self.find_datacenter_ref(datacenter).await?;
        let mut req = Request::new("DeleteDatastoreFile_Task", &file_manager).not_idempotent();
        req.text("name", &format!("[{datastore}] {path}"))
            .moref("datacenter", &dc);
        let response = self.call(&req).await?;
        let task = ManagedObjectReference::from_node(returnval(req.method(), &response)?).map_err(
            |source| Error::Decode {
                method: req.method().into(),
                source,
            },
        )?;
        self.wait_for_task(&task).await.map_err(|e| match e {
            Error::Fault { fault, .. } => Error::File {
                op: "delete",
                path: format!("[{datastore}] {path}"),
                reason: fault.to_string(),
            },
            other => other,
        })
    }

    async fn find_datacenter_ref(&self, datacenter: &str) -> Result<ManagedObjectReference, Error> {
        self.find_entity("Datacenter", "datacenter", datacenter)
            .await
    }

    /// Polls a task until it succeeds or fails (the task's fault becomes `Error::Fault`).
    pub async fn wait_for_task(&self, task: &ManagedObjectReference) -> Result<(), Error> {
        let deadline = Instant::now() + self.transport().timeout() * 10;
        let mut delay = Duration::from_millis(50);
        loop {
            let info = self
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
                        fault: crate::error::Fault {
                            kind: crate::error::FaultKind::from_type_name(&detail_type),
                            message,
                            detail_type,
                        },
                    });
                }
                state => {
                    if Instant::now() >= deadline {
                        return Err(Error::Timeout {
                            method: format!("task {} (state {state})", task.value),
                            timeout: self.transport().timeout() * 10,
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

fn file_error(op: &'static str, file: &str, e: reqwest::Error) -> Error {
    Error::File {
        op,
        path: file.to_owned(),
        reason: if e.is_timeout() {
            "timed out (no data within the request timeout)".to_owned()
        } else {
            e.to_string()
        },
    }
}

async fn check_status(
    op: &'static str,
    file: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, Error> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let hint = match status.as_u16() {
        401 | 403 => {
            "; the session lacks the Datastore > Browse / Low level file operations privileges or expired"
        }
        404 => "; check the datacenter, datastore and path",
        _ => "",
    };
    Err(Error::File {
        op,
        path: file.to_owned(),
        reason: format!(
            "HTTP {status}{hint}: {}",
            body.chars().take(300).collect::<String>().trim()
        ),
    })
}
