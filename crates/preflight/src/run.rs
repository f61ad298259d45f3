//! One preflight run: log in, find the disks and their hosts, ask each party its part, and
//! assemble the report. A party that cannot be reached fails its own checks and the run goes on
//! with the others, so one run lists every problem.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use co_api::DatastorePath;
use co_esxi::ssh::HostKeyPolicy;
use co_populator::EnvironmentConfig;
use co_vsphere::{Client, Error as VsphereError, FaultKind, TlsTrust};

use crate::catalog::VSPHERE_LOGIN;
use crate::report::{Check, Report};
use crate::{disks, hosts, storage};

/// The VMs and disks to check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// VM names, managed object ids or inventory paths: every disk of each.
    pub vms: Vec<String>,
    /// Single disks by datastore path (`[ds1] vm-1/vm-1.vmdk`).
    pub disks: Vec<DatastorePath>,
}

/// Knobs beyond the `populate` settings, for the lab and tests.
#[derive(Debug, Clone, Default)]
pub struct PreflightOptions {
    /// vCenter trust instead of the one derived from `GOVMOMI_INSECURE`/`cacert`.
    pub vsphere_trust: Option<TlsTrust>,
    /// Extra CA (PEM) to trust for the array.
    pub storage_ca_pem: Option<String>,
    /// SSH endpoint per host name, instead of the host's management IP on port 22.
    pub ssh_endpoints: BTreeMap<String, SocketAddr>,
    /// SSH host-key trust instead of `SSH_KNOWN_HOSTS` (or, without it, any key: preflight
    /// records nothing, and the populator checks host keys when it copies).
    pub ssh_host_key: Option<HostKeyPolicy>,
    /// `--probe`: cancel a probe copy on SIGTERM/SIGINT (cleaning up) as `populate` does; off
    /// in tests, which run many probes in one process.
    pub probe_handles_signals: bool,
    /// `--probe`: the copies' journal file instead of `populate`'s default (derived from the
    /// volume handle in the temporary directory, where a later probe of the same volume finds
    /// and finishes what an interrupted one left).
    pub probe_journal: Option<std::path::PathBuf>,
}

/// Runs every check for `selection` in the environment `env` describes. Changes nothing.
pub async fn run(
    env: &EnvironmentConfig,
    selection: &Selection,
    options: &PreflightOptions,
) -> Report {
    let mut checks = Vec::new();
    let client = login(env, options, &mut checks).await;
    let (disks, hosts) = match &client {
        Some(client) => {
            let disks = disks::gather(client, selection, &mut checks).await;
            let hosts = hosts::gather(client, &disks, &mut checks).await;
            hosts::check_privileges(client, &env.vsphere.username, &disks, &hosts, &mut checks)
                .await;
            (disks, hosts)
        }
        None => (Vec::new(), Vec::new()),
    };
    let array = storage::check(env, options, &hosts, &mut checks).await;
    for host in &hosts {
        hosts::check_host(env, options, host, &disks, &mut checks).await;
    }
    let mut predictions =
        disks::check_disks(env, array.as_deref(), &disks, &hosts, &mut checks).await;
    hosts::demote_unsupported_clones(&disks, &hosts, &mut predictions);
    if let Some(array) = &array
        && let Err(error) = array.close().await
    {
        tracing::debug!(%error, "closing the array session failed");
    }
    if let Some(client) = client
        && let Err(error) = client.logout().await
    {
        tracing::debug!(%error, "vCenter logout failed");
    }
    Report::new(checks, predictions)
}

async fn login(
    env: &EnvironmentConfig,
    options: &PreflightOptions,
    checks: &mut Vec<Check>,
) -> Option<Client> {
    let vcenter = env.vsphere.hostname.as_str();
    match Client::login(env.vsphere.client_config(options.vsphere_trust.clone())).await {
        Ok(client) => {
            let about = &client.service_content().about;
            checks.push(Check::pass(
                VSPHERE_LOGIN,
                vcenter,
                format!(
                    "logged in as {} ({}, API {})",
                    env.vsphere.username, about.full_name, about.api_version
                ),
            ));
            Some(client)
        }
        Err(error) => {
            let remedy = if error.is_fault(FaultKind::InvalidLogin) {
                "Correct GOVMOMI_USERNAME / GOVMOMI_PASSWORD in the migration Secret (the vSphere \
                 provider's credentials)."
            } else if matches!(error, VsphereError::TlsConfig(_))
                || error.to_string().contains("certificate")
            {
                "Give vCenter's CA certificate as `cacert` in the Secret (or GOVMOMI_INSECURE=true \
                 to skip verification)."
            } else {
                "Check GOVMOMI_HOSTNAME: vCenter must be reachable on HTTPS (443) from where \
                 copies run."
            };
            checks.push(Check::fail(
                VSPHERE_LOGIN,
                vcenter,
                format!("cannot log in: {error}"),
                remedy,
            ));
            None
        }
    }
}
