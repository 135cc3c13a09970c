//! The wall's upgrade, from a database in the layout of the release before it: the app login a
//! member of every schema tenant's role (checkouts `SET ROLE`), no row-level security on
//! tenant schemas, shared tables guarded by a policy on `app.tenant_id`, no `wall` schema.
//! `WallAdmin::install` puts it behind the wall, resumably and idempotently; key rotation
//! follows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod pool_support;
mod wall_legacy;

use std::time::Duration;

use common::app::counts;
use sqlx::PgConnection;
use tenant_manager_core::Tenant;
use wall_legacy::{
    Deployment, app_has_usage, app_name, assert_each_sees_its_rows, companies, companies_table,
    has_wall_schema, is_member, keys, legacy_pools, names, policies, role_of, schema_of,
    walled_pools,
};

/// What the catalogs say of a schema tenant: (the app login a member of its role, the app
/// login's own `USAGE` on its schema, its `companies` table's row security and policies).
async fn schema_state(
    admin: &mut PgConnection,
    app: &str,
    tenant: &Tenant,
) -> (bool, bool, (bool, bool, Vec<String>)) {
    let schema = schema_of(tenant);
    (
        is_member(admin, &role_of(tenant), app).await,
        app_has_usage(admin, app, &schema).await,
        companies_table(admin, &schema).await,
    )
}

/// A schema tenant as the release before the wall left it.
fn legacy_schema() -> (bool, bool, (bool, bool, Vec<String>)) {
    (true, false, (false, false, Vec::new()))
}

/// A schema tenant behind the wall.
fn walled_schema() -> (bool, bool, (bool, bool, Vec<String>)) {
    (false, true, (true, true, vec!["tenant_wall".to_owned()]))
}

fn shared_table(policy: &str) -> (bool, bool, Vec<String>) {
    (true, true, vec![policy.to_owned()])
}

/// Which release's catalog layout a deployment is expected to have.
#[derive(Clone, Copy)]
enum Layout {
    /// The previous release: schema tenants read as their role, the shared table's old policy.
    Legacy,
    /// Behind the wall.
    Walled,
}

/// Asserts the layout of each schema tenant in `schemas` and of the shared table.
async fn assert_layout(admin: &mut PgConnection, app: &str, schemas: &[Tenant], layout: Layout) {
    let (schema, policy) = match layout {
        Layout::Legacy => (legacy_schema(), "companies_tenant_isolation"),
        Layout::Walled => (walled_schema(), "tenant_wall"),
    };
    for tenant in schemas {
        assert_eq!(
            schema_state(admin, app, tenant).await,
            schema,
            "{}",
            tenant.slug
        );
    }
    assert_eq!(companies_table(admin, "public").await, shared_table(policy));
}

