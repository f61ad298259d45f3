//! Where the journal document lives: a compare-and-swap register of text. [`FileJournalStore`]
//! keeps it in a local file (Kubernetes-less mode), [`KubeJournalStore`] in an annotation of a
//! Kubernetes object (cluster mode: the CR, the target PVC, or a Lease of the copy's own that the
//! store creates on first write), [`JournalBackend`] chooses at run time.

use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use kube::api::{ApiResource, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use sha2::{Digest as _, Sha256};

use co_api::contract::names::JOURNAL_ANNOTATION;

use super::error::JournalError;

/// Field manager recorded for our annotation writes.
const FIELD_MANAGER: &str = "copy-offload-populator";
/// Attempts at a conditional annotation write when other fields of the object keep changing.
const MAX_CONFLICT_RETRIES: u32 = 8;

/// Prefix of the journal Lease's name; the rest is derived from the target volume handle.
pub const JOURNAL_LEASE_PREFIX: &str = "copy-offload-journal-";

/// Name of the Lease holding the journal of the copy onto `volume_handle`: one per target LUN, so
/// every run onto that LUN (retries, a replacement pod) finds the same journal. The handle is
/// hashed because it may hold characters an object name may not.
pub fn journal_lease_name(volume_handle: &str) -> String {
    let digest = Sha256::digest(volume_handle.as_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("{JOURNAL_LEASE_PREFIX}{hex}")
}

/// Where a journal document lives: a compare-and-swap register of text.
pub trait JournalStore: Send + Sync {
    /// Human-readable location, used in errors and logs.
    fn location(&self) -> String;

    /// The stored document, or `None` if nothing was ever written.
    fn read(&self) -> impl Future<Output = Result<Option<String>, JournalError>> + Send;

    /// Replaces the document with `new` if it still is `expected` (`None`: nothing stored);
    /// otherwise fails with [`JournalError::ConcurrentWriter`]. Durable when it returns.
    fn replace(
        &self,
        expected: Option<&str>,
        new: &str,
    ) -> impl Future<Output = Result<(), JournalError>> + Send;
}

/// The journal as a local file (Kubernetes-less mode). One process per file: the compare step
/// and the rename are not atomic across processes.
#[derive(Debug, Clone)]
pub struct FileJournalStore {
    path: PathBuf,
}

impl FileJournalStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            location: self.location(),
            source,
        }
    }

    fn replace_blocking(&self, expected: Option<&str>, new: &str) -> Result<(), JournalError> {
        let current = match std::fs::read_to_string(&self.path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.io_error(e)),
        };
        if current.as_deref() != expected {
            return Err(JournalError::ConcurrentWriter {
                location: self.location(),
            });
        }
        let directory = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&directory).map_err(|e| self.io_error(e))?;
        let mut temporary = tempfile::Builder::new()
            .prefix(&format!(".{}.", self.file_name()))
            .suffix(".tmp")
            .tempfile_in(&directory)
            .map_err(|e| self.io_error(e))?;
        temporary
            .write_all(new.as_bytes())
            .map_err(|e| self.io_error(e))?;
        temporary
            .as_file()
            .sync_all()
            .map_err(|e| self.io_error(e))?;
        temporary
            .persist(&self.path)
            .map_err(|e| self.io_error(e.error))?;
        // The rename is durable only once the directory entry is.
        std::fs::File::open(&directory)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io_error(e))
    }

    fn file_name(&self) -> String {
        self.path.file_name().map_or_else(
            || "journal".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}

impl JournalStore for FileJournalStore {
    fn location(&self) -> String {
        format!("file {}", self.path.display())
    }

    async fn read(&self) -> Result<Option<String>, JournalError> {
        match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_error(e)),
        }
    }

    async fn replace(&self, expected: Option<&str>, new: &str) -> Result<(), JournalError> {
        let (store, expected, new) = (self.clone(), expected.map(str::to_owned), new.to_owned());
        tokio::task::spawn_blocking(move || store.replace_blocking(expected.as_deref(), &new))
            .await
            .map_err(|e| self.io_error(std::io::Error::other(e)))?
    }
}

/// The journal as an annotation on a Kubernetes object (cluster mode).
#[derive(Clone)]
pub struct KubeJournalStore {
    api: Api<DynamicObject>,
    kind: String,
    namespace: String,
    name: String,
    /// `resourceVersion` of the object as last read or written: the precondition of the next write.
    resource_version: Arc<Mutex<Option<String>>>,
    /// The store owns the object and creates it on first write (a journal Lease); otherwise a
    /// missing object is an error.
    creates_object: bool,
}

impl KubeJournalStore {
    /// The journal on the copy's `VSphereXcopyVolumePopulator` CR (the preferred place).
    pub fn on_populator_cr(client: Client, namespace: &str, name: &str) -> Self {
        let resource = ApiResource::erase::<co_api::VSphereXcopyVolumePopulator>(&());
        Self::on_object(client, &resource, namespace, name)
    }

    /// The journal on the target PVC, for copies started without a CR.
    pub fn on_pvc(client: Client, namespace: &str, name: &str) -> Self {
        let resource = ApiResource::erase::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(&());
        Self::on_object(client, &resource, namespace, name)
    }

