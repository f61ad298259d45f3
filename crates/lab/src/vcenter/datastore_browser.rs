//! HostDatastoreBrowser (`Datastore.browser`, `HostSystem.datastoreBrowser`): `SearchDatastore_Task` and
//! `SearchDatastoreSubFolders_Task` over the datastore directories, answered through a [`Task`](super::task).
//!
//! As on ESXi, a virtual disk is listed once, by its descriptor (`VmDiskFileInfo`): the extents a
//! descriptor names (`-flat.vmdk`, `-rdmp.vmdk`, …) are not listed. Files are typed (`FolderFileInfo`,
//! `VmConfigFileInfo`, …) only when the spec asks for `details.fileType`; `query` narrows the kinds,
//! `matchPattern` the names (`*` and `?` globs).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::file_manager::parse_datastore_path;
use super::inventory::{DatastoreEntry, Inventory};
use super::soap::{Call, Fault};
use super::task::{self, TaskSpec};
use super::value::{Moref, Value, s};
use super::xml::Element;
use super::{VcenterState, datetime_of};
use crate::host::DatastorePaths;
use crate::vmkfstools::{ExtentKind, parse_descriptor};

/// Descriptors are a few hundred bytes; anything larger named `.vmdk` is an extent.
const MAX_DESCRIPTOR_BYTES: u64 = 64 * 1024;

/// Browser of one datastore.
pub fn datastore_browser_moid(datastore_moid: &str) -> String {
    format!("datastoreBrowser-{datastore_moid}")
}

/// Browser of every datastore a host mounts.
pub fn host_browser_moid(host_moid: &str) -> String {
    format!("hostDatastoreBrowser-{host_moid}")
}

/// The datastores a browser may search.
fn scope<'a>(inv: &'a Inventory, obj: &Moref) -> Option<Vec<&'a DatastoreEntry>> {
    if let Some(ds) = obj.value.strip_prefix("datastoreBrowser-") {
        return inv.datastore(ds).map(|d| vec![d]);
    }
    let host = obj.value.strip_prefix("hostDatastoreBrowser-")?;
    inv.host(host)?;
    Some(inv.datastores.iter().collect())
}

pub(super) fn properties(inv: &Inventory, obj: &Moref) -> Option<Vec<(&'static str, Value)>> {
    let datastores = scope(inv, obj)?;
    Some(vec![(
        "datastore",
        Value::refs("Datastore", datastores.iter().map(|d| d.moid.clone())),
    )])
}

/// What a file is, as the browser's query types and typed infos distinguish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Folder,
    VmDisk,
    VmConfig,
    Template,
    VmLog,
    VmNvram,
    VmSnapshot,
    IsoImage,
    FloppyImage,
    Other,
}

impl FileKind {
    fn of(name: &str, is_dir: bool, is_descriptor: bool) -> FileKind {
        let lower = name.to_ascii_lowercase();
        let ext = lower.rsplit_once('.').map_or("", |(_, e)| e);
        match (is_dir, ext) {
            (true, _) => FileKind::Folder,
            (false, "vmdk") if is_descriptor => FileKind::VmDisk,
            (false, "vmx") => FileKind::VmConfig,
            (false, "vmtx") => FileKind::Template,
            (false, "log") => FileKind::VmLog,
            (false, "nvram") => FileKind::VmNvram,
            (false, "vmsn") => FileKind::VmSnapshot,
            (false, "iso") => FileKind::IsoImage,
            (false, "flp") => FileKind::FloppyImage,
            _ => FileKind::Other,
        }
    }

