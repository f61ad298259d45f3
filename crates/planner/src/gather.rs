//! Reading a Plan's planning inputs ([`PlanInputs`]): its StorageMap, source Provider and the
//! Secrets they name from the cluster, its VMs' disks from vCenter (with the Provider's `url` and
//! its Secret's `user`/`password`, `insecureSkipVerify` and `cacert`/`ca.crt`), and how many
//! copies each migration host already runs (the `VSphereXcopyVolumePopulator`s of the cluster that name it
//! and have not ended). One function, used by the Plan reconcile and `copy-offload plan --dry-run`
//! alike, so both plan from the same facts.
//!
//! Absent objects the planner can report (the StorageMap, a storage Secret, the SSH key Secrets,
//! a VM vCenter does not know) are left out of the inputs for [`crate::offload::plan_offload`] to
//! name; absent objects without which nothing can be read (the Provider, its Secret) are errors
//! here.

use std::collections::BTreeMap;

use co_api::contract::ExitCode;
use co_api::{Plan, Provider, StorageMap, VSphereXcopyVolumePopulator};
use co_vsphere::inventory::{DatastoreDevice, DiskBacking};
use co_vsphere::{Client as VcenterClient, ClientConfig, DatastorePath, TlsTrust, VirtualMachine};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::inventory::{DiskBackingKind, DiskInventory, HostLoads, VmInventory};
use crate::offload::{self, PlanInputs, SshKeyPair};
use crate::ssh_keys;

/// Why a plan's inputs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    /// The Plan names no source Provider.
    #[error("plan {plan}: spec.provider.source names no Provider; set it to the vSphere Provider")]
    NoSourceProvider {
        /// `namespace/name` of the plan.
        plan: String,
    },
    /// An object the plan names does not exist.
    #[error("{what} does not exist; {fix}")]
    NotFound {
        /// The object, e.g. `Provider mtv/vcenter`.
        what: String,
        /// What to do.
        fix: &'static str,
    },
    /// The Provider cannot be used to log in to vCenter.
    #[error("provider {provider}: {problem}")]
    Provider {
        /// `namespace/name` of the provider.
        provider: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The Kubernetes API failed.
    #[error("reading {what}: {source}")]
    Kube {
        /// What was being read.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// vCenter failed or refused.
    #[error("vCenter {url}: {source}")]
    Vcenter {
        /// The Provider's URL.
        url: String,
        /// The vSphere error (it says what to check).
        #[source]
        source: co_vsphere::Error,
    },
}

impl GatherError {
    /// The exit code for `copy-offload plan`: absent or wrong objects need a person, an API or
    /// vCenter outage may pass by itself.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::NoSourceProvider { .. } | Self::NotFound { .. } | Self::Provider { .. } => {
                ExitCode::Permanent
            }
            Self::Kube { source, .. } => match source {
                kube::Error::Api(status) if status.is_forbidden() => ExitCode::Permanent,
                _ => ExitCode::Retryable,
            },
            Self::Vcenter { source, .. } => source.class().exit_code(),
        }
    }
}

fn qualified(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The namespace and name an object reference gives, its namespace defaulting to `default_ns`.
fn referenced<'a>(reference: &'a ObjectReference, default_ns: &'a str) -> (&'a str, &'a str) {
    (
        reference
            .namespace
            .as_deref()
            .filter(|namespace| !namespace.is_empty())
            .unwrap_or(default_ns),
        reference.name.as_deref().unwrap_or_default(),
    )
}

async fn get_opt<K>(client: &Client, namespace: &str, name: &str) -> Result<Option<K>, GatherError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    if name.is_empty() {
        return Ok(None);
    }
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|source| GatherError::Kube {
            what: format!("{} {}", K::kind(&()), qualified(namespace, name)),
            source,
        })
}

