//! The wall's access lists stay one entry long per role however many tenants a database holds:
//! owners of walled tables (schema tenants' roles, the shared owner) read the wall as members
//! of the reader role, not through grants of their own. A column's or a sequence's ACL lives in
//! a catalog row without TOAST; direct grants stopped a database at about 2,400 schema tenants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod pool_support;
mod wall_legacy;

use sqlx::PgConnection;
use tenant_manager_core::Isolation;
use wall_legacy::{Deployment, assert_each_sees_its_rows, role_of, schema_of, walled_pools};

/// Entries in the ACLs of the wall's objects that owners of walled tables need: (schema
/// `wall`, column `wall.sessions.pid`, sequence `wall.session_token`, function `wall.tenant()`).
async fn acl_lengths(admin: &mut PgConnection) -> (i32, i32, i32, i32) {
    sqlx::query_as(
        "SELECT (SELECT cardinality(nspacl) FROM pg_namespace WHERE nspname = 'wall'), \
                (SELECT cardinality(attacl) FROM pg_attribute \
                  WHERE attrelid = 'wall.sessions'::regclass AND attname = 'pid'), \
                (SELECT cardinality(relacl) FROM pg_class WHERE oid = 'wall.session_token'::regclass), \
                (SELECT cardinality(proacl) FROM pg_proc WHERE oid = 'wall.tenant()'::regprocedure)",
    )
    .fetch_one(admin)
    .await
    .expect("acl lengths")
}

/// Roles holding a grant of their own on the wall's sequence, other than the app login and the
/// reader (the owner's own entry aside).
async fn direct_readers(admin: &mut PgConnection, app: &str, reader: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT DISTINCT r.rolname::text FROM pg_class c, aclexplode(c.relacl) a, pg_roles r \
         WHERE c.oid = 'wall.session_token'::regclass AND r.oid = a.grantee \
           AND a.grantee <> c.relowner AND r.rolname NOT IN ($1, $2) ORDER BY 1",
    )
    .bind(app)
    .bind(reader)
    .fetch_all(admin)
    .await
    .expect("direct readers")
}

/// The members of the reader role.
async fn members(admin: &mut PgConnection, reader: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT m.member::regrole::text FROM pg_auth_members m \
         WHERE m.roleid = $1::regrole ORDER BY 1",
    )
    .bind(reader)
    .fetch_all(admin)
    .await
    .expect("members")
}

/// A schema tenant's role may evaluate its policies: it holds (through the reader role) what
/// the verdict check reads, and a read of its own table as the role passes the privilege
/// checks (a missing grant would refuse it with 42501 whatever the verdict).
async fn owner_evaluates_the_policy(admin: &mut PgConnection, role: &str, schema: &str) {
    let held: (bool, bool, bool, bool) = sqlx::query_as(
        "SELECT has_schema_privilege($1, 'wall', 'USAGE'), \
                has_column_privilege($1, 'wall.sessions', 'tenant', 'SELECT'), \
                has_sequence_privilege($1, 'wall.session_token', 'SELECT'), \
                has_function_privilege($1, 'wall.tenant()', 'EXECUTE')",
    )
    .bind(role)
    .fetch_one(&mut *admin)
    .await
    .expect("privileges");
    assert_eq!(held, (true, true, true, true), "{role}");
    let read = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "BEGIN; SET LOCAL ROLE \"{role}\"; SELECT count(*) FROM \"{schema}\".companies;"
    )))
    .execute(&mut *admin)
    .await;
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *admin).await;
    if let Err(err) = read {
        // No verdict in this session: the policy's `currval` may refuse.
        assert_eq!(
            common::sqlstate(&err).as_deref(),
            Some("55000"),
            "{role}: {err}"
        );
    }
}

#[tokio::test]
async fn the_walls_acls_do_not_grow_with_its_tenants() {
    let mut d = Deployment::provisioned(1, 1).await;
    let app = common::app::app_name(&d.env);
    let reader = d.env.storage.config().naming.infra("wall_reader");
    let mut admin = d.admin().await;
    let before = acl_lengths(&mut admin).await;
    for i in 0..4 {
        let tenant = d.env.active(&format!("more{i}"), Isolation::Schema).await;
        d.schema.push(tenant);
    }
    assert_eq!(
        acl_lengths(&mut admin).await,
        before,
        "five schema tenants, the ACLs of one"
    );
    assert_eq!(
        direct_readers(&mut admin, &app, &reader).await,
        Vec::<String>::new()
    );
    let members = members(&mut admin, &reader).await;
    for tenant in &d.schema {
        let role = role_of(tenant);
        assert!(members.contains(&role), "{role} not in {members:?}");
        owner_evaluates_the_policy(&mut admin, &role, &schema_of(tenant)).await;
    }
    // The shared owner is the other member.
    assert_eq!(members.len(), d.schema.len() + 1, "{members:?}");
}

#[tokio::test]
async fn a_wall_of_the_first_version_moves_its_readers_to_the_role() {
    let d = Deployment::provisioned(2, 1).await;
    let env = &d.env;
    let app = common::app::app_name(env);
    let reader = env.storage.config().naming.infra("wall_reader");
    let mut admin = d.admin().await;
    let owners = members(&mut admin, &reader).await;
    assert_eq!(owners.len(), 3, "{owners:?}");
    // The first version: each owner with grants of its own, no reader grants, version 1.
    let mut sql = format!(
        "REVOKE USAGE ON SCHEMA wall FROM \"{reader}\"; \
         REVOKE SELECT (pid, token, tenant) ON wall.sessions FROM \"{reader}\"; \
         REVOKE SELECT ON SEQUENCE wall.session_token FROM \"{reader}\"; \
         REVOKE EXECUTE ON FUNCTION wall.tenant() FROM \"{reader}\"; \
         COMMENT ON SCHEMA wall IS 'tenant-manager:wall:v1'; "
    );
    for owner in &owners {
        // `regrole::text` quotes where needed.
        sql.push_str(&format!(
            "REVOKE \"{reader}\" FROM {owner}; \
             GRANT USAGE ON SCHEMA wall TO {owner}; \
             GRANT SELECT (pid, token, tenant) ON wall.sessions TO {owner}; \
             GRANT SELECT ON SEQUENCE wall.session_token TO {owner}; \
             GRANT EXECUTE ON FUNCTION wall.tenant() TO {owner}; "
        ));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut admin)
        .await
        .expect("the first version's layout");
    assert_eq!(direct_readers(&mut admin, &app, &reader).await, owners);

    let wall = d.wall(1);
    let report = wall.install().await.expect("upgrade");
    assert_eq!(report.installed, 1, "{report:?}");
    assert!(wall.check().await.expect("check").is_ok());
    assert_eq!(
        direct_readers(&mut admin, &app, &reader).await,
        Vec::<String>::new()
    );
    assert_eq!(members(&mut admin, &reader).await, owners);
    for tenant in &d.schema {
        owner_evaluates_the_policy(&mut admin, &role_of(tenant), &schema_of(tenant)).await;
    }
    let pools = walled_pools(env, 1, 1);
    assert_each_sees_its_rows(&pools, &d.tenants(), "after the upgrade").await;
    pool_support::settle(&pools).await;
    pools.close_all();
}
