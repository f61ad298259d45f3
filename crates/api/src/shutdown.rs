//! The one way a long-running copy-offload controller learns it must stop: SIGTERM (what the
//! kubelet sends) or Ctrl-C. Shared by the populator controller and the planner so both stop on
//! the same signals.

/// Completes at the first SIGTERM or SIGINT. When SIGTERM cannot be listened for, says so and
/// waits for Ctrl-C only.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the process");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
