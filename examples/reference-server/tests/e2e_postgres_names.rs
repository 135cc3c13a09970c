//! End-to-end, through the real `reference-server` and `tenant-cli` on the real Postgres:
//! a sign-up cannot take the storage of schema- and row-isolated tenants (defect 1 of issue
//! 10: `{"slug":"shared","isolation":"database"}` reserved the default shared database
//! `tenant_shared` and every later schema or shared registration failed); the registry pool
//! runs as its own login when `REGISTRY_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pg::PgEnv;
use common::{ADMIN_KEY, code, email, text};
use http::StatusCode;
use reference_server::http_client::Auth;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

/// Anonymous callers may ask for every isolation mode in these tests (the variable of the
/// self-service isolation setting; older builds ignore it).
const ALL_MODES: (&str, &str) = ("SELF_SERVICE_ISOLATION", "database,schema,shared");

async fn names_like(conn: &mut PgConnection, pattern: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE $1 \
         UNION ALL SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1 ORDER BY 1",
    )
    .bind(pattern)
    .fetch_all(conn)
    .await
    .unwrap()
}

fn registration(name: &str, slug: &str, isolation: &str) -> Value {
    json!({
        "organization_name": name,
        "admin_email": email(name),
        "admin_password": "Test123!",
        "slug": slug,
        "isolation": isolation,
    })
}

/// Registers `body` through `server` and checks that the tenant is active at once.
async fn assert_registered_active(server: &common::Server, body: &Value, what: &str) {
    let r = server.post_registration(body).await;
    assert!(r.status.is_success(), "{what}: {} {}", r.status, text(&r));
    let body: Value = r.json().unwrap();
    assert_eq!(body["tenant"]["status"], "active", "{what}: {body}");
}

