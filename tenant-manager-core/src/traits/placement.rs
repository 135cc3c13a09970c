//! `PlacementPolicy`: which database server a new tenant goes to.
//!
//! The contract is a pure decision: the policy gets the tenant being placed and every server
//! of the deployment with its load right now ([`ServerLoad`]), and answers one server id or
//! an error. Gathering the loads (tenant counts from the registry, sizes from the servers) is
//! the caller's job, so a policy is easy to test and to swap.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::{Isolation, ServerId, TenantSlug, validate_region};
use crate::error::{Error, Result};

/// A database server new tenants can be placed on, as a placement policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSpec {
    /// The server's id (the key of the deployment's server map).
    pub id: ServerId,
    /// Most tenants it takes; `None` is unbounded. `Some(0)` takes no new tenant (drained).
    pub capacity: Option<u64>,
    /// The region it serves, for tenants pinned to a region.
    pub region: Option<String>,
}

impl ServerSpec {
    /// A server without capacity limit nor region.
    pub fn new(id: ServerId) -> Self {
        Self {
            id,
            capacity: None,
            region: None,
        }
    }

    /// Sets the capacity (most tenants).
    #[must_use]
    pub fn with_capacity(mut self, capacity: Option<u64>) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets the region.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `region` when it does not validate.
    pub fn with_region(mut self, region: Option<String>) -> Result<Self> {
        if let Some(region) = &region {
            validate_region(region)?;
        }
        self.region = region;
        Ok(self)
    }
}

/// A server and its load now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLoad {
    /// The server.
    pub spec: ServerSpec,
    /// Tenants placed on it (every status but deleted).
    pub tenants: u64,
    /// Bytes its tenants' storage takes, where known.
    pub bytes: Option<u64>,
}

impl ServerLoad {
    /// The load of `spec` with `tenants` tenants and unknown size.
    pub fn new(spec: ServerSpec, tenants: u64) -> Self {
        Self {
            spec,
            tenants,
            bytes: None,
        }
    }

    /// Sets the size of its tenants' storage.
    #[must_use]
    pub fn with_bytes(mut self, bytes: Option<u64>) -> Self {
        self.bytes = bytes;
        self
    }

    /// Whether it has reached its capacity.
    pub fn is_full(&self) -> bool {
        self.spec.capacity.is_some_and(|cap| self.tenants >= cap)
    }
}

/// The tenant being placed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlacementRequest {
    /// Its slug.
    pub slug: TenantSlug,
    /// Its isolation.
    pub isolation: Isolation,
    /// Its region, when it is pinned to one.
    pub region: Option<String>,
    /// The server an operator chose for it (the override), checked rather than chosen.
    pub server: Option<ServerId>,
}

impl PlacementRequest {
    /// A request with no region and no override.
    pub fn new(slug: TenantSlug, isolation: Isolation) -> Self {
        Self {
            slug,
            isolation,
            region: None,
            server: None,
        }
    }

    /// Pins it to a region.
    #[must_use]
    pub fn with_region(mut self, region: Option<String>) -> Self {
        self.region = region;
        self
    }

    /// Sets the operator's choice of server.
    #[must_use]
    pub fn with_server(mut self, server: Option<ServerId>) -> Self {
        self.server = server;
        self
    }
}

/// Picks the database server of a new tenant.
///
/// # Contract
/// - The answer is the id of one of `servers`, never another.
/// - An operator's choice ([`PlacementRequest::server`]) is honoured or refused, never
///   replaced: `InvalidInput` on field `server` when it is not one of `servers`, is full, or
///   serves another region than the tenant's.
/// - Region pinning applies when any server declares a region: a tenant with a region then
///   goes only to a server of that region (`InvalidInput` on field `region` when no server
///   serves it). When no server declares a region, regions do not steer placement.
/// - A full server ([`ServerLoad::is_full`]) is never chosen; when every eligible server is
///   full, [`Error::NoCapacity`].
/// - The same request and loads give the same answer (ties are broken by server id).
pub trait PlacementPolicy: fmt::Debug + Send + Sync + 'static {
    /// The server of the tenant of `request`, among `servers` (every server of the
    /// deployment, in id order, with its load).
    ///
    /// # Errors
    /// As the contract says.
    fn place(&self, request: &PlacementRequest, servers: &[ServerLoad]) -> Result<ServerId>;
}

/// The servers a tenant of `request` may go to, by the contract's rules of override, region
/// and capacity, for policies to rank: the operator's server alone when it is set, else the
/// servers of the tenant's region (or all), less the full ones.
///
/// # Errors
/// As [`PlacementPolicy::place`].
pub fn eligible_servers<'a>(
    request: &PlacementRequest,
    servers: &'a [ServerLoad],
) -> Result<Vec<&'a ServerLoad>> {
    let pinning = servers.iter().any(|s| s.spec.region.is_some());
    let region = request.region.as_deref().filter(|_| pinning);
    if let Some(id) = &request.server {
        let server = servers.iter().find(|s| &s.spec.id == id).ok_or_else(|| {
            Error::invalid("server", "is not a database server of this deployment")
        })?;
        if let Some(region) = region
            && server.spec.region.as_deref() != Some(region)
        {
            return Err(Error::invalid(
                "server",
                format!("does not serve the tenant's region {region}"),
            ));
        }
        if server.is_full() {
            return Err(Error::invalid("server", "has reached its capacity"));
        }
        return Ok(vec![server]);
    }
    let in_region: Vec<&ServerLoad> = servers
        .iter()
        .filter(|s| region.is_none_or(|r| s.spec.region.as_deref() == Some(r)))
        .collect();
    if in_region.is_empty() {
        return Err(match region {
            Some(region) => Error::invalid(
                "region",
                format!("no database server serves region {region}"),
            ),
            None => Error::NoCapacity {
                reason: "the deployment has no database server".into(),
            },
        });
    }
    let open: Vec<&ServerLoad> = in_region.iter().copied().filter(|s| !s.is_full()).collect();
    if open.is_empty() {
        let full: Vec<String> = in_region
            .iter()
            .map(|s| format!("{} ({} tenants)", s.spec.id, s.tenants))
            .collect();
        return Err(Error::NoCapacity {
            reason: format!("every server is full: {}", full.join(", ")).into(),
        });
    }
    Ok(open)
}
