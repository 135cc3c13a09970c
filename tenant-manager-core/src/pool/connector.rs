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
    /// A pool of the tenant alone on another route than [`PoolKey::Tenant`]'s (a read replica,
    /// or the primary read-only), named by the connector. Like a tenant pool, each of its open
    /// connections holds a permit of the tenant's cap: the cap counts every route together.
    TenantRoute(Arc<TenantRoute>),
}

/// The tenant and route of a [`PoolKey::TenantRoute`] (boxed behind an `Arc`, so a key stays
/// two words and a tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantRoute {
    /// The tenant.
    pub tenant: TenantId,
    /// The connector's name of the route (for instance `r0` or `primary`).
    pub route: Arc<str>,
}

impl PoolKey {
    /// The pool of `tenant` alone on `route`.
    pub fn tenant_route(tenant: TenantId, route: impl Into<Arc<str>>) -> Self {
        PoolKey::TenantRoute(Arc::new(TenantRoute {
            tenant,
            route: route.into(),
        }))
    }
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
            PoolKey::TenantRoute(routed) => Some(routed.tenant),
            PoolKey::Shared(_) => None,
        }
    }
}

impl fmt::Display for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolKey::Tenant(id) => write!(f, "tenant:{id}"),
            PoolKey::Shared(name) => write!(f, "shared:{name}"),
            PoolKey::TenantRoute(routed) => write!(f, "tenant:{}@{}", routed.tenant, routed.route),
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
/// - [`read_key`](Self::read_key) says which pool serves `tenant`'s read-only checkouts
///   ([`TenantPools::acquire_read`](super::TenantPools::acquire_read)): a key of its own, never
///   the read-write pool's, whose connections refuse writes (a replica, or the primary with
///   the session read-only), scoped to the tenant exactly as its read-write checkouts. A
///   [`PoolKey::Tenant`] or [`PoolKey::TenantRoute`] key must be the tenant's own. The default
///   refuses: a connector without a read-only route has none.
/// - [`read_unavailable`](Self::read_unavailable) is told that a read checkout on `key` failed
///   because its backend could not be reached; answering `true` (the connector now routes
///   elsewhere) makes the engine ask [`read_key`](Self::read_key) once more and retry there.
///
/// [`reset_scope`]: Self::reset_scope
/// - [`close`](Self::close) closes a connection the engine discards (idle, broken, evicted,
///   its pool closed, or opened for a checkout that gave up), and resolves only once the
///   backend's session is gone, as far as the client can tell: the engine gives the
///   connection's permits and its slot of a [`ClusterBudget`](super::ClusterBudget) back only
///   then, so a session still exiting is never counted next to its successor. The engine
///   bounds the wait ([`CLOSE_TIMEOUT`](super::CLOSE_TIMEOUT)); it runs it on a spawned task
///   unless it completes at its first poll, and outside a runtime simply drops the connection.
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

    /// The pool of `tenant`'s read-only checkouts.
    ///
    /// # Errors
    /// `InvalidInput` on field `read_route` by default: the connector has no read-only route.
    fn read_key(&self, tenant: &Tenant) -> Result<PoolKey> {
        let _ = tenant;
        Err(Error::invalid(
            "read_route",
            "this connector has no read-only route",
        ))
    }

    /// A read checkout on `key` could not reach its backend; `true` when
    /// [`read_key`](Self::read_key) now answers another key. The default: `false`.
    fn read_unavailable(&self, key: &PoolKey, error: &Error) -> bool {
        let _ = (key, error);
        false
    }

    /// Closes `conn`, resolving once its backend session has ended (see the contract).
    fn close(&self, conn: ConnectionOf<Self>) -> impl Future<Output = ()> + Send;

    /// Clears any tenant's scope from a connection of a shared pool.
    fn reset_scope(
        &self,
        conn: &mut ConnectionOf<Self>,
        session: &mut Self::Session,
    ) -> impl Future<Output = Result<()>> + Send;
}
