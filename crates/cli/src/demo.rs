//! `copy-offload lab demo`: the project's main job end to end on an in-process lab.
//!
//! The demo only sets the stage and checks the result: it starts the lab with a VM whose disks
//! hold a known pattern, creates the target volumes on the simulated array (mapped to a worker
//! node, as a PVC's volume is while its populator runs) and checksums the source. The copy itself
//! is the real `populate` code path, talking SOAP to the lab's vCenter (certificate pinned by
//! thumbprint), REST to the lab's array and esxcli or SSH to the lab's ESXi host over loopback.
//! Afterwards the demo checksums the targets, checks that nothing the copy created is left on the
//! array or the hosts, and prints a summary. SIGINT/SIGTERM cancel the copies (their cleanup still
//! runs) and shut the lab down.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use clap::Parser as _;
use co_api::CloneMethod;
use co_api::contract::flags;
use co_esxi::ssh::HostKeyPolicy;
use co_lab::SimHost;
use co_lab::faults::FaultRule;
use co_lab::lab::{Lab, RunningLab};
use co_lab::rig::{Rig, TargetVolume, WORKER_GROUP};
use co_lab::scenario::{DiskSpec, Scenario, VendorSpec};
use co_populator::ExitCode;
use co_populator::PopulateArgs;
use co_populator::journal::CleanupStep;
use co_populator::{CopyReport, Phase, PhaseObserver};
use co_populator::{RunOptions, RunSummary, run_with};
use co_storage::GroupRef;
use co_vsphere::TlsTrust;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::lab_cmd::{LabDir, connection_details, parse_latency, write_certificate};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Storage vendor of the simulated array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoVendor {
    /// NetApp ONTAP (REST API, Trident `ontap-san` volumes).
    Ontap,
    /// Pure FlashArray (REST 2.x, Portworx volumes, API token).
    #[value(name = "pureFlashArray")]
    PureFlashArray,
    /// Dell PowerStore (REST API, CSI PowerStore volumes).
    Powerstore,
    /// IBM FlashSystem / Storage Virtualize (REST API, IBM block CSI volumes).
    Flashsystem,
    /// Dell PowerMax (Unisphere REST, CSI PowerMax volumes).
    Powermax,
    /// Infinidat InfiniBox (REST API, InfiniBox CSI volumes).
    Infinibox,
    /// Dell PowerFlex (REST gateway, CSI PowerFlex volumes; the hosts reach it through their
    /// SDC, so the copy is a host copy, not XCOPY).
    Powerflex,
    /// HPE Primera / 3PAR (WSAPI, HPE CSI driver volumes).
    Primera3par,
    /// Hitachi Vantara VSP (Configuration Manager REST API, Hitachi CSI volumes).
    Vantara,
}

impl DemoVendor {
    fn spec(self) -> VendorSpec {
        match self {
            DemoVendor::Ontap => VendorSpec::Ontap,
            DemoVendor::PureFlashArray => VendorSpec::PureFlashArray,
            DemoVendor::Powerstore => VendorSpec::PowerStore,
            DemoVendor::Flashsystem => VendorSpec::FlashSystem,
            DemoVendor::Powermax => VendorSpec::PowerMax,
            DemoVendor::Infinibox => VendorSpec::InfiniBox,
            DemoVendor::Powerflex => VendorSpec::PowerFlex,
            DemoVendor::Primera3par => VendorSpec::Primera3Par,
            DemoVendor::Vantara => VendorSpec::Vantara,
        }
    }
}

/// How the populator reaches vmkfstools on the lab's ESXi host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoMethod {
    /// esxcli through vCenter (the vmkfstools-wrapper VIB is installed on the VM's host).
    Vib,
    /// A command-restricted SSH key the demo installs on the host.
    Ssh,
}

impl From<DemoMethod> for CloneMethod {
    fn from(method: DemoMethod) -> Self {
        match method {
            DemoMethod::Vib => CloneMethod::Vib,
            DemoMethod::Ssh => CloneMethod::Ssh,
        }
    }
}

/// Backing of the source disks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiskType {
    /// A flat VMDK on a VMFS datastore.
    Vmdk,
    /// A physical-mode raw device mapping of a volume on the array.
    Rdm,
    /// A disk vCenter reports as a vVol (its backing has a `backingObjectId`); ONTAP has no vVol
    /// array copy, so it is cloned with XCOPY from its files on the datastore.
    Vvol,
}

/// Arguments of `copy-offload lab demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Storage vendor of the simulated array.
    #[arg(long, value_enum, default_value = "ontap")]
    pub vendor: DemoVendor,
    /// Clone method: `vib` (esxcli through vCenter) or `ssh` (restricted key on the host).
    #[arg(long, value_enum, default_value = "vib")]
    pub method: DemoMethod,
    /// Backing of the source disks.
    #[arg(long, value_enum, default_value = "vmdk")]
    pub disk_type: DiskType,
    /// Number of disks, copied in parallel (one populate run each).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub disks: u16,
    /// Size of each disk: bytes or a quantity such as 64MiB, 1GiB, 1Gi (whole MiB). The disks are
    /// sparse, with a 4 KiB pattern block at the start of every MiB.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub size: u64,
    /// Leave the lab running after the copy and print its endpoints and credentials; stop with
    /// Ctrl-C.
    #[arg(long)]
    pub keep: bool,
    /// Directory for the lab's datastores, volumes and copy journals; kept on exit. Default: a
    /// temporary directory, removed on exit.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Delay every call at a lab call site, e.g. `soap:RetrieveProperties=20` or
    /// `esxcli:vmkfstools taskGet=2000` (milliseconds; a trailing `*` in the site matches a prefix).
    #[arg(long, value_name = "SITE=MS", value_parser = parse_latency)]
    pub lab_latency: Vec<FaultRule>,
    /// Run the copy as a cluster does: on the Kubernetes API server of `--kubeconfig`, with the
    /// populator controller in-process, a PVC whose dataSource names the CR, and the lab playing
    /// the CSI provisioner and the kubelet (ONTAP, one flat VMDK, VIB).
    #[arg(long)]
    pub cluster: bool,
    /// Kubeconfig of the API server `--cluster` uses (`scripts/peers.sh start` runs one).
    #[arg(long, value_name = "FILE", env = "KUBECONFIG", requires = "cluster")]
    pub kubeconfig: Option<PathBuf>,
}

