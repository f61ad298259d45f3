//! `CopyError`: every way one copy can fail, each naming the phase, the cause and what to do.
//! Its [`ErrorClass`] comes from the library error underneath (each library classifies its own
//! errors once) and the exit code is a flat map of the class, so the controller can tell "fix it"
//! from "try again" (upstream exited 255 for everything).

use co_api::contract::ErrorClass;
use co_esxi::EsxiError;
use co_storage::StorageError;

use crate::exit::ExitCode;
use crate::journal::{CleanupStep, JournalError};
use crate::lease::LeaseError;

/// One cleanup step that could not be undone, and why; it stays in the journal.
#[derive(Debug)]
pub struct CleanupFailure {
    pub step: CleanupStep,
    pub error: CopyError,
}

impl std::fmt::Display for CleanupFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.error)
    }
}

/// Cleanup failures as one error; its class is retryable only if every failure is.
#[derive(Debug)]
pub struct CleanupFailures(pub Vec<CleanupFailure>);

impl std::fmt::Display for CleanupFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("; "))
    }
}

impl CleanupFailures {
    fn class(&self) -> ErrorClass {
        if self
            .0
            .iter()
            .all(|failure| failure.error.class() == ErrorClass::Retryable)
        {
            ErrorClass::Retryable
        } else {
            ErrorClass::Permanent
        }
    }
}

/// A failed copy.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The target could not be resolved to a PersistentVolume (bad file, PVC not bound, …).
    #[error("cannot find the target volume: {message}")]
    Target { message: String, retryable: bool },

    #[error("vSphere {action} failed: {source}")]
    Vsphere {
        action: &'static str,
        #[source]
        source: Box<co_vsphere::Error>,
    },

    #[error("storage array: {action} failed: {source}")]
    Storage {
        action: &'static str,
        #[source]
        source: Box<StorageError>,
    },

    #[error("ESXi host {host}: {action} failed: {source}")]
    Esxi {
        host: String,
        action: &'static str,
        #[source]
        source: Box<EsxiError>,
    },

    /// The disk cannot be copied as configured (wrong size, unsupported disk, …).
    #[error("{0}")]
    Refused(String),

    /// The device the host shows is not provably the resolved volume: nothing was written.
    #[error(
        "refusing to clone onto {device} on host {host}: {reason}. Nothing was written to it; check that the \
         PersistentVolume's volume handle names the right array volume"
    )]
    WrongDevice {
        host: String,
        device: String,
        reason: String,
    },

    #[error(
        "the device {device} did not appear on host {host} within {waited_s} s after rescanning adapters {adapters:?}; \
         check that the host's initiators can reach the array (iSCSI targets, FC zoning) and Disk.MaxLUN"
    )]
    DeviceNotVisible {
        host: String,
        device: String,
        adapters: Vec<String>,
        waited_s: u64,
    },

    #[error("host lease: {0}")]
    Lease(#[from] LeaseError),

    #[error("copy journal: {0}")]
    Journal(#[from] JournalError),

    /// Changes this run or an earlier one made could not be undone; they stay in the journal.
    #[error(
        "changes could not be undone ({0}); they stay in the copy journal and the next run undoes them \
         first. If the cause is not transient, fix it, or undo them by hand as the journal lists and \
         remove the journal"
    )]
    Recovery(CleanupFailures),

    /// An earlier run (wrapper older than 1.1.0) died between starting a clone and learning its
    /// task id, and the device it clones onto cannot be detached: the clone may still write.
    #[error(
        "an earlier run started a clone onto device {device} on host {host} but died before learning \
         its task id (the host's vmkfstools wrapper is older than 1.1.0), and the device cannot be \
         detached ({reason}): that clone may still be writing to it. This run changed nothing and \
         started no second clone. Re-run once that clone has ended (it ends by itself when its copy \
         completes), or stop the vmkfstools process cloning onto {device} on the host first; upgrade \
         the vmkfstools-wrapper VIB to 1.1.0 or later so every clone is named before it starts"
    )]
    UnnamedCloneRunning {
        host: String,
        device: String,
        reason: String,
    },

    #[error("the copy was cancelled (SIGTERM/SIGINT); everything it changed was cleaned up")]
    Cancelled,

    #[error("Kubernetes API: {action} failed: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
}

