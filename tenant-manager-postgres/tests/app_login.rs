//! The app login, checked in Postgres itself: its attributes in `pg_roles`, its memberships in
//! `pg_auth_members`, and what a pooled session logged in as it can and cannot reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod pool_support;

use sqlx::{Connection, PgConnection};
use tenant_manager_core::{
    Isolation, ProvisionStep, Provisioner, Secret, TenantRegistry, TenantStatus,
};
use tenant_manager_postgres::{
    AppLogin, AppLoginReport, PgTenantConnector, PgTenantPools, PostgresProvisioner, ServerMap,
    StepPhase, TenantStorage, WallAdmin,
};

use common::app::{app_login, app_name, counts, env, is_member};
use common::crash::crashing_once;
use common::{Env, add_companies, company_names, sqlstate};

/// Creates the app login (or brings it up to date) and backfills its grants.
async fn ensure(env: &Env) -> AppLoginReport {
    env.provisioner
        .ensure_app_login(&app_login(env))
        .await
        .expect("ensure app login")
}

/// A test environment with its app login created, and the login's name.
async fn env_with_app_login() -> (Env, String) {
    let env = env().await;
    ensure(&env).await;
    let app = app_name(&env);
    (env, app)
}

/// The pool engine logged in as the app login.
fn pools(env: &Env, max_total: u32) -> PgTenantPools {
    let servers = ServerMap::single(env.db.admin_url()).expect("servers");
    PgTenantConnector::new(servers, env.credentials.clone())
        .with_app_login(app_login(env))
        .with_wall(env.storage.wall_keys().cloned().expect("wall key"))
        .with_application_name(format!("tmtest_app_{}", env.tag))
        .into_pools(pool_support::config(max_total, max_total))
        .expect("pools")
}

/// `current_user`, `session_user`, `current_schema()` and the backend pid of a session.
async fn who(conn: &mut PgConnection) -> (String, String, Option<String>, i32) {
    sqlx::query_as(
        "SELECT current_user::text, session_user::text, current_schema()::text, pg_backend_pid()",
    )
    .fetch_one(conn)
    .await
    .expect("who")
}

async fn names(conn: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM companies ORDER BY name")
        .fetch_all(conn)
        .await
        .expect("companies")
}

#[tokio::test]
async fn the_app_login_is_unprivileged_and_its_password_a_scram_verifier() {
    let env = env().await;
    let login = app_login(&env);
    let report = env
        .provisioner
        .ensure_app_login(&login)
        .await
        .expect("ensure");
    assert_eq!(report.servers, 1);
    let mut admin = env.admin("postgres").await;
    let row: (
        bool,
        bool,
        bool,
        bool,
        bool,
        bool,
        bool,
        Option<String>,
        String,
    ) = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolinherit, \
                    rolreplication, rolcanlogin, shobj_description(oid, 'pg_authid'), \
                    rolpassword \
             FROM pg_authid WHERE rolname = $1",
    )
    .bind(login.name())
    .fetch_one(&mut admin)
    .await
    .expect("pg_authid");
    let (sup, bypass, createdb, createrole, inherit, replication, login_ok, comment, password) =
        row;
    assert!(!sup && !bypass && !createdb && !createrole && !replication);
    assert!(!inherit, "NOINHERIT: nothing comes through a membership");
    assert!(login_ok);
    assert_eq!(comment.as_deref(), Some("tenant-manager:app-login"));
    assert!(password.starts_with("SCRAM-SHA-256$4096:"), "{password}");
    assert!(!password.contains(login.password().expose()));

    // Idempotent, and it re-asserts the attributes someone changed.
    // Session defaults too, which the login may set on itself from any session.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER ROLE \"{0}\" INHERIT CREATEDB; \
         ALTER ROLE \"{0}\" SET statement_timeout = '1ms'; \
         ALTER ROLE \"{0}\" IN DATABASE postgres SET search_path = 'evil'",
        login.name()
    )))
    .execute(&mut admin)
    .await
    .expect("tamper");
    env.provisioner
        .ensure_app_login(&login)
        .await
        .expect("again");
    let (inherit, createdb): (bool, bool) =
        sqlx::query_as("SELECT rolinherit, rolcreatedb FROM pg_roles WHERE rolname = $1")
            .bind(login.name())
            .fetch_one(&mut admin)
            .await
            .expect("pg_roles");
    assert!(!inherit && !createdb);
    let defaults: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole \
         WHERE r.rolname = $1",
    )
    .bind(login.name())
    .fetch_one(&mut admin)
    .await
    .expect("pg_db_role_setting");
    assert_eq!(defaults, 0, "the login's session defaults are reset");

    // Only the storage's own app login is accepted.
    let other = AppLogin::new("tmapp_someone_else", Secret::new("p".repeat(20))).expect("login");
    let err = env
        .provisioner
        .ensure_app_login(&other)
        .await
        .expect_err("not ours");
    assert_eq!(err.field(), Some("app_login"), "{err:?}");
    let _ = admin.close().await;
}