#[tokio::test]
async fn a_database_sign_up_cannot_take_the_shared_database_of_later_sign_ups() {
    let env = PgEnv::new().await;
    // The shared database named as the old layout named the database of a tenant `<slug>`
    // (`tenant_<slug>`), as the default `tenant_shared` was for the slug `shared`.
    let slug = format!("{}sh", env.tag);
    let shared_db = format!("tenant_{slug}");
    let server = env.server(&[("TENANT_SHARED_DATABASE", shared_db.as_str()), ALL_MODES]);

    let squatter = registration("squatter", &slug, "database");
    assert_registered_active(&server, &squatter, "database").await;

    // Every later schema and shared sign-up still lands in the shared database.
    for (name, isolation) in [("later_sc", "schema"), ("later_sh", "shared")] {
        let later = registration(name, &env.slug(name), isolation);
        assert_registered_active(&server, &later, isolation).await;
    }
    let mut admin = env.admin("postgres").await;
    let comment: Option<String> = sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
    )
    .bind(&shared_db)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(
        comment.as_deref(),
        Some(format!("tenant-manager:shared:{}", env.tag).as_str())
    );
    // The database tenant has its own database and role, named under the storage prefix.
    let own = format!("{}_t_{slug}", env.tag);
    assert_eq!(
        names_like(&mut admin, &own).await,
        vec![own.clone(), own.clone()]
    );

    // The words of the deployment's own objects are not slugs, exactly as reported.
    for word in ["shared", "app", "template", "owner", "registry"] {
        let r = server
            .post_registration(&registration(&format!("word-{word}"), word, "database"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{word}: {}", text(&r));
        assert_eq!(code(&r), "invalid_input", "{word}");
        let body: Value = r.json().unwrap();
        assert_eq!(body["error"]["field"], "slug", "{word}: {body}");
    }
}

#[tokio::test]
async fn the_registry_pool_runs_as_its_own_login() {
    let env = PgEnv::new().await;
    let global = env.global_url();
    let login = format!("{}_registry", env.tag);
    // The same server and database as the global URL, with the registry login.
    let (_, rest) = global.split_once('@').unwrap();
    let registry_url = format!("postgres://{login}:registry-password-0123456789@{rest}");
    let vars = [("REGISTRY_DATABASE_URL", registry_url.as_str())];

    let migrated = env
        .cli(&["migrate", "global"])
        .env("REGISTRY_DATABASE_URL", &registry_url)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&migrated.stdout);
    assert!(
        migrated.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert!(out.contains("registry login ready"), "{out}");

    let server = env.server(&vars);
    let (id, _, body) = server
        .register_with(&registration("viareg", &env.slug("viareg"), "schema"))
        .await;
    assert_eq!(body["tenant"]["status"], "active", "{body}");

    // The registry's sessions are the registry login's; it owns the tm_* tables and can
    // neither create databases nor roles.
    let mut admin = PgConnection::connect(&global).await.unwrap();
    let (owner, createdb, createrole, sessions): (String, bool, bool, i64) = sqlx::query_as(
        "SELECT (SELECT pg_get_userbyid(relowner)::text FROM pg_class \
                 WHERE relname = 'tm_tenants' AND relkind = 'r' \
                   AND relnamespace = 'public'::regnamespace LIMIT 1), \
                r.rolcreatedb, r.rolcreaterole, \
                (SELECT count(*) FROM pg_stat_activity WHERE usename = $1) \
         FROM pg_roles r WHERE r.rolname = $1",
    )
    .bind(&login)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(
        (owner.as_str(), createdb, createrole),
        (login.as_str(), false, false)
    );
    assert!(sessions >= 1, "the registry pool logs in as {login}");
    let found = server
        .get_json(
            &format!("/api/admin/tenants/{id}"),
            Auth::AdminKey(ADMIN_KEY),
        )
        .await;
    assert_eq!(found["slug"], env.slug("viareg"), "{found}");
    drop(server);
    // Give the tables back so the deployment's cleanup can drop the login.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "REASSIGN OWNED BY \"{login}\" TO CURRENT_USER; DROP OWNED BY \"{login}\""
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let _ = admin.close().await;
}

#[tokio::test]
async fn a_shared_database_of_an_older_version_is_used_only_after_tenant_cli_claims_it() {
    let env = PgEnv::new().await;
    let shared_db = format!("{}_shared", env.tag);
    // The shared database as versions before storage prefixes left it: the old mark, and
    // `TEMPORARY` for everybody.
    let mut admin = env.admin("postgres").await;
    for sql in [
        format!("CREATE DATABASE \"{shared_db}\""),
        format!("COMMENT ON DATABASE \"{shared_db}\" IS 'tenant-manager:shared'"),
        format!("GRANT TEMPORARY ON DATABASE \"{shared_db}\" TO PUBLIC"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let server = env.server(&[]);
    let r = server
        .post_registration(&registration("before", &env.slug("before"), "schema"))
        .await;
    let body: Value = r.json().unwrap();
    assert_ne!(
        body["tenant"]["status"], "active",
        "used before it was claimed: {body}"
    );

    let claimed = env.cli(&["migrate", "claim-shared"]).output().unwrap();
    let out = String::from_utf8_lossy(&claimed.stdout);
    assert!(
        claimed.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&claimed.stderr)
    );
    assert!(
        out.contains(&format!("claimed: default/{shared_db}")),
        "{out}"
    );
    let public_temp: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_database d, aclexplode(d.datacl) a \
         WHERE d.datname = $1 AND a.grantee = 0 AND a.privilege_type = 'TEMPORARY')",
    )
    .bind(&shared_db)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(!public_temp, "PUBLIC keeps no TEMPORARY");
    let _ = admin.close().await;

    let (_, _, body) = server
        .register_with(&registration("after", &env.slug("after"), "schema"))
        .await;
    assert_eq!(body["tenant"]["status"], "active", "{body}");
    // A second run finds it already this deployment's.
    let again = env.cli(&["migrate", "claim-shared"]).output().unwrap();
    let out = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{out}");
    assert!(out.contains("already this deployment's"), "{out}");
}
