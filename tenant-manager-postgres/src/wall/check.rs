//! Checking the wall across a deployment: at start-up (cheap) and on demand (every tenant).

use serde::Serialize;
use sqlx::{Connection, PgConnection};
use tenant_manager_core::{Entity, Result};
use time::OffsetDateTime;

use super::admin::WallAdmin;
use super::databases::{Database, databases};
use super::install::installed;
use super::secure::{Guard, secure_schema};
use crate::ident::Ident;
use crate::pg::{self, Object, SqlxResultExt};
use crate::storage::{TenantStorage, WallContext};

/// One key of one database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WallKeyState {
    /// Server id.
    pub server: String,
    /// Database.
    pub database: String,
    /// Key id.
    pub key_id: i32,
    /// Valid from.
    #[serde(with = "time::serde::rfc3339")]
    pub valid_from: OffsetDateTime,
    /// Valid until (none: no end).
    #[serde(with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
    /// Valid now.
    pub valid_now: bool,
}

/// What [`WallAdmin::check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WallCheck {
    /// Every key of every walled database.
    pub keys: Vec<WallKeyState>,
    /// Problems, one line each (a database without the wall, the signing key not valid, a
    /// tenant schema or shared table that bypasses the wall); empty when all is well.
    pub problems: Vec<String>,
}

impl WallCheck {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl WallAdmin {
    /// The start-up check, cheap enough for every boot: each database of schema and shared
    /// tenants has the wall and accepts the signing key now. Returns the problems (empty when
    /// the instance may serve); [`check`](Self::check) looks at every tenant as well.
    pub async fn ready(&self) -> Result<Vec<String>> {
        let wall = self.context()?;
        let mut problems = Vec::new();
        for (server, database) in databases(&self.storage).await?.into_keys() {
            let ident = Ident::new(&database, "placement.database")?;
            let Some(mut conn) = self.storage.connect_existing(&server, &ident).await? else {
                continue;
            };
            let found = key_problem(&mut conn, wall).await;
            pg::close(conn).await;
            if let Some(problem) = found? {
                problems.push(format!("{server}/{database}: {problem}"));
            }
        }
        Ok(problems)
    }

    /// Checks every database of schema and shared tenants: the wall is installed, the signing
    /// key is valid now, and no tenant schema or shared table bypasses it. Start-up runs it and
    /// refuses to serve when a problem is found.
    pub async fn check(&self) -> Result<WallCheck> {
        let wall = self.context()?;
        let mut check = WallCheck::default();
        for ((server, database), found) in databases(&self.storage).await? {
            let ident = Ident::new(&database, "placement.database")?;
            let Some(mut conn) = self.storage.connect_existing(&server, &ident).await? else {
                continue;
            };
            let checked = check_database(&mut conn, wall, &self.storage, &found).await;
            pg::close(conn).await;
            let (keys, problems) = checked?;
            let here = format!("{server}/{database}");
            check.keys.extend(keys.into_iter().map(
                |(key_id, valid_from, valid_until, valid_now)| WallKeyState {
                    server: server.to_string(),
                    database: database.clone(),
                    key_id,
                    valid_from,
                    valid_until,
                    valid_now,
                },
            ));
            check
                .problems
                .extend(problems.into_iter().map(|p| format!("{here}: {p}")));
        }
        Ok(check)
    }
}

type KeyRow = (i32, OffsetDateTime, Option<OffsetDateTime>, bool);

/// Keys and problems of one database.
async fn check_database(
    conn: &mut PgConnection,
    wall: WallContext<'_>,
    storage: &TenantStorage,
    found: &Database,
) -> Result<(Vec<KeyRow>, Vec<String>)> {
    if !installed(conn).await? {
        return Ok((Vec::new(), vec![NOT_INSTALLED.to_owned()]));
    }
    let keys: Vec<KeyRow> = sqlx::query_as(
        "SELECT key_id, valid_from, valid_until, \
                valid_from <= now() AND (valid_until IS NULL OR valid_until > now()) \
         FROM wall_private.keys ORDER BY key_id",
    )
    .fetch_all(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    let mut problems = Vec::new();
    if !keys
        .iter()
        .any(|(id, _, _, valid)| *id == wall.keys.key_id() && *valid)
    {
        problems.push(key_not_valid(wall));
    }
    // The checks run in a transaction rolled back at the end: securing looks, and here must
    // not change anything.
    let mut tx = conn.begin().await.map_db(Entity::Tenant)?;
    for (tenant, _, schema) in &found.schemas {
        if !pg::exists(&mut tx, Object::Schema, schema).await? {
            continue;
        }
        let mut probe = tx.begin().await.map_db(Entity::Tenant)?;
        let secured =
            secure_schema(&mut probe, schema, Guard::Tenant(*tenant), wall, "schema").await;
        problems.extend(problem(secured, "schema", schema));
        let _ = probe.rollback().await;
    }
    if found.shared {
        let schema = &storage.settings.shared_schema;
        let mut probe = tx.begin().await.map_db(Entity::Tenant)?;
        let secured = secure_schema(&mut probe, schema, Guard::Column, wall, "shared_schema").await;
        problems.extend(problem(secured, "shared schema", schema));
        let _ = probe.rollback().await;
    }
    let _ = tx.rollback().await;
    Ok((keys, problems))
}

/// The problem a dry run of [`secure_schema`] revealed, if any.
fn problem(secured: Result<usize>, what: &str, schema: &Ident) -> Option<String> {
    match secured {
        Ok(0) => None,
        Ok(_) => Some(format!(
            "{what} {} is not fully behind the wall (run `tenant-cli wall migrate`)",
            schema.as_str()
        )),
        Err(e) => Some(e.to_string()),
    }
}

/// Why the connected database cannot admit this deployment's checkouts, if it cannot.
async fn key_problem(conn: &mut PgConnection, wall: WallContext<'_>) -> Result<Option<String>> {
    if !installed(conn).await? {
        return Ok(Some(NOT_INSTALLED.to_owned()));
    }
    let valid: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM wall_private.keys WHERE key_id = $1 \
           AND valid_from <= now() AND (valid_until IS NULL OR valid_until > now()))",
    )
    .bind(wall.keys.key_id())
    .fetch_one(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    Ok((!valid).then(|| key_not_valid(wall)))
}

/// The problem of a database without the wall.
const NOT_INSTALLED: &str = "the tenant wall is not installed (run `tenant-cli wall migrate`)";

/// The problem of a database that does not accept the signing key now.
fn key_not_valid(wall: WallContext<'_>) -> String {
    format!(
        "wall key {} is not valid here (run `tenant-cli wall rotate-key`)",
        wall.keys.key_id()
    )
}
