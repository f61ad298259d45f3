//! HTTPS to the endpoint: reqwest over rustls (ring) with the chosen trust mode, the session
//! cookie jar, per-request timeouts, a bounded response size and a round-trip counter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use url::Url;

use crate::error::Error;

/// SOAP answers larger than this are refused (a full inventory page is far smaller).
pub const MAX_SOAP_RESPONSE: usize = 64 * 1024 * 1024;

/// How the endpoint's TLS certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsTrust {
    /// Verify the chain and host name against the system roots plus `extra_ca_pem` (a PEM bundle).
    Verify { extra_ca_pem: Option<String> },
    /// Accept exactly the end-entity certificate whose SHA-256 is this (hex, `:` separators allowed).
    Thumbprint(String),
    /// Accept any certificate (`GOVMOMI_INSECURE=true`).
    Insecure,
}

impl Default for TlsTrust {
    fn default() -> Self {
        TlsTrust::Verify { extra_ca_pem: None }
    }
}

impl TlsTrust {
    /// The trust mode upstream's `GOVMOMI_INSECURE` selects: only a literal `true` (any case)
    /// opts out of verification; otherwise verify, with `ca_pem` (the secret's `ca.crt`) added.
    pub fn from_env_values(insecure: Option<&str>, ca_pem: Option<String>) -> Self {
        if insecure.is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            TlsTrust::Insecure
        } else {
            TlsTrust::Verify {
                extra_ca_pem: ca_pem.filter(|p| !p.trim().is_empty()),
            }
        }
    }
}

/// Parses a SHA-256 thumbprint written as hex with optional `:` separators.
pub fn parse_thumbprint(text: &str) -> Result<[u8; 32], Error> {
    let hex_digits: String = text
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    let bytes = hex::decode(&hex_digits)
        .map_err(|e| Error::TlsConfig(format!("thumbprint {text:?} is not hex: {e}")))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        Error::TlsConfig(format!(
            "thumbprint {text:?} has {} bytes, a SHA-256 thumbprint has 32",
            b.len()
        ))
    })
}

/// The HTTP side of a client: shared by every clone of a `Client`.
#[derive(Debug, Clone)]
pub struct Transport {
    http: reqwest::Client,
    sdk_url: Url,
    timeout: Duration,
    round_trips: Arc<AtomicU64>,
}

