//! The tenant wall against SQL injected into a tenant's session, end to end: the real server
//! (built with the feature `attack-route`, whose `POST /api/test/sql` runs the body's SQL
//! inside the caller's pooled connection, as a bug in a host handler would) on the real
//! Postgres. Tenant A attacks tenant B, for a pair of schema tenants and a pair of shared
//! tenants: every attempt gets no row of B or an error, and B's companies, read through B's own
//! API, are unchanged.
//!
//! Every case must be able to fail: the same request is then sent with the defence it meets
//! switched off through an admin connection (B's role granted to the app login again, B's
//! tables without forced row-level security, a policy that trusts `app.tenant_id`, a
//! `wall.enter()` that checks no proof, ...: the layout of a deployment without the wall), and
//! must leak. The defence is restored before the next case, and `tenant-cli wall check` passes
//! at the end.
#![cfg(feature = "attack-route")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::isolation::Org;
use common::pg::PgEnv;
use common::{Server, text};
use http::StatusCode;
use reference_server::http_client::Auth;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

/// A quoted identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What the attacker aims at: tenant B's storage as the admin sees it.
struct Target {
    /// B's tenant id.
    id: String,
    /// The schema of B's `companies`: B's own schema, or the shared schema.
    schema: String,
    /// The owner of that table: B's role, or the shared tables' owner.
    owner: String,
    /// `WHERE ...` naming B's rows (shared tables), or nothing (B's own table).
    filter: String,
    /// The app login the pools log in as.
    app: String,
}

impl Target {
    fn table(&self) -> String {
        format!("{}.companies", quote(&self.schema))
    }
}

/// What an attack SQL got: the HTTP status and the answer.
struct Outcome {
    status: StatusCode,
    body: Value,
}

impl Outcome {
    /// The rows of the last statement (none for an error).
    fn last_rows(&self) -> usize {
        self.body["results"]
            .as_array()
            .and_then(|r| r.last())
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    }

    fn sqlstate(&self) -> &str {
        self.body["error"]["sqlstate"].as_str().unwrap_or("")
    }
}

/// What an attack must meet while the wall stands.
#[derive(Debug, Clone, Copy)]
enum Held {
    /// The statements run, the last one returns no row.
    NoRows,
    /// An error with this SQLSTATE.
    Refused(&'static str),
}

/// One attack: its SQL as tenant A, what it meets, and the defence switched off and back on.
struct Case {
    name: &'static str,
    sql: String,
    held: Held,
    /// Admin SQL that switches off the defence this case meets.
    off: String,
    /// Admin SQL that puts it back.
    on: String,
}

impl Case {
    /// Whether `outcome` got through: rows of B for a read or a change, success for a
    /// creation.
    fn leaked(&self, outcome: &Outcome) -> bool {
        match self.held {
            Held::NoRows => outcome.status == StatusCode::OK && outcome.last_rows() > 0,
            Held::Refused(_) => {
                outcome.status == StatusCode::OK
                    && (self.sql.starts_with("CREATE") || outcome.last_rows() > 0)
            }
        }
    }

