//! The short-lived, unprivileged login that runs a backup or restore of data a tenant shaped.
//!
//! `pg_dump`, `pg_restore` and the shared-row `COPY` never run logged in as the admin: a CHECK
//! constraint, trigger or index expression calling a tenant-defined function runs during a
//! restore with the privileges of whoever restores, and a superuser would hand the tenant the
//! cluster. Nor does the admin log in and `SET ROLE`: the tenant's function could `RESET ROLE`.
//!
//! Instead each operation creates a login of its own: `LOGIN NOSUPERUSER NOCREATEDB
//! NOCREATEROLE NOREPLICATION`, a random password (sent as a SCRAM verifier), a short
//! validity, and either member of the tenant's role only (database and schema isolation; with
//! `BYPASSRLS`, since `pg_dump` refuses tables a policy filters and the wall forces its policies
//! on the owner: it still reaches nothing but that role's objects) or of nothing, `NOBYPASSRLS`,
//! with `SELECT, INSERT, DELETE` on the shared tables and the right to enter a tenant's
//! verified context (shared isolation, so the wall's row-level security applies). It is dropped afterwards; one left behind by a crash is dropped by the
//! next operation on the server once it is an hour old and has no session.

use std::fmt;

use rand::RngCore;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, PgConnection};
use tenant_manager_core::{Entity, Result, Secret, ServerId};
use time::OffsetDateTime;

use super::tools::ToolConn;
use crate::ident::{Ident, quote_literal};
use crate::pg::{self, SqlxResultExt, UNPRIVILEGED};
use crate::storage::TenantStorage;

/// The word after the deployment's storage prefix in these logins' names:
/// `<prefix>_backup_<random>`, out of reach of tenant roles (`<prefix>_t_*`) and of other
/// deployments (whose prefixes differ and hold no `_`).
const NAME_WORD: &str = "backup_";

/// `<prefix>_backup_`: the start of this deployment's operation logins.
fn name_prefix(storage: &TenantStorage) -> String {
    storage.config().naming.infra(NAME_WORD)
}
/// Start of their marker comment; the creation time (Unix seconds) follows.
const MARKER_PREFIX: &str = "tenant-manager:backup-login:";
/// How long the password is valid.
const VALIDITY: time::Duration = time::Duration::hours(12);
/// Age after which a login without sessions is a leftover of a crash.
const STALE_AFTER_SECS: i64 = 3600;

/// One operation's login on one server. Drop it with [`OperationLogin::drop`].
pub(crate) struct OperationLogin {
    name: Ident,
    password: Secret,
    admin: PgConnectOptions,
    server: ServerId,
}

impl fmt::Debug for OperationLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationLogin")
            .field("name", &self.name)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// What the login may reach besides logging in.
