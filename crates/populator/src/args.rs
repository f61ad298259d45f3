//! The `copy-offload populate` argument contract: every flag and environment variable of
//! upstream's `vsphere-copy-offload-populator` (same names, same `--name=value` form the populator
//! controller passes, same env defaults taken from the pod's Secret), plus the validation that
//! turns them into a typed [`PopulateConfig`].
//!
//! Validation contacts nothing (it reads only the local file `--pv-file` names) and reports every
//! problem at once, each naming the flag, its env var and what is expected, so one edit of the Secret or the command line fixes
//! them all. Secret values are wrapped in [`Secret`] and never appear in messages.
//!
//! Where we differ from upstream, on purpose:
//! - `--owner-name`, `--target-namespace` and `--owner-uid` are validated (upstream checked
//!   non-existent flag names instead); `--source-vm-id` is optional (the VM is found
//!   from the disk path).
//! - `ESXI_CLONE_METHOD` must be `vib`, `ssh` or empty (upstream took any other value as `vib`).
//! - `GOVMOMI_INSECURE` is honoured (upstream never verified vCenter's certificate): it is
//!   read like Go's `strconv.ParseBool` (`1/t/T/TRUE/true/True` and the false forms), empty means
//!   verify, anything else is an error. `cacert` (PEM) adds a trusted CA for vCenter.
//! - `STORAGE_SKIP_SSL_VERIFICATION`, `DISABLE_VVOL_METHOD`, `DISABLE_RDM_METHOD` keep upstream's
//!   rule: only the literal `true` enables; other non-empty values other than `false` draw a warning.
//! - `--http-endpoint` and `--metrics-path` are honoured (upstream parsed and ignored them).
//! - Vendor keys that the vendor cannot work without are checked up front.
//! - `SSH_KNOWN_HOSTS` (new) lists the ESXi host keys to accept; upstream never checked them.
//! - `--target-volume-handle`, `--target-volume-attribute`, `--pv-file` select a target without
//!   Kubernetes; with one of them the Kubernetes PVC flags become optional.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use clap::{CommandFactory, Parser};
use co_api::contract::flags::{self, Flag};
use co_api::{CloneMethod, DATASTORE_PATH_EXAMPLE, DatastorePath, Secret, StorageVendorProduct};
use co_esxi::assets::WRAPPER_VERSION;
use co_esxi::host_keys::KnownHosts;
use co_esxi::ssh::SshPrivateKey;
pub use co_storage::VendorSettings;
use co_storage::http::{
    ConnectionSettings, Credentials, RetryPolicy as StorageRetryPolicy, Secret as StorageSecret,
};
use co_vsphere::{ClientConfig, TlsTrust};

/// What `--version` prints: the binary's version and the ESXi wrapper protocol version.
pub fn version_text() -> String {
    format!(
        "copy-offload {}\nvmkfstools-wrapper {WRAPPER_VERSION}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Whether the arguments ask for the version. Checked before parsing, so `--version` works (and
/// touches nothing) even when the other arguments are missing or malformed. Accepts the forms
/// Go's flag package accepted: `--version`, `-version`, `--version=true`, `-version=true`.
pub fn requests_version<I, S>(args: I) -> bool
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    args.into_iter()
        .map(|arg| arg.as_ref().to_owned())
        .take_while(|arg| arg != "--")
        .any(|arg| {
            matches!(
                arg.to_str(),
                Some("--version" | "-version" | "--version=true" | "-version=true")
            )
        })
}

/// Splits the flags `populate` does not know out of `argv` (the arguments after `populate`), so
/// they are reported together with every other problem instead of stopping the parse at the first.
/// An unknown `--flag value` takes its value with it. Returns the rest and one problem per flag.
pub fn split_unknown_flags(argv: Vec<OsString>) -> (Vec<OsString>, Vec<ArgProblem>) {
    let known = |name: &str| {
        matches!(name, "version" | "help" | "h")
            || co_api::contract::flags::ALL.iter().any(|f| f.name == name)
    };
    let mut kept = Vec::new();
    let mut problems = Vec::new();
    let mut rest = argv.into_iter();
    while let Some(arg) = rest.next() {
        let text = arg.to_string_lossy().into_owned();
        if text == "--" {
            kept.push(arg);
            kept.extend(rest.by_ref());
            break;
        }
        let Some(flag) = text.strip_prefix("--").or_else(|| text.strip_prefix('-')) else {
            kept.push(arg);
            continue;
        };
        let (name, inline_value) = match flag.split_once('=') {
            Some((name, _)) => (name, true),
            None => (flag, false),
        };
        if name.is_empty() || known(name) {
            kept.push(arg);
            continue;
        }
        if !inline_value {
            let mut peek = rest.clone();
            if peek
                .next()
                .is_some_and(|next| !next.to_string_lossy().starts_with('-'))
            {
                rest.next();
            }
        }
        problems.push(ArgProblem {
            subject: format!("--{name}"),
            message: "is not a flag of copy-offload populate (see `copy-offload populate --help`)"
                .into(),
        });
    }
    (kept, problems)
}

/// Environment variables of `populate` flags whose values are not valid UTF-8, as problems naming
/// the variable and its flag (the argument parser would stop at the first without naming it).
/// `lookup` is `std::env::var_os` in the program.
pub fn non_utf8_environment(
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Vec<(&'static str, ArgProblem)> {
    co_api::contract::flags::ALL
        .iter()
        .filter_map(|flag| {
            let env = flag.env?;
            let value = lookup(env)?;
            value.to_str().is_none().then(|| {
                let problem = ArgProblem {
                    subject: format!("--{} (env: {env})", flag.name),
                    message: "is not valid UTF-8; expected text (check how the Secret was created)"
                        .into(),
                };
                (env, problem)
            })
        })
        .collect()
}

/// Flags given more than once on `argv` (the arguments after `populate`), as warnings: the last
/// value is used, as Go's flag package does and scripts rely on, but a repeat is usually a mistake.
pub fn repeated_flags<S: AsRef<OsStr>>(argv: &[S]) -> Vec<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for arg in argv.iter().map(|a| a.as_ref().to_string_lossy()) {
        if arg == "--" {
            break;
        }
        if let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))
            && !name.is_empty()
        {
            let name = name.split('=').next().unwrap_or(name);
            *counts.entry(name.to_owned()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .filter(|(name, count)| *count > 1 && name != "target-volume-attribute")
        .map(|(name, count)| format!("--{name} is given {count} times; the last value is used"))
        .collect()
}

/// Flags and environment of `copy-offload populate`.
///
/// Every field is optional at the clap level so that [`PopulateArgs::validate`] can report all
/// missing values together instead of clap stopping at the first.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "populate",
    // Go's flag package lets a repeated flag override the earlier one; scripts rely on it.
    args_override_self = true,
    about = "Copy one vSphere disk into a volume by offloading the copy to the storage array",
    long_about = "Copy one vSphere disk into a volume by offloading the copy to the storage array.\n\n\
                  Runs in the populator pod with the flags the populator controller passes and the \
                  environment from the migration Secret; every value can also be given as a flag."
)]
pub struct PopulateArgs {
    /// VM id (e.g. vm-123) or name owning the disk; optional, the VM is found from the disk path.
    #[arg(long, help_heading = "Source disk")]
    pub source_vm_id: Option<String>,
    /// Datastore path of the disk descriptor, e.g. "[datastore1] vm-1/vm-1.vmdk".
    #[arg(long, help_heading = "Source disk")]
    pub source_vmdk: Option<String>,

    /// Name of the PVC to populate (the user's PVC).
    #[arg(long, help_heading = "Kubernetes target")]
    pub owner_name: Option<String>,
    /// UID of the PVC to populate; labels the metrics.
    #[arg(long, help_heading = "Kubernetes target")]
    pub owner_uid: Option<String>,
    /// Namespace of the PVC to populate and of its prime PVC.
    #[arg(long, help_heading = "Kubernetes target")]
    pub target_namespace: Option<String>,
    /// Name of the VSphereXcopyVolumePopulator resource.
    #[arg(long, help_heading = "Kubernetes target")]
    pub cr_name: Option<String>,
    /// Namespace of the VSphereXcopyVolumePopulator resource.
    #[arg(long, help_heading = "Kubernetes target")]
    pub cr_namespace: Option<String>,
    /// Secret the pod's environment comes from (informational).
    #[arg(long, help_heading = "Kubernetes target")]
    pub secret_name: Option<String>,
    /// Requested size of the PVC (bytes or a Kubernetes quantity such as 100Gi).
    #[arg(long, help_heading = "Kubernetes target")]
    pub pvc_size: Option<String>,
    /// Kubeconfig file; in a pod the service account is used.
    #[arg(long, help_heading = "Kubernetes target")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubernetes API server URL, overriding the kubeconfig.
    #[arg(long, help_heading = "Kubernetes target")]
    pub master: Option<String>,

