//! Names and label values of the populator's metrics. The first six are upstream's (Forklift's
//! controller parses them); the rest are ours. All are gauges.

pub const PROGRESS: &str = "vsphere_xcopy_volume_populator_progress";
pub const XCOPY_USED: &str = "vsphere_xcopy_volume_populator_xcopy_used";
pub const VIB_VERSION: &str = "vsphere_xcopy_volume_populator_vib_version";
pub const STORAGE_ARRAY_INFO: &str = "vsphere_xcopy_volume_populator_storage_array_info";
pub const SOURCE_DISK_BYTES: &str = "vsphere_xcopy_volume_populator_source_disk_bytes";
/// Present only once the copy ended: its presence is the completion signal.
pub const COPY_DURATION_SECONDS: &str = "vsphere_xcopy_volume_populator_copy_duration_seconds";
/// Ours: bytes written to the target so far.
pub const COPIED_BYTES: &str = "vsphere_xcopy_volume_populator_copied_bytes";
/// Ours: recent copy rate.
pub const COPY_RATE: &str = "vsphere_xcopy_volume_populator_copy_rate_bytes_per_second";
/// Ours: 1 for the phase the copy is in, 0 for phases it went through.
pub const PHASE: &str = "vsphere_xcopy_volume_populator_phase";

/// Label keys the controller reads.
pub mod labels {
    pub const OWNER_UID: &str = "owner_uid";
    pub const STORAGE_VENDOR: &str = "storage_vendor";
    pub const CLONE_METHOD: &str = "clone_method";
    pub const STORAGE_PROTOCOL: &str = "storage_protocol";
    pub const RESULT: &str = "result";
    pub const XCOPY_USED: &str = "xcopy_used";
    pub const PHASE: &str = "phase";
}

/// Label value for "not known" (upstream's spelling).
pub const NOT_AVAILABLE: &str = "n/a";

/// `clone_method` label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneMethodLabel {
    Vib,
    Ssh,
    Vvol,
    Rdm,
}

impl CloneMethodLabel {
    pub const ALL: [Self; 4] = [Self::Vib, Self::Ssh, Self::Vvol, Self::Rdm];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vib => "vib",
            Self::Ssh => "ssh",
            Self::Vvol => "vvol",
            Self::Rdm => "rdm",
        }
    }

    /// The label value back (the controller reads it from a scrape).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == text)
    }
}

impl From<crate::CloneMethod> for CloneMethodLabel {
    fn from(method: crate::CloneMethod) -> Self {
        match method {
            crate::CloneMethod::Vib => Self::Vib,
            crate::CloneMethod::Ssh => Self::Ssh,
        }
    }
}

/// `storage_protocol` label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageProtocolLabel {
    Iscsi,
    Fc,
    /// Not detected (or a failed copy, which upstream always reports as `n/a`).
    Unknown,
}

impl StorageProtocolLabel {
    pub const ALL: [Self; 3] = [Self::Iscsi, Self::Fc, Self::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Iscsi => "iscsi",
            Self::Fc => "fc",
            Self::Unknown => NOT_AVAILABLE,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == text)
    }
}

/// `result` label values of the completion metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyResult {
    Success,
    Failure,
}

impl CopyResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Success, Self::Failure]
            .into_iter()
            .find(|l| l.as_str() == text)
    }
}

/// Name of the pod's container port the metrics are served on.
pub const CONTAINER_PORT_NAME: &str = "metrics";
/// Default port of the HTTPS metrics endpoint.
pub const DEFAULT_PORT: u16 = 8443;
/// The only path served.
pub const PATH: &str = "/metrics";
