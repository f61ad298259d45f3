//! Waiting for a condition that only shows from outside: another process's state, a protocol
//! answer, a file a peer writes. Where the code under test offers a notification (a channel, a
//! watch, an observer hook), tests await that instead; this is for everything that offers none.
//! The condition is re-checked at a short fixed cadence until a deadline, and the test fails with
//! what it was waiting for — the cadence bounds how soon the condition is seen, never whether.

use std::future::Future;
use std::time::Duration;

/// How often the condition is checked again.
const CADENCE: Duration = Duration::from_millis(20);

/// Re-checks `check` until it answers `Some`, and returns that; panics naming `what` once
/// `deadline` has passed without an answer.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(CADENCE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn answers_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        let answer = eventually(Duration::from_secs(5), "the third call", || {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            std::future::ready((n == 3).then_some(n))
        })
        .await;
        assert_eq!(answer, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for a condition that never holds")]
    async fn fails_naming_the_condition_at_the_deadline() {
        eventually(
            Duration::from_millis(50),
            "a condition that never holds",
            || std::future::ready(None::<()>),
        )
        .await;
    }
}
