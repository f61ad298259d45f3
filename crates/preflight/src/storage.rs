//! The array: connect with the configured credentials and ask the plugin's read-only
//! [`co_storage::StorageApi::readiness`] — identity and API version, the hosts' initiators, the
//! vendor's prerequisites — for every vendor alike.

use std::sync::Arc;

use co_populator::EnvironmentConfig;
use co_storage::{ErrorClass, StorageApi};

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
    let host_refs: Vec<_> = hosts.iter().map(HostFacts::esxi_ref).collect();
    let readiness = match array.readiness(&host_refs).await {
        Ok(readiness) => readiness,
        Err(error) => {
            checks.push(login_failed(&error, error.class()));
            return Some(array);
        }
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
    for answer in &readiness.initiators {
        let host = hosts.iter().find(|h| h.host_id == answer.host_id);
        let name = host.map_or(answer.host_id.as_str(), |h| h.name.as_str());
        let initiators = host.map(|h| h.initiators.clone()).unwrap_or_default();
        let list = |ids: &[co_storage::Initiator]| {
            ids.iter()
                .map(|i| i.adapter_id())
                .collect::<Vec<_>>()
                .join(", ")
        };
        checks.push(match &answer.known {
            None => Check::warn(
                STORAGE_INITIATORS,
                name,
                format!(
                    "the {} plugin cannot list the initiators the array knows without creating objects; \
                     the host's SAN initiators: {}",
                    product.as_str(),
                    list(&initiators)
                ),
                format!(
                    "Check on the array that {} are registered (zoned, or logged in for iSCSI).",
                    list(&initiators)
                ),
            ),
            Some(known) => {
                let unknown: Vec<_> = initiators
                    .iter()
                    .filter(|i| !known.contains(i))
                    .cloned()
                    .collect();
                if unknown.is_empty() && !initiators.is_empty() {
                    Check::pass(
                        STORAGE_INITIATORS,
                        name,
                        format!("the array knows {}", list(&initiators)),
                    )
                } else {
                    Check::fail(
                        STORAGE_INITIATORS,
                        name,
                        format!("the array does not know {}", list(&unknown)),
                        format!(
                            "Register {} on the array (FC: zone the host's WWPNs to the array; iSCSI: add \
                             the array's target to the host's software iSCSI adapter and rescan).",
                            list(&unknown)
                        ),
                    )
                }
            }
        });
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
