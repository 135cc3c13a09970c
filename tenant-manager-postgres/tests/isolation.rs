//! What isolation means, checked in Postgres itself: roles, grants, `pg_stat_activity`,
//! `current_schema()`, `has_database_privilege`, row-level security as the table owner.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{Connection, PgConnection};
use tenant_manager_core::{Isolation, Provisioner, Result, ServerId, Tenant, TenantRegistry};
use tenant_manager_postgres::{PostgresProvisioner, ServerMap, TenantSeeder, TenantStorage, wall};

use common::{Env, add_companies, company_names, sqlstate};

async fn scalar_bool(conn: &mut PgConnection, sql: &'static str, a: &str, b: &str) -> bool {
    sqlx::query_scalar(sql)
        .bind(a)
        .bind(b)
        .fetch_one(conn)
        .await
        .expect("query")
}

#[tokio::test]
async fn database_tenants_cannot_reach_each_other() {
    let env = Env::new().await;
    let a = env.active("alpha", Isolation::Database).await;
    let b = env.active("beta", Isolation::Database).await;
    let (role_a, role_b) = (a.role_name().expect("role"), b.role_name().expect("role"));
    let (db_a, db_b) = (&a.placement.database, &b.placement.database);

    // The fast path: both databases are copies of one template, migrated once.
    let status = env.provisioner.status(a.id).await.expect("status");
    assert!(
        status
            .used_template
            .as_deref()
            .is_some_and(|t| t.starts_with("tmtpl_")),
        "{status:?}"
    );

    let mut admin = env.admin("postgres").await;
    let q = "SELECT has_database_privilege($1, $2, 'CONNECT')";
    assert!(scalar_bool(&mut admin, q, &role_a, db_a).await);
    assert!(!scalar_bool(&mut admin, q, &role_a, db_b).await);
    assert!(!scalar_bool(&mut admin, q, &role_b, db_a).await);
    // PUBLIC lost CONNECT: no ACL entry grants it to everyone.
    let acl: Vec<String> =
        sqlx::query_scalar("SELECT unnest(datacl)::text FROM pg_database WHERE datname = $1")
            .bind(db_a)
            .fetch_all(&mut admin)
            .await
            .expect("acl");
    assert!(acl.iter().all(|e| !e.starts_with('=')), "{acl:?}");
    // The password is stored as a SCRAM verifier computed client-side.
    let verifier: String =
        sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
            .bind(&role_a)
            .fetch_one(&mut admin)
            .await
            .expect("verifier");
    let password = env.credentials.derive(&a).expect("derive");
    assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");
    assert!(!verifier.contains(password.expose()));

    // A's role opens its own database and owns its tables...
    let mut conn_a = env
        .connect_as(&role_a, db_a)
        .await
        .expect("A connects to A");
    let owner: String = sqlx::query_scalar(
        "SELECT tableowner::text FROM pg_tables WHERE schemaname = 'public' AND tablename = 'companies'",
    )
    .fetch_one(&mut conn_a)
    .await
    .expect("owner");
    assert_eq!(owner, role_a);
    sqlx::query("INSERT INTO companies (name) VALUES ('Initech')")
        .execute(&mut conn_a)
        .await
        .expect("A writes its table");
    // ...but not B's database.
    let refused = env
        .connect_as(&role_a, db_b)
        .await
        .expect_err("A refused by B");
    assert_eq!(sqlstate(&refused).as_deref(), Some("42501"), "{refused}");

    // Deprovisioning ends A's sessions, drops its database and role.
    let sessions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = $1")
            .bind(&role_a)
            .fetch_one(&mut admin)
            .await
            .expect("sessions");
    assert_eq!(sessions, 1);
    env.provisioner.deprovision(&a).await.expect("deprovision");
    assert!(conn_a.ping().await.is_err(), "A's session was terminated");
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE usename = $1) \
              + (SELECT count(*) FROM pg_roles WHERE rolname = $1) \
              + (SELECT count(*) FROM pg_database WHERE datname = $2)",
    )
    .bind(&role_a)
    .bind(db_a)
    .fetch_one(&mut admin)
    .await
    .expect("left");
    assert_eq!(left, 0);
    assert!(env.connect_as(&role_b, db_b).await.is_ok(), "B untouched");
    let _ = admin.close().await;
}

