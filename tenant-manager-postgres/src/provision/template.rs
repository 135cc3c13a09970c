//! Template databases: the fast path of database isolation. A template is migrated once per
//! version of the migration set; each new tenant database is a copy (`CREATE DATABASE ...
//! TEMPLATE`), and only migrations the template lacks run per tenant.

use sqlx::PgConnection;
use tenant_manager_core::{Entity, Result, ServerId};

use crate::ident::Ident;
use crate::pg::{self, Hold, Login, Object, SqlxResultExt, lock_key};
use crate::storage::TenantStorage;

/// Marker of the role owning templates' objects.
pub(crate) const TEMPLATE_OWNER_MARKER: &str = "tenant-manager:template-owner";

/// Name of the template for the current migration set.
pub(crate) fn template_name(storage: &TenantStorage) -> Result<Ident> {
    let prefix = &storage.settings.config.template_prefix;
    Ident::new(
        &format!("{prefix}{}", storage.migrations.isolated_digest()),
        "template_prefix",
    )
}

/// The template of the current migration set on `server`, built if missing. Concurrent callers
/// wait on a server-wide advisory lock; a crash while building leaves only a `_b` database,
/// rebuilt by the next call.
pub(crate) async fn ensure_template(storage: &TenantStorage, server: &ServerId) -> Result<Ident> {
    let name = template_name(storage)?;
    let mut conn = storage.connect_maintenance(server).await?;
    let result = ensure_on(storage, server, &mut conn, &name).await;
    // Closing the session also releases its advisory lock.
    pg::close(conn).await;
    result.map(|()| name)
}

async fn ensure_on(
    storage: &TenantStorage,
    server: &ServerId,
    conn: &mut PgConnection,
    name: &Ident,
) -> Result<()> {
    if pg::exists(conn, Object::Database, name).await? {
        return Ok(());
    }
    let key = lock_key("template", &[server.as_str(), name.as_str()]);
    pg::acquire(conn, key, Hold::Session).await?;
    if pg::exists(conn, Object::Database, name).await? {
        return Ok(());
    }
    let building = Ident::new(&format!("{}_b", name.as_str()), "template_prefix")?;
    pg::ddl(
        conn,
        format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
    )
    .await?;
    let owner = &storage.settings.template_owner;
    pg::ensure_role(conn, owner, TEMPLATE_OWNER_MARKER, Login::None).await?;
    pg::create_database(conn, &building, None, None).await?;

    let mut tpl = storage.connect(server, &building).await?;
    let migrated = migrate_template(storage, &mut tpl, owner).await;
    pg::close(tpl).await;
    migrated?;

    pg::ddl(
        conn,
        format!(
            "ALTER DATABASE {building} RENAME TO {name}; \
             ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false; \
             COMMENT ON DATABASE {name} IS 'tenant-manager:template'"
        ),
    )
    .await?;
    metrics::counter!("tenant_templates_built_total").increment(1);
    Ok(())
}

/// Runs the isolated migration set in the template as the template owner, in one transaction
/// (migration by migration when one is marked `-- no-transaction`).
async fn migrate_template(
    storage: &TenantStorage,
    conn: &mut PgConnection,
    owner: &Ident,
) -> Result<()> {
    pg::ddl(
        conn,
        format!("GRANT USAGE, CREATE ON SCHEMA public TO {owner}"),
    )
    .await?;
    let migrator = storage
        .migrations
        .migrator(tenant_manager_core::Isolation::Database)
        .ok_or_else(|| tenant_manager_core::Error::internal("no isolated migration set"))?;
    crate::migrate::apply_to_template(conn, owner, migrator).await
}

/// Hands a copy of the template over to the tenant role: objects the template owner owns go
/// to `role`, and the owner's grants in the copy are dropped.
pub(crate) async fn adopt_copy(
    storage: &TenantStorage,
    conn: &mut PgConnection,
    role: &Ident,
) -> Result<()> {
    let owner = &storage.settings.template_owner;
    if pg::role_exists(conn, owner).await? {
        pg::ddl(
            conn,
            format!("REASSIGN OWNED BY {owner} TO {role}; DROP OWNED BY {owner}"),
        )
        .await?;
    }
    Ok(())
}

/// Drops the template databases of `server` (all, or all but the current one), returning
/// their names.
pub(crate) async fn drop_templates(
    storage: &TenantStorage,
    server: &ServerId,
    keep_current: bool,
) -> Result<Vec<String>> {
    let current = template_name(storage)?;
    let mut conn = storage.connect_maintenance(server).await?;
    let result = async {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database \
             WHERE starts_with(datname, $1) \
               AND shobj_description(oid, 'pg_database') IS NOT DISTINCT FROM 'tenant-manager:template' \
             ORDER BY 1",
        )
        .bind(&storage.settings.config.template_prefix)
        .fetch_all(&mut conn)
        .await
        .map_db(Entity::Tenant)?;
        let mut dropped = Vec::new();
        for name in names {
            if keep_current && name == current.as_str() {
                continue;
            }
            let ident = Ident::new(&name, "template")?;
            pg::ddl(&mut conn, format!("DROP DATABASE IF EXISTS {ident} WITH (FORCE)")).await?;
            dropped.push(name);
        }
        Ok(dropped)
    }
    .await;
    pg::close(conn).await;
    result
}
