//! The app login's role on every server, its password, and the backfill of its grants (see
//! [`crate::app_login`] and [`crate::wall`]).
//!
//! | statement | when |
//! |---|---|
//! | `CREATE`/`ALTER ROLE <app> LOGIN PASSWORD '<SCRAM verifier>' NOINHERIT ...` (no privilege of its own), every session default reset | [`crate::PostgresProvisioner::ensure_app_login`] |
//! | what [`crate::wall`] grants it on each database of schema and shared tenants | the same, for tenants provisioned before the app login existed |

use serde::Serialize;
use sqlx::PgConnection;
use tenant_manager_core::{Error, Result};

use crate::app_login::AppLogin;
use crate::ident::{Ident, quote_literal};
use crate::pg::{self, Hold, UNPRIVILEGED, lock_key};
use crate::storage::TenantStorage;
use crate::wall;

/// What [`crate::PostgresProvisioner::ensure_app_login`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AppLoginReport {
    /// Servers whose app login role was created or brought up to date.
    pub servers: usize,
    /// Databases of schema or shared tenants whose grants were checked.
    pub databases: usize,
}

/// Creates the app login on the connected server, or brings a marked one up to date: login
/// with `login`'s password (as a SCRAM verifier), no privilege of its own. Serialised across
/// instances by a session advisory lock; close the connection afterwards.
async fn ensure_login(conn: &mut PgConnection, login: &AppLogin) -> Result<()> {
    pg::acquire(conn, lock_key("app-login", &[login.name()]), Hold::Session).await?;
    let verifier = pg::scram_verifier(login.password());
    let attributes = format!(
        "LOGIN PASSWORD {} NOINHERIT {UNPRIVILEGED}",
        quote_literal(verifier.expose())
    );
    let marked = wall::app_login_marked(login.ident());
    pg::ensure_marked_role(conn, &marked, &attributes, Some(&attributes)).await?;
    reset_role_defaults(conn, login.name()).await
}

/// Drops every session default set on the app login (`ALTER ROLE ... [IN DATABASE ...] SET`),
/// which the login may set on itself: a default left by SQL injected in one session
/// (a `statement_timeout`, a `search_path`, a setting a policy reads) would reach every later
/// session of every tenant.
async fn reset_role_defaults(conn: &mut PgConnection, name: &str) -> Result<()> {
    let role = quote_literal(name);
    pg::ddl(
        conn,
        format!(
            "DO $reset$ DECLARE d text; BEGIN \
               EXECUTE format('ALTER ROLE %I RESET ALL', {role}); \
               FOR d IN SELECT db.datname FROM pg_catalog.pg_db_role_setting s \
                        JOIN pg_catalog.pg_database db ON db.oid = s.setdatabase \
                        WHERE s.setrole = {role}::regrole LOOP \
                 EXECUTE format('ALTER ROLE %I IN DATABASE %I RESET ALL', {role}, d); \
               END LOOP; END $reset$"
        ),
    )
    .await
}

/// Creates or updates the app login on every server of the map, then grants it what the
/// schema and shared tenants provisioned so far need (the backfill of tenants provisioned
/// before it existed). Idempotent.
pub(crate) async fn ensure(storage: &TenantStorage, login: &AppLogin) -> Result<AppLoginReport> {
    let app = match &storage.settings.app_login {
        Some(app) if app == login.ident() => app,
        Some(_) => {
            return Err(Error::invalid(
                "app_login",
                "must be the storage's app login (StorageConfig::app_login)",
            ));
        }
        None => {
            return Err(Error::invalid(
                "app_login",
                "the storage has no app login (StorageConfig::without_app_login)",
            ));
        }
    };
    let walled = wall::databases(storage).await?;
    let mut report = AppLoginReport::default();
    for server in storage.servers.ids() {
        let mut conn = storage.connect_maintenance(server).await?;
        let ensured = ensure_login(&mut conn, login).await;
        // Closing the session also releases its advisory lock.
        pg::close(conn).await;
        ensured?;
        report.servers += 1;
        for ((on, database), found) in &walled {
            if on != server {
                continue;
            }
            let database = Ident::new(database, "placement.database")?;
            let done = wall::grant_database(storage, server, &database, app, found.shared).await?;
            report.databases += usize::from(done);
        }
    }
    Ok(report)
}
