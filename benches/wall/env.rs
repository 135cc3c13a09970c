//! The bench's deployments: each provisioned by the real provisioner (own global database,
//! own storage prefix, app login, CRM migrations), two schema and two shared tenants with
//! `ROWS` companies each, and the shared table holding the rows of `OTHER_SHARED` more
//! tenants. One stays behind the wall, the other is converted to the layout of the release
//! before it ([`tenant_manager_test_support::legacy_layout`]). Everything is dropped at the end.

use std::sync::Arc;

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection};
use tenant_manager::core::pool::PoolConfig;
use tenant_manager::postgres::{
    AppLogin, DerivedCredentials, PgTenantConnector, PgTenantPools, PostgresProvisioner,
    PostgresRegistry, ServerMap, StorageConfig, TenantMigrations, TenantStorage, WallKeys,
    migrate_global,
};
use tenant_manager::{
    Isolation, NewTenant, Provisioner, Secret, ServerId, StorageNaming, Tenant, TenantRegistry,
    TenantSlug, TenantStatus,
};
use tenant_manager_test_support::{TestDatabase, legacy_layout, unique_suffix};

static ISOLATED: Migrator = sqlx::migrate!("tenant-manager-postgres/tests/migrations/tenant");
static SHARED: Migrator = sqlx::migrate!("tenant-manager-postgres/tests/migrations/shared");

/// Companies of each bench tenant (the list query reads 50).
pub(crate) const ROWS: usize = 100;
/// Shared tenants whose rows fill the shared table besides the two measured.
const OTHER_SHARED: usize = 8;

/// Which release's layout and checkout path a deployment has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Behind the wall: `with_app_login(..).with_wall(..)`.
    Wall,
    /// The release before it: `with_app_login_without_wall` (`SET ROLE`, `app.tenant_id`).
    PreWall,
}

pub(crate) struct Deployment {
    pub(crate) layout: Layout,
    /// Two schema tenants.
    pub(crate) schema: Vec<Tenant>,
    /// Two shared tenants.
    pub(crate) shared: Vec<Tenant>,
    prefix: String,
    master: Secret,
    /// The server's admin URL (a superuser).
    pub(crate) admin_url: String,
    global: Option<TestDatabase>,
}

impl Deployment {
    pub(crate) async fn create(layout: Layout) -> Self {
        let global = TestDatabase::create().await;
        let pool = global.pool().await;
        migrate_global(&pool).await.expect("migrate global");
        let registry = PostgresRegistry::new(pool.clone());
        let prefix = format!("wb{}", &unique_suffix()[..8]);
        let naming = StorageNaming::new(&prefix).expect("prefix");
        let master = Secret::new(format!("bench-master-secret-{prefix}-0123456789"));
        let admin_url = global.admin_url().to_owned();
        let storage = TenantStorage::new(
            pool,
            ServerMap::single(&admin_url).expect("servers"),
            TenantMigrations::new(&ISOLATED).with_shared(&SHARED),
            StorageConfig::for_naming(naming.clone()),
        )
        .expect("storage")
        .with_wall(WallKeys::derived(&master, 1).expect("wall key"));
        let credentials = Arc::new(DerivedCredentials::new(master.clone()).expect("credentials"));
        let provisioner = PostgresProvisioner::new(storage, credentials);
        let mut deployment = Self {
            layout,
            schema: Vec::new(),
            shared: Vec::new(),
            prefix,
            master,
            admin_url,
            global: Some(global),
        };
        provisioner
            .ensure_app_login(&deployment.app_login())
            .await
            .expect("app login");
        let shared_db = naming.shared_database();
        for isolation in [Isolation::Schema, Isolation::Shared] {
            for i in 0..2 {
                let slug = format!("{}_{}{i}", deployment.prefix, &isolation.as_str()[..2]);
                let slug = TenantSlug::new(slug).expect("slug");
                let placement =
                    naming.placement(&slug, isolation, ServerId::default_server(), &shared_db);
                let new = NewTenant::new(slug, "Bench tenant", isolation)
                    .expect("tenant")
                    .with_placement(placement);
                let tenant = registry.create_tenant(new).await.expect("create");
                registry
                    .transition(tenant.id, TenantStatus::Provisioning, None)
                    .await
                    .expect("provisioning");
                provisioner.provision(&tenant).await.expect("provision");
                let tenant = registry
                    .transition(tenant.id, TenantStatus::Active, None)
                    .await
                    .expect("active");
                match isolation {
                    Isolation::Schema => deployment.schema.push(tenant),
                    _ => deployment.shared.push(tenant),
                }
            }
        }
        deployment.fill(&shared_db).await;
        if layout == Layout::PreWall {
            legacy_layout(
                &deployment.admin_url,
                &[shared_db.as_str()],
                &naming.infra("app"),
                &naming.infra("wall"),
            )
            .await;
        }
        deployment
    }

