//! How reading or writing the journal fails, and the class of each failure.

use super::entry::{FORMAT_VERSION, MAX_JOURNAL_BYTES};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot read or write the copy journal {location}")]
    Io {
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the Kubernetes API refused access to the copy journal {location}; check that the populator may get and patch that object"
    )]
    Kube {
        location: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "{location} does not exist; the copy journal needs it (was it deleted while the copy ran?)"
    )]
    Missing { location: String },
    #[error(
        "the copy journal {location} is unreadable ({reason}); it may have been edited by hand. Nothing was \
         changed. Inspect it, undo what it lists on the array and the ESXi host by hand, then delete it (or \
         the annotation) to start over"
    )]
    Corrupt { location: String, reason: String },
    #[error(
        "the copy journal {location} has format version {found}, newer than this build understands ({FORMAT_VERSION}); run a newer copy-offload"
    )]
    UnsupportedVersion { location: String, found: u32 },
    #[error(
        "another process changed the copy journal {location} while this run was using it; two populators must not work on \
         the same disk, stop one of them"
    )]
    ConcurrentWriter { location: String },
    #[error(
        "the copy journal {location} would grow beyond {MAX_JOURNAL_BYTES} bytes with {outstanding} changes still to \
         undo, far more than one copy makes. Re-running will not help: inspect it, undo what it lists on the array \
         and the ESXi host by hand, then delete it (or the annotation) to start over"
    )]
    TooLarge {
        location: String,
        outstanding: usize,
    },
}

impl JournalError {
    /// The failure class: only I/O and API trouble can pass by themselves.
    pub fn class(&self) -> co_api::contract::ErrorClass {
        use co_api::contract::ErrorClass;
        match self {
            JournalError::Io { .. } => ErrorClass::Retryable,
            JournalError::Kube { source, .. } => match source {
                kube::Error::Api(status) if matches!(status.code, 401 | 403 | 404 | 422) => {
                    ErrorClass::Permanent
                }
                _ => ErrorClass::Retryable,
            },
            JournalError::ConcurrentWriter { .. } => ErrorClass::Retryable,
            JournalError::Missing { .. }
            | JournalError::Corrupt { .. }
            | JournalError::UnsupportedVersion { .. }
            | JournalError::TooLarge { .. } => ErrorClass::Permanent,
        }
    }
}
