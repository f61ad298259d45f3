//! VirtualDiskManager: `QueryVirtualDiskUuid`, read from the disk's descriptor (`ddb.uuid`) on the
//! datastore, so a clone made by vmkfstools answers its own UUID.

use super::VcenterState;
use super::file_manager::parse_datastore_path;
use super::soap::{Call, Fault};
use super::value::{Value, s};
use crate::vmkfstools::parse_descriptor;

/// The form vCenter answers a disk UUID in: 16 hex bytes separated by spaces, with a dash between the
/// 8th and the 9th (`60 00 c2 9d 26 0c 4d 47-b1 b8 e9 89 1a 7c 6b 40`). `ddb.uuid` is written in this
/// form or as a dashed UUID; both give the same bytes. `None` if the text is not 16 bytes of hex.
fn vim_disk_uuid(ddb_uuid: &str) -> Option<String> {
    let hex: String = ddb_uuid
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Vec<&str> = (0..16).map(|i| &hex[2 * i..2 * i + 2]).collect();
    Some(format!("{}-{}", bytes[..8].join(" "), bytes[8..].join(" ")))
}

pub(super) fn invoke(state: &VcenterState, call: &Call) -> Result<Option<Value>, Fault> {
    if call.method != "QueryVirtualDiskUuid" {
        return Err(Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        });
    }
    let name = call.body.child_text("name").unwrap_or_default().trim();
    let not_found = || Fault::FileNotFound {
        file: name.to_owned(),
    };
    let (datastore, relative) =
        parse_datastore_path(name).ok_or_else(|| Fault::InvalidArgument {
            property: "name".into(),
        })?;
    let path = state
        .inventory
        .paths
        .resolve(datastore, relative)
        .ok_or_else(not_found)?;
    let text = std::fs::read(&path).map_err(|_| not_found())?;
    let descriptor = parse_descriptor(&text)
        .map_err(|e| Fault::SystemError(format!("{name} is not a virtual disk descriptor: {e}")))?;
    let uuid = descriptor
        .ddb("uuid")
        .and_then(vim_disk_uuid)
        .ok_or_else(|| Fault::SystemError(format!("{name} has no valid ddb.uuid")))?;
    Ok(Some(s(uuid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashed_and_spaced_uuids_give_the_vim_form() {
        let vim = "60 00 c2 9d 26 0c 4d 47-b1 b8 e9 89 1a 7c 6b 40";
        assert_eq!(
            vim_disk_uuid("6000C29d-260c-4d47-b1b8-e9891a7c6b40").as_deref(),
            Some(vim)
        );
        assert_eq!(vim_disk_uuid(vim).as_deref(), Some(vim));
        assert_eq!(vim_disk_uuid("not-a-uuid"), None);
    }
}