#[tokio::test]
async fn schema_tenants_cannot_read_each_other() {
    let env = Env::new().await;
    let a = env.active("alpha", Isolation::Schema).await;
    let b = env.active("beta", Isolation::Schema).await;
    let (role_a, role_b) = (a.role_name().expect("role"), b.role_name().expect("role"));
    let schema_a = a.placement.schema.clone().expect("schema");
    let schema_b = b.placement.schema.clone().expect("schema");
    add_companies(&env, &b, &["Hooli"]).await;

    // Schema tenants' roles cannot log in: sessions reach them through `SET ROLE` only.
    let login = env.connect_as(&role_a, &env.shared_db).await;
    assert!(login.is_err(), "a schema tenant's role is NOLOGIN");
    let mut conn_a = env.admin(&env.shared_db).await;
    // Behind the wall even the owner sees rows only in its tenant's verified context.
    wall::enter(&mut conn_a, env.storage.wall_keys().expect("key"), a.id)
        .await
        .expect("enter A");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET ROLE \"{role_a}\"")))
        .execute(&mut conn_a)
        .await
        .expect("A's role");
    // ... and cannot create temporary objects (nor can PUBLIC) in the shared database.
    let err = sqlx::query("CREATE TEMP TABLE scratch (x int)")
        .execute(&mut conn_a)
        .await
        .expect_err("no TEMPORARY");
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    // `$user` on the default search_path is A's own schema.
    let current: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(&mut conn_a)
        .await
        .expect("current_schema");
    assert_eq!(current, schema_a);
    sqlx::query("INSERT INTO companies (name) VALUES ('Initech')")
        .execute(&mut conn_a)
        .await
        .expect("A writes its table");
    let err = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM \"{schema_b}\".companies"
    )))
    .fetch_all(&mut conn_a)
    .await
    .expect_err("A cannot read B");
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");

    let mut admin = env.admin(&env.shared_db).await;
    let q = "SELECT has_schema_privilege($1, $2, 'USAGE')";
    assert!(scalar_bool(&mut admin, q, &role_a, &schema_a).await);
    assert!(!scalar_bool(&mut admin, q, &role_a, &schema_b).await);
    assert!(!scalar_bool(&mut admin, q, &role_b, &schema_a).await);
    let owner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = $1",
    )
    .bind(&schema_a)
    .fetch_one(&mut admin)
    .await
    .expect("owner");
    assert_eq!(owner, role_a);
    // Each schema has its own migration history.
    let versions: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema_a}\"._sqlx_migrations"
    )))
    .fetch_one(&mut admin)
    .await
    .expect("history");
    assert_eq!(versions, 1);

    env.provisioner.deprovision(&a).await.expect("deprovision");
    let gone: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = $1) \
              + (SELECT count(*) FROM pg_roles WHERE rolname = $2)",
    )
    .bind(&schema_a)
    .bind(&role_a)
    .fetch_one(&mut admin)
    .await
    .expect("gone");
    assert_eq!(gone, 0);
    assert_eq!(company_names(&env, &b).await, vec!["Hooli".to_owned()]);
    let _ = conn_a.close().await;
    let _ = admin.close().await;
}

