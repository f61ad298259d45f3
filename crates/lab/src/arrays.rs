//! Storage-array REST facades over the shared SAN model, one module per vendor.
//!
//! A facade owns only its vendor's wire shapes (paths, JSON fields, error bodies, auth); every state
//! change goes through [`crate::san::San`], so all vendors agree on what a host can see. To add a
//! vendor: add its identity rules to `san::ArrayVendor`, write `arrays/<vendor>.rs` exposing
//! `router(san, array, …) -> axum::Router`, and list it here. Latency and fault injection wrap the
//! returned router as a layer (`Router::layer`), so facades stay free of it.

pub mod flashsystem;
pub mod infinibox;
pub mod ontap;
pub mod powerflex;
pub mod powermax;
pub mod powerstore;
pub mod primera3par;
pub mod pure;
pub mod vantara;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::san::Volume;

/// Overwrites `target`'s blocks with `source`'s, as an array-side copy does. The SAN keeps a
/// volume's size, so a larger source is refused where an array would have grown the target; the
/// rest of a larger target reads as zeros, as a fresh copy of the source would.
pub(crate) fn overwrite_blocks(source: &Volume, target: &Volume) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    if source.size_bytes > target.size_bytes {
        return Err(std::io::Error::other(format!(
            "the source ({} bytes) is larger than the target ({} bytes)",
            source.size_bytes, target.size_bytes
        )));
    }
    let mut from = std::fs::File::open(&source.backing_path)?;
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .open(&target.backing_path)?;
    to.seek(SeekFrom::Start(0))?;
    let copied = std::io::copy(&mut from, &mut to)?;
    to.set_len(copied)?;
    to.set_len(target.size_bytes)?;
    to.flush()
}

/// The value of cookie `name` among the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Reads what a running facade holds beyond the SAN model's volumes, groups and mappings — clone
/// pairs, FlashCopy maps, array-side copies, vendor-private groups — so the lab's end-to-end checks
/// see everything a copy can leave on an array, not only what every vendor shares. Open sessions
/// are not included: a killed populator cannot log out, and arrays expire idle sessions.
#[derive(Clone)]
pub struct ArraySideState(std::sync::Arc<dyn Fn() -> Vec<String> + Send + Sync>);

impl ArraySideState {
    pub(crate) fn new(read: impl Fn() -> Vec<String> + Send + Sync + 'static) -> ArraySideState {
        ArraySideState(std::sync::Arc::new(read))
    }

    /// A facade that keeps nothing of its own (every object it makes is in the SAN model).
    pub(crate) fn none() -> ArraySideState {
        ArraySideState::new(Vec::new)
    }

    /// What is there now, one line per object; empty when the array holds nothing of a copy.
    pub fn leftovers(&self) -> Vec<String> {
        (self.0)()
    }
}

impl std::fmt::Debug for ArraySideState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ArraySideState").finish_non_exhaustive()
    }
}

/// What a copy may have left on `array` of a facade whose SAN groups are hosts: hosts named
/// `xcopy-…` and every mapping to them, each described with `mapped` (the vendor's verb).
pub(crate) fn xcopy_leftovers(san: &crate::san::San, array: &str, mapped: &str) -> Vec<String> {
    let ours = |name: &str| name.starts_with("xcopy-");
    let mut found: Vec<String> = san
        .groups(array)
        .into_iter()
        .filter(|g| ours(&g.name))
        .map(|g| format!("host {}", g.name))
        .collect();
    found.extend(
        san.mappings(array)
            .into_iter()
            .filter(|m| ours(&m.group))
            .map(|m| format!("volume {} {mapped} {}", m.volume, m.group)),
    );
    found
}

/// HTTP Basic credentials an array accepts.
#[derive(Clone)]
pub(crate) struct BasicCredentials {
    username: String,
    password: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl BasicCredentials {
    pub fn new(username: &str, password: &str) -> BasicCredentials {
        BasicCredentials {
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }

    /// Whether the request's `Authorization: Basic …` header carries these credentials.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(encoded) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            })
        else {
            return false;
        };
        let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(text) = std::str::from_utf8(&decoded) else {
            return false;
        };
        text.split_once(':')
            .is_some_and(|(user, password)| user == self.username && password == self.password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn basic_credentials_must_match_exactly() {
        let creds = BasicCredentials::new("admin", "p:ss");
        let good = format!("Basic {}", STANDARD.encode("admin:p:ss"));
        assert!(creds.admits(&headers(&good)));
        let wrong = format!("Basic {}", STANDARD.encode("admin:nope"));
        assert!(!creds.admits(&headers(&wrong)));
        assert!(!creds.admits(&headers("Bearer abc")));
        assert!(!creds.admits(&HeaderMap::new()));
        assert!(!format!("{creds:?}").contains("p:ss"), "no secret in Debug");
    }
}