    fn info_type(self) -> &'static str {
        match self {
            FileKind::Folder => "FolderFileInfo",
            FileKind::VmDisk => "VmDiskFileInfo",
            FileKind::VmConfig => "VmConfigFileInfo",
            FileKind::Template => "TemplateConfigFileInfo",
            FileKind::VmLog => "VmLogFileInfo",
            FileKind::VmNvram => "VmNvramFileInfo",
            FileKind::VmSnapshot => "VmSnapshotFileInfo",
            FileKind::IsoImage => "IsoImageFileInfo",
            FileKind::FloppyImage => "FloppyImageFileInfo",
            FileKind::Other => "FileInfo",
        }
    }

    /// Whether a `query` element of this `xsi:type` selects files of this kind.
    fn matches_query(self, query: &str) -> bool {
        query == "FileQuery"
            || match self {
                FileKind::Folder => query == "FolderFileQuery",
                FileKind::VmDisk => query == "VmDiskFileQuery",
                FileKind::VmConfig => query == "VmConfigFileQuery",
                FileKind::Template => {
                    query == "TemplateConfigFileQuery" || query == "VmConfigFileQuery"
                }
                FileKind::VmLog => query == "VmLogFileQuery",
                FileKind::VmNvram => query == "VmNvramFileQuery",
                FileKind::VmSnapshot => query == "VmSnapshotFileQuery",
                FileKind::IsoImage => query == "IsoImageFileQuery",
                FileKind::FloppyImage => query == "FloppyImageFileQuery",
                FileKind::Other => false,
            }
    }
}

/// `FileQueryFlags` plus the disk details a `VmDiskFileQuery` asks for.
#[derive(Debug, Clone, Default)]
struct Details {
    file_type: bool,
    file_size: bool,
    modification: bool,
    owner: bool,
    disk: Vec<String>,
}

/// A parsed `HostDatastoreBrowserSearchSpec`.
#[derive(Debug, Clone, Default)]
struct SearchSpec {
    queries: Vec<String>,
    details: Details,
    case_insensitive: bool,
    patterns: Vec<String>,
    folders_first: bool,
}

fn is_true(element: Option<&Element>, name: &str) -> bool {
    element
        .and_then(|e| e.child_text(name))
        .is_some_and(|v| v.trim() == "true" || v.trim() == "1")
}

impl SearchSpec {
    fn parse(spec: Option<&Element>) -> SearchSpec {
        let Some(spec) = spec else {
            return SearchSpec::default();
        };
        let details = spec.child("details");
        let mut disk = Vec::new();
        for query in spec.children_named("query") {
            if query.xsi_type() == Some("VmDiskFileQuery")
                && let Some(flags) = query.child("details")
            {
                for flag in [
                    "diskType",
                    "capacityKb",
                    "hardwareVersion",
                    "controllerType",
                    "diskExtents",
                    "thin",
                ] {
                    if is_true(Some(flags), flag) {
                        disk.push(flag.to_owned());
                    }
                }
            }
        }
        SearchSpec {
            queries: spec
                .children_named("query")
                .filter_map(|q| q.xsi_type().map(str::to_owned))
                .collect(),
            details: Details {
                file_type: is_true(details, "fileType"),
                file_size: is_true(details, "fileSize"),
                modification: is_true(details, "modification"),
                owner: is_true(details, "fileOwner"),
                disk,
            },
            case_insensitive: is_true(Some(spec), "searchCaseInsensitive"),
            patterns: spec
                .children_named("matchPattern")
                .map(|p| p.text.trim().to_owned())
                .collect(),
            folders_first: is_true(Some(spec), "sortFoldersFirst"),
        }
    }

    fn selects(&self, name: &str, kind: FileKind) -> bool {
        let by_query =
            self.queries.is_empty() || self.queries.iter().any(|q| kind.matches_query(q));
        let by_name = self.patterns.is_empty()
            || self.patterns.iter().any(|p| {
                if self.case_insensitive {
                    glob(&p.to_lowercase(), &name.to_lowercase())
                } else {
                    glob(p, name)
                }
            });
        by_query && by_name
    }
}

/// `*` (any run) and `?` (one character) matching, as `matchPattern` specifies.
fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ni));
            pi += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ni = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.blocks() * 512)
}

