//! StorageMap validation against the real API server: the seed's example StorageMap, applied
//! unchanged, is reported on for its placeholder secret name, then as its storage Secret goes from
//! missing to incomplete to complete, and an unknown `storageVendorProduct` is named with the nine known ones; nothing is written
//! while `feature_copy_offload` is off.

use crate::support;

use co_planner::storage_map::{
    OFFLOAD_READY, ProblemKind, SECRET_INCOMPLETE, SECRET_NOT_FOUND, VENDOR_UNKNOWN,
};
use co_planner::{Observed, StorageMapOutcome};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::Scratch;

const SEED_STORAGE_MAP: &str = include_str!("fixtures/seed-storagemap.yaml");
const MAP: &str = "copy-offload";
const PLACEHOLDER: &str = "SECRET_WITH_ONTAP_CREDS";
const SECRET: &str = "ontap-creds";

fn map_checked(wanted: impl Fn(&StorageMapOutcome) -> bool) -> impl Fn(&Observed) -> bool {
    move |observed| match observed {
        Observed::StorageMap { name, outcome, .. } => name == MAP && wanted(outcome),
        _ => false,
    }
}

fn only_problem(outcome: &StorageMapOutcome, kind: fn(&ProblemKind) -> bool) -> bool {
    matches!(outcome, StorageMapOutcome::Checked(problems)
        if problems.len() == 1 && problems[0].index == 0 && kind(&problems[0].kind))
}

/// The copy-offload conditions on the map, by type.
async fn offload_conditions(scratch: &Scratch) -> Vec<Value> {
    let map = scratch.forklift("StorageMap").get(MAP).await.unwrap();
    map.data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn condition<'a>(conditions: &'a [Value], type_: &str) -> &'a Value {
    conditions
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {conditions:?}"))
}

fn types(conditions: &[Value]) -> Vec<&str> {
    conditions
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect()
}

/// Waits until the map's only problem is one of `kind`, then returns the map's one copy-offload
/// condition, which must be of `type_`.
async fn reported_alone(
    scratch: &mut Scratch,
    what: &str,
    kind: fn(&ProblemKind) -> bool,
    type_: &str,
) -> Value {
    scratch
        .observe(what, map_checked(|o| only_problem(o, kind)))
        .await;
    let conditions = offload_conditions(scratch).await;
    assert_eq!(types(&conditions), [type_]);
    condition(&conditions, type_).clone()
}

/// Sets `field` of the map's first `vsphereXcopyConfig`, as an administrator editing it would.
async fn set_offload_config(scratch: &Scratch, field: &str, value: &str) {
    let storage_maps = scratch.forklift("StorageMap");
    let mut map = storage_maps.get(MAP).await.unwrap();
    map.data["spec"]["map"][0]["offloadPlugin"]["vsphereXcopyConfig"][field] = json!(value);
    storage_maps
        .replace(MAP, &PostParams::default(), &map)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_seed_storage_map_is_reported_on_until_its_secret_and_product_are_right() {
    let mut scratch = Scratch::new("planner-smap").await;
    scratch
        .apply_manifest(SEED_STORAGE_MAP, "openshift-mtv")
        .await;
    scratch.start_planner().await;
    scratch
        .observe(
            "the map reconciled with the flag off",
            map_checked(|o| *o == StorageMapOutcome::Disabled),
        )
        .await;
    assert!(offload_conditions(&scratch).await.is_empty());

    scratch.set_flag_on_forklift_controller("true").await;
    let invalid = reported_alone(
        &mut scratch,
        "the placeholder reported",
        |k| matches!(k, ProblemKind::InvalidSecretRef { .. }),
        SECRET_NOT_FOUND,
    )
    .await;
    let item = invalid["items"][0].as_str().unwrap().to_owned();
    assert!(
        item.contains(&format!("{PLACEHOLDER:?} cannot name a Secret")),
        "{item}"
    );

    set_offload_config(&scratch, "secretRef", SECRET).await;
    let missing = reported_alone(
        &mut scratch,
        "the missing secret reported",
        |k| matches!(k, ProblemKind::SecretNotFound { .. }),
        SECRET_NOT_FOUND,
    )
    .await;
    assert_eq!(missing["category"], "Critical");
    let item = missing["items"][0].as_str().unwrap();
    assert!(
        item.starts_with("map[0] (datastore DATASTORE_ID): "),
        "{item}"
    );
    assert!(
        item.contains(&format!(
            "Secret {}/{SECRET} does not exist",
            scratch.namespace
        )),
        "{item}"
    );

    // The secret appears without the password: the secret watch re-evaluates the map.
    let secrets: Api<Secret> = Api::namespaced(scratch.client.clone(), &scratch.namespace);
    let data = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
            .collect()
    };
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some(SECRET.into()),
                    ..Default::default()
                },
                data: Some(data(&[
                    ("management_address", "ontap.example.com"),
                    ("username", "admin"),
                ])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let incomplete = reported_alone(
        &mut scratch,
        "the incomplete secret reported",
        |k| matches!(k, ProblemKind::SecretIncomplete { .. }),
        SECRET_INCOMPLETE,
    )
    .await;
    let message = incomplete["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("STORAGE_PASSWORD (or password): missing"),
        "{message}"
    );
    assert!(!message.contains("STORAGE_HOSTNAME"), "{message}");

    // Fixed: every critical condition goes, the all-clear appears.
    secrets
        .patch(
            SECRET,
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "pw"}})),
        )
        .await
        .unwrap();
    scratch
        .observe(
            "the map found valid",
            map_checked(|o| *o == StorageMapOutcome::Checked(vec![])),
        )
        .await;
    let conditions = offload_conditions(&scratch).await;
    assert_eq!(types(&conditions), [OFFLOAD_READY]);
    assert_eq!(
        condition(&conditions, OFFLOAD_READY)["category"],
        "Advisory"
    );

    // An unknown product is named with the nine known ones.
    set_offload_config(&scratch, "storageVendorProduct", "netapp").await;
    let unknown = reported_alone(
        &mut scratch,
        "the unknown product reported",
        |k| matches!(k, ProblemKind::UnknownVendor { .. }),
        VENDOR_UNKNOWN,
    )
    .await;
    let message = unknown["message"].as_str().unwrap().to_owned();
    assert!(message.contains("\"netapp\""), "{message}");
    assert!(
        message.contains(&co_api::StorageVendorProduct::valid_names()),
        "{message}"
    );
    scratch.finish().await;
}
