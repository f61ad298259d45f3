//! The flags of `copy-offload populate` and the environment variables behind them: the pod
//! contract. The controller passes the flags as `--name=value` and everything else through the
//! migration Secret's environment (`envFrom`); upstream populators read the same names.

/// One `populate` flag: its long name (without `--`) and, where it has one, its environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag {
    pub name: &'static str,
    pub env: Option<&'static str>,
}

impl Flag {
    const fn arg(name: &'static str) -> Self {
        Self { name, env: None }
    }

    const fn env(name: &'static str, env: &'static str) -> Self {
        Self {
            name,
            env: Some(env),
        }
    }

    /// The environment variable, or the flag's name for a flag without one.
    pub const fn env_name(&self) -> &'static str {
        match self.env {
            Some(env) => env,
            None => self.name,
        }
    }

    /// `--name=value`, the form the controller passes (Go's flag package accepts it too).
    pub fn with_value(&self, value: &str) -> String {
        format!("--{}={value}", self.name)
    }
}

// Passed by the controller as arguments.
pub const SOURCE_VM_ID: Flag = Flag::arg("source-vm-id");
pub const SOURCE_VMDK: Flag = Flag::arg("source-vmdk");
pub const OWNER_NAME: Flag = Flag::arg("owner-name");
pub const OWNER_UID: Flag = Flag::arg("owner-uid");
pub const TARGET_NAMESPACE: Flag = Flag::arg("target-namespace");
pub const CR_NAME: Flag = Flag::arg("cr-name");
pub const CR_NAMESPACE: Flag = Flag::arg("cr-namespace");
pub const SECRET_NAME: Flag = Flag::arg("secret-name");
pub const PVC_SIZE: Flag = Flag::arg("pvc-size");
pub const MIGRATION_HOST: Flag = Flag::arg("migration-host");
pub const KUBECONFIG: Flag = Flag::arg("kubeconfig");
pub const MASTER: Flag = Flag::arg("master");
pub const TARGET_VOLUME_HANDLE: Flag = Flag::arg("target-volume-handle");
pub const TARGET_VOLUME_ATTRIBUTE: Flag = Flag::arg("target-volume-attribute");
pub const PV_FILE: Flag = Flag::arg("pv-file");
pub const HTTP_ENDPOINT: Flag = Flag::arg("http-endpoint");
pub const METRICS_PATH: Flag = Flag::arg("metrics-path");

// Usually from the migration Secret.
pub const STORAGE_VENDOR_PRODUCT: Flag = Flag::env("storage-vendor-product", "STORAGE_VENDOR");
pub const STORAGE_HOSTNAME: Flag = Flag::env("storage-hostname", "STORAGE_HOSTNAME");
pub const STORAGE_USERNAME: Flag = Flag::env("storage-username", "STORAGE_USERNAME");
pub const STORAGE_PASSWORD: Flag = Flag::env("storage-password", "STORAGE_PASSWORD");
pub const STORAGE_TOKEN: Flag = Flag::env("storage-token", "STORAGE_TOKEN");
pub const STORAGE_SKIP_SSL_VERIFICATION: Flag = Flag::env(
    "storage-skip-ssl-verification",
    "STORAGE_SKIP_SSL_VERIFICATION",
);
pub const STORAGE_CA_CERT: Flag = Flag::env("storage-ca-cert", "STORAGE_CA_CERT");
pub const STORAGE_HTTP_TIMEOUT_SECONDS: Flag = Flag::env(
    "storage-http-timeout-seconds",
    "STORAGE_HTTP_TIMEOUT_SECONDS",
);
pub const PURE_CLUSTER_PREFIX: Flag = Flag::env("pure-cluster-prefix", "PURE_CLUSTER_PREFIX");
pub const POWERFLEX_SYSTEM_ID: Flag = Flag::env("powerflex-system-id", "POWERFLEX_SYSTEM_ID");
pub const ONTAP_SVM: Flag = Flag::env("ontap-svm", "ONTAP_SVM");
pub const POWERMAX_SYMMETRIX_ID: Flag = Flag::env("powermax-symmetrix-id", "POWERMAX_SYMMETRIX_ID");
pub const POWERMAX_PORT_GROUP_NAME: Flag =
    Flag::env("powermax-port-group-name", "POWERMAX_PORT_GROUP_NAME");
pub const VANTARA_STORAGE_ID: Flag = Flag::env("vantara-storage-id", "STORAGE_ID");
pub const VANTARA_STORAGE_PORT: Flag = Flag::env("vantara-storage-port", "STORAGE_PORT");
pub const VANTARA_HOSTGROUP_ID_LIST: Flag =
    Flag::env("vantara-hostgroup-id-list", "HOSTGROUP_ID_LIST");
