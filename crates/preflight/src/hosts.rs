//! The ESXi side: each host a selected VM runs on, read once (advanced settings, LUN ids,
//! initiators, the VAAI clone status of its disks' source LUNs), its checks (offload settings,
//! VAAI clone support, `Disk.MaxLUN` headroom, the clone method), and the session's privileges on
//! vCenter, the hosts and the datastores.

use std::collections::BTreeMap;

use co_api::CloneMethod;
use co_esxi::assets::WRAPPER_VERSION;
use co_esxi::ssh::{HostKeyPolicy, SshExecutor, SshSettings};
use co_esxi::vib_executor::VibExecutor;
use co_esxi::vsphere::HostEsxcli;
use co_esxi::{CloneExecutor as _, EsxiError, manual_key_instructions};
use co_populator::EnvironmentConfig;
use co_populator::lease::HostId;
use co_storage::{EsxiHostRef, Initiator};
use co_vsphere::esxcli::{StorageCoreDeviceVaaiStatusGet, VaaiStatus};
use co_vsphere::{AuthorizationManager, Client, Esxcli, HostSystem, ManagedObjectReference};

use crate::catalog::{
    DATASTORE_PRIVILEGES, HOST_HW_INIT, HOST_HW_MOVE, HOST_MAX_HW_TRANSFER, HOST_MAX_LUN,
    HOST_PRIVILEGES, HOST_SSH_KEY, HOST_SSH_WRAPPER, HOST_VAAI_CLONE, HOST_VIB, VCENTER_PRIVILEGES,
    VSPHERE_PRIVILEGES, privilege_label,
};
use crate::disks::{DiskFacts, source_device};
use crate::report::{Check, CopyPath, DiskPrediction};
use crate::run::PreflightOptions;

const HW_MOVE: &str = "DataMover.HardwareAcceleratedMove";
const HW_INIT: &str = "DataMover.HardwareAcceleratedInit";
const MAX_HW_TRANSFER: &str = "DataMover.MaxHWTransferSize";
const MAX_LUN: &str = "Disk.MaxLUN";
/// The transfer size (KB) Forklift's `xcopy-validate.sh` and the array vendors recommend.
const RECOMMENDED_MAX_HW_TRANSFER_KB: i64 = 16384;
/// Fewer free LUN ids than this below `Disk.MaxLUN` draws a warning.
const LOW_LUN_HEADROOM: i64 = 16;

/// What vCenter says about one host.
pub(crate) struct HostFacts {
    pub client: Client,
    pub moref: ManagedObjectReference,
    pub name: String,
    /// The id array objects are named after (`hostsystem-host-12`).
    pub host_id: String,
    pub initiators: Vec<Initiator>,
    /// Advanced settings read: key → integer value (`None`: the host has no such setting).
    pub options: BTreeMap<&'static str, Option<i64>>,
    /// `/DataMover/HardwareAcceleratedMove`, when read.
    pub hardware_accelerated_move: Option<bool>,
    pub lun_ids: Vec<u32>,
    /// The VAAI clone status of each source LUN of the disks this host runs, or why it could
    /// not be read.
    pub vaai_clone: BTreeMap<String, Result<VaaiStatus, String>>,
}

impl HostFacts {
    pub(crate) fn esxi_ref(&self) -> EsxiHostRef {
        EsxiHostRef {
            host_id: self.host_id.clone(),
            initiators: self.initiators.clone(),
        }
    }
}

/// Reads each host the disks' VMs run on, once.
pub(crate) async fn gather(
    client: &Client,
    disks: &[DiskFacts],
    checks: &mut Vec<Check>,
) -> Vec<HostFacts> {
    let mut morefs: Vec<&ManagedObjectReference> = disks.iter().map(|d| &d.host).collect();
    morefs.sort_by_key(|m| m.to_string());
    morefs.dedup();
    let mut out = Vec::new();
    for moref in morefs {
        match host_facts(client, moref).await {
            Ok(mut facts) => {
                facts.vaai_clone = vaai_clone_statuses(&facts, disks).await;
                out.push(facts);
            }
            Err(error) => checks.push(Check::fail(
                HOST_HW_MOVE,
                moref.to_string(),
                format!("cannot read the host: {error}"),
                "Check the host is connected in vCenter and the role can read it (System › Read).",
            )),
        }
    }
    out
}