/// One directory's search result.
fn search_folder(
    datastore: &DatastoreEntry,
    dir: &Path,
    relative: &str,
    spec: &SearchSpec,
) -> Result<Value, Fault> {
    let folder_path = if relative.is_empty() {
        format!("[{}]", datastore.name)
    } else {
        format!("[{}] {relative}/", datastore.name)
    };
    let not_found = || Fault::FileNotFound {
        file: folder_path.clone(),
    };
    let entries = std::fs::read_dir(dir).map_err(|_| not_found())?;
    let mut files: Vec<(String, std::fs::Metadata)> = entries
        .flatten()
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?)))
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    // Descriptors and the extents they name: an extent is listed through its descriptor only.
    let mut descriptors = Vec::new();
    let mut extents: Vec<String> = Vec::new();
    for (name, meta) in &files {
        if meta.is_file()
            && name.to_ascii_lowercase().ends_with(".vmdk")
            && meta.len() <= MAX_DESCRIPTOR_BYTES
            && let Ok(text) = std::fs::read(dir.join(name))
            && let Ok(descriptor) = parse_descriptor(&text)
        {
            extents.extend(descriptor.extents.iter().filter_map(|e| e.file.clone()));
            descriptors.push((name.clone(), descriptor));
        }
    }
    let mut infos: Vec<(FileKind, Value)> = Vec::new();
    for (name, meta) in &files {
        if extents.contains(name) {
            continue;
        }
        let descriptor = descriptors.iter().find(|(n, _)| n == name).map(|(_, d)| d);
        let kind = FileKind::of(name, meta.is_dir(), descriptor.is_some());
        if !spec.selects(name, kind) {
            continue;
        }
        let details = &spec.details;
        let info_type = if details.file_type {
            kind.info_type()
        } else {
            "FileInfo"
        };
        let mut fields = vec![("path", s(name.clone()))];
        if details.file_size {
            let size = match descriptor {
                Some(d) => {
                    meta.len()
                        + d.extents
                            .iter()
                            .filter_map(|e| e.file.as_ref())
                            .map(|f| allocated(&dir.join(f)))
                            .sum::<u64>()
                }
                None => meta.len(),
            };
            fields.push((
                "fileSize",
                Value::Long(i64::try_from(size).unwrap_or(i64::MAX)),
            ));
        }
        if details.modification {
            fields.push((
                "modification",
                Value::DateTime(datetime_of(meta.mtime().max(0).unsigned_abs())),
            ));
        }
        if details.owner {
            fields.push(("owner", s("root")));
        }
        if let (Some(d), "VmDiskFileInfo") = (descriptor, info_type) {
            let wants = |flag: &str| details.disk.iter().any(|f| f == flag);
            let rdm = d
                .extents
                .iter()
                .any(|e| e.kind == ExtentKind::Vmfs && d.create_type.contains("RawDeviceMap"));
            if wants("diskType") {
                let disk_type = if rdm {
                    "VirtualDiskRawDiskMappingVer1BackingInfo"
                } else {
                    "VirtualDiskFlatVer2BackingInfo"
                };
                fields.push(("diskType", s(disk_type)));
            }
            if wants("capacityKb") {
                fields.push((
                    "capacityKb",
                    Value::Long((d.capacity_bytes() / 1024) as i64),
                ));
            }
            if wants("hardwareVersion")
                && let Some(hw) = d.ddb("virtualHWVersion").and_then(|v| v.parse().ok())
            {
                fields.push(("hardwareVersion", Value::Int(hw)));
            }
            if wants("controllerType") && d.ddb("adapterType") == Some("lsilogic") {
                fields.push(("controllerType", s("VirtualLsiLogicController")));
            }
            if wants("diskExtents") {
                let prefix = folder_path.trim_end_matches('/');
                let sep = if relative.is_empty() { " " } else { "/" };
                let names = d
                    .extents
                    .iter()
                    .filter_map(|e| e.file.as_ref())
                    .map(|f| s(format!("{prefix}{sep}{f}")))
                    .collect();
                fields.push(("diskExtents", Value::array("string", names)));
            }
            if wants("thin") {
                fields.push(("thin", Value::Bool(d.ddb("thinProvisioned") == Some("1"))));
            }
        }
        infos.push((kind, Value::obj(info_type, fields)));
    }
    if spec.folders_first {
        infos.sort_by_key(|(kind, _)| *kind != FileKind::Folder);
    }
    let mut fields = vec![
        (
            "datastore",
            Value::Ref(Moref::new("Datastore", datastore.moid.clone())),
        ),
        ("folderPath", s(folder_path.clone())),
    ];
    if !infos.is_empty() {
        fields.push((
            "file",
            Value::array("FileInfo", infos.into_iter().map(|(_, v)| v).collect()),
        ));
    }
    Ok(Value::obj("HostDatastoreBrowserSearchResults", fields))
}

