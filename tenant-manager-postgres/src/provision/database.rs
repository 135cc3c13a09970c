//! Database isolation: a login role and a database owned by it, closed to everyone else.

use tenant_manager_core::{Entity, Error, Result, Tenant};

use super::template;
use crate::credentials::TenantCredentials;
use crate::ident::{Ident, quote_literal};
use crate::pg::{self, Login, Object};
use crate::storage::{Target, TenantStorage};

/// Gives a tenant database to its role and closes it to everyone else (`PUBLIC` loses
/// `CONNECT`), marking it as the tenant's.
pub(crate) async fn secure(
    conn: &mut sqlx::PgConnection,
    db: &Ident,
    role: &Ident,
    marker: &str,
) -> Result<()> {
    pg::ddl(
        conn,
        format!(
            "ALTER DATABASE {db} OWNER TO {role}; \
             COMMENT ON DATABASE {db} IS {}; \
             REVOKE ALL ON DATABASE {db} FROM PUBLIC; \
             GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role}",
            quote_literal(marker)
        ),
    )
    .await
}

/// Creates (or completes) the role and database; returns the template used, if the database
/// was created from one by this call.
pub(crate) async fn create(
    storage: &TenantStorage,
    credentials: &dyn TenantCredentials,
    tenant: &Tenant,
    target: &Target,
) -> Result<Option<String>> {
    let role = target.role()?;
    let db = &target.database;
    let marker = pg::tenant_marker(tenant.id);
    let verifier = pg::scram_verifier(&credentials.password(tenant).await?);
    let mut conn = storage.connect_maintenance(&target.server).await?;
    let created = async {
        pg::ensure_role(&mut conn, role, &marker, Login::Password(&verifier)).await?;
        let mut used_template = None;
        match pg::describe(&mut conn, Object::Database, db).await? {
            Some(found) => {
                if !found.belongs_to(role, &marker) {
                    return Err(Error::conflict(
                        Entity::Tenant,
                        "placement.database",
                        format!("database {} exists and is not this tenant's", db.as_str()),
                    ));
                }
            }
            None => {
                let tpl = if storage.settings.config.use_template {
                    Some(template::ensure_template(storage, &target.server).await?)
                } else {
                    None
                };
                if pg::create_database(&mut conn, db, Some(role), tpl.as_ref()).await? {
                    used_template = tpl.map(|t| t.as_str().to_owned());
                }
            }
        }
        secure(&mut conn, db, role, &marker).await?;
        Ok(used_template)
    }
    .await;
    pg::close(conn).await;
    let used_template = created?;

    let mut conn = storage.connect(&target.server, db).await?;
    let adopted = template::adopt_copy(storage, &mut conn, role).await;
    pg::close(conn).await;
    adopted?;
    Ok(used_template)
}

/// Drops the database (ending its sessions) and the role. Missing objects are fine; objects
/// not marked as this tenant's are left alone (`Conflict`).
pub(crate) async fn drop(storage: &TenantStorage, tenant: &Tenant, target: &Target) -> Result<()> {
    let role = target.role()?;
    let db = &target.database;
    let marker = pg::tenant_marker(tenant.id);
    let mut conn = storage.connect_maintenance(&target.server).await?;
    let dropped = async {
        if let Some(found) = pg::describe(&mut conn, Object::Database, db).await? {
            if !found.belongs_to(role, &marker) {
                return Err(Error::conflict(
                    Entity::Tenant,
                    "placement.database",
                    format!("database {} is not this tenant's", db.as_str()),
                ));
            }
            pg::ddl(
                &mut conn,
                format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            )
            .await?;
        }
        pg::drop_role(&mut conn, role, &marker).await
    }
    .await;
    pg::close(conn).await;
    dropped
}
