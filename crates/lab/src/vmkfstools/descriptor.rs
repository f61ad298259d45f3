//! VMDK text descriptors: parsing what ESXi, Workstation and qemu-img write, and writing the RDM
//! descriptor `vmkfstools -d rdm:` leaves next to the source disk.
//!
//! The format is line based: `key=value` header lines, extent lines
//! (`RW <sectors> <TYPE> "<file>" [offset]`), and `ddb.*` disk database entries. Descriptors embedded
//! in sparse files (and some written by qemu-img) are padded with NUL bytes to a sector boundary; the
//! text ends at the first NUL.

use super::VmkfstoolsError;

/// A parsed VMDK descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub version: Option<u32>,
    /// Content id, 8 hex digits.
    pub cid: Option<String>,
    /// `ffffffff` for a base disk, else the parent's CID at the time the child was created.
    pub parent_cid: Option<String>,
    /// e.g. `monolithicFlat`, `vmfs`, `monolithicSparse`, `vmfsSparse`, `vmfsRawDeviceMap`.
    pub create_type: String,
    pub parent_file_name_hint: Option<String>,
    pub extents: Vec<Extent>,
    /// `ddb.*` entries in file order, keys without the `ddb.` prefix, values unquoted.
    pub ddb: Vec<(String, String)>,
}

