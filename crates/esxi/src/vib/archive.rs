//! Building the `.vib` file: payload tarball, descriptor with sizes and checksums, `ar` archive.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::identity::{VIB_NAME, VIB_VENDOR};
use crate::assets::{
    ESXCLI_PLUGIN, ESXCLI_PLUGIN_INSTALL_PATH, VIB_WRAPPER, VIB_WRAPPER_INSTALL_PATH,
    WRAPPER_VERSION,
};

#[derive(Debug, thiserror::Error)]
pub enum VibError {
    #[error(
        "VIB version {0:?} is invalid: use digits, letters, '.', '-' and '_' only (for example 1.0.0)"
    )]
    InvalidVersion(String),
    #[error("cannot write the VIB to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the VIB {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build the VIB payload: {0}")]
    Payload(std::io::Error),
    #[error("SOURCE_DATE_EPOCH={0:?} is not a Unix timestamp")]
    InvalidSourceDate(String),
}

/// What [`build`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VibInfo {
    pub path: PathBuf,
    pub version: String,
    /// UTC, RFC 3339 (`2026-11-25T22:00:00+00:00`).
    pub release_date: String,
    pub payload_size: u64,
    pub payload_sha256: String,
    pub payload_sha256_gunzipped: String,
    pub payload_sha1_gunzipped: String,
}

/// Builds the VIB at `out`, released now (or at `SOURCE_DATE_EPOCH` for reproducible builds).
pub fn build(out: &Path, version: &str) -> Result<VibInfo, VibError> {
    let released = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|seconds| jiff::Timestamp::from_second(seconds).ok())
            .ok_or(VibError::InvalidSourceDate(text))?,
        Err(_) => jiff::Timestamp::now(),
    };
    build_at(out, version, released)
}

/// Builds the VIB at `out` with an explicit release time.
pub fn build_at(out: &Path, version: &str, released: jiff::Timestamp) -> Result<VibInfo, VibError> {
    if version.is_empty()
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(VibError::InvalidVersion(version.to_owned()));
    }
    let released = jiff::Timestamp::from_second(released.as_second()).unwrap_or(released);
    let mtime = u64::try_from(released.as_second()).unwrap_or(0);
    let wrapper = VIB_WRAPPER.replacen(
        &format!("\nSCRIPT_VERSION=\"{WRAPPER_VERSION}\"\n"),
        &format!("\nSCRIPT_VERSION=\"{version}\"\n"),
        1,
    );
    let tar = payload_tar(
        &[
            (VIB_WRAPPER_INSTALL_PATH, wrapper.as_bytes(), 0o755),
            (ESXCLI_PLUGIN_INSTALL_PATH, ESXCLI_PLUGIN.as_bytes(), 0o644),
        ],
        mtime,
    )
    .map_err(VibError::Payload)?;
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(&tar).map_err(VibError::Payload)?;
    let payload = gz.finish().map_err(VibError::Payload)?;

    let info = VibInfo {
        path: out.to_owned(),
        version: version.to_owned(),
        release_date: released.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
        payload_size: payload.len() as u64,
        payload_sha256: hex::encode(Sha256::digest(&payload)),
        payload_sha256_gunzipped: hex::encode(Sha256::digest(&tar)),
        payload_sha1_gunzipped: hex::encode(Sha1::digest(&tar)),
    };
    let descriptor = descriptor_xml(
        &info,
        &[VIB_WRAPPER_INSTALL_PATH, ESXCLI_PLUGIN_INSTALL_PATH],
    );
    let mut archive = b"!<arch>\n".to_vec();
    for (name, data) in [
        ("descriptor.xml", descriptor.as_bytes()),
        ("sig.pkcs7", &[][..]),
        ("payload1", &payload),
    ] {
        append_ar_member(&mut archive, name, data, mtime);
    }
    std::fs::write(out, archive).map_err(|source| VibError::Write {
        path: out.to_owned(),
        source,
    })?;
    Ok(info)
}