    /// CSI volume handle of the target volume (runs without Kubernetes).
    #[arg(long, help_heading = "Target without Kubernetes")]
    pub target_volume_handle: Option<String>,
    /// CSI volume attribute of the target volume, KEY=VALUE; repeatable.
    #[arg(
        long,
        value_name = "KEY=VALUE",
        help_heading = "Target without Kubernetes"
    )]
    pub target_volume_attribute: Vec<String>,
    /// PersistentVolume YAML/JSON file describing the target volume (runs without Kubernetes).
    #[arg(long, help_heading = "Target without Kubernetes")]
    pub pv_file: Option<PathBuf>,

    /// Storage product: vantara, ontap, primera3par, pureFlashArray, powerflex, powermax, powerstore, infinibox or flashsystem.
    #[arg(long, env = "STORAGE_VENDOR", help_heading = "Storage array")]
    pub storage_vendor_product: Option<String>,
    /// Storage array management address (host name or URL, as the vendor expects).
    #[arg(long, env = "STORAGE_HOSTNAME", help_heading = "Storage array")]
    pub storage_hostname: Option<String>,
    /// Storage array user name (with --storage-password, unless a token is given).
    #[arg(long, env = "STORAGE_USERNAME", help_heading = "Storage array")]
    pub storage_username: Option<String>,
    /// Storage array password.
    #[arg(
        long,
        env = "STORAGE_PASSWORD",
        hide_env_values = true,
        help_heading = "Storage array"
    )]
    pub storage_password: Option<String>,
    /// Storage array API token; used instead of user name and password when given.
    #[arg(
        long,
        env = "STORAGE_TOKEN",
        hide_env_values = true,
        help_heading = "Storage array"
    )]
    pub storage_token: Option<String>,
    /// "true" skips TLS verification of the storage array; any other value verifies.
    #[arg(
        long,
        env = "STORAGE_SKIP_SSL_VERIFICATION",
        help_heading = "Storage array"
    )]
    pub storage_skip_ssl_verification: Option<String>,

    /// CA certificate(s) (PEM) that issued the array's certificate, for arrays with a private CA.
    #[arg(
        long,
        env = "STORAGE_CA_CERT",
        hide_env_values = true,
        help_heading = "Storage array"
    )]
    pub storage_ca_cert: Option<String>,
    /// Timeout of each storage API request, in seconds.
    #[arg(
        long,
        env = "STORAGE_HTTP_TIMEOUT_SECONDS",
        default_value = "30",
        help_heading = "Storage array"
    )]
    pub storage_http_timeout_seconds: Option<String>,

    /// Pure FlashArray: Portworx cluster prefix, px_<first 8 chars of the StorageCluster uid>.
    #[arg(long, env = "PURE_CLUSTER_PREFIX", help_heading = "Vendor keys")]
    pub pure_cluster_prefix: Option<String>,
    /// PowerFlex: system id of the array.
    #[arg(long, env = "POWERFLEX_SYSTEM_ID", help_heading = "Vendor keys")]
    pub powerflex_system_id: Option<String>,
    /// ONTAP: SVM to use (default: the cluster's only SVM).
    #[arg(long, env = "ONTAP_SVM", help_heading = "Vendor keys")]
    pub ontap_svm: Option<String>,
    /// PowerMax: Symmetrix id of the array.
    #[arg(long, env = "POWERMAX_SYMMETRIX_ID", help_heading = "Vendor keys")]
    pub powermax_symmetrix_id: Option<String>,
    /// PowerMax: port group used for the masking view.
    #[arg(long, env = "POWERMAX_PORT_GROUP_NAME", help_heading = "Vendor keys")]
    pub powermax_port_group_name: Option<String>,
    /// Vantara: storage array serial number (metrics only).
    #[arg(long, env = "STORAGE_ID", help_heading = "Vendor keys")]
    pub vantara_storage_id: Option<String>,
    /// Vantara: REST API port.
    #[arg(long, env = "STORAGE_PORT", help_heading = "Vendor keys")]
    pub vantara_storage_port: Option<String>,
    /// Vantara: host groups to use, <portId>,<hostGroupNumber> separated by ":", e.g. CL1-A,1:CL2-B,2.
    #[arg(long, env = "HOSTGROUP_ID_LIST", help_heading = "Vendor keys")]
    pub vantara_hostgroup_id_list: Option<String>,
    /// Vantara: array-side copy pace for vVol/RDM disks: slower (default), medium or faster.
    #[arg(long, env = "COPY_SPEED", help_heading = "Vendor keys")]
    pub vantara_copy_speed: Option<String>,

    /// vCenter host name (the SDK URL https://<host>/sdk is implied).
    #[arg(long, env = "GOVMOMI_HOSTNAME", help_heading = "vSphere")]
    pub vsphere_hostname: Option<String>,
    /// vCenter user name.
    #[arg(long, env = "GOVMOMI_USERNAME", help_heading = "vSphere")]
    pub vsphere_username: Option<String>,
    /// vCenter password.
    #[arg(
        long,
        env = "GOVMOMI_PASSWORD",
        hide_env_values = true,
        help_heading = "vSphere"
    )]
    pub vsphere_password: Option<String>,
    /// "true" skips TLS verification of vCenter (Go boolean forms accepted); empty verifies.
    #[arg(long, env = "GOVMOMI_INSECURE", help_heading = "vSphere")]
    pub vsphere_insecure: Option<String>,
    /// PEM CA certificate(s) to trust for vCenter, in addition to the system roots.
    #[arg(long, env = "cacert", hide_env_values = true, help_heading = "vSphere")]
    pub vsphere_ca_cert: Option<String>,

    /// How to run vmkfstools on ESXi: vib or ssh.
    #[arg(
        long,
        env = "ESXI_CLONE_METHOD",
        default_value = "vib",
        help_heading = "ESXi"
    )]
    pub esxi_clone_method: Option<String>,
    /// ESXi host (managed object id, e.g. host-123) to run the clone on; default: the VM's host.
    #[arg(long, help_heading = "ESXi")]
    pub migration_host: Option<String>,
    /// SSH method: base64 of the PEM private key.
    #[arg(
        long,
        env = "SSH_PRIVATE_KEY",
        hide_env_values = true,
        help_heading = "ESXi"
    )]
    pub ssh_private_key: Option<String>,
    /// SSH method: base64 of the public key in authorized_keys format.
    #[arg(
        long,
        env = "SSH_PUBLIC_KEY",
        hide_env_values = true,
        help_heading = "ESXi"
    )]
    pub ssh_public_key: Option<String>,
    /// SSH method: timeout of connecting and of each command, in seconds.
    #[arg(
        long,
        env = "SSH_TIMEOUT_SECONDS",
        default_value = "30",
        help_heading = "ESXi"
    )]
    pub ssh_timeout_seconds: Option<String>,
    /// SSH method: OpenSSH known_hosts text listing the ESXi hosts' keys; only listed keys are
    /// accepted. Default: trust on first use, recorded cluster-wide in a ConfigMap.
    #[arg(
        long,
        env = "SSH_KNOWN_HOSTS",
        hide_env_values = true,
        help_heading = "ESXi"
    )]
    pub ssh_known_hosts: Option<String>,
    /// "true" copies vVol disks through vmkfstools instead of the array's vVol copy.
    #[arg(long, env = "DISABLE_VVOL_METHOD", help_heading = "ESXi")]
    pub disable_vvol_method: Option<String>,
    /// "true" copies RDM disks through vmkfstools instead of the array's RDM copy.
    #[arg(long, env = "DISABLE_RDM_METHOD", help_heading = "ESXi")]
    pub disable_rdm_method: Option<String>,

    /// Namespace of the per-ESXi-host Lease objects.
    #[arg(
        long,
        env = "HOST_LEASE_NAMESPACE",
        default_value = "openshift-mtv",
        help_heading = "Host lease"
    )]
    pub host_lease_namespace: Option<String>,
    /// Duration of a host lease, in seconds.
    #[arg(
        long,
        env = "HOST_LEASE_DURATION_SECONDS",
        default_value = "10",
        help_heading = "Host lease"
    )]
    pub host_lease_duration_seconds: Option<String>,

    /// Listen address of the HTTPS metrics endpoint (":8443", "0.0.0.0:8443", "[::]:8443").
    #[arg(long, default_value = ":8443", help_heading = "Metrics")]
    pub http_endpoint: Option<String>,
    /// Path of the metrics endpoint.
    #[arg(long, default_value = "/metrics", help_heading = "Metrics")]
    pub metrics_path: Option<String>,

    /// Print the version and exit (other arguments are ignored).
    #[arg(long)]
    pub version: bool,
}

