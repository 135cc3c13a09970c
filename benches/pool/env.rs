//! The bench database: tenants of database isolation (a login role each) and of schema
//! isolation (a schema each), dropped at the end; `pg_stat_activity` peak sampling.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tenant_manager::core::pool::fake::active_tenant;
use tenant_manager::postgres::{DerivedCredentials, PgTenantConnector, ServerMap, quote_ident};
use tenant_manager::{Isolation, Placement, Secret, ServerId, Tenant};
use tenant_manager_test_support::{TestDatabase, unique_suffix};
use tokio::runtime::Runtime;

/// The server refuses tenant logins beyond this many connections to the bench database, so
/// the hand-written peer cannot take every connection of the shared server.
pub(crate) const DATABASE_CONNECTION_LIMIT: u32 = 55;

pub(crate) struct PgEnv {
    db: Option<TestDatabase>,
    /// Database-isolated tenants (own login role, placed in the bench database).
    pub(crate) database: Vec<Tenant>,
    /// Schema-isolated tenants (own schema in the bench database).
    pub(crate) schema: Vec<Tenant>,
    roles: Vec<String>,
    admin_url: String,
}

impl PgEnv {
    /// `n` tenants of each isolation.
    pub(crate) async fn create(n: usize) -> Self {
        let db = TestDatabase::create().await;
        let suffix = unique_suffix();
        let mut ddl = format!(
            "ALTER DATABASE {} CONNECTION LIMIT {DATABASE_CONNECTION_LIMIT};",
            quote_ident(db.name())
        );
        let mut env = Self {
            admin_url: db.admin_url().to_owned(),
            database: Vec::with_capacity(n),
            schema: Vec::with_capacity(n),
            roles: Vec::with_capacity(n),
            db: Some(db),
        };
        for i in 0..n {
            for isolation in [Isolation::Database, Isolation::Schema] {
                let slug = format!("b{suffix}{}{i}", &isolation.as_str()[..1]);
                let mut tenant = active_tenant(&slug, isolation).expect("tenant");
                let name = Placement::role_name(&tenant.slug);
                tenant.placement = Placement {
                    server: ServerId::default_server(),
                    database: env.db().name().to_owned(),
                    schema: (isolation == Isolation::Schema).then(|| name.clone()),
                };
                if isolation == Isolation::Database {
                    ddl.push_str(&format!("CREATE ROLE {} LOGIN;", quote_ident(&name)));
                    env.roles.push(name);
                    env.database.push(tenant);
                } else {
                    ddl.push_str(&format!("CREATE SCHEMA {};", quote_ident(&name)));
                    env.schema.push(tenant);
                }
            }
        }
        let mut admin = PgConnection::connect(env.db().url()).await.expect("admin");
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
            .execute(&mut admin)
            .await
            .expect("tenants");
        let _ = admin.close().await;
        env
    }

    fn db(&self) -> &TestDatabase {
        self.db.as_ref().expect("database")
    }

    /// The connector over the bench server, with `app` as `application_name`.
    pub(crate) fn connector(&self, app: &str) -> PgTenantConnector {
        let servers = ServerMap::single(&self.admin_url).expect("servers");
        let credentials =
            DerivedCredentials::new(Secret::new("bench-master-secret-0123456789abcdef"))
                .expect("credentials");
        PgTenantConnector::new(servers, Arc::new(credentials)).with_application_name(app)
    }

    /// What the connector uses for a database tenant: its database and its own role (the
    /// local server trusts it, so no password).
    pub(crate) fn tenant_options(&self, tenant: &Tenant, app: &str) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.admin_url)
            .expect("url")
            .database(self.db().name())
            .username(&Placement::role_name(&tenant.slug))
            .application_name(app)
    }

    /// Polls the server sessions of `app` until finished; returns the peak.
    pub(crate) fn sample_peak(&self, runtime: &Runtime, app: &str) -> PeakSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (url, app, flag) = (
            self.db().url().to_owned(),
            app.to_owned(),
            Arc::clone(&stop),
        );
        let task = runtime.spawn(async move {
            let mut conn = PgConnection::connect(&url).await.expect("sampler");
            let mut peak = 0_i64;
            while !flag.load(Ordering::SeqCst) {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                )
                .bind(&app)
                .fetch_one(&mut conn)
                .await
                .expect("sample");
                peak = peak.max(n);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak
        });
        PeakSampler { stop, task }
    }
}

impl Drop for PgEnv {
    fn drop(&mut self) {
        drop(self.db.take());
        tenant_manager_test_support::drop_databases_and_roles_blocking(
            &self.admin_url,
            None,
            &self.roles,
        );
    }
}

pub(crate) struct PeakSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<i64>,
}

impl PeakSampler {
    pub(crate) fn finish(self, runtime: &Runtime) -> i64 {
        self.stop.store(true, Ordering::SeqCst);
        runtime.block_on(self.task).expect("sampler")
    }
}
