//! Shared set-up of the Postgres adapter's integration tests: a fresh global database, a
//! provisioner whose every cluster-wide name (roles, databases, templates) carries a tag unique
//! to the test, and a cleanup that drops all of them; crash hooks (`crash`) and fleet migration
//! helpers (`fleet`) in submodules.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

pub mod app;
pub mod crash;
pub mod fleet;

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tenant_manager_core::{
    Isolation, NewTenant, Provisioner, Secret, ServerId, StorageNaming, Tenant, TenantRegistry,
    TenantSlug, TenantStatus,
};
use tenant_manager_postgres::{
    DerivedCredentials, PostgresProvisioner, PostgresRegistry, ServerMap, StorageConfig,
    TenantMigrations, TenantStorage, WallKeys, migrate_global,
};
use tenant_manager_test_support::{TestDatabase, unique_suffix};

/// The CRM migrations of database- and schema-isolated tenants.
pub static ISOLATED: Migrator = sqlx::migrate!("tests/migrations/tenant");
/// The CRM migrations of the shared, row-level secured tables.
pub static SHARED: Migrator = sqlx::migrate!("tests/migrations/shared");

pub fn migrations() -> TenantMigrations {
    TenantMigrations::new(&ISOLATED).with_shared(&SHARED)
}

/// Everything one test needs, and the names to clean up.
pub struct Env {
    pub db: TestDatabase,
    pub tag: String,
    pub pool: PgPool,
    pub registry: PostgresRegistry,
    pub storage: TenantStorage,
    pub provisioner: PostgresProvisioner,
    pub credentials: Arc<DerivedCredentials>,
    pub shared_db: String,
    /// Roles and databases named without the tag (conformance suites pick their own slugs).
    pub extra: Arc<Mutex<Vec<String>>>,
}

impl Env {
    pub async fn new() -> Self {
        Self::with(migrations(), |c| c).await
    }

    pub async fn with(
        migrations: TenantMigrations,
        config: impl FnOnce(StorageConfig) -> StorageConfig,
    ) -> Self {
        Self::build(migrations, false, config).await
    }

    /// A deployment whose storage prefix is the test's tag: every name the provisioner makes
    /// is `<tag>_...` (`StorageConfig::for_naming`), its shared database `<tag>_shared`.
    pub async fn prefixed() -> Self {
        Self::build(migrations(), true, |c| c).await
    }

