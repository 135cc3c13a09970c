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
use reference_server::http_client::{Auth, HttpClient};
use sqlx::{Connection, PgConnection};
use tokio::task::JoinHandle;

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
    /// The maximum since the test last set it to 0.
    window: Arc<AtomicI64>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    async fn start(env: &PgEnv) -> Self {
        let mut admin = env.admin("postgres").await;
        let roles = format!("{}_t_", env.tag);
        let (stop, peak, latest, window) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicI64::new(0)),
            Arc::new(AtomicI64::new(0)),
            Arc::new(AtomicI64::new(0)),
        );
        let task = {
            let (stop, peak, latest, window) = (
                Arc::clone(&stop),
                Arc::clone(&peak),
                Arc::clone(&latest),
                Arc::clone(&window),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let now = tenant_sessions(&mut admin, &roles).await;
                    peak.fetch_max(now, Ordering::SeqCst);
                    window.fetch_max(now, Ordering::SeqCst);
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
            window,
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

/// `rounds` company listings per task, 8 tasks per client, over every tenant, in the
/// background; ends with how many answered 200 (a 503 `pool_exhausted` is an allowed answer
/// under the budget; a task whose server is gone stops).
fn load(clients: Vec<HttpClient>, tokens: &[String], rounds: usize) -> JoinHandle<usize> {
    let tokens = tokens.to_vec();
    tokio::spawn(async move {
        let ok = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for (s, client) in clients.into_iter().enumerate() {
            for t in 0..8 {
                let (client, tokens, ok) = (client.clone(), tokens.clone(), Arc::clone(&ok));
                tasks.push(tokio::spawn(async move {
                    for round in 0..rounds {
                        let token = &tokens[(s * 5 + t * 3 + round) % tokens.len()];
                        let Ok(r) = client.get("/api/companies", Auth::Bearer(token)).await else {
                            return;
                        };
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
    })
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
        let (_, token, _) = env
            .register(&servers[i % 3], &format!("cb{i}"), "database")
            .await;
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

    // All three under load; while it runs, the instance holding the largest share dies
    // without a word.
    let clients = |servers: &[Server], skip: Option<usize>| -> Vec<HttpClient> {
        (0..servers.len())
            .filter(|i| Some(*i) != skip)
            .map(|i| servers[i].client.clone())
            .collect()
    };
    let first = load(clients(&servers, None), &tokens, 60);
    let mut shares = vec![0; 3];
    for _ in 0..200 {
        for (i, server) in servers.iter().enumerate() {
            shares[i] = share(server).await;
        }
        // (Read one instance after another, so their sum is no snapshot: Postgres' count is
        // the invariant.)
        if shares.iter().any(|s| *s > 0) && sampler.peak() >= BUDGET {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "shares before the kill: {shares:?}, peak so far {}",
        sampler.peak()
    );
    let victim = (0..3).max_by_key(|&i| shares[i]).unwrap();
    let dead_share = shares[victim];
    assert!(
        dead_share > 0,
        "the victim holds part of the budget: {shares:?}"
    );
    // Until the victim's lease expires, the survivors hold at most this many slots.
    let before = BUDGET - dead_share;
    servers[victim].kill();
    sampler.window.store(0, Ordering::SeqCst);

    // The survivors under load, for several lease times: their slots over time.
    let second = load(clients(&servers, Some(victim)), &tokens, 120);
    let mut timeline = Vec::new();
    for _ in 0..80 {
        let mut now = 0;
        for (i, server) in servers.iter().enumerate() {
            if i != victim {
                now += share(server).await;
            }
        }
        timeline.push((now, sampler.latest.load(Ordering::SeqCst)));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(first.await.expect("load") > 0);
    assert!(second.await.expect("load") > 0);
    // Tenant sessions of the survivors at once, after the kill (the victim's ended with it).
    let taken = sampler.window.load(Ordering::SeqCst);
    let peak = sampler.stop().await;
    println!(
        "victim's share {dead_share}; survivors' slots and sessions after the kill: \
         {timeline:?}; survivors' peak sessions {taken}; peak sessions {peak}"
    );
    assert!(
        peak <= BUDGET,
        "{peak} tenant sessions at once, budget {BUDGET}"
    );
    assert!(peak > 0);
    assert!(
        taken > before,
        "the survivors never took up the dead instance's share: {timeline:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_cluster_budget_the_local_budgets_exceed_it() {
    let env = PgEnv::new().await;
    let (servers, tokens) = deployment(&env, &[("POOL_ACQUIRE_TIMEOUT_MS", "5000")]).await;
    let sampler = Sampler::start(&env).await;
    let clients = servers.iter().map(|s| s.client.clone()).collect();
    assert!(load(clients, &tokens, 40).await.expect("load") > 0);
    let peak = sampler.stop().await;
    println!("peak tenant sessions with local budgets only: {peak}");
    assert!(peak > BUDGET, "{peak} tenant sessions at once");
}