/// Parses a disk size: bytes, or a quantity with a binary (`Mi`, `MiB`, `Gi`, `GiB`, …) or
/// decimal suffix; the result must be a positive whole number of MiB.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let quantity = trimmed
        .strip_suffix("iB")
        .map(|stem| format!("{stem}i"))
        .unwrap_or_else(|| trimmed.to_owned());
    let bytes = co_populator::parse_quantity(&quantity)
        .map_err(|e| format!("{text:?}: {e} (e.g. 64MiB, 1GiB)"))?;
    if bytes == 0 || bytes % MIB != 0 {
        return Err(format!(
            "{text:?} is {bytes} bytes; a lab disk is a positive whole number of MiB (e.g. 64MiB, 1GiB)"
        ));
    }
    Ok(bytes)
}

/// One source disk and the volume it is copied into.
#[derive(Debug, Clone)]
struct DemoDisk {
    names: DiskNames,
    /// The file holding the disk's bytes: the flat extent, or the RDM volume's backing file.
    source_file: PathBuf,
    /// The target volume, as the array's CSI driver made it.
    target: TargetVolume,
    size: u64,
}

/// The demo's own steps, timed for the summary.
#[derive(Debug, Default)]
struct StepClock {
    steps: Vec<(&'static str, Duration)>,
}

impl StepClock {
    fn record(&mut self, name: &'static str, since: Instant) {
        self.steps.push((name, since.elapsed()));
    }
}

/// Runs `copy-offload lab demo` (without `--cluster`, which `demo_cluster` runs); `cancel` is
/// fired by SIGINT/SIGTERM.
pub async fn run(args: DemoArgs, cancel: CancellationToken) -> ExitCode {
    let dir = match LabDir::new(args.data_dir.as_deref()) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("cannot create the lab data directory: {e}; pass a writable --data-dir");
            return ExitCode::Permanent;
        }
    };
    let ssh_key = match args.method {
        DemoMethod::Ssh => match ClientKey::generate() {
            Ok(key) => Some(key),
            Err(e) => {
                eprintln!("cannot generate the demo's SSH key: {e}");
                return ExitCode::Internal;
            }
        },
        DemoMethod::Vib => None,
    };
    let scenario = scenario(&args, ssh_key.as_ref());
    let mut clock = StepClock::default();
    println!(
        "copy-offload lab demo: {} disk(s) of {} ({}), vendor {}, method {}, lab in {}",
        args.disks,
        human_bytes(args.size),
        match args.disk_type {
            DiskType::Vmdk => "flat VMDK",
            DiskType::Rdm => "physical RDM",
            DiskType::Vvol => "vVol",
        },
        co_lab::rig::facade(args.vendor.spec()).product(),
        CloneMethod::from(args.method),
        dir.path().display()
    );

    let started = Instant::now();
    let lab = match with_heartbeat(
        "starting the lab (creating its disks)",
        Lab::start(scenario.clone(), dir.path()),
    )
    .await
    {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("the lab did not start: {e}");
            return ExitCode::Permanent;
        }
    };
    clock.record("lab start", started);
    if let Err(e) = write_certificate(&lab) {
        tracing::warn!(error = %e, "could not write the lab certificate file");
    }
    println!("{}", endpoints_line(&lab));

    let code = run_on_lab(
        &args,
        &scenario,
        &lab,
        ssh_key.as_ref(),
        &cancel,
        &mut clock,
    )
    .await;
    if code == ExitCode::Success && args.keep {
        print!(
            "\nThe lab keeps running; point populate, pyvmomi or govc at it:\n\n{}",
            connection_details(&lab)
        );
        if args.vendor == DemoVendor::Ontap {
            print!("{}", populate_again(&lab, &DiskNames::of(&scenario, 0)));
        }
        if let Some(key) = &ssh_key {
            println!(
                "ssh key     {} (restricted to the wrapper on {})",
                key.path(dir.path()).display(),
                scenario.datastores[0].name
            );
        }
        println!("\nPress Ctrl-C to stop the lab.");
        let _ = std::io::stdout().flush();
        cancel.cancelled().await;
    }
    let stopping = Instant::now();
    lab.shutdown().await;
    match code {
        ExitCode::Success => println!("lab stopped in {}", human_duration(stopping.elapsed())),
        ExitCode::Cancelled => {
            eprintln!("demo cancelled: the copies were aborted and cleaned up, the lab is stopped")
        }
        _ => eprintln!("lab stopped; nothing is left running"),
    }
    code
}