async fn host_facts(
    client: &Client,
    moref: &ManagedObjectReference,
) -> Result<HostFacts, co_vsphere::Error> {
    let host = HostSystem::new(client.clone(), moref.clone());
    let name = host.name().await?;
    let initiators = host
        .adapters()
        .await?
        .iter()
        .filter(|a| a.is_san())
        .map(|a| Initiator::from_adapter_id(&a.id))
        .collect();
    let mut options = BTreeMap::new();
    for key in [HW_MOVE, HW_INIT, MAX_HW_TRANSFER, MAX_LUN] {
        let value = host.advanced_option(key).await?;
        options.insert(key, value.and_then(|v| v.as_i64()));
    }
    let host_id = HostId::from_managed_object(&moref.to_string())
        .map(|id| id.as_str().to_owned())
        .unwrap_or_else(|_| format!("hostsystem-{}", moref.value.to_ascii_lowercase()));
    Ok(HostFacts {
        client: client.clone(),
        moref: moref.clone(),
        hardware_accelerated_move: options.get(HW_MOVE).copied().flatten().map(|v| v == 1),
        name,
        host_id,
        initiators,
        options,
        lun_ids: host.lun_ids().await?,
        vaai_clone: BTreeMap::new(),
    })
}

/// `esxcli storage core device vaai status get -d <device>` for each source LUN of the disks on
/// `host`, through the same typed esxcli the populator runs.
async fn vaai_clone_statuses(
    host: &HostFacts,
    disks: &[DiskFacts],
) -> BTreeMap<String, Result<VaaiStatus, String>> {
    let mut devices: Vec<String> = disks
        .iter()
        .filter(|d| d.host == host.moref)
        .filter_map(source_device)
        .collect();
    devices.sort();
    devices.dedup();
    let esxcli = Esxcli::new(host.client.clone(), host.moref.clone());
    let mut out = BTreeMap::new();
    for device in devices {
        let command = StorageCoreDeviceVaaiStatusGet {
            device: Some(device.clone()),
        };
        let status = match esxcli.execute(&command).await {
            Ok(statuses) => statuses
                .into_iter()
                .find(|s| s.device.eq_ignore_ascii_case(&device))
                .map(|s| s.clone)
                .ok_or_else(|| format!("the host reports no VAAI status for {device}")),
            Err(error) => Err(error.to_string()),
        };
        out.insert(device, status);
    }
    out
}

/// One check per source LUN on the host: ESXi sends XCOPY to a device only while its clone
/// primitive is supported; otherwise vmkfstools copies every block itself.
fn vaai_clone_checks(host: &HostFacts) -> Vec<Check> {
    let name = host.name.as_str();
    host.vaai_clone
        .iter()
        .map(|(device, status)| {
            let subject = format!("{device} on {name}");
            let show = format!("esxcli storage core device vaai status get -d {device}");
            match status {
                Ok(VaaiStatus::Supported) => Check::pass(
                    HOST_VAAI_CLONE,
                    subject,
                    "VAAI clone status: supported (XCOPY)",
                ),
                Ok(VaaiStatus::Unsupported) => Check::fail(
                    HOST_VAAI_CLONE,
                    subject,
                    format!(
                        "VAAI clone status: unsupported — ESXi will not send XCOPY to {device}, every copy from it is a host copy"
                    ),
                    format!(
                        "Enable VAAI/XCOPY (full copy) for this LUN on the array (see the array vendor's \
                         VMware integration guide); check the SATP and VAAI claim rules on {name} \
                         (esxcli storage core claimrule list --claimrule-class=VAAI; \
                         esxcli storage nmp device list -d {device}); then confirm on {name}: {show}"
                    ),
                ),
                Ok(other) => Check::warn(
                    HOST_VAAI_CLONE,
                    subject,
                    format!(
                        "VAAI clone status: {} — ESXi has not yet used XCOPY on this LUN, so support is unproven",
                        other.as_str()
                    ),
                    format!(
                        "Usually resolved by the first clone (ESXi probes the primitive then); to be sure \
                         before the migration, clone a small disk on this datastore or run preflight \
                         --probe, then on {name}: {show}"
                    ),
                ),
                Err(error) => Check::warn(
                    HOST_VAAI_CLONE,
                    subject,
                    format!("the VAAI status cannot be read: {error}"),
                    format!("On {name}: {show}"),
                ),
            }
        })
        .collect()
}

