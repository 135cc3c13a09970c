//! Attacks on the next tenant of A's connection: traps A leaves on the session (temporary
//! objects, a replaced prepared statement, listeners, advisory locks) and rows smuggled out
//! through channels other than result rows. With the wall on they run through the engine
//! (a pool of one connection: B gets A's connection after the engine's reset); off, through
//! a raw seat whose reset lacks the one defence.

use futures::future::BoxFuture;
use tenant_manager_postgres::quote_ident;

use super::lane::{Defence, Seat};
use super::world::{B_ROWS, World};
use super::{Loot, Mode, Outcome, Trap, attempt, attempts};

/// The list query of a host's handler (the driver prepares and caches it).
const LIST: &str = "SELECT name FROM companies ORDER BY name";

/// A's connection goes to B: B's handler runs [`LIST`] (it must read its own rows), then
/// `what_is_left` (a count of A's things still on the session, the outcome's traps). The seat
/// is closed and the trap, if any, drained into the loot. With the wall on, B must get A's
/// very connection when `reuse_required` (the engine's reset is what is under test).
async fn hand_to_b(
    mut seat: Seat<'_>,
    world: &World,
    handover: Handover<'_>,
    mut loot: Loot,
) -> Outcome {
    seat.enter(&world.b).await;
    let same = seat.pid().await == handover.pid_a;
    let list: Vec<String> = sqlx::query_scalar(LIST)
        .fetch_all(seat.conn())
        .await
        .expect("B's list");
    let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(handover.what_is_left.to_owned()))
        .fetch_one(seat.conn())
        .await
        .expect("what A left");
    seat.close().await;
    if let Some(trap) = handover.trap {
        loot.push(trap.drain(world).await.text());
    }
    if handover.reuse_required && handover.mode == Mode::On {
        assert!(same, "the engine handed B another connection");
    }
    assert_eq!(list, B_ROWS, "B's handler reads its own rows");
    let mut outcome = Outcome {
        read: world.rows_of_b(&loot),
        traps: usize::try_from(left).expect("count"),
        ..Outcome::default()
    };
    outcome.note(format!("B on A's connection: {same}"));
    outcome
}

/// How A's connection is handed to B (see [`hand_to_b`]).
struct Handover<'a> {
    mode: Mode,
    pid_a: i32,
    what_is_left: &'a str,
    trap: Option<Trap>,
    reuse_required: bool,
}

/// Temporary objects that shadow B's tables: a view `companies` (found before B's own table,
/// `pg_temp` comes first for relations) sending every row it reads to the attacker's
/// listener, a table, a sequence, a function. Defence: `DISCARD TEMP`.
pub fn temp_objects(world: &World, mode: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let trap = world.trap().await;
        let mut seat = Seat::for_mode(world, mode, Defence::DiscardTemp).await;
        seat.enter(&world.a).await;
        let pid_a = seat.pid().await;
        let mut loot = Loot::default();
        let (sa, sb, sh) = (&world.sa, &world.sb, &world.shared);
        let sqls = [
            "CREATE FUNCTION pg_temp.grab(text) RETURNS boolean LANGUAGE plpgsql \
             AS $f$ BEGIN PERFORM pg_notify('trap', $1); RETURN true; END $f$"
                .to_owned(),
            format!(
                "CREATE TEMP VIEW companies AS \
                 SELECT c.id, c.name, c.domain, c.created_at FROM {sb}.companies c WHERE pg_temp.grab(c.name) \
                 UNION ALL SELECT s.id, s.name, s.domain, s.created_at FROM {sh}.companies s \
                 WHERE pg_temp.grab(s.name)"
            ),
            format!("CREATE TEMP TABLE trap_t AS SELECT * FROM {sa}.companies"),
            "CREATE TEMP SEQUENCE trap_s".to_owned(),
        ];
        attempts(seat.conn(), &mut loot, &sqls).await;
        let handover = Handover {
            mode,
            pid_a,
            what_is_left: "SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()) \
                  + (SELECT count(*) FROM pg_proc WHERE pronamespace = pg_my_temp_schema())",
            trap: Some(trap),
            reuse_required: true,
        };
        hand_to_b(seat, world, handover, loot).await
    })
}

