//! Attacks that try to read or change B's rows from A's checkout (or from a raw app-login
//! session): roles, settings, qualified names, COPY, the catalogs, the planner.

use futures::StreamExt;
use futures::future::BoxFuture;
use tenant_manager_core::Tenant;
use tenant_manager_postgres::{quote_ident, quote_literal};

use super::lane::Seat;
use super::world::World;
use super::{Loot, Mode, Outcome, attempt, attempts, error_text};

/// Runs `sqls` one by one inside the engine's checkout for `tenant`; counts B's rows in
/// whatever came back.
pub async fn in_checkout(world: &World, tenant: &Tenant, sqls: &[String]) -> Outcome {
    let mut seat = Seat::engine(world, 1);
    seat.enter(tenant).await;
    on_seat(seat, world, sqls).await
}

/// Runs `sqls` one by one on `seat`, closes it, and counts B's rows in what came back.
pub async fn on_seat(mut seat: Seat<'_>, world: &World, sqls: &[String]) -> Outcome {
    let mut loot = Loot::default();
    attempts(seat.conn(), &mut loot, sqls).await;
    seat.close().await;
    Outcome {
        read: world.rows_of_b(&loot),
        ..Outcome::default()
    }
}

/// `SET ROLE` to B's role, then read B.
pub fn set_role(world: &World, _: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let mut sqls = vec![format!("SET ROLE {}", quote_ident(&world.rb))];
        sqls.extend(world.probe());
        in_checkout(world, &world.a, &sqls).await
    })
}

/// From shared tenant A2's checkout: every setting a policy could trust (`app.tenant_id`,
/// `search_path`, `role`, made-up wall settings) set to B2, then to B; read and insert
/// through unqualified names.
pub fn set_config(world: &World, _: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let path = quote_literal(&format!("{}, {}", world.sb, world.shared));
        let mut sqls = Vec::new();
        for target in [&world.b2, &world.b] {
            sqls.extend([
                format!(
                    "SELECT set_config('app.tenant_id', '{}', false), \
                            set_config('search_path', {path}, false)",
                    target.id
                ),
                format!(
                    "SELECT set_config('role', {}, false)",
                    quote_literal(&world.rb)
                ),
                format!(
                    "SELECT set_config('wall.tenant', '{}', false), \
                            set_config('app.wall_proof', 'x', false)",
                    target.id
                ),
                "SELECT string_agg(name, ',') FROM companies".to_owned(),
                format!(
                    "INSERT INTO {}.companies (name) VALUES ('planted by A2')",
                    world.shared
                ),
                "INSERT INTO companies (name) VALUES ('planted by A2')".to_owned(),
            ]);
            sqls.extend(world.probe());
        }
        in_checkout(world, &world.a2, &sqls).await
    })
}

/// Schema-qualified reads and writes of B's rows, error texts included: a cast of B's names,
/// and a temporary function that raises with the value it is given.
pub fn schema_qualified(world: &World, _: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let (sa, sb, sh, b2) = (&world.sa, &world.sb, &world.shared, world.b2.id);
        let mut sqls = world.probe();
        sqls.extend([
            "CREATE FUNCTION pg_temp.peek(text) RETURNS boolean LANGUAGE plpgsql COST 0.0001 \
             AS $f$ BEGIN RAISE EXCEPTION 'peek: %', $1; END $f$"
                .to_owned(),
            format!("SELECT count(*) FROM {sb}.companies WHERE pg_temp.peek(name)"),
            format!("SELECT count(*) FROM {sh}.companies WHERE tenant_id = '{b2}' AND pg_temp.peek(name)"),
            format!("SELECT name::int FROM {sb}.companies"),
            format!("SELECT name::int FROM {sh}.companies WHERE tenant_id = '{b2}'"),
            format!(
                "WITH u AS (UPDATE {sb}.companies SET name = name || ' pwned' RETURNING name) \
                 SELECT string_agg(name, ',') FROM u"
            ),
            format!(
                "WITH u AS (UPDATE {sh}.companies SET domain = 'pwned' WHERE tenant_id = '{b2}' \
                 RETURNING name) SELECT string_agg(name, ',') FROM u"
            ),
            format!(
                "WITH d AS (DELETE FROM {sh}.companies WHERE tenant_id = '{b2}' RETURNING name) \
                 SELECT string_agg(name, ',') FROM d"
            ),
            format!("INSERT INTO {sb}.companies (name) VALUES ('planted by A')"),
            format!("INSERT INTO {sh}.companies (tenant_id, name) VALUES ('{b2}', 'planted by A')"),
            format!("INSERT INTO {sb}.companies SELECT * FROM {sa}.companies"),
            format!("TRUNCATE {sb}.companies"),
            format!("SELECT count(*) FROM {sb}._sqlx_migrations"),
        ]);
        in_checkout(world, &world.a, &sqls).await
    })
}