    /// The journal on a Lease of its own ([`journal_lease_name`]), created on first write: needs
    /// only the lease rights every populator pod has, where the CR or PVC may not be writable.
    pub fn on_journal_lease(client: Client, namespace: &str, volume_handle: &str) -> Self {
        let resource = ApiResource::erase::<k8s_openapi::api::coordination::v1::Lease>(&());
        let mut store = Self::on_object(
            client,
            &resource,
            namespace,
            &journal_lease_name(volume_handle),
        );
        store.creates_object = true;
        store
    }

    /// The journal on any namespaced object.
    pub fn on_object(client: Client, resource: &ApiResource, namespace: &str, name: &str) -> Self {
        Self {
            api: Api::namespaced_with(client, namespace, resource),
            kind: resource.kind.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            resource_version: Arc::new(Mutex::new(None)),
            creates_object: false,
        }
    }

    /// Whether the object exists and carries a journal (a cheap look before choosing a store).
    pub async fn holds_journal(&self) -> Result<bool, JournalError> {
        Ok(self.fetch().await?.is_some())
    }

    /// Creates the object with the journal `document`; `false` if another writer created it first.
    async fn create(&self, document: &str) -> Result<bool, JournalError> {
        let mut object = DynamicObject {
            types: None,
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_owned(),
                        "copy-offload".to_owned(),
                    )]
                    .into(),
                ),
                annotations: Some([(JOURNAL_ANNOTATION.to_owned(), document.to_owned())].into()),
                ..ObjectMeta::default()
            },
            data: serde_json::json!({ "spec": {} }),
        };
        let resource = ApiResource::erase::<k8s_openapi::api::coordination::v1::Lease>(&());
        object.types = Some(kube::api::TypeMeta {
            api_version: resource.api_version,
            kind: resource.kind,
        });
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        match self.api.create(&params, &object).await {
            Ok(created) => {
                self.remember(&created);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(false),
            Err(error) => Err(self.kube_error(error)),
        }
    }

    fn kube_error(&self, source: kube::Error) -> JournalError {
        match &source {
            kube::Error::Api(status) if status.is_not_found() => JournalError::Missing {
                location: self.location(),
            },
            _ => JournalError::Kube {
                location: self.location(),
                source,
            },
        }
    }

    fn remember(&self, object: &DynamicObject) {
        *self
            .resource_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = object.metadata.resource_version.clone();
    }

    async fn fetch(&self) -> Result<Option<String>, JournalError> {
        let object = match self.api.get(&self.name).await {
            Ok(object) => object,
            Err(kube::Error::Api(status)) if self.creates_object && status.is_not_found() => {
                *self
                    .resource_version
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                return Ok(None);
            }
            Err(error) => return Err(self.kube_error(error)),
        };
        self.remember(&object);
        Ok(object
            .metadata
            .annotations
            .and_then(|mut a| a.remove(JOURNAL_ANNOTATION)))
    }
}

impl JournalStore for KubeJournalStore {
    fn location(&self) -> String {
        format!(
            "annotation {JOURNAL_ANNOTATION} on {} {}/{}",
            self.kind, self.namespace, self.name
        )
    }

    async fn read(&self) -> Result<Option<String>, JournalError> {
        self.fetch().await
    }

    async fn replace(&self, expected: Option<&str>, new: &str) -> Result<(), JournalError> {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let version = self
                .resource_version
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let version = match version {
                Some(v) => v,
                None => {
                    if self.fetch().await?.as_deref() != expected {
                        return Err(JournalError::ConcurrentWriter {
                            location: self.location(),
                        });
                    }
                    let absent = self
                        .resource_version
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_none();
                    // Created by this write, or by another writer meanwhile: then read again.
                    if absent && self.creates_object && self.create(new).await? {
                        return Ok(());
                    }
                    continue;
                }
            };
            let patch = serde_json::json!({
                "metadata": { "resourceVersion": version, "annotations": { JOURNAL_ANNOTATION: new } }
            });
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            match self
                .api
                .patch(&self.name, &params, &Patch::Merge(&patch))
                .await
            {
                Ok(object) => {
                    self.remember(&object);
                    return Ok(());
                }
                Err(kube::Error::Api(status)) if status.is_conflict() => {
                    // Someone changed the object since we read it; fine unless it was the journal.
                    if self.fetch().await?.as_deref() != expected {
                        return Err(JournalError::ConcurrentWriter {
                            location: self.location(),
                        });
                    }
                }
                Err(error) => return Err(self.kube_error(error)),
            }
        }
        Err(JournalError::ConcurrentWriter {
            location: self.location(),
        })
    }
}

/// Either store, for callers that choose at run time.
#[derive(Clone)]
pub enum JournalBackend {
    File(FileJournalStore),
    Kube(Box<KubeJournalStore>),
}

impl JournalStore for JournalBackend {
    fn location(&self) -> String {
        match self {
            Self::File(store) => store.location(),
            Self::Kube(store) => store.location(),
        }
    }

    async fn read(&self) -> Result<Option<String>, JournalError> {
        match self {
            Self::File(store) => store.read().await,
            Self::Kube(store) => store.read().await,
        }
    }

    async fn replace(&self, expected: Option<&str>, new: &str) -> Result<(), JournalError> {
        match self {
            Self::File(store) => store.replace(expected, new).await,
            Self::Kube(store) => store.replace(expected, new).await,
        }
    }
}
