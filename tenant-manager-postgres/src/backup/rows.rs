//! Rows per table: counted when a backup is taken, in the very snapshot `pg_dump` dumps
//! (`pg_export_snapshot` + `pg_dump --snapshot`), and counted again after a restore into a
//! marked scratch database (a restore test) that is always dropped.

use std::path::Path;

use sqlx::PgConnection;
use tenant_manager_core::{BackupId, Entity, Error, Result, TableRows, Tenant};

use super::dump;
use super::login::{OperationLogin, Reach};
use super::tools::PgTools;
use crate::ident::{Ident, quote_ident, quote_literal};
use crate::pg::{self, SqlxResultExt};
use crate::storage::{Target, TenantStorage};

/// The comment on every scratch database of a restore test: only a database carrying it is
/// ever dropped by [`drop_scratch`].
pub(crate) const VERIFY_MARKER: &str = "tenant-manager:verify-scratch";

/// Prefix of the scratch databases of restore tests.
pub(crate) const VERIFY_PREFIX: &str = "tm_verify_";

/// The ordinary tables of `schema` (or of every schema but the system's), qualified and
/// quoted, with their `schema.table` key. Tables of extensions are left out, as `pg_dump`
/// leaves out their data.
async fn tables(conn: &mut PgConnection, schema: Option<&str>) -> Result<Vec<(String, String)>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' \
           AND ($1::text IS NULL OR n.nspname = $1) \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                           AND d.objid = c.oid AND d.deptype = 'e') \
         ORDER BY 1, 2",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
    .map_db(Entity::Backup)?;
    Ok(rows
        .into_iter()
        .map(|(s, t)| {
            let quoted = format!("{}.{}", quote_ident(&s), quote_ident(&t));
            (format!("{s}.{t}"), quoted)
        })
        .collect())
}

/// Counts the rows of every table [`tables`] finds, with row-level security off as `pg_dump`
/// has it (a policy that would hide rows makes the count fail, as it makes the dump fail).
/// Runs in the caller's transaction.
async fn count(conn: &mut PgConnection, schema: Option<&str>) -> Result<TableRows> {
    sqlx::query("SELECT pg_catalog.set_config('row_security', 'off', true)")
        .execute(&mut *conn)
        .await
        .map_db(Entity::Backup)?;
    let mut rows = TableRows::new();
    for (key, quoted) in tables(conn, schema).await? {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {quoted}"
        )))
        .fetch_one(&mut *conn)
        .await
        .map_db(Entity::Backup)?;
        rows.insert(key, u64::try_from(n).unwrap_or(0));
    }
    Ok(rows)
}

/// `pg_dump` of `database` (or one schema of it) to `path`, and the rows of each table in
/// the same snapshot: a repeatable-read transaction of `login` exports its snapshot, counts,
/// and stays open while `pg_dump --snapshot` dumps exactly what it saw.
pub(crate) async fn counted_dump(
    tools: &PgTools,
    login: &OperationLogin,
    database: &Ident,
    schema: Option<&Ident>,
    path: &Path,
) -> Result<TableRows> {
    let mut conn = login.connect(database).await?;
    let result = async {
        sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut conn)
            .await
            .map_db(Entity::Backup)?;
        let snapshot: String = sqlx::query_scalar("SELECT pg_catalog.pg_export_snapshot()")
            .fetch_one(&mut conn)
            .await
            .map_db(Entity::Backup)?;
        let rows = count(&mut conn, schema.map(Ident::as_str)).await?;
        dump::pg_dump(
            tools,
            &login.tool_conn(),
            database,
            schema,
            Some(&snapshot),
            path,
        )
        .await?;
        sqlx::raw_sql("COMMIT")
            .execute(&mut conn)
            .await
            .map_db(Entity::Backup)?;
        Ok(rows)
    }
    .await;
    pg::close(conn).await;
    result
}

