//! `CopyError`: every way one copy can fail, each naming the phase, the cause and what to do, and
//! each mapped to an [`ExitCode`] class so the controller can tell "fix it" from "try again"
//! (upstream exited 255 for everything, core.md W15).

use co_esxi::EsxiError;
use co_storage::{ErrorClass, StorageError};

use crate::exit::ExitCode;
use crate::journal::JournalError;
use crate::lease::LeaseError;

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

    /// An earlier run left work that this run could not undo; starting over could hit it.
    #[error(
        "an earlier run left changes that could not be undone ({0}); fix the cause, or undo them by hand as \
         the journal lists, before re-running"
    )]
    Recovery(String),

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

    /// The exit code class of this failure.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CopyError::Target { retryable, .. } => {
                if *retryable {
                    ExitCode::Retryable
                } else {
                    ExitCode::Permanent
                }
            }
            CopyError::Vsphere { source, .. } => vsphere_class(source),
            CopyError::Storage { source, .. } => match source.class() {
                ErrorClass::Permanent => ExitCode::Permanent,
                ErrorClass::Retryable => ExitCode::Retryable,
            },
            CopyError::Esxi { source, .. } => esxi_class(source),
            CopyError::Refused(_) | CopyError::WrongDevice { .. } => ExitCode::Permanent,
            CopyError::DeviceNotVisible { .. } => ExitCode::Retryable,
            CopyError::Lease(error) => match error {
                LeaseError::Cancelled { .. } => ExitCode::Cancelled,
                LeaseError::InvalidHostId { .. }
                | LeaseError::InvalidSetting { .. }
                | LeaseError::Refused { .. } => ExitCode::Permanent,
                _ => ExitCode::Retryable,
            },
            CopyError::Journal(error) => match error {
                JournalError::Io { .. } | JournalError::Kube { .. } => ExitCode::Retryable,
                _ => ExitCode::Permanent,
            },
            CopyError::Recovery(_) => ExitCode::Retryable,
            // The clone ends by itself (its copy completes or fails), after which a re-run can
            // detach the device and go on: transient, no configuration to fix.
            CopyError::UnnamedCloneRunning { .. } => ExitCode::Retryable,
            CopyError::Cancelled => ExitCode::Cancelled,
            CopyError::Kube { source, .. } => match source {
                kube::Error::Api(status) if status.code == 401 || status.code == 403 => {
                    ExitCode::Permanent
                }
                _ => ExitCode::Retryable,
            },
        }
    }
}

fn vsphere_class(error: &co_vsphere::Error) -> ExitCode {
    use co_vsphere::Error as E;
    match error {
        E::Timeout { .. } | E::Http { .. } | E::HttpStatus { .. } | E::LoggedOut => {
            ExitCode::Retryable
        }
        E::Fault { fault, .. } if fault.kind == co_vsphere::FaultKind::SystemError => {
            ExitCode::Retryable
        }
        _ => ExitCode::Permanent,
    }
}

fn esxi_class(error: &EsxiError) -> ExitCode {
    match error {
        EsxiError::Cancelled { .. } => ExitCode::Cancelled,
        EsxiError::DatastoreTransfer { .. } => ExitCode::Retryable,
        EsxiError::HostKeyRecord { transient, .. } if *transient => ExitCode::Retryable,
        err if err.is_transport_fault() => ExitCode::Retryable,
        _ => ExitCode::Permanent,
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
