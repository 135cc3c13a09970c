//! Checkout + return alone, with the fake manager (no database): the engine's own cost and
//! how it changes with the number of tenant pools.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use tenant_manager::Isolation;
use tenant_manager::Tenant;
use tenant_manager::core::pool::fake::{FakeConnector, FakeManager, FakeProbe, active_tenant};
use tenant_manager::core::pool::{PoolConfig, TenantPools};
use tokio::runtime::Runtime;

use crate::interleave::{Ratio, Runner, medians};

const SIZES: [usize; 3] = [1, 1_000, 10_000];

/// `n` tenant pools, each with one warm connection.
struct Warm {
    tenants: Vec<Tenant>,
    pools: TenantPools<FakeConnector>,
    next: AtomicUsize,
}

impl Warm {
    fn new(runtime: &Runtime, n: usize) -> Self {
        let tenants: Vec<Tenant> = (0..n)
            .map(|i| active_tenant(&format!("overhead{i}"), Isolation::Database).expect("tenant"))
            .collect();
        let max_total = u32::try_from(n).expect("fits");
        let pools = runtime.block_on(async {
            let pools = TenantPools::new(
                FakeConnector::new(),
                PoolConfig::default()
                    .with_max_total(max_total)
                    .with_max_per_tenant(1),
            )
            .expect("pools");
            for tenant in &tenants {
                drop(pools.acquire(tenant).await.expect("warm"));
            }
            pools
        });
        Self {
            tenants,
            pools,
            next: AtomicUsize::new(0),
        }
    }

    /// One checkout and return: round-robin over all pools, or always the first tenant.
    async fn checkout(&self, round_robin: bool) {
        let at = if round_robin {
            self.next.fetch_add(1, Ordering::Relaxed) % self.tenants.len()
        } else {
            0
        };
        let conn = self
            .pools
            .acquire(&self.tenants[at])
            .await
            .expect("checkout");
        black_box(conn.id());
    }

    fn runner<'a>(&'a self, runtime: &'a Runtime, round_robin: bool) -> Runner<'a> {
        Box::new(move |ops| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..ops {
                    self.checkout(round_robin).await;
                }
                started.elapsed()
            })
        })
    }
}

/// `n` raw bb8 pools of the fake manager, one connection each.
struct RawBb8 {
    pools: Vec<bb8::Pool<FakeManager>>,
    next: AtomicUsize,
}

impl RawBb8 {
    fn new(runtime: &Runtime, n: usize) -> Self {
        let pools = runtime.block_on(async {
            let mut pools = Vec::with_capacity(n);
            for i in 0..n {
                let manager =
                    FakeManager::new(&format!("raw{i}"), Duration::ZERO, FakeProbe::default());
                let pool = bb8::Pool::builder()
                    .max_size(1)
                    .build(manager)
                    .await
                    .expect("bb8");
                drop(pool.get().await.expect("warm"));
                pools.push(pool);
            }
            pools
        });
        Self {
            pools,
            next: AtomicUsize::new(0),
        }
    }

    async fn checkout(&self, n: usize) {
        let pool = &self.pools[self.next.fetch_add(1, Ordering::Relaxed) % n];
        black_box(pool.get().await.expect("checkout").id());
    }
}

pub(crate) fn bench(criterion: &mut Criterion, runtime: &Runtime) -> Vec<Ratio> {
    let raw = RawBb8::new(runtime, SIZES[SIZES.len() - 1]);
    let warm: Vec<Warm> = SIZES.iter().map(|&n| Warm::new(runtime, n)).collect();
    let mut group = criterion.benchmark_group("checkout_overhead");
    for &n in &SIZES {
        group.bench_with_input(BenchmarkId::new("raw_bb8/round_robin", n), &n, |b, &n| {
            b.to_async(runtime).iter(|| raw.checkout(n));
        });
    }
    for (pools, &n) in warm.iter().zip(&SIZES) {
        group.bench_with_input(
            BenchmarkId::new("tenant_pools/round_robin", n),
            &n,
            |b, _| {
                b.to_async(runtime).iter(|| pools.checkout(true));
            },
        );
        if n > 1 {
            group.bench_with_input(
                BenchmarkId::new("tenant_pools/one_tenant", n),
                &n,
                |b, _| {
                    b.to_async(runtime).iter(|| pools.checkout(false));
                },
            );
        }
    }
    group.finish();
    for pools in &warm {
        let stats = pools.pools.stats();
        assert_eq!(
            stats.connections_opened,
            pools.tenants.len() as u64,
            "all checkouts warm"
        );
    }

    let (one, many) = (&warm[0], &warm[SIZES.len() - 1]);
    let raw_runner = |n: usize| -> Runner<'_> {
        let raw = &raw;
        Box::new(move |ops| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..ops {
                    raw.checkout(n).await;
                }
                started.elapsed()
            })
        })
    };
    let times = medians(
        30,
        20_000,
        &mut [
            ("1 pool", one.runner(runtime, true)),
            ("one tenant of 10k", many.runner(runtime, false)),
            ("round-robin 10k", many.runner(runtime, true)),
            ("raw bb8 1", raw_runner(1)),
            ("raw bb8 round-robin 10k", raw_runner(10_000)),
        ],
    );
    vec![
        Ratio {
            what: "checkout, one tenant among 10,000 pools vs 1 pool (fake)".into(),
            peer: times[1],
            baseline: times[0],
            target: Some(1.1),
        },
        Ratio {
            what: "checkout, round-robin over 10,000 pools vs 1 pool (fake)".into(),
            peer: times[2],
            baseline: times[0],
            target: None,
        },
        Ratio {
            what: "checkout, TenantPools vs raw bb8, 1 pool (fake)".into(),
            peer: times[0],
            baseline: times[3],
            target: None,
        },
        Ratio {
            what: "checkout, TenantPools vs raw bb8, round-robin over 10,000 pools (fake)".into(),
            peer: times[2],
            baseline: times[4],
            target: None,
        },
    ]
}
