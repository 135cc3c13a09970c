//! `TenantMigrator`: applies the host's migrations to every tenant, with bounded concurrency,
//! progress, per-tenant results, a failure budget and an optional canary wave.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use sqlx::{AssertSqlSafe, FromRow};
use tenant_manager_core::{
    Actor, Entity, EventBus, EventKind, Result, Tenant, TenantEvent, TenantId, TenantStatus,
};
use tracing::Instrument;

use super::conns::Connections;
use super::report::{
    BehindTenant, FleetOptions, FleetProgress, FleetReport, ProgressFn, TenantMigration,
};
use super::tenant::{migrate_and_record, migrate_tenant};
use crate::pg::SqlxResultExt;
use crate::storage::TenantStorage;

#[derive(FromRow)]
struct BehindRow {
    #[sqlx(flatten)]
    tenant: crate::registry::TenantRow,
    version: i64,
    last_error: Option<String>,
}

/// Applies the host's tenant migrations to every tenant ("fleet migrations").
///
/// Which tenants are behind comes from one query on the global database (the version each
/// tenant was last migrated to), without connecting to any tenant. Each tenant migrates in one
/// transaction (migration by migration when one is marked `-- no-transaction`) under its own
/// advisory lock, so a rerun after failures finishes only what is behind, and a provisioning
/// run and a fleet run never migrate one tenant at once.
///
/// A fleet run reuses the admin connections of a database from one tenant to the next (reset
/// in between; a connection whose tenant failed is closed). Each tenant's work runs in `debug`
/// spans (`migrate.tenant`, and inside it `migrate.connect`, `.lock`, `.enter`, `.version`,
/// `.apply`, `.verify` with the wall's `secure.*`, `.commit`, `.close`, `.record`), so a
/// subscriber can tell where a run's time goes (`benches/provision.rs` sums them).
#[derive(Clone)]
pub struct TenantMigrator {
    storage: TenantStorage,
    /// Where each migrated tenant is published as a `migrated` event, and by whom.
    events: Option<(Arc<dyn EventBus>, Actor)>,
}

/// Longest a `migrated` event's publish may hold up the fleet run.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

impl fmt::Debug for TenantMigrator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantMigrator")
            .field("storage", &self.storage)
            .field("events", &self.events)
            .finish()
    }
}

impl TenantMigrator {
    /// A migrator over the same storage description as the provisioner.
    pub fn new(storage: TenantStorage) -> Self {
        Self {
            storage,
            events: None,
        }
    }

    /// Publishes a [`EventKind::Migrated`] event on `bus` for every tenant a fleet run moves
    /// to a newer version (details `from_version`, `to_version`), caused by `actor`. A
    /// refused publish is logged and counted (`tenant_events_publish_failures_total`) and
    /// never fails the run.
    #[must_use]
    pub fn with_events(mut self, bus: Arc<dyn EventBus>, actor: Actor) -> Self {
        self.events = Some((bus, actor));
        self
    }

    /// Publishes that `tenant` went from `from` to `to`.
    async fn publish_migrated(&self, tenant: &Tenant, from: i64, to: i64) {
        let Some((bus, actor)) = &self.events else {
            return;
        };
        if to <= from {
            return;
        }
        let event = TenantEvent::new(EventKind::Migrated, tenant, actor.clone())
            .with_details(serde_json::json!({ "from_version": from, "to_version": to }));
        match tokio::time::timeout(PUBLISH_TIMEOUT, bus.publish(&event)).await {
            Ok(Ok(())) => {
                metrics::counter!("tenant_events_published_total", "kind" => "migrated")
                    .increment(1);
            }
            outcome => {
                let error = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                tracing::warn!(tenant = %tenant.id, event = %event.id, %error, "publishing a migrated event failed");
                metrics::counter!("tenant_events_publish_failures_total", "kind" => "migrated")
                    .increment(1);
            }
        }
    }

    /// Tenants in `statuses` whose recorded version is behind their set's latest, in id order.
    ///
    /// # Errors
    /// `Unavailable` when the global database cannot be reached.
    pub async fn behind(&self, statuses: &[TenantStatus]) -> Result<Vec<BehindTenant>> {
        let isolated = self
            .storage
            .migrations
            .latest_version(tenant_manager_core::Isolation::Database);
        let shared = self
            .storage
            .migrations
            .latest_version(tenant_manager_core::Isolation::Shared);
        let columns = crate::registry::tenant_columns("t");
        let sql = format!(
            "SELECT {columns}, coalesce(m.version, 0) AS version, m.last_error \
             FROM tm_tenants t LEFT JOIN tm_tenant_migrations m ON m.tenant_id = t.id \
             WHERE t.status = ANY($1) \
               AND coalesce(m.version, 0) < CASE t.isolation WHEN 'shared' THEN $3 ELSE $2 END \
             ORDER BY t.id"
        );
        let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let rows = sqlx::query_as::<_, BehindRow>(AssertSqlSafe(sql))
            .bind(statuses)
            .bind(isolated)
            .bind(shared)
            .fetch_all(&self.storage.global)
            .await
            .map_db(Entity::Tenant)?;
        rows.into_iter()
            .map(|row| {
                let tenant = Tenant::try_from(row.tenant)?;
                let latest = self.storage.migrations.latest_version(tenant.isolation);
                Ok(BehindTenant {
                    tenant,
                    version: row.version,
                    latest,
                    last_error: row.last_error,
                })
            })
            .collect()
    }

