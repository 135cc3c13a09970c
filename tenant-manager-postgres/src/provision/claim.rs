//! Claiming shared databases created before storage prefixes.
//!
//! Older versions marked every shared database `tenant-manager:shared`, whichever deployment
//! created it; the provisioner now uses a shared database only when it is marked
//! `tenant-manager:shared:<prefix>`. [`TenantStorage::claim_legacy_shared_databases`] re-marks
//! a legacy database as this deployment's when everything tenant-manager put in it belongs to
//! tenants of this deployment's registry, and takes from its schema tenants' roles what they
//! no longer get (`LOGIN`, `TEMPORARY`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sqlx::PgConnection;
use tenant_manager_core::{Entity, Result, ServerId};
use uuid::Uuid;

use super::shared::tenant_tables;
use crate::ident::Ident;
use crate::pg::{self, LEGACY_SHARED_MARKER, SqlxResultExt, TENANT_MARKER_PREFIX};
use crate::storage::TenantStorage;

/// What [`TenantStorage::claim_legacy_shared_databases`] found, per database
/// (`<server>/<database>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SharedClaimReport {
    /// Legacy databases now marked as this deployment's.
    pub claimed: Vec<String>,
    /// Databases already marked as this deployment's.
    pub already_ours: Vec<String>,
    /// Databases left alone, with the reason (another deployment's marker, or objects of
    /// tenants this registry does not know).
    pub refused: Vec<(String, String)>,
}

impl TenantStorage {
    /// Marks as this deployment's every legacy shared database (marked `tenant-manager:shared`
    /// by an older version) that holds only this registry's tenants: the databases of the
    /// registry's schema and shared tenants on every server, and `also` (e.g. the configured
    /// default shared database) on the default server. A database that does not exist is
    /// skipped. Claiming also closes the database to `PUBLIC` (no `CONNECT`, no `TEMPORARY`)
    /// and makes its schema tenants' roles `NOLOGIN` without `TEMPORARY`. Idempotent.
    ///
    /// # Errors
    /// `Unavailable` when a server cannot be reached; database errors otherwise. A database
    /// that cannot be claimed is reported in [`SharedClaimReport::refused`], not an error.
    pub async fn claim_legacy_shared_databases(&self, also: &[&str]) -> Result<SharedClaimReport> {
        let known: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM tm_tenants")
            .fetch_all(&self.global)
            .await
            .map_db(Entity::Tenant)?;
        let known: BTreeSet<Uuid> = known.into_iter().collect();
        let mut report = SharedClaimReport::default();
        for (server, databases) in self.shared_databases(also).await? {
            for database in databases {
                let database = Ident::new(&database, "placement.database")?;
                let name = format!("{server}/{}", database.as_str());
                let Some(mut conn) = self.connect_existing(&server, &database).await? else {
                    continue;
                };
                let outcome = self.claim_one(&mut conn, &database, &known).await;
                pg::close(conn).await;
                match outcome? {
                    Claim::Claimed => report.claimed.push(name),
                    Claim::AlreadyOurs => report.already_ours.push(name),
                    Claim::Refused(why) => report.refused.push((name, why)),
                }
            }
        }
        Ok(report)
    }

    /// The databases of schema and shared tenants per server, plus `also` on the default one.
    async fn shared_databases(
        &self,
        also: &[&str],
    ) -> Result<BTreeMap<ServerId, BTreeSet<String>>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT server_id, database_name FROM tm_tenants \
             WHERE isolation IN ('schema', 'shared')",
        )
        .fetch_all(&self.global)
        .await
        .map_db(Entity::Tenant)?;
        let mut found: BTreeMap<ServerId, BTreeSet<String>> = BTreeMap::new();
        for (server, database) in rows {
            let server = ServerId::new(server)?;
            if self.servers.get(&server).is_ok() {
                found.entry(server).or_default().insert(database);
            }
        }
        for database in also {
            found
                .entry(ServerId::default_server())
                .or_default()
                .insert((*database).to_owned());
        }
        Ok(found)
    }

    async fn claim_one(
        &self,
        conn: &mut PgConnection,
        database: &Ident,
        known: &BTreeSet<Uuid>,
    ) -> Result<Claim> {
        let ours = self.shared_marker();
        let comment = pg::current_database_comment(conn).await?;
        match comment.as_deref() {
            Some(c) if c == ours => return Ok(Claim::AlreadyOurs),
            Some(LEGACY_SHARED_MARKER) => {}
            other => {
                return Ok(Claim::Refused(format!(
                    "marked {:?}, not as a legacy shared database",
                    other.unwrap_or("")
                )));
            }
        }
        // Schemas tenant-manager created for tenants: each must be one of ours.
        let schemas: Vec<(String, String)> = sqlx::query_as(
            "SELECT nspname::text, obj_description(oid, 'pg_namespace') FROM pg_namespace \
             WHERE obj_description(oid, 'pg_namespace') LIKE 'tenant-manager:tenant:%' \
             ORDER BY 1",
        )
        .fetch_all(&mut *conn)
        .await
        .map_db(Entity::Tenant)?;
        let mut roles = Vec::new();
        for (schema, marker) in &schemas {
            let id = marker
                .strip_prefix(TENANT_MARKER_PREFIX)
                .and_then(|id| Uuid::parse_str(id).ok());
            match id {
                Some(id) if known.contains(&id) => roles.push(Ident::new(schema, "role")?),
                _ => {
                    return Ok(Claim::Refused(format!(
                        "schema {schema} belongs to a tenant this registry does not know"
                    )));
                }
            }
        }
        // Rows of shared tenants: each tenant_id must be one of ours, which only a login that
        // row-level security does not bind can tell.
        let sees_all: bool = sqlx::query_scalar(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut *conn)
        .await
        .map_db(Entity::Tenant)?;
        if !sees_all {
            return Ok(Claim::Refused(
                "the admin login is bound by row-level security and cannot check the shared rows"
                    .to_owned(),
            ));
        }
        let known_ids: Vec<Uuid> = known.iter().copied().collect();
        let schema = self.settings.shared_schema.as_str();
        for table in tenant_tables(conn, schema).await? {
            let stranger: Option<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT tenant_id FROM {table} WHERE tenant_id <> ALL($1) LIMIT 1"
            )))
            .bind(&known_ids)
            .fetch_optional(&mut *conn)
            .await
            .map_db(Entity::Tenant)?;
            if stranger.is_some() {
                return Ok(Claim::Refused(format!(
                    "table {table} holds rows of a tenant this registry does not know"
                )));
            }
        }
        pg::mark_shared_database(conn, database, &ours).await?;
        for role in roles {
            pg::ddl(
                conn,
                format!(
                    "ALTER ROLE {role} NOLOGIN; REVOKE TEMPORARY ON DATABASE {database} FROM {role}"
                ),
            )
            .await?;
        }
        Ok(Claim::Claimed)
    }
}

/// The outcome for one database.
enum Claim {
    Claimed,
    AlreadyOurs,
    Refused(String),
}
