//! ServiceInstance: the entry point (`RetrieveServiceContent`, `CurrentTime`) and the singleton managers'
//! trivial properties.

use super::inventory::ROOT_FOLDER;
use super::soap::{Call, Fault};
use super::value::{Moref, Value, s};
use super::{API_VERSION, VcenterState, now_datetime};

pub(super) fn about(state: &VcenterState) -> Value {
    Value::obj(
        "AboutInfo",
        vec![
            ("name", s("VMware vCenter Server")),
            (
                "fullName",
                s("VMware vCenter Server 8.0.3 build-24022515 (copy-offload lab)"),
            ),
            ("vendor", s("VMware, Inc.")),
            ("version", s("8.0.3")),
            ("build", s("24022515")),
            ("localeVersion", s("INTL")),
            ("localeBuild", s("000")),
            ("osType", s("linux-x64")),
            ("productLineId", s("vpx")),
            ("apiType", s("VirtualCenter")),
            ("apiVersion", s(API_VERSION)),
            ("instanceUuid", s(state.instance_uuid.clone())),
            ("licenseProductName", s("VMware VirtualCenter Server")),
            ("licenseProductVersion", s("8.0")),
        ],
    )
}

/// The managers of `ServiceContent` after `about`, in WSDL order: (field, managed object type, moid).
/// Every one exists (its properties can be read), as on vCenter; the lab implements the methods of
/// the session, authorization, property collector, view, file, task, search index, virtual disk and
/// option managers,
/// and answers the others' methods with `MethodNotFound`.
pub(super) const MANAGERS: &[(&str, &str, &str)] = &[
    ("setting", "OptionManager", "VpxSettings"),
    ("userDirectory", "UserDirectory", "UserDirectory"),
    ("sessionManager", "SessionManager", "SessionManager"),
    (
        "authorizationManager",
        "AuthorizationManager",
        "AuthorizationManager",
    ),
    ("serviceManager", "ServiceManager", "ServiceMgr"),
    ("perfManager", "PerformanceManager", "PerfMgr"),
    (
        "scheduledTaskManager",
        "ScheduledTaskManager",
        "ScheduledTaskManager",
    ),
    ("alarmManager", "AlarmManager", "AlarmManager"),
    ("eventManager", "EventManager", "EventManager"),
    ("taskManager", "TaskManager", "TaskManager"),
    ("extensionManager", "ExtensionManager", "ExtensionManager"),
    (
        "customizationSpecManager",
        "CustomizationSpecManager",
        "CustomizationSpecManager",
    ),
    (
        "customFieldsManager",
        "CustomFieldsManager",
        "CustomFieldsManager",
    ),
    ("diagnosticManager", "DiagnosticManager", "DiagMgr"),
    ("licenseManager", "LicenseManager", "LicenseManager"),
    ("searchIndex", "SearchIndex", "SearchIndex"),
    ("fileManager", "FileManager", "FileManager"),
    (
        "datastoreNamespaceManager",
        "DatastoreNamespaceManager",
        "DatastoreNamespaceManager",
    ),
    (
        "virtualDiskManager",
        "VirtualDiskManager",
        "virtualDiskManager",
    ),
    ("ovfManager", "OvfManager", "OvfManager"),
    ("ipPoolManager", "IpPoolManager", "IpPoolManager"),
    (
        "dvSwitchManager",
        "DistributedVirtualSwitchManager",
        "DVSManager",
    ),
    (
        "hostProfileManager",
        "HostProfileManager",
        "HostProfileManager",
    ),
    (
        "clusterProfileManager",
        "ClusterProfileManager",
        "ClusterProfileManager",
    ),
    (
        "complianceManager",
        "ProfileComplianceManager",
        "MoComplianceManager",
    ),
    (
        "localizationManager",
        "LocalizationManager",
        "LocalizationManager",
    ),
    (
        "storageResourceManager",
        "StorageResourceManager",
        "StorageResourceManager",
    ),
    (
        "guestOperationsManager",
        "GuestOperationsManager",
        "guestOperationsManager",
    ),
    (
        "overheadMemoryManager",
        "OverheadMemoryManager",
        "OverheadMemoryManager",
    ),
    (
        "certificateManager",
        "CertificateManager",
        "certificateManager",
    ),
    ("ioFilterManager", "IoFilterManager", "IoFilterManager"),
    (
        "vStorageObjectManager",
        "VcenterVStorageObjectManager",
        "VStorageObjectManager",
    ),
    (
        "hostSpecManager",
        "HostSpecificationManager",
        "HostSpecificationManager",
    ),
    ("cryptoManager", "CryptoManagerKmip", "CryptoManager"),
    (
        "healthUpdateManager",
        "HealthUpdateManager",
        "HealthUpdateManager",
    ),
    (
        "failoverClusterConfigurator",
        "FailoverClusterConfigurator",
        "FailoverClusterConfigurator",
    ),
    (
        "failoverClusterManager",
        "FailoverClusterManager",
        "FailoverClusterManager",
    ),
    ("tenantManager", "TenantTenantManager", "TenantManager"),
    ("siteInfoManager", "SiteInfoManager", "SiteInfoManager"),
    (
        "storageQueryManager",
        "StorageQueryManager",
        "StorageQueryManager",
    ),
];

