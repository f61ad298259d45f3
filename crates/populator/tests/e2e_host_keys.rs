//! The SSH clone method with the default host-key policy in a cluster (lab + kube-apiserver peer):
//! the first populate records the ESXi host's key in the ConfigMap of the host lease namespace,
//! and after the host's key changes (re-installed, or an impostor on its address) the next
//! populate refuses it before anything reaches the host or the target.

use crate::e2e_support;
use crate::kube_support;

use co_esxi::EsxiError;
use co_esxi::host_keys::{PublicKey, fingerprint};
use co_populator::CopyError;
use co_populator::ExitCode;
use co_populator::host_keys::{HOST_KEYS_CONFIG_MAP, entry_name};
use co_populator::run_with;
use e2e_support::{LabRig, MIB};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube_support::ScratchNamespace;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_records_the_host_key_and_a_changed_key_is_refused() {
    let client = kube_support::client().await;
    let namespace = ScratchNamespace::new(&client, "e2e-host-keys").await;
    let mut rig = LabRig::start().await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace.name);

    let first = "trident_pvc_hostkey_first";
    rig.target_volume(first, 64 * MIB);
    let mut args = rig.args(first);
    let mut options = rig.options("first");
    rig.use_ssh(&mut args, &mut options);
    // The configured policy, not the pinned key the other SSH tests use.
    options.ssh_host_key = None;
    options.kube_client = Some(client.clone());
    args.host_lease_namespace = Some(namespace.name.clone());
    let summary = run_with(rig.config(&args), options.clone()).await;
    assert_eq!(summary.exit_code, ExitCode::Success, "{:?}", summary.error);
    rig.assert_copied(first);
    rig.assert_clean(first);

    let host = &rig.lab.hosts[0];
    let original = PublicKey::from_openssh(&host.ssh_host_key).unwrap();
    let entry = entry_name(&host.ssh_addr.ip().to_string(), host.ssh_addr.port());
    let recorded = config_maps
        .get(HOST_KEYS_CONFIG_MAP)
        .await
        .unwrap()
        .data
        .unwrap_or_default();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let recorded_key = PublicKey::from_openssh(&recorded[&entry]).unwrap();
    assert_eq!(recorded_key.key_data(), original.key_data());

    let replaced = rig.lab.hosts[0].replace_ssh_host_key().unwrap();
    let replaced = PublicKey::from_openssh(&replaced).unwrap();
    let second = "trident_pvc_hostkey_second";
    rig.target_volume(second, 64 * MIB);
    let mut args = args.clone();
    args.target_volume_handle = Some(format!("pvc-{second}"));
    args.target_volume_attribute = vec![format!("internalName={second}")];
    args.owner_uid = Some(format!("uid-{second}"));
    let mut options = options.clone();
    options.journal_path = Some(rig.journal_path("second"));
    let summary = run_with(rig.config(&args), options).await;

    assert_eq!(
        summary.exit_code,
        ExitCode::Permanent,
        "{:?}",
        summary.error
    );
    let error = summary.error.expect("the run failed");
    let message = error.to_string();
    match &error {
        CopyError::Esxi { source, .. } => {
            assert!(
                matches!(**source, EsxiError::HostKeyMismatch { .. }),
                "{message}"
            )
        }
        other => panic!("expected a host key mismatch, got {other}"),
    }
    for needle in [
        format!("the host presented {}", fingerprint(&replaced)),
        format!("the trusted key is {}", fingerprint(&original)),
        format!(
            "entry {entry} of ConfigMap {}/{HOST_KEYS_CONFIG_MAP}",
            namespace.name
        ),
        format!("\"path\":\"/data/{entry}\""),
    ] {
        assert!(message.contains(&needle), "{needle:?} not in: {message}");
    }
    rig.assert_untouched(second);
    rig.assert_clean(second);
    let after = config_maps
        .get(HOST_KEYS_CONFIG_MAP)
        .await
        .unwrap()
        .data
        .unwrap_or_default();
    assert_eq!(after, recorded, "the record is not overwritten");
    namespace.delete().await;
}