impl Transport {
    pub fn new(sdk_url: Url, trust: &TlsTrust, timeout: Duration) -> Result<Self, Error> {
        // The workspace uses ring only; make it the process default if nobody did yet, so that
        // reqwest's verifier has a provider even when the caller forgot.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = reqwest::Client::builder()
            .cookie_store(true)
            .connect_timeout(timeout)
            // Per-read, not per-request: a multi-GiB /folder transfer must not be cut off, a
            // stalled one must.
            .read_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none());
        let builder = match trust {
            TlsTrust::Verify { extra_ca_pem } => {
                let mut b = builder.tls_backend_rustls();
                if let Some(pem) = extra_ca_pem {
                    let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                        .map_err(|e| Error::TlsConfig(format!("CA bundle: {e}")))?;
                    if certs.is_empty() {
                        return Err(Error::TlsConfig(
                            "the CA bundle holds no certificate".into(),
                        ));
                    }
                    for cert in certs {
                        b = b.add_root_certificate(cert);
                    }
                }
                b
            }
            TlsTrust::Thumbprint(tp) => {
                let expected = parse_thumbprint(tp)?;
                builder.tls_backend_preconfigured(pinned_config(Some(expected))?)
            }
            TlsTrust::Insecure => builder.tls_backend_preconfigured(pinned_config(None)?),
        };
        let http = builder
            .build()
            .map_err(|e| Error::TlsConfig(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            sdk_url,
            timeout,
            round_trips: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn sdk_url(&self) -> &Url {
        &self.sdk_url
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// HTTP requests sent so far (SOAP calls and datastore file transfers).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    pub(crate) fn count_round_trip(&self) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
    }

    /// POSTs one SOAP envelope; returns the HTTP status and the (size-capped) body.
    pub async fn post_soap(
        &self,
        method: &str,
        soap_action: &str,
        envelope: String,
    ) -> Result<(u16, Bytes), Error> {
        self.count_round_trip();
        let map_err = |e: reqwest::Error| self.map_error(method, e);
        let response = self
            .http
            .post(self.sdk_url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .header("SOAPAction", soap_action)
            .body(envelope)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(e) => return Err(self.with_presented_certificate(map_err(e)).await),
        };
        let status = response.status().as_u16();
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(map_err)?;
            if body.len() + chunk.len() > MAX_SOAP_RESPONSE {
                return Err(Error::Protocol {
                    method: method.to_owned(),
                    reason: format!("answer larger than {MAX_SOAP_RESPONSE} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, Bytes::from(body)))
    }

    pub(crate) fn map_error(&self, method: &str, e: reqwest::Error) -> Error {
        if e.is_timeout() {
            Error::Timeout {
                method: method.to_owned(),
                timeout: self.timeout,
            }
        } else if let Some(reason) = certificate_problem(&e) {
            Error::UntrustedCertificate {
                url: self.sdk_url.to_string(),
                reason,
                presented: String::new(),
            }
        } else {
            Error::Http {
                method: method.to_owned(),
                url: self.sdk_url.to_string(),
                source: e,
            }
        }
    }
}

/// The TLS verification failure behind a request error, if that is what it is. hyper wraps the
/// rustls error in `io::Error`s, whose `source()` skips the wrapped error, so look inside them.
impl Transport {
    /// Adds the fingerprint of the certificate the endpoint presents to an untrusted-certificate
    /// error, read with a second handshake that checks nothing (it only names what was refused).
    async fn with_presented_certificate(&self, error: Error) -> Error {
        let Error::UntrustedCertificate { url, reason, .. } = error else {
            return error;
        };
        let presented = match presented_fingerprint(&self.sdk_url, self.timeout).await {
            Some(fingerprint) => {
                format!("; it presents the certificate with SHA-256 fingerprint {fingerprint}")
            }
            None => String::new(),
        };
        Error::UntrustedCertificate {
            url,
            reason,
            presented,
        }
    }
}

/// The SHA-256 fingerprint (colon-separated hex) of the certificate `url` presents.
async fn presented_fingerprint(url: &Url, timeout: Duration) -> Option<String> {
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(pinned_config(None).ok()?)
        .tls_info(true)
        .timeout(timeout)
        .build()
        .ok()?;
    let response = client.get(url.clone()).send().await.ok()?;
    let info = response.extensions().get::<reqwest::tls::TlsInfo>()?;
    let digest = Sha256::digest(info.peer_certificate()?);
    Some(
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// What is wrong with a refused certificate, in words.
fn certificate_words(tls: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match tls {
        rustls::Error::InvalidCertificate(problem) => match problem {
            C::UnknownIssuer => {
                "it is not signed by a CA this client trusts (a self-signed certificate or a \
                 private CA)"
                    .into()
            }
            C::Expired | C::ExpiredContext { .. } => "it has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "it is not valid yet (check the clocks)".into()
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "it is not issued for this host name".into()
            }
            C::BadSignature => "its signature does not verify".into(),
            C::BadEncoding => "it cannot be parsed".into(),
            C::Revoked => "it is revoked".into(),
            C::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
                "the endpoint presents a CA certificate as its own (a CA certificate used as a \
                 server certificate)"
                    .into()
            }
            other => format!("it is refused ({other:?})"),
        },
        other => other.to_string(),
    }
}

fn certificate_problem(e: &reqwest::Error) -> Option<String> {
    let mut pending: Vec<&(dyn std::error::Error + 'static)> =
        std::error::Error::source(e).into_iter().collect();
    while let Some(err) = pending.pop() {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            if matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::General(_)
            ) {
                return Some(certificate_words(tls));
            }
            continue;
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            pending.push(inner);
        }
        pending.extend(err.source());
    }
    None
}

/// A rustls config that checks only the end-entity certificate's SHA-256 (`Some`) or nothing.
fn pinned_config(expected: Option<[u8; 32]>) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCertificate {
        expected,
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::TlsConfig(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

/// Certificate check for `Thumbprint` (pin) and `Insecure` (no pin) trust. Handshake
/// signatures are still verified, so the peer must hold the pinned certificate's key.
#[derive(Debug)]
struct PinnedCertificate {
    expected: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.expected {
            None => Ok(ServerCertVerified::assertion()),
            Some(expected) => {
                let actual: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
                if actual == expected {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(format!(
                        "server certificate SHA-256 thumbprint {} does not match the pinned {}",
                        hex::encode(actual),
                        hex::encode(expected)
                    )))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Turns what the user gave (`vc.example.com`, `vc:8443`, `https://vc/sdk`) into the SDK URL.
pub fn sdk_url(endpoint: &str) -> Result<Url, Error> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = endpoint.trim();
    if trimmed.is_empty() {
        return Err(invalid("empty"));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("https://{trimmed}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "https" {
        return Err(invalid("only https is supported"));
    }
    if url.host_str().is_none() {
        return Err(invalid("no host"));
    }
    // Credentials in the URL are ignored: they come from the config, never from logs of URLs.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if url.path().is_empty() || url.path() == "/" {
        url.set_path("/sdk");
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_url_accepts_hosts_and_urls() {
        assert_eq!(
            sdk_url("vc.example.com").unwrap().as_str(),
            "https://vc.example.com/sdk"
        );
        assert_eq!(
            sdk_url("127.0.0.1:8989").unwrap().as_str(),
            "https://127.0.0.1:8989/sdk"
        );
        assert_eq!(
            sdk_url("https://u:p@vc:443/sdk").unwrap().as_str(),
            "https://vc/sdk",
            "credentials are dropped and the default port elided"
        );
        assert!(sdk_url("http://vc/sdk").is_err());
        assert!(sdk_url(" ").is_err());
    }

    #[test]
    fn thumbprints_parse_with_or_without_colons() {
        let hex64 = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_thumbprint(&hex64).unwrap(), [0xab; 32]);
        assert_eq!(parse_thumbprint(&colons).unwrap(), [0xab; 32]);
        assert!(parse_thumbprint("abcd").is_err());
        assert!(parse_thumbprint("zz").is_err());
    }

    #[test]
    fn govmomi_insecure_only_opts_out_on_true() {
        assert_eq!(
            TlsTrust::from_env_values(Some("TRUE"), None),
            TlsTrust::Insecure
        );
        assert_eq!(
            TlsTrust::from_env_values(Some("1"), Some("pem".into())),
            TlsTrust::Verify {
                extra_ca_pem: Some("pem".into())
            }
        );
        assert_eq!(
            TlsTrust::from_env_values(None, Some(" ".into())),
            TlsTrust::default()
        );
    }
}
