//! Attacks through the catalogs: objects A would create around B's tables, the statistics
//! Postgres keeps of B's rows, and the planner's estimates built from them.

use futures::future::BoxFuture;
use serde_json::Value;
use tenant_manager_postgres::{quote_ident, quote_literal};

use super::cases_read::in_checkout;
use super::lane::Seat;
use super::world::World;
use super::{Loot, Mode, Outcome, attempt};

/// Triggers on B's and the shared table (with a temporary trigger function), views,
/// functions, tables, policies and a schema around them, row-level security turned off, and
/// the same as B's role after `SET ROLE`. Counts what exists afterwards outside temporary
/// schemas (read as the admin).
pub fn create_objects(world: &World, _: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let (sb, sh) = (&world.sb, &world.shared);
        let sqls = [
            "CREATE FUNCTION pg_temp.trap_fn() RETURNS trigger LANGUAGE plpgsql \
             AS $f$ BEGIN RETURN NEW; END $f$"
                .to_owned(),
            format!(
                "CREATE TRIGGER trap BEFORE INSERT OR UPDATE ON {sb}.companies \
                 FOR EACH ROW EXECUTE FUNCTION pg_temp.trap_fn()"
            ),
            format!(
                "CREATE TRIGGER trap BEFORE INSERT OR UPDATE ON {sh}.companies \
                 FOR EACH ROW EXECUTE FUNCTION pg_temp.trap_fn()"
            ),
            format!("CREATE VIEW {sb}.trap_v AS SELECT * FROM {sb}.companies"),
            format!("CREATE VIEW {sh}.trap_v AS SELECT * FROM {sh}.companies"),
            format!("CREATE TABLE {sh}.trap_t (x text)"),
            "CREATE FUNCTION wall.trap() RETURNS uuid LANGUAGE sql AS 'SELECT NULL::uuid'"
                .to_owned(),
            format!("CREATE POLICY trap ON {sb}.companies USING (true)"),
            format!("CREATE POLICY trap ON {sh}.companies USING (true)"),
            format!("ALTER TABLE {sb}.companies NO FORCE ROW LEVEL SECURITY"),
            format!("ALTER TABLE {sh}.companies DISABLE ROW LEVEL SECURITY"),
            "CREATE SCHEMA trap".to_owned(),
            "SELECT lo_create(0)".to_owned(),
            format!("SET ROLE {}", quote_ident(&world.rb)),
            format!(
                "CREATE FUNCTION {sb}.trap() RETURNS trigger LANGUAGE plpgsql \
                 AS $f$ BEGIN RETURN NEW; END $f$"
            ),
            format!(
                "CREATE TRIGGER trap BEFORE INSERT OR UPDATE ON {sb}.companies \
                 FOR EACH ROW EXECUTE FUNCTION {sb}.trap()"
            ),
            format!("CREATE VIEW {sb}.trap_v AS SELECT * FROM {sb}.companies"),
            "RESET ROLE".to_owned(),
        ];
        let mut outcome = in_checkout(world, &world.a, &sqls).await;
        let mut admin = world.admin().await;
        let (objects, large): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'trap%') \
                  + (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relname LIKE 'trap%' AND n.nspname !~ '^pg_(temp|toast)') \
                  + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                     WHERE p.proname LIKE 'trap%' AND n.nspname !~ '^pg_temp') \
                  + (SELECT count(*) FROM pg_policy WHERE polname LIKE 'trap%') \
                  + (SELECT count(*) FROM pg_namespace WHERE nspname = 'trap') \
                  + (SELECT count(*) FROM pg_class \
                     WHERE oid IN ('{sb}.companies'::regclass, '{sh}.companies'::regclass) \
                       AND NOT (relrowsecurity AND relforcerowsecurity)), \
                    (SELECT count(*) FROM pg_largeobject_metadata WHERE lomowner = $1::regrole)"
        )))
        .bind(world.app_q())
        .fetch_one(&mut admin)
        .await
        .expect("objects");
        let _ = sqlx::Connection::close(admin).await;
        outcome.traps = usize::try_from(objects).expect("count");
        outcome.note(format!("large objects the app login created: {large}"));
        outcome
    })
}

