//! Migrating one tenant's storage: the step the provisioner and the fleet migrator share.

use tenant_manager_core::{Entity, Error, Isolation, Result, Tenant};
use tracing::Instrument;

use super::apply::apply;
use super::conns::Connections;
use super::outcome::{Applied, Outcome, current_version};
use super::record::{self, Recorded};
use super::scope::Scope;
use crate::pg::{self, SqlxResultExt, lock_key};
use crate::storage::{Target, TenantStorage};

/// The scope a tenant's migrations and seeds run in.
pub(crate) fn scope_of<'a>(
    storage: &'a TenantStorage,
    target: &'a Target,
    tenant: &Tenant,
) -> Result<Scope<'a>> {
    let missing = || Error::internal("tenant target lacks a role or schema");
    Ok(match target.isolation {
        Isolation::Database => Scope::Database {
            role: target.role.as_ref().ok_or_else(missing)?,
        },
        Isolation::Schema => Scope::Schema {
            role: target.role.as_ref().ok_or_else(missing)?,
            schema: target.schema.as_ref().ok_or_else(missing)?,
            tenant: tenant.id,
            wall: storage.wall()?,
        },
        Isolation::Shared => Scope::Shared {
            owner: &storage.settings.shared_owner,
            schema: &storage.settings.shared_schema,
            tenant: Some(tenant.id),
            wall: storage.wall()?,
        },
    })
}

/// The advisory lock key of migrating a target: per database for database isolation, per
/// schema for schema isolation, per shared database for shared isolation.
fn migration_key(target: &Target) -> i64 {
    let schema = target.schema.as_ref().map_or("", |s| s.as_str());
    lock_key(
        "migrate",
        &[
            target.server.as_str(),
            target.database.as_str(),
            target.isolation.as_str(),
            schema,
        ],
    )
}

/// Applies the tenant's migration set to its storage and records the version reached (or the
/// failure) in the global database. Returns versions before and after.
pub(crate) async fn migrate_tenant(storage: &TenantStorage, tenant: &Tenant) -> Result<Applied> {
    let conns = Connections::single(storage);
    let outcome = migrate_and_record(&conns, tenant).await;
    conns.close().await;
    outcome.map_err(|failed| failed.error)
}

/// [`migrate_tenant`] on a connection of `conns` (given back when the tenant migrated
/// cleanly), keeping on failure the version the tenant reached.
pub(crate) async fn migrate_and_record(conns: &Connections<'_>, tenant: &Tenant) -> Outcome {
    let storage = conns.storage();
    let outcome = migrate_unrecorded(conns, tenant).await;
    let span = tracing::debug_span!("migrate.record");
    match &outcome {
        Ok(applied) => {
            let recorded = Recorded::Migrated(applied.after);
            record::record(&storage.global, tenant.id, recorded)
                .instrument(span)
                .await?;
        }
        Err(failed) => {
            // The migration's own error matters more than a failure to record it.
            let error = record::error_text(&failed.error);
            let recorded = Recorded::Failed {
                reached: failed.reached,
                error: &error,
            };
            let _ = record::record(&storage.global, tenant.id, recorded)
                .instrument(span)
                .await;
        }
    }
    outcome
}

async fn migrate_unrecorded(conns: &Connections<'_>, tenant: &Tenant) -> Outcome {
    let storage = conns.storage();
    let target = storage.target(tenant)?;
    let migrator = storage
        .migrations
        .migrator(tenant.isolation)
        .ok_or_else(|| Error::invalid("isolation", "no migrations for this isolation mode"))?;
    let scope = scope_of(storage, &target, tenant)?;
    let mut conn = conns
        .checkout(&target)
        .instrument(tracing::debug_span!("migrate.connect"))
        .await?;
    let outcome = apply(&mut conn, scope, migrator, migration_key(&target)).await;
    let span = tracing::debug_span!("migrate.close");
    if outcome.is_ok() {
        conns.checkin(&target, conn).instrument(span).await;
    } else {
        // A failed run may leave a transaction, a lock or a scope behind: never reused.
        pg::close(conn).instrument(span).await;
    }
    outcome
}

/// Reads the version a tenant's storage is at (after a restore) and records it.
pub(crate) async fn refresh_version(storage: &TenantStorage, tenant: &Tenant) -> Result<i64> {
    let target = storage.target(tenant)?;
    let mut conn = storage.connect(&target.server, &target.database).await?;
    let version = async {
        let mut tx = sqlx::Connection::begin(&mut conn)
            .await
            .map_db(Entity::Tenant)?;
        scope_of(storage, &target, tenant)?
            .enter(&mut tx, true)
            .await?;
        let version = current_version(&mut tx).await?;
        let _ = tx.rollback().await;
        Ok(version)
    }
    .await;
    pg::close(conn).await;
    let version = version?;
    record::record(&storage.global, tenant.id, Recorded::Migrated(version)).await?;
    Ok(version)
}
