//! `WallAdmin`: the wall across a deployment's databases (upgrade, key rotation, checks).

use std::time::Duration;

use serde::Serialize;
use sqlx::{Connection, PgConnection};
use tenant_manager_core::{Entity, Error, Result, ServerId, TenantId};

use super::databases::{Database, databases};
use super::grants;
use super::install::{add_key, ensure_roles, grant_owner_role, install, installed};
use super::secure::{Guard, secure_schema};
use crate::credentials::WallKeys;
use crate::ident::Ident;
use crate::pg::{self, Object, SqlxResultExt};
use crate::storage::{TenantStorage, WallContext};

/// What a [`WallAdmin`] run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WallReport {
    /// Databases of schema or shared tenants visited.
    pub databases: usize,
    /// Databases where the wall was installed by this run.
    pub installed: usize,
    /// Schema tenants put behind the wall (grants and policies checked, fixed where needed).
    pub schema_tenants: usize,
    /// Databases whose shared tables were put behind the wall.
    pub shared_databases: usize,
    /// Key rows added, retired or purged.
    pub keys_changed: usize,
}

/// The wall across every database of a deployment's schema and shared tenants, as the
/// registry lists them. Built over the same [`TenantStorage`] as the provisioner, with its
/// app login and wall key.
#[derive(Debug, Clone)]
pub struct WallAdmin {
    pub(super) storage: TenantStorage,
}

impl WallAdmin {
    /// The wall of `storage`'s deployment.
    ///
    /// # Errors
    /// `InvalidInput` when the storage has no app login (no wall) or no wall key.
    pub fn new(storage: TenantStorage) -> Result<Self> {
        if storage.wall()?.is_none() {
            return Err(Error::invalid(
                "app_login",
                "the wall guards the app login's pools: the storage has no app login",
            ));
        }
        Ok(Self { storage })
    }

