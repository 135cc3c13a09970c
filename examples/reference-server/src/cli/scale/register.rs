//! The registration phase: `N` tenants created through the admin API
//! (`POST /api/admin/tenants`), placed by the server's policy over both Postgres servers, a
//! few at a time; each answer's owner token is kept for the load phases.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt as _};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::latency::{Latency, histogram};
use crate::cli::exit::{CliError, Exit};
use crate::http_client::{Auth, HttpClient};

/// A registered tenant and its owner's access token.
#[derive(Clone)]
pub(crate) struct Registered {
    /// Owner token (bearer).
    pub(crate) token: String,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered").finish_non_exhaustive()
    }
}

/// The isolation of tenant `index`: the first `database` ones have their own database, then
/// every `shared_every`-th is a row in a shared database (0: none), the others a schema.
pub(crate) fn isolation_of(index: u32, database: u32, shared_every: u32) -> &'static str {
    if index < database {
        "database"
    } else if shared_every > 0 && index.is_multiple_of(shared_every) {
        "shared"
    } else {
        "schema"
    }
}

/// One registration's owner token and latency (µs), or why it failed.
type Answer = Result<(String, u64), CliError>;

/// What the registration phase did.
#[derive(Debug)]
pub(crate) struct Registration {
    /// The tenants registered, in the order of their index.
    pub(crate) tenants: Vec<Registered>,
    /// Registrations refused or not answered (the run goes on with the others).
    pub(crate) failed: usize,
    /// The first few of their errors.
    pub(crate) errors: Vec<String>,
    /// Wall time of the whole phase.
    pub(crate) elapsed: Duration,
    /// Latency of each `POST /api/admin/tenants`.
    pub(crate) latency: Latency,
    /// Tenants of each isolation: database, schema, shared.
    pub(crate) by_isolation: [u32; 3],
}

/// Registers `count` tenants with slugs `<tag>_<index>`, `concurrency` at a time.
///
/// # Errors
/// [`CliError`] when not a single registration succeeded.
pub(crate) async fn register(
    client: &HttpClient,
    admin_key: &str,
    tag: &str,
    count: u32,
    concurrency: usize,
    isolation: impl Fn(u32) -> &'static str,
) -> Result<Registration, CliError> {
    let started = Instant::now();
    let mut by_isolation = [0u32; 3];
    let bodies: Vec<(u32, Value)> = (0..count)
        .map(|i| {
            let kind = isolation(i);
            let slot = match kind {
                "database" => 0,
                "schema" => 1,
                _ => 2,
            };
            by_isolation[slot] += 1;
            let body = json!({
                "organization_name": format!("Scale {tag} {i}"),
                "admin_email": format!("owner-{i}@{tag}.scale.example.com"),
                "admin_password": format!("Scale-{tag}-{i}-Aa9!"),
                "slug": format!("{tag}_{i}"),
                "isolation": kind,
            });
            (i, body)
        })
        .collect();
    let progress = super::progress::progress(u64::from(count), "registering");
    let mut results: Vec<(u32, Answer)> = stream::iter(bodies)
        .map(|(i, body)| {
            let client = client.clone();
            let progress = progress.clone();
            async move {
                let sent = Instant::now();
                let answer = client
                    .post("/api/admin/tenants", Auth::AdminKey(admin_key), &body)
                    .await;
                let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                progress.inc(1);
                let result = match answer {
                    Ok(r) if r.status.is_success() => r
                        .json::<Value>()
                        .ok()
                        .and_then(|v| v["access_token"].as_str().map(str::to_owned))
                        .map(|token| (token, micros))
                        .ok_or_else(|| {
                            CliError::new(Exit::Failure, format!("tenant {i}: no access_token"))
                        }),
                    Ok(r) => Err(CliError::new(
                        Exit::Failure,
                        format!(
                            "tenant {i}: HTTP {} {}",
                            r.status.as_u16(),
                            String::from_utf8_lossy(&r.body)
                                .chars()
                                .take(300)
                                .collect::<String>()
                        ),
                    )),
                    Err(e) => Err(CliError::new(Exit::Unavailable, format!("tenant {i}: {e}"))),
                };
                (i, result)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    progress.finish_and_clear();
    let elapsed = started.elapsed();
    results.sort_by_key(|(i, _)| *i);
    let mut latency: Histogram<u64> = histogram()?;
    let mut tenants = Vec::with_capacity(results.len());
    let mut failed = 0usize;
    let mut errors = Vec::new();
    for (_, result) in results {
        match result {
            Ok((token, micros)) => {
                latency.saturating_record(micros);
                tenants.push(Registered { token });
            }
            Err(e) => {
                failed += 1;
                if errors.len() < 3 {
                    errors.push(e.to_string());
                }
            }
        }
    }
    if tenants.is_empty() {
        return Err(CliError::new(
            Exit::Failure,
            format!("no tenant could be registered: {}", errors.join("; ")),
        ));
    }
    Ok(Registration {
        tenants,
        failed,
        errors,
        elapsed,
        latency: Latency::of(&latency),
        by_isolation,
    })
}

#[cfg(test)]
mod tests {
    use super::isolation_of;

    #[test]
    fn a_sample_gets_databases_then_every_nth_is_shared() {
        let kinds: Vec<&str> = (0..8).map(|i| isolation_of(i, 2, 3)).collect();
        assert_eq!(
            kinds,
            [
                "database", "database", "schema", "shared", "schema", "schema", "shared", "schema"
            ]
        );
        assert!((0..10).all(|i| isolation_of(i, 0, 0) == "schema"));
    }
}
