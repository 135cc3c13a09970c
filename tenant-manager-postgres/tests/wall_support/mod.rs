//! The tenant wall's attack suite (`tests/wall_attacks.rs`): a world of four tenants behind
//! the wall ([`world`]), the lanes an attack runs in ([`lane`]: the engine's checkout, or a raw
//! app-login connection doing the engine's checkout SQL minus one defence), the switches that
//! take one defence of the database down ([`switches`]), and the cases ([`cases_read`],
//! [`cases_proof`], [`cases_catalog`], [`cases_next`]). Here: what a case returns, the attacker's loot, and the listener that
//! catches what is smuggled out through `NOTIFY`.
//!
//! Nothing an attack obtains is printed: the loot holds B's rows, proofs and (with a defence
//! down) key material; cases report counts only.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

pub mod cases_catalog;
pub mod cases_next;
pub mod cases_proof;
pub mod cases_read;
pub mod lane;
pub mod switches;
pub mod world;

use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::postgres::{PgDatabaseError, PgListener, PgPoolOptions};
use sqlx::{PgConnection, Row};

use switches::Switch;
use world::World;

/// Whether the case runs against the whole wall, or with its defence switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    On,
    Off,
}

/// What one run of a case got out of B, and did to B or to the next tenant.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Rows of B (or B2) whose contents reached the attacker, by any channel.
    pub read: usize,
    /// Traps of A that reached the next tenant, or objects A left outside its temp schema.
    pub traps: usize,
    /// Whether B's rows (digest read as the admin) changed during the run.
    pub changed: bool,
    /// Non-secret observations (counts), for the report.
    pub info: Vec<String>,
}

impl Outcome {
    /// The case's leak count: 0 means the wall held.
    pub fn leaks(&self) -> usize {
        self.read + self.traps + usize::from(self.changed)
    }

    pub fn note(&mut self, what: impl Into<String>) {
        self.info.push(what.into());
    }
}

/// One attack of the suite.
pub struct Case {
    pub name: &'static str,
    /// The database defences switched off for the off run (reset-level defences are taken
    /// down by the case itself, through a raw lane; see [`lane::Defence`]).
    pub off: &'static [Switch],
    /// What the off run takes down, for the report.
    pub off_says: &'static str,
    /// A hole the wall does not close: the on run is expected to leak too.
    pub known_hole: bool,
    pub run: for<'w> fn(&'w World, Mode) -> BoxFuture<'w, Outcome>,
}

/// Everything an attack got back: result rows, error texts, notification payloads, COPY
/// output. Never printed.
#[derive(Default)]
pub struct Loot(String);

impl Loot {
    pub fn push(&mut self, text: &str) {
        self.0.push_str(text);
        self.0.push('\n');
    }

    pub fn text(&self) -> &str {
        &self.0
    }
}

/// Runs one attacker statement (simple protocol, as injected SQL would run), putting every
/// value of every row, or the error's message, detail and hint, into `loot`. Returns the
/// first column of the first row when the statement succeeded.
pub async fn attempt(conn: &mut PgConnection, loot: &mut Loot, sql: &str) -> Option<String> {
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut *conn)
        .await
    {
        Ok(rows) => {
            let mut first = None;
            for row in &rows {
                for i in 0..row.len() {
                    // Simple protocol: every value arrives as text.
                    let value: Option<String> = row.try_get_unchecked(i).unwrap_or(None);
                    if let Some(value) = value {
                        loot.push(&value);
                        first.get_or_insert(value);
                    }
                }
            }
            Some(first.unwrap_or_default())
        }
        Err(err) => {
            loot.push(&error_text(&err));
            None
        }
    }
}

/// Runs each statement on its own, so one refused statement does not hide the next.
pub async fn attempts(conn: &mut PgConnection, loot: &mut Loot, sqls: &[String]) {
    for sql in sqls {
        attempt(conn, loot, sql).await;
    }
}

/// Everything an error tells its reader.
pub fn error_text(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => match db.try_downcast_ref::<PgDatabaseError>() {
            Some(pg) => format!(
                "{} | {} | {} | {}",
                pg.message(),
                pg.detail().unwrap_or(""),
                pg.hint().unwrap_or(""),
                pg.r#where().unwrap_or("")
            ),
            None => db.message().to_owned(),
        },
        other => other.to_string(),
    }
}

/// The attacker's ears: an admin session listening on channel `trap` of the tenants'
/// database (notifications are database-wide: any session could be the receiver).
pub struct Trap {
    listener: PgListener,
}

impl Trap {
    pub const CHANNEL: &'static str = "trap";
    const END: &'static str = "end-of-case";

    pub async fn new(world: &World) -> Self {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(world.env.admin_options(&world.db))
            .await
            .expect("listener pool");
        let mut listener = PgListener::connect_with(&pool).await.expect("listener");
        listener.listen(Self::CHANNEL).await.expect("listen");
        Self { listener }
    }

    /// Every payload sent to `trap` so far (up to an end marker the admin sends now).
    pub async fn drain(mut self, world: &World) -> Loot {
        let mut admin = world.admin().await;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(Self::CHANNEL)
            .bind(Self::END)
            .execute(&mut admin)
            .await
            .expect("end marker");
        let mut loot = Loot::default();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), self.listener.recv())
                .await
                .expect("notifications arrive")
                .expect("notification");
            if next.payload() == Self::END {
                break;
            }
            loot.push(next.payload());
        }
        let _ = self.listener.unlisten_all().await;
        loot
    }
}