/// The shell commands that copy `disk` again with `copy-offload populate` (VIB method: the SSH
/// method would need the lab host's SSH port, which populate does not take as a flag).
fn populate_again(lab: &RunningLab, disk: &DiskNames) -> String {
    let array = &lab.arrays[0];
    format!(
        "\nCopy disk {} again with the CLI (VIB method):\n  \
         export GOVMOMI_HOSTNAME='{}' GOVMOMI_USERNAME='{}' GOVMOMI_PASSWORD='{}' cacert=\"$(cat '{}')\"\n  \
         export STORAGE_VENDOR=ontap STORAGE_HOSTNAME='{}' STORAGE_USERNAME='{}' STORAGE_PASSWORD='{}' \
         STORAGE_SKIP_SSL_VERIFICATION=true ONTAP_SVM='{}'\n  \
         copy-offload populate --source-vmdk '{}' --target-volume-handle pvc-{} \
         --target-volume-attribute internalName={} --esxi-clone-method vib --http-endpoint 127.0.0.1:0\n",
        disk.index,
        lab.vcenter_url,
        lab.username,
        lab.password,
        crate::lab_cmd::certificate_path(lab).display(),
        array.url,
        array.username,
        array.password,
        array.svm,
        disk.vmdk,
        disk.flexvol,
        disk.flexvol,
    )
}

/// The names of demo disk `index`: the VM's disk and the target volume it is copied into.
#[derive(Debug, Clone)]
pub(crate) struct DiskNames {
    index: usize,
    /// `vm-1` for disk 0, `vm-1_<index>` after, as the lab names a VM's disks.
    pub(crate) stem: String,
    /// `[ds1] vm-1/vm-1_1.vmdk`
    pub(crate) vmdk: String,
    /// Trident `internalName` of the target volume.
    flexvol: String,
}

impl DiskNames {
    pub(crate) fn of(scenario: &Scenario, index: usize) -> DiskNames {
        let vm = &scenario.vms[0].name;
        let stem = if index == 0 {
            vm.clone()
        } else {
            format!("{vm}_{index}")
        };
        DiskNames {
            index,
            vmdk: format!("[{}] {vm}/{stem}.vmdk", scenario.datastores[0].name),
            stem,
            flexvol: format!("demo_pvc_{index}"),
        }
    }
}

/// One line naming every endpoint the lab listens on.
fn endpoints_line(lab: &RunningLab) -> String {
    let mut line = format!("lab endpoints: vCenter {}", lab.vcenter_url);
    for array in &lab.arrays {
        let _ = write!(line, ", array {} {}", array.name, array.url);
    }
    for host in &lab.hosts {
        let _ = write!(line, ", ESXi {} ssh {}", host.name, host.ssh_addr);
    }
    line
}

/// The embedded scenario with the VM's disks replaced by `args.disks` disks of `args.size`, and
/// (SSH method) the demo's restricted key installed on every host.
pub(crate) fn scenario(args: &DemoArgs, ssh_key: Option<&ClientKey>) -> Scenario {
    let mut scenario = Scenario::default_embedded();
    scenario.arrays[0].vendor = args.vendor.spec();
    let array = scenario.arrays[0].name.clone();
    let datastore = scenario.datastores[0].name.clone();
    let total_gib = (args.size * u64::from(args.disks)).div_ceil(GIB);
    scenario.datastores[0].capacity_gib = scenario.datastores[0].capacity_gib.max(total_gib + 1);
    let size_mib = args.size / MIB;
    scenario.vms[0].disks = (0..args.disks)
        .map(|_| DiskSpec {
            datastore: datastore.clone(),
            size_mib,
            rdm_array: (args.disk_type == DiskType::Rdm).then(|| array.clone()),
            vvol: args.disk_type == DiskType::Vvol,
        })
        .collect();
    if let Some(key) = ssh_key {
        let line = co_esxi::restricted_key_line(&datastore, &key.public_openssh);
        for host in &mut scenario.hosts {
            host.authorized_keys.push(line.clone());
        }
    }
    scenario.faults.extend(args.lab_latency.iter().cloned());
    scenario
}