/// Whether `obj` is one of the `ServiceContent` managers.
pub(super) fn is_manager(obj: &Moref) -> bool {
    MANAGERS
        .iter()
        .any(|(_, kind, moid)| obj.kind == *kind && obj.value == *moid)
        || (obj.kind == "ViewManager" && obj.value == "ViewManager")
        || (obj.kind == "PropertyCollector" && obj.value == "propertyCollector")
}

fn service_content(state: &VcenterState) -> Value {
    let r = |kind: &str, id: &str| Value::Ref(Moref::new(kind, id));
    let mut fields = vec![
        ("rootFolder", r("Folder", ROOT_FOLDER)),
        (
            "propertyCollector",
            r("PropertyCollector", "propertyCollector"),
        ),
        ("viewManager", r("ViewManager", "ViewManager")),
        ("about", about(state)),
    ];
    fields.extend(
        MANAGERS
            .iter()
            .map(|(field, kind, moid)| (*field, r(kind, moid))),
    );
    Value::obj("ServiceContent", fields)
}

pub(super) fn properties(state: &VcenterState, obj: &Moref) -> Option<Vec<(&'static str, Value)>> {
    (obj.value == "ServiceInstance").then(|| {
        vec![
            ("content", service_content(state)),
            ("serverClock", Value::DateTime(now_datetime())),
        ]
    })
}

pub(super) fn singleton_properties(
    state: &VcenterState,
    session: &str,
    obj: &Moref,
) -> Option<Vec<(&'static str, Value)>> {
    match (obj.kind.as_str(), obj.value.as_str()) {
        ("SessionManager", "SessionManager") => {
            let current = state
                .session_for(session)
                .map(|s| super::session_manager::user_session(&s));
            Some(
                current
                    .map(|c| vec![("currentSession", c)])
                    .unwrap_or_default(),
            )
        }
        ("ViewManager", "ViewManager") => {
            let views = state.lock().views.keys().cloned().collect::<Vec<_>>();
            Some(vec![("viewList", Value::refs("ContainerView", views))])
        }
        // The managers whose state the lab does not model have no properties set.
        _ => is_manager(obj).then(Vec::new),
    }
}

pub(super) fn invoke(state: &VcenterState, call: &Call) -> Result<Option<Value>, Fault> {
    match call.method.as_str() {
        "RetrieveServiceContent" => Ok(Some(service_content(state))),
        "CurrentTime" => Ok(Some(Value::DateTime(now_datetime()))),
        _ => Err(Fault::MethodNotFound {
            receiver: call.this.clone(),
            method: call.method.clone(),
        }),
    }
}