pub(crate) enum Reach<'a> {
    /// Member (inheriting) of this tenant role, and of nothing else.
    MemberOf(&'a Ident),
    /// `CONNECT, TEMPORARY` on `database`, `USAGE` on `schema` and `SELECT, INSERT, DELETE`
    /// on its `tables` (quoted, qualified names), granted in `database` over `conn`.
    Tables {
        /// An admin connection to the database.
        conn: &'a mut PgConnection,
        /// The database.
        database: &'a Ident,
        /// The schema of the tables.
        schema: &'a Ident,
        /// The tables.
        tables: &'a [String],
    },
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

impl OperationLogin {
    /// Creates the login on `server`, dropping stale leftovers first.
    pub(crate) async fn create(
        storage: &TenantStorage,
        server: &ServerId,
        reach: Reach<'_>,
    ) -> Result<Self> {
        let name = Ident::new(
            &format!("{}{}", name_prefix(storage), random_hex(8)),
            "role",
        )?;
        let walled = storage.wall()?.is_some();
        let password = Secret::new(random_hex(32));
        let verifier = pg::scram_verifier(&password);
        let now = OffsetDateTime::now_utc();
        let until = (now + VALIDITY)
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| tenant_manager_core::Error::internal_with("timestamp format", e))?;
        let admin_options = storage.servers.get(server)?.admin.clone();
        let mut maint = storage.connect_maintenance(server).await?;
        let created = async {
            sweep(storage, &mut maint).await;
            // A member of a tenant role reads its tables past row-level security (pg_dump
            // refuses to dump a table a policy would filter, and the wall forces policies on
            // the owner): it reaches nothing but that role's objects anyway.
            let (member, attributes) = match &reach {
                Reach::MemberOf(role) => (
                    format!(" IN ROLE {role}"),
                    UNPRIVILEGED.replace("NOBYPASSRLS", "BYPASSRLS"),
                ),
                Reach::Tables { .. } => (String::new(), UNPRIVILEGED.to_owned()),
            };
            pg::ddl(
                &mut maint,
                format!(
                    "CREATE ROLE {name} LOGIN INHERIT {attributes} CONNECTION LIMIT 8 \
                     PASSWORD {} VALID UNTIL {}{member}; COMMENT ON ROLE {name} IS {}",
                    quote_literal(verifier.expose()),
                    quote_literal(&until),
                    quote_literal(&format!("{MARKER_PREFIX}{}", now.unix_timestamp())),
                ),
            )
            .await
        }
        .await;
        pg::close(maint).await;
        created?;
        let login = Self {
            name,
            password,
            admin: admin_options,
            server: server.clone(),
        };
        if let Reach::Tables {
            conn,
            database,
            schema,
            tables,
        } = reach
        {
            let name = &login.name;
            let mut sql = format!(
                "GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {name}; \
                 GRANT USAGE ON SCHEMA {schema} TO {name}"
            );
            for table in tables {
                sql.push_str(&format!(
                    "; GRANT SELECT, INSERT, DELETE ON {table} TO {name}"
                ));
            }
            if walled {
                // It enters the tenant's verified context, as the pools' checkouts do.
                sql.push_str(&format!(
                    "; GRANT USAGE ON SCHEMA wall TO {name}; \
                     GRANT EXECUTE ON FUNCTION wall.enter(uuid, bigint, integer, text), \
                         wall.session_id() TO {name}; \
                     GRANT SELECT (pid, token, tenant) ON wall.sessions TO {name}; \
                     GRANT SELECT ON SEQUENCE wall.session_token TO {name}"
                ));
            }
            if let Err(e) = pg::ddl(conn, sql).await {
                let _ = pg::ddl(conn, format!("DROP OWNED BY {name}")).await;
                login.drop(storage).await;
                return Err(e);
            }
        }
        Ok(login)
    }

    /// How `pg_dump` and `pg_restore` log in as it.
    pub(crate) fn tool_conn(&self) -> ToolConn {
        ToolConn::new(
            self.admin.clone().username(self.name.as_str()),
            Some(self.password.clone()),
        )
    }

    /// A connection to `database` as it.
    pub(crate) async fn connect(&self, database: &Ident) -> Result<PgConnection> {
        let options = self
            .admin
            .clone()
            .username(self.name.as_str())
            .password(self.password.expose())
            .database(database.as_str());
        pg::connect(&options).await
    }

    /// Ends its sessions and drops it (revoking what it was granted in `granted_in`, an admin
    /// connection to the database of [`Reach::Tables`]). Failures are left to the sweep.
    pub(crate) async fn drop_with(self, storage: &TenantStorage, granted_in: &mut PgConnection) {
        let _ = pg::ddl(granted_in, format!("DROP OWNED BY {}", self.name)).await;
        self.drop(storage).await;
    }

    /// Ends its sessions and drops it. Failures are left to the sweep.
    pub(crate) async fn drop(self, storage: &TenantStorage) {
        let Ok(mut maint) = storage.connect_maintenance(&self.server).await else {
            return;
        };
        let _ = drop_role(&mut maint, &self.name).await;
        pg::close(maint).await;
    }
}

async fn drop_role(conn: &mut PgConnection, name: &Ident) -> Result<()> {
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
        .bind(name.as_str())
        .execute(&mut *conn)
        .await
        .map_db(Entity::Backup)?;
    // Revokes its database-level grants (shared objects) before the role goes.
    pg::ddl(
        conn,
        format!("DROP OWNED BY {name}; DROP ROLE IF EXISTS {name}"),
    )
    .await
}

/// Drops this deployment's logins of this kind older than an hour that have no session:
/// leftovers of a crash. What they were granted in the connected database is revoked first,
/// so running it in the database of [`Reach::Tables`] frees those too.
pub(crate) async fn sweep(storage: &TenantStorage, conn: &mut PgConnection) {
    let cutoff = OffsetDateTime::now_utc().unix_timestamp() - STALE_AFTER_SECS;
    let sql = format!(
        "SELECT r.rolname::text FROM pg_roles r \
         WHERE starts_with(r.rolname, $2) \
           AND starts_with(shobj_description(r.oid, 'pg_authid'), '{MARKER_PREFIX}') \
           AND split_part(shobj_description(r.oid, 'pg_authid'), ':', 3)::bigint < $1 \
           AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.usename = r.rolname)"
    );
    let stale: Vec<String> = match sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(cutoff)
        .bind(name_prefix(storage))
        .fetch_all(&mut *conn)
        .await
    {
        Ok(rows) => rows,
        Err(_) => return,
    };
    for name in stale {
        if let Ok(name) = Ident::new(&name, "role") {
            let _ = drop_role(conn, &name).await;
        }
    }
}