/// A source LUN whose clone primitive is unsupported turns a predicted XCOPY into a host copy,
/// with the reason appended.
pub(crate) fn demote_unsupported_clones(
    disks: &[DiskFacts],
    hosts: &[HostFacts],
    predictions: &mut [DiskPrediction],
) {
    for (disk, prediction) in disks.iter().zip(predictions.iter_mut()) {
        let Some(host) = hosts.iter().find(|h| h.moref == disk.host) else {
            continue;
        };
        let Some(device) = source_device(disk) else {
            continue;
        };
        if !matches!(
            host.vaai_clone.get(&device),
            Some(Ok(VaaiStatus::Unsupported))
        ) {
            continue;
        }
        let reason = format!(
            "source LUN {device} reports VAAI clone unsupported on {}",
            host.name
        );
        match prediction.path {
            CopyPath::Xcopy => {
                prediction.path = CopyPath::HostCopy;
                prediction.reason = reason;
            }
            CopyPath::HostCopy => prediction.reason = format!("{}; {reason}", prediction.reason),
            _ => {}
        }
    }
}

/// `esxcli system settings advanced set` for `key` (`Group.Name`) to `value`, as an administrator
/// types it on the host.
fn esxcli_set(key: &str, value: i64) -> String {
    format!(
        "esxcli system settings advanced set --option /{} --int-value {value}",
        key.replace('.', "/")
    )
}

/// The host's checks: offload settings, LUN headroom, and the clone method.
pub(crate) async fn check_host(
    env: &EnvironmentConfig,
    options: &PreflightOptions,
    host: &HostFacts,
    disks: &[DiskFacts],
    checks: &mut Vec<Check>,
) {
    checks.extend(setting_checks(host));
    checks.extend(vaai_clone_checks(host));
    match env.esxi.clone_method {
        CloneMethod::Vib => checks.push(vib_check(host).await),
        CloneMethod::Ssh => {
            let datastore = disks
                .iter()
                .find(|d| d.host == host.moref)
                .map(|d| d.datastore.name.clone())
                .unwrap_or_default();
            checks.extend(ssh_checks(env, options, host, &datastore).await);
        }
    }
}

fn setting_checks(host: &HostFacts) -> Vec<Check> {
    let name = host.name.as_str();
    let value = |key: &str| host.options.get(key).copied().flatten();
    let switch = |id, key: &str, what: &str| match value(key) {
        Some(1) => Check::pass(id, name, format!("/{} is 1", key.replace('.', "/"))),
        found => Check::fail(
            id,
            name,
            format!(
                "/{} is {}: {what}",
                key.replace('.', "/"),
                found.map_or("not reported".into(), |v| v.to_string())
            ),
            format!("On {name}: {}", esxcli_set(key, 1)),
        ),
    };
    let mut out = vec![
        switch(
            HOST_HW_MOVE,
            HW_MOVE,
            "ESXi will not send XCOPY, every clone becomes a host copy",
        ),
        switch(
            HOST_HW_INIT,
            HW_INIT,
            "ESXi zeroes blocks itself instead of offloading WRITE SAME",
        ),
    ];
    out.push(match value(MAX_HW_TRANSFER) {
        Some(kb) if kb >= RECOMMENDED_MAX_HW_TRANSFER_KB => Check::pass(
            HOST_MAX_HW_TRANSFER,
            name,
            format!("/DataMover/MaxHWTransferSize is {kb} KB"),
        ),
        found => Check::warn(
            HOST_MAX_HW_TRANSFER,
            name,
            format!(
                "/DataMover/MaxHWTransferSize is {}: each XCOPY moves less than the {RECOMMENDED_MAX_HW_TRANSFER_KB} KB recommended",
                found.map_or("not reported".into(), |v| format!("{v} KB"))
            ),
            format!(
                "On {name}: {} (if the array vendor recommends it)",
                esxcli_set(MAX_HW_TRANSFER, RECOMMENDED_MAX_HW_TRANSFER_KB)
            ),
        ),
    });
    out.push(lun_headroom(host, value(MAX_LUN)));
    out
}

