//! A fresh, uniquely named Postgres database per test.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::sync::OnceLock;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

const HOW_TO_START: &str = "no Postgres answered. Start the local server with \
`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or set \
TEST_DATABASE_URL to a reachable server (superuser needed), or enable the `containers` \
feature of tenant-manager-test-support with a running Docker engine.";

/// The admin (superuser) URL tests connect with: `TEST_DATABASE_URL` or the local default.
/// With the `containers` feature, a Postgres container when the local server does not answer.
pub async fn postgres_admin_url() -> String {
    static CONTAINER_URL: OnceLock<String> = OnceLock::new();
    if let Some(url) = CONTAINER_URL.get() {
        return url.clone();
    }
    let url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    match PgConnection::connect(&url).await {
        Ok(conn) => {
            let _ = conn.close().await;
            url
        }
        Err(err) => {
            #[cfg(feature = "containers")]
            if let Some(container_url) = containers::start_postgres().await {
                let _ = CONTAINER_URL.set(container_url.clone());
                return container_url;
            }
            panic!("{HOW_TO_START} (tried {}: {err})", redact(&url))
        }
    }
}

fn redact(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(opts) => format!(
            "postgres://{}@{}:{}",
            opts.get_username(),
            opts.get_host(),
            opts.get_port()
        ),
        Err(_) => "<unparsable url>".to_owned(),
    }
}

/// A database created for one test and dropped when the value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    admin_url: String,
    url: String,
}

impl TestDatabase {
    /// Creates `tmtest_<random>` on the test server.
    pub async fn create() -> Self {
        let admin_url = postgres_admin_url().await;
        let name = format!("tmtest_{}", crate::unique_suffix());
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{HOW_TO_START}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let url = Self::url_for(&admin_url, &name);
        Self {
            name,
            admin_url,
            url,
        }
    }

    fn url_for(admin_url: &str, database: &str) -> String {
        PgConnectOptions::from_str(admin_url)
            .expect("parse admin url")
            .database(database)
            .to_url_lossy()
            .to_string()
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A superuser URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The superuser URL of the server's maintenance database.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Connect options of this database.
    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.url).expect("parse test url")
    }

    /// A small pool on this database.
    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(5)
            .connect(&self.url)
            .await
            .expect("connect to test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        crate::drop_databases_and_roles_blocking(
            &self.admin_url,
            None,
            std::slice::from_ref(&self.name),
        );
    }
}

#[cfg(feature = "containers")]
mod containers {
    use testcontainers_modules::postgres::Postgres;
    use testcontainers_modules::testcontainers::{ImageExt, runners::AsyncRunner};

    pub(super) async fn start_postgres() -> Option<String> {
        let container = Postgres::default()
            .with_tag("16-alpine")
            .start()
            .await
            .ok()?;
        let port = container.get_host_port_ipv4(5432).await.ok()?;
        // Keep the container for the whole test process.
        std::mem::forget(container);
        Some(format!(
            "postgres://postgres:postgres@127.0.0.1:{port}/postgres"
        ))
    }
}
