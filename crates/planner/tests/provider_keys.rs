//! SSH key pairs per vSphere Provider, against the real API server: nothing while
//! `feature_copy_offload` is off, a pair exactly as Forklift names and labels it once it is on
//! (no restart), the same pair after a restart, an administrator's own pair kept, and a broken
//! one reported on the Provider and left alone.

use crate::support;

use co_planner::ssh_keys::{self, KeyProblem, KeysOutcome};
use co_planner::{Observed, PRIVATE_KEY_INVALID, ProviderOutcome};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use support::Scratch;

const SEED_PROVIDER: &str = include_str!("fixtures/seed-provider.yaml");
const SEED_PROVIDER_NAME: &str = "my-vsphere-provider";

fn reconciled(name: &str, wanted: impl Fn(&ProviderOutcome) -> bool) -> impl Fn(&Observed) -> bool {
    let name = name.to_owned();
    move |observed| match observed {
        Observed::Provider {
            name: n, outcome, ..
        } => *n == name && wanted(outcome),
        _ => false,
    }
}

fn data(secret: &Secret, key: &str) -> Vec<u8> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.0.clone())
        .unwrap_or_default()
}

async fn key_secrets(scratch: &Scratch) -> Vec<Secret> {
    let secrets: Api<Secret> = Api::namespaced(scratch.client.clone(), &scratch.namespace);
    secrets
        .list(&ListParams::default().labels("app.kubernetes.io/component=ssh-keys"))
        .await
        .expect("listing secrets")
        .items
}

#[tokio::test]
async fn the_seed_provider_gets_one_pair_once_the_flag_is_on_and_keeps_it() {
    let mut scratch = Scratch::new("planner-keys").await;
    let provider = scratch.apply_manifest(SEED_PROVIDER, "openshift-mtv").await;
    scratch.start_planner().await;

    scratch
        .observe(
            "the provider reconciled with the flag off",
            reconciled(SEED_PROVIDER_NAME, |o| *o == ProviderOutcome::Disabled),
        )
        .await;
    assert!(
        key_secrets(&scratch).await.is_empty(),
        "no keys while feature_copy_offload is off"
    );

    // The seed's own command, no restart.
    scratch.set_flag_on_forklift_controller("true").await;
    scratch
        .observe(
            "keys created",
            reconciled(SEED_PROVIDER_NAME, |o| {
                *o == ProviderOutcome::Keys(KeysOutcome::Created)
            }),
        )
        .await;

    let secrets: Api<Secret> = Api::namespaced(scratch.client.clone(), &scratch.namespace);
    let private = secrets
        .get("offload-ssh-keys-my-vsphere-provider-private")
        .await
        .unwrap();
    let public = secrets
        .get("offload-ssh-keys-my-vsphere-provider-public")
        .await
        .unwrap();
    for secret in [&private, &public] {
        let labels = secret.labels();
        assert_eq!(labels["app.kubernetes.io/component"], "ssh-keys");
        assert_eq!(labels["forklift.konveyor.io/provider"], SEED_PROVIDER_NAME);
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        let owners = secret.owner_references();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "Provider");
        assert_eq!(owners[0].uid, provider.uid().unwrap());
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(owners[0].block_owner_deletion, Some(true));
    }
    let private_pem = data(&private, "private-key");
    let public_line = data(&public, "public-key");
    assert!(private_pem.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));
    assert!(public_line.starts_with(b"ssh-rsa "));
    ssh_keys::check(&private_pem, &public_line).expect("the two halves of one pair");
    let ssh_key::public::KeyData::Rsa(rsa) = ssh_keys::public_half(&private_pem).unwrap() else {
        panic!("an RSA key")
    };
    assert_eq!(rsa.key_size(), 2048);

    // A restart finds the pair and changes nothing.
    scratch.stop_planner().await;
    scratch.start_planner().await;
    scratch
        .observe(
            "keys kept after a restart",
            reconciled(SEED_PROVIDER_NAME, |o| {
                *o == ProviderOutcome::Keys(KeysOutcome::Kept)
            }),
        )
        .await;
    let after = secrets
        .get("offload-ssh-keys-my-vsphere-provider-private")
        .await
        .unwrap();
    assert_eq!(data(&after, "private-key"), private_pem);
    assert_eq!(
        after.resource_version(),
        private.resource_version(),
        "not even rewritten"
    );
    assert_eq!(key_secrets(&scratch).await.len(), 2);
    scratch.finish().await;
}

fn user_secret(namespace: &str, name: &str, key: &str, value: &[u8]) -> Secret {
    // What `oc create secret generic … --dry-run=client -o yaml | oc replace -f -` leaves: no
    // labels, no owner.
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        data: Some([(key.to_owned(), ByteString(value.to_vec()))].into()),
        ..Default::default()
    }
}

