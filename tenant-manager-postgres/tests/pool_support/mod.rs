//! Helpers of the Postgres pool tests: a test database with tenants of every isolation
//! (their roles and schemas created here), the connector over it, and `pg_stat_activity`
//! sampling filtered to the test's own `application_name`.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tenant_manager_core::pool::PoolConfig;
use tenant_manager_core::pool::fake::active_tenant;
use tenant_manager_core::{Isolation, Placement, Secret, ServerId, Tenant};
use tenant_manager_postgres::{
    DerivedCredentials, PgTenantConnector, PgTenantPools, ServerMap, quote_ident, quote_literal,
};
use tenant_manager_test_support::{TestDatabase, unique_suffix};

/// Heavy tests of one binary run one at a time (Postgres allows 100 connections, shared
/// with the other test binaries running at the same time).
pub(crate) static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A test database, the tenants placed in it, and their roles (dropped at the end).
pub(crate) struct PgFixture {
    db: Option<TestDatabase>,
    /// The `application_name` of this fixture's pooled connections.
    pub(crate) app: String,
    suffix: String,
    roles: Vec<String>,
    next: usize,
}

impl PgFixture {
    pub(crate) async fn new() -> Self {
        let suffix = unique_suffix();
        Self {
            db: Some(TestDatabase::create().await),
            app: format!("tmtest_pool_{suffix}"),
            suffix,
            roles: Vec::new(),
            next: 0,
        }
    }

    fn db(&self) -> &TestDatabase {
        self.db.as_ref().expect("database lives until drop")
    }

    /// A superuser connection to the test database (not counted as the pools').
    pub(crate) async fn admin(&self) -> PgConnection {
        PgConnection::connect(self.db().url())
            .await
            .expect("admin connection")
    }

    /// The connector of this fixture: one server, tenant roles without passwords (the test
    /// server trusts local connections), this fixture's `application_name`.
    pub(crate) fn connector(&self) -> PgTenantConnector {
        let servers = ServerMap::single(self.db().admin_url()).expect("server map");
        let credentials =
            DerivedCredentials::new(Secret::new("pool-tests-master-secret-0123456789"))
                .expect("credentials");
        PgTenantConnector::new(servers, Arc::new(credentials)).with_application_name(&self.app)
    }

    /// The test database's name.
    pub(crate) fn database(&self) -> &str {
        self.db().name()
    }

    /// [`connector`](Self::connector), with `servers` instead of the test server (to reach it
    /// through a proxy).
    pub(crate) fn connector_via(&self, servers: ServerMap) -> PgTenantConnector {
        let credentials =
            DerivedCredentials::new(Secret::new("pool-tests-master-secret-0123456789"))
                .expect("credentials");
        PgTenantConnector::new(servers, Arc::new(credentials)).with_application_name(&self.app)
    }

    /// The pool engine over [`connector`](Self::connector).
    pub(crate) fn pools(&self, config: PoolConfig) -> PgTenantPools {
        self.connector().into_pools(config).expect("pools")
    }

    /// `n` active tenants of `isolation` placed in the test database. Database tenants get a
    /// login role; schema tenants a schema with a table `items` holding their slug; shared
    /// tenants a row in `shared_items` (created with a row-level security policy on
    /// `app.tenant_id`).
    pub(crate) async fn tenants(&mut self, n: usize, isolation: Isolation) -> Vec<Tenant> {
        let mut tenants = Vec::with_capacity(n);
        let mut ddl = String::new();
        if isolation == Isolation::Shared {
            ddl.push_str(
                "CREATE TABLE IF NOT EXISTS shared_items (tenant_id uuid NOT NULL, name text NOT NULL); \
                 ALTER TABLE shared_items ENABLE ROW LEVEL SECURITY; \
                 DO $$ BEGIN CREATE POLICY by_tenant ON shared_items USING \
                 (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid); \
                 EXCEPTION WHEN duplicate_object THEN NULL; END $$;",
            );
        }
        for _ in 0..n {
            let slug = format!("p{}{}", self.suffix, self.next);
            self.next += 1;
            let mut tenant = active_tenant(&slug, isolation).expect("tenant");
            let name = format!("{}{slug}", Placement::PREFIX);
            tenant.placement = Placement {
                server: ServerId::default_server(),
                database: self.db().name().to_owned(),
                schema: (isolation == Isolation::Schema).then(|| name.clone()),
            };
            match isolation {
                Isolation::Database => {
                    ddl.push_str(&format!("CREATE ROLE {} LOGIN;", quote_ident(&name)));
                    self.roles.push(name);
                }
                Isolation::Schema => ddl.push_str(&format!(
                    "CREATE SCHEMA {s}; CREATE TABLE {s}.items (name text); \
                     INSERT INTO {s}.items VALUES ({v});",
                    s = quote_ident(&name),
                    v = quote_literal(&slug),
                )),
                Isolation::Shared => ddl.push_str(&format!(
                    "INSERT INTO shared_items VALUES ({}, {});",
                    quote_literal(&tenant.id.to_string()),
                    quote_literal(&slug),
                )),
            }
            tenants.push(tenant);
        }
        let mut admin = self.admin().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
            .execute(&mut admin)
            .await
            .expect("tenant ddl");
        let _ = admin.close().await;
        tenants
    }

