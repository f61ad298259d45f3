//! esxcli over the vSphere API: an [`Esxcli`] handle per host runs a command — a typed value
//! such as [`StorageCoreDeviceList`] or a raw argv — as one `ExecuteSoap` on the host's
//! `ManagedMethodExecuter`.
//!
//! Option names in argv are mapped to parameter names through the command's CLI info
//! (`vim.CLIInfo.FetchCLIInfo`). The handle fetches the host's executer once and the CLI info once
//! per namespace, and every handle for the same host on the same session shares them: after the
//! first call on a namespace, each esxcli call is exactly one round trip (upstream pays about
//! four).
//!
//! The wire format lives in `wire`, the command line in `command_line`, and the typed commands
//! one file per esxcli namespace.

mod command;
mod command_line;
mod storage_core_adapter;
mod storage_core_device;
pub(crate) mod wire;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OnceCell;
use tracing::debug;

use crate::client::{Client, returnval};
use crate::error::{Error, FaultKind};
use crate::soap::Request;
use crate::types::ManagedObjectReference;

use command_line::{CommandLine, map_arguments};
use wire::{
    CLI_INFO_METHOD, CLI_INFO_MOID, CommandInfo, SoapResult, decode_cli_response,
    decode_command_info, decode_execute_soap, execute_soap_request,
};

pub use command::Command;
pub use storage_core_adapter::{RescanType, StorageCoreAdapterRescan};
pub use storage_core_device::{
    DeviceInfo, DeviceState, DeviceVaaiStatus, StorageCoreDeviceDetachedRemove,
    StorageCoreDeviceList, StorageCoreDeviceSet, StorageCoreDeviceVaaiStatusGet, VaaiStatus,
};
pub use wire::EsxcliResponse;

/// esxcli on one ESXi host. Cheap to clone; handles for the same host on the same session share
/// the host's method executer and the CLI info of each namespace.
#[derive(Debug, Clone)]
pub struct Esxcli {
    client: Client,
    host: ManagedObjectReference,
    cache: Arc<HostCache>,
}

/// What the first command on a host (and on a namespace) fetches, kept for the later ones.
#[derive(Debug, Default)]
struct HostCache {
    executer: OnceCell<ManagedObjectReference>,
    /// CLI info by dotted namespace (`storage.core.device`); concurrent callers share one fetch.
    cli_info: Mutex<HashMap<String, Arc<OnceCell<Arc<CommandInfo>>>>>,
}

impl Esxcli {
    /// The esxcli of `host` on this session.
    pub fn new(client: Client, host: ManagedObjectReference) -> Self {
        let cache = client.session_state::<HostCache>(&host.value);
        Self {
            client,
            host,
            cache,
        }
    }

    pub fn host(&self) -> &ManagedObjectReference {
        &self.host
    }

    /// Runs a typed command.
    pub async fn execute<C: Command>(&self, command: &C) -> Result<C::Output, Error> {
        let argv = command.argv();
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let response = self.run(&argv).await?;
        command.output(response)
    }

    /// Runs a command given as argv, e.g. `["vmkfstools","clone","-s",src,"-t",dst]`: the form
    /// for commands without a typed value (the wrapper's `vmkfstools` plugin).
    pub async fn run(&self, argv: &[&str]) -> Result<EsxcliResponse, Error> {
        let command = CommandLine::parse(argv)?;
        debug!(host = %self.host, command = %argv.join(" "), "running esxcli command");
        let executer = self.method_executer().await?;
        let info = self.command_info(&executer, &command).await?;
        let method = info
            .methods
            .iter()
            .find(|m| m.name == command.verb)
            .ok_or_else(|| Error::EsxcliUsage {
                argv: argv.join(" "),
                reason: format!(
                    "command {:?} not found in namespace {:?}",
                    command.verb,
                    command.namespace_dotted()
                ),
            })?;
        let arguments =
            map_arguments(method, command.options).map_err(|reason| Error::EsxcliUsage {
                argv: argv.join(" "),
                reason,
            })?;
        let req = execute_soap_request(&executer, &command.moid(), &command.method(), &arguments)
            .not_idempotent();
        match self.execute_soap(&command, &req).await? {
            None => Ok(EsxcliResponse::default()),
            Some(xml) => decode_cli_response(&xml).map_err(|source| Error::Decode {
                method: command.method(),
                source,
            }),
        }
    }

