//! `StorageError`: every way a storage-array operation can fail, each with a message that says what
//! failed, why, and what the user can do, and a [`ErrorClass`] so the populator can pick an exit
//! code that tells the controller whether retrying can help.

use std::time::Duration;

pub use co_api::contract::ErrorClass;

/// A failed storage-array operation.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The configuration given to the plugin (secret keys, env) cannot work.
    #[error("invalid storage configuration: {message}")]
    Config { message: String },

    /// The array answered 401/403 to the credentials.
    #[error(
        "{endpoint} refused the storage credentials (HTTP {status}); check STORAGE_USERNAME and \
         STORAGE_PASSWORD (or STORAGE_TOKEN) in the storage secret and that the account may use the REST API"
    )]
    AuthRefused { endpoint: String, status: u16 },

    /// The TLS handshake failed, almost always because the array's certificate is not trusted.
    #[error(
        "TLS connection to {endpoint} failed: {detail}; put the array's CA certificate (PEM) in \
         STORAGE_CA_CERT in the storage secret, or set STORAGE_SKIP_SSL_VERIFICATION=true to accept any certificate"
    )]
    Tls { endpoint: String, detail: String },

    /// The array could not be reached (connection refused, DNS, timeout).
    #[error(
        "cannot reach the storage array at {endpoint}: {detail}; check STORAGE_HOSTNAME, network \
         policies and the array's management interface (timeout {timeout:?}, STORAGE_HTTP_TIMEOUT_SECONDS)"
    )]
    Unreachable {
        endpoint: String,
        detail: String,
        timeout: Duration,
    },

    /// The array stayed overloaded or failing (5xx/429) through every retry.
    #[error("{operation} failed: the array answered HTTP {status} {attempts} time(s): {message}")]
    Unavailable {
        operation: String,
        status: u16,
        attempts: u32,
        message: String,
    },

    /// A named array object does not exist.
    #[error("{what} not found: {hint}")]
    NotFound { what: String, hint: String },

    /// The array refused a request (4xx other than auth) for a reason retrying cannot change.
    #[error("{operation} was rejected by the array (HTTP {status}): {message}")]
    Rejected {
        operation: String,
        status: u16,
        message: String,
    },

    /// The array answered with something the plugin cannot interpret.
    #[error("{operation}: unexpected answer from the array: {message}")]
    Protocol { operation: String, message: String },

    /// The array or plugin cannot do what was asked (e.g. an initiator type it has no object for).
    #[error("{message}")]
    Unsupported { message: String },
}

impl StorageError {
    /// Permanent (wrong configuration, refused credentials, missing objects, requests the array
    /// rejects: the same answer until a person fixes something) or retryable (timeouts,
    /// unreachable endpoints, overloaded arrays after bounded retries).
    pub fn class(&self) -> ErrorClass {
        match self {
            StorageError::Unreachable { .. } | StorageError::Unavailable { .. } => {
                ErrorClass::Retryable
            }
            StorageError::Config { .. }
            | StorageError::AuthRefused { .. }
            | StorageError::Tls { .. }
            | StorageError::NotFound { .. }
            | StorageError::Rejected { .. }
            | StorageError::Protocol { .. }
            | StorageError::Unsupported { .. } => ErrorClass::Permanent,
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        StorageError::Config {
            message: message.into(),
        }
    }

    pub(crate) fn protocol(operation: impl Into<String>, message: impl Into<String>) -> Self {
        StorageError::Protocol {
            operation: operation.into(),
            message: message.into(),
        }
    }

    pub(crate) fn not_found(what: impl Into<String>, hint: impl Into<String>) -> Self {
        StorageError::NotFound {
            what: what.into(),
            hint: hint.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_retryable_and_the_rest_permanent() {
        let unreachable = StorageError::Unreachable {
            endpoint: "https://a/api".into(),
            detail: "connection refused".into(),
            timeout: Duration::from_secs(60),
        };
        let unavailable = StorageError::Unavailable {
            operation: "GET /api/cluster".into(),
            status: 503,
            attempts: 5,
            message: "busy".into(),
        };
        assert_eq!(unreachable.class(), ErrorClass::Retryable);
        assert_eq!(unavailable.class(), ErrorClass::Retryable);
        let auth = StorageError::AuthRefused {
            endpoint: "https://a/api".into(),
            status: 401,
        };
        assert_eq!(auth.class(), ErrorClass::Permanent);
        assert_eq!(StorageError::config("x").class(), ErrorClass::Permanent);
        assert_eq!(
            StorageError::not_found("LUN", "h").class(),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn messages_tell_the_user_what_to_do() {
        let auth = StorageError::AuthRefused {
            endpoint: "https://a/api".into(),
            status: 401,
        };
        assert!(auth.to_string().contains("STORAGE_USERNAME"));
        let tls = StorageError::Tls {
            endpoint: "https://a/api".into(),
            detail: "unknown issuer".into(),
        };
        assert!(
            tls.to_string()
                .contains("STORAGE_SKIP_SSL_VERIFICATION=true")
        );
        assert!(tls.to_string().contains("STORAGE_CA_CERT"));
        let unreachable = StorageError::Unreachable {
            endpoint: "https://a/api".into(),
            detail: "timed out".into(),
            timeout: Duration::from_secs(5),
        };
        assert!(
            unreachable
                .to_string()
                .contains("STORAGE_HTTP_TIMEOUT_SECONDS")
        );
    }
}
