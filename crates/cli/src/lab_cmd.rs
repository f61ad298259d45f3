//! `copy-offload lab serve`: the simulated vCenter, ESXi hosts and arrays of a scenario, served on
//! 127.0.0.1 until SIGINT/SIGTERM. Also owns what both lab subcommands share: the lab's data
//! directory and the connection details printed for people who point their own tools at the lab.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use co_lab::faults::FaultRule;
use co_lab::lab::{Lab, RunningLab};
use co_lab::scenario::Scenario;
use co_populator::ExitCode;
use tokio_util::sync::CancellationToken;

/// Arguments of `copy-offload lab serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Scenario file (YAML: arrays, hosts, datastores, VMs, faults). Default: the embedded
    /// scenario (two ESXi hosts, one ONTAP array, one VM with a 64 MiB disk).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Directory for the datastores and the array volumes; kept on exit. Default: a temporary
    /// directory, removed on exit.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Delay every call at a lab call site, e.g. `soap:RetrieveProperties=20` or
    /// `esxcli:vmkfstools taskGet=2000` (milliseconds; a trailing `*` in the site matches a prefix).
    #[arg(long, value_name = "SITE=MS", value_parser = parse_latency)]
    pub lab_latency: Vec<FaultRule>,
}

/// Parses `SITE=MS` into a latency-only fault rule.
pub fn parse_latency(text: &str) -> Result<FaultRule, String> {
    let (site, millis) = text.rsplit_once('=').ok_or_else(|| {
        format!("{text:?} is not SITE=MILLISECONDS, e.g. soap:RetrieveProperties=20")
    })?;
    if site.trim().is_empty() {
        return Err(format!("{text:?} names no call site"));
    }
    let latency_ms = millis
        .trim()
        .parse()
        .map_err(|_| format!("{millis:?} in {text:?} is not a number of milliseconds"))?;
    Ok(FaultRule {
        site: site.trim().to_owned(),
        latency_ms,
        error: None,
        times: None,
    })
}

/// Where a lab keeps its files: a directory the user chose (kept), or a temporary one (removed
/// when this value is dropped).
#[derive(Debug)]
pub enum LabDir {
    Chosen(PathBuf),
    Temporary(tempfile::TempDir),
}

impl LabDir {
    /// `chosen`, or a fresh temporary directory.
    pub fn new(chosen: Option<&Path>) -> std::io::Result<LabDir> {
        match chosen {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                Ok(LabDir::Chosen(dir.to_owned()))
            }
            None => tempfile::Builder::new()
                .prefix("copy-offload-lab-")
                .tempdir()
                .map(LabDir::Temporary),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            LabDir::Chosen(dir) => dir,
            LabDir::Temporary(dir) => dir.path(),
        }
    }
}

/// Everything a person needs to point `copy-offload populate`, pyvmomi or govc at the lab,
/// credentials included: the lab's passwords are fixed lab values, not secrets.
pub fn connection_details(lab: &RunningLab) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "vCenter     {}", lab.vcenter_url);
    let _ = writeln!(out, "  user      {}", lab.username);
    let _ = writeln!(out, "  password  {}", lab.password);
    let _ = writeln!(out, "  thumbprint {}", lab.thumbprint);
    let _ = writeln!(out, "  datacenter {}", lab.datacenter);
    for host in &lab.hosts {
        let _ = writeln!(
            out,
            "ESXi        {} ({})  ssh root@{} port {}",
            host.name,
            host.moid,
            host.ssh_addr.ip(),
            host.ssh_addr.port()
        );
        let _ = writeln!(out, "  host key  {}", host.ssh_host_key);
    }
    for array in &lab.arrays {
        let _ = writeln!(
            out,
            "array       {} ({})  {}",
            array.name,
            format!("{:?}", array.vendor).to_lowercase(),
            array.url
        );
        let _ = writeln!(out, "  user      {}", array.username);
        let _ = writeln!(out, "  password  {}", array.password);
        let _ = writeln!(out, "  svm       {}", array.svm);
    }
    let _ = writeln!(out, "lab files   {}", lab.data_dir.display());
    let _ = writeln!(out, "certificate {}", certificate_path(lab).display());
    let _ = writeln!(out, "\ngovc:");
    let _ = writeln!(
        out,
        "  export GOVC_URL={} GOVC_USERNAME={} GOVC_PASSWORD={} GOVC_INSECURE=true",
        lab.vcenter_url, lab.username, lab.password
    );
    let _ = writeln!(out, "pyvmomi:");
    let _ = writeln!(
        out,
        "  SmartConnect(host=\"{}\", port={}, user=\"{}\", pwd=\"{}\", disableSslCertValidation=True)",
        lab.vcenter_addr.ip(),
        lab.vcenter_addr.port(),
        lab.username,
        lab.password
    );
    out
}