/// What a restore test needs.
pub(crate) struct Verify<'a> {
    pub(crate) storage: &'a TenantStorage,
    pub(crate) tools: &'a PgTools,
    /// The tenant whose role restores and whose server holds the scratch database.
    pub(crate) owner: &'a Tenant,
    pub(crate) target: &'a Target,
    pub(crate) backup: BackupId,
    /// The schema the artifact holds (schema isolation), none for a whole database.
    pub(crate) schema: Option<&'a str>,
}

/// Restores the `pg_dump` artifact at `path` into a fresh scratch database marked
/// [`VERIFY_MARKER`], counts its rows per table, and drops it, whatever happened.
pub(crate) async fn restored_rows(job: &Verify<'_>, path: &Path) -> Result<TableRows> {
    let role = job.target.role()?;
    let hex = uuid::Uuid::new_v4().simple().to_string();
    let scratch = Ident::new(&format!("{VERIFY_PREFIX}{}", &hex[..16]), "database")?;
    let login =
        OperationLogin::create(job.storage, &job.target.server, Reach::MemberOf(role)).await?;
    let mut maint = match job.storage.connect_maintenance(&job.target.server).await {
        Ok(maint) => maint,
        Err(e) => {
            login.drop(job.storage).await;
            return Err(e);
        }
    };
    let counted = async {
        create_scratch(&mut maint, &scratch, role).await?;
        if job.schema.is_some() {
            // The dumped tables' wall policies name the wall's objects.
            crate::wall::install_in(job.storage, &job.target.server, &scratch, role).await?;
        }
        dump::pg_restore_into(job.tools, &login, &scratch, role, path).await?;
        let mut conn = login.connect(&scratch).await?;
        let rows = async {
            sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut conn)
                .await
                .map_db(Entity::Backup)?;
            count(&mut conn, job.schema).await
        }
        .await;
        pg::close(conn).await;
        rows
    }
    .await;
    let dropped = drop_scratch(&mut maint, &scratch).await;
    pg::close(maint).await;
    login.drop(job.storage).await;
    if let Err(e) = &dropped {
        tracing::error!(database = %scratch, error = %e, backup = %job.backup,
            tenant = %job.owner.id, "restore test: scratch database not dropped");
    }
    let rows = counted?;
    dropped?;
    Ok(rows)
}

/// Creates the scratch database owned by `role` and marks it at once.
async fn create_scratch(maint: &mut PgConnection, scratch: &Ident, role: &Ident) -> Result<()> {
    pg::create_database(maint, scratch, Some(role), None).await?;
    pg::ddl(
        maint,
        format!(
            "COMMENT ON DATABASE {scratch} IS {}",
            quote_literal(VERIFY_MARKER)
        ),
    )
    .await
}

/// Drops a scratch database of a restore test; refuses any database that does not carry
/// [`VERIFY_MARKER`] or whose name lacks [`VERIFY_PREFIX`]. A missing one is fine.
pub(crate) async fn drop_scratch(maint: &mut PgConnection, scratch: &Ident) -> Result<()> {
    if !scratch.as_str().starts_with(VERIFY_PREFIX) {
        return Err(Error::invalid(
            "database",
            "is not a restore test's scratch database",
        ));
    }
    let comment: Option<Option<String>> = sqlx::query_scalar(
        "SELECT pg_catalog.shobj_description(oid, 'pg_database') FROM pg_database \
         WHERE datname = $1",
    )
    .bind(scratch.as_str())
    .fetch_optional(&mut *maint)
    .await
    .map_db(Entity::Backup)?;
    match comment {
        None => Ok(()),
        Some(Some(marker)) if marker == VERIFY_MARKER => {
            pg::ddl(
                maint,
                format!("DROP DATABASE IF EXISTS {scratch} WITH (FORCE)"),
            )
            .await
        }
        Some(_) => Err(Error::conflict(
            Entity::Backup,
            "database",
            format!("{scratch} is not marked as a restore test's scratch database: left alone"),
        )),
    }
}
