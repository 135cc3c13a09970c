//! Applying a set with pending migrations marked `-- no-transaction` (sqlx's convention, for
//! statements Postgres refuses inside a transaction block such as `CREATE INDEX CONCURRENTLY`).
//!
//! The scope and the migration lock are held by the session; each migration commits on its
//! own (sqlx runs the others each in a transaction), so a failure leaves the tenant at the
//! last migration that succeeded, and a rerun continues from there.
//!
//! A concurrent index build that fails leaves an invalid index behind (Postgres keeps it, and
//! keeps updating it on every write), and the rerun's `CREATE INDEX CONCURRENTLY` would then
//! fail with "already exists". So after a failure, the invalid indexes of the scope's role that
//! appeared during the run and are not being built by anyone are dropped
//! (`DROP INDEX CONCURRENTLY`), as the Postgres documentation recommends. An invalid index left
//! by a crashed process is not dropped: nothing tells it apart from one the host keeps; the
//! tenant's recorded error names it.

use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, PgConnection};
use tenant_manager_core::{Entity, Result};

use super::outcome::{Applied, Failed, Outcome, current_version};
use super::scope::Scope;
use super::verify::verify;
use crate::ident::quote_ident;
use crate::pg::{self, Hold, SqlxResultExt, map_migrate};

/// Applies `migrator` migration by migration under the session-level lock `lock_key`.
pub(super) async fn apply_without_transaction(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    migrator: &Migrator,
    lock_key: i64,
) -> Outcome {
    pg::acquire(conn, lock_key, Hold::Session).await?;
    let outcome = run(conn, scope, migrator).await;
    // Best effort: the caller closes this connection anyway, which releases both.
    let _ = Scope::leave(conn).await;
    let _ = pg::release(conn, lock_key).await;
    outcome
}

async fn run(conn: &mut PgConnection, scope: Scope<'_>, migrator: &Migrator) -> Outcome {
    scope.enter(conn, false).await?;
    let before = current_version(conn).await?;
    let invalid_before = invalid_indexes(conn).await?;
    let result = match migrator.run_direct(None, &mut *conn, false).await {
        Ok(()) => verify(conn, scope).await,
        Err(err) => {
            let error = map_migrate(err);
            drop_new_invalid_indexes(conn, &invalid_before).await;
            Err(error)
        }
    };
    match result {
        Ok(()) => {
            let after = current_version(conn).await?;
            Ok(Applied { before, after })
        }
        Err(error) => Err(Failed {
            error,
            reached: current_version(conn).await.ok(),
        }),
    }
}

/// An index by oid and its quoted, schema-qualified name.
type Index = (i64, String);

/// Invalid indexes owned by the current role that no session is building.
async fn invalid_indexes(conn: &mut PgConnection) -> Result<Vec<Index>> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT i.indisvalid AND pg_get_userbyid(c.relowner) = current_user \
           AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p \
                           WHERE p.index_relid = c.oid) \
         ORDER BY 1",
    )
    .fetch_all(conn)
    .await
    .map_db(Entity::Record)?;
    Ok(rows
        .into_iter()
        .map(|(oid, schema, name)| {
            (
                oid,
                format!("{}.{}", quote_ident(&schema), quote_ident(&name)),
            )
        })
        .collect())
}

/// Drops the invalid indexes that were not there before the run (best effort: a failure to
/// drop one is logged, the migration's own error is what the caller reports).
async fn drop_new_invalid_indexes(conn: &mut PgConnection, before: &[Index]) {
    let now = match invalid_indexes(conn).await {
        Ok(now) => now,
        Err(err) => {
            tracing::warn!(error = %err, "cannot list invalid indexes after a failed migration");
            return;
        }
    };
    for (oid, name) in now {
        if before.iter().any(|(old, _)| *old == oid) {
            continue;
        }
        let dropped = sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP INDEX CONCURRENTLY IF EXISTS {name}"
        )))
        .execute(&mut *conn)
        .await;
        match dropped {
            Ok(_) => {
                tracing::warn!(index = %name, "dropped the invalid index of a failed migration")
            }
            Err(err) => tracing::warn!(
                index = %name,
                error = %err,
                "cannot drop the invalid index of a failed migration"
            ),
        }
    }
}