    async fn build(
        migrations: TenantMigrations,
        prefixed: bool,
        config: impl FnOnce(StorageConfig) -> StorageConfig,
    ) -> Self {
        let db = TestDatabase::create().await;
        let tag = format!("t{}", &unique_suffix()[..8]);
        let pool = db.pool().await;
        migrate_global(&pool).await.expect("migrate global");
        let registry = PostgresRegistry::new(pool.clone());
        let servers = ServerMap::single(db.admin_url()).expect("server map");
        let naming = StorageNaming::new(&tag).expect("prefix");
        let (base, shared_db) = if prefixed {
            (
                StorageConfig::for_naming(naming.clone()),
                naming.shared_database(),
            )
        } else {
            (
                StorageConfig::default()
                    .with_template_prefix(format!("tmtpl_{tag}_"))
                    .with_template_owner(format!("tmtplown_{tag}"))
                    .with_shared_owner(format!("tmshown_{tag}")),
                format!("tmsh_{tag}"),
            )
        };
        let config = config(base);
        let master = Secret::new(format!("master-secret-of-{tag}-0123456789abcdef"));
        let storage = TenantStorage::new(pool.clone(), servers, migrations, config)
            .expect("storage")
            .with_wall(WallKeys::derived(&master, 1).expect("wall key"));
        let credentials = Arc::new(DerivedCredentials::new(master).expect("credentials"));
        let provisioner = PostgresProvisioner::new(storage.clone(), credentials.clone());
        Self {
            shared_db,
            db,
            tag,
            pool,
            registry,
            storage,
            provisioner,
            credentials,
            extra: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A new tenant `<tag>_<name>` placed by the storage's naming (`tm_t_<tag>_<name>`),
    /// schema and shared tenants in this test's shared database.
    pub fn new_tenant(&self, name: &str, isolation: Isolation) -> NewTenant {
        let mut tenant = self.new_tenant_with_slug(&format!("{}_{name}", self.tag), isolation);
        tenant.name = format!("Tenant {name}");
        tenant
    }

    /// A new tenant with this slug, placed like [`Env::new_tenant`]'s.
    pub fn new_tenant_with_slug(&self, slug: &str, isolation: Isolation) -> NewTenant {
        let slug = TenantSlug::new(slug).expect("slug");
        let placement = self.storage.config().naming.placement(
            &slug,
            isolation,
            ServerId::default_server(),
            &self.shared_db,
        );
        NewTenant::new(slug, "A tenant", isolation)
            .expect("new tenant")
            .with_placement(placement)
    }

    /// Registers a tenant and moves it to `Provisioning`.
    pub async fn register(&self, name: &str, isolation: Isolation) -> Tenant {
        self.register_new(self.new_tenant(name, isolation)).await
    }

    /// Registers this tenant and moves it to `Provisioning`.
    pub async fn register_new(&self, tenant: NewTenant) -> Tenant {
        let tenant = self
            .registry
            .create_tenant(tenant)
            .await
            .expect("create tenant");
        self.registry
            .transition(tenant.id, TenantStatus::Provisioning, None)
            .await
            .expect("to provisioning")
    }

    /// Registers, provisions and activates a tenant.
    pub async fn active(&self, name: &str, isolation: Isolation) -> Tenant {
        self.activate(self.new_tenant(name, isolation)).await
    }

    /// Registers, provisions and activates this tenant.
    pub async fn activate(&self, tenant: NewTenant) -> Tenant {
        let tenant = self.register_new(tenant).await;
        self.provisioner
            .provision(&tenant)
            .await
            .expect("provision");
        self.registry
            .transition(tenant.id, TenantStatus::Active, None)
            .await
            .expect("to active")
    }

    /// Admin connect options of a database of the test server.
    pub fn admin_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::from_str(self.db.admin_url())
            .expect("admin url")
            .database(database)
            .disable_statement_logging()
    }

    /// An admin connection to `database`.
    pub async fn admin(&self, database: &str) -> PgConnection {
        PgConnection::connect_with(&self.admin_options(database))
            .await
            .expect("admin connection")
    }

    /// A connection as `role` (the test server trusts local connections) to `database`.
    pub async fn connect_as(
        &self,
        role: &str,
        database: &str,
    ) -> Result<PgConnection, sqlx::Error> {
        PgConnection::connect_with(&self.admin_options(database).username(role)).await
    }

    /// Remembers a name that does not carry the tag, for cleanup.
    pub fn forget_later(&self, name: String) {
        self.extra.lock().expect("extra names").push(name);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let extra = self.extra.lock().map(|e| e.clone()).unwrap_or_default();
        tenant_manager_test_support::drop_databases_and_roles_blocking(
            self.db.admin_url(),
            Some(&self.tag),
            &extra,
        );
    }
}

/// Rows of `companies` by name, read as the admin from the tenant's storage.
pub async fn company_names(env: &Env, tenant: &Tenant) -> Vec<String> {
    let mut conn = env.admin(&tenant.placement.database).await;
    let sql = match tenant.isolation {
        Isolation::Database => "SELECT name FROM public.companies ORDER BY name".to_owned(),
        Isolation::Schema => format!(
            "SELECT name FROM \"{}\".companies ORDER BY name",
            tenant.placement.schema.as_deref().expect("schema")
        ),
        Isolation::Shared => {
            "SELECT name FROM public.companies WHERE tenant_id = $1 ORDER BY name".to_owned()
        }
    };
    let names: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(tenant.id.as_uuid())
        .fetch_all(&mut conn)
        .await
        .expect("read companies");
    let _ = conn.close().await;
    names
}

/// Inserts companies into the tenant's storage as the admin.
pub async fn add_companies(env: &Env, tenant: &Tenant, names: &[&str]) {
    let mut conn = env.admin(&tenant.placement.database).await;
    for name in names {
        let sql = match tenant.isolation {
            Isolation::Database => {
                "INSERT INTO public.companies (name, domain) VALUES ($1, $2)".to_owned()
            }
            Isolation::Schema => format!(
                "INSERT INTO \"{}\".companies (name, domain) VALUES ($1, $2)",
                tenant.placement.schema.as_deref().expect("schema")
            ),
            Isolation::Shared => {
                "INSERT INTO public.companies (name, domain, tenant_id) VALUES ($1, $2, $3)"
                    .to_owned()
            }
        };
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(*name)
            .bind(format!("{}.example.com", name.len()))
            .bind(tenant.id.as_uuid())
            .execute(&mut conn)
            .await
            .expect("insert company");
    }
    let _ = conn.close().await;
}

/// The SQLSTATE of a database error, if it is one.
pub fn sqlstate(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Provisions a shared tenant with one shared migration `migration` whose `sql` creates
/// `table` without forced row-level security, and checks that it is refused by name on `shared_migrations`
/// and that `table` was rolled back. Returns the failed provisioning's status.
pub async fn assert_unforced_shared_table_refused(
    migration: &'static str,
    sql: &'static str,
    table: &str,
) -> tenant_manager_postgres::provision::ProvisionStatus {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType};

    let unsafe_set = Migrator::with_migrations(vec![Migration::new(
        1,
        migration.into(),
        MigrationType::Simple,
        sql.into_sql_str(),
        false,
    )]);
    let env = Env::with(
        TenantMigrations::new(&ISOLATED).with_shared(&unsafe_set),
        |c| c,
    )
    .await;
    let tenant = env.register("alpha", Isolation::Shared).await;
    let err = env
        .provisioner
        .provision(&tenant)
        .await
        .expect_err("refused");
    assert_eq!(err.field(), Some("shared_migrations"), "{err:?}");
    let status = env.provisioner.status(tenant.id).await.expect("status");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains(table)),
        "{status:?}"
    );
    // The unsafe table was rolled back with the rest of the migration.
    let mut conn = env.admin(&env.shared_db).await;
    let exists: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT to_regclass('public.{table}') IS NOT NULL"
    )))
    .fetch_one(&mut conn)
    .await
    .expect("regclass");
    assert!(!exists, "rolled back");
    let _ = conn.close().await;
    status
}
