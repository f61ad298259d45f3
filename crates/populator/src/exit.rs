//! Process exit codes of `copy-offload` and what each one tells the caller.
//!
//! Upstream exited 255 for every failure (core.md W15), so neither the controller nor a person
//! could tell "fix your configuration" from "try again". These codes separate them:
//!
//! | Code | Name | Meaning | What to do |
//! |---:|---|---|---|
//! | 0 | `Success` | The disk was copied (or `--version`/`crd` printed). | Nothing. |
//! | 1 | `Internal` | A bug or an unexpected state, or a subcommand that is not built yet. | Report it with the logs. |
//! | 2 | `BadArguments` | Arguments or environment are missing or invalid; nothing was contacted. | Fix the listed values (flags, env, Secret keys) and re-run. |
//! | 3 | `Permanent` | The copy failed and re-running will fail the same way: credentials refused, wrong LUN, no SAN adapters, unsupported disk. | Fix the environment as the error says, then re-run. |
//! | 4 | `Retryable` | A transient failure: a SOAP fault, HTTP 429/503, a dropped SSH session, a lost host lease. | Re-run; it may succeed as is. |
//! | 5 | `Cancelled` | Stopped by SIGTERM/SIGINT after cleaning up what it had changed. | Re-run when wanted. |

use std::fmt;

/// The exit status of a `copy-offload` run. See the module documentation for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExitCode {
    /// The work was done.
    Success = 0,
    /// A bug, an unexpected state, or a subcommand that is not built yet.
    Internal = 1,
    /// Invalid or missing arguments; reported before any network call.
    BadArguments = 2,
    /// A failure that needs user action before a re-run can succeed.
    Permanent = 3,
    /// A transient failure; a re-run may succeed unchanged.
    Retryable = 4,
    /// Cancelled by a signal, after cleanup.
    Cancelled = 5,
}

impl ExitCode {
    /// Every code, in numeric order.
    pub const ALL: [ExitCode; 6] = [
        Self::Success,
        Self::Internal,
        Self::BadArguments,
        Self::Permanent,
        Self::Retryable,
        Self::Cancelled,
    ];

    /// The numeric process status.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// One line saying what the code means, for documentation and logs.
    pub const fn meaning(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Internal => "internal error (a bug, or a subcommand that is not built yet)",
            Self::BadArguments => "bad arguments: missing or invalid flags or environment",
            Self::Permanent => "permanent failure: needs user action before a re-run",
            Self::Retryable => "retryable failure: a re-run may succeed",
            Self::Cancelled => "cancelled by a signal after cleanup",
        }
    }
}

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.meaning())
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers are a contract with the controller and with scripts; they must not drift.
    #[test]
    fn codes_are_pinned() {
        let pinned: Vec<(ExitCode, u8)> = ExitCode::ALL.iter().map(|c| (*c, c.code())).collect();
        assert_eq!(
            pinned,
            vec![
                (ExitCode::Success, 0),
                (ExitCode::Internal, 1),
                (ExitCode::BadArguments, 2),
                (ExitCode::Permanent, 3),
                (ExitCode::Retryable, 4),
                (ExitCode::Cancelled, 5),
            ]
        );
    }
}
