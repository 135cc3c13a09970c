//! The load phases of a scale run: a fixed number of clients in a closed loop, each request
//! taking the next tenant of the set in turn (round-robin over the set), latencies in an HDR
//! histogram (microseconds, 3 significant digits).
//!
//! The mix, the same in every phase: 70 % `GET /api/companies` (a page of the tenant's
//! companies), 15 % `POST /api/companies`, 15 % `GET /api/tenant`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use serde::Serialize;
use serde_json::json;

use super::register::Registered;
use crate::cli::exit::CliError;
use crate::http_client::{Auth, HttpClient};

pub(crate) use super::latency::{Latency, histogram};

/// One load phase's result.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Phase {
    /// Tenants the requests went round.
    pub(crate) tenants: usize,
    /// Concurrent clients.
    pub(crate) concurrency: usize,
    /// Length of the phase, seconds.
    pub(crate) seconds: f64,
    /// Requests answered 2xx.
    pub(crate) ok: u64,
    /// Requests answered otherwise or not at all.
    pub(crate) errors: u64,
    /// Requests per second.
    pub(crate) rate_rps: f64,
    /// Latency of every request.
    pub(crate) latency: Latency,
    /// Distinct tenants that were sent at least one request (all of them once the set was
    /// gone round once).
    pub(crate) tenants_reached: usize,
    /// 1-minute load average at the end of the phase.
    pub(crate) load_average: f64,
}

/// Drives `concurrency` clients over `tenants` for at least `duration`, and on until every
/// tenant of the set had a request (so that all are in the server's cache at the end).
///
/// # Errors
/// [`CliError`] if no histogram could be made.
pub(crate) async fn drive(
    client: &HttpClient,
    tenants: Arc<Vec<Registered>>,
    concurrency: usize,
    duration: Duration,
) -> Result<Phase, CliError> {
    let empty = histogram()?;
    let next = Arc::new(AtomicU64::new(0));
    let set = u64::try_from(tenants.len()).unwrap_or(u64::MAX).max(1);
    let started = Instant::now();
    let deadline = started + duration;
    let workers = (0..concurrency.max(1)).map(|_| {
        let client = client.clone();
        let tenants = tenants.clone();
        let next = next.clone();
        let mut h = empty.clone();
        tokio::spawn(async move {
            let (mut ok, mut errors) = (0u64, 0u64);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if Instant::now() >= deadline && n >= set {
                    break;
                }
                let index = usize::try_from(n % set).unwrap_or(0);
                let Some(tenant) = tenants.get(index) else {
                    break;
                };
                let sent = Instant::now();
                let success = request(&client, &tenant.token, n).await;
                h.saturating_record(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                if success {
                    ok += 1;
                } else {
                    errors += 1;
                }
            }
            (h, ok, errors)
        })
    });
    let mut all = empty.clone();
    let (mut ok, mut errors) = (0u64, 0u64);
    for (h, o, e) in futures::future::join_all(workers)
        .await
        .into_iter()
        .flatten()
    {
        let _ = all.add(&h);
        ok += o;
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    let sent = next.load(Ordering::Relaxed);
    Ok(Phase {
        tenants: tenants.len(),
        concurrency,
        seconds,
        ok,
        errors,
        rate_rps: (ok + errors) as f64 / seconds.max(1e-9),
        latency: Latency::of(&all),
        tenants_reached: usize::try_from(sent.min(set)).unwrap_or(0),
        load_average: super::server::load_average(),
    })
}

/// Request `n` of the mix for the tenant of `token`; whether it was answered 2xx.
async fn request(client: &HttpClient, token: &str, n: u64) -> bool {
    let auth = Auth::Bearer(token);
    let answer = match n % 20 {
        0..=13 => client.get("/api/companies", auth).await,
        14..=16 => {
            let body =
                json!({ "name": format!("Company {n}"), "domain": format!("c{n}.example.com") });
            client
                .send(Method::POST, "/api/companies", auth, Some(&body))
                .await
        }
        _ => client.get("/api/tenant", auth).await,
    };
    answer.is_ok_and(|r| r.status.is_success())
}
