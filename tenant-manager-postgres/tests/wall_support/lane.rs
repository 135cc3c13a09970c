//! Where an attack runs: a seat that is checked out for one tenant, then for the next on the
//! same connection. The engine's seat is a pool of the engine (size 1, so the next tenant
//! gets the same connection unless the reset discarded it); a raw seat is one app-login
//! connection on which the test does the engine's checkout SQL itself, its reset being the
//! engine's own text minus one defence.

use sqlx::{Connection, PgConnection, Row};
use tenant_manager_core::{Tenant, TenantConnection};
use tenant_manager_postgres::wall::{self, WallSession};
use tenant_manager_postgres::{PgTenantPools, quote_ident, quote_literal};

use super::world::World;
use crate::pool_support;

/// A defence of the engine's reset, for raw seats that go without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defence {
    /// `DISCARD TEMP`.
    DiscardTemp,
    /// The count of the session's prepared statements against the driver's cache.
    PreparedCheck,
    /// `UNLISTEN *`.
    Unlisten,
    /// `pg_advisory_unlock_all()`.
    AdvisoryUnlock,
}

impl Defence {
    /// The statement of the engine's reset it is (none: it is a check in Rust).
    fn statement(self) -> Option<&'static str> {
        match self {
            Defence::DiscardTemp => Some("DISCARD TEMP; "),
            Defence::PreparedCheck => None,
            Defence::Unlisten => Some("UNLISTEN *; "),
            Defence::AdvisoryUnlock => Some("SELECT pg_catalog.pg_advisory_unlock_all(); "),
        }
    }
}

enum Kind {
    Engine {
        pools: PgTenantPools,
        conn: Option<TenantConnection<PgConnection>>,
    },
    Raw {
        conn: PgConnection,
        without: Defence,
        session: Option<WallSession>,
        nonce: i64,
        entered: bool,
    },
}

pub struct Seat<'w> {
    world: &'w World,
    kind: Kind,
}

impl<'w> Seat<'w> {
    /// A seat of the engine: a pool of `size` connections.
    pub fn engine(world: &'w World, size: u32) -> Self {
        Self {
            world,
            kind: Kind::Engine {
                pools: world.pools(size),
                conn: None,
            },
        }
    }

    /// A raw app-login connection doing the engine's checkout SQL without `without`.
    pub async fn raw(world: &'w World, without: Defence) -> Self {
        Self {
            world,
            kind: Kind::Raw {
                conn: world.raw().await,
                without,
                session: None,
                nonce: 0,
                entered: false,
            },
        }
    }

    /// The seat for the off run of a reset-level defence, or the engine's.
    pub async fn for_mode(world: &'w World, mode: super::Mode, defence: Defence) -> Self {
        match mode {
            super::Mode::On => Self::engine(world, 1),
            super::Mode::Off => Self::raw(world, defence).await,
        }
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        match &mut self.kind {
            Kind::Engine { conn, .. } => conn.as_mut().expect("checked out"),
            Kind::Raw { conn, .. } => conn,
        }
    }

    pub async fn pid(&mut self) -> i32 {
        sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(self.conn())
            .await
            .expect("pid")
    }

    /// Returns the current checkout (the engine resets it), then checks the seat out for
    /// `tenant`.
    pub async fn enter(&mut self, tenant: &Tenant) {
        let world = self.world;
        match &mut self.kind {
            Kind::Engine { pools, conn } => {
                if let Some(old) = conn.take() {
                    drop(old);
                    pool_support::settle(pools).await;
                }
                *conn = Some(pools.acquire(tenant).await.expect("checkout"));
            }
            Kind::Raw {
                conn,
                without,
                session,
                nonce,
                entered,
            } => {
                if *entered && !reset(world, conn, *without).await {
                    // The engine discards such a connection.
                    let old = std::mem::replace(conn, world.raw().await);
                    let _ = old.close().await;
                    *session = None;
                    *nonce = 0;
                }
                let identity = match *session {
                    Some(identity) => identity,
                    None => *session.insert(wall::session_id(conn).await.expect("identity")),
                };
                *nonce += 1;
                checkout(world, conn, identity, *nonce, tenant).await;
                *entered = true;
            }
        }
    }

    /// Returns the checkout (the engine's reset runs) and closes the seat.
    pub async fn close(self) {
        match self.kind {
            Kind::Engine { pools, conn } => {
                drop(conn);
                pool_support::settle(&pools).await;
                pools.close_all();
            }
            Kind::Raw { conn, .. } => {
                let _ = conn.close().await;
            }
        }
    }
}

/// The engine's reset without `without`; false when the engine would discard the
/// connection (its prepared statements were changed by SQL).
async fn reset(world: &World, conn: &mut PgConnection, without: Defence) -> bool {
    let mut sql = world.reset_sql.clone();
    if let Some(statement) = without.statement() {
        assert!(
            sql.contains(statement),
            "the engine's reset has no {statement}"
        );
        sql = sql.replace(statement, "");
    }
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .expect("reset");
    let last = rows.last().expect("the prepared statement count");
    let (from_sql, protocol): (i64, i64) = (last.get(0), last.get(1));
    let cached = i64::try_from(conn.cached_statements_size()).expect("cache size");
    without == Defence::PreparedCheck || (from_sql == 0 && protocol == cached)
}

/// The engine's checkout SQL: `wall.enter()` with a proof for this backend, then
/// `app.tenant_id` and (schema tenants) `search_path`.
async fn checkout(
    world: &World,
    conn: &mut PgConnection,
    identity: WallSession,
    nonce: i64,
    tenant: &Tenant,
) {
    let proof = world
        .keys
        .sign(tenant.id, identity.pid, identity.backend_start_us, nonce)
        .expect("sign");
    let mut sql = format!(
        "SELECT wall.enter('{id}'::uuid, {nonce}, {key}, '{proof}'); \
         SELECT pg_catalog.set_config('app.tenant_id', '{id}', false)",
        id = tenant.id,
        key = world.keys.key_id(),
    );
    if let Some(schema) = tenant.placement.schema.as_deref() {
        sql.push_str(&format!(
            ", pg_catalog.set_config('search_path', {}, false)",
            quote_literal(&quote_ident(schema))
        ));
    }
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .expect("checkout");
    let entered: bool = rows.first().expect("enter's verdict").get(0);
    assert!(entered, "the wall refused the raw seat's proof");
}
