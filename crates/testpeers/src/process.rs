//! The lifetime of a peer process a test starts for itself: killed and reaped on drop, with its log at
//! hand for error messages.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};

/// A running peer process owned by one test.
#[derive(Debug)]
pub(crate) struct PeerProcess {
    child: Child,
    log_path: PathBuf,
}

impl PeerProcess {
    pub(crate) fn new(child: Child, log_path: PathBuf) -> Self {
        Self { child, log_path }
    }

    /// The exit status if the process has already ended.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of the process's log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        // Already-exited processes make kill() fail; wait() still reaps them.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last 30 lines of a log file (or a note that it is unreadable).
pub(crate) fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(30);
            format!(
                "last lines of {}:\n{}",
                path.display(),
                lines[from..].join("\n")
            )
        }
        Err(e) => format!("(log {} unreadable: {e})", path.display()),
    }
}