/// One extent line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    pub access: ExtentAccess,
    /// Size in 512-byte sectors.
    pub sectors: u64,
    pub kind: ExtentKind,
    /// File name, relative to the descriptor's directory unless absolute; `None` for `ZERO`.
    pub file: Option<String>,
    /// Start of the extent's data inside `file`, in sectors (flat extents only).
    pub offset_sectors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentAccess {
    ReadWrite,
    ReadOnly,
    NoAccess,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentKind {
    /// Hosted flat file (`FLAT`).
    Flat,
    /// ESXi flat file on VMFS (`VMFS`).
    Vmfs,
    /// Hosted sparse extent (`SPARSE`, "KDMV" header).
    Sparse,
    /// ESXi redo log (`VMFSSPARSE`, "COWD" header).
    VmfsSparse,
    /// ESXi space-efficient sparse (`SESPARSE`).
    SeSparse,
    /// Reads as zeroes, no file (`ZERO`).
    Zero,
    /// Raw device mapping file (`VMFSRDM`, virtual compatibility).
    VmfsRdm,
    /// Raw device mapping file (`VMFSRAW`, physical compatibility).
    VmfsRaw,
}

impl ExtentKind {
    fn parse(token: &str) -> Option<ExtentKind> {
        Some(match token {
            "FLAT" => ExtentKind::Flat,
            "VMFS" => ExtentKind::Vmfs,
            "SPARSE" => ExtentKind::Sparse,
            "VMFSSPARSE" => ExtentKind::VmfsSparse,
            "SESPARSE" => ExtentKind::SeSparse,
            "ZERO" => ExtentKind::Zero,
            "VMFSRDM" => ExtentKind::VmfsRdm,
            "VMFSRAW" => ExtentKind::VmfsRaw,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExtentKind::Flat => "FLAT",
            ExtentKind::Vmfs => "VMFS",
            ExtentKind::Sparse => "SPARSE",
            ExtentKind::VmfsSparse => "VMFSSPARSE",
            ExtentKind::SeSparse => "SESPARSE",
            ExtentKind::Zero => "ZERO",
            ExtentKind::VmfsRdm => "VMFSRDM",
            ExtentKind::VmfsRaw => "VMFSRAW",
        }
    }
}

/// The CID of a disk without a parent.
pub const NO_PARENT_CID: &str = "ffffffff";

impl Descriptor {
    /// Virtual size of the disk: the sum of its extents.
    pub fn capacity_bytes(&self) -> u64 {
        self.extents.iter().map(|e| e.sectors * 512).sum()
    }

    /// A `ddb.<key>` value.
    pub fn ddb(&self, key: &str) -> Option<&str> {
        self.ddb
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this disk is a child in a snapshot chain.
    pub fn has_parent(&self) -> bool {
        self.parent_cid
            .as_deref()
            .is_some_and(|cid| !cid.eq_ignore_ascii_case(NO_PARENT_CID))
            || self.parent_file_name_hint.is_some()
    }
}

/// Parses descriptor text. Tolerates NUL padding, CRLF line ends, blank lines and comments.
pub fn parse_descriptor(text: &[u8]) -> Result<Descriptor, VmkfstoolsError> {
    let end = text.iter().position(|b| *b == 0).unwrap_or(text.len());
    let text = std::str::from_utf8(&text[..end]).map_err(|_| VmkfstoolsError::Descriptor {
        line: 0,
        reason: "the descriptor is not UTF-8 text".to_owned(),
    })?;

    let mut version = None;
    let mut cid = None;
    let mut parent_cid = None;
    let mut create_type = None;
    let mut parent_file_name_hint = None;
    let mut extents = Vec::new();
    let mut ddb = Vec::new();

    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or_default();
        if let Some(access) = access(first) {
            extents.push(parse_extent(line_no, access, line)?);
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(VmkfstoolsError::Descriptor {
                line: line_no,
                reason: format!("expected `key=value` or an extent line, found {line:?}"),
            });
        };
        let key = key.trim();
        let value = unquote(value.trim());
        if let Some(ddb_key) = key.strip_prefix("ddb.") {
            ddb.push((ddb_key.to_owned(), value.to_owned()));
            continue;
        }
        match key {
            "version" => {
                version = Some(value.parse().map_err(|_| VmkfstoolsError::Descriptor {
                    line: line_no,
                    reason: format!("version must be a number, found {value:?}"),
                })?)
            }
            "CID" => cid = Some(value.to_ascii_lowercase()),
            "parentCID" => parent_cid = Some(value.to_ascii_lowercase()),
            "createType" => create_type = Some(value.to_owned()),
            "parentFileNameHint" => parent_file_name_hint = Some(value.to_owned()),
            // encoding, isNativeSnapshot, changeTrackPath … carry nothing the clone needs.
            _ => {}
        }
    }

    let create_type = create_type.ok_or_else(|| VmkfstoolsError::Descriptor {
        line: 0,
        reason: "no createType line: this is not a VMDK descriptor".to_owned(),
    })?;
    if extents.is_empty() {
        return Err(VmkfstoolsError::Descriptor {
            line: 0,
            reason: "the descriptor lists no extents".to_owned(),
        });
    }
    Ok(Descriptor {
        version,
        cid,
        parent_cid,
        create_type,
        parent_file_name_hint,
        extents,
        ddb,
    })
}

fn access(token: &str) -> Option<ExtentAccess> {
    match token {
        "RW" => Some(ExtentAccess::ReadWrite),
        "RDONLY" => Some(ExtentAccess::ReadOnly),
        "NOACCESS" => Some(ExtentAccess::NoAccess),
        _ => None,
    }
}

fn parse_extent(
    line_no: usize,
    access: ExtentAccess,
    line: &str,
) -> Result<Extent, VmkfstoolsError> {
    let bad = |reason: String| VmkfstoolsError::Descriptor {
        line: line_no,
        reason,
    };
    let mut rest = line;
    let mut token = || {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (head, tail) = rest.split_at(end);
        rest = tail;
        head
    };
    let _access = token();
    let sectors_text = token();
    let sectors = sectors_text.parse::<u64>().map_err(|_| {
        bad(format!(
            "extent size must be a sector count, found {sectors_text:?}"
        ))
    })?;
    let kind_text = token();
    let kind = ExtentKind::parse(kind_text)
        .ok_or_else(|| bad(format!("unknown extent type {kind_text:?}")))?;
    let rest = rest.trim_start();
    if kind == ExtentKind::Zero {
        return Ok(Extent {
            access,
            sectors,
            kind,
            file: None,
            offset_sectors: 0,
        });
    }
    // File names are quoted and may contain spaces.
    let Some(quoted) = rest.strip_prefix('"') else {
        return Err(bad(format!(
            "extent file name must be quoted, found {rest:?}"
        )));
    };
    let Some(close) = quoted.find('"') else {
        return Err(bad("extent file name has no closing quote".to_owned()));
    };
    let file = &quoted[..close];
    if file.is_empty() {
        return Err(bad("extent file name is empty".to_owned()));
    }
    let tail = quoted[close + 1..].trim();
    let offset_sectors = match tail.split_whitespace().next() {
        None => 0,
        Some(offset) => offset.parse().map_err(|_| {
            bad(format!(
                "extent offset must be a sector count, found {offset:?}"
            ))
        })?,
    };
    Ok(Extent {
        access,
        sectors,
        kind,
        file: Some(file.to_owned()),
        offset_sectors,
    })
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// What an RDM descriptor records.
#[derive(Debug, Clone)]
pub(crate) struct RdmDescriptor<'a> {
    pub cid: u32,
    pub device_sectors: u64,
    /// File name of the mapping file, relative to the descriptor.
    pub mapping_file: &'a str,
    pub adapter_type: &'a str,
    pub virtual_hw_version: &'a str,
    pub long_content_id: &'a str,
    pub uuid: &'a str,
}

impl RdmDescriptor<'_> {
    /// The text ESXi writes for a virtual-compatibility RDM (`vmkfstools -d rdm:` / `-r`).
    pub fn render(&self) -> String {
        // 255 heads × 63 sectors is the geometry ESXi reports for SCSI disks larger than 1 GB.
        let cylinders = (self.device_sectors / (255 * 63)).max(1);
        format!(
            "# Disk DescriptorFile\n\
             version=1\n\
             encoding=\"UTF-8\"\n\
             CID={cid:08x}\n\
             parentCID={NO_PARENT_CID}\n\
             createType=\"vmfsRawDeviceMap\"\n\
             \n\
             # Extent description\n\
             RW {sectors} VMFSRDM \"{mapping}\"\n\
             \n\
             # The Disk Data Base\n\
             #DDB\n\
             \n\
             ddb.adapterType = \"{adapter}\"\n\
             ddb.geometry.cylinders = \"{cylinders}\"\n\
             ddb.geometry.heads = \"255\"\n\
             ddb.geometry.sectors = \"63\"\n\
             ddb.longContentID = \"{long_cid}\"\n\
             ddb.uuid = \"{uuid}\"\n\
             ddb.virtualHWVersion = \"{hw}\"\n",
            cid = self.cid,
            sectors = self.device_sectors,
            mapping = self.mapping_file,
            adapter = self.adapter_type,
            long_cid = self.long_content_id,
            uuid = self.uuid,
            hw = self.virtual_hw_version,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU_FLAT: &str = "# Disk DescriptorFile\nversion=1\nCID=b12752b6\nparentCID=ffffffff\n\
createType=\"monolithicFlat\"\n\n# Extent description\nRW 20480 FLAT \"base-flat.vmdk\" 0\n\n\
# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n";

    #[test]
    fn parses_a_qemu_monolithic_flat_descriptor() {
        let d = parse_descriptor(QEMU_FLAT.as_bytes()).unwrap();
        assert_eq!(d.create_type, "monolithicFlat");
        assert_eq!(d.cid.as_deref(), Some("b12752b6"));
        assert!(!d.has_parent());
        assert_eq!(
            d.extents,
            [Extent {
                access: ExtentAccess::ReadWrite,
                sectors: 20480,
                kind: ExtentKind::Flat,
                file: Some("base-flat.vmdk".into()),
                offset_sectors: 0,
            }]
        );
        assert_eq!(d.capacity_bytes(), 10 * 1024 * 1024);
        assert_eq!(d.ddb("adapterType"), Some("ide"));
    }

    #[test]
    fn nul_padding_and_crlf_are_tolerated() {
        let mut bytes = QEMU_FLAT.replace('\n', "\r\n").into_bytes();
        bytes.resize(bytes.len() + 1000, 0);
        bytes.extend_from_slice(b"garbage after the padding");
        let d = parse_descriptor(&bytes).unwrap();
        assert_eq!(d.extents.len(), 1);
    }

    #[test]
    fn parses_esxi_vmfs_and_snapshot_descriptors_with_spaces_in_names() {
        let text = "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=fffffffe\n\
parentCID=3a4b5c6d\nisNativeSnapshot=\"no\"\ncreateType=\"vmfsSparse\"\n\
parentFileNameHint=\"my vm.vmdk\"\n# Extent description\n\
RW 41943040 VMFSSPARSE \"my vm-000001-delta.vmdk\"\n";
        let d = parse_descriptor(text.as_bytes()).unwrap();
        assert!(d.has_parent());
        assert_eq!(d.parent_file_name_hint.as_deref(), Some("my vm.vmdk"));
        assert_eq!(d.extents[0].kind, ExtentKind::VmfsSparse);
        assert_eq!(
            d.extents[0].file.as_deref(),
            Some("my vm-000001-delta.vmdk")
        );

        let vmfs = parse_descriptor(
            b"createType=\"vmfs\"\nRW 2048 VMFS \"a b-flat.vmdk\"\nRDONLY 8 ZERO\n",
        )
        .unwrap();
        assert_eq!(vmfs.extents[0].kind, ExtentKind::Vmfs);
        assert_eq!(vmfs.extents[1].kind, ExtentKind::Zero);
        assert_eq!(vmfs.extents[1].access, ExtentAccess::ReadOnly);
        assert_eq!(vmfs.capacity_bytes(), (2048 + 8) * 512);
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let err = parse_descriptor(b"createType=\"vmfs\"\nRW 2048 BOGUS \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(err.to_string().contains("BOGUS"), "{err}");
        let err = parse_descriptor(b"createType=\"vmfs\"\nRW 2048 VMFS \"x\n").unwrap_err();
        assert!(err.to_string().contains("closing quote"), "{err}");
        let err = parse_descriptor(b"RW 2048 VMFS \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("createType"), "{err}");
        let err = parse_descriptor(b"createType=\"vmfs\"\n").unwrap_err();
        assert!(err.to_string().contains("no extents"), "{err}");
    }

    #[test]
    fn rdm_descriptor_round_trips_through_the_parser() {
        let text = RdmDescriptor {
            cid: 0x1234abcd,
            device_sectors: 2_097_152,
            mapping_file: "disk.vmdk-rdmdisk-42-rdm.vmdk",
            adapter_type: "lsilogic",
            virtual_hw_version: "13",
            long_content_id: "0123456789abcdef0123456789abcdef",
            uuid: "60 00 C2 91 2a 3b 4c 5d-6e 7f 80 91 a2 b3 c4 d5",
        }
        .render();
        let d = parse_descriptor(text.as_bytes()).unwrap();
        assert_eq!(d.create_type, "vmfsRawDeviceMap");
        assert_eq!(d.cid.as_deref(), Some("1234abcd"));
        assert_eq!(d.extents[0].kind, ExtentKind::VmfsRdm);
        assert_eq!(d.extents[0].sectors, 2_097_152);
        assert_eq!(
            d.extents[0].file.as_deref(),
            Some("disk.vmdk-rdmdisk-42-rdm.vmdk")
        );
        assert_eq!(d.ddb("adapterType"), Some("lsilogic"));
    }
}
