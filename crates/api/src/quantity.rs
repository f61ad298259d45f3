//! Kubernetes resource quantities as PVC sizes use them, read as bytes.

/// Parses the byte quantities PVCs use (`10Gi`, `500M`, `1073741824`, `1e9`).
pub fn parse_quantity_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        exponent if exponent.starts_with(['e', 'E']) => 10f64.powi(exponent[1..].parse().ok()?),
        _ => return None,
    };
    let value = number.parse::<f64>().ok()? * multiplier;
    (value.is_finite() && value >= 0.0).then(|| value.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_to_bytes() {
        assert_eq!(parse_quantity_bytes("64Mi"), Some(64 << 20));
        assert_eq!(parse_quantity_bytes("10Gi"), Some(10 << 30));
        assert_eq!(parse_quantity_bytes("1G"), Some(1_000_000_000));
        assert_eq!(parse_quantity_bytes("1073741824"), Some(1 << 30));
        assert_eq!(parse_quantity_bytes("1e3"), Some(1000));
        assert_eq!(parse_quantity_bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(parse_quantity_bytes("lots"), None);
    }
}
