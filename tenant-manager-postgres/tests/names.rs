//! Storage names: two deployments (two storage prefixes, two global databases) on one
//! Postgres server never meet; slugs cannot reach the deployment's own objects; a shared
//! database is used only when it carries this deployment's marker; a legacy one is claimed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use sqlx::{Connection, PgConnection};
use tenant_manager_core::{Isolation, Placement, Provisioner, ServerId, Tenant, TenantSlug};

use common::{Env, add_companies, company_names};

const MODES: [(&str, Isolation); 3] = [
    ("db", Isolation::Database),
    ("sc", Isolation::Schema),
    ("sh", Isolation::Shared),
];

async fn exec(conn: &mut PgConnection, sql: String) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .expect("statement");
}

async fn database_comment(env: &Env, database: &str) -> Option<String> {
    let mut admin = env.admin("postgres").await;
    let comment = sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
    )
    .bind(database)
    .fetch_one(&mut admin)
    .await
    .expect("comment");
    let _ = admin.close().await;
    comment
}

/// Registers the tenant `name` of `env` placed in `database` and provisions it: refused on
/// `placement.database`. The tenant and the error.
async fn refused_placement(
    env: &Env,
    name: &str,
    isolation: Isolation,
    database: &str,
) -> (Tenant, tenant_manager_core::Error) {
    let mut stray = env.new_tenant(name, isolation);
    stray.placement.database = database.to_owned();
    let stray = env.register_new(stray).await;
    let err = env
        .provisioner
        .provision(&stray)
        .await
        .expect_err("refused");
    assert_eq!(err.field(), Some("placement.database"), "{err:?}");
    (stray, err)
}

#[tokio::test]
async fn two_deployments_with_the_same_slugs_share_a_server_and_never_meet() {
    let one = Env::prefixed().await;
    let two = Env::prefixed().await;
    for (mode, isolation) in MODES {
        // The same slug in both deployments.
        let slug = format!("s{}_{mode}", one.tag);
        let a = one
            .activate(one.new_tenant_with_slug(&slug, isolation))
            .await;
        let b = two
            .activate(two.new_tenant_with_slug(&slug, isolation))
            .await;
        assert!(one.provisioner.is_provisioned(&a).await.expect("a"));
        assert!(two.provisioner.is_provisioned(&b).await.expect("b"));
        assert_ne!(a.placement, b.placement, "{isolation}");
        if isolation != Isolation::Shared {
            assert_eq!(a.role_name(), Some(format!("{}_t_{slug}", one.tag)));
            assert_eq!(b.role_name(), Some(format!("{}_t_{slug}", two.tag)));
        }
        add_companies(&one, &a, &["Initech"]).await;
        assert_eq!(company_names(&one, &a).await, vec!["Initech".to_owned()]);
        assert!(company_names(&two, &b).await.is_empty(), "{isolation}");
        // Dropping one deployment's tenant leaves the other's.
        add_companies(&two, &b, &["Hooli"]).await;
        one.provisioner.deprovision(&a).await.expect("deprovision");
        assert_eq!(company_names(&two, &b).await, vec!["Hooli".to_owned()]);
    }
    assert_eq!(
        database_comment(&one, &one.shared_db).await.as_deref(),
        Some(format!("tenant-manager:shared:{}", one.tag).as_str())
    );
}

#[tokio::test]
async fn a_deployment_never_uses_a_shared_database_not_marked_as_its_own() {
    let one = Env::prefixed().await;
    let two = Env::prefixed().await;
    one.active("first", Isolation::Schema).await;
    // A tenant of deployment two placed in deployment one's shared database.
    for isolation in [Isolation::Schema, Isolation::Shared] {
        let name = format!("stray{}", isolation.as_str());
        let (_, err) = refused_placement(&two, &name, isolation, &one.shared_db).await;
        assert!(err.to_string().contains("another deployment"), "{err}");
    }
    // A database a tenant owns (or anybody else) is not a shared database either.
    let mut admin = one.admin("postgres").await;
    let squatted = format!("{}_squat", one.tag);
    exec(&mut admin, format!("CREATE DATABASE \"{squatted}\"")).await;
    exec(
        &mut admin,
        format!("COMMENT ON DATABASE \"{squatted}\" IS 'tenant-manager:tenant:0190'"),
    )
    .await;
    let _ = admin.close().await;
    let (stray, _) = refused_placement(&one, "squatter", Isolation::Schema, &squatted).await;
    let mut conn = one.admin(&squatted).await;
    let schemas: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(stray.placement.schema.as_deref())
        .fetch_one(&mut conn)
        .await
        .expect("schemas");
    assert_eq!(schemas, 0, "nothing created in a foreign database");
    let _ = conn.close().await;
}

#[tokio::test]
async fn slugs_cannot_name_the_deployments_own_objects() {
    for word in [
        "shared",
        "app",
        "owner",
        "registry",
        "shared_owner",
        "template_owner",
        "template",
        "public",
        "postgres",
        "information_schema",
    ] {
        let err = TenantSlug::new(word).expect_err(word);
        assert_eq!((err.code(), err.field()), ("invalid_input", Some("slug")));
    }
    // With a shared database named like an old tenant database (`tenant_<slug>`), a database
    // tenant of that slug gets its own database: schema and shared tenants provision after it.
    let env = Env::prefixed().await;
    let slug = format!("s{}", env.tag);
    let legacy_name = Placement::role_name(&TenantSlug::new(&slug).expect("slug"));
    let place = |isolation, slug: &str| {
        let mut t = env.new_tenant_with_slug(slug, isolation);
        if isolation != Isolation::Database {
            t.placement.database = legacy_name.clone();
        }
        t
    };
    let db_tenant = env.activate(place(Isolation::Database, &slug)).await;
    assert_ne!(db_tenant.placement.database, legacy_name);
    for (mode, isolation) in [("sc", Isolation::Schema), ("sh", Isolation::Shared)] {
        let tenant = env
            .activate(place(isolation, &format!("{slug}_{mode}")))
            .await;
        assert_eq!(tenant.placement.database, legacy_name);
        assert!(env.provisioner.is_provisioned(&tenant).await.expect("ok"));
    }
}

