//! Admin connections to the databases of a [`TenantStorage`].

use sqlx::PgConnection;
use tenant_manager_core::{Result, ServerId};

use super::TenantStorage;
use crate::ident::Ident;
use crate::pg;

impl TenantStorage {
    /// An admin connection to `database` on `server`.
    pub(crate) async fn connect(
        &self,
        server: &ServerId,
        database: &Ident,
    ) -> Result<PgConnection> {
        pg::connect(&self.servers.admin_options(server, database.as_str())?).await
    }

    /// An admin connection to `database` on `server`, `None` when the database does not exist.
    pub(crate) async fn connect_existing(
        &self,
        server: &ServerId,
        database: &Ident,
    ) -> Result<Option<PgConnection>> {
        pg::connect_existing(&self.servers.admin_options(server, database.as_str())?).await
    }

    /// An admin connection to a database shared by tenants, created (and marked as this
    /// deployment's) first if missing. A database marked as another deployment's, or not
    /// marked, is not used: `Conflict` on `placement.database`.
    pub(crate) async fn connect_shared(
        &self,
        server: &ServerId,
        database: &Ident,
    ) -> Result<PgConnection> {
        let conn = match self.connect_existing(server, database).await? {
            Some(conn) => conn,
            None => {
                let mut maintenance = self.connect_maintenance(server).await?;
                let created =
                    pg::ensure_shared_database(&mut maintenance, database, &self.shared_marker())
                        .await;
                pg::close(maintenance).await;
                created?;
                self.connect(server, database).await?
            }
        };
        self.check_shared_marker(conn, database).await
    }

    /// The comment marking a shared database as this deployment's.
    pub(crate) fn shared_marker(&self) -> String {
        pg::shared_marker(&self.settings.config.naming)
    }

    /// Keeps `conn` (to `database`) when the database is marked as this deployment's.
    async fn check_shared_marker(
        &self,
        mut conn: PgConnection,
        database: &Ident,
    ) -> Result<PgConnection> {
        let checked = pg::current_database_comment(&mut conn).await;
        let ours = self.shared_marker();
        match checked {
            Ok(Some(comment)) if comment == ours => Ok(conn),
            Ok(comment) => {
                pg::close(conn).await;
                Err(pg::foreign_shared_database(database, comment.as_deref()))
            }
            Err(e) => {
                pg::close(conn).await;
                Err(e)
            }
        }
    }

    /// An admin connection to the server's maintenance database (that of its admin URL).
    pub(crate) async fn connect_maintenance(&self, server: &ServerId) -> Result<PgConnection> {
        pg::connect(&self.servers.get(server)?.admin).await
    }
}
