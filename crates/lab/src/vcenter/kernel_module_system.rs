//! HostKernelModuleSystem: `QueryModules` and `QueryConfiguredModuleOptionString` (the product reads the
//! `scini` module's options to find the PowerFlex GUID).

use super::inventory::Inventory;
use super::soap::{Call, Fault};
use super::value::{Moref, Value};

pub(super) fn properties(inv: &Inventory, obj: &Moref) -> Option<Vec<(&'static str, Value)>> {
    inv.host_by(&obj.value, "kernelModuleSystem-")
        .map(|_| Vec::new())
}

pub(super) fn invoke(inv: &Inventory, call: &Call) -> Result<Option<Value>, Fault> {
    let (_, host) = inv
        .host_by(&call.this.value, "kernelModuleSystem-")
        .ok_or_else(|| Fault::ManagedObjectNotFound {
            obj: call.this.clone(),
        })?;
    let section = || Value::obj("KernelModuleSectionInfo", vec![("address", Value::Long(0))]);
    match call.method.as_str() {
        "QueryModules" => {
            let modules = host
                .spec
                .kernel_modules
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    Value::obj(
                        "KernelModuleInfo",
                        vec![
                            ("id", Value::Int(i as i32 + 1)),
                            ("name", Value::str(m.name.clone())),
                            ("version", Value::str("1.0")),
                            (
                                "filename",
                                Value::str(format!("/usr/lib/vmware/vmkmod/{}", m.name)),
                            ),
                            ("optionString", Value::str(m.options.clone())),
                            ("loaded", Value::Bool(true)),
                            ("enabled", Value::Bool(true)),
                            ("useCount", Value::Int(1)),
                            ("readOnlySection", section()),
                            ("writableSection", section()),
                            ("textSection", section()),
                            ("dataSection", section()),
                            ("bssSection", section()),
                        ],
                    )
                })
                .collect();
            Ok(Some(Value::array("KernelModuleInfo", modules)))
        }
        "QueryConfiguredModuleOptionString" => {
            let name = call.body.child_text("name").unwrap_or_default().trim();
            let module = host
                .spec
                .kernel_modules
                .iter()
                .find(|m| m.name == name)
                .ok_or_else(|| Fault::NotFound(format!("kernel module {name}")))?;
            Ok(Some(Value::str(module.options.clone())))
        }
        _ => Err(Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        }),
    }
}