    fn held(&self, outcome: &Outcome) -> bool {
        match self.held {
            Held::NoRows => outcome.status == StatusCode::OK && outcome.last_rows() == 0,
            Held::Refused(state) => {
                outcome.status == StatusCode::UNPROCESSABLE_ENTITY && outcome.sqlstate() == state
            }
        }
    }
}

/// The attacks of A on `b`, each with its defence's off switch. Destructive ones last.
fn cases(b: &Target, wall_enter: &str) -> Vec<Case> {
    let (table, filter, app, owner, id) =
        (b.table(), &b.filter, quote(&b.app), quote(&b.owner), &b.id);
    let schema = quote(&b.schema);
    let rls = |verb: &str| format!("ALTER TABLE {table} {verb} ROW LEVEL SECURITY");
    vec![
        Case {
            name: "set_role",
            sql: format!("SET ROLE {owner}; SELECT name FROM {table} {filter}"),
            held: Held::Refused("42501"),
            off: format!("GRANT {owner} TO {app}; {}", rls("NO FORCE")),
            on: format!("REVOKE {owner} FROM {app}; {}", rls("FORCE")),
        },
        Case {
            name: "set_config",
            sql: format!(
                "SELECT set_config('app.tenant_id', '{id}', false), \
                        set_config('search_path', '{schema}', false); \
                 SELECT name FROM companies {filter}"
            ),
            held: Held::NoRows,
            off: format!(
                "CREATE POLICY wall_off ON {table} \
                 USING (current_setting('app.tenant_id', true) = '{id}')"
            ),
            on: format!("DROP POLICY wall_off ON {table}"),
        },
        Case {
            name: "qualified_read",
            sql: format!("SELECT name FROM {table} {filter}"),
            held: Held::NoRows,
            off: rls("DISABLE"),
            on: rls("ENABLE"),
        },
        Case {
            name: "forged_proof",
            sql: format!(
                "SELECT wall.enter('{id}', 999999, 1, '{}'); SELECT name FROM {table} {filter}",
                "ab".repeat(32)
            ),
            held: Held::NoRows,
            off: ENTER_WITHOUT_PROOF.to_owned(),
            on: wall_enter.to_owned(),
        },
        Case {
            name: "read_wall_keys",
            sql: "SELECT key_id, encode(inner_pad, 'hex') FROM wall_private.keys".to_owned(),
            held: Held::Refused("42501"),
            off: format!(
                "GRANT USAGE ON SCHEMA wall_private TO {app}; \
                 GRANT SELECT ON wall_private.keys TO {app}"
            ),
            on: format!(
                "REVOKE SELECT ON wall_private.keys FROM {app}; \
                 REVOKE USAGE ON SCHEMA wall_private FROM {app}"
            ),
        },
        Case {
            name: "create_function",
            sql: format!(
                "CREATE FUNCTION {schema}.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'"
            ),
            held: Held::Refused("42501"),
            off: format!("GRANT CREATE ON SCHEMA {schema} TO {app}"),
            on: format!(
                "DROP FUNCTION IF EXISTS {schema}.planted(); \
                 REVOKE CREATE ON SCHEMA {schema} FROM {app}"
            ),
        },
        Case {
            name: "create_view",
            sql: format!("CREATE VIEW {schema}.planted AS SELECT * FROM {table}"),
            held: Held::Refused("42501"),
            off: format!("GRANT CREATE ON SCHEMA {schema} TO {app}"),
            on: format!(
                "DROP VIEW IF EXISTS {schema}.planted; REVOKE CREATE ON SCHEMA {schema} FROM {app}"
            ),
        },
        Case {
            name: "qualified_update",
            sql: format!("UPDATE {table} SET name = 'pwned' {filter} RETURNING name"),
            held: Held::NoRows,
            off: rls("DISABLE"),
            on: rls("ENABLE"),
        },
        Case {
            name: "qualified_delete",
            sql: format!("DELETE FROM {table} {filter} RETURNING name"),
            held: Held::NoRows,
            off: rls("DISABLE"),
            on: rls("ENABLE"),
        },
    ]
}

/// `wall.enter()` as a deployment without the wall's proof would have it: any proof admits.
const ENTER_WITHOUT_PROOF: &str = "
CREATE OR REPLACE FUNCTION wall.enter(p_tenant uuid, p_nonce bigint, p_key_id integer, p_proof text)
RETURNS boolean LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO wall.sessions AS s (pid, backend_start, token, tenant, nonce)
    SELECT a.pid, a.backend_start, nextval('wall.session_token'::regclass), p_tenant, 0
      FROM pg_stat_get_activity(pg_backend_pid()) AS a
    ON CONFLICT (pid) DO UPDATE
       SET backend_start = EXCLUDED.backend_start, token = EXCLUDED.token, tenant = EXCLUDED.tenant;
    RETURN true;
END
$$";

/// Sends `sql` through A's session.
async fn attack(server: &Server, a: &Org, sql: &str) -> Outcome {
    let r = server
        .post(
            "/api/test/sql",
            Auth::Bearer(&a.token),
            &json!({ "sql": sql }),
        )
        .await;
    assert!(
        r.status == StatusCode::OK || r.status == StatusCode::UNPROCESSABLE_ENTITY,
        "{sql}: {} {}",
        r.status,
        text(&r)
    );
    Outcome {
        status: r.status,
        body: r.json().unwrap(),
    }
}

/// Runs admin SQL (several statements) on `conn`.
async fn admin(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// B's companies through B's own API.
async fn companies(server: &Server, org: &Org) -> Value {
    let r = server
        .get("/api/companies?limit=100", Auth::Bearer(&org.token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    r.json::<Value>().unwrap()["items"].clone()
}

/// A attacks B (both of `isolation`), first against the wall, then with each defence off.
async fn attacks_between_two_tenants(isolation: &str) {
    let env = PgEnv::new().await;
    let server = env.server(&[]);
    let a = env
        .org_with_companies(&server, "atk_a", isolation, &["A Co"])
        .await;
    let b = env
        .org_with_companies(&server, "atk_b", isolation, &["B One", "B Two"])
        .await;
    let shared_db = format!("{}_shared", env.tag);
    let mut conn = env.admin(&shared_db).await;

    let mut registry = env.registry().await;
    let schema: String = sqlx::query_scalar(
        "SELECT COALESCE(schema_name, 'public') FROM tm_tenants WHERE id = $1::uuid",
    )
    .bind(&b.id)
    .fetch_one(&mut registry)
    .await
    .unwrap();
    let _ = registry.close().await;
    let owner: String = sqlx::query_scalar(
        "SELECT tableowner::text FROM pg_tables WHERE schemaname = $1 AND tablename = 'companies'",
    )
    .bind(&schema)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let target = Target {
        filter: if isolation == "shared" {
            format!("WHERE tenant_id = '{}'", b.id)
        } else {
            String::new()
        },
        id: b.id.clone(),
        schema,
        owner,
        app: format!("{}_app", env.tag),
    };
    let wall_enter: String = sqlx::query_scalar(
        "SELECT pg_get_functiondef('wall.enter(uuid, bigint, integer, text)'::regprocedure)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let cases = cases(&target, &wall_enter);

    // The route runs in A's context: A reads its own company.
    let own = attack(&server, &a, "SELECT name FROM companies").await;
    assert_eq!(own.body["results"], json!([[["A Co"]]]), "{isolation}");

    // Against the wall: nothing of B, and B's companies unchanged.
    let before = companies(&server, &b).await;
    assert_eq!(before.as_array().map(Vec::len), Some(2));
    for case in &cases {
        let outcome = attack(&server, &a, &case.sql).await;
        assert!(
            case.held(&outcome),
            "{isolation} {}: expected {:?}, got {} {}",
            case.name,
            case.held,
            outcome.status,
            outcome.body
        );
    }
    assert_eq!(companies(&server, &b).await, before, "{isolation}");

    // Each defence switched off: the same attack leaks. On an instance that resets every
    // session on return: with tenant affinity, what an off-run's attack leaves on A's session
    // (a role taken while the defence was off) would stay A's into the next case.
    let server = env.server(&[("POOL_SCOPE_AFFINITY_MS", "0")]);
    for case in &cases {
        admin(&mut conn, &case.off).await;
        let outcome = attack(&server, &a, &case.sql).await;
        admin(&mut conn, &case.on).await;
        assert!(
            case.leaked(&outcome),
            "{isolation} {}: the attack should get through without its defence, got {} {}",
            case.name,
            outcome.status,
            outcome.body
        );
    }
    let _ = conn.close().await;

    // Every defence is back: the deployment checks clean.
    let out = env.cli(&["wall", "check"]).output().unwrap();
    assert!(
        out.status.success(),
        "{isolation}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_schema_tenant_reaches_nothing_of_another_schema_tenant() {
    attacks_between_two_tenants("schema").await;
}

#[tokio::test]
async fn a_shared_tenant_reaches_nothing_of_another_shared_tenant() {
    attacks_between_two_tenants("shared").await;
}
