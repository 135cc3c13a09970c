//! Attacks on the verdict itself: forged and replayed proofs, and the wall's own state.

use futures::future::BoxFuture;
use tenant_manager_postgres::wall;

use super::cases_read::on_seat;
use super::lane::Seat;
use super::world::World;
use super::{Loot, Mode, Outcome, attempt, attempts};
use crate::pool_support;

/// A nonce above any the engine of this process draws.
const HIGH_NONCE: i64 = 1 << 50;

/// `wall.enter(B)` with a guessed proof, A's own valid proof (as if it leaked), an unknown
/// key id, NULL, text that is not hex, and A's proof in upper case.
pub fn forged_proof(world: &World, _: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let mut seat = Seat::engine(world, 1);
        seat.enter(&world.a).await;
        let me = wall::session_id(seat.conn()).await.expect("identity");
        let a_proof = world
            .keys
            .sign(world.a.id, me.pid, me.backend_start_us, HIGH_NONCE)
            .expect("sign");
        let (b, key, n) = (world.b.id, world.keys.key_id(), HIGH_NONCE);
        let mut sqls = vec![
            format!("SELECT wall.enter('{b}', {n}, {key}, '{a_proof}')"),
            format!(
                "SELECT wall.enter('{b}', {}, {key}, encode(sha256('guess'::bytea), 'hex'))",
                n + 1
            ),
            format!(
                "SELECT wall.enter('{b}', {}, {}, '{a_proof}')",
                n + 2,
                key + 1
            ),
            format!("SELECT wall.enter('{b}', {}, {key}, NULL)", n + 3),
            format!("SELECT wall.enter('{b}', {}, {key}, 'zz-not-hex')", n + 4),
            format!(
                "SELECT wall.enter('{b}', {}, {key}, upper('{a_proof}'))",
                n + 5
            ),
        ];
        sqls.extend(world.probe());
        on_seat(seat, world, &sqls).await
    })
}

/// The proofs other sessions sent, as the app login reads them in `pg_stat_activity`.
const STOLEN: &str = "SELECT regexp_match(query, \
     'wall\\.enter\\(''([0-9a-f-]{36})''::uuid, (\\d+), (\\d+), ''([0-9a-f]{64})''\\)') \
     FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%wall.enter(%'";

/// A's checkout reads B's checkout's proof from another session's query text in
/// `pg_stat_activity` (visible: same login) and replays it, also with the next nonce. B was
/// checked out after A, so its nonce is above A's floor.
pub fn replay_other_session(world: &World, _: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let pools = world.pools(2);
        let mut attacker = pools.acquire(&world.a).await.expect("acquire A");
        let victim = pools.acquire(&world.b).await.expect("acquire B");
        let mut loot = Loot::default();
        let visible = attempt(
            &mut attacker,
            &mut loot,
            &format!("SELECT count(*) FROM ({STOLEN}) s WHERE regexp_match IS NOT NULL"),
        )
        .await;
        let mut sqls = vec![format!(
            "DO $$ DECLARE m text[]; BEGIN \
               FOR m IN {STOLEN} LOOP \
                 CONTINUE WHEN m IS NULL; \
                 EXIT WHEN wall.enter(m[1]::uuid, m[2]::bigint + 1, m[3]::int, m[4]); \
                 EXIT WHEN wall.enter(m[1]::uuid, m[2]::bigint, m[3]::int, m[4]); \
               END LOOP; END $$"
        )];
        sqls.extend(world.probe());
        attempts(&mut attacker, &mut loot, &sqls).await;
        drop((attacker, victim));
        pool_support::settle(&pools).await;
        pools.close_all();
        let mut outcome = Outcome {
            read: world.rows_of_b(&loot),
            ..Outcome::default()
        };
        outcome.note(format!(
            "proofs of other sessions visible in pg_stat_activity: {}",
            visible.unwrap_or_default()
        ));
        outcome
    })
}

/// The same connection serves B, then A: A replays the proof of B's checkout (as if it leaked,
/// e.g. through `pg_stat_activity` while B held the connection).
pub fn replay_earlier_checkout(world: &World, _: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let mut seat = Seat::engine(world, 1);
        seat.enter(&world.b).await;
        let mut admin = world.admin().await;
        let (pid, call): (i32, Option<String>) = sqlx::query_as(
            "SELECT pid, substring(query from 'wall\\.enter\\([^)]*\\)') FROM pg_stat_activity \
             WHERE application_name = $1 AND usename = $2 AND query LIKE '%wall.enter(%' \
             ORDER BY backend_start DESC LIMIT 1",
        )
        .bind(world.application_name())
        .bind(&world.app)
        .fetch_one(&mut admin)
        .await
        .expect("B's checkout");
        let _ = sqlx::Connection::close(admin).await;
        let call = call.expect("B's checkout entered the wall");
        seat.enter(&world.a).await;
        assert_eq!(seat.pid().await, pid, "A got B's connection");
        let mut sqls = vec![format!("SELECT {call}")];
        sqls.extend(world.probe());
        on_seat(seat, world, &sqls).await
    })
}

/// The wall's own state: write the verdicts, draw or set the token sequence, read the keys,
/// change `wall.enter` and `wall.tenant`, and sign B's proof in SQL with the key.
pub fn wall_state(world: &World, _: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let (b, key, n) = (world.b.id, world.keys.key_id(), HIGH_NONCE);
        let mut sqls = vec![
            format!("UPDATE wall.sessions SET tenant = '{b}'"),
            format!(
                "INSERT INTO wall.sessions (pid, backend_start, token, tenant, nonce) \
                 VALUES (pg_backend_pid(), now(), currval('wall.session_token'), '{b}', 0)"
            ),
            "DELETE FROM wall.sessions".to_owned(),
            "SELECT setval('wall.session_token', 1)".to_owned(),
            "SELECT nextval('wall.session_token')".to_owned(),
            "SELECT key_id, encode(inner_pad, 'hex') FROM wall_private.keys".to_owned(),
            "ALTER FUNCTION wall.enter(uuid, bigint, integer, text) SECURITY INVOKER".to_owned(),
            format!(
                "CREATE OR REPLACE FUNCTION wall.tenant() RETURNS uuid LANGUAGE sql \
                 AS $f$ SELECT '{b}'::uuid $f$"
            ),
            format!(
                "SELECT wall.enter('{b}', {n}, {key}, (SELECT encode(sha256(k.outer_pad || \
                   sha256(k.inner_pad || convert_to(concat_ws('|', '{b}', s.pid, \
                   s.backend_start_us, {n}), 'UTF8'))), 'hex') \
                 FROM wall_private.keys k, wall.session_id() s WHERE k.key_id = {key}))"
            ),
        ];
        sqls.extend(world.probe());
        super::cases_read::in_checkout(world, &world.a, &sqls).await
    })
}
