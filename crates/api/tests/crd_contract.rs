//! Compatibility contract of the `VSphereXcopyVolumePopulator` CRD: group, version, names, scope,
//! field names of spec and status (upstream's plus ours), printer columns and subresources.
//! The Forklift controller and existing manifests depend on these; a change must be deliberate.

use std::collections::BTreeSet;

use co_api::{StorageVendorProduct, VSphereXcopyVolumePopulator, crds_yaml};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::{CustomResourceExt, Resource};

fn crd() -> CustomResourceDefinition {
    co_api::populator_crd()
}

fn schema() -> JSONSchemaProps {
    crd().spec.versions[0]
        .schema
        .clone()
        .and_then(|s| s.open_api_v3_schema)
        .expect("the CRD has a schema")
}

fn properties(schema: &JSONSchemaProps, field: &str) -> JSONSchemaProps {
    schema
        .properties
        .as_ref()
        .and_then(|p| p.get(field))
        .cloned()
        .unwrap_or_else(|| panic!("schema has no property {field}"))
}

fn property_names(schema: &JSONSchemaProps) -> BTreeSet<String> {
    schema
        .properties
        .as_ref()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn group_version_kind_and_names() {
    let crd = crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("vspherexcopyvolumepopulators.forklift.konveyor.io")
    );
    assert_eq!(crd.spec.group, "forklift.konveyor.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    let names = &crd.spec.names;
    assert_eq!(names.kind, "VSphereXcopyVolumePopulator");
    assert_eq!(names.plural, "vspherexcopyvolumepopulators");
    assert_eq!(
        names.singular.as_deref(),
        Some("vspherexcopyvolumepopulator")
    );
    assert_eq!(
        names.short_names,
        Some(vec!["vxvp".to_string(), "vxvps".to_string()])
    );

    assert_eq!(crd.spec.versions.len(), 1);
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1beta1");
    assert!(version.served && version.storage);

    assert_eq!(
        VSphereXcopyVolumePopulator::group(&()),
        "forklift.konveyor.io"
    );
    assert_eq!(VSphereXcopyVolumePopulator::version(&()), "v1beta1");
    assert_eq!(
        VSphereXcopyVolumePopulator::plural(&()),
        "vspherexcopyvolumepopulators"
    );
}

/// Forklift's controller writes status and the `offload-completed` label with a plain Update;
/// a status subresource would make the API server drop that status.
#[test]
fn status_is_not_a_subresource_as_in_forklifts_crd() {
    let crd = crd();
    assert_eq!(crd.spec.versions[0].subresources, None);
    assert!(
        !crds_yaml().contains("subresources"),
        "the rendered CRD must carry no subresources"
    );
    // The derived definition still would: only `populator_crd` may be installed.
    assert!(
        VSphereXcopyVolumePopulator::crd().spec.versions[0]
            .subresources
            .is_some()
    );
}

#[test]
fn spec_fields_cover_both_dialects() {
    let spec = properties(&schema(), "spec");
    assert_eq!(
        property_names(&spec),
        set(&[
            // upstream Forklift
            "vmId",
            "vmdkPath",
            "secretName",
            "storageVendorProduct",
            "migrationHost",
            // seed documentation
            "secretRef",
            "targetPVC",
        ])
    );
    // Only the fields both dialects carry are required.
    assert_eq!(
        spec.required,
        Some(vec![
            "storageVendorProduct".to_string(),
            "vmdkPath".to_string()
        ])
    );
    assert_eq!(schema().required, Some(vec!["spec".to_string()]));
}

#[test]
fn vendor_field_accepts_exactly_the_nine_products() {
    let vendor = properties(&properties(&schema(), "spec"), "storageVendorProduct");
    let allowed: Vec<String> = vendor
        .enum_
        .expect("vendor enum")
        .iter()
        .map(|v| v.0.as_str().expect("string enum").to_owned())
        .collect();
    let expected: Vec<String> = StorageVendorProduct::ALL
        .iter()
        .map(|v| v.as_str().to_owned())
        .collect();
    assert_eq!(allowed, expected);
    assert_eq!(
        expected,
        [
            "vantara",
            "ontap",
            "primera3par",
            "pureFlashArray",
            "powerflex",
            "powermax",
            "powerstore",
            "infinibox",
            "flashsystem"
        ]
    );
}

#[test]
fn status_fields_keep_upstream_names_and_add_typed_progress() {
    let status = properties(&schema(), "status");
    let upstream = [
        "progress",
        "xcopyUsed",
        "vibVersion",
        "copyDurationSeconds",
        "result",
        "storageVendor",
        "cloneMethod",
        "storageProtocol",
        "provisionedBytes",
        "allocatedBytes",
    ];
    for field in upstream {
        let field_schema = properties(&status, field);
        assert_eq!(
            field_schema.type_.as_deref(),
            Some("string"),
            "upstream status field {field} is a string"
        );
    }
    let typed = [
        "phase",
        "percent",
        "copiedBytes",
        "totalBytes",
        "observedGeneration",
        "conditions",
    ];
    let all: BTreeSet<String> = upstream
        .iter()
        .chain(typed.iter())
        .map(|s| s.to_string())
        .collect();
    assert_eq!(property_names(&status), all);

    let conditions = properties(&status, "conditions");
    assert_eq!(conditions.x_kubernetes_list_type.as_deref(), Some("map"));
    assert_eq!(
        conditions.x_kubernetes_list_map_keys,
        Some(vec!["type".to_string()])
    );
}

#[test]
fn printer_columns() {
    let columns = crd().spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default();
    let summary: Vec<(String, String, String)> = columns
        .into_iter()
        .map(|c| (c.name, c.type_, c.json_path))
        .collect();
    let expected = [
        ("Vendor", "string", ".spec.storageVendorProduct"),
        ("Phase", "string", ".status.phase"),
        ("Progress", "string", ".status.progress"),
        ("XCOPY", "string", ".status.xcopyUsed"),
        ("Method", "string", ".status.cloneMethod"),
        ("Disk", "string", ".spec.vmdkPath"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
    assert_eq!(summary, expected);
}

#[test]
fn rendered_yaml_is_deterministic_and_parses_back() {
    let yaml = crds_yaml();
    assert_eq!(yaml, crds_yaml());
    assert!(yaml.starts_with("# Generated by `copy-offload crd`"));
    let documents: Vec<CustomResourceDefinition> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("each document is a CRD"))
        .collect();
    assert_eq!(documents, vec![crd()]);
}
