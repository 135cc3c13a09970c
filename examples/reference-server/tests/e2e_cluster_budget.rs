//! One connection budget per Postgres server for the whole cluster, proven with three
//! `reference-server` processes on one Postgres and the shared Redis: under load on many
//! tenants from all three, the tenant connections Postgres itself reports (`pg_stat_activity`,
//! by the tenants' login roles) never exceed `CLUSTER_CONNECTION_BUDGET`; an instance killed
//! with SIGKILL gives its share up when its lease expires, and the others take it. With the
//! cluster budget off, the instances' local budgets together exceed it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use common::Server;
use common::pg::PgEnv;
use http::StatusCode;
use reference_server::http_client::Auth;
use sqlx::{Connection, PgConnection};

/// The cluster budget of the `default` server: fewer than the three instances' local
/// budgets (`MAX_TOTAL_CONNECTIONS` 4 each) together.
const BUDGET: i64 = 5;
const TENANTS: usize = 6;

/// Tenant connections on the server now: sessions of this deployment's tenant login roles.
async fn tenant_sessions(admin: &mut PgConnection, roles: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_catalog.pg_stat_activity \
         WHERE starts_with(usename, $1) AND backend_type = 'client backend'",
    )
    .bind(roles)
    .fetch_one(admin)
    .await
    .expect("pg_stat_activity")
}

/// Polls `pg_stat_activity` until stopped; keeps the maximum and the latest count.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicI64>,
    latest: Arc<AtomicI64>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    async fn start(env: &PgEnv) -> Self {
        let mut admin = env.admin("postgres").await;
        let roles = format!("{}_t_", env.tag);
        let (stop, peak, latest) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicI64::new(0)),
            Arc::new(AtomicI64::new(0)),
        );
        let task = {
            let (stop, peak, latest) = (Arc::clone(&stop), Arc::clone(&peak), Arc::clone(&latest));
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let now = tenant_sessions(&mut admin, &roles).await;
                    peak.fetch_max(now, Ordering::SeqCst);
                    latest.store(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let _ = admin.close().await;
            })
        };
        Self {
            stop,
            peak,
            latest,
            task,
        }
    }

    fn peak(&self) -> i64 {
        self.peak.load(Ordering::SeqCst)
    }

    async fn stop(self) -> i64 {
        self.stop.store(true, Ordering::SeqCst);
        let peak = Arc::clone(&self.peak);
        self.task.await.expect("sampler");
        peak.load(Ordering::SeqCst)
    }
}

/// `rounds` company listings per task, 8 tasks per server, over every tenant; returns how
/// many answered 200 (a 503 `pool_exhausted` is an allowed answer under the budget).
async fn load(servers: &[&Server], tokens: &[String], rounds: usize) -> usize {
    let ok = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (s, server) in servers.iter().enumerate() {
        for t in 0..8 {
            let client = server.client.clone();
            let tokens = tokens.to_vec();
            let ok = Arc::clone(&ok);
            tasks.push(tokio::spawn(async move {
                for round in 0..rounds {
                    let token = &tokens[(s * 5 + t * 3 + round) % tokens.len()];
                    let r = client
                        .get("/api/companies", Auth::Bearer(token))
                        .await
                        .expect("GET");
                    match r.status {
                        StatusCode::OK => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        StatusCode::SERVICE_UNAVAILABLE => {}
                        other => panic!("unexpected {other}"),
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("load task");
    }
    ok.load(Ordering::SeqCst)
}

/// This instance's slots of the `default` server's budget (its `/metrics`).
async fn share(server: &Server) -> i64 {
    let metrics = server.get("/metrics", Auth::None).await;
    let text = common::text(&metrics);
    text.lines()
        .find(|l| l.starts_with("tenant_pool_cluster_leases{") && l.contains("server=\"default\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as i64)
}

async fn deployment(env: &PgEnv, overrides: &[(&str, &str)]) -> (Vec<Server>, Vec<String>) {
    let servers: Vec<Server> = (0..3).map(|_| env.server(overrides)).collect();
    let mut tokens = Vec::new();
    for i in 0..TENANTS {
        let (_, token, _) = env.register(&servers[i % 3], &format!("cb{i}"), "database").await;
        tokens.push(token);
    }
    (servers, tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_share_one_budget_and_a_dead_ones_share_goes_to_the_others() {
    let env = PgEnv::new().await;
    let budget = BUDGET.to_string();
    let (mut servers, tokens) = deployment(
        &env,
        &[
            ("CLUSTER_CONNECTION_BUDGET", budget.as_str()),
            ("CLUSTER_LEASE_TTL_MS", "1500"),
            ("POOL_ACQUIRE_TIMEOUT_MS", "5000"),
        ],
    )
    .await;
    let sampler = Sampler::start(&env).await;

    // All three under load.
    let all: Vec<&Server> = servers.iter().collect();
    assert!(load(&all, &tokens, 40).await > 0);
    let mut shares = Vec::new();
    for server in &servers {
        shares.push(share(server).await);
    }
    println!("shares before the kill: {shares:?}, peak so far {}", sampler.peak());
    assert!(shares.iter().sum::<i64>() <= BUDGET, "{shares:?}");
    // The instance holding the largest share dies without a word.
    let victim = (0..3).max_by_key(|&i| shares[i]).unwrap();
    let dead_share = shares[victim];
    assert!(dead_share > 0, "the victim held part of the budget: {shares:?}");
    servers[victim].kill();
    let survivors: Vec<&Server> = servers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, s)| s)
        .collect();
    let before: i64 = (0..3).filter(|&i| i != victim).map(|i| shares[i]).sum();

    // The survivors under load, for several lease times: the count over time.
    let mut taken = before;
    let mut timeline = Vec::new();
    for _ in 0..6 {
        assert!(load(&survivors, &tokens, 20).await > 0);
        let mut now = 0;
        for server in &survivors {
            now += share(server).await;
        }
        timeline.push((now, sampler.latest.load(Ordering::SeqCst)));
        taken = taken.max(now);
    }
    let peak = sampler.stop().await;
    println!(
        "victim's share {dead_share}, survivors' before {before}; survivors' slots and sessions \
         after the kill: {timeline:?}; peak sessions {peak}"
    );
    assert!(peak <= BUDGET, "{peak} tenant sessions at once, budget {BUDGET}");
    assert!(peak > 0);
    assert!(
        taken > before,
        "the survivors never took up the dead instance's share: {timeline:?}"
    );
    assert!(taken <= BUDGET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_cluster_budget_the_local_budgets_exceed_it() {
    let env = PgEnv::new().await;
    let (servers, tokens) = deployment(&env, &[("POOL_ACQUIRE_TIMEOUT_MS", "5000")]).await;
    let sampler = Sampler::start(&env).await;
    let all: Vec<&Server> = servers.iter().collect();
    assert!(load(&all, &tokens, 40).await > 0);
    let peak = sampler.stop().await;
    println!("peak tenant sessions with local budgets only: {peak}");
    assert!(peak > BUDGET, "{peak} tenant sessions at once");
}
