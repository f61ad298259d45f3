//! The array: connect with the configured credentials and ask the plugin's read-only
//! [`co_storage::StorageApi::readiness`] — identity and API version, the hosts' initiators, the
//! vendor's prerequisites — for every vendor alike.

use std::sync::Arc;

use co_api::StorageVendorProduct;
use co_populator::EnvironmentConfig;
use co_storage::{ArrayReadiness, ErrorClass, EsxiHostRef, HostInitiators, Initiator, StorageApi};
use co_vsphere::HostSystem;

use crate::catalog::{
    STORAGE_API_VERSION, STORAGE_INITIATORS, STORAGE_LOGIN, STORAGE_PREREQUISITE,
};
use crate::hosts::HostFacts;
use crate::report::Check;
use crate::run::PreflightOptions;

/// Runs the array's checks; returns the connected plugin for the disk predictions.
pub(crate) async fn check(
    env: &EnvironmentConfig,
    options: &PreflightOptions,
    hosts: &[HostFacts],
    checks: &mut Vec<Check>,
) -> Option<Arc<dyn StorageApi>> {
    let product = env.storage.product();
    let subject = format!("{} {}", product.as_str(), env.storage.hostname);
    let settings = env
        .storage
        .connection_settings(options.storage_ca_pem.clone());
    let login_failed = |error: &dyn std::fmt::Display, class: ErrorClass| {
        let remedy = match class {
            ErrorClass::Permanent => {
                "Correct STORAGE_USERNAME / STORAGE_PASSWORD (or STORAGE_TOKEN) and the vendor keys \
                 in the migration Secret; the account needs the array's storage administrator role."
            }
            _ => {
                "Check STORAGE_HOSTNAME: the array's management address must be reachable on HTTPS \
                 from where copies run (give STORAGE_CA_CERT for a private CA)."
            }
        };
        Check::fail(
            STORAGE_LOGIN,
            subject.clone(),
            format!("the array refuses or does not answer: {error}"),
            remedy,
        )
    };
    let array = match co_storage::connect(&env.storage.vendor, &settings, None).await {
        Ok(array) => array,
        Err(error) => {
            checks.push(login_failed(&error, error.class()));
            return None;
        }
    };
    let mut host_refs = Vec::new();
    for host in hosts {
        host_refs.push(array_side_ref(host, array.requires_sdc()).await);
    }
    let mut refused_read = None;
    let readiness = match array.readiness(&host_refs).await {
        Ok(readiness) => readiness,
        // The array may answer its identity and still refuse a listing (an account without
        // read access to hosts): that is not a login failure.
        Err(error) => match array.array_info().await {
            Ok(info) => {
                refused_read = Some(error);
                ArrayReadiness::unchecked(info, &host_refs)
            }
            Err(_) => {
                checks.push(login_failed(&error, error.class()));
                return Some(array);
            }
        },
    };
    checks.push(Check::pass(
        STORAGE_LOGIN,
        subject.clone(),
        "the array accepts the credentials",
    ));
    let info = &readiness.info;
    checks.push(if info.version.trim().is_empty() {
        Check::warn(
            STORAGE_API_VERSION,
            subject.clone(),
            format!("{} {} reports no version", info.vendor, info.product),
            "Check the array's firmware against the vendor's supported versions in docs/vendors.md.",
        )
    } else {
        Check::pass(
            STORAGE_API_VERSION,
            subject.clone(),
            format!(
                "{} {} {}, version {}",
                info.vendor, info.product, info.model, info.version
            ),
        )
    });
    if let Some(error) = refused_read {
        checks.push(Check::warn(
            STORAGE_PREREQUISITE,
            subject.clone(),
            format!(
                "the array answered but refused a read preflight needs, so the initiators and the \
                 vendor prerequisites are unchecked: {error}"
            ),
            "Give the array account read access to hosts, initiators and host groups (the copy \
             needs it to map volumes too), then run preflight again.",
        ));
    }
    for answer in &readiness.initiators {
        let host = hosts.iter().find(|h| h.host_id == answer.host_id);
        let name = host.map_or(answer.host_id.as_str(), |h| h.name.as_str());
        let initiators = host_refs
            .iter()
            .find(|h| h.host_id == answer.host_id)
            .map(|h| h.initiators.clone())
            .unwrap_or_default();
        checks.push(initiators_check(product, name, &initiators, answer));
    }
    for prerequisite in &readiness.prerequisites {
        checks.push(if prerequisite.satisfied {
            Check::pass(
                STORAGE_PREREQUISITE,
                format!("{subject}: {}", prerequisite.name),
                prerequisite.detail.clone(),
            )
        } else {
            Check::fail(
                STORAGE_PREREQUISITE,
                format!("{subject}: {}", prerequisite.name),
                prerequisite.detail.clone(),
                prerequisite.remedy.clone(),
            )
        });
    }
    Some(array)
}

