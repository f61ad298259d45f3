//! Signals: SIGTERM (pod deletion, eviction) and SIGINT (Ctrl-C) cancel the copy's token, so the
//! running clone is aborted on ESXi and the full cleanup runs within the pod's grace period
//! (upstream left vmkfstools running and cleaned with a cancelled context). The
//! process keeps running until the cleanup is done; further signals are only logged.

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Starts listening for SIGTERM and SIGINT; the first one cancels `cancel`. The listener stops
/// when `cancel` is cancelled by anyone and the returned task is dropped or aborted.
pub fn cancel_on_signals(cancel: CancellationToken) -> std::io::Result<JoinHandle<()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if cancel.is_cancelled() {
                warn!(
                    signal = name,
                    "signal received again; cleanup is already running and will finish"
                );
            } else {
                info!(
                    signal = name,
                    "signal received: aborting the copy and cleaning up"
                );
                cancel.cancel();
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn sigterm_cancels_the_token_and_the_process_survives() {
        let cancel = CancellationToken::new();
        let listener = cancel_on_signals(cancel.clone()).unwrap();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(10), cancel.cancelled())
            .await
            .expect("SIGTERM cancels the copy");
        listener.abort();
    }
}
