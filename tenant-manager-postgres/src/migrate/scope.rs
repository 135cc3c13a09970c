//! Where and as whom tenant migrations and seeds run.

use sqlx::PgConnection;
use tenant_manager_core::{Entity, Result, TenantId};

use crate::ident::Ident;
use crate::pg::SqlxResultExt;
use crate::storage::WallContext;

/// The scope of a connection working on one tenant's storage: the role that owns what it
/// creates, the schema it resolves names in, the tenant its row-level policies see.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// The tenant's own database, as the tenant's role.
    Database {
        /// The tenant role.
        role: &'a Ident,
    },
    /// The tenant's schema, as the tenant's role, with `search_path` set to the schema only.
    Schema {
        /// The tenant role.
        role: &'a Ident,
        /// The tenant schema.
        schema: &'a Ident,
        /// The tenant.
        tenant: TenantId,
        /// The database's wall, entered for `tenant` (forced row-level security binds the
        /// owner too).
        wall: Option<WallContext<'a>>,
    },
    /// The shared tables, as their owner, with `app.tenant_id` set when a tenant is given.
    Shared {
        /// Owner of the shared tables (a non-superuser, so forced RLS applies to it).
        owner: &'a Ident,
        /// Schema of the shared tables.
        schema: &'a Ident,
        /// The tenant whose rows the policies expose.
        tenant: Option<TenantId>,
        /// The database's wall, entered for `tenant` when given.
        wall: Option<WallContext<'a>>,
    },
}

impl Scope<'_> {
    /// Enters the scope; `local` limits it to the current transaction (`set_config(.., true)`).
    /// Values are bound, never spliced into SQL.
    /// Behind the wall, the session first enters the tenant's verified context (as the admin,
    /// before taking the role).
    pub(crate) async fn enter(&self, conn: &mut PgConnection, local: bool) -> Result<()> {
        let (role, schema, tenant) = match *self {
            Scope::Database { role } => (role, None, None),
            Scope::Schema {
                role,
                schema,
                tenant,
                wall,
            } => {
                if let Some(wall) = wall {
                    crate::wall::enter(conn, wall.keys, tenant).await?;
                }
                (role, Some(schema), None)
            }
            Scope::Shared {
                owner,
                schema,
                tenant,
                wall,
            } => {
                if let (Some(wall), Some(tenant)) = (wall, tenant) {
                    crate::wall::enter(conn, wall.keys, tenant).await?;
                }
                (owner, Some(schema), tenant)
            }
        };
        sqlx::query(
            "SELECT set_config('role', $1, $4), \
                    CASE WHEN $2::text IS NULL THEN NULL ELSE set_config('search_path', $2, $4) END, \
                    CASE WHEN $3::text IS NULL THEN NULL ELSE set_config('app.tenant_id', $3, $4) END",
        )
        .bind(role.as_str())
        .bind(schema.map(Ident::quoted))
        .bind(tenant.map(|t| t.to_string()))
        .bind(local)
        .execute(conn)
        .await
        .map_db(Entity::Record)?;
        Ok(())
    }

    /// Leaves a session-level scope (after [`Scope::enter`] with `local = false`).
    pub(crate) async fn leave(conn: &mut PgConnection) -> Result<()> {
        sqlx::raw_sql("RESET ROLE; RESET search_path; RESET app.tenant_id")
            .execute(conn)
            .await
            .map_db(Entity::Record)?;
        Ok(())
    }
}