/// The host as the array sees it: its SAN initiators, or for PowerFlex its SDC, whose GUID only
/// the `scini` module's options tell (the adapter list does not carry it).
async fn array_side_ref(host: &HostFacts, requires_sdc: bool) -> EsxiHostRef {
    let mut reference = host.esxi_ref();
    if !requires_sdc {
        return reference;
    }
    match HostSystem::new(host.client.clone(), host.moref.clone())
        .san_adapters("the selected disks' datastores", true)
        .await
    {
        Ok(chosen) => {
            reference.initiators = chosen
                .adapters
                .iter()
                .map(|a| Initiator::from_adapter_id(&a.id))
                .collect();
        }
        // The answer then lists no SDC, and the check says what the host lacks.
        Err(error) => tracing::debug!(host = %host.name, %error, "no PowerFlex SDC on the host"),
    }
    reference
}

fn list(ids: &[Initiator]) -> String {
    ids.iter()
        .map(Initiator::adapter_id)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `storage.initiators` of one host from the array's answer.
fn initiators_check(
    product: StorageVendorProduct,
    host: &str,
    initiators: &[Initiator],
    answer: &HostInitiators,
) -> Check {
    let Some(known) = &answer.known else {
        return Check::warn(
            STORAGE_INITIATORS,
            host,
            format!(
                "the {} plugin did not list the initiators the array knows; the host's SAN \
                 initiators: {}",
                product.as_str(),
                list(initiators)
            ),
            format!(
                "Check on the array that {} are registered (zoned, or logged in for iSCSI).",
                list(initiators)
            ),
        );
    };
    if !answer.unknown.is_empty() {
        return Check::fail(
            STORAGE_INITIATORS,
            host,
            format!(
                "the array does not know {}{}",
                list(&answer.unknown),
                if known.is_empty() {
                    String::new()
                } else {
                    format!(" (it knows {})", list(known))
                }
            ),
            format!(
                "Register {} on the array: {}",
                list(&answer.unknown),
                registration_remedy(product)
            ),
        );
    }
    if known.is_empty() {
        return Check::fail(
            STORAGE_INITIATORS,
            host,
            format!(
                "the host has no initiator the {} array can map to (its SAN initiators: {})",
                product.as_str(),
                if initiators.is_empty() {
                    "none".to_owned()
                } else {
                    list(initiators)
                }
            ),
            format!(
                "Give the host an adapter on the array's SAN: {}",
                registration_remedy(product)
            ),
        );
    }
    Check::pass(
        STORAGE_INITIATORS,
        host,
        format!("the array knows {}", list(known)),
    )
}

/// Where each vendor registers an ESXi host's initiators (the host object the source datastore
/// is mapped through holds them).
fn registration_remedy(product: StorageVendorProduct) -> &'static str {
    match product {
        StorageVendorProduct::Ontap => {
            "add them to the igroup the source datastore's LUN is mapped to \
             (`lun igroup add -vserver <svm> -igroup <igroup> -initiator <initiator>`); FC: zone the \
             host's WWPNs to the SVM's FC LIFs; iSCSI: add the SVM's iSCSI LIF to the host's software \
             iSCSI adapter (dynamic discovery) and rescan."
        }
        StorageVendorProduct::PureFlashArray => {
            "add them to the ESXi host's host object (Storage › Hosts › <host> › Host Ports › \
             Configure WWNs / Configure IQNs, or `purehost setattr --addwwnlist|--addiqnlist`); FC: \
             zone the WWPNs to the array's ports."
        }
        StorageVendorProduct::PowerStore => {
            "add them to the ESXi host's host (PowerStore Manager › Compute › Hosts & Host Groups › \
             <host> › Modify › Initiators); FC: zone the WWPNs to the appliance; iSCSI: add the \
             appliance's iSCSI target to the host's software iSCSI adapter and rescan."
        }
        StorageVendorProduct::PowerMax => {
            "zone the host's FC ports to the port group's front-end ports (FC), or add the port \
             group's iSCSI targets to the host's iSCSI adapter (iSCSI), rescan, and check they \
             appear in Unisphere › Hosts › Initiators."
        }
        StorageVendorProduct::FlashSystem => {
            "add them to the ESXi host's host object (`addhostport -fcwwpn <wwpn> <host>` or \
             `addhostport -iscsiname <iqn> <host>`, or Hosts › <host> › Add Port); FC: zone the \
             WWPNs to the system."
        }
        StorageVendorProduct::InfiniBox => {
            "add them to the ESXi host's host (InfiniBox GUI › Hosts › <host> › Add Port, or \
             `infinishell host.add_port`); FC: zone the WWPNs to the system."
        }
        StorageVendorProduct::Primera3Par => {
            "add them to the ESXi host's host (`createhost -add <host> <wwpn>` or `createhost -iscsi -add <host> <iqn>`; a new host: \
             `createhost -persona 11 <host> <wwpn>`, persona 11 being VMware in the CLI); FC: zone the WWPNs \
             to the array."
        }
        StorageVendorProduct::Vantara => {
            "add them to a host group (host mode VMWARE_EX, host mode options 54 and 63) on the \
             ports the host reaches (Storage Navigator › Host Groups › Add Hosts, or `raidcom add \
             hba_wwn` / `raidcom add hba_iscsi`); FC: zone the WWPNs to those ports."
        }
        StorageVendorProduct::PowerFlex => {
            "install the PowerFlex SDC on the host (the `scini` module with IoctlMdmIPStr pointing at \
             the system's MDMs) and check the SDC appears approved in PowerFlex Manager › SDCs."
        }
    }
}
