//! `ensure_wrapper_script`: the SSH wrapper on the datastore is read back and compared by SHA-256
//! before anything runs it; missing, stale or altered copies are replaced. The datastore transfer
//! is the seam (in production the vSphere `/folder` endpoint); here it is a directory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use co_esxi::EsxiError;
use co_esxi::assets::{SSH_WRAPPER, SSH_WRAPPER_FILE_NAME};
use co_esxi::ssh::{DatastoreFiles, ScriptPlacement, ensure_wrapper_script};

struct DirectoryDatastore {
    root: PathBuf,
    uploads: AtomicUsize,
    /// Simulates a datastore that silently keeps the old content.
    ignore_writes: bool,
}

impl DirectoryDatastore {
    fn path(&self, datastore: &str, path: &str) -> PathBuf {
        self.root.join(datastore).join(path)
    }
}

#[async_trait]
impl DatastoreFiles for DirectoryDatastore {
    async fn download(&self, datastore: &str, path: &str) -> Result<Option<Vec<u8>>, EsxiError> {
        Ok(std::fs::read(self.path(datastore, path)).ok())
    }

    async fn upload(&self, datastore: &str, path: &str, body: Vec<u8>) -> Result<(), EsxiError> {
        self.uploads.fetch_add(1, Ordering::SeqCst);
        if !self.ignore_writes {
            std::fs::create_dir_all(self.root.join(datastore)).unwrap();
            std::fs::write(self.path(datastore, path), body).unwrap();
        }
        Ok(())
    }
}

fn datastore(ignore_writes: bool) -> (tempfile::TempDir, DirectoryDatastore) {
    let dir = tempfile::tempdir().unwrap();
    let files = DirectoryDatastore {
        root: dir.path().to_owned(),
        uploads: AtomicUsize::new(0),
        ignore_writes,
    };
    (dir, files)
}

#[tokio::test]
async fn uploads_when_missing_and_skips_when_verified() {
    let (_dir, files) = datastore(false);
    assert_eq!(
        ensure_wrapper_script(&files, "ds 1").await.unwrap(),
        ScriptPlacement::Uploaded
    );
    assert_eq!(
        std::fs::read_to_string(files.path("ds 1", SSH_WRAPPER_FILE_NAME)).unwrap(),
        SSH_WRAPPER
    );
    assert_eq!(
        ensure_wrapper_script(&files, "ds 1").await.unwrap(),
        ScriptPlacement::AlreadyCurrent
    );
    assert_eq!(files.uploads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn altered_or_old_scripts_are_replaced() {
    let (_dir, files) = datastore(false);
    std::fs::create_dir_all(files.root.join("ds1")).unwrap();
    let tampered = SSH_WRAPPER.replacen("def main():", "def main():\n    os.system('id')", 1);
    std::fs::write(files.path("ds1", SSH_WRAPPER_FILE_NAME), tampered).unwrap();
    assert_eq!(
        ensure_wrapper_script(&files, "ds1").await.unwrap(),
        ScriptPlacement::Uploaded
    );
    assert_eq!(
        std::fs::read_to_string(files.path("ds1", SSH_WRAPPER_FILE_NAME)).unwrap(),
        SSH_WRAPPER
    );
}

#[tokio::test]
async fn a_copy_that_cannot_be_verified_is_an_error() {
    let (_dir, files) = datastore(true);
    let err = ensure_wrapper_script(&files, "ds1").await.unwrap_err();
    assert!(matches!(err, EsxiError::ScriptUnverified { .. }), "{err}");
    assert!(err.to_string().contains("could not be verified"));
}

/// The production seam against vcsim's datastore `/folder` endpoint.
#[tokio::test]
async fn vcsim_datastore_receives_and_verifies_the_wrapper() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = co_testpeers::Vcsim::start()
        .expect("vcsim (install it with `scripts/peers.sh install vcsim`)");
    let mut config = co_vsphere::ClientConfig::new(
        &sim.url,
        &sim.username,
        co_vsphere::Secret::new(sim.password.clone()),
    );
    config.trust = co_vsphere::TlsTrust::Verify {
        extra_ca_pem: Some(sim.ca_pem.clone()),
    };
    let client = co_vsphere::Client::login(config).await.unwrap();
    let files = co_esxi::vsphere::DatacenterFiles::new(client.clone(), "DC0");

    assert_eq!(
        files
            .download("LocalDS_0", SSH_WRAPPER_FILE_NAME)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        ensure_wrapper_script(&files, "LocalDS_0").await.unwrap(),
        ScriptPlacement::Uploaded
    );
    assert_eq!(
        ensure_wrapper_script(&files, "LocalDS_0").await.unwrap(),
        ScriptPlacement::AlreadyCurrent
    );
    let stored = files
        .download("LocalDS_0", SSH_WRAPPER_FILE_NAME)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        co_esxi::assets::sha256_hex(&stored),
        co_esxi::assets::ssh_wrapper_sha256()
    );
}

/// A datastore whose upload is not atomic, like the `/folder` endpoint: while one writer is
/// mid-upload, readers see a truncated file or a broken transfer.
#[derive(Default)]
struct RacyDatastore {
    content: std::sync::Mutex<Option<Vec<u8>>>,
    writers: AtomicUsize,
}

#[async_trait]
impl DatastoreFiles for RacyDatastore {
    async fn download(&self, datastore: &str, path: &str) -> Result<Option<Vec<u8>>, EsxiError> {
        if self.writers.load(Ordering::SeqCst) > 0 {
            return Err(EsxiError::DatastoreTransfer {
                datastore: datastore.to_owned(),
                path: path.to_owned(),
                message: "error decoding response body".into(),
            });
        }
        Ok(self.content.lock().unwrap().clone())
    }

    async fn upload(&self, _datastore: &str, _path: &str, body: Vec<u8>) -> Result<(), EsxiError> {
        self.writers.fetch_add(1, Ordering::SeqCst);
        *self.content.lock().unwrap() = Some(body[..body.len() / 2].to_vec());
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        *self.content.lock().unwrap() = Some(body);
        self.writers.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Populators copying several disks of one datastore place the script at the same time: every
/// one of them ends with a verified script, none fails on another's half-written upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_placements_all_end_verified() {
    let files = std::sync::Arc::new(RacyDatastore::default());
    let placements: Vec<_> = (0..8)
        .map(|_| {
            let files = files.clone();
            tokio::spawn(async move { ensure_wrapper_script(files.as_ref(), "ds1").await })
        })
        .collect();
    for placement in placements {
        placement.await.unwrap().unwrap();
    }
    assert_eq!(
        files.content.lock().unwrap().as_deref(),
        Some(SSH_WRAPPER.as_bytes())
    );
}
