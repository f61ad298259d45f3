//! `DatastorePath`: the vSphere datastore path of a virtual disk descriptor, `[datastore] dir/file.vmdk`.
//!
//! Upstream accepted exactly one folder level (`[ds] vm/disk.vmdk`), rejecting disks in nested
//! folders and at the datastore root. This type accepts both, keeps spaces, and
//! rejects anything that could escape the datastore once turned into an ESXi path (`..`, control
//! characters, absolute paths), because the path ends up in commands run on the ESXi host.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An example shown in error messages so users see the expected shape.
pub const DATASTORE_PATH_EXAMPLE: &str = "[datastore1] vm-1/vm-1.vmdk";

/// A parsed `[datastore] path/to/disk.vmdk`.
///
/// Invariants (enforced by [`DatastorePath::parse`]): the datastore name is non-empty, has no
/// `/`, `[`, `]` or control characters; the path is relative, has no empty, `.` or `..`
/// components, no control characters, and names a file ending in `.vmdk`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatastorePath {
    datastore: String,
    path: String,
}

/// Why a string is not a valid datastore path. Each message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatastorePathError {
    #[error("the path is empty; expected a datastore path like \"{DATASTORE_PATH_EXAMPLE}\"")]
    Empty,
    #[error(
        "the path must start with \"[\"; expected a datastore path like \"{DATASTORE_PATH_EXAMPLE}\""
    )]
    MissingOpenBracket,
    #[error(
        "the datastore name is not closed with \"]\"; expected a datastore path like \"{DATASTORE_PATH_EXAMPLE}\""
    )]
    MissingCloseBracket,
    #[error("the datastore name between \"[\" and \"]\" is empty")]
    EmptyDatastore,
    #[error("the datastore name must not contain \"/\" or \"[\"")]
    InvalidDatastoreName,
    #[error("no file follows the datastore name; expected \"[datastore] folder/disk.vmdk\"")]
    MissingFile,
    #[error("the file path must be relative to the datastore, without a leading \"/\"")]
    AbsolutePath,
    #[error(
        "the file path has an empty, \".\" or \"..\" component; give the plain folder/disk.vmdk path"
    )]
    InvalidComponent,
    #[error("the path contains a control character (such as a newline or NUL)")]
    ControlCharacter,
    #[error("the file must be a disk descriptor ending in \".vmdk\"")]
    NotVmdk,
}

impl DatastorePath {
    /// Parses `[datastore] path/to/disk.vmdk`. Whitespace around the whole string and between
    /// `]` and the file path is ignored; spaces inside names are kept.
    pub fn parse(input: &str) -> Result<Self, DatastorePathError> {
        if input.chars().any(char::is_control) {
            return Err(DatastorePathError::ControlCharacter);
        }
        let input = input.trim();
        if input.is_empty() {
            return Err(DatastorePathError::Empty);
        }
        let rest = input
            .strip_prefix('[')
            .ok_or(DatastorePathError::MissingOpenBracket)?;
        let (datastore, path) = rest
            .split_once(']')
            .ok_or(DatastorePathError::MissingCloseBracket)?;
        if datastore.trim().is_empty() {
            return Err(DatastorePathError::EmptyDatastore);
        }
        if datastore.contains(['/', '[']) {
            return Err(DatastorePathError::InvalidDatastoreName);
        }
        let path = path.trim_start();
        if path.is_empty() {
            return Err(DatastorePathError::MissingFile);
        }
        if path.starts_with('/') {
            return Err(DatastorePathError::AbsolutePath);
        }
        if path
            .split('/')
            .any(|component| component.is_empty() || component == "." || component == "..")
        {
            return Err(DatastorePathError::InvalidComponent);
        }
        let file_name = path.rsplit('/').next().unwrap_or(path);
        let has_vmdk_suffix = file_name.len() > ".vmdk".len()
            && file_name
                .get(file_name.len() - ".vmdk".len()..)
                .is_some_and(|suffix| suffix.eq_ignore_ascii_case(".vmdk"));
        if !has_vmdk_suffix {
            return Err(DatastorePathError::NotVmdk);
        }
        Ok(Self {
            datastore: datastore.to_owned(),
            path: path.to_owned(),
        })
    }

    /// The datastore name, e.g. `datastore1`.
    pub fn datastore(&self) -> &str {
        &self.datastore
    }

    /// The path inside the datastore, e.g. `vm-1/vm-1.vmdk`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The descriptor's file name, e.g. `vm-1.vmdk`.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The folder holding the descriptor, e.g. `vm-1`; `None` for a file at the datastore root.
    pub fn folder(&self) -> Option<&str> {
        self.path.rsplit_once('/').map(|(folder, _)| folder)
    }

    /// The path as ESXi sees it: `/vmfs/volumes/<datastore>/<path>`.
    pub fn esxi_path(&self) -> String {
        format!("/vmfs/volumes/{}/{}", self.datastore, self.path)
    }
}

impl fmt::Display for DatastorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.datastore, self.path)
    }
}

impl fmt::Debug for DatastorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatastorePath({self})")
    }
}

impl FromStr for DatastorePath {
    type Err = DatastorePathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for DatastorePath {
    type Error = DatastorePathError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DatastorePath> for String {
    fn from(value: DatastorePath) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_folder() {
        let p = DatastorePath::parse("[my-vsphere-ds] vm-1/vm-1.vmdk").unwrap();
        assert_eq!(p.datastore(), "my-vsphere-ds");
        assert_eq!(p.path(), "vm-1/vm-1.vmdk");
        assert_eq!(p.file_name(), "vm-1.vmdk");
        assert_eq!(p.folder(), Some("vm-1"));
        assert_eq!(p.esxi_path(), "/vmfs/volumes/my-vsphere-ds/vm-1/vm-1.vmdk");
    }

    #[test]
    fn file_at_datastore_root_has_no_folder() {
        let p = DatastorePath::parse("[ds] disk.vmdk").unwrap();
        assert_eq!(p.folder(), None);
        assert_eq!(p.file_name(), "disk.vmdk");
    }

    #[test]
    fn missing_space_after_bracket_is_tolerated_and_display_is_canonical() {
        let p = DatastorePath::parse("  [ds]vm/disk.vmdk ").unwrap();
        assert_eq!(p.to_string(), "[ds] vm/disk.vmdk");
    }

    #[test]
    fn suffix_check_is_char_boundary_safe() {
        assert_eq!(
            DatastorePath::parse("[ds] vm/é.vmd"),
            Err(DatastorePathError::NotVmdk)
        );
        assert_eq!(
            DatastorePath::parse("[ds] vm/.vmdk"),
            Err(DatastorePathError::NotVmdk)
        );
    }
}