#[tokio::test]
async fn schema_tenants_get_only_their_own_schema_through_the_app_login() {
    let (env, app) = env_with_app_login().await;
    let a = env.active("alpha", Isolation::Schema).await;
    let b = env.active("beta", Isolation::Schema).await;
    let (role_a, role_b) = (a.role_name().expect("role"), b.role_name().expect("role"));
    let (schema_a, schema_b) = (
        a.placement.schema.clone().expect("schema"),
        b.placement.schema.clone().expect("schema"),
    );
    add_companies(&env, &a, &["Initech"]).await;
    add_companies(&env, &b, &["Hooli"]).await;
    let mut admin = env.admin("postgres").await;
    // Behind the wall the app login is a member of no tenant role.
    assert!(!is_member(&mut admin, &role_a, &app).await);
    assert!(!is_member(&mut admin, &role_b, &app).await);

    let pools = pools(&env, 1);
    {
        let mut conn = pools.acquire(&a).await.expect("acquire A");
        let (user, session, schema, _) = who(&mut conn).await;
        assert_eq!(
            (user.as_str(), session.as_str()),
            (app.as_str(), app.as_str())
        );
        assert_eq!(schema.as_deref(), Some(schema_a.as_str()));
        assert_eq!(names(&mut conn).await, vec!["Initech".to_owned()]);
        let seen: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM \"{schema_b}\".companies"
        )))
        .fetch_all(&mut *conn)
        .await
        .expect("schema-qualified read");
        assert!(
            seen.is_empty(),
            "the wall shows A none of B's rows: {seen:?}"
        );
        let err = sqlx::query(sqlx::AssertSqlSafe(format!("SET ROLE \"{role_b}\"")))
            .execute(&mut *conn)
            .await
            .expect_err("no SET ROLE to B");
        assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    }
    pool_support::settle(&pools).await;
    {
        // The same connection (the pool holds one), now B's.
        let mut conn = pools.acquire(&b).await.expect("acquire B");
        let (user, _, schema, _) = who(&mut conn).await;
        assert_eq!(user, app);
        assert_eq!(schema.as_deref(), Some(schema_b.as_str()));
        assert_eq!(names(&mut conn).await, vec!["Hooli".to_owned()]);
        let seen: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM \"{schema_a}\".companies"
        )))
        .fetch_all(&mut *conn)
        .await
        .expect("schema-qualified read");
        assert!(
            seen.is_empty(),
            "the wall shows B none of A's rows: {seen:?}"
        );
    }
    pool_support::settle(&pools).await;

    // Deprovisioning drops A's schema and role; B keeps its own.
    env.provisioner.deprovision(&a).await.expect("deprovision");
    assert!(!is_member(&mut admin, &role_b, &app).await);
    let mut conn = pools.acquire(&b).await.expect("B still works");
    assert_eq!(names(&mut conn).await, vec!["Hooli".to_owned()]);
    drop(conn);
    pool_support::settle(&pools).await;
    pools.close_all();
    let _ = admin.close().await;
}