#[tokio::test]
async fn row_level_security_hides_other_tenants_even_from_the_table_owner() {
    let env = Env::new().await;
    let a = env.active("alpha", Isolation::Shared).await;
    let b = env.active("beta", Isolation::Shared).await;
    add_companies(&env, &a, &["Initech", "Globex"]).await;
    add_companies(&env, &b, &["Hooli"]).await;
    let owner = env.storage.config().shared_owner.clone();

    let mut conn = env.admin(&env.shared_db).await;
    let (table_owner, forced, superuser): (String, bool, bool) = sqlx::query_as(
        "SELECT pg_get_userbyid(c.relowner)::text, c.relforcerowsecurity, r.rolsuper \
         FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.relname = 'companies'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("table");
    assert_eq!(table_owner, owner);
    assert!(forced);
    assert!(
        !superuser,
        "RLS never applies to superusers: the owner must not be one"
    );

    // As the table owner, in A's verified context: only A's rows.
    wall::enter(&mut conn, env.storage.wall_keys().expect("key"), a.id)
        .await
        .expect("enter A");
    sqlx::query(sqlx::AssertSqlSafe(format!("SET ROLE \"{owner}\"")))
        .execute(&mut conn)
        .await
        .expect("set role");
    // A setting names B: the wall does not read it.
    sqlx::query("SELECT set_config('app.tenant_id', $1, false)")
        .bind(b.id.to_string())
        .execute(&mut conn)
        .await
        .expect("setting");
    let seen: Vec<String> = sqlx::query_scalar("SELECT name FROM companies ORDER BY name")
        .fetch_all(&mut conn)
        .await
        .expect("select");
    assert_eq!(seen, vec!["Globex".to_owned(), "Initech".to_owned()]);
    // Writing a row for B while scoped to A is refused by the policy's check.
    let err = sqlx::query("INSERT INTO companies (tenant_id, name) VALUES ($1, 'Sneaky')")
        .bind(b.id.as_uuid())
        .execute(&mut conn)
        .await
        .expect_err("check refuses");
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    // Without a verdict the owner reads nothing: the check fails closed, loudly.
    sqlx::raw_sql("DISCARD SEQUENCES")
        .execute(&mut conn)
        .await
        .expect("discard");
    let err = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM companies")
        .fetch_one(&mut conn)
        .await
        .expect_err("no verdict");
    assert_eq!(sqlstate(&err).as_deref(), Some("55000"), "{err}");
    let _ = conn.close().await;

    env.provisioner.deprovision(&a).await.expect("deprovision");
    assert!(company_names(&env, &a).await.is_empty());
    assert_eq!(company_names(&env, &b).await, vec!["Hooli".to_owned()]);
}

#[tokio::test]
async fn shared_migrations_that_bypass_the_wall_are_refused() {
    // The table itself is put behind the wall; the view reads with its owner's rights.
    let status = common::assert_unforced_shared_table_refused(
        "notes",
        "CREATE TABLE notes (tenant_id uuid NOT NULL, body text); \
         CREATE VIEW all_notes AS SELECT * FROM notes;",
        "all_notes",
    )
    .await;
    assert_eq!(
        status.failed_step,
        Some(tenant_manager_core::ProvisionStep::Migrated)
    );
}

#[tokio::test]
async fn foreign_objects_and_taken_placements_are_not_touched() {
    let env = Env::new().await;
    // A role of the tenant's name that tenant-manager did not create is left alone.
    let tenant = env.register("alpha", Isolation::Database).await;
    let role = tenant.role_name().expect("role");
    let mut admin = env.admin("postgres").await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE \"{role}\" NOLOGIN"
    )))
    .execute(&mut admin)
    .await
    .expect("foreign role");
    let err = env
        .provisioner
        .provision(&tenant)
        .await
        .expect_err("conflict");
    assert_eq!(err.field(), Some("role"), "{err:?}");
    let err = env
        .provisioner
        .deprovision(&tenant)
        .await
        .expect_err("conflict");
    assert_eq!(err.field(), Some("role"), "{err:?}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE \"{role}\"")))
        .execute(&mut admin)
        .await
        .expect("drop foreign role");
    let _ = admin.close().await;

    // Two tenants may not claim one database.
    let first = env.register("beta", Isolation::Database).await;
    let mut clash = env.new_tenant("gamma", Isolation::Database);
    clash.placement = first.placement.clone();
    let clash = env
        .registry
        .create_tenant(clash)
        .await
        .map(|mut t| {
            t.status = tenant_manager_core::TenantStatus::Provisioning;
            t
        })
        .expect("registered");
    let err = env.provisioner.provision(&clash).await.expect_err("taken");
    assert_eq!(err.field(), Some("placement"), "{err:?}");
}

