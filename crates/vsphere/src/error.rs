//! The crate's error type: what failed talking to vCenter/ESXi, classified so callers can tell a
//! wrong password from a missing object from a transient server hiccup.

use std::time::Duration;

use crate::decode::DecodeError;

/// A SOAP fault returned by vCenter or ESXi, with the server's message kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// The `faultstring` text (or the `faultMsg` of an esxcli fault).
    pub message: String,
    /// The `xsi:type` (or element name) of the fault detail, e.g. `InvalidLogin`; empty if none.
    pub detail_type: String,
}

/// The fault classes the client reacts to differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    InvalidLogin,
    NotAuthenticated,
    ManagedObjectNotFound,
    InvalidArgument,
    MethodNotFound,
    /// An esxcli/CLI namespace, command or object that does not exist on the host.
    NotFound,
    NoPermission,
    SystemError,
    /// Another named fault we do not treat specially (the type is in `Fault::detail_type`).
    Other,
}

impl FaultKind {
    /// Classifies a fault by its detail type name (without namespace prefix).
    pub fn from_type_name(name: &str) -> FaultKind {
        match name {
            "InvalidLogin" | "InvalidLoginFault" => FaultKind::InvalidLogin,
            "NotAuthenticated" | "NotAuthenticatedFault" => FaultKind::NotAuthenticated,
            "ManagedObjectNotFound" | "ManagedObjectNotFoundFault" => {
                FaultKind::ManagedObjectNotFound
            }
            "InvalidArgument" | "InvalidArgumentFault" | "InvalidRequest" => {
                FaultKind::InvalidArgument
            }
            "MethodNotFound" | "MethodNotFoundFault" => FaultKind::MethodNotFound,
            "NotFound" | "NotFoundFault" | "vim.fault.NotFound" => FaultKind::NotFound,
            "NoPermission" | "NoPermissionFault" => FaultKind::NoPermission,
            "SystemError" | "SystemErrorFault" | "HostCommunication" | "HostCommunicationFault" => {
                FaultKind::SystemError
            }
            _ => FaultKind::Other,
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.detail_type.is_empty(), self.message.is_empty()) {
            (true, _) => write!(f, "{}", self.message),
            (false, true) => write!(f, "{}", self.detail_type),
            (false, false) => write!(f, "{}: {}", self.detail_type, self.message),
        }
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "invalid vSphere endpoint {url:?}: {reason}; give a host name or an https://host/sdk URL"
    )]
    InvalidUrl { url: String, reason: String },

    #[error(
        "TLS setup failed: {0}; check the CA bundle (PEM) or the SHA-256 thumbprint (64 hex digits)"
    )]
    TlsConfig(String),

    #[error(
        "vSphere login as {username:?} was rejected: {fault}; check GOVMOMI_USERNAME/GOVMOMI_PASSWORD"
    )]
    InvalidLogin { username: String, fault: Fault },

    #[error("vSphere call {method} failed: {fault}")]
    Fault { method: String, fault: Fault },

    #[error(
        "vSphere call {method} timed out after {timeout:?}; vCenter/ESXi is slow or unreachable \
         (raise the request timeout if it is merely slow)"
    )]
    Timeout { method: String, timeout: Duration },

    #[error(
        "the certificate of vSphere endpoint {url} is not trusted: {reason}{presented}. Put the CA \
         that issued it in `cacert` (PEM; the provider secret's ca.crt), or pin its SHA-256 \
         thumbprint, or set GOVMOMI_INSECURE=true to skip verification"
    )]
    UntrustedCertificate {
        url: String,
        reason: String,
        /// `"; it presents the certificate with SHA-256 fingerprint …"`, or empty when unknown.
        presented: String,
    },

    #[error("cannot reach vSphere endpoint {url} for {method}: {source}")]
    Http {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("vSphere call {method} returned HTTP {status}: {body}")]
    HttpStatus {
        method: String,
        status: u16,
        body: String,
    },

    #[error("cannot decode the answer to {method}: {source}")]
    Decode {
        method: String,
        #[source]
        source: DecodeError,
    },

    #[error("unexpected answer to {method}: {reason}")]
    Protocol { method: String, reason: String },

    #[error("{what} {id:?} not found{hint}")]
    NotFound {
        what: &'static str,
        id: String,
        hint: String,
    },

    #[error(
        "{what} {id:?} is ambiguous: it matches {candidates:?}; use the managed object id or the full inventory path"
    )]
    Ambiguous {
        what: &'static str,
        id: String,
        candidates: Vec<String>,
    },

    #[error("could not determine the underlying device for datastore {datastore:?}: {reason}")]
    DatastoreDevice { datastore: String, reason: String },

    #[error("no usable storage adapter on host {host} for device {device}: {reason}")]
    NoAdapter {
        host: String,
        device: String,
        reason: String,
    },

    /// A source datastore without a SAN device (NFS) leaves only the host's own SAN adapters to
    /// reach the target array, and the host has none.
    #[error(
        "host {host} has no FC or iSCSI adapter to reach the target array while copying from \
         datastore {datastore:?}, which has no SAN device of its own (adapters found: {found}); \
         enable the host's software iSCSI adapter or connect an FC HBA to the array, or run the copy \
         on another host that mounts the datastore (--migration-host)"
    )]
    NoSanAdapter {
        host: String,
        datastore: String,
        found: String,
    },

    #[error("invalid esxcli command {argv:?}: {reason}")]
    EsxcliUsage { argv: String, reason: String },

    #[error("esxcli {command} failed on host {host}: {message}")]
    Esxcli {
        host: String,
        command: String,
        message: String,
        detail: String,
    },

    #[error(
        "esxcli namespace vmkfstools is unknown to host {host} ({message}): the vmkfstools-wrapper VIB is \
         not installed, or hostd was not restarted after installing it; install the VIB and run \
         /etc/init.d/hostd restart on the host"
    )]
    VibMissing { host: String, message: String },

    #[error("datastore file {op} of {path:?} failed: {reason}")]
    File {
        op: &'static str,
        path: String,
        reason: String,
    },

    #[error("the vSphere session was logged out")]
    LoggedOut,
}

impl Error {
    /// The SOAP fault behind this error, if any.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            Error::Fault { fault, .. } | Error::InvalidLogin { fault, .. } => Some(fault),
            _ => None,
        }
    }

    /// The failure class, the one definition every caller uses: the transport and the server's
    /// transient states (timeouts, unreachable endpoint, HTTP 429/500/502/503/504, a logged-out
    /// session, `SystemError`/`HostCommunication` faults and faults without a cause) pass by
    /// themselves; everything else — refused logins, permissions, missing objects, bad input,
    /// untrusted certificates — needs a person. Whether a failed call may be repeated at once is
    /// a different question: see [`crate::retry::is_transient`].
    pub fn class(&self) -> co_api::contract::ErrorClass {
        use co_api::contract::ErrorClass;
        match self {
            Error::Timeout { .. } | Error::Http { .. } | Error::LoggedOut => ErrorClass::Retryable,
            Error::HttpStatus {
                status: 429 | 500 | 502..=504,
                ..
            } => ErrorClass::Retryable,
            Error::Fault { fault, .. }
                if fault.kind == FaultKind::SystemError
                    || (fault.kind == FaultKind::Other && fault.detail_type.is_empty()) =>
            {
                ErrorClass::Retryable
            }
            _ => ErrorClass::Permanent,
        }
    }

    /// True when the fault class is `kind`.
    pub fn is_fault(&self, kind: FaultKind) -> bool {
        self.fault().is_some_and(|f| f.kind == kind)
    }
}