/// One problem with the arguments: which flag/env, what is wrong, what is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgProblem {
    subject: String,
    message: String,
}

impl ArgProblem {
    /// A problem with `subject` (a flag of another subcommand sharing these settings).
    pub fn new(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            message: message.into(),
        }
    }

    /// The flag(s) and env var(s) concerned, e.g. `--source-vmdk (env: none)`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// What is wrong and what is expected.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ArgProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// Every problem found in the arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ArgProblems(pub Vec<ArgProblem>);

impl ArgProblems {
    /// The problems as subcommand `command` reports them (`2 problems with the preflight
    /// arguments:` and one line each): every subcommand sharing these settings names itself.
    pub fn of_command<'a>(&'a self, command: &'a str) -> impl fmt::Display + 'a {
        CommandProblems {
            command,
            problems: self,
        }
    }
}

struct CommandProblems<'a> {
    command: &'a str,
    problems: &'a ArgProblems,
}

impl fmt::Display for CommandProblems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.0.len();
        let noun = if count == 1 { "problem" } else { "problems" };
        writeln!(f, "{count} {noun} with the {} arguments:", self.command)?;
        for problem in &self.problems.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

/// As `populate` reports them.
impl fmt::Display for ArgProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.of_command("populate").fmt(f)
    }
}

/// The validated configuration of one `populate` run.
#[derive(Debug, Clone)]
pub struct PopulateConfig {
    /// The disk to copy.
    pub source: SourceDisk,
    /// The volume to copy into.
    pub target: TargetVolume,
    /// UID of the PVC being populated (metrics label `owner_uid`); optional without Kubernetes.
    pub owner_uid: Option<String>,
    /// Name of the populator resource, when run by the controller.
    pub cr_name: Option<String>,
    /// Namespace of the populator resource, when run by the controller.
    pub cr_namespace: Option<String>,
    /// The Secret the environment came from (informational).
    pub secret_name: Option<String>,
    /// Requested size of the target PVC in bytes, when given.
    pub pvc_size_bytes: Option<u64>,
    /// How to reach the storage array.
    pub storage: StorageConfig,
    /// How to reach vCenter.
    pub vsphere: VsphereConfig,
    /// How to run the clone on ESXi.
    pub esxi: EsxiConfig,
    /// The per-host lease.
    pub host_lease: HostLeaseConfig,
    /// How to reach Kubernetes.
    pub kube: KubeAccess,
    /// The metrics endpoint.
    pub metrics: MetricsEndpoint,
    /// Accepted values that are probably not what the user meant (log them).
    pub warnings: Vec<String>,
}

/// The source disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDisk {
    /// VM id or name, when given.
    pub vm_id: Option<String>,
    /// The disk descriptor.
    pub vmdk: DatastorePath,
}

/// The volume to populate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetVolume {
    /// A PVC; its volume is found through the prime PVC `prime-<owner uid>`.
    Pvc {
        /// Namespace of the PVC.
        namespace: String,
        /// Name of the PVC.
        name: String,
    },
    /// A CSI volume given directly (no Kubernetes).
    VolumeHandle {
        /// The CSI volume handle.
        handle: String,
        /// The CSI volume attributes.
        attributes: BTreeMap<String, String>,
    },
    /// A PersistentVolume read from a file (no Kubernetes).
    PvFile(PathBuf),
}

/// Storage array access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// Management address as given.
    pub hostname: String,
    /// Credentials.
    pub auth: StorageAuth,
    /// Skip TLS verification (only with the literal `true`).
    pub skip_tls_verification: bool,
    /// Timeout of each API request.
    pub http_timeout: Duration,
    /// Extra CA certificates (PEM) to trust for the array.
    pub ca_cert_pem: Option<String>,
    /// The product and its vendor-specific keys.
    pub vendor: VendorSettings,
}

impl StorageConfig {
    /// The storage product.
    pub fn product(&self) -> StorageVendorProduct {
        self.vendor.product()
    }

    /// How the plugin reaches and logs in to the array; `ca_pem` (the lab's, a test's) replaces
    /// `STORAGE_CA_CERT` when given.
    pub fn connection_settings(&self, ca_pem: Option<String>) -> ConnectionSettings {
        let credentials = match &self.auth {
            StorageAuth::Token(token) => Credentials {
                username: String::new(),
                password: StorageSecret::new(""),
                token: Some(StorageSecret::new(token.expose())),
            },
            StorageAuth::Basic { username, password } => Credentials {
                username: username.clone(),
                password: StorageSecret::new(password.expose()),
                token: None,
            },
        };
        ConnectionSettings {
            hostname: self.hostname.clone(),
            credentials,
            skip_tls_verify: self.skip_tls_verification,
            ca_certificate_pem: ca_pem
                .or_else(|| self.ca_cert_pem.clone())
                .map(String::into_bytes),
            http_timeout: self.http_timeout,
            retry: StorageRetryPolicy::default(),
        }
    }
}

/// Storage credentials. A token wins when both forms are given, as upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageAuth {
    /// API token.
    Token(Secret),
    /// User name and password.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
}

/// The environment a copy reaches — the array, vCenter and the ESXi hosts — without a disk or a
/// target: what [`PopulateArgs::validate_environment`] builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentConfig {
    pub storage: StorageConfig,
    pub vsphere: VsphereConfig,
    pub esxi: EsxiConfig,
    /// Accepted but suspicious values.
    pub warnings: Vec<String>,
}

/// vCenter access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsphereConfig {
    /// vCenter host name (or host:port).
    pub hostname: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: Secret,
    /// Skip TLS verification of vCenter.
    pub insecure: bool,
    /// Extra CA certificates (PEM) to trust for vCenter.
    pub ca_cert_pem: Option<String>,
}

impl VsphereConfig {
    /// The login to vCenter; `trust` (a pinned thumbprint in tests and the lab) replaces the one
    /// derived from `GOVMOMI_INSECURE` and `cacert` when given.
    pub fn client_config(&self, trust: Option<TlsTrust>) -> ClientConfig {
        let mut client_config = ClientConfig::new(
            self.hostname.clone(),
            self.username.clone(),
            self.password.clone(),
        );
        client_config.trust = match trust {
            Some(trust) => trust,
            None if self.insecure => TlsTrust::Insecure,
            None => TlsTrust::Verify {
                extra_ca_pem: self.ca_cert_pem.clone(),
            },
        };
        client_config
    }
}

/// How the clone runs on ESXi.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsxiConfig {
    /// VIB or SSH.
    pub clone_method: CloneMethod,
    /// The ESXi host to use instead of the VM's host.
    pub migration_host: Option<String>,
    /// The SSH key pair (only with the SSH method).
    pub ssh_keys: Option<SshKeys>,
    /// SSH connect and per-command timeout.
    pub ssh_timeout: Duration,
    /// The ESXi host keys to accept (`SSH_KNOWN_HOSTS`); `None`: trust on first use.
    pub ssh_known_hosts: Option<KnownHosts>,
    /// Copy vVol disks through vmkfstools instead of the array.
    pub disable_vvol_method: bool,
    /// Copy RDM disks through vmkfstools instead of the array.
    pub disable_rdm_method: bool,
}

/// The SSH key pair the provider controller generated, decoded from base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKeys {
    /// The private key, parsed.
    pub private_key: SshPrivateKey,
    /// authorized_keys-format public key.
    pub public_key: String,
}

/// The per-ESXi-host lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLeaseConfig {
    /// Namespace of the Lease objects.
    pub namespace: String,
    /// Lease duration.
    pub duration: Duration,
}

/// Kubernetes access overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeAccess {
    /// Kubeconfig file.
    pub kubeconfig: Option<PathBuf>,
    /// API server URL.
    pub master: Option<String>,
}

/// The HTTPS metrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsEndpoint {
    /// Listen address.
    pub addr: SocketAddr,
    /// URL path.
    pub path: String,
}

const SECONDS_EXPECTED: &str = "expected a whole number of seconds greater than 0";

