//! The app login of a test environment: its name, its password and wall key (derived from the
//! environment's master secret), and membership checks.

use sqlx::PgConnection;
use tenant_manager_core::{Isolation, Secret, Tenant};
use tenant_manager_postgres::wall::WallReport;
use tenant_manager_postgres::{AppLogin, WallKeys};

use super::{Env, migrations};

/// A test environment whose app login carries the test's tag (so its cleanup drops it).
pub async fn env() -> Env {
    Env::with(migrations(), |c| {
        let app = c.shared_owner.replace("tmshown_", "tmapp_");
        c.with_app_login(app)
    })
    .await
}

/// The environment's master secret (what `Env` derives its credentials and wall key from).
pub fn master(env: &Env) -> Secret {
    Secret::new(format!("master-secret-of-{}-0123456789abcdef", env.tag))
}

/// The name of the environment's app login.
pub fn app_name(env: &Env) -> String {
    env.storage
        .config()
        .app_login
        .clone()
        .expect("app login configured")
}

/// The environment's app login, its password derived from the master secret.
pub fn app_login(env: &Env) -> AppLogin {
    AppLogin::derived(&app_name(env), &master(env)).expect("app login")
}

/// Wall key `key_id` of the environment (derived from its master secret).
pub fn keys(env: &Env, key_id: i32) -> WallKeys {
    WallKeys::derived(&master(env), key_id).expect("wall key")
}

/// Whether `member` is a member of `role`.
pub async fn is_member(admin: &mut PgConnection, role: &str, member: &str) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_auth_members m \
           JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles a ON a.oid = m.member \
           WHERE r.rolname = $1 AND a.rolname = $2)",
    )
    .bind(role)
    .bind(member)
    .fetch_one(admin)
    .await
    .expect("membership")
}

/// What a wall install did, as (databases, installed, schema tenants, shared databases).
pub fn counts(report: &WallReport) -> (usize, usize, usize, usize) {
    (
        report.databases,
        report.installed,
        report.schema_tenants,
        report.shared_databases,
    )
}

/// The app login, and two schema tenants `alpha` (companies Initech, Globex) and `beta`
/// (Hooli) behind the wall in one database.
pub async fn walled_pair(env: &Env) -> (Tenant, Tenant) {
    env.provisioner
        .ensure_app_login(&app_login(env))
        .await
        .expect("app login");
    let a = env.active("alpha", Isolation::Schema).await;
    let b = env.active("beta", Isolation::Schema).await;
    super::add_companies(env, &a, &["Initech", "Globex"]).await;
    super::add_companies(env, &b, &["Hooli"]).await;
    (a, b)
}