    /// An unprivileged login role that may read `shared_items` (row-level security applies to
    /// it, unlike the superuser).
    pub(crate) async fn shared_reader(&mut self) -> String {
        let role = format!("tmtest_reader_{}", self.suffix);
        let mut admin = self.admin().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE {r} LOGIN; GRANT SELECT ON shared_items TO {r}",
            r = quote_ident(&role)
        )))
        .execute(&mut admin)
        .await
        .expect("reader role");
        let _ = admin.close().await;
        self.roles.push(role.clone());
        role
    }

    /// A `pg_stat_activity` sampler of this fixture's sessions.
    pub(crate) async fn sampler(&self) -> Sampler {
        Sampler {
            conn: self.admin().await,
            app: self.app.clone(),
        }
    }

    /// Terminates every server session of this fixture's pools; returns how many.
    pub(crate) async fn terminate_all(&self) -> i64 {
        let mut admin = self.admin().await;
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
        )
        .bind(&self.app)
        .fetch_one(&mut admin)
        .await
        .expect("terminate");
        let _ = admin.close().await;
        n
    }
}

impl Drop for PgFixture {
    fn drop(&mut self) {
        // The database goes first (with its sessions and grants), then the roles.
        let Some(db) = self.db.take() else {
            return;
        };
        let url = db.admin_url().to_owned();
        drop(db);
        tenant_manager_test_support::drop_databases_and_roles_blocking(&url, None, &self.roles);
    }
}

/// Counts of a fixture's server sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sessions {
    pub(crate) total: i64,
    /// The most sessions of one login role (one tenant, for database isolation).
    pub(crate) max_per_role: i64,
}

/// Samples `pg_stat_activity` on its own connection.
pub(crate) struct Sampler {
    conn: PgConnection,
    app: String,
}

impl Sampler {
    pub(crate) async fn sample(&mut self) -> Sessions {
        let (total, max_per_role): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(sum(n), 0)::int8, COALESCE(max(n), 0)::int8 FROM \
             (SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 \
              GROUP BY usename) per_role",
        )
        .bind(&self.app)
        .fetch_one(&mut self.conn)
        .await
        .expect("sample");
        Sessions {
            total,
            max_per_role,
        }
    }

    /// Samples until `done` holds for a sample, up to 10 s.
    pub(crate) async fn until(&mut self, what: &str, done: impl Fn(Sessions) -> bool) -> Sessions {
        for _ in 0..1_000 {
            let sessions = self.sample().await;
            if done(sessions) {
                return sessions;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for: {what}");
    }
}

/// A configuration with small caps and short timeouts for tests.
pub(crate) fn config(max_total: u32, max_per_tenant: u32) -> PoolConfig {
    PoolConfig::default()
        .with_max_total(max_total)
        .with_max_per_tenant(max_per_tenant)
        .with_acquire_timeout(Duration::from_secs(20))
}

/// Waits until no connection is checked out (returns of shared pools reset asynchronously).
pub(crate) async fn settle(pools: &PgTenantPools) {
    for _ in 0..2_000 {
        if pools.stats().in_use == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("returns did not finish");
}