impl PopulateArgs {
    /// Checks every value and builds the configuration, or returns every problem found.
    /// Pure: reads nothing but `self`.
    pub fn validate(&self) -> Result<PopulateConfig, ArgProblems> {
        let mut v = Validator::new();

        let vm_id = present(&self.source_vm_id);
        let vmdk = match present(&self.source_vmdk) {
            None => {
                v.problem(
                    "source_vmdk",
                    format!("missing; expected a datastore path like \"{DATASTORE_PATH_EXAMPLE}\""),
                );
                None
            }
            Some(text) => DatastorePath::parse(&text)
                .map_err(|e| v.problem("source_vmdk", format!("{text:?} is not valid: {e}")))
                .ok(),
        };

        let target = self.target(&mut v);
        let owner_uid = present(&self.owner_uid);
        let pvc_size_bytes = present(&self.pvc_size).and_then(|text| {
            parse_quantity(&text)
                .map_err(|e| v.problem("pvc_size", format!("{text:?} is not a size: {e}")))
                .ok()
        });

        let storage = self.storage(&mut v);
        let vsphere = self.vsphere(&mut v);
        let esxi = self.esxi(&mut v);
        let host_lease = self.host_lease(&mut v);
        let metrics = self.metrics(&mut v);

        match (vmdk, target, storage, vsphere, esxi, host_lease, metrics) {
            (
                Some(vmdk),
                Some(target),
                Some(storage),
                Some(vsphere),
                Some(esxi),
                Some(host_lease),
                Some(metrics),
            ) if v.problems.is_empty() => Ok(PopulateConfig {
                source: SourceDisk { vm_id, vmdk },
                target,
                owner_uid,
                cr_name: present(&self.cr_name),
                cr_namespace: present(&self.cr_namespace),
                secret_name: present(&self.secret_name),
                pvc_size_bytes,
                storage,
                vsphere,
                esxi,
                host_lease,
                kube: KubeAccess {
                    kubeconfig: self
                        .kubeconfig
                        .clone()
                        .filter(|p| !p.as_os_str().is_empty()),
                    master: present(&self.master),
                },
                metrics,
                warnings: v.warnings,
            }),
            _ => Err(ArgProblems(v.problems)),
        }
    }

    /// Checks only what reaches the environment — storage, vCenter and ESXi access — and builds it,
    /// or returns every problem found; the disk and target flags are not needed (`copy-offload
    /// preflight` takes its disks on its own flags). Pure: reads nothing but `self`.
    pub fn validate_environment(&self) -> Result<EnvironmentConfig, ArgProblems> {
        let mut v = Validator::new();
        let storage = self.storage(&mut v);
        let vsphere = self.vsphere(&mut v);
        let esxi = self.esxi(&mut v);
        match (storage, vsphere, esxi) {
            (Some(storage), Some(vsphere), Some(esxi)) if v.problems.is_empty() => {
                Ok(EnvironmentConfig {
                    storage,
                    vsphere,
                    esxi,
                    warnings: v.warnings,
                })
            }
            _ => Err(ArgProblems(v.problems)),
        }
    }

