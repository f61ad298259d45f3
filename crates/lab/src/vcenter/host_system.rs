//! HostSystem: identity, configuration (`config.storageDevice`, management vmknic), manager references,
//! and the entry points of esxcli over the API (`RetrieveManagedMethodExecuter`,
//! `RetrieveDynamicTypeManager`, then `ExecuteSoap` on the executer).

mod esxcli;

use super::VcenterState;
use super::datastore_browser::host_browser_moid;
use super::host_storage_system::storage_device_info;
use super::inventory::Inventory;
use super::option_manager::advanced_option_moid;
use super::soap::{Call, Fault};
use super::value::{Moref, Value, s};
use crate::host::SimHost;
use crate::san::stable_uuid;
use esxcli::CliAnswer;

fn product(host: &SimHost) -> Value {
    Value::obj(
        "AboutInfo",
        vec![
            ("name", s("VMware ESXi")),
            (
                "fullName",
                s(format!(
                    "VMware ESXi {} build-24022510",
                    host.spec.esxi_version
                )),
            ),
            ("vendor", s("VMware, Inc.")),
            ("version", s(host.spec.esxi_version.clone())),
            ("build", s("24022510")),
            ("osType", s("vmnix-x86")),
            ("productLineId", s("embeddedEsx")),
            ("apiType", s("HostAgent")),
            ("apiVersion", s(super::API_VERSION)),
        ],
    )
}

fn management_nic(host: &SimHost) -> Value {
    let key = "management.key-vim.host.VirtualNic-vmk0";
    let vnic = Value::obj(
        "HostVirtualNic",
        vec![
            ("device", s("vmk0")),
            ("key", s(key)),
            ("portgroup", s("Management Network")),
            (
                "spec",
                Value::obj(
                    "HostVirtualNicSpec",
                    vec![
                        (
                            "ip",
                            Value::obj(
                                "HostIpConfig",
                                vec![
                                    ("dhcp", Value::Bool(false)),
                                    ("ipAddress", s(host.spec.management_ip.clone())),
                                    ("subnetMask", s("255.0.0.0")),
                                ],
                            ),
                        ),
                        ("mac", s("00:50:56:00:00:01")),
                        ("mtu", Value::Int(1500)),
                    ],
                ),
            ),
        ],
    );
    Value::obj(
        "HostVirtualNicManagerInfo",
        vec![(
            "netConfig",
            Value::array(
                "VirtualNicManagerNetConfig",
                vec![Value::obj(
                    "VirtualNicManagerNetConfig",
                    vec![
                        ("nicType", s("management")),
                        ("multiSelectAllowed", Value::Bool(true)),
                        ("candidateVnic", Value::array("HostVirtualNic", vec![vnic])),
                        ("selectedVnic", Value::array("string", vec![s(key)])),
                    ],
                )],
            ),
        )],
    )
}

/// The host's SMBIOS UUID (`summary.hardware.uuid`): derived from its name, so it is stable across lab
/// restarts as a real host's is across reboots.
pub(super) fn hardware_uuid(host: &SimHost) -> String {
    stable_uuid(&["host hardware", host.name()])
}

/// `summary.hardware`: the lab's hosts present as nested ESXi on a VMware virtual platform.
fn hardware_summary(host: &SimHost) -> Value {
    Value::obj(
        "HostHardwareSummary",
        vec![
            ("vendor", s("VMware, Inc.")),
            ("model", s("VMware7,1")),
            ("uuid", s(hardware_uuid(host))),
            ("memorySize", Value::Long(64 << 30)),
            ("cpuModel", s("Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz")),
            ("cpuMhz", Value::Int(2100)),
            ("numCpuPkgs", Value::Int(2)),
            ("numCpuCores", Value::Int(8)),
            ("numCpuThreads", Value::Int(8)),
            ("numNics", Value::Int(1)),
            ("numHBAs", Value::Int(host.adapters.len() as i32)),
        ],
    )
}

