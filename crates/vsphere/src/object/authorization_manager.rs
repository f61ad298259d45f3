//! `AuthorizationManager`: the privileges this session holds on managed entities
//! (`HasPrivilegeOnEntities` with the session's own key), so a caller can tell before it acts
//! whether the role it runs under lets it.

use crate::client::{Client, returnval};
use crate::error::Error;
use crate::soap::Request;
use crate::types::ManagedObjectReference;

/// Whether the session holds each asked privilege on one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityPrivileges {
    pub entity: ManagedObjectReference,
    /// `(privilege id, granted)` in the order asked.
    pub privileges: Vec<(String, bool)>,
}

impl EntityPrivileges {
    /// The asked privileges the session lacks on the entity.
    pub fn missing(&self) -> Vec<&str> {
        self.privileges
            .iter()
            .filter(|(_, granted)| !granted)
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

/// The endpoint's authorization manager.
#[derive(Debug, Clone)]
pub struct AuthorizationManager {
    client: Client,
    moref: ManagedObjectReference,
}

impl AuthorizationManager {
    /// The authorization manager the endpoint's service content names.
    pub fn of(client: &Client) -> Result<Self, Error> {
        let moref = client
            .service_content()
            .authorization_manager
            .clone()
            .ok_or_else(|| Error::Protocol {
                method: "HasPrivilegeOnEntities".into(),
                reason: "the endpoint has no AuthorizationManager".into(),
            })?;
        Ok(Self {
            client: client.clone(),
            moref,
        })
    }

    /// Which of `privileges` (ids such as `Host.Config.AdvancedConfig`) this session holds on each
    /// of `entities`: its effective privileges, inherited permissions and group roles included.
    pub async fn session_privileges(
        &self,
        entities: &[ManagedObjectReference],
        privileges: &[&str],
    ) -> Result<Vec<EntityPrivileges>, Error> {
        if entities.is_empty() {
            return Ok(Vec::new());
        }
        let session_id = self.session_key().await?;
        let mut req = Request::new("HasPrivilegeOnEntities", &self.moref);
        for entity in entities {
            req.moref("entity", entity);
        }
        req.text("sessionId", &session_id);
        for privilege in privileges {
            req.text("privId", privilege);
        }
        let response = self.client.call(&req).await?;
        // No answer for entities asked about is a server that did not understand the call.
        returnval(req.method(), &response)?;
        let mut out = Vec::new();
        for result in response.children_named("returnval") {
            let entity = ManagedObjectReference::child_of(result, "entity").map_err(|source| {
                Error::Decode {
                    method: req.method().into(),
                    source,
                }
            })?;
            let privileges = result
                .children_named("privAvailability")
                .map(|p| {
                    (
                        p.text_of("privId").unwrap_or_default().to_owned(),
                        p.bool_of("isGranted").unwrap_or(false),
                    )
                })
                .collect();
            out.push(EntityPrivileges { entity, privileges });
        }
        Ok(out)
    }

    /// The key of this session (`SessionManager.currentSession.key`), which the privilege
    /// queries take to name whose privileges they answer for.
    async fn session_key(&self) -> Result<String, Error> {
        let no_session = || Error::Protocol {
            method: "HasPrivilegeOnEntities".into(),
            reason: "the endpoint reports no current session".into(),
        };
        let manager = self
            .client
            .service_content()
            .session_manager
            .clone()
            .ok_or_else(no_session)?;
        let content = self
            .client
            .retrieve_one(&manager, &["currentSession"])
            .await?;
        content
            .prop("currentSession")
            .and_then(|session| session.text_of("key"))
            .map(str::to_owned)
            .ok_or_else(no_session)
    }
}
