//! Errors of the ESXi side, with messages an administrator can act on.

use crate::protocol::ProtocolError;

#[derive(Debug, thiserror::Error)]
pub enum EsxiError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("ESXi wrapper operation {operation} failed with status {status}: {message}")]
    OperationFailed {
        operation: &'static str,
        status: i32,
        message: String,
    },
    #[error("clone task {task_id} failed with exit code {exit_code}, stderr: {std_err}")]
    CloneFailed {
        task_id: String,
        exit_code: i32,
        std_err: String,
    },
    #[error("clone task {task_id} cancelled; the clone was aborted on the host")]
    Cancelled { task_id: String },
    #[error("refusing to send {what} {value:?} to ESXi: {reason}")]
    InvalidArgument {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("esxcli {command} failed on host {host}: {message}")]
    Esxcli {
        host: String,
        command: String,
        message: String,
    },
    #[error(
        "esxcli {command} on host {host} did not get through vCenter: {message}; vCenter or the \
         host did not answer, a repeated read may succeed"
    )]
    EsxcliTransport {
        host: String,
        command: String,
        message: String,
    },
    #[error(
        "manual SSH key configuration required for ESXi host {host}: the copy-offload key was not \
         accepted; the log contains the exact authorized_keys line for datastore {datastore} and the steps"
    )]
    KeyNotAccepted { host: String, datastore: String },
    #[error(
        "SSH host key of {host} does not match {trusted_in}: the host presented {actual}, the \
         trusted key is {expected}. Nothing was sent to the host. If the host was re-installed \
         (new host key), {retrust}; otherwise investigate a possible man-in-the-middle"
    )]
    HostKeyMismatch {
        host: String,
        /// Fingerprints (SHA256:…) of the trusted keys.
        expected: String,
        /// Fingerprint of the key the host presented.
        actual: String,
        /// Where the trusted key lives.
        trusted_in: String,
        /// How to trust a re-installed host's new key.
        retrust: String,
    },
    #[error(
        "SSH host key {actual} of {host} is not trusted: {reason}. Nothing was sent to the host; \
         {remedy}"
    )]
    HostKeyUntrusted {
        host: String,
        actual: String,
        reason: String,
        remedy: String,
    },
    #[error(
        "cannot check the SSH host key of {host} against {record}: {message}. Nothing was sent to \
         the host"
    )]
    HostKeyRecord {
        host: String,
        record: String,
        message: String,
        /// Repeating later may succeed.
        transient: bool,
    },
    #[error("vCenter inventory lookup failed ({what}): {message}")]
    Inventory { what: &'static str, message: String },
    #[error("SSH key authentication as root was rejected by {host}")]
    AuthRejected { host: String },
    #[error("SSH to {host} failed: {message}")]
    Ssh { host: String, message: String },
    #[error("{what} on {host} timed out after {seconds} s (SSH_TIMEOUT_SECONDS)")]
    Timeout {
        host: String,
        what: String,
        seconds: u64,
    },
    #[error("invalid SSH configuration: {0}")]
    SshConfig(String),
    #[error(
        "the wrapper script on datastore {datastore} could not be verified (sha-256 {actual}, \
         expected {expected}) even after uploading it; check datastore permissions and free space"
    )]
    ScriptUnverified {
        datastore: String,
        expected: String,
        actual: String,
    },
    #[error("datastore file transfer failed for [{datastore}] {path}: {message}")]
    DatastoreTransfer {
        datastore: String,
        path: String,
        message: String,
    },
    #[error(
        "ESXi host {host} runs wrapper version {found}, expected {expected}: its key line points at \
         another script; replace the line with: {key_line}"
    )]
    WrapperVersionMismatch {
        host: String,
        found: String,
        expected: &'static str,
        key_line: String,
    },
    #[error(
        "the ESXi wrapper on the host reports version {version:?}, which cannot take a \
         client-chosen clone task id (needs 1.1.0 or later); the id was not sent. Upgrade the \
         vmkfstools-wrapper VIB, or start the clone without an id"
    )]
    ClientTaskIdUnsupported { version: String },
    /// The host answered the probe reply to a direct request: its key line is Forklift's routing
    /// line, and this connection was opened without detecting it (`SshExecutor::prepare` does).
    #[error(
        "the host answers {reply:?} instead of the wrapper envelope: its key line is Forklift's \
         DS=…;CMD=… routing line, which this connection was not prepared for; copy-offload's line \
         is: {key_line}"
    )]
    LegacyKeyLine { reply: String, key_line: String },
    #[error(
        "ESXi host {host} carries Forklift's key line, which cannot run the wrapper on datastore \
         {datastore:?}: {reason}. Replace that line in /etc/ssh/keys-root/authorized_keys with \
         copy-offload's: {key_line}"
    )]
    DatastoreNotRoutable {
        host: String,
        datastore: String,
        reason: &'static str,
        key_line: String,
    },
}

impl EsxiError {
    /// The failure class. Transport faults and datastore transfers pass by themselves; a
    /// host-key record the API could not write may; everything the host answered is permanent.
    pub fn class(&self) -> co_api::contract::ErrorClass {
        use co_api::contract::ErrorClass;
        match self {
            EsxiError::Cancelled { .. } => ErrorClass::Cancelled,
            EsxiError::DatastoreTransfer { .. } => ErrorClass::Retryable,
            EsxiError::HostKeyRecord { transient, .. } if *transient => ErrorClass::Retryable,
            error if error.is_transport_fault() => ErrorClass::Retryable,
            _ => ErrorClass::Permanent,
        }
    }

    /// Whether the call failed on the way to or from the host (vCenter SOAP/HTTP, the SSH
    /// connection) rather than in the host's answer: repeating a read-only call may succeed.
    /// A wrapper reply, even a failing one (`task not found`), is never a transport fault.
    pub fn is_transport_fault(&self) -> bool {
        matches!(
            self,
            EsxiError::EsxcliTransport { .. } | EsxiError::Ssh { .. } | EsxiError::Timeout { .. }
        )
    }
}