/// `COPY` out of B's table and B2's rows, to a server file, and into both.
pub fn copy(world: &World, _: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let (sb, sh, b2) = (&world.sb, &world.shared, world.b2.id);
        let mut seat = Seat::engine(world, 1);
        seat.enter(&world.a).await;
        let conn = seat.conn();
        let mut loot = Loot::default();
        for out in [
            format!("COPY {sb}.companies TO STDOUT"),
            format!("COPY (SELECT * FROM {sh}.companies WHERE tenant_id = '{b2}') TO STDOUT"),
            format!("COPY {sh}.companies TO STDOUT"),
        ] {
            match conn.copy_out_raw(&out).await {
                Ok(mut stream) => {
                    while let Some(chunk) = stream.next().await {
                        match chunk {
                            Ok(bytes) => loot.push(&String::from_utf8_lossy(&bytes)),
                            Err(err) => loot.push(&error_text(&err)),
                        }
                    }
                }
                Err(err) => loot.push(&error_text(&err)),
            }
        }
        // Refused before any row is read: writing server files takes pg_write_server_files.
        attempt(
            conn,
            &mut loot,
            &format!("COPY {sb}.companies TO '/nonexistent/tm_wall_copy'"),
        )
        .await;
        for (into, data) in [
            (
                format!("COPY {sb}.companies (name) FROM STDIN"),
                "planted by A\n".to_owned(),
            ),
            (
                format!("COPY {sh}.companies (tenant_id, name) FROM STDIN"),
                format!("{b2}\tplanted by A\n"),
            ),
        ] {
            match conn.copy_in_raw(&into).await {
                Ok(mut copy) => {
                    let sent = copy.send(data.as_bytes()).await.map(|_| ());
                    match sent {
                        Ok(()) => {
                            if let Err(err) = copy.finish().await {
                                loot.push(&error_text(&err));
                            }
                        }
                        Err(err) => {
                            loot.push(&error_text(&err));
                            let _ = copy.abort("failed").await;
                        }
                    }
                }
                Err(err) => loot.push(&error_text(&err)),
            }
        }
        seat.close().await;
        Outcome {
            read: world.rows_of_b(&loot),
            ..Outcome::default()
        }
    })
}

/// No checkout at all: a session logged in as the app login (a leaked password, or a pooled
/// connection before its first checkout) reads B, `SET ROLE`s to B, sets `app.tenant_id`
/// and calls `wall.enter()` with a made-up proof.
pub fn raw_connection(world: &World, _: Mode) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let mut conn = world.raw().await;
        let mut sqls = world.probe();
        sqls.push(format!("SET ROLE {}", quote_ident(&world.rb)));
        sqls.extend(world.probe());
        sqls.extend([
            "RESET ROLE".to_owned(),
            format!(
                "SELECT set_config('app.tenant_id', '{}', false)",
                world.b2.id
            ),
            format!(
                "SELECT wall.enter('{}', 1, {}, encode(sha256('x'::bytea), 'hex'))",
                world.b.id,
                world.keys.key_id()
            ),
        ]);
        sqls.extend(world.probe());
        let mut loot = Loot::default();
        attempts(&mut conn, &mut loot, &sqls).await;
        let _ = sqlx::Connection::close(conn).await;
        Outcome {
            read: world.rows_of_b(&loot),
            ..Outcome::default()
        }
    })
}