#[tokio::test]
async fn shared_tenants_are_bound_by_row_level_security_through_the_app_login() {
    let (env, app) = env_with_app_login().await;
    let a = env.active("alpha", Isolation::Shared).await;
    let b = env.active("beta", Isolation::Shared).await;
    let s = env.active("gamma", Isolation::Schema).await;
    add_companies(&env, &a, &["Globex", "Initech"]).await;
    add_companies(&env, &b, &["Hooli"]).await;

    let pools = pools(&env, 1);
    let schema_pid = {
        let mut conn = pools.acquire(&s).await.expect("acquire schema tenant");
        let (user, _, _, pid) = who(&mut conn).await;
        assert_eq!(user, app);
        pid
    };
    pool_support::settle(&pools).await;
    {
        let mut conn = pools.acquire(&a).await.expect("acquire A");
        // The return reset the schema tenant's scope on this very connection.
        let (user, session, _, pid) = who(&mut conn).await;
        assert_eq!(pid, schema_pid);
        assert_eq!(
            (user.as_str(), session.as_str()),
            (app.as_str(), app.as_str())
        );
        // No tenant filter: row-level security alone hides B's rows.
        assert_eq!(
            names(&mut conn).await,
            vec!["Globex".to_owned(), "Initech".to_owned()]
        );
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM companies WHERE tenant_id = $1")
            .bind(b.id.as_uuid())
            .fetch_one(&mut *conn)
            .await
            .expect("count B");
        assert_eq!(n, 0);
        let err = sqlx::query("INSERT INTO companies (tenant_id, name) VALUES ($1, 'Sneaky')")
            .bind(b.id.as_uuid())
            .execute(&mut *conn)
            .await
            .expect_err("a row of B is refused");
        assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
        let moved = sqlx::query("UPDATE companies SET name = 'Mine' WHERE tenant_id = $1")
            .bind(b.id.as_uuid())
            .execute(&mut *conn)
            .await
            .expect("update");
        assert_eq!(moved.rows_affected(), 0);
        sqlx::query("INSERT INTO companies (name) VALUES ('Umbrella')")
            .execute(&mut *conn)
            .await
            .expect("A writes its own row");
        // Large objects would carry no tenant: nobody but a superuser creates them here.
        let err = sqlx::query("SELECT lo_create(0)")
            .execute(&mut *conn)
            .await
            .expect_err("no large objects");
        assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
        // The migration history is out of reach.
        let err = sqlx::query("DELETE FROM _sqlx_migrations")
            .execute(&mut *conn)
            .await
            .expect_err("history");
        assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    }
    pool_support::settle(&pools).await;
    pools.close_all();
    assert_eq!(company_names(&env, &b).await, vec!["Hooli".to_owned()]);
    assert_eq!(company_names(&env, &a).await.len(), 3);

    // Privileges, never ownership; tables of later migrations are covered too.
    let owner = env.storage.config().shared_owner.clone();
    let mut admin = env.admin(&env.shared_db).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET ROLE \"{owner}\"; \
         CREATE TABLE notes (tenant_id uuid NOT NULL, id bigserial, body text); \
         RESET ROLE"
    )))
    .execute(&mut admin)
    .await
    .expect("a later migration");
    let privileges: (bool, bool, bool, bool, bool, bool) = sqlx::query_as(
        "SELECT has_table_privilege($1, 'public.companies', 'SELECT, INSERT, UPDATE, DELETE'), \
                has_table_privilege($1, 'public.companies', 'TRUNCATE'), \
                has_table_privilege($1, 'public._sqlx_migrations', 'SELECT, INSERT, UPDATE, DELETE'), \
                has_table_privilege($1, 'public.notes', 'SELECT, INSERT, UPDATE, DELETE'), \
                has_sequence_privilege($1, 'public.notes_id_seq', 'USAGE'), \
                EXISTS (SELECT 1 FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner \
                        WHERE r.rolname = $1)",
    )
    .bind(&app)
    .fetch_one(&mut admin)
    .await
    .expect("privileges");
    assert_eq!(privileges, (true, false, false, true, true, false));
    let _ = admin.close().await;
}

#[tokio::test]
async fn provisioning_killed_at_any_step_resumes_to_a_granted_tenant() {
    let env = env().await;
    let app = app_name(&env);
    let mut admin = env.admin("postgres").await;
    let mut n = 0;
    let mut resumed = Vec::new();
    for isolation in [Isolation::Schema, Isolation::Shared] {
        for step in [ProvisionStep::StorageCreated, ProvisionStep::Migrated] {
            for phase in [StepPhase::Done, StepPhase::Recorded] {
                n += 1;
                let provisioner = crashing_once(&env.provisioner, step, phase);
                let tenant = env.register(&format!("k{n}"), isolation).await;
                provisioner.provision(&tenant).await.expect_err("killed");
                provisioner.provision(&tenant).await.expect("resumed");
                let what = format!("{isolation} {step:?} {phase:?}");
                if isolation == Isolation::Schema {
                    let role = tenant.role_name().expect("role");
                    assert!(!is_member(&mut admin, &role, &app).await, "{what}");
                    let usage: bool = sqlx::query_scalar(
                        "SELECT has_schema_privilege($1, $2, 'USAGE') \
                         FROM pg_namespace WHERE nspname = $2",
                    )
                    .bind(&app)
                    .bind(tenant.placement.schema.as_deref().expect("schema"))
                    .fetch_one(&mut env.admin(&env.shared_db).await)
                    .await
                    .expect("usage");
                    assert!(usage, "{what}");
                }
                let active = env
                    .registry
                    .transition(tenant.id, TenantStatus::Active, None)
                    .await
                    .expect("active");
                resumed.push(active);
            }
        }
    }
    let _ = admin.close().await;

    // Every resumed tenant works through the app login.
    ensure(&env).await;
    let pools = pools(&env, 2);
    assert_eq!(resumed.len(), n);
    for tenant in &resumed {
        let mut conn = pools.acquire(tenant).await.expect("acquire");
        sqlx::query("INSERT INTO companies (name) VALUES ('Initech')")
            .execute(&mut *conn)
            .await
            .expect("insert");
        assert_eq!(
            names(&mut conn).await,
            vec!["Initech".to_owned()],
            "{}",
            tenant.slug
        );
    }
    pool_support::settle(&pools).await;
    pools.close_all();
}