async fn vsphere_provider(scratch: &Scratch, name: &str) {
    scratch
        .create_provider(
            name,
            json!({ "type": "vsphere", "url": "https://vcenter.example.com/sdk",
                    "settings": { "esxiCloneMethod": "ssh" } }),
        )
        .await;
}

#[tokio::test]
async fn user_keys_are_kept_broken_keys_reported_and_long_names_labelled() {
    let mut scratch = Scratch::new("planner-userkeys").await;
    let secrets: Api<Secret> = Api::namespaced(scratch.client.clone(), &scratch.namespace);
    // The flag from copy-offload's own ConfigMap (no Forklift operator here).
    scratch.set_flag_on_config_map("true").await;

    // An administrator's own pair (OpenSSH format, as `ssh-keygen` writes it).
    let user_key =
        ssh_key::PrivateKey::random(&mut rand::rng(), ssh_key::Algorithm::Ed25519).unwrap();
    let user_private = user_key.to_openssh(ssh_key::LineEnding::LF).unwrap();
    let user_public = user_key.public_key().to_openssh().unwrap();
    let ns = scratch.namespace.clone();
    for secret in [
        user_secret(
            &ns,
            "offload-ssh-keys-admin-keys-private",
            "private-key",
            user_private.as_bytes(),
        ),
        user_secret(
            &ns,
            "offload-ssh-keys-admin-keys-public",
            "public-key",
            user_public.as_bytes(),
        ),
        user_secret(
            &ns,
            "offload-ssh-keys-broken-private",
            "private-key",
            b"-----BEGIN RSA PRIVATE KEY-----\ngarbage\n",
        ),
        user_secret(
            &ns,
            "offload-ssh-keys-broken-public",
            "public-key",
            user_public.as_bytes(),
        ),
    ] {
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    let long_name = format!("vcenter-{}", "a".repeat(70));
    for name in ["admin-keys", "broken", long_name.as_str()] {
        vsphere_provider(&scratch, name).await;
    }
    scratch.start_planner().await;

    // The three Providers are reconciled in any order, and `observe` passes over what it does
    // not wait for: one wait for all three.
    let admin_kept = reconciled("admin-keys", |o| {
        *o == ProviderOutcome::Keys(KeysOutcome::Kept)
    });
    let broken_reported = reconciled("broken", |o| {
        matches!(
            o,
            ProviderOutcome::Keys(KeysOutcome::Unusable(KeyProblem::PrivateUnusable { .. }))
        )
    });
    let long_created = reconciled(&long_name, |o| {
        *o == ProviderOutcome::Keys(KeysOutcome::Created)
    });
    let seen = std::cell::Cell::new([false; 3]);
    scratch
        .observe(
            "the administrator's keys kept, the broken key reported, keys for the long name",
            |o| {
                let mut now = seen.get();
                for (flag, wanted) in now.iter_mut().zip([
                    &admin_kept as &dyn Fn(&Observed) -> bool,
                    &broken_reported,
                    &long_created,
                ]) {
                    *flag |= wanted(o);
                }
                seen.set(now);
                now.iter().all(|flag| *flag)
            },
        )
        .await;
    let kept = secrets
        .get("offload-ssh-keys-admin-keys-private")
        .await
        .unwrap();
    assert_eq!(data(&kept, "private-key"), user_private.as_bytes());
    assert!(kept.labels().is_empty(), "not relabelled either");

    let broken = secrets
        .get("offload-ssh-keys-broken-private")
        .await
        .unwrap();
    assert_eq!(
        data(&broken, "private-key"),
        b"-----BEGIN RSA PRIVATE KEY-----\ngarbage\n"
    );
    let provider = scratch.forklift("Provider").get("broken").await.unwrap();
    let conditions = provider
        .data
        .pointer("/status/conditions")
        .cloned()
        .unwrap_or_default();
    let condition = conditions
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == PRIVATE_KEY_INVALID))
        .unwrap_or_else(|| panic!("no {PRIVATE_KEY_INVALID} condition in {conditions}"));
    assert_eq!(condition["category"], "Warn");
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.contains("offload-ssh-keys-broken-private"),
        "{message}"
    );
    assert!(message.contains("is not a PEM private key"), "{message}");
    assert!(
        !message.contains("garbage"),
        "no key material in a condition: {message}"
    );

    let long = secrets
        .get(&format!("offload-ssh-keys-{long_name}-private"))
        .await
        .unwrap();
    let label = &long.labels()["forklift.konveyor.io/provider"];
    assert!(label.len() <= 63, "{label}");
    assert_eq!(*label, ssh_keys::provider_label_value(&long_name));
    scratch.finish().await;
}
