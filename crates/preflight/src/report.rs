//! The report: one [`Check`] per thing checked, one [`DiskPrediction`] per disk, and the two
//! renderings — a table for a person at a terminal, JSON for scripts.

use std::fmt::Write as _;

use serde::Serialize;

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    /// Works, but slower or riskier than it could; the remedy says how to improve it.
    Warn,
    /// A copy would fail or silently fall back to a host copy; the remedy says how to fix it.
    Fail,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
        }
    }
}

/// One check of one subject (a host, a disk, the array, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The check's id, as `docs/preflight.md` and [`crate::catalog::CHECKS`] list it.
    pub id: &'static str,
    /// What was checked: `esxi-1.lab.local`, `[ds1] vm-1/vm-1.vmdk`, `vCenter`, `array`.
    pub subject: String,
    pub outcome: Outcome,
    /// What was found.
    pub message: String,
    /// What to do about it; empty for a pass.
    pub remedy: String,
}

impl Check {
    pub fn pass(id: &'static str, subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            id,
            subject: subject.into(),
            outcome: Outcome::Pass,
            message: message.into(),
            remedy: String::new(),
        }
    }

    pub fn warn(
        id: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Self {
        Self::finding(Outcome::Warn, id, subject, message, remedy)
    }

    pub fn fail(
        id: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Self {
        Self::finding(Outcome::Fail, id, subject, message, remedy)
    }

    fn finding(
        outcome: Outcome,
        id: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Self {
        Self {
            outcome,
            remedy: remedy.into(),
            ..Self::pass(id, subject, message)
        }
    }
}

/// How a disk's data will reach its volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyPath {
    /// The array copies the vVol itself.
    ArrayCopyVvol,
    /// The array copies the RDM's volume itself.
    ArrayCopyRdm,
    /// ESXi clones with SCSI XCOPY: the array moves the blocks.
    Xcopy,
    /// ESXi's data mover reads and writes every block (still no network copy, but far slower).
    HostCopy,
    /// The disk could not be examined.
    Unknown,
}

impl CopyPath {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyPath::ArrayCopyVvol => "array copy (vVol)",
            CopyPath::ArrayCopyRdm => "array copy (RDM)",
            CopyPath::Xcopy => "XCOPY",
            CopyPath::HostCopy => "host copy",
            CopyPath::Unknown => "unknown",
        }
    }
}

/// The predicted copy path of one disk, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskPrediction {
    pub vm: String,
    /// The disk's datastore path.
    pub disk: String,
    pub path: CopyPath,
    pub reason: String,
}

/// Everything one preflight run found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// True when no check failed (the process exits 0).
    pub ready: bool,
    /// Whether the run changed anything anywhere (only `--probe` would).
    pub writes: bool,
    pub checks: Vec<Check>,
    pub disks: Vec<DiskPrediction>,
}

impl Report {
    pub(crate) fn new(checks: Vec<Check>, disks: Vec<DiskPrediction>) -> Self {
        let ready = checks.iter().all(|c| c.outcome != Outcome::Fail);
        Self {
            ready,
            writes: false,
            checks,
            disks,
        }
    }

    /// This report with the checks of a `--probe` added: it wrote, and a failed probe step
    /// makes it not ready.
    pub fn with_probe(mut self, checks: Vec<Check>) -> Report {
        self.checks.extend(checks);
        self.writes = true;
        self.ready = self.checks.iter().all(|c| c.outcome != Outcome::Fail);
        self
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Fail)
    }

    /// The checks with `id`.
    pub fn checks_with_id<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Check> + 'a {
        self.checks.iter().filter(move |c| c.id == id)
    }

    /// The report as JSON (`-o json`).
    pub fn to_json(&self) -> String {
        // A report holds strings, enums and booleans only: serialising it cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as a table: one line per check, the remedy of each warning and failure under
    /// it, then the predicted path of each disk and the verdict.
    pub fn to_table(&self) -> String {
        let width = |texts: &mut dyn Iterator<Item = usize>| texts.max().unwrap_or(0);
        let id_width = width(&mut self.checks.iter().map(|c| c.id.len())).max(5);
        let subject_width =
            width(&mut self.checks.iter().map(|c| c.subject.chars().count())).max(7);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<6} {:<id_width$} {:<subject_width$} FINDING",
            "RESULT", "CHECK", "SUBJECT"
        );
        for check in &self.checks {
            let _ = writeln!(
                out,
                "{:<6} {:<id_width$} {:<subject_width$} {}",
                check.outcome.as_str().to_uppercase(),
                check.id,
                check.subject,
                check.message
            );
            if !check.remedy.is_empty() {
                for line in check.remedy.lines() {
                    let _ = writeln!(out, "{:<6} {:<id_width$}   → {line}", "", "");
                }
            }
        }
        if !self.disks.is_empty() {
            let _ = writeln!(out, "\nPREDICTED COPY PATH");
            for disk in &self.disks {
                let _ = writeln!(
                    out,
                    "{} ({}): {} — {}",
                    disk.disk,
                    disk.vm,
                    disk.path.as_str(),
                    disk.reason
                );
            }
        }
        let failed = self.failures().count();
        let warned = self
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Warn)
            .count();
        let _ = writeln!(
            out,
            "\n{} checks: {} failed, {} warnings. {} {}",
            self.checks.len(),
            failed,
            warned,
            if self.ready {
                "Ready to migrate."
            } else {
                "Not ready: fix the failures above."
            },
            if self.writes {
                "The probe wrote to its throw-away volume and undid its mappings (see probe.cleanup)."
            } else {
                "Nothing was changed."
            }
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_makes_the_report_not_ready_and_a_warning_does_not() {
        let warned = Report::new(
            vec![Check::warn(
                "host.max-hw-transfer-size",
                "h",
                "4096",
                "raise it",
            )],
            vec![],
        );
        assert!(warned.ready);
        let failed = Report::new(
            vec![
                Check::pass("vsphere.login", "vCenter", "ok"),
                Check::fail("host.max-lun", "h", "no id left", "raise Disk.MaxLUN"),
            ],
            vec![],
        );
        assert!(!failed.ready);
        let table = failed.to_table();
        assert!(table.contains("FAIL   host.max-lun"), "{table}");
        assert!(table.contains("→ raise Disk.MaxLUN"), "{table}");
        assert!(table.contains("Not ready"), "{table}");
        let json: serde_json::Value = serde_json::from_str(&failed.to_json()).unwrap();
        assert_eq!(json["ready"], false);
        assert_eq!(json["checks"][1]["outcome"], "fail");
        assert_eq!(json["checks"][1]["remedy"], "raise Disk.MaxLUN");
    }
}
