//! `pg_dump` / `pg_restore` flows for database and schema isolation.

use std::ffi::OsString;
use std::path::Path;

use sqlx::PgConnection;
use tenant_manager_core::{BackupId, Entity, Result, Tenant};

use super::login::{OperationLogin, Reach};
use super::tools::{PgTools, ToolConn, server_major};
use crate::ident::{Ident, quote_literal};
use crate::pg::{self, Object, SqlxResultExt};
use crate::provision::database;
use crate::storage::{Target, TenantStorage};

/// Format name of `pg_dump -Fc` artifacts in the catalogue.
pub(crate) const FORMAT: &str = "pg_dump_custom";

/// Checks `pg_dump` and `pg_restore` against the server behind `conn`.
pub(crate) async fn check_tools(tools: &PgTools, conn: &mut PgConnection) -> Result<()> {
    let version: String = sqlx::query_scalar("SHOW server_version_num")
        .fetch_one(conn)
        .await
        .map_db(Entity::Backup)?;
    let major = server_major(version.trim().parse().unwrap_or(0));
    tools.check("pg_dump", major).await?;
    tools.check("pg_restore", major).await
}

/// `pg_dump -Fc` of `database` (all of it, or one schema), without owners or grants: a
/// restore gives everything to the target tenant's role. Run as an [`OperationLogin`] that is
/// a member of the tenant's role, never as the admin.
pub(crate) async fn pg_dump(
    tools: &PgTools,
    conn: &ToolConn,
    database: &Ident,
    schema: Option<&Ident>,
    snapshot: Option<&str>,
    path: &Path,
) -> Result<()> {
    let mut args: Vec<OsString> = vec![
        "--format=custom".into(),
        "--no-owner".into(),
        "--no-privileges".into(),
    ];
    if let Some(schema) = schema {
        // Quoted, so pg_dump takes the name literally rather than as a pattern.
        args.push(format!("--schema={}", schema.quoted()).into());
    }
    if let Some(snapshot) = snapshot {
        // The snapshot a still-open transaction exported: the dump sees what it counted.
        args.push(format!("--snapshot={snapshot}").into());
    }
    // Through a pipe, so a crash of this process stops pg_dump too.
    tools
        .run_to_file("pg_dump", conn, database.as_str(), &args, path)
        .await
}

/// `pg_restore` of `path` into `database`, logged in as `login` (a member of `role`) and
/// acting as `role`: objects become the tenant role's, and whatever tenant-defined code runs
/// during the restore (CHECK constraints, index expressions, defaults) runs unprivileged.
/// With `only`, just the objects inside that schema (not the schema itself).
async fn pg_restore(
    tools: &PgTools,
    login: &OperationLogin,
    database: &Ident,
    role: &Ident,
    only: Option<&Ident>,
    path: &Path,
) -> Result<()> {
    let mut args: Vec<OsString> = vec![
        "--exit-on-error".into(),
        "--single-transaction".into(),
        "--no-owner".into(),
        "--no-privileges".into(),
        format!("--role={}", role.as_str()).into(),
    ];
    if let Some(schema) = only {
        args.push(format!("--schema={}", schema.as_str()).into());
    }
    args.push(path.as_os_str().to_owned());
    tools
        .run("pg_restore", &login.tool_conn(), database.as_str(), &args)
        .await
}

/// `pg_restore` of a whole artifact into `database` (a restore test's scratch database),
/// as [`pg_restore`] runs it.
pub(crate) async fn pg_restore_into(
    tools: &PgTools,
    login: &OperationLogin,
    database: &Ident,
    role: &Ident,
    path: &Path,
) -> Result<()> {
    pg_restore(tools, login, database, role, None, path).await
}

/// What every restore needs: where the target lives and which backup it is.
pub(crate) struct Restore<'a> {
    /// The deployment.
    pub(crate) storage: &'a TenantStorage,
    /// The client tools.
    pub(crate) tools: &'a PgTools,
    /// The tenant restored into.
    pub(crate) tenant: &'a Tenant,
    /// Its storage names.
    pub(crate) target: &'a Target,
    /// The backup (names scratch objects).
    pub(crate) backup: BackupId,
}

impl Restore<'_> {
    /// What both restores stage with: the tenant role, this restore's login (a member of
    /// that role only), and the name of this restore's scratch database.
    async fn staging(&self) -> Result<(&Ident, OperationLogin, Ident)> {
        let role = self.target.role()?;
        let scratch = scratch_name("tm_restore_", self.backup)?;
        let login =
            OperationLogin::create(self.storage, &self.target.server, Reach::MemberOf(role))
                .await?;
        Ok((role, login, scratch))
    }
}

/// A scratch database name for one restore.
fn scratch_name(prefix: &str, id: BackupId) -> Result<Ident> {
    let hex = id.as_uuid().simple().to_string();
    Ident::new(&format!("{prefix}{}", &hex[hex.len() - 16..]), "database")
}

/// `DROP DATABASE IF EXISTS <database> WITH (FORCE)`.
fn drop_database(database: &Ident) -> String {
    format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")
}

/// Creates the scratch database afresh (dropping what an interrupted restore left), owned by
/// `role`.
async fn create_scratch(maint: &mut PgConnection, scratch: &Ident, role: &Ident) -> Result<()> {
    pg::ddl(maint, drop_database(scratch)).await?;
    pg::create_database(maint, scratch, Some(role), None).await?;
    Ok(())
}

