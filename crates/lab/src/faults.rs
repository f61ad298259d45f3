//! Latency and fault injection per call site (SOAP method, esxcli command, array endpoint, SSH op).
//!
//! A call site is a string: `soap:<Method>`, `esxcli:<namespace words> <command>` (e.g.
//! `esxcli:storage core device list`), `array:<array>:<HTTP method> <path>`, `ssh:<op>` (`probe`, `version`,
//! `clone`, `task-get`, `task-clean`, `task-abort`). A rule's `site` matches exactly, or as a prefix when it
//! ends in `*`. Rules come from the scenario and can be changed while the lab runs.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One injection rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Call site, exact or prefix with a trailing `*`.
    pub site: String,
    /// Delay before the call is served.
    #[serde(default)]
    pub latency_ms: u64,
    /// When set, the call fails with this message (in the protocol's native error form). At an
    /// array site a message that starts with an HTTP status and a space (`401 session expired`)
    /// is answered with that status; any other message with 503.
    #[serde(default)]
    pub error: Option<String>,
    /// How many calls the error applies to; unlimited when absent. Latency always applies.
    #[serde(default)]
    pub times: Option<u32>,
}

impl FaultRule {
    fn matches(&self, site: &str) -> bool {
        match self.site.strip_suffix('*') {
            Some(prefix) => site.starts_with(prefix),
            None => self.site == site,
        }
    }
}

/// An error a fault rule injected into a call.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("injected fault at {site}: {message}")]
pub struct InjectedFault {
    pub site: String,
    pub message: String,
}

impl InjectedFault {
    /// The HTTP status an array endpoint answers this fault with: the status the message starts
    /// with, else 503 (busy).
    pub fn http_status(&self) -> u16 {
        self.message
            .split_once(' ')
            .and_then(|(code, _)| code.parse::<u16>().ok())
            .filter(|code| (400..600).contains(code))
            .unwrap_or(503)
    }
}

/// One call a lab endpoint served while call recording was on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub site: String,
    /// When the call arrived (before its injected latency).
    pub at: Instant,
    pub injected_latency: Duration,
}

/// The live set of fault rules, shared by every endpoint of a lab. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    rules: Arc<Mutex<Vec<FaultRule>>>,
    /// `Some` while recording: benchmarks read the call timeline of one run from it.
    calls: Arc<Mutex<Option<Vec<CallRecord>>>>,
}

impl FaultPlan {
    pub fn new(rules: Vec<FaultRule>) -> FaultPlan {
        FaultPlan {
            rules: Arc::new(Mutex::new(rules)),
            calls: Arc::default(),
        }
    }

    /// Starts recording every call site served from now on (dropping what was recorded before).
    pub fn record_calls(&self) {
        *self.calls.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
    }

    /// The calls recorded since [`FaultPlan::record_calls`]; recording goes on with an empty list.
    pub fn take_calls(&self) -> Vec<CallRecord> {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        match calls.as_mut() {
            Some(list) => std::mem::take(list),
            None => Vec::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<FaultRule>> {
        // A panic while holding this lock cannot leave the rule list half-updated, so poisoning is moot.
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a rule; later rules are consulted after earlier ones.
    pub fn add(&self, rule: FaultRule) {
        self.lock().push(rule);
    }

    /// Removes every rule for exactly this site pattern.
    pub fn clear_site(&self, site: &str) {
        self.lock().retain(|r| r.site != site);
    }

    /// Removes all rules.
    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn rules(&self) -> Vec<FaultRule> {
        self.lock().clone()
    }

    /// Decides what happens to one call at `site`: the total latency to add and the injected error, if
    /// any. Consumes one use of a counted error rule.
    pub fn decide(&self, site: &str) -> (Duration, Option<InjectedFault>) {
        let mut rules = self.lock();
        let mut latency = Duration::ZERO;
        let mut fault = None;
        for rule in rules.iter_mut().filter(|r| r.matches(site)) {
            latency += Duration::from_millis(rule.latency_ms);
            if fault.is_some() {
                continue;
            }
            if let Some(message) = &rule.error {
                match &mut rule.times {
                    Some(0) => continue,
                    Some(n) => *n -= 1,
                    None => {}
                }
                fault = Some(InjectedFault {
                    site: site.to_owned(),
                    message: message.clone(),
                });
            }
        }
        (latency, fault)
    }

    /// Applies the rules for one call: waits the injected latency, then returns the injected error.
    pub async fn apply(&self, site: &str) -> Result<(), InjectedFault> {
        let at = Instant::now();
        let (latency, fault) = self.decide(site);
        if let Some(calls) = self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            calls.push(CallRecord {
                site: site.to_owned(),
                at,
                injected_latency: latency,
            });
        }
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match fault {
            Some(f) => {
                tracing::info!(site, message = %f.message, "injecting fault");
                Err(f)
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(site: &str, error: Option<&str>, times: Option<u32>, latency_ms: u64) -> FaultRule {
        FaultRule {
            site: site.into(),
            latency_ms,
            error: error.map(Into::into),
            times,
        }
    }

    #[test]
    fn an_array_fault_is_answered_with_the_status_its_message_starts_with() {
        let fault = |message: &str| InjectedFault {
            site: "array:a1:GET /x".into(),
            message: message.into(),
        };
        assert_eq!(fault("401 session expired").http_status(), 401);
        assert_eq!(fault("429 slow down").http_status(), 429);
        assert_eq!(fault("busy").http_status(), 503);
        assert_eq!(fault("200 fine").http_status(), 503, "never a success");
        assert_eq!(fault("4010 odd").http_status(), 503);
    }

    #[test]
    fn counted_errors_run_out_and_latency_adds_up() {
        let plan = FaultPlan::new(vec![
            rule("soap:*", None, None, 5),
            rule("soap:RetrievePropertiesEx", Some("boom"), Some(2), 10),
        ]);
        for _ in 0..2 {
            let (latency, fault) = plan.decide("soap:RetrievePropertiesEx");
            assert_eq!(latency, Duration::from_millis(15));
            assert_eq!(fault.unwrap().message, "boom");
        }
        assert_eq!(plan.decide("soap:RetrievePropertiesEx").1, None);
        assert_eq!(plan.decide("soap:Login"), (Duration::from_millis(5), None));
        assert_eq!(
            plan.decide("esxcli:system version get"),
            (Duration::ZERO, None)
        );
    }

    #[test]
    fn runtime_changes_are_seen_by_clones() {
        let plan = FaultPlan::default();
        let seen_by_endpoint = plan.clone();
        plan.add(rule("ssh:clone", Some("no space"), None, 0));
        assert!(seen_by_endpoint.decide("ssh:clone").1.is_some());
        plan.clear_site("ssh:clone");
        assert!(seen_by_endpoint.decide("ssh:clone").1.is_none());
    }
}
