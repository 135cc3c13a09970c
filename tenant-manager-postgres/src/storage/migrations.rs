//! `TenantMigrations`: the host's migration sets for tenant storage.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::migrate::Migrator;
use tenant_manager_core::Isolation;

/// The host's migrations for tenant storage.
///
/// - `isolated` runs inside each tenant's own database ([`Isolation::Database`], in its
///   `public` schema) or own schema ([`Isolation::Schema`], with `search_path` set to it).
/// - `shared` runs once per shared database for [`Isolation::Shared`] tenants: its tables carry
///   a `tenant_id` column. Behind the wall ([`crate::wall`]) the migrator gives every table of
///   both sets forced row-level security and the wall's policy, and refuses what would bypass
///   it (see [`with_definer_functions`](Self::with_definer_functions)); without it (no app
///   login), a shared table must enable and force row-level security with its own policy.
///
/// Migrations run in one transaction per tenant (savepoints per migration) unless one of the
/// pending migrations is marked `-- no-transaction`; then they run one by one, each committing
/// on its own, and a failure leaves the tenant at the last one that succeeded. A file marked
/// `-- no-transaction` must hold a single statement: Postgres runs a multi-statement string
/// as one implicit transaction.
#[derive(Clone)]
pub struct TenantMigrations {
    isolated: Arc<Migrator>,
    shared: Option<Arc<Migrator>>,
    definers: Arc<[String]>,
}

impl fmt::Debug for TenantMigrations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantMigrations")
            .field("isolated_latest", &latest(&self.isolated))
            .field("shared_latest", &self.shared.as_deref().map(latest))
            .field("definers", &self.definers)
            .finish()
    }
}

/// A copy of `source` that does not take sqlx's own per-database advisory lock: tenant-manager
/// takes a per-tenant lock instead, so tenants sharing a database migrate in parallel.
fn unlocked_copy(source: &Migrator) -> Migrator {
    let mut copy = Migrator::with_migrations(source.iter().cloned().collect());
    copy.set_locking(false);
    copy.set_ignore_missing(source.ignore_missing);
    copy
}

fn latest(migrator: &Migrator) -> i64 {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

impl TenantMigrations {
    /// Migrations for tenants with their own database or schema.
    pub fn new(isolated: &Migrator) -> Self {
        Self {
            isolated: Arc::new(unlocked_copy(isolated)),
            shared: None,
            definers: Arc::from([]),
        }
    }

    /// Allows `SECURITY DEFINER` functions of these names in tenant schemas and the shared
    /// schema. The wall refuses them otherwise: such a function runs with its owner's rights,
    /// and its owner (a tenant role, the shared owner) is bound by the wall only through the
    /// verified tenant of the calling session. Allow only functions written for that.
    #[must_use]
    pub fn with_definer_functions<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.definers = names.into_iter().map(Into::into).collect();
        self
    }

    /// The `SECURITY DEFINER` functions the wall allows (see
    /// [`with_definer_functions`](Self::with_definer_functions)).
    pub fn definer_functions(&self) -> &[String] {
        &self.definers
    }

    /// Adds the migrations of the shared, row-level secured tables; without them the
    /// provisioner does not support [`Isolation::Shared`].
    #[must_use]
    pub fn with_shared(mut self, shared: &Migrator) -> Self {
        self.shared = Some(Arc::new(unlocked_copy(shared)));
        self
    }

    /// The migrator of an isolation mode, if the host gave one.
    pub fn migrator(&self, isolation: Isolation) -> Option<&Migrator> {
        match isolation {
            Isolation::Database | Isolation::Schema => Some(&self.isolated),
            Isolation::Shared => self.shared.as_deref(),
        }
    }

    /// The newest version of the set an isolation mode uses (0 when it has none).
    pub fn latest_version(&self, isolation: Isolation) -> i64 {
        self.migrator(isolation).map(latest).unwrap_or(0)
    }

    /// A short digest of the isolated set's versions and checksums: the identity of a
    /// template database migrated to exactly this set.
    pub fn isolated_digest(&self) -> String {
        let mut hash = Sha256::new();
        for m in self.isolated.iter() {
            hash.update(m.version.to_be_bytes());
            hash.update([u8::from(m.migration_type.is_down_migration())]);
            hash.update(&*m.checksum);
        }
        hex::encode(&hash.finalize()[..8])
    }
}