#[tokio::test]
async fn tenants_provisioned_before_the_app_login_are_backfilled() {
    let env = env().await;
    let app = app_name(&env);
    // Provisioned the old way: no app login anywhere.
    let before = TenantStorage::new(
        env.pool.clone(),
        ServerMap::single(env.db.admin_url()).expect("servers"),
        common::migrations(),
        env.storage.config().clone().without_app_login(),
    )
    .expect("storage");
    let old = PostgresProvisioner::new(before, env.credentials.clone());
    let mut tenants = Vec::new();
    for (name, isolation) in [
        ("alpha", Isolation::Schema),
        ("beta", Isolation::Schema),
        ("gamma", Isolation::Shared),
    ] {
        let tenant = env.register(name, isolation).await;
        old.provision(&tenant).await.expect("provision");
        let tenant = env
            .registry
            .transition(tenant.id, TenantStatus::Active, None)
            .await
            .expect("active");
        add_companies(&env, &tenant, &[name]).await;
        tenants.push(tenant);
    }
    let mut admin = env.admin("postgres").await;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(&app)
            .fetch_one(&mut admin)
            .await
            .expect("exists");
    assert!(!exists);

    let report = ensure(&env).await;
    assert_eq!((report.servers, report.databases), (1, 1));
    // The wall goes up over the tenants provisioned without it.
    let wall = WallAdmin::new(env.storage.clone()).expect("wall admin");
    let check = wall.check().await.expect("check");
    assert!(!check.is_ok(), "no wall yet: {check:?}");
    let report = wall.install().await.expect("install the wall");
    assert_eq!(counts(&report), (1, 1, 2, 1), "{report:?}");
    let check = wall.check().await.expect("check");
    assert!(check.is_ok(), "{check:?}");
    for tenant in &tenants[..2] {
        assert!(!is_member(&mut admin, &tenant.role_name().expect("role"), &app).await);
    }
    let pools = pools(&env, 1);
    for tenant in &tenants {
        let mut conn = pools.acquire(tenant).await.expect("acquire");
        assert_eq!(
            names(&mut conn).await,
            vec![tenant.name.replace("Tenant ", "")]
        );
        drop(conn);
        pool_support::settle(&pools).await;
    }
    pools.close_all();
    let again = wall.install().await.expect("again");
    assert_eq!((again.databases, again.installed), (1, 0), "{again:?}");
    let _ = admin.close().await;
}

#[tokio::test]
async fn a_foreign_role_of_the_app_logins_name_is_refused_and_untouched() {
    let env = env().await;
    let app = app_name(&env);
    let mut admin = env.admin("postgres").await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE \"{app}\" NOLOGIN CREATEDB"
    )))
    .execute(&mut admin)
    .await
    .expect("foreign role");
    let err = env
        .provisioner
        .ensure_app_login(&app_login(&env))
        .await
        .expect_err("refused");
    assert_eq!(
        (err.code(), err.field()),
        ("conflict", Some("app_login")),
        "{err:?}"
    );
    let tenant = env.register("alpha", Isolation::Schema).await;
    let err = env
        .provisioner
        .provision(&tenant)
        .await
        .expect_err("refused");
    assert_eq!(err.field(), Some("app_login"), "{err:?}");

    let (login, createdb, comment, members): (bool, bool, Option<String>, i64) = sqlx::query_as(
        "SELECT rolcanlogin, rolcreatedb, shobj_description(oid, 'pg_authid'), \
                (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid) \
         FROM pg_roles r WHERE rolname = $1",
    )
    .bind(&app)
    .fetch_one(&mut admin)
    .await
    .expect("role");
    assert_eq!((login, createdb, comment, members), (false, true, None, 0));
    let _ = admin.close().await;
}

#[tokio::test]
async fn schema_tenants_keep_their_data_after_provisioning_without_the_app_login() {
    // Opting out keeps the old behaviour: no role, no grant.
    let env = Env::with(common::migrations(), |c| c.without_app_login()).await;
    let tenant = env.active("alpha", Isolation::Schema).await;
    add_companies(&env, &tenant, &["Initech"]).await;
    assert_eq!(
        company_names(&env, &tenant).await,
        vec!["Initech".to_owned()]
    );
    let mut admin = env.admin("postgres").await;
    let members: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid \
         WHERE r.rolname = $1",
    )
    .bind(tenant.role_name().expect("role"))
    .fetch_one(&mut admin)
    .await
    .expect("members");
    assert_eq!(members, 0);
    let _ = admin.close().await;
}