#[tokio::test]
async fn a_deployment_of_the_previous_release_goes_behind_the_wall() {
    let d = Deployment::legacy(2, 2).await;
    let env = &d.env;
    let app = app_name(env);
    let mut admin = d.admin().await;

    // The layout of the previous release, in the catalogs...
    assert!(!has_wall_schema(&mut admin).await, "no wall schema");
    let owner_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(env.storage.config().naming.infra("wall"))
            .fetch_one(&mut admin)
            .await
            .expect("pg_roles");
    assert!(!owner_exists, "no wall owner role");
    assert_layout(&mut admin, &app, &d.schema[..], Layout::Legacy).await;
    // ... and at work: its pools serve each tenant its rows, schema checkouts as the role.
    let legacy = legacy_pools(env, 1);
    assert_each_sees_its_rows(&legacy, &d.tenants(), "previous release").await;
    {
        let mut conn = legacy.acquire(&d.schema[0]).await.expect("acquire");
        let user: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut *conn)
            .await
            .expect("current_user");
        assert_eq!(user, role_of(&d.schema[0]), "SET ROLE to the tenant's role");
    }
    pool_support::settle(&legacy).await;
    legacy.close_all();

    // The check sees the missing wall; pools behind the wall cannot work yet.
    let wall = d.wall(1);
    let check = wall.check().await.expect("check");
    assert!(
        check.problems.iter().any(|p| p.contains("not installed")),
        "{check:?}"
    );
    let walled = walled_pools(env, 1, 1);
    walled
        .acquire(&d.schema[0])
        .await
        .expect_err("no wall to enter yet");
    pool_support::settle(&walled).await;

    let report = wall.install().await.expect("install");
    assert_eq!(counts(&report), (1, 1, 2, 1), "{report:?}");
    let check = wall.check().await.expect("check");
    assert!(check.is_ok(), "{check:?}");
    assert!(has_wall_schema(&mut admin).await);
    assert_layout(&mut admin, &app, &d.schema[..], Layout::Walled).await;

    // Every tenant gets exactly its rows, and nothing of the others even when it asks.
    assert_each_sees_its_rows(&walled, &d.tenants(), "behind the wall").await;
    {
        let (a, b) = (&d.schema[0], &d.schema[1]);
        let mut conn = walled.acquire(a).await.expect("acquire");
        let seen: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM \"{}\".companies",
            schema_of(b)
        )))
        .fetch_all(&mut *conn)
        .await
        .expect("schema-qualified read");
        assert!(seen.is_empty(), "{seen:?}");
    }
    pool_support::settle(&walled).await;
    {
        let (a, b) = (&d.shared[0], &d.shared[1]);
        let mut conn = walled.acquire(a).await.expect("acquire");
        sqlx::query("SELECT set_config('app.tenant_id', $1, false)")
            .bind(b.id.to_string())
            .execute(&mut *conn)
            .await
            .expect("set the old setting");
        assert_eq!(
            names(&mut conn).await,
            companies(a),
            "the setting is ignored"
        );
    }
    pool_support::settle(&walled).await;
    walled.close_all();

    // The old path is closed: no SET ROLE to a tenant role, no rows for a bare setting.
    let legacy = legacy_pools(env, 1);
    legacy
        .acquire(&d.schema[0])
        .await
        .expect_err("the app login is no longer a member");
    pool_support::settle(&legacy).await;
    {
        // No verdict: no rows, or (when the backend's pid left a verdict row of an earlier
        // session) the wall's `currval` of a sequence this session never drew.
        let mut conn = legacy.acquire(&d.shared[0]).await.expect("acquire");
        match sqlx::query_scalar::<_, String>("SELECT name FROM companies")
            .fetch_all(&mut *conn)
            .await
        {
            Ok(seen) => assert!(seen.is_empty(), "no verdict, no rows: {seen:?}"),
            Err(err) => assert_eq!(common::sqlstate(&err).as_deref(), Some("55000"), "{err}"),
        }
    }
    pool_support::settle(&legacy).await;
    legacy.close_all();

    // A second run changes nothing: no policy is recreated.
    let before = policies(&mut admin).await;
    assert!(before.len() >= 3, "{before:?}");
    let again = wall.install().await.expect("again");
    assert_eq!(counts(&again), (1, 0, 2, 1), "{again:?}");
    assert_eq!(policies(&mut admin).await, before);
    assert!(wall.check().await.expect("check").is_ok());
}

#[tokio::test]
async fn an_interrupted_upgrade_resumes_where_it_stopped() {
    let d = Deployment::legacy(3, 1).await;
    let env = &d.env;
    let app = app_name(env);
    let mut admin = d.admin().await;
    // The second schema tenant (in the order the upgrade visits them) holds a view that reads
    // with its owner's rights: the wall refuses it.
    let blocker = &d.schema[1];
    let view = format!("\"{}\".company_list", schema_of(blocker));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET ROLE \"{}\"; CREATE VIEW {view} AS SELECT name FROM \"{}\".companies; RESET ROLE",
        role_of(blocker),
        schema_of(blocker)
    )))
    .execute(&mut admin)
    .await
    .expect("a view without security_invoker");

    let wall = d.wall(1);
    let err = wall.install().await.expect_err("the view is refused");
    assert_eq!(err.field(), Some("schema"), "{err:?}");
    assert!(err.to_string().contains(&view), "names the view: {err}");
    // The tenant before it is done; it and the rest are not; the wall itself is there.
    assert!(has_wall_schema(&mut admin).await);
    assert_eq!(
        schema_state(&mut admin, &app, &d.schema[0]).await,
        walled_schema()
    );
    assert_layout(&mut admin, &app, &d.schema[1..], Layout::Legacy).await;
    let check = wall.check().await.expect("check");
    assert!(
        check.problems.iter().any(|p| p.contains(&view)),
        "{check:?}"
    );

    // Fixed, the rerun finishes the work.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER VIEW {view} SET (security_invoker = true)"
    )))
    .execute(&mut admin)
    .await
    .expect("fix the view");
    let report = wall.install().await.expect("resumed");
    assert_eq!(counts(&report), (1, 0, 3, 1), "{report:?}");
    assert_layout(&mut admin, &app, &d.schema[..], Layout::Walled).await;
    assert!(wall.check().await.expect("check").is_ok());
    let walled = walled_pools(env, 1, 1);
    assert_each_sees_its_rows(&walled, &d.tenants(), "after the resumed upgrade").await;
    {
        // The view now reads with the session's rights, behind the wall.
        let mut conn = walled.acquire(blocker).await.expect("acquire");
        let mut seen: Vec<String> = sqlx::query_scalar("SELECT name FROM company_list")
            .fetch_all(&mut *conn)
            .await
            .expect("view");
        seen.sort();
        assert_eq!(seen, companies(blocker));
    }
    pool_support::settle(&walled).await;
    walled.close_all();
}