    /// Fetches, concurrently, what the first run of each of `commands` (argv prefixes such as
    /// `["storage","core","device","list"]`) would fetch — the host's method executer and the
    /// CLI info of each namespace — so that each later command costs one round trip. A caller
    /// overlaps this with work the commands must wait for anyway (array calls).
    pub async fn prepare(&self, commands: &[&[&str]]) -> Result<(), Error> {
        let executer = self.method_executer().await?;
        let parsed = commands
            .iter()
            .map(|argv| CommandLine::parse(argv))
            .collect::<Result<Vec<_>, _>>()?;
        let mut namespaces = BTreeSet::new();
        let fetches = parsed
            .iter()
            .filter(|command| namespaces.insert(command.namespace_dotted()))
            .map(|command| self.command_info(&executer, command));
        futures::future::try_join_all(fetches).await.map(drop)
    }

    /// The host's ManagedMethodExecuter, retrieved once (concurrent callers share the request).
    async fn method_executer(&self) -> Result<ManagedObjectReference, Error> {
        self.cache
            .executer
            .get_or_try_init(|| async {
                let req = Request::new("RetrieveManagedMethodExecuter", &self.host);
                let response = self.client.call(&req).await?;
                let rv = returnval(req.method(), &response)?;
                ManagedObjectReference::from_node(rv).map_err(|source| Error::Decode {
                    method: req.method().into(),
                    source,
                })
            })
            .await
            .cloned()
    }

    /// The CLI info of the command's namespace, fetched once (concurrent callers share the
    /// request).
    async fn command_info(
        &self,
        executer: &ManagedObjectReference,
        command: &CommandLine<'_>,
    ) -> Result<Arc<CommandInfo>, Error> {
        let cell = lock(&self.cache.cli_info)
            .entry(command.namespace_dotted())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let type_name = format!("vim.EsxCLI.{}", command.namespace_dotted());
            let req = execute_soap_request(
                executer,
                CLI_INFO_MOID,
                CLI_INFO_METHOD,
                &[("typeName".to_owned(), vec![type_name])],
            );
            let xml = self
                .execute_soap(command, &req)
                .await?
                .ok_or_else(|| Error::Protocol {
                    method: CLI_INFO_METHOD.into(),
                    reason: format!("no CLI info for namespace {}", command.namespace_dotted()),
                })?;
            decode_command_info(&xml)
                .map(Arc::new)
                .map_err(|source| Error::Decode {
                    method: CLI_INFO_METHOD.into(),
                    source,
                })
        })
        .await
        .cloned()
    }

    /// Sends an `ExecuteSoap` and turns in-band faults into errors.
    async fn execute_soap(
        &self,
        command: &CommandLine<'_>,
        req: &Request,
    ) -> Result<Option<String>, Error> {
        let host = &self.host;
        let vib_missing = |message: String| Error::VibMissing {
            host: host.to_string(),
            message,
        };
        let response = match self.client.call(req).await {
            Err(e) if e.is_fault(FaultKind::NotFound) && command.namespace == ["vmkfstools"] => {
                return Err(vib_missing(e.to_string()));
            }
            other => other?,
        };
        let result = decode_execute_soap(&response).map_err(|source| Error::Decode {
            method: req.method().into(),
            source,
        })?;
        match result {
            SoapResult::Response(xml) => Ok(xml),
            SoapResult::Fault(f)
                if f.kind == FaultKind::NotFound && command.namespace == ["vmkfstools"] =>
            {
                Err(vib_missing(f.message))
            }
            SoapResult::Fault(f) => Err(Error::Esxcli {
                host: host.to_string(),
                command: command.display(),
                message: f.message,
                detail: f.detail,
            }),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The map holds plain data; a panic elsewhere cannot leave it inconsistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
