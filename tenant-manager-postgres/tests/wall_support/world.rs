//! The world the attacks run in: one deployment with its app login and the wall, schema
//! tenants A and B, shared tenants A2 and B2 (all in one database), their rows, the engine's
//! reset as the server saw it, and what it takes to put the wall back after an off run.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tenant_manager_core::pool::PoolConfig;
use tenant_manager_core::{Isolation, Tenant};
use tenant_manager_postgres::{
    PgTenantConnector, PgTenantPools, ServerMap, WallAdmin, WallKeys, quote_ident, quote_literal,
};

use super::{Loot, Trap};
use crate::common::app::{app_login, app_name, env};
use crate::common::{Env, add_companies};
use crate::pool_support;

/// B's rows (schema tenant B): 4 of them, one domain (an MCV of B's own table).
pub const B_ROWS: [&str; 4] = [
    "bconf-schema-01",
    "bconf-schema-02",
    "bconf-schema-03",
    "bconf-schema-04",
];
/// B2's rows (shared tenant B2).
pub const B2_ROWS: [&str; 6] = [
    "bconf-shared-01",
    "bconf-shared-02",
    "bconf-shared-03",
    "bconf-shared-04",
    "bconf-shared-05",
    "bconf-shared-06",
];
const A_ROWS: [&str; 3] = ["alpha-co-1", "alpha-co-2", "alpha-co-3"];
const A2_ROWS: [&str; 3] = ["alpha2-co-1", "alpha2-co-2", "alpha2-co-3"];

