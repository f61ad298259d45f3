//! The rights of the populator's service account beyond what Forklift grants its populator pods
//! (PVC reads and the Lease API in the target namespace, the Lease API in the host lease
//! namespace, PV get): probed once at start with `SelfSubjectAccessReview`s (which every
//! authenticated account may create), so the run degrades up front instead of failing on its
//! first 403 — and says so once, with the rules that restore what is lost.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::{debug, warn};

use crate::host_keys::HOST_KEYS_CONFIG_MAP;

/// One request the service account might make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessCheck {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub namespace: String,
}

impl AccessCheck {
    /// Patching the object that carries the journal annotation by preference.
    pub fn patch_journal_object(journal_on_cr: bool, namespace: &str) -> Self {
        let (group, resource) = if journal_on_cr {
            ("forklift.konveyor.io", "vspherexcopyvolumepopulators")
        } else {
            ("", "persistentvolumeclaims")
        };
        Self {
            verb: "patch",
            group,
            resource,
            namespace: namespace.to_owned(),
        }
    }

    /// Creating and updating the cluster-wide host-key record.
    pub fn write_host_key_record(namespace: &str) -> [Self; 2] {
        ["create", "update"].map(|verb| Self {
            verb,
            group: "",
            resource: "configmaps",
            namespace: namespace.to_owned(),
        })
    }

    /// The RBAC rule that grants this request, as a user would write it in a Role.
    pub fn rule(&self) -> String {
        format!(
            "apiGroups: [\"{}\"], resources: [\"{}\"], verbs: [\"{}\"] in namespace {}",
            self.group, self.resource, self.verb, self.namespace
        )
    }
}

/// Whether the API server would allow `check` to this client's identity. An answer that cannot be
/// had (an API server without the authorization API) counts as allowed: the request itself then
/// fails with its own error, as before this probe existed.
pub async fn allowed(client: &Client, check: &AccessCheck) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(check.verb.to_owned()),
                group: Some(check.group.to_owned()),
                resource: Some(check.resource.to_owned()),
                namespace: Some(check.namespace.clone()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    match api.create(&PostParams::default(), &review).await {
        Ok(answer) => answer.status.is_some_and(|status| status.allowed),
        Err(error) => {
            debug!(%error, rule = %check.rule(), "access review unavailable: assuming allowed");
            true
        }
    }
}

/// What this run may do beyond Forklift's grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtraRights {
    /// Patch the CR (or, without one, the target PVC) to keep the journal there.
    pub journal_on_object: bool,
    /// Create and update the cluster-wide host-key ConfigMap.
    pub host_key_record: bool,
}

impl ExtraRights {
    /// Every extra right: Kubernetes-less mode and callers that need none of them.
    pub const ALL: Self = Self {
        journal_on_object: true,
        host_key_record: true,
    };
}

/// Probes the rights the run would use (`None`: not needed by this run) and logs once what is
/// lost without them and the rules that restore it.
pub async fn probe(
    client: &Client,
    journal_object: Option<AccessCheck>,
    host_key_record: Option<[AccessCheck; 2]>,
) -> ExtraRights {
    let mut missing: Vec<String> = Vec::new();
    let mut lost: Vec<&str> = Vec::new();
    let mut rights = ExtraRights::ALL;
    if let Some(check) = journal_object
        && !allowed(client, &check).await
    {
        rights.journal_on_object = false;
        lost.push(
            "the copy journal is kept in a Lease of its own in the target namespace instead \
             of an annotation on the CR/PVC (it outlives the CR; crash recovery is unchanged)",
        );
        missing.push(check.rule());
    }
    if let Some(checks) = host_key_record {
        for check in checks {
            if !allowed(client, &check).await {
                rights.host_key_record = false;
                missing.push(check.rule());
            }
        }
        if !rights.host_key_record {
            lost.push(
                "ESXi SSH host keys are trusted on first use for this run only, not pinned for the \
                 cluster (set SSH_KNOWN_HOSTS to pin them without extra rights)",
            );
        }
    }
    if !missing.is_empty() {
        warn!(
            lost = %lost.join("; "),
            restore_with = %missing.join("; "),
            config_map = HOST_KEYS_CONFIG_MAP,
            "running with the populator rights Forklift grants; optional RBAC restores the rest"
        );
    }
    rights
}