/// Arrays give a new mapping the lowest free LUN id, and ESXi scans ids below `Disk.MaxLUN`
/// only: the next id must be below it or the copy's volume never appears on the host.
fn lun_headroom(host: &HostFacts, max_lun: Option<i64>) -> Check {
    let name = host.name.as_str();
    let Some(max_lun) = max_lun else {
        return Check::warn(
            HOST_MAX_LUN,
            name,
            "/Disk/MaxLUN is not reported",
            format!("On {name}: esxcli system settings advanced list --option /Disk/MaxLUN"),
        );
    };
    let next = host
        .lun_ids
        .last()
        .map_or(0, |highest| i64::from(*highest) + 1);
    let headroom = max_lun - next;
    let in_use = format!(
        "{} LUN id(s) in use, the highest {}",
        host.lun_ids.len(),
        host.lun_ids
            .last()
            .map_or("none".into(), |id| id.to_string())
    );
    let remedy = format!(
        "On {name}: {} (ESXi's default), then rescan the adapters",
        esxcli_set(MAX_LUN, 1024)
    );
    if headroom <= 0 {
        Check::fail(
            HOST_MAX_LUN,
            name,
            format!(
                "/Disk/MaxLUN is {max_lun} and {in_use}: a volume mapped for a copy gets id {next} or above, which the host does not scan"
            ),
            remedy,
        )
    } else if headroom < LOW_LUN_HEADROOM {
        Check::warn(
            HOST_MAX_LUN,
            name,
            format!(
                "/Disk/MaxLUN is {max_lun} and {in_use}: only {headroom} id(s) left for copies"
            ),
            remedy,
        )
    } else {
        Check::pass(
            HOST_MAX_LUN,
            name,
            format!("/Disk/MaxLUN is {max_lun}, {in_use}: {headroom} id(s) free"),
        )
    }
}

async fn vib_check(host: &HostFacts) -> Check {
    let name = host.name.as_str();
    let executor = VibExecutor::new(HostEsxcli::new(
        host.client.clone(),
        host.moref.clone(),
        name,
    ));
    let install = format!(
        "Install the VIB: copy-offload vib build, then copy-offload vib install --hosts {name} \
         --ssh-key <root key>; if it is installed already, restart hostd on the host \
         (/etc/init.d/hostd restart) so esxcli loads it."
    );
    match executor.version().await {
        Ok(version) if version == WRAPPER_VERSION => Check::pass(
            HOST_VIB,
            name,
            format!("vmkfstools-wrapper VIB {version} answers through esxcli"),
        ),
        Ok(version) => Check::fail(
            HOST_VIB,
            name,
            format!("the VIB answers at version {version}; this build needs {WRAPPER_VERSION}"),
            format!(
                "Upgrade the VIB: copy-offload vib install --hosts {name} --ssh-key <root key> \
                 (installs {WRAPPER_VERSION})."
            ),
        ),
        Err(error) => Check::fail(
            HOST_VIB,
            name,
            format!("the vmkfstools-wrapper VIB does not answer: {error}"),
            install,
        ),
    }
}

async fn ssh_checks(
    env: &EnvironmentConfig,
    options: &PreflightOptions,
    host: &HostFacts,
    datastore: &str,
) -> Vec<Check> {
    let name = host.name.as_str();
    let Some(keys) = &env.esxi.ssh_keys else {
        return vec![Check::fail(
            HOST_SSH_KEY,
            name,
            "the SSH method is selected but no key pair is configured",
            "Set SSH_PRIVATE_KEY and SSH_PUBLIC_KEY in the migration Secret (Forklift generates them).",
        )];
    };
    let policy = options
        .ssh_host_key
        .clone()
        .unwrap_or_else(|| match &env.esxi.ssh_known_hosts {
            Some(list) => HostKeyPolicy::KnownHosts(list.clone()),
            None => HostKeyPolicy::TrustOnFirstUse {
                known_hosts: std::env::temp_dir().join("copy-offload-preflight-known_hosts"),
            },
        });
    let mut settings = SshSettings::new(keys.private_key.clone(), policy);
    settings.timeout = env.esxi.ssh_timeout;
    let address = match options.ssh_endpoints.get(name) {
        Some(endpoint) => {
            settings.port = endpoint.port();
            endpoint.ip().to_string()
        }
        None => match HostSystem::new(host.client.clone(), host.moref.clone())
            .management_ips()
            .await
        {
            Ok(ips) => ips.first().cloned().unwrap_or_default(),
            Err(error) => {
                return vec![Check::fail(
                    HOST_SSH_KEY,
                    name,
                    format!("no management address to reach the host over SSH: {error}"),
                    "Give the host a management VMkernel interface (vmk0) with an IP address.",
                )];
            }
        },
    };
    let executor = match SshExecutor::connect(&address, datastore, &settings).await {
        Ok(executor) => executor,
        Err(EsxiError::KeyNotAccepted { .. }) => {
            return vec![Check::fail(
                HOST_SSH_KEY,
                name,
                format!("the host at {address} refuses the migration key"),
                manual_key_instructions(name, datastore, &keys.public_key),
            )];
        }
        Err(error) => {
            return vec![Check::fail(
                HOST_SSH_KEY,
                name,
                format!("cannot open an SSH session to {address}: {error}"),
                format!(
                    "Start the SSH service on {name} (Host › Configure › Services › SSH) and allow TCP 22 from \
                     the cluster's nodes."
                ),
            )];
        }
    };
    let mut out = vec![Check::pass(
        HOST_SSH_KEY,
        name,
        format!("the host at {address} accepts the migration key"),
    )];
    out.push(match executor.check_wrapper_version().await {
        Ok(()) => Check::pass(
            HOST_SSH_WRAPPER,
            name,
            format!("the wrapper on datastore {datastore} answers at {WRAPPER_VERSION}"),
        ),
        Err(error) => Check::warn(
            HOST_SSH_WRAPPER,
            name,
            format!("the key's wrapper is not current: {error}"),
            format!(
                "Nothing to do unless the key line is not copy-offload's: populate places the current \
                 wrapper on datastore {datastore} before its first clone. The key line it expects: \
                 {}",
                co_esxi::restricted_key_line(datastore, &keys.public_key)
            ),
        ),
    });
    executor.disconnect().await;
    out
}