/// Held while a world is built.
static SETUP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Four tenants behind the wall in one database. The app login has `TEMPORARY` on it (the
/// wall grants it, and takes it from `PUBLIC`; granted here again so a case never depends on
/// it): the attacker gets temporary objects, and the reset must drop them.
pub struct World {
    pub env: Env,
    /// The app login's name.
    pub app: String,
    pub keys: WallKeys,
    /// The database of all four tenants.
    pub db: String,
    pub a: Tenant,
    pub b: Tenant,
    pub a2: Tenant,
    pub b2: Tenant,
    /// Quoted schemas of A and B, and the shared schema.
    pub sa: String,
    pub sb: String,
    pub shared: String,
    /// B's role (unquoted).
    pub rb: String,
    /// The engine's reset, as the server received it.
    pub reset_sql: String,
    enter_def: String,
    /// (table, USING, WITH CHECK) of every `tenant_wall` policy.
    policies: Vec<(String, String, String)>,
    /// (table, rows as JSON) of every tenant table.
    data: Vec<(String, String)>,
}

impl World {
    pub async fn new() -> Self {
        // Installing the wall in a new database alters the server's wall owner role: two
        // installs at once fail ("tuple concurrently updated"), so worlds are built one at a time.
        let _setup = SETUP.lock().await;
        let env = env().await;
        env.provisioner
            .ensure_app_login(&app_login(&env))
            .await
            .expect("ensure app login");
        let a = env.active("alpha", Isolation::Schema).await;
        let b = env.active("beta", Isolation::Schema).await;
        let a2 = env.active("gamma", Isolation::Shared).await;
        let b2 = env.active("delta", Isolation::Shared).await;
        for (tenant, rows) in [
            (&a, &A_ROWS[..]),
            (&b, &B_ROWS[..]),
            (&a2, &A2_ROWS[..]),
            (&b2, &B2_ROWS[..]),
        ] {
            add_companies(&env, tenant, rows).await;
        }
        let schema = |t: &Tenant| quote_ident(t.placement.schema.as_deref().expect("schema"));
        let mut world = Self {
            app: app_name(&env),
            keys: env.storage.wall_keys().cloned().expect("wall key"),
            db: a.placement.database.clone(),
            sa: schema(&a),
            sb: schema(&b),
            shared: quote_ident(&env.storage.config().shared_schema),
            rb: b.role_name().expect("role"),
            reset_sql: String::new(),
            enter_def: String::new(),
            policies: Vec::new(),
            data: Vec::new(),
            env,
            a,
            b,
            a2,
            b2,
        };
        assert_eq!(world.db, world.b2.placement.database, "one database");
        world
            .admin_sql(&format!(
                "GRANT TEMPORARY ON DATABASE {db} TO {app}; \
                 CREATE STATISTICS {sb}.b_names (mcv) ON name, domain FROM {sb}.companies; \
                 ANALYZE {sa}.companies; ANALYZE {sb}.companies; ANALYZE {sh}.companies",
                sb = world.sb,
                sa = world.sa,
                sh = world.shared,
                db = quote_ident(&world.db),
                app = world.app_q(),
            ))
            .await;
        world.reset_sql = world.engine_reset().await;
        world.save().await;
        world.assert_intact().await;
        world
    }

    /// The pool engine logged in as the app login, behind the wall.
    pub fn pools(&self, max_total: u32) -> PgTenantPools {
        self.pools_with(pool_support::config(max_total, max_total))
    }

    /// The pool engine as [`pools`](Self::pools), with `config`.
    pub fn pools_with(&self, config: PoolConfig) -> PgTenantPools {
        let servers = ServerMap::single(self.env.db.admin_url()).expect("servers");
        PgTenantConnector::new(servers, self.env.credentials.clone())
            .with_app_login(app_login(&self.env))
            .with_wall(self.keys.clone())
            .with_application_name(self.application_name())
            .into_pools(config)
            .expect("pools")
    }

    pub fn application_name(&self) -> String {
        format!("tmtest_app_{}", self.env.tag)
    }

    /// A session logged in directly as the app login (the test server trusts local logins).
    pub async fn raw(&self) -> PgConnection {
        self.env
            .connect_as(&self.app, &self.db)
            .await
            .expect("app login connects")
    }

    /// An admin connection to the tenants' database.
    pub async fn admin(&self) -> PgConnection {
        self.env.admin(&self.db).await
    }

    pub async fn admin_sql(&self, sql: &str) {
        let mut admin = self.admin().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut admin)
            .await
            .expect("admin statement");
        let _ = admin.close().await;
    }

    /// The quoted app login.
    pub fn app_q(&self) -> String {
        quote_ident(&self.app)
    }

    /// How many of B's and B2's rows `loot` names.
    pub fn rows_of_b(&self, loot: &Loot) -> usize {
        B_ROWS
            .iter()
            .chain(&B2_ROWS)
            .filter(|row| loot.text().contains(*row))
            .count()
    }

    /// Statements reading every row of B and B2 the session may see (each on its own).
    pub fn probe(&self) -> Vec<String> {
        vec![
            format!("SELECT string_agg(name, ',') FROM {}.companies", self.sb),
            format!(
                "SELECT string_agg(name, ',') FROM {}.companies WHERE tenant_id = '{}'",
                self.shared, self.b2.id
            ),
            format!(
                "SELECT string_agg(name, ',') FROM {}.companies",
                self.shared
            ),
        ]
    }

    /// md5 of every row of B and B2, read as the admin.
    pub async fn digest_b(&self) -> String {
        let mut admin = self.admin().await;
        let digest: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT md5(coalesce(string_agg(x, ',' ORDER BY x), '')) FROM ( \
               SELECT c::text AS x FROM {}.companies c \
               UNION ALL SELECT c::text FROM {}.companies c WHERE tenant_id = $1) s",
            self.sb, self.shared
        )))
        .bind(self.b2.id.as_uuid())
        .fetch_one(&mut admin)
        .await
        .expect("digest");
        let _ = admin.close().await;
        digest
    }

    /// The engine's reset as the server received it: the last statement of a pooled session
    /// after one checkout and return (with affinity off, so the return resets; with it on,
    /// the same statements open the next tenant's checkout).
    async fn engine_reset(&self) -> String {
        let pools = self.pools_with(pool_support::config(1, 1).with_scope_affinity(Duration::ZERO));
        drop(pools.acquire(&self.a).await.expect("acquire A"));
        pool_support::settle(&pools).await;
        let mut admin = self.admin().await;
        let reset: String = sqlx::query_scalar(
            "SELECT query FROM pg_stat_activity WHERE application_name = $1 AND usename = $2 \
             AND query LIKE '%pg_prepared_statements%' ORDER BY backend_start DESC LIMIT 1",
        )
        .bind(self.application_name())
        .bind(&self.app)
        .fetch_one(&mut admin)
        .await
        .expect("the pooled session");
        let _ = admin.close().await;
        pools.close_all();
        assert!(
            reset.contains("DISCARD SEQUENCES") && reset.contains("pg_prepared_statements"),
            "not the engine's reset: {reset}"
        );
        reset
    }

    fn tables(&self) -> [String; 3] {
        [
            format!("{}.companies", self.sa),
            format!("{}.companies", self.sb),
            format!("{}.companies", self.shared),
        ]
    }

    /// Keeps what [`restore`](Self::restore) puts back: `wall.enter`, the wall's policies and
    /// every tenant row.
    async fn save(&mut self) {
        let mut admin = self.admin().await;
        self.enter_def = sqlx::query_scalar(
            "SELECT pg_get_functiondef('wall.enter(uuid,bigint,integer,text)'::regprocedure)",
        )
        .fetch_one(&mut admin)
        .await
        .expect("wall.enter");
        for table in self.tables() {
            let (using, check): (String, String) = sqlx::query_as(
                "SELECT pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid) \
                 FROM pg_policy WHERE polrelid = $1::regclass AND polname = 'tenant_wall'",
            )
            .bind(&table)
            .fetch_one(&mut admin)
            .await
            .expect("wall policy");
            self.policies.push((table.clone(), using, check));
            let rows: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT coalesce(json_agg(c), '[]')::text FROM {table} c"
            )))
            .fetch_one(&mut admin)
            .await
            .expect("rows");
            self.data.push((table, rows));
        }
        let _ = admin.close().await;
    }

    /// `wall.enter` as installed.
    pub fn enter_def(&self) -> &str {
        &self.enter_def
    }

    /// Puts the wall and every tenant's rows back after an off run: drops what attacks left
    /// (objects named `trap*`, large objects, role defaults), revokes what switches granted,
    /// re-forces row-level security, restores the policies, `wall.enter` and the rows.
    pub async fn restore(&self) {
        let mut sql = format!(
            "DO $$ DECLARE r record; BEGIN \
               FOR r IN SELECT tgname, tgrelid::regclass AS rel FROM pg_trigger WHERE tgname LIKE 'trap%' \
                 LOOP EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.rel); END LOOP; \
               FOR r IN SELECT polname, polrelid::regclass AS rel FROM pg_policy WHERE polname LIKE 'trap%' \
                 LOOP EXECUTE format('DROP POLICY %I ON %s', r.polname, r.rel); END LOOP; \
               FOR r IN SELECT c.oid::regclass AS rel, c.relkind FROM pg_class c \
                   JOIN pg_namespace n ON n.oid = c.relnamespace \
                   WHERE c.relname LIKE 'trap%' AND n.nspname !~ '^pg_(temp|toast)' \
                 LOOP EXECUTE format('DROP %s IF EXISTS %s CASCADE', \
                   CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, r.rel); END LOOP; \
               FOR r IN SELECT p.oid::regprocedure AS fn FROM pg_proc p \
                   JOIN pg_namespace n ON n.oid = p.pronamespace \
                   WHERE p.proname LIKE 'trap%' AND n.nspname !~ '^pg_temp' \
                 LOOP EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', r.fn); END LOOP; \
             END $$; \
             DROP SCHEMA IF EXISTS trap CASCADE; \
             SELECT lo_unlink(l.oid) FROM pg_largeobject_metadata l WHERE l.lomowner = {app_lit}::regrole; \
             ALTER ROLE {app} RESET ALL; \
             REVOKE {rb} FROM {app}; \
             REVOKE ALL ON SCHEMA wall_private FROM {app}; \
             REVOKE ALL ON wall_private.keys FROM {app}; \
             {enter}; ",
            app = self.app_q(),
            app_lit = quote_literal(&self.app_q()),
            rb = quote_ident(&self.rb),
            enter = self.enter_def,
        );
        for (table, using, check) in &self.policies {
            sql.push_str(&format!(
                "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY; \
                 ALTER POLICY tenant_wall ON {table} USING ({using}) WITH CHECK ({check}); "
            ));
        }
        sql.push_str("BEGIN; ");
        for (table, rows) in &self.data {
            sql.push_str(&format!(
                "DELETE FROM {table}; INSERT INTO {table} \
                 SELECT * FROM json_populate_recordset(NULL::{table}, {}); ",
                quote_literal(rows)
            ));
        }
        sql.push_str("COMMIT;");
        self.admin_sql(&sql).await;
        self.assert_intact().await;
    }

    /// The wall is whole: the deployment's own check passes, the app login is a member of no
    /// role and may not read the keys, and `wall.enter` is the installed one.
    pub async fn assert_intact(&self) {
        let check = WallAdmin::new(self.env.storage.clone())
            .expect("wall admin")
            .check()
            .await
            .expect("wall check");
        assert!(check.is_ok(), "the wall is not whole: {:?}", check.problems);
        let mut admin = self.admin().await;
        let (members, keys, enter): (i64, bool, String) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM pg_auth_members WHERE member = $1::regrole), \
                    has_schema_privilege($2, 'wall_private', 'USAGE') \
                      OR has_table_privilege($2, 'wall_private.keys', 'SELECT'), \
                    pg_get_functiondef('wall.enter(uuid,bigint,integer,text)'::regprocedure)",
        )
        .bind(self.app_q())
        .bind(&self.app)
        .fetch_one(&mut admin)
        .await
        .expect("intact");
        let _ = admin.close().await;
        assert_eq!(members, 0, "the app login is a member of a role");
        assert!(!keys, "the app login may read the keys");
        assert!(enter == self.enter_def, "wall.enter was replaced");
    }

    /// A trap listener, ready before the attack.
    pub async fn trap(&self) -> Trap {
        Trap::new(self).await
    }
}
