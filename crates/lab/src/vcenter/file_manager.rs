//! FileManager: `MakeDirectory` on a datastore (file contents travel over `/folder`).

use super::VcenterState;
use super::soap::{Call, Fault};
use super::value::Value;

/// Splits a datastore path `[ds1] dir/file` into (datastore, relative path).
pub(crate) fn parse_datastore_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.trim().strip_prefix('[')?;
    let (datastore, relative) = rest.split_once(']')?;
    Some((datastore, relative.trim()))
}

pub(super) async fn invoke(state: &VcenterState, call: &Call) -> Result<Option<Value>, Fault> {
    match call.method.as_str() {
        "MakeDirectory" => {
            let name = call.body.child_text("name").unwrap_or_default();
            let invalid = || Fault::InvalidArgument {
                property: "name".into(),
            };
            let (datastore, relative) = parse_datastore_path(name).ok_or_else(invalid)?;
            let dir = state
                .inventory
                .paths
                .resolve(datastore, relative)
                .ok_or_else(invalid)?;
            let parents = call
                .body
                .child_text("createParentDirectories")
                .is_some_and(|v| v.trim() == "true");
            let result = if parents {
                tokio::fs::create_dir_all(&dir).await
            } else {
                tokio::fs::create_dir(&dir).await
            };
            match result {
                Ok(()) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Fault::SystemError(
                    format!("Cannot create a file when that file already exists: {name}"),
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Fault::FileNotFound {
                    file: name.to_owned(),
                }),
                Err(e) => Err(Fault::SystemError(format!("cannot create {name}: {e}"))),
            }
        }
        _ => Err(Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datastore_paths_split_into_name_and_relative_path() {
        assert_eq!(
            parse_datastore_path("[ds1] vm-1/vm-1.vmdk"),
            Some(("ds1", "vm-1/vm-1.vmdk"))
        );
        assert_eq!(
            parse_datastore_path("[my ds] a b/c.vmdk"),
            Some(("my ds", "a b/c.vmdk"))
        );
        assert_eq!(parse_datastore_path("ds1/x"), None);
    }
}