impl CopyError {
    pub(crate) fn vsphere(action: &'static str) -> impl FnOnce(co_vsphere::Error) -> Self {
        move |source| CopyError::Vsphere {
            action,
            source: Box::new(source),
        }
    }

    pub(crate) fn storage(action: &'static str) -> impl FnOnce(StorageError) -> Self {
        move |source| CopyError::Storage {
            action,
            source: Box::new(source),
        }
    }

    pub(crate) fn esxi(host: &str, action: &'static str) -> impl FnOnce(EsxiError) -> Self {
        let host = host.to_owned();
        move |source| match source {
            EsxiError::Cancelled { .. } => CopyError::Cancelled,
            source => CopyError::Esxi {
                host,
                action,
                source: Box::new(source),
            },
        }
    }

    /// The class of this failure, from the error underneath.
    pub fn class(&self) -> ErrorClass {
        match self {
            CopyError::Target { retryable, .. } => {
                if *retryable {
                    ErrorClass::Retryable
                } else {
                    ErrorClass::Permanent
                }
            }
            CopyError::Vsphere { source, .. } => source.class(),
            CopyError::Storage { source, .. } => source.class(),
            CopyError::Esxi { source, .. } => source.class(),
            CopyError::Refused(_) | CopyError::WrongDevice { .. } => ErrorClass::Permanent,
            CopyError::DeviceNotVisible { .. } => ErrorClass::Retryable,
            CopyError::Lease(error) => error.class(),
            CopyError::Journal(error) => error.class(),
            CopyError::Recovery(failures) => failures.class(),
            // The clone ends by itself (its copy completes or fails), after which a re-run can
            // detach the device and go on: transient, no configuration to fix.
            CopyError::UnnamedCloneRunning { .. } => ErrorClass::Retryable,
            CopyError::Cancelled => ErrorClass::Cancelled,
            CopyError::Kube { source, .. } => match source {
                kube::Error::Api(status) if status.code == 401 || status.code == 403 => {
                    ErrorClass::Permanent
                }
                _ => ErrorClass::Retryable,
            },
        }
    }

    /// The process exit code: a flat map of [`CopyError::class`].
    pub fn exit_code(&self) -> ExitCode {
        self.class().exit_code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_separate_fix_it_from_try_again() {
        let wrong = CopyError::WrongDevice {
            host: "h".into(),
            device: "naa.1".into(),
            reason: "r".into(),
        };
        assert_eq!(wrong.exit_code(), ExitCode::Permanent);
        let unavailable = CopyError::Storage {
            action: "map",
            source: Box::new(StorageError::Unavailable {
                operation: "POST".into(),
                status: 503,
                attempts: 3,
                message: "busy".into(),
            }),
        };
        assert_eq!(unavailable.exit_code(), ExitCode::Retryable);
        let refused = CopyError::Storage {
            action: "login",
            source: Box::new(StorageError::AuthRefused {
                endpoint: "a".into(),
                status: 401,
            }),
        };
        assert_eq!(refused.exit_code(), ExitCode::Permanent);
        assert_eq!(CopyError::Cancelled.exit_code(), ExitCode::Cancelled);
        let timeout = CopyError::Vsphere {
            action: "login",
            source: Box::new(co_vsphere::Error::Timeout {
                method: "Login".into(),
                timeout: std::time::Duration::from_secs(1),
            }),
        };
        assert_eq!(timeout.exit_code(), ExitCode::Retryable);
        let cancelled = CopyError::esxi("h", "clone")(EsxiError::Cancelled {
            task_id: "t".into(),
        });
        assert!(matches!(cancelled, CopyError::Cancelled));
    }
}
