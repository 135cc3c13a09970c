//! The expected shape of a migration version: the host's migrations up to that version applied
//! to an empty schema of a scratch database, then put behind the wall exactly as the migrator
//! does after each run. The scratch database is created for one check, on the tenants' own
//! server (so the catalogue prints definitions as that server's version does), and dropped at
//! the end; no tenant's storage is written to.

use std::collections::BTreeMap;

use sqlx::{Connection, PgConnection};
use tenant_manager_core::{Entity, Error, Isolation, Result, ServerId, TenantId};

use super::snapshot::{Normalise, Snapshot, snapshot};
use crate::ident::{Ident, quote_literal};
use crate::pg::{self, SqlxResultExt, map_migrate};
use crate::storage::TenantStorage;
use crate::wall::{self, Guard};

/// Comment of a scratch database, so an operator can tell one left by a crashed check.
pub(crate) const SCRATCH_MARKER: &str = "tenant-manager:drift-scratch";

/// How a tenant schema's tables are guarded after its migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Walled {
    /// Not behind the wall (database isolation, or a storage without an app login).
    No,
    /// Behind the wall as one schema tenant's (the tenant id is a constant of each policy).
    Tenant,
    /// Behind the wall as shared tables (each row's `tenant_id`).
    Column,
}

/// Which expected schema a tenant's storage is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Shape {
    /// The migration set: the shared one, or the isolated one.
    pub(crate) shared: bool,
    /// The version recorded for the storage.
    pub(crate) version: i64,
    /// The wall's decoration.
    pub(crate) walled: Walled,
}

impl Shape {
    /// The shape of a storage of `isolation` at `version`.
    pub(crate) fn of(storage: &TenantStorage, isolation: Isolation, version: i64) -> Result<Self> {
        let wall = storage.wall()?.is_some();
        let walled = match isolation {
            Isolation::Database => Walled::No,
            Isolation::Schema if wall => Walled::Tenant,
            Isolation::Shared if wall => Walled::Column,
            Isolation::Schema | Isolation::Shared => Walled::No,
        };
        Ok(Self {
            shared: isolation == Isolation::Shared,
            version,
            walled,
        })
    }

    fn schema(self) -> Result<Ident> {
        let set = if self.shared { "shared" } else { "isolated" };
        let walled = match self.walled {
            Walled::No => "n",
            Walled::Tenant => "t",
            Walled::Column => "c",
        };
        Ident::new(
            &format!("drift_{set}_{}_{walled}", self.version.max(0)),
            "schema",
        )
    }
}

/// The tenant id the expected schema of a walled tenant schema is built for; snapshots replace
/// it, like each real tenant's id, by a placeholder.
pub(crate) fn placeholder_tenant() -> TenantId {
    TenantId::from_uuid(uuid::Uuid::nil())
}

/// The expected snapshot of every shape, built in a scratch database on `server` that is
/// dropped before returning.
pub(crate) async fn build(
    storage: &TenantStorage,
    server: &ServerId,
    shapes: &[Shape],
) -> Result<BTreeMap<Shape, Snapshot>> {
    let naming = &storage.settings.config.naming;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let name = Ident::new(
        &naming.infra(&format!("drift_{}", &suffix[..12])),
        "scratch_database",
    )?;
    let mut admin = storage.connect_maintenance(server).await?;
    let created = async {
        pg::create_database(&mut admin, &name, None, None).await?;
        pg::ddl(
            &mut admin,
            format!(
                "COMMENT ON DATABASE {name} IS {}; REVOKE ALL ON DATABASE {name} FROM PUBLIC",
                quote_literal(SCRATCH_MARKER)
            ),
        )
        .await
    }
    .await;
    let built = match created {
        Ok(()) => match storage.connect(server, &name).await {
            Ok(mut conn) => {
                let built = build_in(storage, &mut conn, shapes).await;
                pg::close(conn).await;
                built
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let dropped = pg::ddl(
        &mut admin,
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await;
    pg::close(admin).await;
    if let Err(e) = &dropped {
        tracing::warn!(database = name.as_str(), error = %e, "cannot drop the drift check's scratch database");
    }
    built
}

async fn build_in(
    storage: &TenantStorage,
    conn: &mut PgConnection,
    shapes: &[Shape],
) -> Result<BTreeMap<Shape, Snapshot>> {
    let wall = storage.wall()?;
    if shapes.iter().any(|s| s.walled != Walled::No) {
        let wall = wall.ok_or_else(|| Error::internal("a walled shape without a wall"))?;
        wall::ensure_roles(conn, wall).await?;
        let mut tx = conn.begin().await.map_db(Entity::Record)?;
        wall::install(&mut tx, wall).await?;
        tx.commit().await.map_db(Entity::Record)?;
    }
    let mut built = BTreeMap::new();
    for shape in shapes {
        let migrator = storage
            .migrations
            .migrator(if shape.shared {
                Isolation::Shared
            } else {
                Isolation::Database
            })
            .ok_or_else(|| Error::invalid("isolation", "no migrations for this isolation mode"))?;
        let schema = shape.schema()?;
        pg::ddl(conn, format!("CREATE SCHEMA {schema}")).await?;
        set_search_path(conn, Some(&schema)).await?;
        let migrated = migrator
            .run_direct(Some(shape.version), &mut *conn, false)
            .await
            .map_err(map_migrate);
        set_search_path(conn, None).await?;
        migrated?;
        let guard = match shape.walled {
            Walled::No => None,
            Walled::Tenant => Some(Guard::Tenant(placeholder_tenant())),
            Walled::Column => Some(Guard::Column),
        };
        if let (Some(guard), Some(wall)) = (guard, wall) {
            let mut tx = conn.begin().await.map_db(Entity::Record)?;
            wall::secure_schema(&mut tx, &schema, guard, wall, "tenant_migrations").await?;
            tx.commit().await.map_db(Entity::Record)?;
        }
        let normalise = Normalise {
            tenant: (shape.walled == Walled::Tenant).then(placeholder_tenant),
        };
        let snap = snapshot(conn, &schema, normalise)
            .await?
            .ok_or_else(|| Error::internal("the scratch schema vanished"))?;
        built.insert(*shape, snap);
    }
    Ok(built)
}

/// Sets (or resets) the session's `search_path`; the value is bound, never spliced.
async fn set_search_path(conn: &mut PgConnection, schema: Option<&Ident>) -> Result<()> {
    sqlx::query("SELECT set_config('search_path', coalesce($1, '\"$user\", public'), false)")
        .bind(schema.map(Ident::quoted))
        .execute(conn)
        .await
        .map_db(Entity::Record)?;
    Ok(())
}