#[tokio::test]
async fn a_legacy_shared_database_is_claimed_only_when_it_holds_only_our_tenants() {
    let env = Env::prefixed().await;
    // The old layout: `tenant_<slug>` names, the shared marker without a prefix, schema
    // roles that log in and may create temporary objects, `TEMPORARY` for PUBLIC.
    let legacy_db = format!("tenant_{}_shared", env.tag);
    let legacy = |name: &str, isolation| {
        let slug = TenantSlug::new(format!("{}_{name}", env.tag)).expect("slug");
        let placement =
            Placement::conventional(&slug, isolation, ServerId::default_server(), &legacy_db);
        env.new_tenant_with_slug(slug.as_str(), isolation)
            .with_placement(placement)
    };
    let mut admin = env.admin("postgres").await;
    exec(&mut admin, format!("CREATE DATABASE \"{legacy_db}\"")).await;
    exec(
        &mut admin,
        format!(
            "COMMENT ON DATABASE \"{legacy_db}\" IS 'tenant-manager:shared:{}'",
            env.tag
        ),
    )
    .await;
    let old_schema = env.activate(legacy("oldsc", Isolation::Schema)).await;
    let old_shared = env.activate(legacy("oldsh", Isolation::Shared)).await;
    let role = old_schema.role_name().expect("role");
    assert_eq!(role, format!("tenant_{}_oldsc", env.tag));
    exec(
        &mut admin,
        format!(
            "COMMENT ON DATABASE \"{legacy_db}\" IS 'tenant-manager:shared'; \
             ALTER ROLE \"{role}\" LOGIN; \
             GRANT TEMPORARY ON DATABASE \"{legacy_db}\" TO PUBLIC, \"{role}\""
        ),
    )
    .await;

    // Not used before it is claimed.
    let newcomer = env.register_new(legacy("newsc", Isolation::Schema)).await;
    let err = env
        .provisioner
        .provision(&newcomer)
        .await
        .expect_err("legacy");
    assert_eq!(err.field(), Some("placement.database"), "{err:?}");
    assert!(err.to_string().contains("claim-shared"), "{err}");

    // Rows of a tenant this registry does not know: refused, marker unchanged.
    let mut shared = env.admin(&legacy_db).await;
    exec(
        &mut shared,
        "INSERT INTO public.companies (tenant_id, name) \
         VALUES ('01900000-0000-7000-8000-000000000000', 'Foreign')"
            .to_owned(),
    )
    .await;
    let report = env
        .storage
        .claim_legacy_shared_databases(&[])
        .await
        .expect("claim");
    assert!(report.claimed.is_empty(), "{report:?}");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!(
        database_comment(&env, &legacy_db).await.as_deref(),
        Some("tenant-manager:shared")
    );
    exec(
        &mut shared,
        "DELETE FROM public.companies WHERE name = 'Foreign'".to_owned(),
    )
    .await;

    // Only ours: claimed, closed to PUBLIC, the legacy schema role loses LOGIN and TEMPORARY.
    let report = env
        .storage
        .claim_legacy_shared_databases(&[env.shared_db.as_str()])
        .await
        .expect("claim");
    assert_eq!(
        report.claimed,
        vec![format!("default/{legacy_db}")],
        "{report:?}"
    );
    assert!(report.refused.is_empty(), "{report:?}");
    assert_eq!(
        database_comment(&env, &legacy_db).await.as_deref(),
        Some(format!("tenant-manager:shared:{}", env.tag).as_str())
    );
    let (can_login, role_temp, public_temp): (bool, bool, bool) = sqlx::query_as(
        "SELECT r.rolcanlogin, has_database_privilege(r.rolname, $2, 'TEMPORARY'), \
                EXISTS (SELECT 1 FROM pg_database d, aclexplode(d.datacl) a \
                        WHERE d.datname = $2 AND a.grantee = 0 AND a.privilege_type = 'TEMPORARY') \
         FROM pg_roles r WHERE r.rolname = $1",
    )
    .bind(&role)
    .bind(&legacy_db)
    .fetch_one(&mut admin)
    .await
    .expect("privileges");
    assert_eq!((can_login, role_temp, public_temp), (false, false, false));

    // Then old and new tenants work there; a second run finds it already ours.
    env.provisioner.provision(&newcomer).await.expect("claimed");
    add_companies(&env, &old_schema, &["Initech"]).await;
    add_companies(&env, &old_shared, &["Hooli"]).await;
    assert_eq!(
        company_names(&env, &old_schema).await,
        vec!["Initech".to_owned()]
    );
    assert_eq!(
        company_names(&env, &old_shared).await,
        vec!["Hooli".to_owned()]
    );
    let again = env
        .storage
        .claim_legacy_shared_databases(&[])
        .await
        .expect("claim");
    assert!(
        again.claimed.is_empty() && again.refused.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.already_ours, vec![format!("default/{legacy_db}")]);
    let _ = shared.close().await;
    let _ = admin.close().await;
}