/// The folder and every folder below it, depth first in name order, as `(relative path, directory)`.
fn folders(dir: &Path, relative: &str) -> Vec<(String, PathBuf)> {
    let mut out = vec![(relative.to_owned(), dir.to_path_buf())];
    let mut children: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    children.sort();
    for child in children {
        let child_relative = if relative.is_empty() {
            child.clone()
        } else {
            format!("{relative}/{child}")
        };
        out.extend(folders(&dir.join(&child), &child_relative));
    }
    out
}

pub(super) fn invoke(
    state: &VcenterState,
    session: &str,
    call: &Call,
) -> Result<Option<Value>, Fault> {
    let recursive = match call.method.as_str() {
        "SearchDatastore_Task" => false,
        "SearchDatastoreSubFolders_Task" => true,
        _ => {
            return Err(Fault::MethodNotFound {
                receiver: call.this.clone(),
                method: call.method.clone(),
            });
        }
    };
    let inv = &state.inventory;
    let datastores = scope(inv, &call.this).ok_or_else(|| Fault::ManagedObjectNotFound {
        obj: call.this.clone(),
    })?;
    let path = call
        .body
        .child_text("datastorePath")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let invalid = || Fault::InvalidArgument {
        property: "datastorePath".into(),
    };
    let (name, relative) = parse_datastore_path(&path).ok_or_else(invalid)?;
    let datastore = datastores
        .into_iter()
        .find(|d| d.name == name)
        .cloned()
        .ok_or_else(|| Fault::FileNotFound { file: path.clone() })?;
    let relative = relative.trim_matches('/').to_owned();
    let paths: Arc<DatastorePaths> = inv.paths.clone();
    let spec = SearchSpec::parse(call.body.child("searchSpec"));
    let user = state
        .session_for(session)
        .map(|s| s.user)
        .unwrap_or_default();
    let task = task::start(
        state,
        &user,
        TaskSpec {
            method: if recursive {
                "SearchDatastoreSubFolders_Task"
            } else {
                "SearchDatastore_Task"
            },
            description_id: if recursive {
                "host.DatastoreBrowser.searchSubFolders"
            } else {
                "host.DatastoreBrowser.search"
            },
            entity: Moref::new("Datastore", datastore.moid.clone()),
            entity_name: datastore.name.clone(),
        },
        move || {
            let dir = paths
                .resolve(&datastore.name, &relative)
                .filter(|d| d.is_dir())
                .ok_or_else(|| Fault::FileNotFound { file: path.clone() })?;
            if recursive {
                let results = folders(&dir, &relative)
                    .iter()
                    .map(|(rel, dir)| search_folder(&datastore, dir, rel, &spec))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Value::array("HostDatastoreBrowserSearchResults", results))
            } else {
                search_folder(&datastore, &dir, &relative, &spec)
            }
        },
    );
    Ok(Some(Value::Ref(task)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_the_browser() {
        assert!(glob("*.vmdk", "vm-1.vmdk"));
        assert!(glob("*", ""));
        assert!(glob("vm-?.vmx", "vm-1.vmx"));
        assert!(glob("*-flat*", "vm-1-flat.vmdk"));
        assert!(!glob("*.vmdk", "vm-1.vmx"));
        assert!(!glob("vm-?.vmx", "vm-10.vmx"));
    }

    #[test]
    fn file_kinds_follow_the_extension_and_the_descriptor() {
        assert_eq!(FileKind::of("a.vmdk", false, true), FileKind::VmDisk);
        assert_eq!(FileKind::of("a-flat.vmdk", false, false), FileKind::Other);
        assert_eq!(FileKind::of("a.VMX", false, false), FileKind::VmConfig);
        assert_eq!(FileKind::of("dir.vmx", true, false), FileKind::Folder);
        assert!(FileKind::VmDisk.matches_query("FileQuery"));
        assert!(!FileKind::VmConfig.matches_query("VmDiskFileQuery"));
    }
}