pub const VANTARA_COPY_SPEED: Flag = Flag::env("vantara-copy-speed", "COPY_SPEED");
pub const VSPHERE_HOSTNAME: Flag = Flag::env("vsphere-hostname", "GOVMOMI_HOSTNAME");
pub const VSPHERE_USERNAME: Flag = Flag::env("vsphere-username", "GOVMOMI_USERNAME");
pub const VSPHERE_PASSWORD: Flag = Flag::env("vsphere-password", "GOVMOMI_PASSWORD");
pub const VSPHERE_INSECURE: Flag = Flag::env("vsphere-insecure", "GOVMOMI_INSECURE");
pub const VSPHERE_CA_CERT: Flag = Flag::env("vsphere-ca-cert", "cacert");
pub const ESXI_CLONE_METHOD: Flag = Flag::env("esxi-clone-method", "ESXI_CLONE_METHOD");
pub const SSH_PRIVATE_KEY: Flag = Flag::env("ssh-private-key", "SSH_PRIVATE_KEY");
pub const SSH_PUBLIC_KEY: Flag = Flag::env("ssh-public-key", "SSH_PUBLIC_KEY");
pub const SSH_TIMEOUT_SECONDS: Flag = Flag::env("ssh-timeout-seconds", "SSH_TIMEOUT_SECONDS");
pub const SSH_KNOWN_HOSTS: Flag = Flag::env("ssh-known-hosts", "SSH_KNOWN_HOSTS");
pub const DISABLE_VVOL_METHOD: Flag = Flag::env("disable-vvol-method", "DISABLE_VVOL_METHOD");
pub const DISABLE_RDM_METHOD: Flag = Flag::env("disable-rdm-method", "DISABLE_RDM_METHOD");
pub const HOST_LEASE_NAMESPACE: Flag = Flag::env("host-lease-namespace", "HOST_LEASE_NAMESPACE");
pub const HOST_LEASE_DURATION_SECONDS: Flag =
    Flag::env("host-lease-duration-seconds", "HOST_LEASE_DURATION_SECONDS");

/// Every flag `populate` takes besides `--version`, in the order of its help text.
pub const ALL: &[Flag] = &[
    SOURCE_VM_ID,
    SOURCE_VMDK,
    OWNER_NAME,
    OWNER_UID,
    TARGET_NAMESPACE,
    CR_NAME,
    CR_NAMESPACE,
    SECRET_NAME,
    PVC_SIZE,
    KUBECONFIG,
    MASTER,
    TARGET_VOLUME_HANDLE,
    TARGET_VOLUME_ATTRIBUTE,
    PV_FILE,
    STORAGE_VENDOR_PRODUCT,
    STORAGE_HOSTNAME,
    STORAGE_USERNAME,
    STORAGE_PASSWORD,
    STORAGE_TOKEN,
    STORAGE_SKIP_SSL_VERIFICATION,
    STORAGE_CA_CERT,
    STORAGE_HTTP_TIMEOUT_SECONDS,
    PURE_CLUSTER_PREFIX,
    POWERFLEX_SYSTEM_ID,
    ONTAP_SVM,
    POWERMAX_SYMMETRIX_ID,
    POWERMAX_PORT_GROUP_NAME,
    VANTARA_STORAGE_ID,
    VANTARA_STORAGE_PORT,
    VANTARA_HOSTGROUP_ID_LIST,
    VANTARA_COPY_SPEED,
    VSPHERE_HOSTNAME,
    VSPHERE_USERNAME,
    VSPHERE_PASSWORD,
    VSPHERE_INSECURE,
    VSPHERE_CA_CERT,
    ESXI_CLONE_METHOD,
    MIGRATION_HOST,
    SSH_PRIVATE_KEY,
    SSH_PUBLIC_KEY,
    SSH_TIMEOUT_SECONDS,
    SSH_KNOWN_HOSTS,
    DISABLE_VVOL_METHOD,
    DISABLE_RDM_METHOD,
    HOST_LEASE_NAMESPACE,
    HOST_LEASE_DURATION_SECONDS,
    HTTP_ENDPOINT,
    METRICS_PATH,
];

/// The flag whose environment variable is `env`.
pub fn by_env(env: &str) -> Option<&'static Flag> {
    ALL.iter().find(|f| f.env == Some(env))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_envs_are_unique() {
        let mut names: Vec<_> = ALL.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        let mut envs: Vec<_> = ALL.iter().filter_map(|f| f.env).collect();
        let count = envs.len();
        envs.sort_unstable();
        envs.dedup();
        assert_eq!(envs.len(), count);
        assert_eq!(
            SOURCE_VMDK.with_value("[ds] a.vmdk"),
            "--source-vmdk=[ds] a.vmdk"
        );
        assert_eq!(by_env("cacert"), Some(&VSPHERE_CA_CERT));
    }
}
