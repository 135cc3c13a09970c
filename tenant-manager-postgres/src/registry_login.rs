//! The registry login: a Postgres login that owns the registry's `tm_*` tables and nothing
//! else, for the pool of a [`PostgresRegistry`](crate::PostgresRegistry).
//!
//! The admin login creates databases and roles, so a server whose registry pool logs in as
//! the admin hands every SQL query of the registry that power. [`ensure_registry_login`]
//! (run with the admin login on the global database, after [`crate::migrate_global`])
//! creates or updates a login `NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
//! NOINHERIT` and gives it ownership of the `tm_*` tables (not the migration history
//! `tm_schema_migrations`): it can do the registry's work and cannot create databases or
//! roles, nor connect to tenants' databases (they are closed to `PUBLIC`). The admin login
//! stays for migrations and provisioning.

use std::fmt;

use sqlx::{Connection, PgPool};
use tenant_manager_core::{Entity, Error, Result, Secret};

use crate::ident::{Ident, quote_literal};
use crate::pg::{self, Hold, Marked, SqlxResultExt, UNPRIVILEGED, lock_key};
use crate::registry::GLOBAL_MIGRATIONS_TABLE;

/// Marker comment of the registry login role.
const REGISTRY_LOGIN_MARKER: &str = "tenant-manager:registry-login";

/// Shortest password [`RegistryLogin::new`] accepts, in bytes.
pub const MIN_REGISTRY_PASSWORD_LEN: usize = 16;

/// The name and password of the registry login. `Debug` never prints the password.
#[derive(Clone)]
pub struct RegistryLogin {
    name: Ident,
    password: Secret,
}

impl RegistryLogin {
    /// A registry login.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `registry_login` for a name that is not an identifier
    /// or starts with `tenant_` or `pg_`; on `registry_login_password` for a password shorter
    /// than [`MIN_REGISTRY_PASSWORD_LEN`] bytes or outside printable ASCII (see
    /// [`AppLogin::new`](crate::AppLogin::new) for why).
    pub fn new(name: &str, password: Secret) -> Result<Self> {
        let ident = Ident::new(name, "registry_login")?;
        if name.starts_with("tenant_") || name.starts_with("pg_") {
            return Err(Error::invalid(
                "registry_login",
                "must not start with tenant_ (tenants' roles) or pg_ (reserved by Postgres)",
            ));
        }
        if password.len() < MIN_REGISTRY_PASSWORD_LEN
            || !password
                .expose()
                .bytes()
                .all(|b| b == b' ' || b.is_ascii_graphic())
        {
            return Err(Error::invalid(
                "registry_login_password",
                "must be at least 16 bytes of printable ASCII",
            ));
        }
        Ok(Self {
            name: ident,
            password,
        })
    }

    /// The role name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }
}

impl fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("name", &self.name.as_str())
            .field("password", &self.password)
            .finish()
    }
}

/// What [`ensure_registry_login`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct RegistryLoginReport {
    /// The `tm_*` tables and sequences the login owns.
    pub relations: usize,
}

/// Creates the registry login on the server of `global` (a pool of the global database
/// logged in as the admin), or brings a marked one up to date (password, attributes), and
/// gives it `CONNECT` on the global database, `USAGE` on the registry's schema and ownership
/// of its `tm_*` tables and sequences. Idempotent; run after every [`crate::migrate_global`]
/// (new tables are created by the admin). A role of that name that tenant-manager did not
/// create is left alone.
///
/// # Errors
/// `Conflict` on `registry_login` for a foreign role of that name; `Unavailable` when
/// Postgres cannot be reached.
pub async fn ensure_registry_login(
    global: &PgPool,
    login: &RegistryLogin,
) -> Result<RegistryLoginReport> {
    let verifier = pg::scram_verifier(&login.password);
    let attributes = format!(
        "LOGIN PASSWORD {} NOINHERIT {UNPRIVILEGED}",
        quote_literal(verifier.expose())
    );
    let role = &login.name;
    let mut conn = global.acquire().await.map_db(Entity::Tenant)?;
    let mut tx = conn.begin().await.map_db(Entity::Tenant)?;
    let key = lock_key("registry-login", &[role.as_str()]);
    pg::acquire(&mut tx, key, Hold::Transaction).await?;
    let marked = Marked {
        role,
        marker: REGISTRY_LOGIN_MARKER,
        field: "registry_login",
    };
    pg::ensure_marked_role(&mut tx, &marked, &attributes, Some(&attributes)).await?;
    let (database, schema, superuser): (String, String, bool) = sqlx::query_as(
        "SELECT current_database()::text, current_schema()::text, \
                (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
    )
    .fetch_one(&mut *tx)
    .await
    .map_db(Entity::Tenant)?;
    let database = Ident::new(&database, "global_database")?;
    let schema = Ident::new(&schema, "global_schema")?;
    let relations: Vec<(String, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relkind = 'S' FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname LIKE 'tm\\_%' AND c.relname <> $2 \
           AND c.relkind IN ('r', 'p', 'S') AND NOT c.relispartition \
         ORDER BY 1",
    )
    .bind(schema.as_str())
    .bind(GLOBAL_MIGRATIONS_TABLE)
    .fetch_all(&mut *tx)
    .await
    .map_db(Entity::Tenant)?;
    let mut sql = String::new();
    if !superuser {
        // Only a member of the new owner may give it a table.
        sql.push_str(&format!("GRANT {role} TO CURRENT_USER; "));
    }
    sql.push_str(&format!(
        "GRANT CONNECT ON DATABASE {database} TO {role}; GRANT USAGE ON SCHEMA {schema} TO {role};"
    ));
    for (name, sequence) in &relations {
        let relation = Ident::new(name, "table")?;
        let kind = if *sequence { "SEQUENCE" } else { "TABLE" };
        sql.push_str(&format!(
            " ALTER {kind} {schema}.{relation} OWNER TO {role};"
        ));
    }
    pg::ddl(&mut tx, sql).await?;
    tx.commit().await.map_db(Entity::Tenant)?;
    Ok(RegistryLoginReport {
        relations: relations.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords_are_checked_and_hidden() {
        let password = || Secret::new("registry-password-0123");
        for bad in ["tenant_reg", "pg_reg", "Reg", ""] {
            let err = RegistryLogin::new(bad, password()).err();
            assert_eq!(
                err.and_then(|e| e.field().map(str::to_owned)).as_deref(),
                Some("registry_login")
            );
        }
        let err = RegistryLogin::new("tm_registry", Secret::new("short")).err();
        assert_eq!(
            err.and_then(|e| e.field().map(str::to_owned)).as_deref(),
            Some("registry_login_password")
        );
        let login = RegistryLogin::new("tm_registry", password()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(login.name(), "tm_registry");
        assert!(!format!("{login:?}").contains("registry-password"));
    }
}
