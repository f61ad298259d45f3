//! `FileManager`: deleting datastore files.

use crate::client::{Client, returnval};
use crate::error::Error;
use crate::soap::Request;
use crate::types::ManagedObjectReference;

use super::task::Task;

/// The endpoint's file manager.
#[derive(Debug, Clone)]
pub struct FileManager {
    client: Client,
    moref: ManagedObjectReference,
}

impl FileManager {
    /// The file manager the endpoint's service content names.
    pub fn of(client: &Client) -> Result<Self, Error> {
        let moref = client
            .service_content()
            .file_manager
            .clone()
            .ok_or_else(|| Error::Protocol {
                method: "DeleteDatastoreFile_Task".into(),
                reason: "the endpoint has no FileManager".into(),
            })?;
        Ok(Self {
            client: client.clone(),
            moref,
        })
    }

    /// `DeleteDatastoreFile_Task` of `file` (`[datastore] path`) in the datacenter at inventory
    /// path `datacenter`, waiting for the task.
    pub async fn delete_datastore_file(&self, datacenter: &str, file: &str) -> Result<(), Error> {
        let dc = self
            .client
            .find_entity("Datacenter", "datacenter", datacenter)
            .await?;
        let mut req = Request::new("DeleteDatastoreFile_Task", &self.moref).not_idempotent();
        req.text("name", file).moref("datacenter", &dc);
        let response = self.client.call(&req).await?;
        let task = ManagedObjectReference::from_node(returnval(req.method(), &response)?).map_err(
            |source| Error::Decode {
                method: req.method().into(),
                source,
            },
        )?;
        Task::new(self.client.clone(), task)
            .wait()
            .await
            .map_err(|e| match e {
                Error::Fault { fault, .. } => Error::File {
                    op: "delete",
                    path: file.to_owned(),
                    reason: fault.to_string(),
                },
                other => other,
            })
    }
}