/// The driver's cached statement of A's handler replaced under its own name (`DEALLOCATE`,
/// then `PREPARE sqlx_s_N AS ...` sending every row to the attacker's listener); B's handler
/// runs the same query on that connection. Defence: the reset's prepared statement count,
/// which discards the connection.
pub fn prepared_poison(world: &World, mode: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let trap = world.trap().await;
        let mut seat = Seat::for_mode(world, mode, Defence::PreparedCheck).await;
        seat.enter(&world.a).await;
        let pid_a = seat.pid().await;
        let _: Vec<String> = sqlx::query_scalar(LIST)
            .fetch_all(seat.conn())
            .await
            .expect("A's list");
        let mut loot = Loot::default();
        let name = attempt(
            seat.conn(),
            &mut loot,
            &format!("SELECT name FROM pg_prepared_statements WHERE statement = '{LIST}'"),
        )
        .await
        .filter(|n| n.starts_with("sqlx_s_"))
        .expect("the driver's statement is listed");
        let sqls = [
            format!("DEALLOCATE {}", quote_ident(&name)),
            format!(
                "PREPARE {} AS SELECT c.name FROM companies c, \
                 LATERAL (SELECT pg_notify('trap', c.name)) n ORDER BY c.name",
                quote_ident(&name)
            ),
        ];
        attempts(seat.conn(), &mut loot, &sqls).await;
        let handover = Handover {
            mode,
            pid_a,
            what_is_left: "SELECT 0::int8",
            trap: Some(trap),
            reuse_required: false,
        };
        hand_to_b(seat, world, handover, loot).await
    })
}

/// B's rows sent to the attacker's listener with `pg_notify`, and a `LISTEN` left for the
/// next tenant. Defences: the policy (nothing of B to send) and `UNLISTEN *`.
pub fn listen_notify(world: &World, mode: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let trap = world.trap().await;
        let mut seat = Seat::for_mode(world, mode, Defence::Unlisten).await;
        seat.enter(&world.a).await;
        let pid_a = seat.pid().await;
        let (sb, sh, b2) = (&world.sb, &world.shared, world.b2.id);
        let sqls = [
            format!(
                "SELECT pg_notify('trap', coalesce((SELECT string_agg(name, ',') FROM {sb}.companies), ''))"
            ),
            format!(
                "SELECT pg_notify('trap', coalesce((SELECT string_agg(name, ',') \
                 FROM {sh}.companies WHERE tenant_id = '{b2}'), ''))"
            ),
            "LISTEN b_events".to_owned(),
        ];
        let mut loot = Loot::default();
        attempts(seat.conn(), &mut loot, &sqls).await;
        let handover = Handover {
            mode,
            pid_a,
            what_is_left: "SELECT count(*) FROM pg_listening_channels()",
            trap: Some(trap),
            reuse_required: true,
        };
        hand_to_b(seat, world, handover, loot).await
    })
}

/// B's rows encoded as advisory lock keys (`pg_locks` shows them to every session), and a
/// lock left for the next tenant. Defences: the policy and `pg_advisory_unlock_all()`.
pub fn advisory(world: &World, mode: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let mut seat = Seat::for_mode(world, mode, Defence::AdvisoryUnlock).await;
        seat.enter(&world.a).await;
        let pid_a = seat.pid().await;
        let (sb, sh, b2) = (&world.sb, &world.shared, world.b2.id);
        let sqls = [
            format!("SELECT count(pg_advisory_lock(7, hashtext(name))) FROM {sb}.companies"),
            format!(
                "SELECT count(pg_advisory_lock(7, hashtext(name))) FROM {sh}.companies \
                 WHERE tenant_id = '{b2}'"
            ),
            "SELECT pg_advisory_lock(42)".to_owned(),
        ];
        let mut loot = Loot::default();
        attempts(seat.conn(), &mut loot, &sqls).await;
        // What any session reads in pg_locks: how many of B's rows are a held lock's key, in
        // this database (another run of this suite on the same server holds the same keys).
        let mut admin = world.admin().await;
        let encoded: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM (SELECT name FROM {sb}.companies \
               UNION ALL SELECT name FROM {sh}.companies WHERE tenant_id = $1) r \
             WHERE EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND l.classid = 7 AND l.objsubid = 2 \
               AND l.objid::int8 = (hashtext(r.name)::int8 + 4294967296) % 4294967296)"
        )))
        .bind(b2.as_uuid())
        .fetch_one(&mut admin)
        .await
        .expect("pg_locks");
        let _ = sqlx::Connection::close(admin).await;
        let handover = Handover {
            mode,
            pid_a,
            what_is_left: "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
            trap: None,
            reuse_required: true,
        };
        let mut outcome = hand_to_b(seat, world, handover, loot).await;
        outcome.read += usize::try_from(encoded).expect("count");
        outcome
    })
}
