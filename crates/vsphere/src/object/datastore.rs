//! Datastores: a datastore as a host mounts it (the devices backing it), and its files through
//! `https://<endpoint>/folder/<path>?dcPath=<dc>&dsName=<ds>` with the session cookie —
//! streaming upload and download (nothing buffered whole) — and deletion through the
//! [`FileManager`].

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use url::Url;

use crate::client::Client;
use crate::decode::Node;
use crate::error::Error;
use crate::types::ManagedObjectReference;

use super::file_manager::FileManager;

/// The datastore a host sees under a name, and the devices backing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatastoreDevice {
    pub datastore: ManagedObjectReference,
    pub name: String,
    /// `xsi:type` of the datastore info (`VmfsDatastoreInfo`, `NasDatastoreInfo`, …).
    pub info_type: String,
    /// Canonical names of the VMFS extents (`naa.…`), in extent order.
    pub extents: Vec<String>,
}

impl DatastoreDevice {
    /// The device of the first VMFS extent.
    pub fn canonical_device(&self) -> Result<&str, Error> {
        self.extents
            .first()
            .map(String::as_str)
            .ok_or_else(|| Error::DatastoreDevice {
                datastore: self.name.clone(),
                reason: format!(
                    "it is not VMFS (info type {:?}); the XCOPY path needs a VMFS datastore on a SAN LUN",
                    self.info_type
                ),
            })
    }

    /// The datastore from its `info` property (`VmfsDatastoreInfo` lists the extents).
    pub(crate) fn from_info(
        datastore: ManagedObjectReference,
        name: &str,
        info: Option<&Node>,
    ) -> Self {
        let info_type = info.and_then(|i| i.xsi_type.clone()).unwrap_or_default();
        let extents = info
            .and_then(|i| i.child("vmfs"))
            .map(|vmfs| {
                vmfs.children_named("extent")
                    .filter_map(|e| e.text_of("diskName").map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            datastore,
            name: name.to_owned(),
            info_type,
            extents,
        }
    }
}

/// The files of a datastore, named as `/folder` URLs name it: by datacenter path and datastore
/// name.
#[derive(Debug, Clone)]
pub struct Datastore {
    client: Client,
    datacenter: String,
    name: String,
}

impl Datastore {
    /// `datacenter`: the datacenter's inventory path (`DC0`, `folder/DC1`).
    pub fn new(client: Client, datacenter: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            client,
            datacenter: datacenter.into(),
            name: name.into(),
        }
    }

    /// `[datastore] path`
    fn file(&self, path: &str) -> String {
        format!("[{}] {path}", self.name)
    }

    /// The `/folder` URL of a file of this datastore.
    pub fn url(&self, path: &str) -> Url {
        let mut url = self.client.transport().sdk_url().clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.clear().push("folder");
            segments.extend(path.trim_start_matches('/').split('/'));
        }
        url.query_pairs_mut()
            .clear()
            .append_pair("dcPath", &self.datacenter)
            .append_pair("dsName", &self.name);
        url
    }

    /// Streams `body` (exactly `len` bytes) into `[datastore] path`, replacing any existing file.
    pub async fn upload(&self, path: &str, body: reqwest::Body, len: u64) -> Result<(), Error> {
        self.transfer("upload", path, |http, url| {
            http.put(url)
                .header(reqwest::header::CONTENT_LENGTH, len)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body)
        })
        .await
        .map(drop)
    }

    /// Streams the content of `[datastore] path`.
    pub async fn download(
        &self,
        path: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, Error>>, Error> {
        let response = self
            .transfer("download", path, |http, url| http.get(url))
            .await?;
        let file = self.file(path);
        Ok(response
            .bytes_stream()
            .map_err(move |e| file_error("download", &file, e))
            .boxed())
    }

    /// Sends one `/folder` request for `path` on the session (one round trip) and checks its
    /// status.
    async fn transfer(
        &self,
        op: &'static str,
        path: &str,
        request: impl FnOnce(&reqwest::Client, Url) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let file = self.file(path);
        let transport = self.client.transport();
        transport.count_round_trip();
        let response = request(transport.http(), self.url(path))
            .send()
            .await
            .map_err(|e| file_error(op, &file, e))?;
        check_status(op, &file, response).await
    }

    /// Deletes `[datastore] path` through the FileManager and waits for the task.
    pub async fn delete(&self, path: &str) -> Result<(), Error> {
        FileManager::of(&self.client)?
            .delete_datastore_file(&self.datacenter, &self.file(path))
            .await
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
