//! Tenant affinity in shared pools: choosing an idle connection that still carries the
//! requesting tenant's scope.
//!
//! `bb8` hands out its idle connections in its own (LIFO) order, so the engine looks at a
//! few of them: it takes them out one by one without waiting, keeps the first that carries
//! the tenant's scope (kept within the affinity window), and puts the others straight back.
//! Without one, it takes a clean connection if it saw one (setting a scope is cheaper than
//! switching one), else the least recently returned it saw (the other tenants' most recent
//! connections keep their scopes).

use std::sync::Arc;

use super::TenantConnector;
use super::inner::{Entry, GetError, Inner, PoolConn};
use crate::domain::TenantId;

/// How many idle connections a checkout looks at beyond the first.
const SCAN: usize = 8;

/// Whether `conn` may go to `tenant` with no statement: it carries `tenant`'s scope, kept no
/// earlier than `kept_since_ms` (the engine's clock).
pub(crate) fn carries<C: TenantConnector>(
    conn: &PoolConn<C>,
    tenant: TenantId,
    kept_since_ms: u64,
) -> bool {
    conn.scoped == Some(tenant) && conn.kept_at_ms >= kept_since_ms
}

/// An idle connection of a shared pool for `tenant`, preferring one that [`carries`] its
/// scope; `None` when the pool has no idle connection right now.
pub(crate) fn pick<C: TenantConnector>(
    entry: &Entry<C>,
    tenant: TenantId,
    kept_since_ms: u64,
) -> Option<Result<PoolConn<C>, GetError>> {
    let first = match entry.try_get()? {
        Ok(conn) => conn,
        Err(err) => return Some(Err(err)),
    };
    if carries(&first, tenant, kept_since_ms) {
        return Some(Ok(first));
    }
    let mut seen = Vec::with_capacity(SCAN + 1);
    seen.push(first);
    while seen.len() <= SCAN && entry.idle_now() > 0 {
        let Some(Ok(conn)) = entry.try_get() else {
            break;
        };
        if carries(&conn, tenant, kept_since_ms) {
            // The others go back to the idle queue as they are dropped here.
            return Some(Ok(conn));
        }
        seen.push(conn);
    }
    let chosen = match seen.iter().position(|conn| conn.scoped.is_none()) {
        Some(clean) => seen.swap_remove(clean),
        None => seen.pop()?,
    };
    Some(Ok(chosen))
}

/// Resets `conn`'s scope (within the acquire timeout); a connection whose reset fails or
/// times out is marked broken, so it is discarded when it goes back.
pub(crate) async fn reset<C: TenantConnector>(inner: &Inner<C>, conn: &mut PoolConn<C>) {
    let pooled = &mut **conn;
    let reset = tokio::time::timeout(
        inner.config.acquire_timeout,
        inner
            .connector
            .reset_scope(&mut pooled.conn, &mut pooled.session),
    )
    .await;
    match reset {
        Ok(Ok(())) => pooled.scoped = None,
        _ => pooled.broken = true,
    }
}

/// Resets, on spawned tasks, the idle connections of a shared pool that have kept a scope
/// since before `kept_since_ms`: what a tenant left on a session (advisory locks, listeners,
/// temporary tables) outlives its checkout by at most the affinity window plus one reaper
/// pass. Does nothing outside a tokio runtime.
pub(crate) fn sweep<C: TenantConnector>(
    inner: &Arc<Inner<C>>,
    entry: &Entry<C>,
    kept_since_ms: u64,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let mut fresh = Vec::new();
    for _ in 0..entry.idle_now() {
        let Some(Ok(mut conn)) = entry.try_get() else {
            break;
        };
        if conn.scoped.is_some() && conn.kept_at_ms < kept_since_ms {
            let inner = Arc::clone(inner);
            runtime.spawn(async move { reset(&inner, &mut conn).await });
        } else {
            fresh.push(conn);
        }
    }
    // Back to the idle queue only now, so the loop does not take them again.
    drop(fresh);
}
