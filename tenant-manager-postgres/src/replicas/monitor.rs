//! The lag monitor: measures every replica of every server, each interval, until the
//! connector that routes by it is gone.

use std::sync::Weak;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tenant_manager_core::ServerId;

use super::{ReplicaRoutes, ReplicaState};
use crate::servers::ServerMap;

/// Measures every `policy.interval` until `routes` is dropped (with the connector).
pub(crate) async fn run(servers: ServerMap, routes: Weak<ReplicaRoutes>) {
    let Some(every) = routes.upgrade().map(|r| r.policy.interval) else {
        return;
    };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(routes) = routes.upgrade() else {
            return;
        };
        measure_all(&servers, &routes).await;
    }
}

/// One measure of every replica.
pub(crate) async fn measure_all(servers: &ServerMap, routes: &ReplicaRoutes) {
    for id in servers.ids() {
        let Ok(server) = servers.get(id) else {
            continue;
        };
        if server.replicas.is_empty() {
            continue;
        }
        measure_server(id, &server.admin, &server.replicas, routes).await;
    }
}

async fn measure_server(
    id: &ServerId,
    primary: &PgConnectOptions,
    replicas: &[crate::servers::ReplicaConfig],
    routes: &ReplicaRoutes,
) {
    let policy = &routes.policy;
    let states = routes.of(id);
    // The primary first: a replica read after it can only be closer, so lag is never
    // overstated by writes in between, and an idle primary reads as lag 0.
    let primary_lsn = probe(primary, policy.probe_timeout, PRIMARY_SQL)
        .await
        .and_then(|row| parse_lsn(&row.0));
    for (config, state) in replicas.iter().zip(states) {
        let Some(primary_lsn) = primary_lsn else {
            // Unknown lag: the replica does not serve reads.
            state.set_available(false);
            continue;
        };
        judge(state, primary_lsn, &config.admin, routes).await;
    }
}

/// Measures one replica against `primary_lsn` and records the verdict.
async fn judge(
    state: &ReplicaState,
    primary_lsn: u64,
    replica: &PgConnectOptions,
    routes: &ReplicaRoutes,
) {
    let policy = &routes.policy;
    let Some((replay, in_recovery, behind_ms)) = probe(replica, policy.probe_timeout, REPLICA_SQL)
        .await
        .map(|row| (parse_lsn(&row.0), row.1, row.2))
    else {
        tracing::debug!(replica = %state.route, "read replica unreachable");
        state.set_available(false);
        return;
    };
    let Some(replay) = replay.filter(|_| in_recovery) else {
        // Promoted, or not replaying at all: not a replica of this primary any more.
        state.set_available(false);
        return;
    };
    let lag_bytes = primary_lsn.saturating_sub(replay);
    let within_time = match (policy.max_lag, lag_bytes) {
        (_, 0) | (None, _) => true,
        (Some(bound), _) => {
            let bound_ms = i64::try_from(bound.as_millis()).unwrap_or(i64::MAX);
            behind_ms.is_some_and(|ms| ms <= bound_ms)
        }
    };
    state.measured(lag_bytes, lag_bytes <= policy.max_lag_bytes && within_time);
}

/// The primary's current WAL position.
const PRIMARY_SQL: &str = "SELECT pg_catalog.pg_current_wal_lsn()::text, true, NULL::int8";

/// The replica's replayed position, whether it is in recovery, and how long ago (ms) the last
/// replayed transaction committed on the primary.
const REPLICA_SQL: &str = "SELECT COALESCE(pg_catalog.pg_last_wal_replay_lsn()::text, ''), \
     pg_catalog.pg_is_in_recovery(), \
     (extract(epoch FROM pg_catalog.now() - pg_catalog.pg_last_xact_replay_timestamp()) \
      * 1000)::int8";

/// Runs `sql` on a fresh connection with `options`, within `timeout`; `None` on any failure.
async fn probe(
    options: &PgConnectOptions,
    timeout: Duration,
    sql: &'static str,
) -> Option<(String, bool, Option<i64>)> {
    let work = async {
        let mut conn: PgConnection = options
            .clone()
            .application_name("tenant-manager-replica-monitor")
            .connect()
            .await
            .ok()?;
        let row = sqlx::query_as::<_, (String, bool, Option<i64>)>(sql)
            .fetch_one(&mut conn)
            .await
            .ok();
        let _ = conn.close().await;
        row
    };
    tokio::time::timeout(timeout, work).await.ok().flatten()
}

/// A `pg_lsn` as text (`16/B374D848`) to its 64-bit position.
fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    let high = u64::from_str_radix(high, 16).ok()?;
    let low = u64::from_str_radix(low, 16).ok()?;
    (high <= u64::from(u32::MAX) && low <= u64::from(u32::MAX)).then_some((high << 32) | low)
}

#[cfg(test)]
mod tests {
    use super::parse_lsn;

    #[test]
    fn lsns_parse_to_positions() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert_eq!(parse_lsn(""), None);
        assert_eq!(parse_lsn("1/G"), None);
        assert_eq!(parse_lsn("100000000/0"), None);
    }
}
