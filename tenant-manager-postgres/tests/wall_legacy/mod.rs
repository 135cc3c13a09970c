//! Helpers of the wall's upgrade tests: a deployment provisioned with schema and shared tenants,
//! converted to the layout of the release before the wall
//! ([`tenant_manager_test_support::legacy_layout`]), the pools of both releases, and what the
//! catalogs say about each tenant.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use sqlx::PgConnection;
use tenant_manager_core::{Isolation, Tenant};
use tenant_manager_postgres::{PgTenantConnector, PgTenantPools, ServerMap, WallAdmin};

#[allow(unused_imports)]
pub use crate::common::app::{app_login, app_name, is_member, keys};
use crate::common::{Env, add_companies};
use crate::pool_support;

/// A deployment: its environment (storage prefix = the test's tag, so every role and database
/// it makes is dropped at the end) and its tenants with the companies each holds.
pub struct Deployment {
    pub env: Env,
    /// Schema tenants, in the order `WallAdmin` visits them (by id).
    pub schema: Vec<Tenant>,
    /// Shared tenants, by id.
    pub shared: Vec<Tenant>,
}

impl Deployment {
    /// `schema` schema tenants and `shared` shared tenants provisioned by the current
    /// provisioner (behind the wall), two companies each, the app login given its password.
    pub async fn provisioned(schema: usize, shared: usize) -> Self {
        let env = Env::prefixed().await;
        env.provisioner
            .ensure_app_login(&app_login(&env))
            .await
            .expect("app login");
        let mut deployment = Self {
            env,
            schema: Vec::new(),
            shared: Vec::new(),
        };
        for (n, isolation) in [(schema, Isolation::Schema), (shared, Isolation::Shared)] {
            for i in 0..n {
                let name = format!("{}{i}", &isolation.as_str()[..2]);
                let tenant = deployment.env.active(&name, isolation).await;
                let companies = companies(&tenant);
                let companies: Vec<&str> = companies.iter().map(String::as_str).collect();
                add_companies(&deployment.env, &tenant, &companies).await;
                match isolation {
                    Isolation::Schema => deployment.schema.push(tenant),
                    _ => deployment.shared.push(tenant),
                }
            }
        }
        deployment.schema.sort_by_key(|t| *t.id.as_uuid());
        deployment.shared.sort_by_key(|t| *t.id.as_uuid());
        deployment
    }

    /// [`provisioned`](Self::provisioned), then converted to the layout before the wall.
    pub async fn legacy(schema: usize, shared: usize) -> Self {
        let deployment = Self::provisioned(schema, shared).await;
        let env = &deployment.env;
        tenant_manager_test_support::legacy_layout(
            env.db.admin_url(),
            &[env.shared_db.as_str()],
            &app_name(env),
            &env.storage.config().naming.infra("wall"),
        )
        .await;
        deployment
    }

    /// Every tenant, schema tenants first.
    pub fn tenants(&self) -> Vec<Tenant> {
        self.schema.iter().chain(&self.shared).cloned().collect()
    }

    /// The wall admin signing with key `key_id`.
    pub fn wall(&self, key_id: i32) -> WallAdmin {
        let storage = self.env.storage.clone().with_wall(keys(&self.env, key_id));
        WallAdmin::new(storage).expect("wall admin")
    }

    /// An admin connection to the database of the deployment's tenants.
    pub async fn admin(&self) -> PgConnection {
        self.env.admin(&self.env.shared_db).await
    }
}

/// The companies a tenant holds: two, named after its slug.
pub fn companies(tenant: &Tenant) -> Vec<String> {
    vec![
        format!("{} One", tenant.slug.as_str()),
        format!("{} Two", tenant.slug.as_str()),
    ]
}

fn connector(env: &Env) -> PgTenantConnector {
    let servers = ServerMap::single(env.db.admin_url()).expect("servers");
    PgTenantConnector::new(servers, env.credentials.clone())
        .with_application_name(format!("tmtest_wall_{}", env.tag))
}

/// Pools of the release before the wall: the app login, `SET ROLE` on schema checkouts.
pub fn legacy_pools(env: &Env, max_total: u32) -> PgTenantPools {
    connector(env)
        .with_app_login_without_wall(app_login(env))
        .into_pools(pool_support::config(max_total, max_total))
        .expect("pools")
}

/// Pools behind the wall, signing with key `key_id`.
pub fn walled_pools(env: &Env, key_id: i32, max_total: u32) -> PgTenantPools {
    connector(env)
        .with_app_login(app_login(env))
        .with_wall(keys(env, key_id))
        .into_pools(pool_support::config(max_total, max_total).with_scope_affinity(AFFINITY))
        .expect("pools")
}

/// The tenant affinity of [`walled_pools`]: how long a returned connection keeps its verdict
/// for its tenant's next checkout.
pub const AFFINITY: std::time::Duration = std::time::Duration::from_millis(200);

/// Names of the companies the session sees, sorted.
pub async fn names(conn: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM companies ORDER BY name")
        .fetch_all(conn)
        .await
        .expect("companies")
}

/// Checks out each tenant in turn (one connection: every checkout switches tenant) and
/// requires it to see exactly its own companies, twice over.
pub async fn assert_each_sees_its_rows(pools: &PgTenantPools, tenants: &[Tenant], what: &str) {
    for round in 0..2 {
        for tenant in tenants {
            let mut conn = pools.acquire(tenant).await.expect("acquire");
            assert_eq!(
                names(&mut conn).await,
                companies(tenant),
                "{what}, round {round}: {} ({})",
                tenant.slug,
                tenant.isolation
            );
            drop(conn);
            pool_support::settle(pools).await;
        }
    }
}

/// Whether the connected database has a schema `wall`.
pub async fn has_wall_schema(admin: &mut PgConnection) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'wall')")
        .fetch_one(admin)
        .await
        .expect("pg_namespace")
}

/// One table of a schema: (row-level security enabled, forced, its policies by name).
pub async fn companies_table(admin: &mut PgConnection, schema: &str) -> (bool, bool, Vec<String>) {
    sqlx::query_as(
        "SELECT c.relrowsecurity, c.relforcerowsecurity, \
                ARRAY(SELECT p.polname::text FROM pg_policy p WHERE p.polrelid = c.oid ORDER BY 1) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = 'companies'",
    )
    .bind(schema)
    .fetch_one(admin)
    .await
    .expect("companies table")
}

/// Whether the app login holds `USAGE` on a schema of its own (not through a membership:
/// it inherits nothing).
pub async fn app_has_usage(admin: &mut PgConnection, app: &str, schema: &str) -> bool {
    sqlx::query_scalar("SELECT has_schema_privilege($1, $2, 'USAGE')")
        .bind(app)
        .bind(schema)
        .fetch_one(admin)
        .await
        .expect("has_schema_privilege")
}

/// Every policy of the database: (oid, table, name), by table and name.
pub async fn policies(admin: &mut PgConnection) -> Vec<(i64, String, String)> {
    sqlx::query_as(
        "SELECT p.oid::int8, p.polrelid::regclass::text, p.polname::text FROM pg_policy p \
         ORDER BY 2, 3",
    )
    .fetch_all(admin)
    .await
    .expect("pg_policy")
}

/// The schema of a schema tenant.
pub fn schema_of(tenant: &Tenant) -> String {
    tenant.placement.schema.clone().expect("schema")
}

/// The role of a schema tenant.
pub fn role_of(tenant: &Tenant) -> String {
    tenant.role_name().expect("role")
}