    fn target(&self, v: &mut Validator) -> Option<TargetVolume> {
        let handle = present(&self.target_volume_handle);
        let pv_file = self.pv_file.clone().filter(|p| !p.as_os_str().is_empty());
        let mut attributes = BTreeMap::new();
        for attribute in &self.target_volume_attribute {
            match attribute.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    attributes.insert(key.trim().to_owned(), value.to_owned());
                }
                _ => v.problem(
                    "target_volume_attribute",
                    format!("{attribute:?} is not KEY=VALUE; expected e.g. \"Name=vol-1\""),
                ),
            }
        }
        if handle.is_none() && !self.target_volume_attribute.is_empty() {
            v.problem(
                "target_volume_attribute",
                "given without --target-volume-handle; attributes describe that volume".into(),
            );
        }
        match (handle, pv_file) {
            (Some(_), Some(_)) => {
                v.problem(
                    "pv_file",
                    "conflicts with --target-volume-handle; give one of them".into(),
                );
                None
            }
            (Some(handle), None) => Some(TargetVolume::VolumeHandle { handle, attributes }),
            (None, Some(path)) => match crate::pv::pv_from_file(&path) {
                // Read here, before anything is contacted; resolved again (cheaply) at run time.
                Ok(_) => Some(TargetVolume::PvFile(path)),
                Err(error) => {
                    let message = match error {
                        crate::error::CopyError::Target { message, .. } => message,
                        other => other.to_string(),
                    };
                    v.problem("pv_file", message);
                    None
                }
            },
            (None, None) => {
                let name = v.required(
                    &self.owner_name,
                    "owner_name",
                    "the name of the PVC to populate",
                );
                v.required(
                    &self.owner_uid,
                    "owner_uid",
                    "the UID of the PVC to populate",
                );
                let namespace = v.required(
                    &self.target_namespace,
                    "target_namespace",
                    "the namespace of the PVC to populate",
                );
                Some(TargetVolume::Pvc {
                    namespace: namespace?,
                    name: name?,
                })
            }
        }
    }

    fn storage(&self, v: &mut Validator) -> Option<StorageConfig> {
        let product = match present(&self.storage_vendor_product) {
            None => {
                v.missing(
                    "storage_vendor_product",
                    &format!("one of: {}", StorageVendorProduct::valid_names()),
                );
                None
            }
            Some(text) => text
                .parse::<StorageVendorProduct>()
                .map_err(|e| v.problem("storage_vendor_product", e.to_string()))
                .ok(),
        };
        let hostname = v
            .required(
                &self.storage_hostname,
                "storage_hostname",
                "the storage array management address",
            )
            .filter(|text| {
                let defaults = co_storage::http::EndpointDefaults {
                    scheme: "https",
                    port: None,
                    base_path: "",
                };
                let usable = co_storage::http::base_url(text, &defaults).is_ok();
                if !usable {
                    v.problem(
                        "storage_hostname",
                        format!(
                            "{text:?} is not a host, host:port or URL; expected e.g. array.example.com, \
                             array.example.com:8443 or https://array.example.com"
                        ),
                    );
                }
                usable
            });
        let auth = self.storage_auth(v, product);
        let skip_tls_verification = v.literal_true(
            &self.storage_skip_ssl_verification,
            "storage_skip_ssl_verification",
            "TLS verification of the storage array stays on",
        );
        let http_timeout = v.seconds(
            &self.storage_http_timeout_seconds,
            "storage_http_timeout_seconds",
            co_storage::http::DEFAULT_HTTP_TIMEOUT.as_secs(),
        );
        let vendor = product.and_then(|product| self.vendor_settings(product, v));
        let ca_cert_pem =
            pem_certificates(&self.storage_ca_cert, "storage_ca_cert", "the array", v);
        Some(StorageConfig {
            hostname: hostname?,
            auth: auth?,
            skip_tls_verification,
            http_timeout: http_timeout?,
            ca_cert_pem: ca_cert_pem?,
            vendor: vendor?,
        })
    }

    fn storage_auth(
        &self,
        v: &mut Validator,
        product: Option<StorageVendorProduct>,
    ) -> Option<StorageAuth> {
        let username = present(&self.storage_username);
        let password = self.storage_password.clone().filter(|p| !p.is_empty());
        if let Some(token) = present(&self.storage_token) {
            let takes_token = product.is_none_or(|p| VendorSettings::info(p).takes_token);
            if takes_token {
                return Some(StorageAuth::Token(Secret::new(token)));
            }
            let product = product.map(|p| p.as_str()).unwrap_or_default();
            if username.is_none() || password.is_none() {
                v.problem(
                    "storage_token",
                    format!(
                        "{product} does not authenticate with a token; give the array's user name and password in {} and {} instead",
                        v.subject("storage_username"),
                        v.subject("storage_password")
                    ),
                );
                return None;
            }
            v.warnings.push(format!(
                "{} is ignored: {product} authenticates with the user name and password",
                v.subject("storage_token")
            ));
        }
        match (username, password) {
            (Some(username), Some(password)) => Some(StorageAuth::Basic {
                username,
                password: Secret::new(password),
            }),
            (Some(_), None) => {
                v.missing(
                    "storage_password",
                    "the password for --storage-username (or give --storage-token instead)",
                );
                None
            }
            (None, Some(_)) => {
                v.missing(
                    "storage_username",
                    "the user name for --storage-password (or give --storage-token instead)",
                );
                None
            }
            (None, None) => {
                let subject = format!(
                    "{} or {} and {}",
                    v.subject("storage_token"),
                    v.subject("storage_username"),
                    v.subject("storage_password")
                );
                v.problems.push(ArgProblem {
                    subject,
                    message: "missing; expected storage credentials: a token, or a user name and a password".into(),
                });
                None
            }
        }
    }

    /// The vendor's own keys, read and checked by the vendor's module in the storage crate.
    fn vendor_settings(
        &self,
        product: StorageVendorProduct,
        v: &mut Validator,
    ) -> Option<VendorSettings> {
        let vendor_flags: [(Flag, &Option<String>); 9] = [
            (flags::PURE_CLUSTER_PREFIX, &self.pure_cluster_prefix),
            (flags::POWERFLEX_SYSTEM_ID, &self.powerflex_system_id),
            (flags::ONTAP_SVM, &self.ontap_svm),
            (flags::POWERMAX_SYMMETRIX_ID, &self.powermax_symmetrix_id),
            (
                flags::POWERMAX_PORT_GROUP_NAME,
                &self.powermax_port_group_name,
            ),
            (flags::VANTARA_STORAGE_ID, &self.vantara_storage_id),
            (flags::VANTARA_STORAGE_PORT, &self.vantara_storage_port),
            (
                flags::VANTARA_HOSTGROUP_ID_LIST,
                &self.vantara_hostgroup_id_list,
            ),
            (flags::VANTARA_COPY_SPEED, &self.vantara_copy_speed),
        ];
        let lookup = |flag: &Flag| {
            vendor_flags
                .iter()
                .find(|(known, _)| known == flag)
                .and_then(|(_, value)| present(value))
        };
        match VendorSettings::read(product, &lookup) {
            Ok(settings) => Some(settings),
            Err(problems) => {
                for problem in problems {
                    v.problem(&problem.flag.name.replace('-', "_"), problem.message);
                }
                None
            }
        }
    }

    fn vsphere(&self, v: &mut Validator) -> Option<VsphereConfig> {
        let hostname = v
            .required(
                &self.vsphere_hostname,
                "vsphere_hostname",
                "the vCenter host name",
            )
            .filter(|text| match co_vsphere::sdk_url(text) {
                Ok(_) => true,
                Err(error) => {
                    let reason = match error {
                        co_vsphere::Error::InvalidUrl { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    v.problem(
                        "vsphere_hostname",
                        format!(
                            "{text:?} is not a vCenter address ({reason}); expected e.g. vcenter.example.com, \
                             vcenter.example.com:443 or https://vcenter.example.com/sdk"
                        ),
                    );
                    false
                }
            });
        let username = v.required(
            &self.vsphere_username,
            "vsphere_username",
            "the vCenter user name",
        );
        let password = self.vsphere_password.clone().filter(|p| !p.is_empty());
        if password.is_none() {
            v.missing("vsphere_password", "the vCenter password");
        }
        let insecure = match present(&self.vsphere_insecure).as_deref() {
            None => Some(false),
            Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Some(true),
            Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Some(false),
            Some(other) => {
                v.problem(
                    "vsphere_insecure",
                    format!("{other:?} is not a boolean; expected \"true\" or \"false\" (empty verifies TLS)"),
                );
                None
            }
        };
        Some(VsphereConfig {
            hostname: hostname?,
            username: username?,
            password: Secret::new(password?),
            insecure: insecure?,
            ca_cert_pem: pem_certificates(&self.vsphere_ca_cert, "vsphere_ca_cert", "vCenter", v)?,
        })
    }

    fn esxi(&self, v: &mut Validator) -> Option<EsxiConfig> {
        let clone_method =
            CloneMethod::from_setting(self.esxi_clone_method.as_deref().unwrap_or(""))
                .map_err(|e| v.problem("esxi_clone_method", e.to_string()))
                .ok();
        let ssh_timeout = v.seconds(
            &self.ssh_timeout_seconds,
            "ssh_timeout_seconds",
            co_esxi::ssh::DEFAULT_SSH_TIMEOUT.as_secs(),
        );
        let ssh_known_hosts = self.ssh_known_hosts(v);
        let ssh_keys = match clone_method {
            Some(CloneMethod::Ssh) => {
                let private_key = v
                    .base64_secret(&self.ssh_private_key, "ssh_private_key")
                    .and_then(|pem| match SshPrivateKey::from_pem(pem.expose()) {
                        Ok(key) => Some(key),
                        Err(reason) => {
                            v.problem(
                                "ssh_private_key",
                                format!(
                                    "decodes from base64, but {reason}; expected the private key the provider controller stored (the key itself is not shown)"
                                ),
                            );
                            None
                        }
                    });
                let public_key = v.base64_secret(&self.ssh_public_key, "ssh_public_key");
                Some(SshKeys {
                    private_key: private_key?,
                    public_key: public_key?.expose().trim().to_owned(),
                })
            }
            _ => None,
        };
        let disable_vvol_method = v.literal_true(
            &self.disable_vvol_method,
            "disable_vvol_method",
            "vVol disks use the array's vVol copy",
        );
        let disable_rdm_method = v.literal_true(
            &self.disable_rdm_method,
            "disable_rdm_method",
            "RDM disks use the array's RDM copy",
        );
        Some(EsxiConfig {
            clone_method: clone_method?,
            migration_host: present(&self.migration_host),
            ssh_keys,
            ssh_timeout: ssh_timeout?,
            ssh_known_hosts: ssh_known_hosts?,
            disable_vvol_method,
            disable_rdm_method,
        })
    }

    /// `Some(None)` when unset; each unusable line is its own problem.
    fn ssh_known_hosts(&self, v: &mut Validator) -> Option<Option<KnownHosts>> {
        let Some(text) = present(&self.ssh_known_hosts) else {
            return Some(None);
        };
        let subject = v.subject("ssh_known_hosts");
        match KnownHosts::parse(&text) {
            Ok(list) => Some(Some(list.from_source(subject))),
            Err(problems) => {
                for problem in problems {
                    v.problem("ssh_known_hosts", problem.to_string());
                }
                None
            }
        }
    }

    fn host_lease(&self, v: &mut Validator) -> Option<HostLeaseConfig> {
        let namespace =
            present(&self.host_lease_namespace).unwrap_or_else(|| "openshift-mtv".into());
        let namespace_ok = namespace.len() <= 63
            && namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !namespace.starts_with('-')
            && !namespace.ends_with('-');
        if !namespace_ok {
            v.problem(
                "host_lease_namespace",
                format!(
                    "{namespace:?} is not a namespace name; expected lower-case letters, digits and \"-\", at most 63 characters"
                ),
            );
        }
        let duration = v.seconds(
            &self.host_lease_duration_seconds,
            "host_lease_duration_seconds",
            10,
        );
        Some(HostLeaseConfig {
            namespace: namespace_ok.then_some(namespace)?,
            duration: duration?,
        })
    }

    fn metrics(&self, v: &mut Validator) -> Option<MetricsEndpoint> {
        let endpoint = present(&self.http_endpoint).unwrap_or_else(|| ":8443".into());
        let addr = parse_listen_addr(&endpoint)
            .ok_or_else(|| {
                v.problem(
                    "http_endpoint",
                    format!(
                        "{endpoint:?} is not a listen address; expected \":8443\", \"0.0.0.0:8443\" or \"[::]:8443\""
                    ),
                )
            })
            .ok();
        let path = present(&self.metrics_path).unwrap_or_else(|| "/metrics".into());
        if !path.starts_with('/') {
            v.problem(
                "metrics_path",
                format!(
                    "{path:?} is not a URL path; expected it to start with \"/\", e.g. \"/metrics\""
                ),
            );
        }
        Some(MetricsEndpoint {
            addr: addr?,
            path: path.starts_with('/').then_some(path)?,
        })
    }
}

/// Collects problems and warnings; names flags from the clap definition, so the env var names
/// in messages cannot drift from the ones actually read.
struct Validator {
    command: clap::Command,
    problems: Vec<ArgProblem>,
    warnings: Vec<String>,
}

impl Validator {
    fn new() -> Self {
        Self {
            command: PopulateArgs::command(),
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// `--flag (env: NAME)` for the argument with clap id `id`.
    fn subject(&self, id: &str) -> String {
        let Some(arg) = self.command.get_arguments().find(|arg| arg.get_id() == id) else {
            debug_assert!(false, "no populate argument with id {id}");
            return id.to_owned();
        };
        let flag = arg.get_long().unwrap_or(id);
        match arg.get_env() {
            Some(env) => format!("--{flag} (env: {})", env.to_string_lossy()),
            None => format!("--{flag} (env: none)"),
        }
    }

    fn problem(&mut self, id: &str, message: String) {
        let subject = self.subject(id);
        self.problems.push(ArgProblem { subject, message });
    }

    fn missing(&mut self, id: &str, expected: &str) {
        self.problem(id, format!("missing; expected {expected}"));
    }

    /// The trimmed value, or a "missing" problem.
    fn required(&mut self, value: &Option<String>, id: &str, expected: &str) -> Option<String> {
        let value = present(value);
        if value.is_none() {
            self.missing(id, expected);
        }
        value
    }

    /// Upstream's boolean rule: only the literal `true` enables. Values other than empty, `true`
    /// and `false` are accepted as "off" but draw a warning, since they look like a mistake.
    fn literal_true(&mut self, value: &Option<String>, id: &str, effect_when_off: &str) -> bool {
        match present(value).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                let subject = self.subject(id);
                self.warnings.push(format!(
                    "{subject}: {other:?} is not the literal \"true\", so it counts as false: {effect_when_off}"
                ));
                false
            }
        }
    }

    /// A positive whole number of seconds; empty means `default`.
    fn seconds(&mut self, value: &Option<String>, id: &str, default: u64) -> Option<Duration> {
        match present(value) {
            None => Some(Duration::from_secs(default)),
            Some(text) => match text.parse::<u64>() {
                Ok(seconds) if seconds > 0 => Some(Duration::from_secs(seconds)),
                _ => {
                    self.problem(id, format!("{text:?} is not valid; {SECONDS_EXPECTED}"));
                    None
                }
            },
        }
    }

    /// A base64-encoded secret (the SSH keys), decoded; the value never enters a message.
    fn base64_secret(&mut self, value: &Option<String>, id: &str) -> Option<Secret> {
        let Some(encoded) = present(value) else {
            self.missing(
                id,
                "the base64 key the provider controller puts in the migration Secret (needed by the ssh clone method)",
            );
            return None;
        };
        let compact: String = encoded.split_whitespace().collect();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if decoded.is_none() {
            self.problem(
                id,
                "is not base64 of a text key; expected the value the provider controller stored (the key itself is not shown)".into(),
            );
        }
        decoded.map(Secret::new)
    }
}

/// A CA bundle flag (`cacert`, `STORAGE_CA_CERT`): PEM text holding at least one certificate,
/// checked here so a wrong value is a bad argument rather than a TLS failure later. `Some(None)`
/// when unset.
fn pem_certificates(
    value: &Option<String>,
    id: &str,
    whose: &str,
    v: &mut Validator,
) -> Option<Option<String>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let Some(pem) = value.clone().filter(|pem| !pem.trim().is_empty()) else {
        return Some(None);
    };
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_default();
    if certificates.is_empty() {
        v.problem(
            id,
            format!(
                "holds no PEM certificate; expected the CA certificate of {whose} as PEM text \
                 (\"-----BEGIN CERTIFICATE-----\" …)"
            ),
        );
        return None;
    }
    Some(Some(pem))
}

