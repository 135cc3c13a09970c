//! Drift detection: does each tenant's schema still look like what its migration version makes?
//!
//! [`DriftChecker::check`] reads, for every tenant with a recorded migration version, its
//! schema from the catalogue (tables and views with their row-level security switches,
//! columns, indexes, constraints, policies, enum and domain types) and compares it with the
//! expected schema of that version, listing what is missing, extra or changed:
//!
//! - Database tenants: the `public` schema of their database; schema tenants: their schema;
//!   shared tenants: the shared schema of each shared database, once, at the newest version
//!   its tenants recorded.
//! - The expected schema of a version is built for the check by applying the host's migrations
//!   up to that version to an empty schema of a scratch database on the same server (once per
//!   set, version and wall decoration), then putting it behind the wall as the migrator does.
//!   Template databases exist only for the newest version of the isolated set, so they cannot
//!   stand for older versions, nor for schema or shared tenants.
//! - Snapshots are normalised: the schema's own name, and a schema tenant's id (a constant of
//!   its wall policy), are replaced, so any two schemas compare.
//! - Tenant storage is only read, in read-only transactions, by at most
//!   [`DriftOptions::concurrency`] admin connections at once (plus one for the scratch database).

mod diff;
mod expected;
mod report;
mod snapshot;
mod targets;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use futures::StreamExt;
use tenant_manager_core::{Result, ServerId};

pub use diff::{Change, Difference};
pub use report::{
    DriftFailure, DriftOptions, DriftReport, DriftTenant, DriftedStorage, MAX_DRIFT_CONCURRENCY,
    StorageRef,
};
pub use snapshot::ObjectKind;

use expected::Shape;
use snapshot::{Normalise, Snapshot};
use targets::Checked;

use crate::pg;
use crate::storage::TenantStorage;

/// Compares every tenant's schema with the expected schema of its migration version.
#[derive(Clone)]
pub struct DriftChecker {
    storage: TenantStorage,
}

impl fmt::Debug for DriftChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriftChecker")
            .field("storage", &self.storage)
            .finish()
    }
}

/// What one storage's check found.
enum Found {
    Clean,
    Drifted(DriftedStorage),
    Failed(DriftFailure),
}

impl DriftChecker {
    /// A checker over the same storage description as the provisioner and the migrator.
    pub fn new(storage: TenantStorage) -> Self {
        Self { storage }
    }

    /// Checks every tenant the options select. An unfiltered check (no isolation) sets the
    /// gauges `tenant_manager_schema_drift_tenants`, `tenant_manager_schema_drift_objects{kind}`
    /// and `tenant_manager_schema_drift_check_failures`.
    ///
    /// # Errors
    /// `InvalidInput` for bad options; `Unavailable` when the global database cannot be
    /// reached. A storage that cannot be read, or a server where the expected schema cannot be
    /// built, is reported in [`DriftReport::failed`], not as an error of the call.
    pub async fn check(&self, options: &DriftOptions) -> Result<DriftReport> {
        options.validate()?;
        let checked = targets::list(&self.storage, options).await?;
        let mut shapes: BTreeMap<ServerId, BTreeSet<Shape>> = BTreeMap::new();
        for c in &checked {
            shapes.entry(c.server.clone()).or_default().insert(c.shape);
        }
        let mut expected: BTreeMap<
            ServerId,
            std::result::Result<BTreeMap<Shape, Snapshot>, String>,
        > = BTreeMap::new();
        for (server, shapes) in shapes {
            let shapes: Vec<Shape> = shapes.into_iter().collect();
            let built = expected::build(&self.storage, &server, &shapes)
                .await
                .map_err(|e| format!("cannot build the expected schema: {}", error_text(&e)));
            expected.insert(server, built);
        }
        let expected = &expected;
        let found: Vec<(usize, Found)> = futures::stream::iter(checked)
            .map(|c| async move {
                let built = expected.get(&c.server).map(|b| {
                    b.as_ref()
                        .map(|all| all.get(&c.shape))
                        .map_err(Clone::clone)
                });
                let tenants = c.tenants.len();
                match built {
                    Some(Ok(Some(want))) => (tenants, self.check_one(c, want).await),
                    Some(Err(error)) => (0, failure(&c, error)),
                    _ => (0, failure(&c, "no expected schema was built".to_owned())),
                }
            })
            .buffer_unordered(options.concurrency)
            .collect()
            .await;
        let mut report = DriftReport::default();
        for (tenants, found) in found {
            match found {
                Found::Clean => {}
                Found::Drifted(d) => report.drifted.push(d),
                Found::Failed(f) => {
                    report.failed.push(f);
                    continue;
                }
            }
            report.storages_checked += 1;
            report.tenants_checked += tenants;
        }
        report.drifted.sort_by(|a, b| a.storage.cmp(&b.storage));
        report.failed.sort_by(|a, b| a.storage.cmp(&b.storage));
        if options.isolation.is_none() {
            report.record_metrics();
        }
        Ok(report)
    }

    /// Reads one storage and compares it with `want`.
    async fn check_one(&self, c: Checked, want: &Snapshot) -> Found {
        match self.read(&c).await {
            Ok(actual) => {
                let differences = match actual {
                    None => vec![Difference::of(
                        ObjectKind::Storage,
                        c.schema.as_str(),
                        Change::Missing,
                        Some(format!("{}/{}", c.database.as_str(), c.schema.as_str())),
                        None,
                    )],
                    Some(actual) => {
                        let mut found = Vec::new();
                        if actual.version != c.shape.version {
                            found.push(Difference::of(
                                ObjectKind::MigrationVersion,
                                "_sqlx_migrations",
                                Change::Changed,
                                Some(c.shape.version.to_string()),
                                Some(actual.version.to_string()),
                            ));
                        }
                        found.extend(diff::compare(want, &actual));
                        found
                    }
                };
                if differences.is_empty() {
                    return Found::Clean;
                }
                Found::Drifted(DriftedStorage {
                    isolation: c.isolation,
                    storage: c.storage_ref(),
                    tenants: c.tenants,
                    version: c.shape.version,
                    differences,
                })
            }
            Err(e) => failure(&c, error_text(&e)),
        }
    }

    /// The snapshot of a storage; `None` when its database or schema does not exist.
    async fn read(&self, c: &Checked) -> Result<Option<Snapshot>> {
        let Some(mut conn) = self
            .storage
            .connect_existing(&c.server, &c.database)
            .await?
        else {
            return Ok(None);
        };
        let normalise = Normalise {
            tenant: c.own_tenant,
        };
        let read = snapshot::snapshot(&mut conn, &c.schema, normalise).await;
        pg::close(conn).await;
        read
    }
}

fn failure(c: &Checked, error: String) -> Found {
    Found::Failed(DriftFailure {
        storage: c.storage_ref(),
        tenants: c.tenants.clone(),
        error,
    })
}

fn error_text(e: &tenant_manager_core::Error) -> String {
    super::record::error_text(e)
}
