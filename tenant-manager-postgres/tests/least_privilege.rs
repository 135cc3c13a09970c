//! Least privilege, checked in Postgres: the registry login does the registry's work and
//! nothing else; every shared table the app login is granted has forced row-level security.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use tenant_manager_core::{Isolation, Secret, TenantRegistry, TenantStatus};
use tenant_manager_postgres::{PostgresRegistry, RegistryLogin, ensure_registry_login};

use common::{Env, sqlstate};

async fn refused(conn: &mut PgConnection, sql: String) -> Option<String> {
    let err = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .expect_err("refused");
    sqlstate(&err)
}

#[tokio::test]
async fn the_registry_login_does_the_registrys_work_and_nothing_else() {
    let env = Env::prefixed().await;
    let db_tenant = env.active("dbt", Isolation::Database).await;
    env.active("sht", Isolation::Shared).await;
    let name = format!("{}_registry", env.tag);
    let login =
        RegistryLogin::new(&name, Secret::new("registry-password-0123456789")).expect("login");
    let report = ensure_registry_login(&env.pool, &login)
        .await
        .expect("ensure");
    assert!(report.relations >= 6, "{report:?}");
    // Idempotent.
    ensure_registry_login(&env.pool, &login)
        .await
        .expect("again");

    let mut admin = env.admin("postgres").await;
    let attrs: (bool, bool, bool, bool, bool) = sqlx::query_as(
        "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls \
         FROM pg_roles WHERE rolname = $1",
    )
    .bind(&name)
    .fetch_one(&mut admin)
    .await
    .expect("attributes");
    assert_eq!(attrs, (true, false, false, false, false));
    let _ = admin.close().await;
    let mut global = env.admin(env.db.name()).await;
    let owned: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner \
         WHERE r.rolname = $1 AND c.relkind IN ('r', 'p', 'S', 'v') ORDER BY 1",
    )
    .bind(&name)
    .fetch_all(&mut global)
    .await
    .expect("owned");
    assert!(owned.iter().all(|t| t.starts_with("tm_")), "{owned:?}");
    assert!(owned.contains(&"tm_tenants".to_owned()), "{owned:?}");
    assert!(
        !owned.contains(&"tm_schema_migrations".to_owned()),
        "{owned:?}"
    );
    let _ = global.close().await;

    // The registry's work, through a pool logged in as the registry login.
    let options = env.admin_options(env.db.name()).username(&name);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.clone())
        .await
        .expect("registry pool");
    let registry = PostgresRegistry::new(pool.clone());
    let tenant = registry
        .create_tenant(env.new_tenant("viareg", Isolation::Schema))
        .await
        .expect("create");
    registry
        .transition(tenant.id, TenantStatus::Provisioning, None)
        .await
        .expect("transition");
    assert_eq!(
        registry.get_tenant(db_tenant.id).await.expect("get").slug,
        db_tenant.slug
    );

    // Nothing else: no databases, no roles, no migration history, no tenant data.
    let mut conn = pool.acquire().await.expect("conn").detach();
    let tag = &env.tag;
    assert_eq!(
        refused(&mut conn, format!("CREATE DATABASE \"{tag}_byreg\""))
            .await
            .as_deref(),
        Some("42501")
    );
    assert_eq!(
        refused(&mut conn, format!("CREATE ROLE \"{tag}_byreg\""))
            .await
            .as_deref(),
        Some("42501")
    );
    assert_eq!(
        refused(&mut conn, "SELECT * FROM tm_schema_migrations".to_owned())
            .await
            .as_deref(),
        Some("42501")
    );
    let _ = conn.close().await;
    for database in [
        db_tenant.placement.database.as_str(),
        env.shared_db.as_str(),
    ] {
        let err = PgConnection::connect_with(&options.clone().database(database))
            .await
            .expect_err("no CONNECT");
        assert_eq!(
            sqlstate(&err).as_deref(),
            Some("42501"),
            "{database}: {err}"
        );
    }
    pool.close().await;
    // The login owns tables of the global database: give them back so cleanup can drop it.
    let mut global = env.admin(env.db.name()).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "REASSIGN OWNED BY \"{name}\" TO CURRENT_USER; DROP OWNED BY \"{name}\""
    )))
    .execute(&mut global)
    .await
    .expect("reassign");
    let _ = global.close().await;
}

#[tokio::test]
async fn a_shared_table_without_forced_row_level_security_is_refused_by_name() {
    // No `tenant_id` column, no row-level security: still granted to the app login.
    common::assert_unforced_shared_table_refused(
        "lookup",
        "CREATE TABLE countries (code text PRIMARY KEY, name text);",
        "countries",
    )
    .await;
}