    /// Migrates one tenant now. Returns the version it is at.
    ///
    /// # Errors
    /// `Unavailable` when its database cannot be reached; `Internal` naming the migration that
    /// failed (the tenant stays at its previous version, or, when a pending migration is marked
    /// `-- no-transaction`, at the last migration that succeeded).
    pub async fn migrate_tenant(&self, tenant: &Tenant) -> Result<i64> {
        migrate_tenant(&self.storage, tenant).await.map(|a| a.after)
    }

    /// Migrates every tenant that is behind.
    ///
    /// # Errors
    /// `InvalidInput` for bad options; `Unavailable` when the global database cannot be
    /// reached. Failures of single tenants are in the report, not errors of the call.
    pub async fn migrate_all(
        &self,
        options: &FleetOptions,
        progress: Option<ProgressFn>,
    ) -> Result<FleetReport> {
        options.validate()?;
        let behind = self.behind(&options.statuses).await?;
        let total = behind.len();
        let counters = Counters {
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            total,
        };
        let mut report = FleetReport::default();
        let mut rest = behind;
        if let Some(percent) = options.canary_percent {
            let n = (total * usize::from(percent))
                .div_ceil(100)
                .clamp(1, total.max(1));
            let canaries: Vec<BehindTenant> = rest.drain(..n.min(rest.len())).collect();
            self.wave(
                canaries,
                options,
                None,
                &counters,
                progress.as_ref(),
                &mut report,
            )
            .await;
            if report.failed() > 0 {
                report.halted = !rest.is_empty();
                report.not_started = rest.into_iter().map(|b| b.tenant.id).collect();
                return Ok(report);
            }
        }
        let budget = options.max_failures;
        self.wave(
            rest,
            options,
            budget,
            &counters,
            progress.as_ref(),
            &mut report,
        )
        .await;
        report.halted = !report.not_started.is_empty();
        Ok(report)
    }

    /// Migrates `tenants` with bounded concurrency; with a failure budget, stops starting
    /// tenants once it is spent.
    async fn wave(
        &self,
        tenants: Vec<BehindTenant>,
        options: &FleetOptions,
        budget: Option<usize>,
        counters: &Counters,
        progress: Option<&ProgressFn>,
        report: &mut FleetReport,
    ) {
        // One set of connections per wave: tenants of a database share warm backends.
        let pool = Connections::new(&self.storage);
        let conns = &pool;
        let outcomes: Vec<std::result::Result<TenantMigration, TenantId>> =
            futures::stream::iter(tenants)
                .map(|behind| async move {
                    if budget.is_some_and(|max| counters.failed.load(Ordering::SeqCst) >= max) {
                        return Err(behind.tenant.id);
                    }
                    let result = migrate_and_record(conns, &behind.tenant)
                        .instrument(tracing::debug_span!("migrate.tenant"))
                        .await;
                    if let Ok(applied) = &result {
                        self.publish_migrated(&behind.tenant, applied.before, applied.after)
                            .await;
                    }
                    let ok = result.is_ok();
                    let failed = if ok {
                        counters.failed.load(Ordering::SeqCst)
                    } else {
                        counters.failed.fetch_add(1, Ordering::SeqCst) + 1
                    };
                    let done = counters.done.fetch_add(1, Ordering::SeqCst) + 1;
                    metrics::counter!(
                        "tenant_migrations_total",
                        "outcome" => if ok { "ok" } else { "failed" }
                    )
                    .increment(1);
                    if let Some(progress) = progress {
                        progress(&FleetProgress {
                            tenant: behind.tenant.id,
                            ok,
                            done,
                            failed,
                            total: counters.total,
                        });
                    }
                    Ok(match result {
                        Ok(applied) => TenantMigration {
                            tenant: behind.tenant.id,
                            slug: behind.tenant.slug.to_string(),
                            from_version: applied.before,
                            to_version: applied.after,
                            error: None,
                        },
                        Err(failed) => TenantMigration {
                            tenant: behind.tenant.id,
                            slug: behind.tenant.slug.to_string(),
                            from_version: behind.version,
                            to_version: failed.reached.unwrap_or(behind.version),
                            error: Some(failed.error),
                        },
                    })
                })
                .buffer_unordered(options.concurrency)
                .collect()
                .await;
        pool.close().await;
        for outcome in outcomes {
            match outcome {
                Ok(result) => report.results.push(result),
                Err(id) => report.not_started.push(id),
            }
        }
    }
}

struct Counters {
    done: AtomicUsize,
    failed: AtomicUsize,
    total: usize,
}
