//! Connections of the run, sampled from `pg_stat_activity` on both servers every few
//! milliseconds: the server's tenant connections (`application_name = 'reference-server'` in
//! a database of the run, whose names carry its tag: other servers on the shared Postgres use
//! the same name; what `MAX_TOTAL_CONNECTIONS` bounds) and all client backends, per server
//! and summed.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

use crate::cli::exit::{CliError, Exit};

/// The tenant connections' `application_name` (see `services::postgres_adapters`).
const APPLICATION_NAME: &str = "reference-server";

/// Highest readings since the last [`Sampler::take`].
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Peaks {
    /// Tenant connections on each server (first, second).
    pub(crate) tenant_per_server: [i64; 2],
    /// Tenant connections on both servers together (readings a few ms apart).
    pub(crate) tenant_total: i64,
    /// Client backends of anyone on each server (the shared server has other users).
    pub(crate) backends_per_server: [i64; 2],
    /// Samples taken.
    pub(crate) samples: u64,
}

impl Peaks {
    fn merge(&mut self, other: &Peaks) {
        for i in 0..2 {
            self.tenant_per_server[i] = self.tenant_per_server[i].max(other.tenant_per_server[i]);
            self.backends_per_server[i] =
                self.backends_per_server[i].max(other.backends_per_server[i]);
        }
        self.tenant_total = self.tenant_total.max(other.tenant_total);
        self.samples += other.samples;
    }
}

/// The sampling task; stops on drop.
#[derive(Debug)]
pub(crate) struct Sampler {
    since_take: Arc<Mutex<Peaks>>,
    overall: Arc<Mutex<Peaks>>,
    stop: CancellationToken,
}

impl Sampler {
    /// Connects to both servers and starts sampling every `every`.
    ///
    /// # Errors
    /// [`CliError`] when a server cannot be reached.
    pub(crate) async fn start(
        urls: [&str; 2],
        tag: &str,
        every: Duration,
    ) -> Result<Self, CliError> {
        let mut conns = Vec::with_capacity(2);
        for url in urls {
            conns.push(PgConnection::connect(url).await.map_err(|e| {
                CliError::new(Exit::Unavailable, format!("pg_stat_activity sampler: {e}"))
            })?);
        }
        let since_take = Arc::new(Mutex::new(Peaks::default()));
        let overall = Arc::new(Mutex::new(Peaks::default()));
        let stop = CancellationToken::new();
        let (a, b, s) = (since_take.clone(), overall.clone(), stop.clone());
        let tag = tag.to_owned();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    () = s.cancelled() => break,
                    _ = interval.tick() => {}
                }
                let mut reading = Peaks {
                    samples: 1,
                    ..Peaks::default()
                };
                for (i, conn) in conns.iter_mut().enumerate() {
                    let row: Result<(i64, i64), _> = sqlx::query_as(
                        "SELECT count(*) FILTER (WHERE application_name = $1 \
                         AND strpos(datname, $2) > 0), count(*) \
                         FROM pg_stat_activity WHERE backend_type = 'client backend'",
                    )
                    .bind(APPLICATION_NAME)
                    .bind(&tag)
                    .fetch_one(conn)
                    .await;
                    if let Ok((tenant, all)) = row {
                        reading.tenant_per_server[i] = tenant;
                        reading.backends_per_server[i] = all;
                    }
                }
                reading.tenant_total = reading.tenant_per_server.iter().sum();
                for peaks in [&a, &b] {
                    peaks
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .merge(&reading);
                }
            }
            for conn in conns {
                let _ = conn.close().await;
            }
        });
        Ok(Self {
            since_take,
            overall,
            stop,
        })
    }

    /// The peaks since the last call (or the start), and starts a new period.
    pub(crate) fn take(&self) -> Peaks {
        std::mem::take(
            &mut *self
                .since_take
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The peaks since the start.
    pub(crate) fn overall(&self) -> Peaks {
        *self.overall.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