/// Where the lab's certificate is written for clients that trust it by file (`cacert`).
pub fn certificate_path(lab: &RunningLab) -> PathBuf {
    lab.data_dir.join("lab-certificate.pem")
}

/// Writes the lab's certificate next to its data so `--vsphere-ca-cert`-style clients can use it.
pub fn write_certificate(lab: &RunningLab) -> std::io::Result<()> {
    std::fs::write(certificate_path(lab), &lab.certificate_pem)
}

/// Runs `work` with a token that the first SIGINT/SIGTERM cancels; the process then stays up
/// until `work` has cleaned up and returned.
pub async fn until_signalled<F, Fut>(work: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = ExitCode>,
{
    let cancel = CancellationToken::new();
    let listener = match co_populator::cancel_on_signals(cancel.clone()) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot install the SIGINT/SIGTERM handler: {e}");
            return ExitCode::Internal;
        }
    };
    let code = work(cancel).await;
    listener.abort();
    code
}

/// Runs `copy-offload lab serve` until `cancel` (SIGINT/SIGTERM) fires.
pub async fn serve(args: ServeArgs, cancel: CancellationToken) -> ExitCode {
    let mut scenario = match &args.scenario {
        None => Scenario::default_embedded(),
        Some(path) => match std::fs::read_to_string(path) {
            Err(e) => {
                eprintln!(
                    "cannot read scenario {}: {e}; check the path",
                    path.display()
                );
                return ExitCode::BadArguments;
            }
            Ok(text) => match Scenario::from_yaml(&text) {
                Ok(scenario) => scenario,
                Err(e) => {
                    eprintln!("scenario {}: {e}", path.display());
                    return ExitCode::BadArguments;
                }
            },
        },
    };
    scenario.faults.extend(args.lab_latency);
    let dir = match LabDir::new(args.data_dir.as_deref()) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("cannot create the lab data directory: {e}; pass a writable --data-dir");
            return ExitCode::Permanent;
        }
    };
    let lab = match Lab::start(scenario, dir.path()).await {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("the lab did not start: {e}");
            return ExitCode::Permanent;
        }
    };
    if let Err(e) = write_certificate(&lab) {
        tracing::warn!(error = %e, "could not write the lab certificate file");
    }
    {
        let mut stdout = std::io::stdout().lock();
        let _ = write!(stdout, "{}", connection_details(&lab));
        let _ = writeln!(stdout, "\nlab ready; press Ctrl-C to stop");
        let _ = stdout.flush();
    }
    cancel.cancelled().await;
    lab.shutdown().await;
    println!("lab stopped");
    ExitCode::Success
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_rules_parse_and_explain_mistakes() {
        let rule = parse_latency("esxcli:vmkfstools taskGet=2000").unwrap();
        assert_eq!(rule.site, "esxcli:vmkfstools taskGet");
        assert_eq!(rule.latency_ms, 2000);
        assert!(rule.error.is_none());
        let prefix = parse_latency("array:ontap1:*=50").unwrap();
        assert_eq!(prefix.site, "array:ontap1:*");
        assert!(
            parse_latency("soap:Login")
                .unwrap_err()
                .contains("SITE=MILLISECONDS")
        );
        assert!(parse_latency("=5").unwrap_err().contains("no call site"));
        assert!(
            parse_latency("ssh:clone=fast")
                .unwrap_err()
                .contains("milliseconds")
        );
    }

    #[test]
    fn a_temporary_lab_dir_is_removed_and_a_chosen_one_kept() {
        let temporary = LabDir::new(None).unwrap();
        let path = temporary.path().to_owned();
        assert!(path.is_dir());
        drop(temporary);
        assert!(!path.exists());

        let parent = tempfile::tempdir().unwrap();
        let chosen_path = parent.path().join("lab");
        let chosen = LabDir::new(Some(&chosen_path)).unwrap();
        drop(chosen);
        assert!(chosen_path.is_dir());
    }
}