async fn run_on_lab(
    args: &DemoArgs,
    scenario: &Scenario,
    lab: &RunningLab,
    ssh_key: Option<&ClientKey>,
    cancel: &CancellationToken,
    clock: &mut StepClock,
) -> ExitCode {
    let disks = match prepare_disks(args, scenario, lab) {
        Ok(disks) => disks,
        Err(e) => {
            eprintln!("preparing the demo disks failed: {e}");
            return ExitCode::Internal;
        }
    };
    if cancel.is_cancelled() {
        return ExitCode::Cancelled;
    }

    let started = Instant::now();
    let sources = match checksums(
        "source",
        disks.iter().map(|d| (d.source_file.clone(), d.size)),
    )
    .await
    {
        Ok(sums) => sums,
        Err(e) => {
            eprintln!("reading the source disks failed: {e}");
            return ExitCode::Internal;
        }
    };
    clock.record("source checksum", started);
    if cancel.is_cancelled() {
        return ExitCode::Cancelled;
    }

    let started = Instant::now();
    let vm_host = &scenario.vms[0].host;
    let summaries = match populate_all(args, lab, vm_host, &disks, ssh_key, cancel).await {
        Ok(summaries) => summaries,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::Internal;
        }
    };
    let populate_time = started.elapsed();
    clock.record("populate (copy + cleanup)", started);

    let mut worst = ExitCode::Success;
    for (disk, summary) in disks.iter().zip(&summaries) {
        if summary.exit_code != ExitCode::Success {
            let verb = match summary.exit_code {
                ExitCode::Cancelled => "cancelled",
                _ => "failed",
            };
            match &summary.error {
                Some(error) => eprintln!("disk {}: populate {verb}: {error}", disk.names.index),
                None => eprintln!(
                    "disk {}: populate {verb}: exit {}",
                    disk.names.index, summary.exit_code
                ),
            }
            if worst == ExitCode::Success || summary.exit_code == ExitCode::Cancelled {
                worst = summary.exit_code;
            }
        }
    }
    let cleanups = cleanup_lines(&summaries);
    let leftovers = leftovers(lab, &disks);
    if worst != ExitCode::Success {
        print_phases(&disks, &summaries);
        print_cleanup(&disks, &cleanups, &leftovers);
        if !leftovers.is_empty() {
            return ExitCode::Internal;
        }
        return worst;
    }

    let started = Instant::now();
    let targets = match checksums(
        "target",
        disks
            .iter()
            .map(|d| (d.target.backing_path.clone(), d.size)),
    )
    .await
    {
        Ok(sums) => sums,
        Err(e) => {
            eprintln!("reading the target volumes failed: {e}");
            return ExitCode::Internal;
        }
    };
    clock.record("target checksum", started);

    print_phases(&disks, &summaries);
    println!();
    println!("{:<28} {:>10}", "demo step", "duration");
    for (name, took) in &clock.steps {
        println!("{name:<28} {:>10}", human_duration(*took));
    }
    println!();
    let reports: Vec<&CopyReport> = summaries.iter().filter_map(|s| s.report.as_ref()).collect();
    print_transfer(&disks, &reports, populate_time);
    print_cleanup(&disks, &cleanups, &leftovers);
    println!();
    let mut verified = true;
    for ((disk, source), target) in disks.iter().zip(&sources).zip(&targets) {
        if source == target {
            println!(
                "checksum verified: disk {} sha256 {source} ({} = {} on {})",
                disk.names.index, disk.names.vmdk, disk.target.name, lab.arrays[0].name
            );
        } else {
            verified = false;
            println!(
                "checksum MISMATCH: disk {} source sha256 {source}, target sha256 {target} ({} -> {})",
                disk.names.index, disk.names.vmdk, disk.target.name
            );
        }
    }
    match (verified, leftovers.is_empty()) {
        (true, true) => ExitCode::Success,
        _ => ExitCode::Internal,
    }
}

/// Finds every source disk the lab created and creates its target volume, attached to the worker.
fn prepare_disks(
    args: &DemoArgs,
    scenario: &Scenario,
    lab: &RunningLab,
) -> Result<Vec<DemoDisk>, String> {
    let array = &lab.arrays[0].name;
    let vm = &scenario.vms[0].name;
    let vm_dir = lab.datastore_dir(&scenario.datastores[0].name).join(vm);
    let mut disks = Vec::new();
    for index in 0..usize::from(args.disks) {
        let names = DiskNames::of(scenario, index);
        let source_file = match args.disk_type {
            DiskType::Rdm => {
                // The lab backs RDM disk `index` of a VM with volume `rdm-<vm>-<index>`.
                let name = format!("rdm-{vm}-{index}");
                lab.san
                    .volume(array, &name)
                    .ok_or_else(|| format!("the lab has no RDM volume {name} on {array}"))?
                    .backing_path
            }
            DiskType::Vmdk | DiskType::Vvol => vm_dir.join(format!("{}-flat.vmdk", names.stem)),
        };
        let target = Rig::new(lab)
            .target_volume(&names.flexvol, args.size)
            .map_err(|e| e.to_string())?;
        disks.push(DemoDisk {
            target,
            names,
            source_file,
            size: args.size,
        });
    }
    Ok(disks)
}

/// SHA-256 of the first `len` bytes of each file, computed in parallel off the async threads,
/// with a progress line on stderr every 2 s (`what` names the files) so a long checksum is never
/// silent, on a terminal or piped.
pub(crate) async fn checksums(
    what: &str,
    files: impl Iterator<Item = (PathBuf, u64)>,
) -> Result<Vec<String>, String> {
    let files: Vec<(PathBuf, u64)> = files.collect();
    let total: u64 = files.iter().map(|(_, len)| len).sum();
    let hashed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = files
        .into_iter()
        .map(|(path, len)| {
            let hashed = hashed.clone();
            tokio::task::spawn_blocking(move || {
                sha256_prefix(&path, len, &hashed).map_err(|e| format!("{}: {e}", path.display()))
            })
        })
        .collect();
    let progress = async {
        let mut ticks = tokio::time::interval(PROGRESS_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let done = hashed.load(Ordering::Relaxed);
            eprintln!(
                "[{:>8}] {what} checksum: {:>3}% ({} of {})",
                human_duration(started.elapsed()),
                done * 100 / total.max(1),
                human_bytes(done),
                human_bytes(total)
            );
        }
    };
    let all = futures::future::join_all(tasks);
    let results = tokio::select! {
        results = all => results,
        never = progress => never,
    };
    let mut sums = Vec::new();
    for result in results {
        sums.push(result.map_err(|e| e.to_string())??);
    }
    Ok(sums)
}

/// How often a long step says how far it got when nothing else is printed (under the 2 s a
/// reader of a piped log waits at most).
const PROGRESS_EVERY: Duration = Duration::from_millis(1500);

