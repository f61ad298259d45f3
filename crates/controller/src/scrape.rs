//! Reading a populator pod's metrics: HTTPS to the pod's IP with a timeout, the pod's own
//! self-signed certificate accepted (the connection goes to the IP the API server reported for
//! that pod and nowhere else), the Prometheus text parsed for the names of the shared contract.

use std::collections::BTreeMap;
use std::time::Duration;

use co_api::VSphereXcopyVolumePopulatorStatus;
use co_api::contract::metrics;

/// One sample: the metric name, its labels, its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text exposition format (comments skipped, malformed lines ignored).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let mut end = None;
        loop {
            // key
            let (key_start, _) = *chars.peek()?;
            let mut key_end = key_start;
            for (i, c) in chars.by_ref() {
                if c == '=' || c == '}' {
                    key_end = i;
                    if c == '}' {
                        end = Some(i);
                    }
                    break;
                }
            }
            if end.is_some() {
                break;
            }
            let key = body[key_start..key_end]
                .trim()
                .trim_start_matches(',')
                .trim();
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                let (_, c) = chars.next()?;
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break,
                    other => value.push(other),
                }
            }
            labels.insert(key.to_owned(), value);
            match chars.peek() {
                Some((_, ',')) => {
                    chars.next();
                    if let Some((i, '}')) = chars.peek().copied() {
                        end = Some(i);
                        break;
                    }
                }
                Some((i, '}')) => {
                    end = Some(*i);
                    break;
                }
                _ => return None,
            }
        }
        rest = &body[end? + 1..];
    }
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// What a scrape says about one copy, as the CR status fields upstream's controller fills (only
/// the ones the scrape had).
pub fn status_from(samples: &[Sample], owner_uid: &str) -> VSphereXcopyVolumePopulatorStatus {
    use metrics::labels;
    let mine = |name: &str| {
        samples.iter().find(|s| {
            s.name == name
                && s.labels
                    .get(labels::OWNER_UID)
                    .is_none_or(|u| u == owner_uid)
        })
    };
    let mut status = VSphereXcopyVolumePopulatorStatus::default();
    if let Some(progress) = mine(metrics::PROGRESS) {
        let percent = progress.value.clamp(0.0, 100.0) as i32;
        status.progress = Some(percent.to_string());
        status.percent = Some(percent);
    }
    if let Some(xcopy) = mine(metrics::XCOPY_USED) {
        status.xcopy_used = Some(format!("{}", xcopy.value as i64));
        status.clone_method = xcopy.labels.get(labels::CLONE_METHOD).cloned();
        status.storage_vendor = xcopy.labels.get(labels::STORAGE_VENDOR).cloned();
    }
    if let Some(vib) = mine(metrics::VIB_VERSION) {
        status.vib_version = vib.labels.get("version").cloned();
    }
    if let Some(copied) = mine(metrics::COPIED_BYTES) {
        status.copied_bytes = Some(copied.value as i64);
    }
    for sample in samples
        .iter()
        .filter(|s| s.name == metrics::SOURCE_DISK_BYTES)
        .filter(|s| {
            s.labels
                .get(labels::OWNER_UID)
                .is_none_or(|u| u == owner_uid)
        })
    {
        let bytes = (sample.value as i64).to_string();
        match sample.labels.get("type").map(String::as_str) {
            Some("provisioned") => {
                status.total_bytes = Some(sample.value as i64);
                status.provisioned_bytes = Some(bytes);
            }
            Some("datastore_allocated") => status.allocated_bytes = Some(bytes),
            _ => {}
        }
    }
    if let Some(done) = mine(metrics::COPY_DURATION_SECONDS) {
        let label = |key: &str| done.labels.get(key).filter(|v| !v.is_empty()).cloned();
        status.copy_duration_seconds = Some(format!("{}", done.value));
        status.result = label(labels::RESULT);
        status.storage_vendor = label(labels::STORAGE_VENDOR).or(status.storage_vendor);
        status.clone_method = label(labels::CLONE_METHOD).or(status.clone_method);
        status.storage_protocol = label(labels::STORAGE_PROTOCOL);
        status.xcopy_used = label(labels::XCOPY_USED).or(status.xcopy_used);
    }
    status
}

