//! Admin connections and the statements they run.
//!
//! DDL takes no bind parameters, so every identifier spliced into it is an
//! [`Ident`](crate::ident::Ident) (validated, quoted) and every literal goes through
//! [`quote_literal`](crate::ident::quote_literal).

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};
use tenant_manager_core::{Entity, Result};

use super::error::{SqlxResultExt, map_sqlx};
use super::sqlstate::{UNKNOWN_DATABASE, has_state};

/// Opens an admin connection without statement logging (DDL can carry password verifiers).
pub(crate) async fn connect(options: &PgConnectOptions) -> Result<PgConnection> {
    connect_raw(options).await.map_db(Entity::Tenant)
}

/// Like [`connect`], `None` when the database does not exist.
pub(crate) async fn connect_existing(options: &PgConnectOptions) -> Result<Option<PgConnection>> {
    match connect_raw(options).await {
        Ok(conn) => Ok(Some(conn)),
        Err(e) if has_state(&e, &[UNKNOWN_DATABASE]) => Ok(None),
        Err(e) => Err(map_sqlx(Entity::Tenant, e)),
    }
}

async fn connect_raw(options: &PgConnectOptions) -> std::result::Result<PgConnection, sqlx::Error> {
    options
        .clone()
        .application_name("tenant-manager")
        .disable_statement_logging()
        .connect()
        .await
}

/// Closes a connection politely; a failure to say goodbye is not an error of the work done.
pub(crate) async fn close(conn: PgConnection) {
    let _ = conn.close().await;
}

/// Runs one or more DDL statements built from validated identifiers and quoted literals.
pub(crate) async fn ddl(conn: &mut PgConnection, sql: String) -> Result<()> {
    ddl_raw(conn, sql).await.map_db(Entity::Tenant)
}

/// [`ddl`] keeping the driver error, for callers that treat some SQLSTATEs as success.
pub(crate) async fn ddl_raw(
    conn: &mut PgConnection,
    sql: String,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(|_| ())
}
