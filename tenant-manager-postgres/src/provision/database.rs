//! Database isolation: a login role and a database owned by it, closed to everyone else.

use tenant_manager_core::{Entity, Error, Result, Tenant};

use super::admin::{self, Login};
use super::{scram, template};
use crate::credentials::TenantCredentials;
use crate::ident::{Ident, quote_literal};
use crate::storage::{Target, TenantStorage};

pub(crate) fn role_of(target: &Target) -> Result<&Ident> {
    target
        .role
        .as_ref()
        .ok_or_else(|| Error::internal("database isolation without a role"))
}

/// Gives a tenant database to its role and closes it to everyone else (`PUBLIC` loses
/// `CONNECT`), marking it as the tenant's.
pub(crate) async fn secure(
    conn: &mut sqlx::PgConnection,
    db: &Ident,
    role: &Ident,
    marker: &str,
) -> Result<()> {
    admin::ddl(
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
    let role = role_of(target)?;
    let db = &target.database;
    let marker = admin::tenant_marker(tenant.id);
    let verifier = scram::verifier(&credentials.password(tenant).await?)?;
    let mut conn = storage.connect_maintenance(&target.server).await?;
    let created = async {
        admin::ensure_role(&mut conn, role, &marker, Login::Password(&verifier)).await?;
        let mut used_template = None;
        match admin::database_info(&mut conn, db).await? {
            Some((owner, comment)) => {
                if owner != role.as_str() && comment.as_deref() != Some(marker.as_str()) {
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
                if admin::create_database(&mut conn, db, Some(role), tpl.as_ref()).await? {
                    used_template = tpl.map(|t| t.as_str().to_owned());
                }
            }
        }
        secure(&mut conn, db, role, &marker).await?;
        Ok(used_template)
    }
    .await;
    admin::close(conn).await;
    let used_template = created?;

    let mut conn = storage.connect(&target.server, db).await?;
    let adopted = template::adopt_copy(storage, &mut conn, role).await;
    admin::close(conn).await;
    adopted?;
    Ok(used_template)
}

/// Drops the database (ending its sessions) and the role. Missing objects are fine; objects
/// not marked as this tenant's are left alone (`Conflict`).
pub(crate) async fn drop(storage: &TenantStorage, tenant: &Tenant, target: &Target) -> Result<()> {
    let role = role_of(target)?;
    let db = &target.database;
    let marker = admin::tenant_marker(tenant.id);
    let mut conn = storage.connect_maintenance(&target.server).await?;
    let dropped = async {
        if let Some((owner, comment)) = admin::database_info(&mut conn, db).await? {
            if owner != role.as_str() && comment.as_deref() != Some(marker.as_str()) {
                return Err(Error::conflict(
                    Entity::Tenant,
                    "placement.database",
                    format!("database {} is not this tenant's", db.as_str()),
                ));
            }
            admin::ddl(
                &mut conn,
                format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            )
            .await?;
        }
        admin::drop_role(&mut conn, role, &marker).await
    }
    .await;
    admin::close(conn).await;
    dropped
}