#[tokio::test]
async fn tenants_are_placed_on_any_server_of_the_map() {
    let env = Env::new().await;
    let second = ServerId::new("second").expect("server id");
    let servers = ServerMap::single(env.db.admin_url())
        .and_then(|m| m.with_server(second.clone(), env.db.admin_url()))
        .expect("servers");
    let storage = TenantStorage::new(
        env.pool.clone(),
        servers,
        common::migrations(),
        env.storage.config().clone(),
    )
    .expect("storage")
    .with_wall(env.storage.wall_keys().cloned().expect("wall key"));
    let provisioner = PostgresProvisioner::new(storage, env.credentials.clone());
    let mut new = env.new_tenant("alpha", Isolation::Schema);
    new.placement.server = second.clone();
    let tenant = env.registry.create_tenant(new).await.expect("create");
    provisioner
        .provision(&tenant)
        .await
        .expect("on the second server");
    assert!(
        provisioner
            .is_provisioned(&tenant)
            .await
            .expect("provisioned")
    );
    let mut stray = env.new_tenant("beta", Isolation::Schema);
    stray.placement.server = ServerId::new("nowhere").expect("id");
    let stray = env.registry.create_tenant(stray).await.expect("create");
    let err = provisioner
        .provision(&stray)
        .await
        .expect_err("unknown server");
    assert_eq!(err.field(), Some("placement.server"), "{err:?}");
}

/// Seeds one company per tenant through the scoped connection.
#[derive(Debug)]
struct WelcomeSeeder;

#[async_trait]
impl TenantSeeder for WelcomeSeeder {
    async fn seed(&self, tenant: &Tenant, conn: &mut PgConnection) -> Result<()> {
        // No tenant_id and no schema in the statement: the scope supplies both.
        sqlx::query(
            "INSERT INTO companies (name) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM companies)",
        )
        .bind(format!("Welcome to {}", tenant.name))
        .execute(conn)
        .await
        .map_err(|e| tenant_manager_postgres::map_sqlx(tenant_manager_core::Entity::Record, e))?;
        Ok(())
    }
}

#[tokio::test]
async fn seeds_run_in_the_tenant_scope() {
    let env = Env::new().await;
    let provisioner = env.provisioner.clone().with_seeder(Arc::new(WelcomeSeeder));
    for (name, isolation) in [
        ("dbt", Isolation::Database),
        ("sct", Isolation::Schema),
        ("sht", Isolation::Shared),
    ] {
        let tenant = env.register(name, isolation).await;
        provisioner.provision(&tenant).await.expect("provision");
        assert_eq!(
            company_names(&env, &tenant).await,
            vec![format!("Welcome to Tenant {name}")],
            "{isolation}"
        );
    }
}

#[tokio::test]
async fn security_definer_functions_need_the_hosts_allow_list() {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};

    const SQL: &str = "CREATE FUNCTION tenant_count() RETURNS bigint LANGUAGE sql \
                       SECURITY DEFINER SET search_path = pg_catalog AS 'SELECT 1::bigint';";
    // Refused by name, and rolled back.
    let status =
        common::assert_unforced_shared_table_refused("definer", SQL, "tenant_count()").await;
    assert_eq!(
        status.failed_step,
        Some(tenant_manager_core::ProvisionStep::Migrated)
    );
    // Allowed when the host names it.
    let set = Migrator::with_migrations(vec![Migration::new(
        1,
        "definer".into(),
        MigrationType::Simple,
        SQL.into_sql_str(),
        false,
    )]);
    let env = Env::with(
        tenant_manager_postgres::TenantMigrations::new(&common::ISOLATED)
            .with_shared(&set)
            .with_definer_functions(["tenant_count"]),
        |c| c,
    )
    .await;
    env.active("alpha", Isolation::Shared).await;
}