    /// `ROWS` companies for every tenant, `ROWS` more for each of `OTHER_SHARED` shared
    /// tenants that are not measured; then `ANALYZE`.
    async fn fill(&self, shared_db: &str) {
        let mut sql = String::new();
        let insert = |table: &str, tenant: Option<String>| {
            let (column, value) = match tenant {
                Some(id) => ("tenant_id, ", format!("'{id}'::uuid, ")),
                None => ("", String::new()),
            };
            format!(
                "INSERT INTO {table} ({column}name, domain) \
                 SELECT {value}'Company ' || i, 'c' || i || '.example.com' \
                 FROM generate_series(1, {ROWS}) i; ANALYZE {table};"
            )
        };
        for tenant in &self.schema {
            let schema = tenant.placement.schema.as_deref().expect("schema");
            sql.push_str(&insert(&format!("\"{schema}\".companies"), None));
        }
        for tenant in &self.shared {
            sql.push_str(&insert("public.companies", Some(tenant.id.to_string())));
        }
        for _ in 0..OTHER_SHARED {
            let id = uuid::Uuid::new_v4().to_string();
            sql.push_str(&insert("public.companies", Some(id)));
        }
        let mut conn = self.connect(shared_db).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("companies");
        let _ = conn.close().await;
    }

    async fn connect(&self, database: &str) -> PgConnection {
        use std::str::FromStr;
        let options = sqlx::postgres::PgConnectOptions::from_str(&self.admin_url)
            .expect("url")
            .database(database);
        PgConnection::connect_with(&options).await.expect("admin")
    }

    fn app_login(&self) -> AppLogin {
        AppLogin::derived(&format!("{}_app", self.prefix), &self.master).expect("app login")
    }

    /// The tenants of `isolation`.
    pub(crate) fn tenants(&self, isolation: Isolation) -> &[Tenant] {
        match isolation {
            Isolation::Schema => &self.schema,
            _ => &self.shared,
        }
    }

    /// Pools over this deployment, on its release's checkout path, `max` connections in all.
    pub(crate) fn pools(&self, max: u32, app: &str) -> PgTenantPools {
        self.pools_with(
            PoolConfig::default()
                .with_max_total(max)
                .with_max_per_tenant(max),
            app,
        )
    }

    /// Pools over this deployment, on its release's checkout path, with `config`.
    pub(crate) fn pools_with(&self, config: PoolConfig, app: &str) -> PgTenantPools {
        let servers = ServerMap::single(&self.admin_url).expect("servers");
        let credentials = Arc::new(DerivedCredentials::new(self.master.clone()).expect("creds"));
        let connector =
            PgTenantConnector::new(servers, credentials).with_application_name(app.to_owned());
        let connector = match self.layout {
            Layout::Wall => connector
                .with_app_login(self.app_login())
                .with_wall(WallKeys::derived(&self.master, 1).expect("wall key")),
            Layout::PreWall => connector.with_app_login_without_wall(self.app_login()),
        };
        connector.into_pools(config).expect("pools")
    }
}

impl Drop for Deployment {
    /// Drops the global database, then every database and role named with the prefix.
    fn drop(&mut self) {
        drop(self.global.take());
        let prefix = format!("{}_", self.prefix);
        tenant_manager_test_support::drop_databases_and_roles_blocking(
            &self.admin_url,
            Some(&prefix),
            &[],
        );
    }
}