/// The statistics Postgres keeps of B's table and the shared table (`pg_stats` most common
/// values and histograms, `pg_stats_ext` of B's extended statistics): they hold B's values.
pub fn catalog_probes(world: &World, _: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let schemas = format!(
            "{}, {}",
            quote_literal(world.b.placement.schema.as_deref().expect("schema")),
            quote_literal(&world.env.storage.config().shared_schema)
        );
        let mut sqls = vec![
            format!(
                "SELECT string_agg(s::text, ' ') FROM pg_stats s \
                 WHERE schemaname IN ({schemas}) AND tablename = 'companies'"
            ),
            format!(
                "SELECT string_agg(s::text, ' ') FROM pg_stats_ext s WHERE schemaname IN ({schemas})"
            ),
            format!(
                "SELECT string_agg(s::text, ' ') FROM pg_stats_ext_exprs s \
                 WHERE schemaname IN ({schemas})"
            ),
        ];
        sqls.extend(world.probe());
        let mut outcome = in_checkout(world, &world.a, &sqls).await;
        // Sizes are visible to every login (out of the wall's reach): reported, not counted.
        let mut seat = Seat::engine(world, 1);
        seat.enter(&world.a).await;
        let size = attempt(
            seat.conn(),
            &mut Loot::default(),
            &format!(
                "SELECT c.reltuples::int8::text || ' rows (reltuples), ' || \
                   coalesce((SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = c.oid), -1) \
                   || ' (n_live_tup)' FROM pg_class c WHERE c.oid = '{}.companies'::regclass",
                world.sb
            ),
        )
        .await;
        seat.close().await;
        outcome.note(format!(
            "size of B's table seen by A: {}",
            size.unwrap_or_default()
        ));
        outcome
    })
}

/// The planner's row estimates (`EXPLAIN`) for `domain = <guess>` on B's table and the
/// shared table: under row-level security Postgres still uses the column statistics with
/// leakproof operators (text and uuid equality and order are leakproof), so an estimate
/// above the others confirms a guessed value of B (a most common value). Counts B's values
/// confirmed this way. A known hole: the wall does not close it.
pub fn planner_estimates(world: &World, _: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let b_domain = format!("{}.example.com", super::world::B_ROWS[0].len());
        let mut seat = Seat::engine(world, 1);
        seat.enter(&world.a).await;
        let mut loot = Loot::default();
        let mut confirmed = 0;
        for table in [&world.sb, &world.shared] {
            let mut estimates = Vec::new();
            for len in 5..=25 {
                let guess = format!("{len}.example.com");
                let plan = attempt(
                    seat.conn(),
                    &mut loot,
                    &format!(
                        "EXPLAIN (FORMAT JSON) SELECT * FROM {table}.companies WHERE domain = '{guess}'"
                    ),
                )
                .await
                .expect("EXPLAIN");
                let plan: Value = serde_json::from_str(&plan).expect("plan");
                estimates.push((guess, scan_rows(&plan[0]["Plan"]).expect("a scan")));
            }
            let floor = estimates.iter().map(|(_, r)| *r).fold(f64::MAX, f64::min);
            confirmed += estimates
                .iter()
                .filter(|(guess, rows)| *rows > floor && *guess == b_domain)
                .count();
        }
        seat.close().await;
        let mut outcome = Outcome {
            read: confirmed,
            ..Outcome::default()
        };
        outcome.note(format!(
            "values of B confirmed by row estimates: {confirmed}"
        ));
        outcome
    })
}

/// "Plan Rows" of the plan node scanning `companies`.
fn scan_rows(node: &Value) -> Option<f64> {
    if node["Relation Name"] == "companies" {
        return node["Plan Rows"].as_f64();
    }
    node["Plans"].as_array()?.iter().find_map(scan_rows)
}
