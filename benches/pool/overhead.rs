//! Checkout + return alone, with the fake manager (no database): the engine's own cost and
//! how it changes with the number of tenant pools.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion};
use tenant_manager::Isolation;
use tenant_manager::core::pool::fake::{FakeConnector, FakeManager, active_tenant};
use tenant_manager::core::pool::{PoolConfig, TenantPools};
use tenant_manager::{Tenant, TenantId};
use tokio::runtime::Runtime;

use crate::interleave::{Ratio, Runner, medians};
use crate::raw::warm_raw_pool;

const SIZES: [usize; 3] = [1, 1_000, 10_000];

/// Which pool each checkout takes.
#[derive(Clone, Copy)]
enum Pick {
    /// Always the first.
    First,
    /// All in turn, in the order they were created (and allocated: a hardware prefetcher can
    /// follow the raw bb8 pools, which sit in a `Vec` in that order).
    RoundRobin,
    /// All in turn, in a fixed random order: what requests of many tenants look like.
    Shuffled,
}

/// A fixed random permutation of `0..n` (xorshift64, Fisher-Yates).
fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = usize::try_from(state % (i as u64 + 1)).expect("fits");
        order.swap(i, j);
    }
    order
}

/// `n` tenant pools, each with one warm connection.
struct Warm {
    tenants: Vec<Tenant>,
    pools: TenantPools<FakeConnector>,
    next: AtomicUsize,
    order: Vec<usize>,
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
            order: shuffled(tenants.len()),
            tenants,
            pools,
            next: AtomicUsize::new(0),
        }
    }

    /// One checkout and return.
    async fn checkout(&self, pick: Pick) {
        let turn = || self.next.fetch_add(1, Ordering::Relaxed) % self.tenants.len();
        let at = match pick {
            Pick::First => 0,
            Pick::RoundRobin => turn(),
            Pick::Shuffled => self.order[turn()],
        };
        let conn = self
            .pools
            .acquire(&self.tenants[at])
            .await
            .expect("checkout");
        black_box(conn.id());
    }

    fn runner<'a>(&'a self, runtime: &'a Runtime, pick: Pick) -> Runner<'a> {
        Box::new(move |ops| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..ops {
                    self.checkout(pick).await;
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
    order: Vec<usize>,
}

impl RawBb8 {
    fn new(runtime: &Runtime, n: usize) -> Self {
        let pools = runtime.block_on(async {
            let mut pools = Vec::with_capacity(n);
            for i in 0..n {
                pools.push(warm_raw_pool(&format!("raw{i}")).await);
            }
            pools
        });
        Self {
            order: shuffled(pools.len()),
            pools,
            next: AtomicUsize::new(0),
        }
    }

    /// A checkout of the first `n` pools in turn (`Pick::Shuffled`: all pools, shuffled).
    async fn checkout(&self, n: usize, pick: Pick) {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let at = match pick {
            Pick::Shuffled => self.order[turn],
            Pick::First | Pick::RoundRobin => turn,
        };
        let pool = &self.pools[at];
        black_box(pool.get().await.expect("checkout").id());
    }
}

/// Raw bb8 pools in a `HashMap` by tenant id, checked out for the same tenants as [`Warm`]:
/// what a hand-written registry of per-tenant bb8 pools does.
struct MapBb8<'a> {
    tenants: &'a [Tenant],
    pools: HashMap<TenantId, bb8::Pool<FakeManager>>,
    next: AtomicUsize,
    order: &'a [usize],
}

impl<'a> MapBb8<'a> {
    fn new(runtime: &Runtime, warm: &'a Warm) -> Self {
        let pools = runtime.block_on(async {
            let mut pools = HashMap::with_capacity(warm.tenants.len());
            for tenant in &warm.tenants {
                pools.insert(tenant.id, warm_raw_pool(&tenant.id.to_string()).await);
            }
            pools
        });
        Self {
            tenants: &warm.tenants,
            pools,
            next: AtomicUsize::new(0),
            order: &warm.order,
        }
    }

    fn runner<'b>(&'b self, runtime: &'b Runtime) -> Runner<'b> {
        Box::new(move |ops| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..ops {
                    let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.tenants.len();
                    let tenant = &self.tenants[self.order[turn]];
                    black_box(self.pools[&tenant.id].get().await.expect("checkout").id());
                }
                started.elapsed()
            })
        })
    }
}

pub(crate) fn bench(criterion: &mut Criterion, runtime: &Runtime) -> Vec<Ratio> {
    let raw = RawBb8::new(runtime, SIZES[SIZES.len() - 1]);
    let warm: Vec<Warm> = SIZES.iter().map(|&n| Warm::new(runtime, n)).collect();
    let mut group = criterion.benchmark_group("checkout_overhead");
    for &n in &SIZES {
        group.bench_with_input(BenchmarkId::new("raw_bb8/round_robin", n), &n, |b, &n| {
            b.to_async(runtime)
                .iter(|| raw.checkout(n, Pick::RoundRobin));
        });
    }
    for (pools, &n) in warm.iter().zip(&SIZES) {
        group.bench_with_input(
            BenchmarkId::new("tenant_pools/round_robin", n),
            &n,
            |b, _| {
                b.to_async(runtime)
                    .iter(|| pools.checkout(Pick::RoundRobin));
            },
        );
        if n > 1 {
            group.bench_with_input(
                BenchmarkId::new("tenant_pools/one_tenant", n),
                &n,
                |b, _| {
                    b.to_async(runtime).iter(|| pools.checkout(Pick::First));
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
    let map = MapBb8::new(runtime, many);
    let raw_runner = |n: usize, pick: Pick| -> Runner<'_> {
        let raw = &raw;
        Box::new(move |ops| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..ops {
                    raw.checkout(n, pick).await;
                }
                started.elapsed()
            })
        })
    };
    let times = medians(
        30,
        20_000,
        &mut [
            ("1 pool", one.runner(runtime, Pick::RoundRobin)),
            ("one tenant of 10k", many.runner(runtime, Pick::First)),
            ("round-robin 10k", many.runner(runtime, Pick::RoundRobin)),
            ("raw bb8 1", raw_runner(1, Pick::RoundRobin)),
            (
                "raw bb8 round-robin 10k",
                raw_runner(10_000, Pick::RoundRobin),
            ),
            ("shuffled 10k", many.runner(runtime, Pick::Shuffled)),
            ("raw bb8 shuffled 10k", raw_runner(10_000, Pick::Shuffled)),
            ("raw bb8 in a HashMap, shuffled 10k", map.runner(runtime)),
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
        Ratio {
            what: "checkout, raw bb8, round-robin over 10,000 pools vs 1 pool (fake)".into(),
            peer: times[4],
            baseline: times[3],
            target: None,
        },
        Ratio {
            what: "checkout, 10,000 pools in random order vs 1 pool (fake)".into(),
            peer: times[5],
            baseline: times[0],
            target: None,
        },
        Ratio {
            what: "checkout, raw bb8, 10,000 pools in random order vs 1 pool (fake)".into(),
            peer: times[6],
            baseline: times[3],
            target: None,
        },
        Ratio {
            what: "checkout, TenantPools vs raw bb8, 10,000 pools in random order (fake)".into(),
            peer: times[5],
            baseline: times[6],
            target: None,
        },
        Ratio {
            what: "checkout, TenantPools vs raw bb8 in a HashMap by tenant id, 10,000 pools in random order (fake)".into(),
            peer: times[5],
            baseline: times[7],
            target: None,
        },
    ]
}
