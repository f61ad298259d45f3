//! Pins the `copy-offload populate` flags and environment variables. The populator controller
//! passes these flags and the migration Secret provides these env vars;
//! renaming one breaks existing installations, so this table must only change on purpose.

use clap::CommandFactory;
use co_populator::PopulateArgs;

/// (flag, env var, default). Upstream's flags first, in upstream's order, then ours.
const CONTRACT: &[(&str, Option<&str>, Option<&str>)] = &[
    // upstream flags
    ("cr-name", None, None),
    ("cr-namespace", None, None),
    ("pvc-size", None, None),
    ("owner-uid", None, None),
    ("owner-name", None, None),
    ("secret-name", None, None),
    ("source-vm-id", None, None),
    ("source-vmdk", None, None),
    ("storage-vendor-product", Some("STORAGE_VENDOR"), None),
    ("target-namespace", None, None),
    ("storage-hostname", Some("STORAGE_HOSTNAME"), None),
    ("storage-username", Some("STORAGE_USERNAME"), None),
    ("storage-password", Some("STORAGE_PASSWORD"), None),
    ("storage-token", Some("STORAGE_TOKEN"), None),
    (
        "storage-skip-ssl-verification",
        Some("STORAGE_SKIP_SSL_VERIFICATION"),
        None,
    ),
    ("vsphere-hostname", Some("GOVMOMI_HOSTNAME"), None),
    ("vsphere-username", Some("GOVMOMI_USERNAME"), None),
    ("vsphere-password", Some("GOVMOMI_PASSWORD"), None),
    ("esxi-clone-method", Some("ESXI_CLONE_METHOD"), Some("vib")),
    (
        "storage-http-timeout-seconds",
        Some("STORAGE_HTTP_TIMEOUT_SECONDS"),
        Some("30"),
    ),
    ("migration-host", None, None),
    ("kubeconfig", None, None),
    ("master", None, None),
    ("http-endpoint", None, Some(":8443")),
    ("metrics-path", None, Some("/metrics")),
    ("version", None, None),
    // upstream env vars read directly, given flags here as well
    ("ssh-private-key", Some("SSH_PRIVATE_KEY"), None),
    ("ssh-public-key", Some("SSH_PUBLIC_KEY"), None),
    (
        "ssh-timeout-seconds",
        Some("SSH_TIMEOUT_SECONDS"),
        Some("30"),
    ),
    (
        "host-lease-namespace",
        Some("HOST_LEASE_NAMESPACE"),
        Some("openshift-mtv"),
    ),
    (
        "host-lease-duration-seconds",
        Some("HOST_LEASE_DURATION_SECONDS"),
        Some("10"),
    ),
    ("disable-vvol-method", Some("DISABLE_VVOL_METHOD"), None),
    ("disable-rdm-method", Some("DISABLE_RDM_METHOD"), None),
    ("pure-cluster-prefix", Some("PURE_CLUSTER_PREFIX"), None),
    ("powerflex-system-id", Some("POWERFLEX_SYSTEM_ID"), None),
    ("ontap-svm", Some("ONTAP_SVM"), None),
    ("powermax-symmetrix-id", Some("POWERMAX_SYMMETRIX_ID"), None),
    (
        "powermax-port-group-name",
        Some("POWERMAX_PORT_GROUP_NAME"),
        None,
    ),
    ("vantara-storage-id", Some("STORAGE_ID"), None),
    ("vantara-storage-port", Some("STORAGE_PORT"), None),
    ("vantara-hostgroup-id-list", Some("HOSTGROUP_ID_LIST"), None),
    ("vantara-copy-speed", Some("COPY_SPEED"), None),
    // present in every migration Secret; upstream ignored them, we honour them
    ("vsphere-insecure", Some("GOVMOMI_INSECURE"), None),
    ("vsphere-ca-cert", Some("cacert"), None),
    // ours: running without Kubernetes
    ("target-volume-handle", None, None),
    ("target-volume-attribute", None, None),
    ("pv-file", None, None),
    // ours: the ESXi host keys to accept (upstream never checked them)
    ("ssh-known-hosts", Some("SSH_KNOWN_HOSTS"), None),
    // ours: the CA of an array with a private CA (upstream never verified the array)
    ("storage-ca-cert", Some("STORAGE_CA_CERT"), None),
];

/// Env vars whose values `--help` must never print.
const SECRET_ENV: &[&str] = &[
    "STORAGE_PASSWORD",
    "STORAGE_TOKEN",
    "GOVMOMI_PASSWORD",
    "SSH_PRIVATE_KEY",
    "SSH_PUBLIC_KEY",
    "cacert",
];

type Row = (String, Option<String>, Option<String>);

fn defined() -> Vec<Row> {
    let command = PopulateArgs::command();
    let mut rows: Vec<Row> = command
        .get_arguments()
        .filter(|arg| arg.get_id() != "help")
        .map(|arg| {
            let long = arg
                .get_long()
                .unwrap_or_else(|| panic!("{} has no --flag", arg.get_id()));
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            let default = match arg.get_default_values() {
                [] => None,
                values => Some(
                    values
                        .iter()
                        .map(|v| v.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            };
            (long.to_owned(), env, default)
        })
        .collect();
    rows.sort();
    rows
}

fn pinned() -> Vec<Row> {
    let mut rows: Vec<Row> = CONTRACT
        .iter()
        .map(|(flag, env, default)| {
            (
                flag.to_string(),
                env.map(str::to_owned),
                default.map(str::to_owned),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn flags_env_vars_and_defaults_match_the_contract() {
    assert_eq!(defined(), pinned());
}

#[test]
fn every_flag_takes_name_equals_value_except_version() {
    let command = PopulateArgs::command();
    for arg in command.get_arguments() {
        let takes_value = arg.get_action().takes_values();
        let is_switch = matches!(arg.get_long(), Some("version" | "help"));
        assert_eq!(takes_value, !is_switch, "--{:?}", arg.get_long());
    }
}

#[test]
fn help_never_shows_secret_values() {
    let command = PopulateArgs::command();
    for env in SECRET_ENV {
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_env().is_some_and(|e| e == *env))
            .unwrap_or_else(|| panic!("no argument reads {env}"));
        assert!(
            arg.is_hide_env_values_set(),
            "{env} must have hide_env_values"
        );
    }
}

#[test]
fn target_volume_attribute_is_repeatable() {
    let command = PopulateArgs::command();
    let arg = command
        .get_arguments()
        .find(|arg| arg.get_long() == Some("target-volume-attribute"))
        .unwrap();
    assert!(matches!(arg.get_action(), clap::ArgAction::Append));
}