    pub(super) fn context(&self) -> Result<WallContext<'_>> {
        self.storage
            .wall()?
            .ok_or_else(|| Error::internal("wall admin without a wall"))
    }

    /// Puts every existing schema and shared tenant behind the wall: the upgrade of a
    /// deployment created before it (`tenant-cli wall migrate`). Per database: the wall's
    /// owner, schemas, tables, functions and this key; per schema tenant, in a transaction of
    /// its own: the app login's membership of the tenant role revoked, its privileges granted
    /// directly, every table walled; per shared database: the shared owner's grants and every
    /// shared table walled (policies on `app.tenant_id` replaced). Every step looks before it
    /// changes, so a rerun after a crash finishes the work and a run over a walled deployment
    /// changes nothing.
    ///
    /// # Errors
    /// As the statements; `InvalidInput` naming an object that bypasses the wall and cannot be
    /// fixed automatically (a view without `security_invoker`, a `SECURITY DEFINER` function,
    /// another permissive policy, ...). Tenants done before the error stay done.
    pub async fn install(&self) -> Result<WallReport> {
        let wall = self.context()?;
        let mut report = WallReport::default();
        for ((server, database), found) in databases(&self.storage).await? {
            let database = Ident::new(&database, "placement.database")?;
            let Some(mut conn) = self.storage.connect_existing(&server, &database).await? else {
                continue;
            };
            let done = self
                .install_database(&mut conn, wall, &database, &found, &mut report)
                .await;
            pg::close(conn).await;
            done?;
            report.databases += 1;
        }
        Ok(report)
    }

    async fn install_database(
        &self,
        conn: &mut PgConnection,
        wall: WallContext<'_>,
        database: &Ident,
        found: &Database,
        report: &mut WallReport,
    ) -> Result<()> {
        grants::ensure_app_login_role(conn, wall.app).await?;
        ensure_roles(conn, wall).await?;
        let mut tx = conn.begin().await.map_db(Entity::Tenant)?;
        pg::lock_shared_database(&mut tx, database).await?;
        if !installed(&mut tx).await? {
            report.installed += 1;
        }
        install(&mut tx, wall).await?;
        tx.commit().await.map_db(Entity::Tenant)?;
        for (tenant, role, schema) in &found.schemas {
            let mut tx = conn.begin().await.map_db(Entity::Tenant)?;
            pg::lock_shared_database(&mut tx, database).await?;
            if !pg::exists(&mut tx, Object::Schema, schema).await? {
                continue;
            }
            wall_schema_tenant(&mut tx, wall, role, schema, database, *tenant).await?;
            tx.commit().await.map_db(Entity::Tenant)?;
            report.schema_tenants += 1;
        }
        if found.shared {
            let settings = &self.storage.settings;
            let mut tx = conn.begin().await.map_db(Entity::Tenant)?;
            pg::lock_shared_database(&mut tx, database).await?;
            grants::grant_shared(&mut tx, &self.storage, database, wall.app).await?;
            grant_owner_role(&mut tx, wall, &settings.shared_owner).await?;
            secure_schema(
                &mut tx,
                &settings.shared_schema,
                Guard::Column,
                wall,
                "shared_schema",
            )
            .await?;
            tx.commit().await.map_db(Entity::Tenant)?;
            report.shared_databases += 1;
        }
        Ok(())
    }

    /// Runs `work` on every walled database (in a transaction each), counting what it changed.
    async fn each_database<F>(&self, mut work: F) -> Result<WallReport>
    where
        F: for<'c> FnMut(&'c mut PgConnection) -> futures::future::BoxFuture<'c, Result<usize>>,
    {
        let mut report = WallReport::default();
        for (server, database) in databases(&self.storage).await?.into_keys() {
            let database = Ident::new(&database, "placement.database")?;
            let Some(mut conn) = self.storage.connect_existing(&server, &database).await? else {
                continue;
            };
            let done = async {
                let mut tx = conn.begin().await.map_db(Entity::Tenant)?;
                if !installed(&mut tx).await? {
                    return Ok(0);
                }
                let changed = work(&mut tx).await?;
                tx.commit().await.map_db(Entity::Tenant)?;
                Ok::<_, Error>(changed)
            }
            .await;
            pg::close(conn).await;
            report.keys_changed += done?;
            report.databases += 1;
        }
        Ok(report)
    }

    /// Adds `keys` to every walled database (valid from now). Step 1 of a rotation: then roll
    /// the instances to sign with it, then [`retire_key`](Self::retire_key) the old one.
    ///
    /// # Errors
    /// `Conflict` on `wall_key_id` when a database holds another key under that id.
    pub async fn add_key(&self, keys: &WallKeys) -> Result<WallReport> {
        self.each_database(|conn| {
            let keys = keys.clone();
            Box::pin(async move { add_key(conn, &keys).await.map(usize::from) })
        })
        .await
    }

    /// Makes key `key_id` expire after `grace` in every walled database (instances still
    /// signing with it keep working until then). Refuses to retire the key this admin signs
    /// with. A verdict already given stays on its session: a pooled connection its tenant
    /// returned keeps serving that tenant for up to the pools' affinity window
    /// (`PoolConfig::scope_affinity`) before its next checkout proves the tenant again.
    ///
    /// # Errors
    /// `InvalidInput` on `key_id` for the signing key.
    pub async fn retire_key(&self, key_id: i32, grace: Duration) -> Result<WallReport> {
        if key_id == self.context()?.keys.key_id() {
            return Err(Error::invalid(
                "key_id",
                "is the key this deployment signs with: add and roll out a new key first",
            ));
        }
        let grace_us = i64::try_from(grace.as_micros()).unwrap_or(i64::MAX);
        self.each_database(|conn| {
            Box::pin(async move {
                let changed = sqlx::query(
                    "UPDATE wall_private.keys \
                     SET valid_until = greatest(now() + make_interval(secs => $2::float8 / 1e6), \
                                                valid_from + interval '1 microsecond') \
                     WHERE key_id = $1 AND (valid_until IS NULL \
                           OR valid_until > now() + make_interval(secs => $2::float8 / 1e6))",
                )
                .bind(key_id)
                .bind(grace_us)
                .execute(&mut *conn)
                .await
                .map_db(Entity::Tenant)?;
                Ok(usize::try_from(changed.rows_affected()).unwrap_or(usize::MAX))
            })
        })
        .await
    }

    /// Deletes expired keys from every walled database.
    pub async fn purge_keys(&self) -> Result<WallReport> {
        self.each_database(|conn| {
            Box::pin(async move {
                let changed =
                    sqlx::query("DELETE FROM wall_private.keys WHERE valid_until <= now()")
                        .execute(&mut *conn)
                        .await
                        .map_db(Entity::Tenant)?;
                Ok(usize::try_from(changed.rows_affected()).unwrap_or(usize::MAX))
            })
        })
        .await
    }
}

/// Puts one schema tenant behind the wall: the app login's privileges granted directly (its
/// membership of the tenant role revoked), the tenant role's grants on the wall, every table
/// walled. Run as a superuser in a transaction holding the database's lock.
pub(crate) async fn wall_schema_tenant(
    conn: &mut PgConnection,
    wall: WallContext<'_>,
    role: &Ident,
    schema: &Ident,
    database: &Ident,
    tenant: TenantId,
) -> Result<usize> {
    grants::grant_schema_direct(conn, wall.app, role, schema, database).await?;
    grant_owner_role(conn, wall, role).await?;
    secure_schema(conn, schema, Guard::Tenant(tenant), wall, "schema").await
}

/// Installs the wall in `database` on `server` (own connection and transaction), with the
/// grants `role` needs to own walled tables: for a scratch database that receives a walled
/// schema's dump.
pub(crate) async fn install_in(
    storage: &TenantStorage,
    server: &ServerId,
    database: &Ident,
    role: &Ident,
) -> Result<()> {
    let Some(wall) = storage.wall()? else {
        return Ok(());
    };
    let mut conn = storage.connect(server, database).await?;
    let done = async {
        grants::ensure_app_login_role(&mut conn, wall.app).await?;
        ensure_roles(&mut conn, wall).await?;
        let mut tx = conn.begin().await.map_db(Entity::Tenant)?;
        install(&mut tx, wall).await?;
        grant_owner_role(&mut tx, wall, role).await?;
        tx.commit().await.map_db(Entity::Tenant)
    }
    .await;
    pg::close(conn).await;
    done
}