/// Builds the HTTPS client for pod scrapes. Only ever given `https://<pod IP>:<port>/metrics`
/// URLs: the pod's certificate is self-signed and minted at its start, so there is nothing to
/// verify it against; the pod IP is what the API server says the pod has.
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_danger_accept_invalid_certs(true)
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
}

/// `https://<ip>:<port>/metrics`, with IPv6 addresses bracketed.
pub fn url(pod_ip: &str, port: u16) -> String {
    if pod_ip.contains(':') {
        format!("https://[{pod_ip}]:{port}{}", metrics::PATH)
    } else {
        format!("https://{pod_ip}:{port}{}", metrics::PATH)
    }
}

/// One scrape.
pub async fn scrape(
    client: &reqwest::Client,
    pod_ip: &str,
    port: u16,
) -> Result<Vec<Sample>, reqwest::Error> {
    let text = client
        .get(url(pod_ip, port))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP vsphere_xcopy_volume_populator_progress Progress
# TYPE vsphere_xcopy_volume_populator_progress gauge
vsphere_xcopy_volume_populator_progress{owner_uid="u1"} 42
vsphere_xcopy_volume_populator_xcopy_used{owner_uid="u1",storage_vendor="ontap",clone_method="vib"} 1
vsphere_xcopy_volume_populator_vib_version{owner_uid="u1",version="0.3.3"} 1
vsphere_xcopy_volume_populator_copied_bytes{owner_uid="u1"} 1048576
vsphere_xcopy_volume_populator_source_disk_bytes{owner_uid="u1",storage_vendor="ontap",clone_method="vib",storage_protocol="iscsi",type="provisioned"} 67108864
vsphere_xcopy_volume_populator_source_disk_bytes{owner_uid="u1",storage_vendor="ontap",clone_method="vib",storage_protocol="iscsi",type="datastore_allocated"} 4194304
vsphere_xcopy_volume_populator_copy_duration_seconds{owner_uid="u1",result="success",storage_vendor="ontap",clone_method="vib",xcopy_used="1",storage_protocol="iscsi"} 12.5
vsphere_xcopy_volume_populator_progress{owner_uid="other"} 7
"#;

    #[test]
    fn a_scrape_becomes_upstream_status_fields() {
        let status = status_from(&parse(TEXT), "u1");
        assert_eq!(status.progress.as_deref(), Some("42"));
        assert_eq!(status.percent, Some(42));
        assert_eq!(status.xcopy_used.as_deref(), Some("1"));
        assert_eq!(status.vib_version.as_deref(), Some("0.3.3"));
        assert_eq!(status.copied_bytes, Some(1 << 20));
        assert_eq!(status.total_bytes, Some(64 << 20));
        assert_eq!(status.provisioned_bytes.as_deref(), Some("67108864"));
        assert_eq!(status.allocated_bytes.as_deref(), Some("4194304"));
        assert_eq!(status.copy_duration_seconds.as_deref(), Some("12.5"));
        assert_eq!(status.result.as_deref(), Some("success"));
        assert_eq!(status.clone_method.as_deref(), Some("vib"));
        assert_eq!(status.storage_protocol.as_deref(), Some("iscsi"));
        assert_eq!(status.storage_vendor.as_deref(), Some("ontap"));
    }

    #[test]
    fn another_owners_series_is_ignored_and_escapes_are_read() {
        let status = status_from(&parse(TEXT), "other");
        assert_eq!(status.progress.as_deref(), Some("7"));
        assert_eq!(status.xcopy_used, None);
        let samples = parse("m{a=\"x\\\"y\",b=\"\"} 3\nbroken{ 1\nm2 4 1700000000\n");
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].labels["a"], "x\"y");
        assert_eq!(samples[0].labels["b"], "");
        assert_eq!(samples[1].value, 4.0);
    }

    #[test]
    fn ipv6_pod_addresses_are_bracketed() {
        assert_eq!(url("10.0.0.7", 8443), "https://10.0.0.7:8443/metrics");
        assert_eq!(url("fd00::7", 8443), "https://[fd00::7]:8443/metrics");
    }
}
