//! The registry against the real Postgres: the conformance suite, plus what only Postgres can
//! show (indexes, migrations run twice, plans).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use sqlx::Connection;
use tenant_manager_core::testing::Fixture;
use tenant_manager_core::{Plan, QuotaPolicy, TenantRegistry};
use tenant_manager_postgres::{PostgresRegistry, migrate_global};
use tenant_manager_test_support::TestDatabase;

async fn registry() -> Fixture<dyn TenantRegistry, TestDatabase> {
    let db = TestDatabase::create().await;
    let pool = db.pool().await;
    migrate_global(&pool).await.expect("migrate");
    Fixture::with_guard(Arc::new(PostgresRegistry::new(pool)), db)
}

tenant_manager_core::registry_conformance!(registry);

#[tokio::test]
async fn migrations_are_idempotent_and_lookups_use_indexes() {
    let db = TestDatabase::create().await;
    let pool = db.pool().await;
    migrate_global(&pool).await.expect("first");
    migrate_global(&pool).await.expect("second run is a no-op");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename IN ('tm_tenants', 'tm_users') ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("indexes");
    let has = |needle: &str| indexes.iter().any(|d| d.contains(needle));
    assert!(
        has("tm_tenants_pkey ON public.tm_tenants USING btree (id)"),
        "{indexes:#?}"
    );
    assert!(
        has("tm_tenants_slug_key ON public.tm_tenants USING btree (slug)"),
        "{indexes:#?}"
    );
    assert!(
        has("tm_tenants_domain_key ON public.tm_tenants USING btree (lower(domain))"),
        "{indexes:#?}"
    );
    assert!(
        has("tm_users_email_key ON public.tm_users USING btree (tenant_id, email)"),
        "{indexes:#?}"
    );

    // The planner uses them for the registry's lookups, even on a table this small.
    let mut conn = pool.acquire().await.expect("conn");
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .expect("set");
    for (sql, index) in [
        (
            "EXPLAIN SELECT * FROM tm_tenants WHERE lower(domain) = lower('a.example.com')",
            "tm_tenants_domain_key",
        ),
        (
            "EXPLAIN SELECT * FROM tm_tenants WHERE slug = 'acme'",
            "tm_tenants_slug_key",
        ),
        (
            "EXPLAIN SELECT * FROM tm_users WHERE email = 'a@b.com'",
            "tm_users_email_idx",
        ),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(sql)
            .fetch_all(&mut *conn)
            .await
            .expect("explain");
        assert!(plan.iter().any(|l| l.contains(index)), "{sql}: {plan:?}");
    }
    drop(conn);
    // The registry's migrations are tracked apart from a host's `_sqlx_migrations`.
    let host_table: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&pool)
        .await
        .expect("regclass");
    assert!(!host_table);
    pool.close().await;
}

#[tokio::test]
async fn plans_are_stored_and_form_a_catalog() {
    let db = TestDatabase::create().await;
    let pool = db.pool().await;
    migrate_global(&pool).await.expect("migrate");
    let registry = PostgresRegistry::new(pool.clone());
    let pro = Plan::new("pro").expect("plan");
    let mut policy = QuotaPolicy {
        max_users: 500,
        ..QuotaPolicy::default()
    };
    registry.put_plan(&pro, &policy).await.expect("put");
    policy.max_connections = 50;
    registry.put_plan(&pro, &policy).await.expect("replace");
    let catalog = registry
        .plan_catalog(QuotaPolicy::default())
        .await
        .expect("catalog");
    assert_eq!(catalog.policy(&pro), &policy);
    assert_eq!(catalog.policy(&Plan::free()), &QuotaPolicy::default());
    let bad = QuotaPolicy {
        max_users: 0,
        ..QuotaPolicy::default()
    };
    assert_eq!(
        registry
            .put_plan(&pro, &bad)
            .await
            .err()
            .and_then(|e| e.field().map(str::to_owned))
            .as_deref(),
        Some("max_users")
    );
    assert!(registry.delete_plan(&pro).await.expect("delete"));
    assert!(!registry.delete_plan(&pro).await.expect("delete again"));
    let mut conn = sqlx::PgConnection::connect(db.url()).await.expect("conn");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tm_plans")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(n, 0);
    let _ = conn.close().await;
    pool.close().await;
}

