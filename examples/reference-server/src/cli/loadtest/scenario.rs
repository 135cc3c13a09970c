//! The API calls of the load test: register, log in, wait for active, tenant traffic.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::sessions::Session;
use super::stats::{Outcome, Recorder};
use crate::cli::exit::{CliError, Exit};
use crate::http_client::{Auth, HttpClient, HttpResponse};

fn outcome(status: StatusCode) -> Outcome {
    if status.is_success() {
        Outcome::Ok
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        Outcome::RateLimited
    } else {
        Outcome::Error
    }
}

/// Sends one request and records it under `op`; `None` when no answer came.
pub(crate) async fn timed(
    client: &HttpClient,
    recorder: &mut Recorder,
    op: &'static str,
    method: Method,
    path: &str,
    auth: Auth<'_>,
    body: Option<&Value>,
) -> Option<HttpResponse> {
    let started = Instant::now();
    let result = client.send(method, path, auth, body).await;
    let elapsed = started.elapsed();
    match result {
        Ok(response) => {
            recorder.record(op, elapsed, outcome(response.status));
            Some(response)
        }
        Err(_) => {
            recorder.record(op, elapsed, Outcome::Error);
            None
        }
    }
}

fn refused(what: &str, response: Option<&HttpResponse>) -> CliError {
    match response {
        None => CliError::new(
            Exit::Unavailable,
            format!("{what}: the server did not answer"),
        ),
        Some(r) => CliError::new(
            if r.status == StatusCode::TOO_MANY_REQUESTS {
                Exit::Unavailable
            } else {
                Exit::Failure
            },
            format!(
                "{what}: HTTP {} {}",
                r.status.as_u16(),
                String::from_utf8_lossy(&r.body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ),
        ),
    }
}

/// Registers organisation `index` of run `run_id`, then logs its admin in.
pub(crate) async fn register_and_login(
    client: &HttpClient,
    recorder: &mut Recorder,
    run_id: &str,
    index: u32,
) -> Result<Session, CliError> {
    let email = format!("loadtest-{run_id}-{index}@loadtest.example.com");
    let password = format!("Lt-{run_id}-{index}-Aa9!");
    let register = json!({
        "organization_name": format!("Loadtest {run_id} {index}"),
        "admin_email": email,
        "admin_password": password,
    });
    let response = timed(
        client,
        recorder,
        "register",
        Method::POST,
        "/api/auth/register-organization",
        Auth::None,
        Some(&register),
    )
    .await;
    let body: Value = match &response {
        Some(r) if r.status.is_success() => r.json().unwrap_or(Value::Null),
        other => return Err(refused("register-organization", other.as_ref())),
    };
    let tenant_id = body["tenant"]["id"].as_str().unwrap_or_default().to_owned();
    let login = json!({ "email": email, "password": password });
    let response = timed(
        client,
        recorder,
        "login",
        Method::POST,
        "/api/auth/login",
        Auth::None,
        Some(&login),
    )
    .await;
    let body: Value = match &response {
        Some(r) if r.status.is_success() => r.json().unwrap_or(Value::Null),
        other => return Err(refused("login", other.as_ref())),
    };
    let token = body["access_token"].as_str().unwrap_or_default().to_owned();
    if token.is_empty() || tenant_id.is_empty() {
        return Err(CliError::new(
            Exit::Failure,
            "register/login answered without tenant id or access_token",
        ));
    }
    Ok(Session { tenant_id, token })
}

/// Polls `GET /api/tenant` until the tenant is `active` (async provisioning) or `timeout`.
pub(crate) async fn wait_active(
    client: &HttpClient,
    session: &Session,
    timeout: Duration,
) -> Result<(), CliError> {
    let deadline = Instant::now() + timeout;
    loop {
        let response = client.get("/api/tenant", session.auth()).await;
        if let Ok(r) = &response
            && r.status.is_success()
            && r.json::<Value>().is_ok_and(|v| v["status"] == "active")
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CliError::new(
                Exit::Unavailable,
                format!("tenant {} not active after {timeout:?}", session.tenant_id),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One request of the traffic mix, chosen by `n`: 60 % list companies, 25 % create a company,
/// 10 % read the tenant, 5 % read a company created earlier (by the tenant that created it).
///
/// The request speaks for `sessions[current]`; `created` holds the companies this client
/// created, each with the index of its tenant's session.
pub(crate) async fn traffic_step(
    client: &HttpClient,
    recorder: &mut Recorder,
    sessions: &[Session],
    current: usize,
    created: &mut Vec<(usize, String)>,
    n: u64,
) {
    let Some(session) = sessions.get(current) else {
        return;
    };
    let auth = session.auth();
    match n % 20 {
        0..=11 => {
            timed(
                client,
                recorder,
                "list_companies",
                Method::GET,
                "/api/companies",
                auth,
                None,
            )
            .await;
        }
        12..=16 => {
            let body =
                json!({ "name": format!("Company {n}"), "domain": format!("c{n}.example.com") });
            let response = timed(
                client,
                recorder,
                "create_company",
                Method::POST,
                "/api/companies",
                auth,
                Some(&body),
            )
            .await;
            if let Some(id) = response
                .filter(|r| r.status.is_success())
                .and_then(|r| r.json::<Value>().ok())
                .and_then(|v| v["id"].as_str().map(str::to_owned))
                && created.len() < 1000
            {
                created.push((current, id));
            }
        }
        17..=18 => {
            timed(
                client,
                recorder,
                "get_tenant",
                Method::GET,
                "/api/tenant",
                auth,
                None,
            )
            .await;
        }
        _ => {
            let earlier = created
                .get(usize::try_from(n).unwrap_or(0) % created.len().max(1))
                .and_then(|(owner, id)| sessions.get(*owner).map(|s| (s, id)));
            let (path, auth) = match earlier {
                Some((owner, id)) => (format!("/api/companies/{id}"), owner.auth()),
                None => ("/api/companies".to_owned(), auth),
            };
            timed(
                client,
                recorder,
                "get_company",
                Method::GET,
                &path,
                auth,
                None,
            )
            .await;
        }
    }
}