/// Runs `work`, printing "`what`…" with the time taken every [`PROGRESS_EVERY`] until it ends.
/// The heartbeat is a task of its own: `work` may block its thread for a while (the lab writes its
/// disks synchronously), and the heartbeat must still beat.
async fn with_heartbeat<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let what = what.to_owned();
    let beat = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PROGRESS_EVERY);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            eprintln!("[{:>8}] {what}…", human_duration(started.elapsed()));
        }
    });
    let done = work.await;
    beat.abort();
    done
}

/// Hex SHA-256 of the first `len` bytes of `path`; a file shorter than `len` is an error, since a
/// target volume must hold the whole disk.
fn sha256_prefix(path: &Path, len: u64, hashed: &AtomicU64) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?.take(len);
    // ring's SHA-256 is assembly (SHA-NI where present), fast even in a debug build.
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 4 * MIB as usize];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        total += n as u64;
        hashed.fetch_add(n as u64, Ordering::Relaxed);
    }
    if total < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("holds {total} bytes, fewer than the disk's {len}"),
        ));
    }
    Ok(hex::encode(hasher.finish()))
}

/// The populate arguments for one disk, exactly as a user would pass them on the command line:
/// the rig's, with the demo's clone method and SSH key.
fn populate_args(
    lab: &RunningLab,
    disk: &DemoDisk,
    method: DemoMethod,
    ssh_key: Option<&ClientKey>,
) -> Result<PopulateArgs, String> {
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let mut line = vec!["populate".to_owned()];
    line.extend(Rig::new(lab).populate_args(&disk.names.vmdk, &disk.target));
    line.push(flags::ESXI_CLONE_METHOD.with_value(CloneMethod::from(method).as_str()));
    if let Some(key) = ssh_key {
        line.push(flags::SSH_PRIVATE_KEY.with_value(&b64(&key.private_openssh)));
        line.push(flags::SSH_PUBLIC_KEY.with_value(&b64(&key.public_openssh)));
    }
    PopulateArgs::try_parse_from(line).map_err(|e| e.to_string())
}

/// Runs one populate per disk, concurrently, while showing their progress.
async fn populate_all(
    args: &DemoArgs,
    lab: &RunningLab,
    vm_host: &str,
    disks: &[DemoDisk],
    ssh_key: Option<&ClientKey>,
    cancel: &CancellationToken,
) -> Result<Vec<RunSummary>, String> {
    let (phases_tx, phases_rx) = mpsc::unbounded_channel();
    // The clone runs on the VM's host: its SSH endpoint is the one the SSH method dials.
    let host = lab
        .host(vm_host)
        .ok_or_else(|| format!("the lab has no host {vm_host}"))?;
    let host_key = ssh_key
        .map(|_| ssh_key::PublicKey::from_openssh(&host.ssh_host_key))
        .transpose();
    let host_key = match host_key {
        Ok(key) => key,
        Err(e) => return Err(format!("the lab's SSH host key does not parse: {e}")),
    };
    let mut configs = Vec::new();
    for disk in disks {
        match populate_args(lab, disk, args.method, ssh_key)?.validate() {
            Ok(config) => configs.push(config),
            Err(problems) => {
                return Err(format!(
                    "disk {}: the demo built invalid populate arguments:\n{problems}",
                    disk.names.index
                ));
            }
        }
    }
    let runs: Vec<_> = disks
        .iter()
        .zip(configs)
        .map(|(disk, config)| {
            let phases = phases_tx.clone();
            let index = disk.names.index;
            let observer: PhaseObserver = Arc::new(move |phase| {
                // The display may have ended already; a lost phase line is harmless.
                let _ = phases.send((index, phase));
            });
            let options = RunOptions {
                cancel: cancel.child_token(),
                handle_signals: false,
                vsphere_trust: Some(TlsTrust::Thumbprint(lab.thumbprint.clone())),
                storage_ca_pem: Some(lab.certificate_pem.clone()),
                ssh_port: ssh_key.map(|_| host.ssh_addr.port()),
                ssh_host_key: host_key.clone().map(HostKeyPolicy::Pinned),
                journal_path: Some(journal_path(lab, disk)),
                final_scrape_wait: Duration::ZERO,
                observer: Some(observer),
                ..RunOptions::default()
            };
            run_with(config, options)
        })
        .collect();
    drop(phases_tx);
    let hosts: Vec<SimHost> = lab.hosts.iter().map(|h| h.sim.clone()).collect();
    let display = Progress::new(disks.len(), hosts);
    let (summaries, ()) = tokio::join!(futures::future::join_all(runs), display.run(phases_rx));
    Ok(summaries)
}

fn journal_path(lab: &RunningLab, disk: &DemoDisk) -> PathBuf {
    lab.data_dir
        .join(format!("journal-{}.json", disk.names.flexvol))
}

/// The cleanup each disk's populate reported, as sentences.
fn cleanup_lines(summaries: &[RunSummary]) -> Vec<Vec<String>> {
    summaries
        .iter()
        .map(|summary| summary.cleanup.iter().filter_map(cleanup_line).collect())
        .collect()
}

