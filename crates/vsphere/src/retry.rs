//! Which failures are worth a second try, and how long to wait between tries: bounded
//! exponential backoff with full jitter. Everything not classified transient surfaces at once.

use std::time::Duration;

use crate::error::Error;

/// Backoff settings for transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = never retry).
    pub attempts: u32,
    /// Upper bound of the first wait; doubles per retry.
    pub base_delay: Duration,
    /// Cap of any single wait.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
        }
    }
}

impl RetryPolicy {
    pub fn never() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }

    /// The wait before retry number `retry` (1-based): uniform in `[0, min(max, base·2^(retry-1))]`.
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        let cap = exp.min(self.max_delay);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rand::random_range(0..=nanos))
    }
}

/// True when `err` is the kind of failure that vanishes on retry and a retry is safe.
///
/// - A connection that could not be established: the request never reached the server.
/// - HTTP 502/503/504 from a proxy or an overloaded vCenter.
/// - SOAP faults with no cause (the seed's "SOAP error with no apparent root cause that vanishes
///   on retry"), `SystemError` and `HostCommunication`: the server answered that the method did
///   not run, so running it again cannot double its effect — but only for calls marked
///   idempotent, since a state-changing call may have partly happened.
///
/// Timeouts are never retried here: the server may still be executing the call.
pub fn is_transient(err: &Error, idempotent: bool) -> bool {
    // Only failures of the retryable class, and of those only the ones that prove the call did
    // not run (or cannot double its effect).
    err.class().is_retryable()
        && match err {
            Error::Http { source, .. } => source.is_connect(),
            Error::HttpStatus { status, .. } => matches!(status, 502..=504),
            Error::Fault { .. } => idempotent,
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Fault, FaultKind};

    fn fault(kind: FaultKind, detail_type: &str) -> Error {
        Error::Fault {
            method: "M".into(),
            fault: Fault {
                kind,
                message: "boom".into(),
                detail_type: detail_type.into(),
            },
        }
    }

    #[test]
    fn delays_are_bounded_and_grow() {
        let p = RetryPolicy::default();
        for retry in 1..40 {
            assert!(p.delay(retry) <= p.max_delay);
        }
        let first_cap = p.base_delay;
        for _ in 0..100 {
            assert!(p.delay(1) <= first_cap);
        }
    }

    #[test]
    fn only_transient_faults_are_retried() {
        assert!(is_transient(&fault(FaultKind::Other, ""), true));
        assert!(is_transient(
            &fault(FaultKind::SystemError, "SystemError"),
            true
        ));
        assert!(!is_transient(
            &fault(FaultKind::SystemError, "SystemError"),
            false
        ));
        assert!(!is_transient(
            &fault(FaultKind::InvalidLogin, "InvalidLogin"),
            true
        ));
        assert!(!is_transient(
            &fault(FaultKind::Other, "FileNotFound"),
            true
        ));
        assert!(!is_transient(
            &Error::Timeout {
                method: "M".into(),
                timeout: Duration::from_secs(1)
            },
            true
        ));
        assert!(is_transient(
            &Error::HttpStatus {
                method: "M".into(),
                status: 503,
                body: String::new()
            },
            false
        ));
    }
}
