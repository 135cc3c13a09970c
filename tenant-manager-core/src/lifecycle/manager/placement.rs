//! Placement of new tenants: the server list of the configuration, the tenant counts of the
//! registry, and the placement policy's choice among them.

use super::TenantManager;
use super::signup::Valid;
use crate::domain::{ServerId, TenantSlug};
use crate::error::Result;
use crate::traits::{PlacementRequest, ServerLoad};

impl TenantManager {
    /// Every server of the configured list with its load now (tenants from the registry), in
    /// id order; empty when the manager has no server list (every tenant on
    /// [`ManagerConfig::server`](super::ManagerConfig::server)).
    ///
    /// # Errors
    /// `Unavailable` when the registry cannot be reached.
    pub async fn server_loads(&self) -> Result<Vec<ServerLoad>> {
        let servers = &self.inner.config.servers;
        if servers.is_empty() {
            return Ok(Vec::new());
        }
        let counts = self.inner.ops.registry.count_tenants_by_server().await?;
        let mut loads: Vec<ServerLoad> = servers
            .iter()
            .map(|spec| {
                let tenants = counts.get(&spec.id).copied().unwrap_or(0);
                ServerLoad::new(spec.clone(), tenants)
            })
            .collect();
        loads.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
        Ok(loads)
    }

    /// The server of a new tenant: the policy's choice among the configured servers (checking
    /// an operator's choice), or the configured server when there is no list.
    ///
    /// Two registrations placed at once both see the counts before either, so a server may go
    /// a tenant or two past its capacity under concurrency; capacity is a placement goal, not a
    /// hard limit.
    pub(super) async fn place(&self, valid: &Valid, slug: &TenantSlug) -> Result<ServerId> {
        let request = PlacementRequest::new(slug.clone(), valid.isolation)
            .with_region(valid.region.clone())
            .with_server(valid.server.clone());
        self.place_request(&request).await
    }

    /// [`place`](Self::place) for a request built by the caller (a restore as a new tenant).
    pub(super) async fn place_request(&self, request: &PlacementRequest) -> Result<ServerId> {
        let config = &self.inner.config;
        if config.servers.is_empty() {
            return match &request.server {
                Some(server) if *server != config.server => Err(crate::Error::invalid(
                    "server",
                    "is not a database server of this deployment",
                )),
                _ => Ok(config.server.clone()),
            };
        }
        let loads = self.server_loads().await?;
        let server = self.inner.placement.place(request, &loads)?;
        tracing::debug!(slug = %request.slug, %server, "tenant placed");
        Ok(server)
    }
}
