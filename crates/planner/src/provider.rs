//! The Provider controller: every vSphere `Provider` gets its SSH key pair (see [`crate::ssh_keys`])
//! while `feature_copy_offload` is on; a pair that cannot be used is reported on the Provider as
//! `SSHPrivateKeyInvalid` / `SSHPublicKeyInvalid` (Forklift's condition types), never replaced.
//! A Provider using the SSH clone method also gets its hosts probed with the pair
//! ([`crate::ssh_readiness`]), again every `--ssh-readiness-interval-seconds` and whenever its
//! spec or one of its key Secrets changes (also when an administrator replaced them with
//! unlabelled ones); other reconciles reuse the last result.

use std::sync::Arc;
use std::time::Duration;

use co_api::CloneMethod;
use co_api::forklift::Provider;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::conditions::{self, Condition, category};
use crate::ssh_keys::{self, KeyProblem, KeysOutcome};
use crate::ssh_readiness::{self, READINESS_CONDITIONS};
use crate::{Context, Error, Observed};

/// Condition type for a private key that cannot be used (Forklift's name).
pub const PRIVATE_KEY_INVALID: &str = "SSHPrivateKeyInvalid";
/// Condition type for a public key that cannot be used or does not match (Forklift's name).
pub const PUBLIC_KEY_INVALID: &str = "SSHPublicKeyInvalid";
const KEY_CONDITIONS: &[&str] = &[PRIVATE_KEY_INVALID, PUBLIC_KEY_INVALID];

/// What one reconcile of a Provider did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderOutcome {
    /// `feature_copy_offload` is off: nothing was looked at.
    Disabled,
    /// Not a vSphere provider, or being deleted.
    Ignored,
    /// The key pair's state after the reconcile.
    Keys(KeysOutcome),
}

/// Runs the Provider controller until `shutdown` resolves.
pub(crate) async fn run(
    context: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let providers = context.watched::<Provider>();
    let secrets = context.watched::<Secret>();
    let controller = Controller::new(providers, watcher::Config::default());
    let known_providers = controller.store();
    let results = controller
        .watches(
            secrets,
            watcher::Config::default(),
            move |secret: Secret| {
                let namespace = secret.namespace();
                let name = secret.name_any();
                known_providers
                    .state()
                    .into_iter()
                    .filter(|provider| {
                        provider.namespace() == namespace
                            && [
                                ssh_keys::private_secret_name(&provider.name_any()),
                                ssh_keys::public_secret_name(&provider.name_any()),
                            ]
                            .contains(&name)
                    })
                    .map(|provider| ObjectRef::from_obj(&*provider))
                    .collect::<Vec<_>>()
            },
        )
        .reconcile_all_on(context.flag.changes())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context);
    crate::log_reconcile_errors(results, "provider").await;
}

async fn reconcile(provider: Arc<Provider>, context: Arc<Context>) -> Result<Action, Error> {
    let (outcome, checked) = reconcile_provider(&provider, &context).await?;
    let namespace = provider.namespace().unwrap_or_default();
    context.observe(Observed::Provider {
        namespace: namespace.clone(),
        name: provider.name_any(),
        outcome,
    });
    let Some(checked) = checked else {
        context.prober.forget(&provider);
        return Ok(Action::await_change());
    };
    if checked.probed {
        context.observe(Observed::SshProbed {
            namespace,
            name: provider.name_any(),
            readiness: checked.readiness,
        });
    }
    Ok(Action::requeue(context.prober.due_in(&provider)))
}

/// The reconcile's outcome, and the SSH readiness check when the Provider uses the SSH method.
async fn reconcile_provider(
    provider: &Provider,
    context: &Context,
) -> Result<(ProviderOutcome, Option<ssh_readiness::Checked>), Error> {
    if !context.flag.enabled() {
        return Ok((ProviderOutcome::Disabled, None));
    }
    let is_vsphere = provider.spec.provider_type.as_deref() == Some("vsphere");
    if !is_vsphere || provider.metadata.deletion_timestamp.is_some() {
        return Ok((ProviderOutcome::Ignored, None));
    }
    let keys = ssh_keys::ensure(&context.client, provider).await?;
    match &keys {
        KeysOutcome::Created => tracing::info!(
            provider = %provider.name_any(),
            "SSH key pair created for the provider"
        ),
        KeysOutcome::Unusable(problem) => tracing::warn!(
            provider = %provider.name_any(),
            %problem,
            "the provider's SSH key pair cannot be used; left as it is"
        ),
        KeysOutcome::Kept | KeysOutcome::PublicRestored => {}
    }
    let mut wanted: Vec<Condition> = match &keys {
        KeysOutcome::Unusable(problem) => vec![key_condition(problem)],
        _ => vec![],
    };
    let uses_ssh = provider.spec.esxi_clone_method() == Ok(CloneMethod::Ssh);
    let checked = if uses_ssh && !matches!(keys, KeysOutcome::Unusable(_)) {
        let checked = context.prober.check(&context.client, provider).await;
        let failing = checked.readiness.failing_hosts();
        if checked.probed && !failing.is_empty() {
            tracing::warn!(
                provider = %provider.name_any(),
                hosts = ?failing,
                "ESXi hosts do not accept the provider's SSH key yet; see its SSHNotReady condition"
            );
        }
        wanted.extend(checked.conditions.iter().cloned());
        Some(checked)
    } else {
        None
    };
    let owned: Vec<&str> = KEY_CONDITIONS
        .iter()
        .chain(READINESS_CONDITIONS)
        .copied()
        .collect();
    report(&context.client, provider, &owned, &wanted).await?;
    Ok((ProviderOutcome::Keys(keys), checked))
}

fn key_condition(problem: &KeyProblem) -> Condition {
    let type_ = match problem {
        KeyProblem::PrivateMissing(_) | KeyProblem::PrivateUnusable { .. } => PRIVATE_KEY_INVALID,
        KeyProblem::PublicUnusable { .. } | KeyProblem::Mismatch { .. } => PUBLIC_KEY_INVALID,
    };
    Condition {
        type_: type_.into(),
        category: category::WARN,
        reason: "SSHKeysUnusable".into(),
        message: format!(
            "{problem}. copy-offload leaves these Secrets as they are: fix them, or delete both \
             to have a new pair generated."
        ),
        items: vec![],
    }
}

/// Writes `wanted` as the provider's conditions of `owned` types.
pub(crate) async fn report(
    client: &Client,
    provider: &Provider,
    owned: &[&str],
    wanted: &[Condition],
) -> Result<(), Error> {
    let resource = ApiResource::erase::<Provider>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &provider.namespace().unwrap_or_default(),
        &resource,
    );
    let current = api.get(&provider.name_any()).await.map_err(Error::Status)?;
    conditions::replace_owned(&api, &current, owned, wanted)
        .await
        .map_err(Error::Status)?;
    Ok(())
}

fn error_policy(provider: Arc<Provider>, error: &Error, _context: Arc<Context>) -> Action {
    tracing::warn!(provider = %provider.name_any(), %error, "provider reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}