/// The trimmed value, treating empty as absent: Secrets often carry empty keys.
fn present(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// `CL1-A,1:CL2-B,2` → host groups; `None` if any entry is malformed.
/// Go-style listen addresses: `:8443` means every IPv4 interface, which every pod network has.
fn parse_listen_addr(text: &str) -> Option<SocketAddr> {
    match text.strip_prefix(':') {
        Some(port) => Some(SocketAddr::from(([0, 0, 0, 0], port.parse::<u16>().ok()?))),
        None => text.parse().ok(),
    }
}

/// A Kubernetes quantity (`1073741824`, `100Gi`, `1.5Gi`, `500M`) in bytes, rounded up.
pub fn parse_quantity(text: &str) -> Result<u64, &'static str> {
    const SUFFIXES: [(&str, u128); 12] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("Ei", 1 << 60),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("E", 1_000_000_000_000_000_000),
    ];
    let (number, multiplier) = SUFFIXES
        .iter()
        .find_map(|(suffix, multiplier)| text.strip_suffix(suffix).map(|n| (n, *multiplier)))
        .unwrap_or((text, 1));
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || fraction.len() > 18 {
        return Err("expected a number of bytes or a quantity such as 100Gi or 500M");
    }
    let too_large = "the size is too large";
    let whole: u128 = whole.parse().map_err(|_| too_large)?;
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| too_large)?
    };
    let bytes = whole
        .checked_mul(multiplier)
        .and_then(|w| {
            fraction
                .checked_mul(multiplier)
                .map(|f| w + f.div_ceil(scale))
        })
        .ok_or(too_large)?;
    u64::try_from(bytes).map_err(|_| too_large)
}

#[cfg(test)]
mod tests {
    #[test]
    fn problems_name_the_subcommand_they_belong_to() {
        let problems = ArgProblems(vec![ArgProblem::new("--vm", "missing")]);
        assert_eq!(
            problems.to_string(),
            "1 problem with the populate arguments:\n  - --vm: missing\n"
        );
        assert_eq!(
            problems.of_command("preflight").to_string(),
            "1 problem with the preflight arguments:\n  - --vm: missing\n"
        );
    }

    use super::*;

    use co_storage::vantara;

    /// A throw-away ed25519 key pair made for this test (base64 of the OpenSSH files).
    const TEST_PRIVATE_KEY: &str = "LS0tLS1CRUdJTiBPUEVOU1NIIFBSSVZBVEUgS0VZLS0tLS0KYjNCbGJuTnphQzFyWlhrdGRqRUFBQUFBQkc1dmJtVUFBQUFFYm05dVpRQUFBQUFBQUFBQkFBQUFNd0FBQUF0emMyZ3RaVwpReU5UVXhPUUFBQUNESHVFRmZ4NEc1WHlPYWppMzl4MGxCR1Bpc3d1SjRUWGxJS3dlN3dZdnpDd0FBQUlpb1FJQ3VxRUNBCnJnQUFBQXR6YzJndFpXUXlOVFV4T1FBQUFDREh1RUZmeDRHNVh5T2FqaTM5eDBsQkdQaXN3dUo0VFhsSUt3ZTd3WXZ6Q3cKQUFBRUJoWVFhNVNQcnN4RmJjRXNWL0pKM09MN2VsRjMyR1VsbXRKakhpYm1jVGlNZTRRVi9IZ2JsZkk1cU9MZjNIU1VFWQorS3pDNG5oTmVVZ3JCN3ZCaS9NTEFBQUFCSFJsYzNRQgotLS0tLUVORCBPUEVOU1NIIFBSSVZBVEUgS0VZLS0tLS0K";
    const TEST_PUBLIC_KEY: &str = "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSU1lNFFWL0hnYmxmSTVxT0xmM0hTVUVZK0t6QzRuaE5lVWdyQjd2QmkvTUwgdGVzdAo=";

    fn args(list: &[&str]) -> PopulateArgs {
        PopulateArgs::try_parse_from(std::iter::once("populate").chain(list.iter().copied()))
            .unwrap()
    }

