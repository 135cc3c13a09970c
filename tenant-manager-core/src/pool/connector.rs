//! `TenantConnector`: what the engine asks a backend about tenants and their connections.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bb8::ManageConnection;

use crate::domain::{Tenant, TenantId};
use crate::error::{Error, Result};

/// Which pool serves a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PoolKey {
    /// A pool of the tenant alone (database isolation: its own database, its own login role).
    /// Its size is the tenant's cap.
    Tenant(TenantId),
    /// A pool shared by the tenants of one database (schema and shared isolation), named for
    /// instance `server/database`. A checkout sets the tenant's scope unless the connection
    /// still carries it (affinity); a per-tenant permit held for the checkout enforces the
    /// tenant's cap.
    Shared(Arc<str>),
}

impl PoolKey {
    /// Whether the pool is shared by several tenants (and scoped per checkout).
    pub fn is_shared(&self) -> bool {
        matches!(self, PoolKey::Shared(_))
    }

    /// The tenant of a tenant pool.
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            PoolKey::Tenant(id) => Some(*id),
            PoolKey::Shared(_) => None,
        }
    }
}

impl fmt::Display for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolKey::Tenant(id) => write!(f, "tenant:{id}"),
            PoolKey::Shared(name) => write!(f, "shared:{name}"),
        }
    }
}

/// The connection type a connector's manager hands out.
pub type ConnectionOf<C> = <<C as TenantConnector>::Manager as ManageConnection>::Connection;

/// Tells the pool engine where a tenant's connections come from and how to scope them.
///
/// The engine is generic over the connector (static dispatch, no allocation on the checkout
/// path); the methods return `Send` futures, so implementations may use `async fn`.
///
/// # Contract
/// - [`pool_key`](Self::pool_key) is cheap and pure: the same tenant always maps to the same
///   key while its placement is unchanged. A [`PoolKey::Tenant`] key must be the tenant's own
///   id.
/// - [`manager`](Self::manager) builds the `bb8` manager of a new pool; for a tenant pool it
///   connects with the tenant's own credentials.
/// - [`apply_scope`](Self::apply_scope) runs on a checkout from a shared pool whose connection
///   does not already carry this tenant's scope, before it is handed out. `carried` names the
///   tenant whose scope the connection still carries (kept by affinity), `None` for a clean
///   connection; with `Some`, the call first clears everything [`reset_scope`] would (in the
///   same round trip where it can). After it returns `Ok`, the connection runs with this
///   tenant's scope only. It must also fail when the connection is unusable (it doubles as the
///   checkout test of shared pools). When it fails, the engine discards the connection.
/// - [`keep_scope`](Self::keep_scope) runs, without I/O, when a connection of a shared pool is
///   returned and affinity is on ([`PoolConfig::scope_affinity`](super::PoolConfig)): `true`
///   lets the connection keep its tenant's scope, to be handed back to that tenant alone with
///   no statement. Answer `true` only when nothing on the session could surprise that tenant's
///   next checkout beyond state of its own (no transaction open, no reply pending). State a
///   tenant leaves is only ever seen by the same tenant: any other checkout goes through
///   `apply_scope` with `carried`. The default answers `false`.
/// - [`reset_scope`](Self::reset_scope) runs when a returned connection of a shared pool does
///   not keep its scope. When it fails, the engine discards the connection; it is never
///   reused.
///
/// [`reset_scope`]: Self::reset_scope
/// - [`Session`](Self::Session) is the connector's own state of one pooled connection (for
///   instance the backend's identity, learnt once): created with `Default` when the
///   connection opens, handed to both scope calls, dropped with the connection.
///
/// # Errors
/// - `InvalidInput` when the tenant's placement cannot be served (unknown server, bad name).
/// - `Unavailable` when the backend cannot be reached; the engine retries the checkout with
///   another connection while the acquire timeout allows.
pub trait TenantConnector: fmt::Debug + Send + Sync + 'static {
    /// The `bb8` manager of one pool.
    type Manager: ManageConnection<Error: Into<Error>>;

    /// State kept with each pooled connection for the scope calls; `()` when none is needed.
    type Session: Default + Send + Sync + 'static;

    /// The pool that serves `tenant`.
    fn pool_key(&self, tenant: &Tenant) -> Result<PoolKey>;

    /// The manager of a new pool for `key`, first needed by `tenant`.
    fn manager(
        &self,
        tenant: &Tenant,
        key: &PoolKey,
    ) -> impl Future<Output = Result<Self::Manager>> + Send;

    /// Sets `tenant`'s scope on a connection of a shared pool, first clearing the scope of
    /// `carried` (and all it left) when the connection still carries one.
    fn apply_scope(
        &self,
        conn: &mut ConnectionOf<Self>,
        session: &mut Self::Session,
        tenant: &Tenant,
        carried: Option<TenantId>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Whether a returned connection of a shared pool may keep its tenant's scope for that
    /// tenant's next checkout; decided without I/O. The default: never.
    fn keep_scope(&self, conn: &mut ConnectionOf<Self>, session: &mut Self::Session) -> bool {
        let _ = (conn, session);
        false
    }

    /// Clears any tenant's scope from a connection of a shared pool.
    fn reset_scope(
        &self,
        conn: &mut ConnectionOf<Self>,
        session: &mut Self::Session,
    ) -> impl Future<Output = Result<()>> + Send;
}
