//! Initiator identities: the one place that decides when two spellings name the same host port.
//!
//! ESXi reports FC adapters as `fc.<wwnn>:<wwpn>` (16 lower-case hex digits each), arrays store the
//! WWPN alone in whatever case and separator style their API uses (`20:00:00:25:B5:00:B0:01`,
//! `20000025b500b001`), and iSCSI names are case-insensitive. Matching on the normalised form lets a
//! host see a LUN exactly when a real array would let it log in.

use super::SanError;

/// The canonical form of an initiator id, used for every membership test.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InitiatorId(String);

impl InitiatorId {
    /// Normalises an initiator id as a host or an array API would spell it.
    ///
    /// * `iqn.…`, `eui.…`, `nqn.…` → lower-cased;
    /// * `fc.<wwnn>:<wwpn>` → the WWPN (arrays zone and mask on the port name);
    /// * a bare WWN with or without `:`/`-` separators → 16 lower-case hex digits;
    /// * anything else (e.g. `vmhba64` for block adapters) → lower-cased as is.
    pub fn parse(raw: &str) -> Result<InitiatorId, SanError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(SanError::InvalidInitiator {
                initiator: raw.to_owned(),
                reason: "it is empty",
            });
        }
        let lower = trimmed.to_ascii_lowercase();
        if let Some(pair) = lower.strip_prefix("fc.") {
            let Some((_wwnn, wwpn)) = pair.split_once(':') else {
                return Err(SanError::InvalidInitiator {
                    initiator: raw.to_owned(),
                    reason: "an FC adapter id must look like fc.<wwnn>:<wwpn>",
                });
            };
            return wwn(wwpn)
                .map(InitiatorId)
                .ok_or(SanError::InvalidInitiator {
                    initiator: raw.to_owned(),
                    reason: "the WWPN must be 16 hex digits",
                });
        }
        if lower.starts_with("iqn.") || lower.starts_with("eui.") || lower.starts_with("nqn.") {
            return Ok(InitiatorId(lower));
        }
        if let Some(port) = wwn(&lower) {
            return Ok(InitiatorId(port));
        }
        Ok(InitiatorId(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 16 hex digits, separators removed; `None` when `text` is not a WWN.
fn wwn(text: &str) -> Option<String> {
    let digits: String = text.chars().filter(|c| !matches!(c, ':' | '-')).collect();
    (digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| digits.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: &str) -> String {
        InitiatorId::parse(raw).unwrap().as_str().to_owned()
    }

    #[test]
    fn esxi_fc_adapter_matches_array_wwpn_spellings() {
        let host = id("fc.20000025b500a001:20000025b500b001");
        assert_eq!(host, id("20:00:00:25:B5:00:B0:01"));
        assert_eq!(host, id("20000025B500B001"));
        assert_eq!(host, id("20-00-00-25-b5-00-b0-01"));
        assert_ne!(
            host,
            id("20:00:00:25:B5:00:A0:01"),
            "the WWNN is not the port name"
        );
    }

    #[test]
    fn iscsi_names_are_case_insensitive() {
        assert_eq!(
            id("iqn.1998-01.com.VMware:esx-1"),
            id("iqn.1998-01.com.vmware:ESX-1")
        );
    }

    #[test]
    fn malformed_fc_ids_are_rejected_with_the_reason() {
        let err = InitiatorId::parse("fc.2000:zz").unwrap_err();
        assert!(err.to_string().contains("16 hex digits"), "{err}");
        assert!(InitiatorId::parse("fc.nocolon").is_err());
        assert!(InitiatorId::parse("  ").is_err());
    }

    #[test]
    fn block_adapters_keep_their_device_name() {
        assert_eq!(id("vmhba64"), "vmhba64");
    }
}
