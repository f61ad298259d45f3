//! Process exit codes of `copy-offload` and the error classes behind them.
//!
//! Upstream exited 255 for every failure, so neither the controller nor a person could tell "fix
//! your configuration" from "try again". Every library error answers its [`ErrorClass`] once; the
//! exit code is a flat map of the class ([`ErrorClass::exit_code`]), and the controller maps a
//! pod's exit code back to the class ([`ExitCode::class`]) to decide whether to retry:
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

/// What kind of failure an error is: the one question every error of every crate answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Re-running unchanged fails the same way: a person must fix something first.
    Permanent,
    /// Transient: a re-run (after a backoff) may succeed unchanged.
    Retryable,
    /// Stopped on request (SIGTERM/SIGINT) after cleaning up.
    Cancelled,
    /// An unexpected state: a bug to report.
    Bug,
}

impl ErrorClass {
    /// The process exit code of a run that failed with this class.
    pub const fn exit_code(self) -> ExitCode {
        match self {
            Self::Permanent => ExitCode::Permanent,
            Self::Retryable => ExitCode::Retryable,
            Self::Cancelled => ExitCode::Cancelled,
            Self::Bug => ExitCode::Internal,
        }
    }

    /// Whether a re-run may help without anyone changing anything.
    pub const fn is_retryable(self) -> bool {
        matches!(self, Self::Retryable)
    }
}

impl ExitCode {
    /// The exit code for a numeric process status, if it is one of ours.
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| i32::from(c.code()) == code)
    }

    /// The failure class a (non-zero) exit code reports; `None` for success. Bad arguments are
    /// permanent: nothing was contacted, and the same arguments fail the same way.
    pub const fn class(self) -> Option<ErrorClass> {
        match self {
            Self::Success => None,
            Self::Internal => Some(ErrorClass::Bug),
            Self::BadArguments | Self::Permanent => Some(ErrorClass::Permanent),
            Self::Retryable => Some(ErrorClass::Retryable),
            Self::Cancelled => Some(ErrorClass::Cancelled),
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

    #[test]
    fn classes_and_codes_map_both_ways() {
        for class in [
            ErrorClass::Permanent,
            ErrorClass::Retryable,
            ErrorClass::Cancelled,
            ErrorClass::Bug,
        ] {
            assert_eq!(class.exit_code().class(), Some(class));
        }
        assert_eq!(ExitCode::from_code(4), Some(ExitCode::Retryable));
        assert_eq!(ExitCode::from_code(255), None);
        assert_eq!(ExitCode::BadArguments.class(), Some(ErrorClass::Permanent));
        assert_eq!(ExitCode::Success.class(), None);
    }
}
