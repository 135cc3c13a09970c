//! A deployment on the real Postgres and Redis for one test: a fresh global database, a Redis
//! key prefix, and a tag carried by every cluster-wide name the server creates (tenant
//! databases and roles through the tenants' slugs, the shared database, templates and owner
//! roles through `TENANT_SHARED_DATABASE` and `TENANT_STORAGE_PREFIX`), all dropped at the end.

use std::process::Command;

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tenant_manager_test_support::{TestDatabase, TestRedis, unique_suffix};
use tokio::sync::{Semaphore, SemaphorePermit};

use reference_server::http_client::Auth;

use super::isolation::Org;
use super::{Server, email};

/// Postgres deployments running at once in one test binary: each holds up to a dozen
/// connections of a server shared with other test suites (`max_connections` 100).
static RUNNING: Semaphore = Semaphore::const_new(2);

/// One test's deployment. Declare it before the servers that use it, so they stop first.
pub struct PgEnv {
    db: Option<TestDatabase>,
    redis: TestRedis,
    /// Carried by every cluster-wide name of this deployment.
    pub tag: String,
    _running: SemaphorePermit<'static>,
}

impl PgEnv {
    /// A fresh global database and Redis prefix; waits while two other deployments run.
    pub async fn new() -> Self {
        let running = RUNNING.acquire().await.expect("semaphore is never closed");
        let db = TestDatabase::create().await;
        let redis = TestRedis::create().await;
        Self {
            db: Some(db),
            redis,
            tag: format!("e{}", &unique_suffix()[..8]),
            _running: running,
        }
    }

    fn db(&self) -> &TestDatabase {
        self.db.as_ref().expect("the database lives until drop")
    }

    /// The deployment's global (registry) database URL, `GLOBAL_DATABASE_URL` of its servers.
    pub fn global_url(&self) -> String {
        self.db().url().to_owned()
    }

    /// The name of the deployment's global (registry) database.
    pub fn global_database(&self) -> String {
        self.db().name().to_owned()
    }

    /// A connection to the deployment's global (registry) database.
    pub async fn registry(&self) -> PgConnection {
        PgConnection::connect(&self.global_url())
            .await
            .expect("registry connection")
    }

    /// A slug of this deployment: `<tag>_<name>`.
    pub fn slug(&self, name: &str) -> String {
        format!("{}_{name}", self.tag)
    }

    /// The registration of the organisation `Org <name>`: slug `<tag>_<name>`, a fresh owner
    /// e-mail of `name`, password `Test123!`, and `isolation`.
    pub fn registration(&self, name: &str, isolation: &str) -> Value {
        json!({
            "organization_name": format!("Org {name}"),
            "admin_email": email(name),
            "admin_password": "Test123!",
            "slug": self.slug(name),
            "isolation": isolation,
        })
    }

    /// Registers [`registration`](Self::registration) through `server` (a 2xx answer): the
    /// tenant id, the owner's access token and the whole answer.
    pub async fn register(
        &self,
        server: &Server,
        name: &str,
        isolation: &str,
    ) -> (String, String, Value) {
        server
            .register_with(&self.registration(name, isolation))
            .await
    }

    /// Registers `<tag>_<name>` with `isolation` and gives it companies named `companies`
    /// through its own API.
    pub async fn org_with_companies(
        &self,
        server: &Server,
        name: &str,
        isolation: &str,
        companies: &[&str],
    ) -> Org {
        let (id, token, answer) = self.register(server, name, isolation).await;
        assert_eq!(answer["tenant"]["isolation"], isolation);
        for company in companies {
            let r = server
                .post(
                    "/api/companies",
                    Auth::Bearer(&token),
                    &json!({ "name": company }),
                )
                .await;
            assert_eq!(r.status, http::StatusCode::CREATED, "{}", super::text(&r));
        }
        Org { id, token }
    }

    /// The variables of a server (or `tenant-cli`) of this deployment: small connection
    /// budgets, the test's names and secrets.
    pub fn vars(&self) -> Vec<(String, String)> {
        [
            ("GLOBAL_DATABASE_URL", self.db().url().to_owned()),
            ("REDIS_URL", self.redis.url().to_owned()),
            ("REDIS_KEY_PREFIX", self.redis.prefix().to_owned()),
            (
                "TENANT_DB_SECRET",
                format!("tenant-db-secret-of-{}-0123456789abcdef", self.tag),
            ),
            ("TENANT_SHARED_DATABASE", format!("{}_shared", self.tag)),
            ("TENANT_STORAGE_PREFIX", self.tag.clone()),
            // These suites register every isolation anonymously; the self-service default
            // (no `database`) has its own test in e2e_registration_failure.
            (
                "SELF_SERVICE_ISOLATION",
                "database,schema,shared".to_owned(),
            ),
            ("GLOBAL_POOL_SIZE", "3".to_owned()),
            ("MAX_TOTAL_CONNECTIONS", "4".to_owned()),
            ("MAX_CONNECTIONS_PER_TENANT", "2".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Starts a server of this deployment with `overrides` on top.
    pub fn server(&self, overrides: &[(&str, &str)]) -> Server {
        let vars = self.vars();
        let mut all: Vec<(&str, &str)> =
            vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(overrides);
        Server::start(&all)
    }

    /// `tenant-cli` with this deployment's variables (and nothing inherited but PATH).
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenant-cli"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("APP_ENV", "test")
            .env("LOG_LEVEL", "warn")
            .env("JWT_SECRET", super::JWT_SECRET)
            .env("SUPER_ADMIN_KEY", super::ADMIN_KEY)
            .env("PASSWORD_HASHING", "fast")
            .envs(self.vars())
            .current_dir(std::env::temp_dir())
            .args(args);
        cmd
    }

    /// A superuser connection to `database` of the test server.
    pub async fn admin(&self, database: &str) -> PgConnection {
        let options = self.db().connect_options().database(database);
        PgConnection::connect_with(&options)
            .await
            .expect("admin connection")
    }

    /// The names of the databases and roles of this deployment that exist right now.
    pub async fn leftovers(&self) -> Vec<String> {
        let mut conn = self.admin("postgres").await;
        let names = tagged(&mut conn, &self.tag).await;
        let _ = conn.close().await;
        names
    }
}

/// Databases, then roles, whose name carries `tag`.
async fn tagged(conn: &mut PgConnection, tag: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE strpos(datname, $1) > 0 \
         UNION ALL SELECT rolname::text FROM pg_roles WHERE strpos(rolname, $1) > 0",
    )
    .bind(tag)
    .fetch_all(conn)
    .await
    .unwrap_or_default()
}

impl Drop for PgEnv {
    fn drop(&mut self) {
        tenant_manager_test_support::drop_databases_and_roles_blocking(
            self.db().admin_url(),
            Some(&self.tag),
            &[],
        );
        // The global database goes last (its own drop).
        self.db.take();
    }
}