    fn complete() -> Vec<&'static str> {
        vec![
            "--source-vmdk=[ds1] vm-1/vm-1.vmdk",
            "--owner-name=pvc-1",
            "--owner-uid=0c9c6a43-6b0e-4f53-9b61-7d0b1bb3b8a5",
            "--target-namespace=ns",
            "--storage-vendor-product=ontap",
            "--storage-hostname=array.example",
            "--storage-username=admin",
            "--storage-password=p@ss",
            "--vsphere-hostname=vc.example",
            "--vsphere-username=administrator@vsphere.local",
            "--vsphere-password=vc-pass",
        ]
    }

    /// The clap definition is the shared contract's flag list, flag for flag and env for env:
    /// the controller builds pod arguments from the contract, so the two must not drift.
    #[test]
    fn flags_are_the_shared_contract() {
        let command = PopulateArgs::command();
        let defined: Vec<(String, Option<String>)> = command
            .get_arguments()
            .filter_map(|arg| {
                let name = arg.get_long()?;
                (name != "version" && name != "help").then(|| {
                    (
                        name.to_owned(),
                        arg.get_env().map(|e| e.to_string_lossy().into_owned()),
                    )
                })
            })
            .collect();
        let contract: Vec<(String, Option<String>)> = co_api::contract::flags::ALL
            .iter()
            .map(|f| (f.name.to_owned(), f.env.map(str::to_owned)))
            .collect();
        assert_eq!(defined, contract);
    }

    fn problems_of(list: &[&str]) -> Vec<String> {
        args(list)
            .validate()
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn complete_arguments_validate() {
        let config = args(&complete()).validate().unwrap();
        assert_eq!(config.source.vmdk.to_string(), "[ds1] vm-1/vm-1.vmdk");
        assert_eq!(
            config.target,
            TargetVolume::Pvc {
                namespace: "ns".into(),
                name: "pvc-1".into()
            }
        );
        assert_eq!(config.storage.product(), StorageVendorProduct::Ontap);
        assert_eq!(config.esxi.clone_method, CloneMethod::Vib);
        assert_eq!(config.storage.http_timeout, Duration::from_secs(30));
        assert_eq!(config.esxi.ssh_timeout, Duration::from_secs(30));
        assert_eq!(config.host_lease.namespace, "openshift-mtv");
        assert_eq!(config.host_lease.duration, Duration::from_secs(10));
        assert_eq!(config.metrics.addr, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(config.metrics.path, "/metrics");
        assert!(!config.vsphere.insecure);
        assert!(!config.storage.skip_tls_verification);
        assert!(config.warnings.is_empty());
    }

    #[test]
    fn non_utf8_environment_values_are_named() {
        use std::os::unix::ffi::OsStringExt as _;
        let problems = non_utf8_environment(|name| match name {
            "STORAGE_HOSTNAME" => Some(OsString::from_vec(vec![0xff, 0xfe])),
            "GOVMOMI_HOSTNAME" => Some(OsString::from("vc.example")),
            _ => None,
        });
        let text: Vec<String> = problems.iter().map(|(_, p)| p.to_string()).collect();
        assert_eq!(problems[0].0, "STORAGE_HOSTNAME");
        assert_eq!(
            text,
            [
                "--storage-hostname (env: STORAGE_HOSTNAME): is not valid UTF-8; expected text (check how the Secret was created)"
            ]
        );
    }

    #[test]
    fn unknown_flags_are_problems_that_hide_nothing_else() {
        let argv: Vec<OsString> = [
            "--source-vmdk=[a] x.vmdk",
            "--no-such-flag",
            "value",
            "--other=1",
            "--storage-hostname",
            "array",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let (kept, problems) = split_unknown_flags(argv);
        assert_eq!(
            kept,
            ["--source-vmdk=[a] x.vmdk", "--storage-hostname", "array"]
                .map(OsString::from)
                .to_vec()
        );
        let subjects: Vec<&str> = problems.iter().map(ArgProblem::subject).collect();
        assert_eq!(subjects, ["--no-such-flag", "--other"]);
    }

    #[test]
    fn repeated_flags_are_warned_about_except_the_repeatable_one() {
        let warnings = repeated_flags(&[
            "--source-vmdk=[a] x.vmdk",
            "--source-vmdk",
            "[b] y.vmdk",
            "--target-volume-attribute=a=1",
            "--target-volume-attribute=b=2",
            "--",
            "--source-vmdk=z",
        ]);
        assert_eq!(
            warnings,
            ["--source-vmdk is given 2 times; the last value is used"]
        );
    }

    #[test]
    fn addresses_certificates_and_pv_files_are_checked_before_anything_is_contacted() {
        let with = |extra: &[&str]| {
            let mut list: Vec<String> = complete().into_iter().map(str::to_owned).collect();
            list.extend(extra.iter().map(|s| (*s).to_owned()));
            list
        };
        let problems_with = |extra: &[&str]| {
            let list = with(extra);
            let refs: Vec<&str> = list.iter().map(String::as_str).collect();
            problems_of(&refs)
        };
        let problems = problems_with(&["--storage-hostname=https://[::1"]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "--storage-hostname (env: STORAGE_HOSTNAME): \"https://[::1\" is not a host"
            ),
            "{problems:?}"
        );
        let problems = problems_with(&["--vsphere-hostname=https://127.0.0.1:notaport/sdk"]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("--vsphere-hostname (env: GOVMOMI_HOSTNAME): \"https://127.0.0.1:notaport/sdk\" is not a vCenter address"), "{problems:?}");
        let problems = problems_with(&["--vsphere-ca-cert=not a certificate"]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("--vsphere-ca-cert (env: cacert): holds no PEM certificate"),
            "{problems:?}"
        );

        let dir = tempfile::tempdir().unwrap();
        let garbled = dir.path().join("pv.yaml");
        std::fs::write(&garbled, "kind: [").unwrap();
        let missing = dir.path().join("absent.yaml");
        for (path, expected) in [
            (&garbled, "is not a PersistentVolume manifest"),
            (&missing, "cannot read the PV file"),
        ] {
            let flag = format!("--pv-file={}", path.display());
            let list: Vec<String> = complete()
                .into_iter()
                .filter(|a| !a.starts_with("--owner") && !a.starts_with("--target-namespace"))
                .map(str::to_owned)
                .chain([flag])
                .collect();
            let refs: Vec<&str> = list.iter().map(String::as_str).collect();
            let problems = problems_of(&refs);
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].starts_with("--pv-file "), "{problems:?}");
            assert!(problems[0].contains(expected), "{problems:?}");
        }
    }

    #[test]
    fn token_wins_over_user_and_password_where_the_vendor_takes_one() {
        let mut list: Vec<_> = complete()
            .into_iter()
            .filter(|a| !a.starts_with("--storage-vendor-product"))
            .collect();
        list.extend([
            "--storage-vendor-product=pureFlashArray",
            "--pure-cluster-prefix=px_1234abcd",
            "--storage-token=tok",
        ]);
        let config = args(&list).validate().unwrap();
        assert!(matches!(config.storage.auth, StorageAuth::Token(ref t) if t.expose() == "tok"));
    }

    /// ONTAP takes no token: next to a user name and password it is ignored with a warning;
    /// alone it is a bad argument naming what to give instead.
    #[test]
    fn a_token_for_a_vendor_without_tokens_is_refused_or_ignored() {
        let mut list = complete();
        list.push("--storage-token=tok");
        let config = args(&list).validate().unwrap();
        assert!(matches!(config.storage.auth, StorageAuth::Basic { .. }));
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.contains("is ignored: ontap")),
            "{:?}",
            config.warnings
        );

        let mut list: Vec<_> = complete()
            .into_iter()
            .filter(|a| {
                !a.starts_with("--storage-username") && !a.starts_with("--storage-password")
            })
            .collect();
        list.push("--storage-token=tok");
        let problems = problems_of(&list);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "--storage-token (env: STORAGE_TOKEN): ontap does not authenticate with a token"
            ),
            "{problems:?}"
        );
        assert!(problems[0].contains("STORAGE_USERNAME"), "{problems:?}");
    }

    #[test]
    fn half_basic_auth_names_the_missing_half() {
        let list: Vec<_> = complete()
            .into_iter()
            .filter(|a| !a.starts_with("--storage-password"))
            .collect();
        let problems = problems_of(&list);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("--storage-password (env: STORAGE_PASSWORD): missing"));
    }

    #[test]
    fn standalone_target_makes_pvc_flags_optional() {
        let list: Vec<_> = complete()
            .into_iter()
            .filter(|a| {
                !a.starts_with("--owner-name")
                    && !a.starts_with("--target-namespace")
                    && !a.starts_with("--owner-uid")
            })
            .chain([
                "--target-volume-handle=vol-1",
                "--target-volume-attribute=Name=vol-1",
                "--target-volume-attribute=Protocol=iscsi",
            ])
            .collect();
        let config = args(&list).validate().unwrap();
        let TargetVolume::VolumeHandle { handle, attributes } = config.target else {
            panic!("expected a volume handle target");
        };
        assert_eq!(handle, "vol-1");
        assert_eq!(attributes.get("Name").map(String::as_str), Some("vol-1"));
        assert_eq!(
            attributes.get("Protocol").map(String::as_str),
            Some("iscsi")
        );
    }

    #[test]
    fn standalone_flag_problems_are_reported() {
        let mut list = complete();
        list.extend([
            "--target-volume-handle=vol-1",
            "--pv-file=/tmp/pv.yaml",
            "--target-volume-attribute=novalue",
        ]);
        let problems = problems_of(&list);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("--pv-file (env: none): conflicts")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("\"novalue\" is not KEY=VALUE")),
            "{problems:?}"
        );
    }

    #[test]
    fn vendor_specific_keys_are_required() {
        let mut list: Vec<_> = complete()
            .into_iter()
            .filter(|a| !a.starts_with("--storage-vendor-product"))
            .collect();
        list.push("--storage-vendor-product=powermax");
        let problems = problems_of(&list);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0]
                .starts_with("--powermax-symmetrix-id (env: POWERMAX_SYMMETRIX_ID): missing")
        );
        assert!(
            problems[1]
                .starts_with("--powermax-port-group-name (env: POWERMAX_PORT_GROUP_NAME): missing")
        );
    }

    #[test]
    fn vantara_keys_are_parsed() {
        let mut list: Vec<_> = complete()
            .into_iter()
            .filter(|a| !a.starts_with("--storage-vendor-product"))
            .collect();
        list.extend([
            "--storage-vendor-product=vantara",
            "--vantara-storage-port=443",
            "--vantara-hostgroup-id-list=CL1-A,1:CL2-B,2",
            "--vantara-copy-speed=faster",
        ]);
        let config = args(&list).validate().unwrap();
        assert_eq!(
            config.storage.vendor,
            VendorSettings::Vantara(vantara::Settings {
                storage_id: None,
                port: 443,
                host_groups: vec![
                    vantara::HostGroup {
                        port: "CL1-A".into(),
                        number: 1
                    },
                    vantara::HostGroup {
                        port: "CL2-B".into(),
                        number: 2
                    },
                ],
                copy_speed: vantara::CopySpeed::Faster,
            })
        );
    }

    #[test]
    fn ssh_method_needs_decodable_keys_and_never_shows_them() {
        let mut list = complete();
        list.extend([
            "--esxi-clone-method= SSH ",
            "--ssh-private-key=not base64 s3cr3t!",
        ]);
        let problems = problems_of(&list);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("--ssh-private-key (env: SSH_PRIVATE_KEY): is not base64"));
        assert!(problems[1].starts_with("--ssh-public-key (env: SSH_PUBLIC_KEY): missing"));
        assert!(problems.iter().all(|p| !p.contains("s3cr3t")));

        // Valid base64 of something that is not a key: a bad argument, named, nothing shown.
        let mut list = complete();
        list.extend([
            "--esxi-clone-method=ssh",
            "--ssh-private-key=LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo=",
            "--ssh-public-key=c3NoLXJzYSBBQUFBIGtleQo=",
        ]);
        let problems = problems_of(&list);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "--ssh-private-key (env: SSH_PRIVATE_KEY): decodes from base64, but it is not a usable private key"
            ),
            "{problems:?}"
        );

        let mut list = complete();
        let private = format!("--ssh-private-key={TEST_PRIVATE_KEY}");
        let public = format!("--ssh-public-key={TEST_PUBLIC_KEY}");
        list.extend(["--esxi-clone-method=ssh", &private, &public]);
        let config = args(&list).validate().unwrap();
        let keys = config.esxi.ssh_keys.unwrap();
        assert!(keys.private_key.public_key_openssh().starts_with(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMe4QV/HgblfI5qOLf3HSUEY+KzC4nhNeUgrB7vBi/ML"
        ));
        assert_eq!(
            keys.public_key,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMe4QV/HgblfI5qOLf3HSUEY+KzC4nhNeUgrB7vBi/ML test"
        );
    }

    #[test]
    fn ssh_known_hosts_is_checked_line_by_line() {
        const KEY: &str =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
        let mut list = complete();
        let text = format!("# lab\n[10.0.0.1]:22 {KEY}\nesxi-2 ssh-ed25519 not-base64\nesxi-3\n");
        let flag = format!("--ssh-known-hosts={text}");
        list.push(&flag);
        let problems = problems_of(&list);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "--ssh-known-hosts (env: SSH_KNOWN_HOSTS): line 3 is not a known_hosts entry"
            ),
            "{problems:?}"
        );
        assert!(problems[1].contains("line 4 is not"), "{problems:?}");

        let mut list = complete();
        let comments_only = "--ssh-known-hosts=# nothing yet\n".to_owned();
        list.push(&comments_only);
        assert_eq!(
            problems_of(&list),
            [
                "--ssh-known-hosts (env: SSH_KNOWN_HOSTS): has no host key lines; expected one line \
              per ESXi host, as `ssh-keyscan` prints them"
            ]
        );

        let mut list = complete();
        let good = format!("--ssh-known-hosts=10.0.0.1,10.0.0.2 {KEY}\n[10.0.0.3]:2222 {KEY}\n");
        list.push(&good);
        let known = args(&list)
            .validate()
            .unwrap()
            .esxi
            .ssh_known_hosts
            .unwrap();
        assert_eq!(known.len(), 2);
        assert_eq!(known.source(), "--ssh-known-hosts (env: SSH_KNOWN_HOSTS)");
        assert_eq!(known.keys_for("10.0.0.3", 2222).trusted.len(), 1);
        assert!(
            args(&complete())
                .validate()
                .unwrap()
                .esxi
                .ssh_known_hosts
                .is_none()
        );
    }

    #[test]
    fn boolean_rules() {
        let mut list = complete();
        list.extend([
            "--storage-skip-ssl-verification=True",
            "--vsphere-insecure=1",
            "--disable-vvol-method=true",
        ]);
        let config = args(&list).validate().unwrap();
        assert!(!config.storage.skip_tls_verification);
        assert!(config.vsphere.insecure);
        assert!(config.esxi.disable_vvol_method);
        assert!(!config.esxi.disable_rdm_method);
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
        assert!(
            config.warnings[0].starts_with(
                "--storage-skip-ssl-verification (env: STORAGE_SKIP_SSL_VERIFICATION)"
            )
        );

        let mut list = complete();
        list.push("--vsphere-insecure=yes");
        let problems = problems_of(&list);
        assert!(
            problems[0].starts_with(
                "--vsphere-insecure (env: GOVMOMI_INSECURE): \"yes\" is not a boolean"
            )
        );
    }

    #[test]
    fn numbers_and_addresses_are_checked() {
        let mut list = complete();
        list.extend([
            "--ssh-timeout-seconds=0",
            "--storage-http-timeout-seconds=ten",
            "--host-lease-duration-seconds=-1",
            "--host-lease-namespace=Bad_NS",
            "--http-endpoint=localhost",
            "--metrics-path=metrics",
            "--pvc-size=12Qi",
        ]);
        let problems = args(&list).validate().unwrap_err().0;
        let subjects: Vec<&str> = problems.iter().map(ArgProblem::subject).collect();
        assert_eq!(
            subjects,
            [
                "--pvc-size (env: none)",
                "--storage-http-timeout-seconds (env: STORAGE_HTTP_TIMEOUT_SECONDS)",
                "--ssh-timeout-seconds (env: SSH_TIMEOUT_SECONDS)",
                "--host-lease-namespace (env: HOST_LEASE_NAMESPACE)",
                "--host-lease-duration-seconds (env: HOST_LEASE_DURATION_SECONDS)",
                "--http-endpoint (env: none)",
                "--metrics-path (env: none)",
            ]
        );
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_addr(":9443"),
            Some("0.0.0.0:9443".parse().unwrap())
        );
        assert_eq!(
            parse_listen_addr("127.0.0.1:1"),
            Some("127.0.0.1:1".parse().unwrap())
        );
        assert_eq!(
            parse_listen_addr("[::]:8443"),
            Some("[::]:8443".parse().unwrap())
        );
        assert_eq!(parse_listen_addr(":http"), None);
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("1073741824"), Ok(1 << 30));
        assert_eq!(parse_quantity("100000Mi"), Ok(100_000 << 20));
        assert_eq!(parse_quantity("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_quantity("500M"), Ok(500_000_000));
        assert_eq!(parse_quantity("0.1k"), Ok(100));
        assert_eq!(
            parse_quantity("0.0001k"),
            Ok(1),
            "fractional bytes round up"
        );
        assert!(parse_quantity("").is_err());
        assert!(parse_quantity("Gi").is_err());
        assert!(parse_quantity("-1").is_err());
        assert!(parse_quantity("1e3").is_err());
        assert!(parse_quantity("16Ei").is_err(), "does not fit in u64");
    }

    #[test]
    fn repeated_flags_override_like_go_flags() {
        let mut list = complete();
        list.push("--storage-vendor-product=powerstore");
        let config = args(&list).validate().unwrap();
        assert_eq!(config.storage.product(), StorageVendorProduct::PowerStore);
    }

    #[test]
    fn version_prescan() {
        assert!(requests_version(["--garbage", "--version"]));
        assert!(requests_version(["-version=true"]));
        assert!(!requests_version(["--", "--version"]));
        assert!(!requests_version(["--owner-name=--version"]));
        assert!(
            version_text().starts_with(&format!("copy-offload {}\n", env!("CARGO_PKG_VERSION")))
        );
        assert!(version_text().contains(WRAPPER_VERSION));
    }
}