/// One undone step in words, with the objects it touched; `None` for the placeholder a run
/// journals before the array has named the host's initiator group (superseded, nothing undone).
fn cleanup_line(step: &CleanupStep) -> Option<String> {
    let names = |groups: &[GroupRef]| {
        groups
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(match step {
        CleanupStep::UnmapVolume { volume, group } => format!(
            "unmapped {} from initiator group {}",
            volume.name,
            names(&group.targets)
        ),
        CleanupStep::RestoreMappings { volume, groups } if groups.is_empty() => {
            format!("left {} unmapped, as found", volume.name)
        }
        CleanupStep::RestoreMappings { volume, groups } => {
            format!("kept {} mapped to {}, as found", volume.name, names(groups))
        }
        CleanupStep::RescanDelete { host, adapters } => format!(
            "rescanned adapters {} on {host} to drop the device",
            adapters.join(", ")
        ),
        CleanupStep::ReleaseGroup { group: None, .. } => return None,
        CleanupStep::ReleaseGroup {
            group: Some(group), ..
        } if group.owned.is_empty() => format!(
            "initiator group {} kept: copy-offload did not create it",
            names(&group.targets)
        ),
        CleanupStep::ReleaseGroup {
            group: Some(group), ..
        } => format!("initiator group {} released", names(&group.owned)),
        CleanupStep::RemoveDevice { host, naa } => format!("detached device {naa} from {host}"),
        CleanupStep::CleanTask { host, task_id } => {
            format!("cleaned clone task {task_id} on {host}")
        }
        CleanupStep::EndArrayCopy { session } => format!(
            "ended array copy {} onto {}",
            session.name, session.target.name
        ),
        other => other.to_string(),
    })
}

/// What the copy left behind on the array and the hosts; empty when cleanup was complete.
fn leftovers(lab: &RunningLab, disks: &[DemoDisk]) -> Vec<String> {
    let targets: Vec<&TargetVolume> = disks.iter().map(|d| &d.target).collect();
    Rig::new(lab).leftovers(&targets)
}

fn print_phases(disks: &[DemoDisk], summaries: &[RunSummary]) {
    let mut order: Vec<Phase> = Vec::new();
    let mut table: BTreeMap<(usize, &'static str), Duration> = BTreeMap::new();
    for (disk, summary) in disks.iter().zip(summaries) {
        let Some(report) = &summary.report else {
            continue;
        };
        for (phase, took) in &report.phases {
            if !order.contains(phase) {
                order.push(*phase);
            }
            *table.entry((disk.names.index, phase.as_str())).or_default() += *took;
        }
    }
    if order.is_empty() {
        return;
    }
    println!();
    let mut header = format!("{:<12}", "phase");
    for disk in disks {
        let _ = write!(header, " {:>10}", format!("disk {}", disk.names.index));
    }
    println!("{header}");
    for phase in order {
        let mut row = format!("{:<12}", phase.as_str());
        for disk in disks {
            let cell = table
                .get(&(disk.names.index, phase.as_str()))
                .map_or_else(|| "-".to_owned(), |d| human_duration(*d));
            let _ = write!(row, " {cell:>10}");
        }
        println!("{row}");
    }
}

fn print_transfer(disks: &[DemoDisk], reports: &[&CopyReport], populate_time: Duration) {
    let total: u64 = disks.iter().map(|d| d.size).sum();
    let allocated: u64 = reports.iter().map(|r| r.allocated_bytes).sum();
    let clone_time = reports
        .iter()
        .filter_map(|r| {
            r.phases
                .iter()
                .filter(|(p, _)| matches!(p, Phase::Clone | Phase::ArrayCopy))
                .map(|(_, d)| *d)
                .reduce(|a, b| a + b)
        })
        .max()
        .unwrap_or_default();
    let mut bytes = format!("{total} bytes ({})", human_bytes(total));
    if allocated > 0 {
        let _ = write!(
            bytes,
            ", {} allocated in the source",
            human_bytes(allocated)
        );
    }
    println!("{:<14}{bytes}", "bytes");
    // A sparse disk's virtual size over the clone time is no transfer rate: the allocated bytes
    // are what was copied, the virtual size is what the guest sees.
    if allocated > 0 && allocated < total {
        println!(
            "{:<14}{} of allocated data over the clone phase ({} of virtual size), {} end to end",
            "rate",
            rate(allocated, clone_time),
            rate(total, clone_time),
            rate(allocated, populate_time)
        );
    } else {
        println!(
            "{:<14}{} over the clone phase, {} end to end (populate incl. setup and cleanup)",
            "rate",
            rate(total, clone_time),
            rate(total, populate_time)
        );
    }
    let xcopy: Vec<String> = disks
        .iter()
        .zip(reports)
        .map(|(d, r)| {
            format!(
                "disk {}: {}",
                d.names.index,
                if r.xcopy_used { "yes" } else { "no" }
            )
        })
        .collect();
    println!("{:<14}{}", "XCOPY used", xcopy.join(", "));
    println!(
        "{:<14}{}",
        "clone method",
        reports
            .first()
            .map_or("-".to_owned(), |r| format!("{:?}", r.clone_method)
                .to_lowercase())
    );
}

fn print_cleanup(disks: &[DemoDisk], cleanups: &[Vec<String>], leftovers: &[String]) {
    println!();
    println!("cleanup performed (as each run reported it):");
    for (disk, steps) in disks.iter().zip(cleanups) {
        if steps.is_empty() {
            println!("  disk {}: nothing to undo", disk.names.index);
        }
        for step in steps {
            println!("  disk {}: {step}", disk.names.index);
        }
    }
    if leftovers.is_empty() {
        println!(
            "  lab check: no copy-offload initiator group, target volumes mapped to {WORKER_GROUP} only, \
             no device or clone task left on any host"
        );
    } else {
        println!("cleanup INCOMPLETE, left behind:");
        for item in leftovers {
            println!("  {item}");
        }
    }
}

/// Live progress: a redrawn bar on a terminal, one line per phase change otherwise (both on
/// stderr, so stdout holds only the summary).
struct Progress {
    /// The highest percent shown: a finished clone task no longer reports one, and the shown
    /// figure must not drop back.
    shown: u64,
    disks: usize,
    hosts: Vec<SimHost>,
    tty: bool,
    phases: Vec<Option<Phase>>,
    started: Instant,
}

impl Progress {
    fn new(disks: usize, hosts: Vec<SimHost>) -> Progress {
        Progress {
            shown: 0,
            disks,
            hosts,
            tty: std::io::stderr().is_terminal(),
            phases: vec![None; disks],
            started: Instant::now(),
        }
    }

    /// Runs until every populate has dropped its phase sender (all runs ended).
    async fn run(mut self, mut phases: mpsc::UnboundedReceiver<(usize, Phase)>) {
        // A terminal gets a bar redrawn 5 times a second; a pipe or a file gets a line at each
        // phase change and a percent line every 2 s in between, so it is never silent for long.
        let period = if self.tty {
            Duration::from_millis(200)
        } else {
            PROGRESS_EVERY
        };
        let mut redraw = tokio::time::interval(period);
        redraw.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        redraw.tick().await;
        loop {
            tokio::select! {
                update = phases.recv() => match update {
                    Some((disk, phase)) => self.phase(disk, phase),
                    None => break,
                },
                _ = redraw.tick() => if self.tty { self.draw() } else { self.line() },
            }
        }
        if self.tty {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }

    fn phase(&mut self, disk: usize, phase: Phase) {
        if let Some(slot) = self.phases.get_mut(disk) {
            *slot = Some(phase);
        }
        if self.tty {
            self.draw();
        } else {
            let _ = writeln!(
                std::io::stderr(),
                "[{:>8}] disk {disk}: {}",
                human_duration(self.started.elapsed()),
                phase.as_str()
            );
        }
    }

    /// Overall percent: finished disks count fully; disks in the clone phase share the progress
    /// their hosts' clone tasks report (the same `Clone: N% done` lines populate reads).
    fn percent(&self) -> u64 {
        let cloning = self
            .phases
            .iter()
            .filter(|p| **p == Some(Phase::Clone))
            .count();
        let done = self
            .phases
            .iter()
            .filter(|p| matches!(p, Some(Phase::Cleanup)))
            .count();
        let task_percents: Vec<u64> = self
            .hosts
            .iter()
            .flat_map(|h| {
                h.task_ids()
                    .into_iter()
                    .filter_map(|id| h.task_status(&id).ok())
                    .filter_map(|s| s.progress_percent())
                    .collect::<Vec<_>>()
            })
            .map(u64::from)
            .collect();
        let cloning_percent = if task_percents.is_empty() {
            0
        } else {
            task_percents.iter().sum::<u64>() / task_percents.len() as u64
        };
        let total = done as u64 * 100 + cloning as u64 * cloning_percent;
        total / self.disks.max(1) as u64
    }

    /// The percent to show: never lower than shown before.
    fn shown_percent(&mut self) -> u64 {
        self.shown = self.shown.max(self.percent().min(100));
        self.shown
    }

    /// The progress line for a pipe or a file.
    fn line(&mut self) {
        let percent = self.shown_percent();
        let _ = writeln!(
            std::io::stderr(),
            "[{:>8}] copy: {percent:>3}%  {}",
            human_duration(self.started.elapsed()),
            self.slowest_phase()
        );
    }

    /// The phase of the slowest disk.
    fn slowest_phase(&self) -> &'static str {
        self.phases
            .iter()
            .flatten()
            .min_by_key(|p| phase_rank(**p))
            .map_or("starting", |p| p.as_str())
    }

    fn draw(&mut self) {
        const WIDTH: u64 = 30;
        let percent = self.shown_percent();
        let filled = (percent * WIDTH / 100) as usize;
        let phase = self.slowest_phase();
        let _ = write!(
            std::io::stderr(),
            "\r\x1b[2K  [{}{}] {percent:>3}%  {phase}  {}",
            "#".repeat(filled),
            "-".repeat(WIDTH as usize - filled),
            human_duration(self.started.elapsed())
        );
        let _ = std::io::stderr().flush();
    }
}

/// Order of the phases, so the bar names the phase of the slowest disk.
fn phase_rank(phase: Phase) -> u8 {
    match phase {
        Phase::Recover => 0,
        Phase::Resolve => 1,
        Phase::Plan => 2,
        Phase::Map => 3,
        Phase::Discover => 4,
        Phase::Verify => 5,
        Phase::Clone | Phase::ArrayCopy => 6,
        Phase::Cleanup => 7,
    }
}

/// The demo's SSH key pair, generated fresh for each run.
pub(crate) struct ClientKey {
    private_openssh: String,
    public_openssh: String,
}

impl ClientKey {
    fn generate() -> Result<ClientKey, ssh_key::Error> {
        let key = ssh_key::PrivateKey::random(&mut rand::rng(), ssh_key::Algorithm::Ed25519)?;
        Ok(ClientKey {
            private_openssh: key.to_openssh(ssh_key::LineEnding::LF)?.to_string(),
            public_openssh: key.public_key().to_openssh()?,
        })
    }

    /// Writes the private key (mode 0600) into the lab directory for `--keep` users.
    fn path(&self, dir: &Path) -> PathBuf {
        let path = dir.join("demo-ssh-key");
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)?;
            file.write_all(self.private_openssh.as_bytes())
        };
        if let Err(e) = write() {
            tracing::warn!(error = %e, "could not write the demo SSH key file");
        }
        path
    }
}