/// A managed entity and the name a person knows it by.
type NamedEntity = (ManagedObjectReference, String);

/// The session's privileges on vCenter, each host and each datastore of the disks.
pub(crate) async fn check_privileges(
    client: &Client,
    user: &str,
    disks: &[DiskFacts],
    hosts: &[HostFacts],
    checks: &mut Vec<Check>,
) {
    let manager = match AuthorizationManager::of(client) {
        Ok(manager) => manager,
        Err(error) => {
            checks.push(unreadable_privileges(&error));
            return;
        }
    };
    let mut datastores: Vec<NamedEntity> = disks
        .iter()
        .map(|d| (d.datastore.datastore.clone(), d.datastore.name.clone()))
        .collect();
    datastores.sort_by(|a, b| a.1.cmp(&b.1));
    datastores.dedup();
    let groups: Vec<(Vec<NamedEntity>, &[&str])> = vec![
        (
            vec![(
                client.service_content().root_folder.clone(),
                "vCenter".to_owned(),
            )],
            VCENTER_PRIVILEGES,
        ),
        (
            hosts
                .iter()
                .map(|h| (h.moref.clone(), h.name.clone()))
                .collect(),
            HOST_PRIVILEGES,
        ),
        (datastores, DATASTORE_PRIVILEGES),
    ];
    for (entities, privileges) in groups {
        let morefs: Vec<ManagedObjectReference> = entities.iter().map(|(m, _)| m.clone()).collect();
        let answers = match manager.session_privileges(&morefs, privileges).await {
            Ok(answers) => answers,
            Err(error) => {
                checks.push(unreadable_privileges(&error));
                return;
            }
        };
        for (moref, subject) in &entities {
            let missing: Vec<&str> = match answers.iter().find(|a| &a.entity == moref) {
                Some(answer) => answer.missing(),
                None => privileges.to_vec(),
            };
            if missing.is_empty() {
                checks.push(Check::pass(
                    VSPHERE_PRIVILEGES,
                    subject.as_str(),
                    format!("the session holds {}", privileges.join(", ")),
                ));
            } else {
                let labels: Vec<&str> = missing.iter().map(|id| privilege_label(id)).collect();
                checks.push(Check::fail(
                    VSPHERE_PRIVILEGES,
                    subject.as_str(),
                    format!("the session lacks {}", missing.join(", ")),
                    format!(
                        "Add to the role of {user} (vSphere Client › Administration › Roles; a role \
                         named StorageOffloader is recommended), granted on {subject} or a parent with \
                         Propagate: {}.",
                        labels.join("; ")
                    ),
                ));
            }
        }
    }
}

fn unreadable_privileges(error: &co_vsphere::Error) -> Check {
    Check::warn(
        VSPHERE_PRIVILEGES,
        "vCenter",
        format!("the session's privileges cannot be read: {error}"),
        "Check by hand that the role holds Global › Settings; Datastore › Browse datastore, Low \
         level file operations; Host › Configuration › Advanced settings, Query patch, Storage \
         partition configuration.",
    )
}