pub(super) fn properties(inv: &Inventory, obj: &Moref) -> Option<Vec<(&'static str, Value)>> {
    let (index, host) = inv.host(&obj.value)?;
    let suffix = index + 10;
    let this = inv.host_ref(index);
    let runtime = Value::obj(
        "HostRuntimeInfo",
        vec![
            ("connectionState", s("connected")),
            ("powerState", s("poweredOn")),
            ("inMaintenanceMode", Value::Bool(false)),
        ],
    );
    let vms = inv
        .vms
        .iter()
        .filter(|v| v.host == index)
        .map(|v| v.moid.clone());
    Some(vec![
        ("name", s(host.name())),
        ("parent", Value::Ref(inv.compute_resource_ref(index))),
        ("overallStatus", s("green")),
        ("runtime", runtime.clone()),
        (
            "summary",
            Value::obj(
                "HostListSummary",
                vec![
                    ("host", Value::Ref(this.clone())),
                    ("hardware", hardware_summary(host)),
                    ("runtime", runtime),
                    (
                        "config",
                        Value::obj(
                            "HostConfigSummary",
                            vec![
                                ("name", s(host.name())),
                                ("port", Value::Int(443)),
                                ("product", product(host)),
                            ],
                        ),
                    ),
                    ("overallStatus", s("green")),
                ],
            ),
        ),
        (
            "configManager",
            Value::obj(
                "HostConfigManager",
                vec![
                    (
                        "storageSystem",
                        Value::Ref(Moref::new(
                            "HostStorageSystem",
                            format!("storageSystem-{suffix}"),
                        )),
                    ),
                    (
                        "advancedOption",
                        Value::Ref(Moref::new("OptionManager", advanced_option_moid(index))),
                    ),
                    (
                        "kernelModuleSystem",
                        Value::Ref(Moref::new(
                            "HostKernelModuleSystem",
                            format!("kernelModuleSystem-{suffix}"),
                        )),
                    ),
                ],
            ),
        ),
        (
            "config",
            Value::obj(
                "HostConfigInfo",
                vec![
                    ("host", Value::Ref(this)),
                    ("product", product(host)),
                    ("storageDevice", storage_device_info(host)),
                    ("virtualNicManagerInfo", management_nic(host)),
                ],
            ),
        ),
        (
            "datastore",
            Value::refs("Datastore", inv.datastores.iter().map(|d| d.moid.clone())),
        ),
        ("vm", Value::refs("VirtualMachine", vms)),
        (
            "datastoreBrowser",
            Value::Ref(Moref::new(
                "HostDatastoreBrowser",
                host_browser_moid(&obj.value),
            )),
        ),
    ])
}

pub(super) fn invoke(inv: &Inventory, call: &Call) -> Result<Option<Value>, Fault> {
    let kind = match call.method.as_str() {
        "RetrieveManagedMethodExecuter" => "ManagedMethodExecuter",
        "RetrieveDynamicTypeManager" => "InternalDynamicTypeManager",
        _ => {
            return Err(Fault::MethodNotFound {
                receiver: call.this.clone(),
                method: call.method.clone(),
            });
        }
    };
    inv.host(&call.this.value)
        .ok_or_else(|| Fault::ManagedObjectNotFound {
            obj: call.this.clone(),
        })?;
    Ok(Some(Value::Ref(Moref::new(kind, call.this.value.clone()))))
}

/// `ExecuteSoap` on a host's ManagedMethodExecuter: esxcli namespaces answered by [`esxcli`].
/// CLI failures travel inside the result, not as SOAP faults, as on a real host.
pub(super) async fn execute_soap(
    state: &VcenterState,
    call: &Call,
) -> Result<Option<Value>, Fault> {
    let (index, host) =
        state
            .inventory
            .host(&call.this.value)
            .ok_or_else(|| Fault::ManagedObjectNotFound {
                obj: call.this.clone(),
            })?;
    if call.method != "ExecuteSoap" {
        return Err(Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        });
    }
    let moid = call.body.child_text("moid").unwrap_or_default().trim();
    let method = call.body.child_text("method").unwrap_or_default().trim();
    let arguments: Vec<(String, String)> = call
        .body
        .children_named("argument")
        .map(|a| {
            (
                a.child_text("name").unwrap_or_default().to_owned(),
                a.child_text("val").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let root = state.inventory.host_root(host);
    let settings = super::option_manager::host_settings(state, index);
    let host_state = esxcli::HostState {
        host,
        root: &root,
        settings: &settings,
    };
    let answer = esxcli::execute(&host_state, &state.faults, moid, method, &arguments).await;
    let result = match answer {
        CliAnswer::Response(xml) => vec![("response", Value::str(xml))],
        CliAnswer::Fault { message, detail } => vec![(
            "fault",
            Value::obj(
                "ReflectManagedMethodExecuterSoapFault",
                vec![
                    ("faultMsg", Value::str(message)),
                    ("faultDetail", Value::str(detail)),
                ],
            ),
        )],
    };
    Ok(Some(Value::obj(
        "ReflectManagedMethodExecuterSoapResult",
        result,
    )))
}
