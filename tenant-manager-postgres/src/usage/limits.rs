//! [`PgRoleLimits`]: a plan's Postgres session limits on a tenant's login role.

use std::fmt;

use serde::Serialize;
use sqlx::PgConnection;
use tenant_manager_core::{DbLimits, Isolation, Result, Tenant};

use crate::ident::Ident;
use crate::pg;
use crate::storage::TenantStorage;

/// Writes a plan's [`DbLimits`] on the login role of a database-isolated tenant:
/// `ALTER ROLE … SET statement_timeout`, `SET work_mem` (or `RESET` when the plan sets none)
/// and `CONNECTION LIMIT` (`-1` when none). Postgres applies them to every session the role
/// opens from then on (`pg_db_role_setting`, `pg_roles.rolconnlimit`); open sessions keep
/// theirs until they reconnect.
///
/// Schema and shared tenants have no login of their own (their sessions are the app login's,
/// scoped by the wall), so role settings never reach their sessions: they are left alone
/// ([`RoleLimitsReport::applied`] is `false`).
#[derive(Clone)]
pub struct PgRoleLimits {
    storage: TenantStorage,
}

/// What [`PgRoleLimits::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RoleLimitsReport {
    /// Whether the tenant's role was altered (database isolation only).
    pub applied: bool,
    /// The role altered.
    pub role: Option<String>,
}

impl fmt::Debug for PgRoleLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgRoleLimits")
            .field("storage", &self.storage)
            .finish()
    }
}

impl PgRoleLimits {
    /// Limits on the roles of `storage`'s tenants.
    pub fn new(storage: TenantStorage) -> Self {
        Self { storage }
    }

    /// Sets `limits` on the tenant's login role, replacing what an earlier plan set.
    ///
    /// # Errors
    /// `InvalidInput` naming the limit out of range; `NotFound` when the role does not exist
    /// (the tenant is not provisioned); `Unavailable` when the server cannot be reached.
    pub async fn apply(&self, tenant: &Tenant, limits: &DbLimits) -> Result<RoleLimitsReport> {
        limits.validate()?;
        if tenant.isolation != Isolation::Database {
            return Ok(RoleLimitsReport {
                applied: false,
                role: None,
            });
        }
        let target = self.storage.target(tenant)?;
        let role = target.role()?.clone();
        let mut conn = self.storage.connect_maintenance(&target.server).await?;
        let done = alter(&mut conn, &role, limits).await;
        pg::close(conn).await;
        done?;
        Ok(RoleLimitsReport {
            applied: true,
            role: Some(role.as_str().to_owned()),
        })
    }
}

/// The statements for `limits`: only validated integers and a quoted identifier reach the SQL.
fn statements(role: &Ident, limits: &DbLimits) -> String {
    let setting = |name: &str, value: Option<String>| match value {
        Some(value) => format!("ALTER ROLE {role} SET {name} = {value}; "),
        None => format!("ALTER ROLE {role} RESET {name}; "),
    };
    let mut sql = setting(
        "statement_timeout",
        limits.statement_timeout_ms.map(|ms| ms.to_string()),
    );
    sql.push_str(&setting(
        "work_mem",
        limits.work_mem_kb.map(|kb| format!("'{kb}kB'")),
    ));
    let connections = limits.connection_limit.map_or(-1, i64::from);
    sql.push_str(&format!("ALTER ROLE {role} CONNECTION LIMIT {connections}"));
    sql
}

async fn alter(conn: &mut PgConnection, role: &Ident, limits: &DbLimits) -> Result<()> {
    pg::ddl(conn, statements(role, limits)).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn statements_hold_only_the_quoted_role_and_integers() {
        let role = Ident::new("tm_t_acme", "role").unwrap();
        let sql = statements(
            &role,
            &DbLimits {
                statement_timeout_ms: Some(250),
                work_mem_kb: Some(4096),
                connection_limit: Some(3),
            },
        );
        assert_eq!(
            sql,
            "ALTER ROLE \"tm_t_acme\" SET statement_timeout = 250; \
             ALTER ROLE \"tm_t_acme\" SET work_mem = '4096kB'; \
             ALTER ROLE \"tm_t_acme\" CONNECTION LIMIT 3"
        );
        let reset = statements(&role, &DbLimits::default());
        assert!(reset.contains("RESET statement_timeout") && reset.contains("RESET work_mem"));
        assert!(reset.ends_with("CONNECTION LIMIT -1"));
    }
}