/// Users stored before e-mails became unique per tenant (migration `20261206000003`) keep their records and
/// can be found by e-mail afterwards; the e-mail may then join another tenant.
#[tokio::test]
async fn users_from_before_memberships_migrate() {
    use tenant_manager_core::testing::support::{sample_tenant, sample_user};
    use tenant_manager_core::{Email, Isolation, Role};

    let db = TestDatabase::create().await;
    let pool = db.pool().await;
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let all = sqlx::migrate::Migrator::new(source)
        .await
        .expect("migrations");
    let mut old = sqlx::migrate::Migrator::with_migrations(
        all.iter()
            .filter(|m| m.version < 20261206000003)
            .cloned()
            .collect(),
    );
    old.dangerous_set_table_name(tenant_manager_postgres::registry::GLOBAL_MIGRATIONS_TABLE);
    old.run(&pool)
        .await
        .expect("the migrations before memberships");
    let tenant = sample_tenant(Isolation::Shared);
    let owner = sample_user(tenant.id, Role::Owner);
    sqlx::query(
        "INSERT INTO tm_tenants (id, slug, name, status, plan, isolation, server_id, \
         database_name, created_at, updated_at) \
         VALUES ($1, $2, 'Old', 'active', 'free', 'shared', 'primary', 'db', now(), now())",
    )
    .bind(tenant.id.as_uuid())
    .bind(tenant.slug.as_str())
    .execute(&pool)
    .await
    .expect("old tenant");
    sqlx::query(
        "INSERT INTO tm_users (id, tenant_id, email, role, password_hash, created_at) \
         VALUES ($1, $2, $3, 'owner', $4, now())",
    )
    .bind(owner.id.as_uuid())
    .bind(tenant.id.as_uuid())
    .bind(owner.email.as_str())
    .bind(owner.password_hash.as_phc())
    .execute(&pool)
    .await
    .expect("old user");
    migrate_global(&pool).await.expect("upgrade");
    let registry = PostgresRegistry::new(pool.clone());
    let email = Email::new(owner.email.as_str()).unwrap();
    let found = registry.find_users_by_email(&email).await.expect("found");
    assert_eq!(
        found.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![owner.id]
    );
    let other = registry
        .create_tenant(sample_tenant(Isolation::Shared))
        .await
        .expect("other");
    let mut member = sample_user(other.id, Role::Member);
    member.email = email.clone();
    registry
        .create_user(member)
        .await
        .expect("same e-mail, other tenant");
    assert_eq!(
        registry
            .find_users_by_email(&email)
            .await
            .expect("both")
            .len(),
        2
    );
    pool.close().await;
}

/// Invitations stored while `invited_by` was required (before migration `20261206000004`)
/// keep their inviter; afterwards an operator's invitation records none (NULL), and both
/// read back.
#[tokio::test]
async fn invitations_from_before_operator_invitations_migrate() {
    use tenant_manager_core::testing::support::{sample_tenant, sample_user, unique_email};
    use tenant_manager_core::{InvitationId, Isolation, NewInvitation, OpaqueToken, Role};

    let db = TestDatabase::create().await;
    let pool = db.pool().await;
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let all = sqlx::migrate::Migrator::new(source)
        .await
        .expect("migrations");
    let mut old = sqlx::migrate::Migrator::with_migrations(
        all.iter()
            .filter(|m| m.version < 20261206000004)
            .cloned()
            .collect(),
    );
    old.dangerous_set_table_name(tenant_manager_postgres::registry::GLOBAL_MIGRATIONS_TABLE);
    old.run(&pool)
        .await
        .expect("the migrations before operator invitations");
    let registry = PostgresRegistry::new(pool.clone());
    let tenant = sample_tenant(Isolation::Shared);
    let (tenant, owner) = registry
        .create_tenant_with_owner(tenant.clone(), sample_user(tenant.id, Role::Owner))
        .await
        .expect("tenant");
    let invite = |by| {
        let id = InvitationId::new();
        let token = OpaqueToken::generate(*id.as_uuid());
        NewInvitation::new(
            id,
            tenant.id,
            unique_email("inv"),
            Role::Member,
            by,
            token.digest(),
            time::OffsetDateTime::now_utc() + time::Duration::days(1),
        )
    };
    let by_owner = registry
        .create_invitation(invite(Some(owner.id)), 10)
        .await
        .expect("an owner's invitation on the old schema");
    let refused = registry.create_invitation(invite(None), 10).await;
    assert!(refused.is_err(), "the old schema requires an inviter");
    migrate_global(&pool).await.expect("upgrade");
    assert_eq!(
        registry
            .get_invitation(by_owner.id)
            .await
            .expect("kept")
            .invited_by,
        Some(owner.id)
    );
    let by_operator = registry
        .create_invitation(invite(None), 10)
        .await
        .expect("an operator's invitation");
    assert_eq!(by_operator.invited_by, None);
    let stored: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT invited_by FROM tm_invitations WHERE id = $1")
            .bind(by_operator.id.as_uuid())
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(stored, None);
    assert_eq!(
        registry
            .list_invitations(tenant.id)
            .await
            .expect("list")
            .len(),
        2
    );
    pool.close().await;
}