fn human_bytes(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{:.2} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

fn human_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}

fn rate(bytes: u64, over: Duration) -> String {
    if over.is_zero() {
        return "-".to_owned();
    }
    format!(
        "{:.0} MiB/s",
        bytes as f64 / MIB as f64 / over.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_binary_suffixes_and_whole_mib_only() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 * MIB);
        assert_eq!(parse_size("64Mi").unwrap(), 64 * MIB);
        assert_eq!(parse_size("1GiB").unwrap(), GIB);
        assert_eq!(parse_size("1048576").unwrap(), MIB);
        assert!(parse_size("0").unwrap_err().contains("whole number of MiB"));
        assert!(
            parse_size("1000")
                .unwrap_err()
                .contains("whole number of MiB")
        );
        assert!(parse_size("lots").unwrap_err().contains("e.g. 64MiB"));
    }

    #[test]
    fn the_vvol_disk_type_presents_flat_disks_as_vvols() {
        let args = DemoArgs {
            vendor: DemoVendor::Ontap,
            method: DemoMethod::Vib,
            disk_type: DiskType::Vvol,
            disks: 2,
            size: 64 * MIB,
            keep: false,
            data_dir: None,
            lab_latency: Vec::new(),
            cluster: false,
            kubeconfig: None,
        };
        let scenario = scenario(&args, None);
        assert!(
            scenario.vms[0]
                .disks
                .iter()
                .all(|d| d.vvol && d.rdm_array.is_none())
        );
        // The lab accepts it (loading validates).
        Scenario::from_yaml(&serde_yaml::to_string(&scenario).unwrap()).unwrap();
    }

    #[test]
    fn the_scenario_holds_the_requested_disks_and_the_restricted_key() {
        let args = DemoArgs {
            vendor: DemoVendor::Ontap,
            method: DemoMethod::Ssh,
            disk_type: DiskType::Rdm,
            disks: 3,
            size: 100 * GIB,
            keep: false,
            data_dir: None,
            lab_latency: vec![parse_latency("ssh:task-get=5").unwrap()],
            cluster: false,
            kubeconfig: None,
        };
        let key = ClientKey::generate().unwrap();
        let scenario = scenario(&args, Some(&key));
        let disks = &scenario.vms[0].disks;
        assert_eq!(disks.len(), 3);
        assert!(
            disks
                .iter()
                .all(|d| d.size_mib == 100 * 1024 && d.rdm_array.as_deref() == Some("ontap1"))
        );
        assert!(
            scenario.datastores[0].capacity_gib > 300,
            "room for every disk"
        );
        for host in &scenario.hosts {
            let line = host.authorized_keys.last().unwrap();
            assert!(line.starts_with("command=\""), "{line}");
            assert!(line.ends_with(key.public_openssh.trim()), "{line}");
        }
        assert_eq!(scenario.faults.last().unwrap().site, "ssh:task-get");
        // The key is one populate's SSH executor accepts.
        let b64 = base64::engine::general_purpose::STANDARD.encode(&key.private_openssh);
        co_esxi::ssh::SshSettings::from_base64_pem(
            &b64,
            HostKeyPolicy::TrustOnFirstUse {
                known_hosts: PathBuf::from("/nonexistent"),
            },
        )
        .unwrap();
    }

    #[test]
    fn checksums_cover_exactly_the_disk_and_refuse_short_targets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        co_lab::lab::write_pattern_disk(&path, 3 * MIB).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            sha256_prefix(&path, 3 * MIB, &AtomicU64::new(0)).unwrap(),
            hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes))
        );
        assert_eq!(
            sha256_prefix(&path, MIB, &AtomicU64::new(0)).unwrap(),
            hex::encode(ring::digest::digest(
                &ring::digest::SHA256,
                &bytes[..MIB as usize]
            ))
        );
        let err = sha256_prefix(&path, 4 * MIB, &AtomicU64::new(0)).unwrap_err();
        assert!(err.to_string().contains("fewer than"), "{err}");
    }

    #[test]
    fn cleanup_steps_read_as_sentences() {
        use co_storage::{EsxiHostRef, GroupKind, Volume};
        let volume = Volume {
            id: "u".into(),
            name: "/vol/demo_pvc_0/lun0".into(),
            naa: co_storage::DeviceName::parse("naa.600a0980383044372f5d4a2d6b6e6f70").unwrap(),
            serial: "s".into(),
            size_bytes: 1,
        };
        let step = CleanupStep::RestoreMappings {
            volume,
            groups: vec![GroupRef {
                kind: GroupKind::Igroup,
                name: "demo-worker-1".into(),
                id: String::new(),
            }],
        };
        assert_eq!(
            cleanup_line(&step).unwrap(),
            "kept /vol/demo_pvc_0/lun0 mapped to demo-worker-1, as found"
        );
        let placeholder = CleanupStep::ReleaseGroup {
            host: EsxiHostRef {
                host_id: "h".into(),
                initiators: vec![],
            },
            group: None,
        };
        assert_eq!(cleanup_line(&placeholder), None);
        let task = CleanupStep::CleanTask {
            host: "HostSystem:host-10".into(),
            task_id: "t1".into(),
        };
        assert_eq!(
            cleanup_line(&task).unwrap(),
            "cleaned clone task t1 on HostSystem:host-10"
        );
    }
}