async fn secret_data(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, ByteString>>, GatherError> {
    Ok(get_opt::<Secret>(client, namespace, name)
        .await?
        .map(|secret| secret.data.unwrap_or_default()))
}

/// Reads everything [`offload::plan_offload`] needs for `plan`.
pub async fn gather(kube: &Client, plan: &Plan) -> Result<PlanInputs, GatherError> {
    let plan_namespace = plan.namespace().unwrap_or_default();
    let plan_name = qualified(&plan_namespace, &plan.name_any());

    let storage_map = match &plan.spec.map.storage {
        Some(reference) => {
            let (namespace, name) = referenced(reference, &plan_namespace);
            get_opt::<StorageMap>(kube, namespace, name).await?
        }
        None => None,
    };

    let source =
        plan.spec
            .provider
            .source
            .as_ref()
            .ok_or_else(|| GatherError::NoSourceProvider {
                plan: plan_name.clone(),
            })?;
    let (provider_namespace, provider_name) = referenced(source, &plan_namespace);
    let provider: Provider = get_opt(kube, provider_namespace, provider_name)
        .await?
        .ok_or_else(|| GatherError::NotFound {
            what: format!(
                "Provider {} (spec.provider.source of plan {plan_name})",
                qualified(provider_namespace, provider_name)
            ),
            fix: "create it or correct the plan's spec.provider.source",
        })?;
    let provider_qualified = qualified(provider_namespace, provider_name);
    let provider_secret = match &provider.spec.secret {
        Some(reference) => {
            let (namespace, name) = referenced(reference, provider_namespace);
            secret_data(kube, namespace, name)
                .await?
                .ok_or_else(|| GatherError::NotFound {
                    what: format!(
                        "Secret {} (spec.secret of provider {provider_qualified})",
                        qualified(namespace, name)
                    ),
                    fix: "create it with the vCenter user and password, or correct spec.secret",
                })?
        }
        None => {
            return Err(GatherError::Provider {
                provider: provider_qualified,
                problem: "spec.secret names no Secret; set it to the Secret holding the vCenter \
                          user and password"
                    .into(),
            });
        }
    };

    let mut storage_secrets = BTreeMap::new();
    if let Some(map) = &storage_map {
        let namespace = offload::storage_secret_namespace(map);
        for name in offload::storage_secret_names(map) {
            if let Some(data) = secret_data(kube, &namespace, &name).await? {
                storage_secrets.insert(name, data);
            }
        }
    }

    let ssh_keys = read_ssh_keys(kube, provider_namespace, provider_name).await?;

    let offloads = storage_map
        .as_ref()
        .is_some_and(offload::has_offloaded_mapping);
    let (inventory, host_loads) = if offloads {
        let client = login(&provider, &provider_qualified, &provider_secret).await?;
        let url = provider.spec.url.clone().unwrap_or_default();
        let inventory = read_inventory(&client, plan)
            .await
            .map_err(|source| GatherError::Vcenter { url, source });
        // A failed logout only leaves a session to expire on vCenter.
        let _ = client.logout().await;
        (inventory?, host_loads(kube).await?)
    } else {
        (Vec::new(), HostLoads::new())
    };

    Ok(PlanInputs {
        plan: plan.clone(),
        storage_map,
        provider,
        provider_secret,
        storage_secrets,
        ssh_keys,
        inventory,
        host_loads,
        migration_uid: None,
    })
}

async fn read_ssh_keys(
    kube: &Client,
    namespace: &str,
    provider: &str,
) -> Result<Option<SshKeyPair>, GatherError> {
    let private = secret_data(kube, namespace, &ssh_keys::private_secret_name(provider)).await?;
    let public = secret_data(kube, namespace, &ssh_keys::public_secret_name(provider)).await?;
    let key = |data: Option<BTreeMap<String, ByteString>>, field: &str| {
        data.and_then(|mut data| data.remove(field))
            .map(|value| value.0)
            .filter(|value| !value.is_empty())
    };
    Ok(
        match (
            key(private, ssh_keys::PRIVATE_KEY_FIELD),
            key(public, ssh_keys::PUBLIC_KEY_FIELD),
        ) {
            (Some(private_key), Some(public_key)) => Some(SshKeyPair {
                private_key,
                public_key,
            }),
            _ => None,
        },
    )
}

fn text(data: &BTreeMap<String, ByteString>, key: &str) -> Option<String> {
    data.get(key)
        .map(|value| String::from_utf8_lossy(&value.0).trim().to_owned())
        .filter(|value| !value.is_empty())
}

async fn login(
    provider: &Provider,
    provider_name: &str,
    secret: &BTreeMap<String, ByteString>,
) -> Result<VcenterClient, GatherError> {
    let problem = |problem: String| GatherError::Provider {
        provider: provider_name.to_owned(),
        problem,
    };
    let url = provider
        .spec
        .url
        .clone()
        .filter(|url| !url.trim().is_empty())
        .ok_or_else(|| {
            problem("spec.url is empty; set it to e.g. https://vcenter.example.com/sdk".into())
        })?;
    let user = text(secret, "user")
        .ok_or_else(|| problem("its Secret has no `user`; add the vCenter user name".into()))?;
    let password = text(secret, "password")
        .ok_or_else(|| problem("its Secret has no `password`; add the vCenter password".into()))?;
    let mut config = ClientConfig::new(url.clone(), user, co_api::Secret::new(password));
    config.trust = TlsTrust::from_env_values(
        text(secret, "insecureSkipVerify").as_deref(),
        offload::PROVIDER_CA_KEYS
            .iter()
            .find_map(|key| text(secret, key)),
    );
    VcenterClient::login(config)
        .await
        .map_err(|source| GatherError::Vcenter { url, source })
}

/// The plan's VMs as vCenter describes them; a VM vCenter does not know is left out (planning
/// names it).
async fn read_inventory(
    client: &VcenterClient,
    plan: &Plan,
) -> Result<Vec<VmInventory>, co_vsphere::Error> {
    let mut inventory = Vec::new();
    for wanted in &plan.spec.vms {
        let Some(id) = wanted
            .id
            .as_deref()
            .filter(|id| !id.is_empty())
            .or(wanted.name.as_deref())
        else {
            continue;
        };
        let moref = match client.find_vm(id).await {
            Ok(moref) => moref,
            Err(co_vsphere::Error::NotFound { .. }) => continue,
            Err(error) => return Err(error),
        };
        inventory.push(read_vm(client, moref).await?);
    }
    Ok(inventory)
}

async fn read_vm(
    client: &VcenterClient,
    moref: co_vsphere::ManagedObjectReference,
) -> Result<VmInventory, co_vsphere::Error> {
    let vm = VirtualMachine::new(client.clone(), moref.clone());
    let host = vm.host().await?;
    let mut datastores: BTreeMap<String, DatastoreDevice> = BTreeMap::new();
    let mut disks = Vec::new();
    for disk in vm.disks().await? {
        let (file, backing, rdm_device) = match &disk.backing {
            DiskBacking::File { chain, .. } => match chain.first() {
                Some(top) if top.backing_object_id.is_some() => {
                    (top.file_name.clone(), DiskBackingKind::Vvol, None)
                }
                Some(top) => (top.file_name.clone(), DiskBackingKind::Vmdk, None),
                None => continue,
            },
            DiskBacking::Rdm {
                file_name,
                device_name,
                ..
            } => (
                file_name.clone(),
                DiskBackingKind::Rdm,
                Some(device_name.clone()),
            ),
            // Nothing the copy could read.
            DiskBacking::Other { .. } => continue,
        };
        let Ok(path) = DatastorePath::parse(&file) else {
            continue;
        };
        let datastore_name = path.datastore().to_owned();
        if !datastores.contains_key(&datastore_name) {
            let device = host.datastore(&datastore_name).await?;
            datastores.insert(datastore_name.clone(), device);
        }
        let Some(device) = datastores.get(&datastore_name) else {
            continue;
        };
        let naa = match backing {
            DiskBackingKind::Vmdk => device.extents.first().cloned(),
            DiskBackingKind::Rdm => rdm_device,
            DiskBackingKind::Vvol => None,
        }
        // An RDM's device comes as `/vmfs/devices/disks/naa.…`; only the name identifies the LUN.
        .and_then(|device| device.rsplit('/').next().map(str::to_ascii_lowercase))
        .filter(|name| name.starts_with("naa."));
        disks.push(DiskInventory {
            key: disk.key,
            file,
            datastore_id: device.datastore.value.clone(),
            datastore_name,
            capacity_bytes: disk.capacity_bytes,
            backing,
            naa,
        });
    }
    Ok(VmInventory {
        id: moref.value.clone(),
        name: client.entity_name(&moref).await?,
        host: host.reference().value.clone(),
        disks,
    })
}

/// Copies per migration host: the cluster's populator resources naming one that have not ended.
async fn host_loads(kube: &Client) -> Result<HostLoads, GatherError> {
    let populators: Api<VSphereXcopyVolumePopulator> = Api::all(kube.clone());
    let list = populators
        .list(&ListParams::default())
        .await
        .map_err(|source| GatherError::Kube {
            what: "VSphereXcopyVolumePopulators (all namespaces)".into(),
            source,
        })?;
    let mut loads = HostLoads::new();
    for populator in list {
        let ended = populator.status.as_ref().is_some_and(|status| {
            status.phase.is_some_and(|phase| phase.is_terminal())
                || status
                    .result
                    .as_deref()
                    .is_some_and(|result| !result.is_empty())
        });
        if let Some(host) = populator
            .spec
            .migration_host
            .as_deref()
            .map(str::trim)
            .filter(|host| !host.is_empty())
            && !ended
        {
            *loads.entry(host.to_owned()).or_default() += 1;
        }
    }
    Ok(loads)
}