/// Replaces a database-isolated tenant's database with the backup: restored into a fresh
/// database owned by the tenant role (by a login that is a member of that role only), which
/// then takes the old one's place.
pub(crate) async fn restore_database(job: &Restore<'_>, path: &Path) -> Result<()> {
    let Restore {
        storage,
        tools,
        tenant,
        target,
        ..
    } = *job;
    let (role, login, scratch) = job.staging().await?;
    let result = async {
        let mut maint = storage.connect_maintenance(&target.server).await?;
        let done = async {
            create_scratch(&mut maint, &scratch, role).await?;
            let db = &target.database;
            let staged = async {
                pg_restore(tools, &login, &scratch, role, None, path).await?;
                // `DROP DATABASE` refuses to run in a multi-statement block: two round trips.
                pg::ddl(&mut maint, drop_database(db)).await
            }
            .await;
            if let Err(e) = staged {
                let _ = pg::ddl(&mut maint, drop_database(&scratch)).await;
                return Err(e);
            }
            // Should the rename fail, the restored copy stays under the scratch name.
            pg::ddl(
                &mut maint,
                format!("ALTER DATABASE {scratch} RENAME TO {db}"),
            )
            .await?;
            database::secure(&mut maint, db, role, &pg::tenant_marker(tenant.id)).await
        }
        .await;
        pg::close(maint).await;
        done
    }
    .await;
    login.drop(storage).await;
    result
}

/// Replaces a schema-isolated tenant's schema with the backup, which may come from another
/// schema (a clone). Every step that reads or writes the tenant's objects runs as a login
/// that is a member of the tenant role only: restored into a scratch database owned by that
/// role, renamed there to this restore's staging name, dumped again, and restored under that
/// name into the tenant's database (in a schema the admin creates for the tenant role). Then
/// one transaction puts it in the old schema's place and drops the old one, so a restore
/// interrupted at any point leaves the tenant's schema as it was, and can be run again.
pub(crate) async fn restore_schema(
    job: &Restore<'_>,
    source_schema: &str,
    path: &Path,
    renamed_path: &Path,
) -> Result<()> {
    let (_, login, _) = job.staging().await?;
    let result = restore_schema_as(job, &login, source_schema, path, renamed_path).await;
    login.drop(job.storage).await;
    result
}

async fn restore_schema_as(
    job: &Restore<'_>,
    login: &OperationLogin,
    source_schema: &str,
    path: &Path,
    renamed_path: &Path,
) -> Result<()> {
    let Restore {
        storage,
        tools,
        tenant,
        target,
        backup,
    } = *job;
    let role = target.role()?;
    let scratch = scratch_name("tm_restore_", backup)?;
    let staging = scratch_name("tm_new_", backup)?;
    let old = scratch_name("tm_old_", backup)?;
    let schema = target
        .schema
        .as_ref()
        .ok_or_else(|| tenant_manager_core::Error::internal("schema tenant without schema"))?;
    let source = Ident::new(source_schema, "backup.source")?;

    let mut maint = storage.connect_maintenance(&target.server).await?;
    let staged = async {
        create_scratch(&mut maint, &scratch, role).await?;
        // The dumped tables' wall policies name the wall's objects.
        crate::wall::install_in(storage, &target.server, &scratch, role).await?;
        pg_restore(tools, login, &scratch, role, None, path).await?;
        let mut conn = login.connect(&scratch).await?;
        let renamed = pg::ddl(
            &mut conn,
            format!("ALTER SCHEMA {source} RENAME TO {staging}"),
        )
        .await;
        pg::close(conn).await;
        renamed?;
        pg_dump(
            tools,
            &login.tool_conn(),
            &scratch,
            Some(&staging),
            None,
            renamed_path,
        )
        .await
    }
    .await;
    let _ = pg::ddl(&mut maint, drop_database(&scratch)).await;
    pg::close(maint).await;
    staged?;

    let marker = quote_literal(&pg::tenant_marker(tenant.id));
    let mut conn = storage.connect(&target.server, &target.database).await?;
    let swapped = async {
        // What an interrupted restore of this backup left goes first.
        pg::ddl(
            &mut conn,
            format!(
                "DROP SCHEMA IF EXISTS {staging} CASCADE; \
                 CREATE SCHEMA {staging} AUTHORIZATION {role}; \
                 REVOKE ALL ON SCHEMA {staging} FROM PUBLIC"
            ),
        )
        .await?;
        let restored = pg_restore(
            tools,
            login,
            &target.database,
            role,
            Some(&staging),
            renamed_path,
        )
        .await;
        if let Err(e) = restored {
            let _ = pg::ddl(
                &mut conn,
                format!("DROP SCHEMA IF EXISTS {staging} CASCADE"),
            )
            .await;
            return Err(e);
        }
        let exists = pg::exists(&mut conn, Object::Schema, schema).await?;
        let (move_old, drop_old) = if exists {
            (
                format!("ALTER SCHEMA {schema} RENAME TO {old}; "),
                format!("; DROP SCHEMA {old} CASCADE"),
            )
        } else {
            (String::new(), String::new())
        };
        // One simple-protocol batch: one transaction.
        pg::ddl(
            &mut conn,
            format!(
                "{move_old}ALTER SCHEMA {staging} RENAME TO {schema}; \
                 COMMENT ON SCHEMA {schema} IS {marker}{drop_old}"
            ),
        )
        .await?;
        // Dumps carry no privileges, and a clone's policies name the source tenant: the
        // restored schema is put behind the wall for this tenant (until then its policies admit
        // no session of this tenant: closed, never open).
        if let Some(wall) = storage.wall()? {
            let mut tx = sqlx::Connection::begin(&mut conn)
                .await
                .map_db(Entity::Backup)?;
            pg::lock_shared_database(&mut tx, &target.database).await?;
            crate::wall::wall_schema_tenant(
                &mut tx,
                wall,
                role,
                schema,
                &target.database,
                tenant.id,
            )
            .await?;
            tx.commit().await.map_db(Entity::Backup)?;
        }
        Ok(())
    }
    .await;
    pg::close(conn).await;
    swapped
}