fn payload_tar(files: &[(&str, &[u8], u32)], mtime: u64) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut directories: Vec<String> = Vec::new();
    for (path, _, _) in files {
        let mut prefix = String::new();
        for part in path
            .split('/')
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            prefix.push_str(part);
            prefix.push('/');
            if !directories.contains(&prefix) {
                directories.push(prefix.clone());
            }
        }
    }
    for directory in &directories {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_mtime(mtime);
        header.set_size(0);
        builder.append_data(&mut header, directory, std::io::empty())?;
    }
    for (path, data, mode) in files {
        let mut header = tar::Header::new_ustar();
        header.set_mode(*mode);
        header.set_mtime(mtime);
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, path, *data)?;
    }
    builder.into_inner()
}

fn append_ar_member(archive: &mut Vec<u8>, name: &str, data: &[u8], mtime: u64) {
    // Common (GNU) ar header: name terminated by '/', decimal fields, octal mode, "`\n".
    let header = format!(
        "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
        format!("{name}/"),
        mtime,
        0,
        0,
        "100644",
        data.len()
    );
    archive.extend_from_slice(header.as_bytes());
    archive.extend_from_slice(data);
    if data.len() % 2 == 1 {
        archive.push(b'\n');
    }
}

/// The VIB descriptor (`<vib version="5.0">`) for `info` and the payload's `files`.
pub fn descriptor_xml(info: &VibInfo, files: &[&str]) -> String {
    let file_list: String = files
        .iter()
        .map(|file| format!("    <file>{file}</file>\n"))
        .collect();
    format!(
        r#"<vib version="5.0">
  <type>bootbank</type>
  <name>{VIB_NAME}</name>
  <version>{version}</version>
  <vendor>{VIB_VENDOR}</vendor>
  <summary>Custom VIB wrapping vmkfstools clone as the esxcli vmkfstools namespace (copy-offload)</summary>
  <description>Custom VIB wrapping vmkfstools clone as the esxcli vmkfstools namespace (copy-offload)</description>
  <release-date>{release_date}</release-date>
  <urls>
    <url key="website">https://github.com/kubev2v/copy-offload</url>
  </urls>
  <relationships>
    <depends/>
    <conflicts/>
    <replaces/>
    <provides/>
    <compatibleWith/>
  </relationships>
  <software-tags/>
  <system-requires>
    <maintenance-mode>false</maintenance-mode>
  </system-requires>
  <file-list>
{file_list}  </file-list>
  <acceptance-level>community</acceptance-level>
  <live-install-allowed>true</live-install-allowed>
  <live-remove-allowed>true</live-remove-allowed>
  <cimom-restart>false</cimom-restart>
  <stateless-ready>true</stateless-ready>
  <overlay>false</overlay>
  <payloads>
    <payload name="payload1" type="tgz" size="{size}">
      <checksum checksum-type="sha-256">{sha256}</checksum>
      <checksum checksum-type="sha-256" verify-process="gunzip">{sha256_gunzipped}</checksum>
      <checksum checksum-type="sha-1" verify-process="gunzip">{sha1_gunzipped}</checksum>
    </payload>
  </payloads>
</vib>
"#,
        version = info.version,
        release_date = info.release_date,
        size = info.payload_size,
        sha256 = info.payload_sha256,
        sha256_gunzipped = info.payload_sha256_gunzipped,
        sha1_gunzipped = info.payload_sha1_gunzipped,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_date_is_the_utc_build_time() {
        let dir = tempfile::tempdir().unwrap();
        let at: jiff::Timestamp = "2026-11-25T23:59:58.75+05:00".parse().unwrap();
        let info = build_at(&dir.path().join("w.vib"), "1.2.3", at).unwrap();
        assert_eq!(info.release_date, "2026-11-25T18:59:58+00:00");
    }

    #[test]
    fn invalid_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for version in ["", "1.0 beta", "1<2", "a/b"] {
            assert!(matches!(
                build_at(
                    &dir.path().join("w.vib"),
                    version,
                    jiff::Timestamp::UNIX_EPOCH
                ),
                Err(VibError::InvalidVersion(_))
            ));
        }
    }

    #[test]
    fn ar_header_is_sixty_bytes_and_padded() {
        let mut archive = Vec::new();
        append_ar_member(&mut archive, "payload1", b"abc", 7);
        assert_eq!(
            &archive[..60],
            b"payload1/       7           0     0     100644  3         `\n".as_slice()
        );
        assert_eq!(archive.len(), 64);
    }
}
