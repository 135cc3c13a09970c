//! Applying a migration set to one tenant's storage.

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection};
use tenant_manager_core::{Entity, Result};
use tracing::Instrument;

use super::no_tx::apply_without_transaction;
use super::outcome::{Applied, Outcome, current_version};
use super::scope::Scope;
use super::verify::verify;
use crate::ident::Ident;
use crate::pg::{self, Hold, SqlxResultExt, map_migrate};

/// Applies `migrator` inside `scope` on `conn`, under the advisory lock `lock_key` of that
/// database (so two processes never migrate one tenant at once).
///
/// Everything runs in one transaction, each migration in a savepoint, so a failing migration
/// leaves the tenant exactly at its previous version. When a pending migration is marked
/// `-- no-transaction`, the set runs with session-level scope and lock instead
/// ([`super::no_tx`]): each migration commits on its own, and a failure leaves the tenant at
/// the last migration that succeeded.
pub(crate) async fn apply(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    migrator: &Migrator,
    lock_key: i64,
) -> Outcome {
    let mut tx = async {
        let mut tx = conn.begin().await.map_db(Entity::Record)?;
        pg::acquire(&mut tx, lock_key, Hold::Transaction).await?;
        Ok::<_, tenant_manager_core::Error>(tx)
    }
    .instrument(tracing::debug_span!("migrate.lock"))
    .await?;
    scope
        .enter(&mut tx, true)
        .instrument(tracing::debug_span!("migrate.enter"))
        .await?;
    let before = current_version(&mut tx)
        .instrument(tracing::debug_span!("migrate.version"))
        .await?;
    let needs_no_tx = migrator
        .iter()
        .any(|m| m.version > before && m.no_tx && !m.migration_type.is_down_migration());
    if !needs_no_tx {
        migrator
            .run_direct(None, &mut *tx, false)
            .instrument(tracing::debug_span!("migrate.apply"))
            .await
            .map_err(map_migrate)?;
        let after = current_version(&mut tx)
            .instrument(tracing::debug_span!("migrate.version"))
            .await?;
        verify(&mut tx, scope)
            .instrument(tracing::debug_span!("migrate.verify"))
            .await?;
        tx.commit()
            .instrument(tracing::debug_span!("migrate.commit"))
            .await
            .map_db(Entity::Record)?;
        return Ok(Applied { before, after });
    }
    tx.rollback().await.map_db(Entity::Record)?;
    apply_without_transaction(conn, scope, migrator, lock_key).await
}

/// Applies the isolated set to a template database being built, as the template owner. The
/// builder holds the server's template lock and the database is not yet a template, so the
/// migration lock taken here never waits.
pub(crate) async fn apply_to_template(
    conn: &mut PgConnection,
    owner: &Ident,
    migrator: &Migrator,
) -> Result<()> {
    let key = pg::lock_key("migrate", &["template"]);
    apply(conn, Scope::Database { role: owner }, migrator, key)
        .await
        .map(|_| ())
        .map_err(|failed| failed.error)
}