/// Whether a checkout of `tenant` from `pools` is refused by the wall.
async fn refused(pools: &tenant_manager_postgres::PgTenantPools, tenant: &Tenant) -> bool {
    let refused = match pools.acquire(tenant).await {
        Ok(_) => false,
        Err(err) => {
            assert!(err.to_string().contains("refused"), "{err:?}");
            true
        }
    };
    pool_support::settle(pools).await;
    refused
}

#[tokio::test]
async fn keys_rotate_without_downtime() {
    let d = Deployment::legacy(1, 1).await;
    let env = &d.env;
    let tenants = d.tenants();
    let one = d.wall(1);
    one.install().await.expect("install");
    let (pools1, pools2) = (walled_pools(env, 1, 1), walled_pools(env, 2, 1));
    assert!(
        refused(&pools2, &tenants[0]).await,
        "key 2 is not known yet"
    );

    // Step 1: key 2 next to key 1; both admit checkouts.
    let added = one.add_key(&keys(env, 2)).await.expect("add key 2");
    assert_eq!((added.databases, added.keys_changed), (1, 1), "{added:?}");
    let again = one.add_key(&keys(env, 2)).await.expect("add again");
    assert_eq!(again.keys_changed, 0, "{again:?}");
    let check = one.check().await.expect("check");
    let valid: Vec<(i32, bool)> = check.keys.iter().map(|k| (k.key_id, k.valid_now)).collect();
    assert_eq!(valid, vec![(1, true), (2, true)]);
    assert_each_sees_its_rows(&pools1, &tenants, "key 1 of 2").await;
    assert_each_sees_its_rows(&pools2, &tenants, "key 2 of 2").await;

    // Step 2: key 1 retired, by an admin signing with key 2 (none retires its own key).
    let err = one
        .retire_key(1, Duration::ZERO)
        .await
        .expect_err("own key");
    assert_eq!(err.field(), Some("key_id"), "{err:?}");
    let two = d.wall(2);
    let held = {
        let mut conn = pools1
            .acquire(&tenants[0])
            .await
            .expect("verified with key 1");
        assert_eq!(names(&mut conn).await, companies(&tenants[0]));
        conn
    };
    let retired = two.retire_key(1, Duration::ZERO).await.expect("retire");
    assert_eq!(retired.keys_changed, 1, "{retired:?}");
    {
        // A connection verified before keeps its verdict until it is returned.
        let mut held = held;
        assert_eq!(names(&mut held).await, companies(&tenants[0]));
    }
    pool_support::settle(&pools1).await;
    // A returned connection keeps its verdict for its tenant's next checkout within the
    // affinity window; after that every checkout proves the tenant again, and key 1 is
    // refused.
    tokio::time::sleep(2 * wall_legacy::AFFINITY).await;
    for tenant in &tenants {
        assert!(refused(&pools1, tenant).await, "key 1: {}", tenant.slug);
    }
    assert_each_sees_its_rows(&pools2, &tenants, "key 2 alone").await;
    assert!(two.check().await.expect("check").is_ok());
    let stale = one.check().await.expect("check");
    assert!(
        stale.problems.iter().any(|p| p.contains("wall key 1")),
        "{stale:?}"
    );
    let err = two
        .retire_key(2, Duration::ZERO)
        .await
        .expect_err("own key");
    assert_eq!(err.field(), Some("key_id"), "{err:?}");

    // Step 3: the retired key is deleted.
    let purged = two.purge_keys().await.expect("purge");
    assert_eq!(purged.keys_changed, 1, "{purged:?}");
    let check = two.check().await.expect("check");
    let left: Vec<i32> = check.keys.iter().map(|k| k.key_id).collect();
    assert_eq!(left, vec![2]);
    assert_eq!(two.purge_keys().await.expect("purge").keys_changed, 0);
    assert_each_sees_its_rows(&pools2, &tenants, "after the purge").await;
    pools1.close_all();
    pools2.close_all();
}
