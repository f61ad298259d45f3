//! The `storage core adapter` namespace: rescan an adapter.

use crate::error::Error;

use super::command::Command;
use super::command_line::words;
use super::wire::EsxcliResponse;

/// What `storage core adapter rescan --type` looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescanType {
    /// New devices only: what discovery needs, and the cheapest.
    Add,
    /// Devices gone from the array: what cleanup needs after an unmap.
    Delete,
    /// Both, and path changes.
    All,
    /// Updated device properties (size, paths).
    Update,
}

impl RescanType {
    pub fn as_str(self) -> &'static str {
        match self {
            RescanType::Add => "add",
            RescanType::Delete => "delete",
            RescanType::All => "all",
            RescanType::Update => "update",
        }
    }

    /// The value as esxcli spells it (`add`, `delete`, `all`, `update`).
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Add, Self::Delete, Self::All, Self::Update]
            .into_iter()
            .find(|t| t.as_str() == text)
    }
}

/// `esxcli storage core adapter rescan -t <type> -A <adapter>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageCoreAdapterRescan {
    /// The adapter's device name (`vmhba65`).
    pub adapter: String,
    pub rescan: RescanType,
}

impl Command for StorageCoreAdapterRescan {
    type Output = ();

    fn argv(&self) -> Vec<String> {
        let mut argv = words(&["storage", "core", "adapter", "rescan", "-t"]);
        argv.extend([
            self.rescan.as_str().to_owned(),
            "-A".to_owned(),
            self.adapter.clone(),
        ]);
        argv
    }

    fn output(&self, _: EsxcliResponse) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rescan_names_its_type_and_adapter() {
        let rescan = StorageCoreAdapterRescan {
            adapter: "vmhba65".into(),
            rescan: RescanType::Add,
        };
        assert_eq!(
            rescan.argv(),
            [
                "storage", "core", "adapter", "rescan", "-t", "add", "-A", "vmhba65"
            ]
        );
        for t in [
            RescanType::Add,
            RescanType::Delete,
            RescanType::All,
            RescanType::Update,
        ] {
            assert_eq!(RescanType::parse(t.as_str()), Some(t));
        }
        assert_eq!(RescanType::parse("everything"), None);
    }
}
