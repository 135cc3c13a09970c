//! Property tests of the Space-Saving sketch and of `TopTenants` against exact counts: every
//! key with more than N/K of the weight is reported, and every reported count is an upper
//! bound within its error of the truth.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tenant_manager_core::topk::{RankBy, SpaceSaving, TopTenants, TopTenantsConfig};
use tenant_manager_core::{TenantId, TenantSlug};

/// Streams skewed toward small keys (a few heavy hitters and a long tail).
fn stream() -> impl Strategy<Value = Vec<u16>> {
    prop::collection::vec(
        prop_oneof![
            3 => 0_u16..4,
            2 => 0_u16..40,
            2 => 0_u16..2000,
        ],
        0..3000,
    )
}

fn exact(stream: &[u16]) -> HashMap<u16, u64> {
    let mut counts = HashMap::new();
    for key in stream {
        *counts.entry(*key).or_insert(0) += 1;
    }
    counts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_sketch_keeps_heavy_hitters_and_bounds_its_counts(
        stream in stream(),
        capacity in 1_usize..24,
    ) {
        let mut sketch = SpaceSaving::<u16, u64>::new(capacity);
        for key in &stream {
            sketch.observe(key, 1, || 0, |seen| *seen += 1);
        }
        let truth = exact(&stream);
        let n = stream.len() as u64;
        prop_assert!(sketch.len() <= capacity);
        let total: u64 = sketch.counters().map(|c| c.count).sum();
        prop_assert_eq!(total, n, "the counts add up to N");
        for counter in sketch.counters() {
            let true_count = truth[&counter.key];
            prop_assert!(counter.count - counter.error <= true_count, "{counter:?} vs {true_count}");
            prop_assert!(true_count <= counter.count, "{counter:?} vs {true_count}");
            // The payload counts only what was seen since the key entered: at most the truth.
            prop_assert!(counter.payload <= true_count);
        }
        for (key, count) in &truth {
            if *count * capacity as u64 > n {
                prop_assert!(sketch.get(key).is_some(), "{key} ({count} of {n}) is missing");
            }
        }
    }

    #[test]
    fn top_tenants_reports_every_tenant_above_n_over_k(
        stream in stream(),
        k in 1_usize..12,
        shards in 1_usize..5,
    ) {
        let config = TopTenantsConfig::default()
            .with_k(k)
            .with_shards(shards)
            .with_half_life(Duration::from_secs(3600 * 24 * 365));
        let top = TopTenants::new(config).unwrap();
        let ids: HashMap<u16, TenantId> =
            exact(&stream).keys().map(|key| (*key, TenantId::new())).collect();
        let slug = TenantSlug::new("acme").unwrap();
        let now = Instant::now();
        for (at, key) in stream.iter().enumerate() {
            let error = at % 3 == 0;
            top.record(ids[key], &slug, error, Duration::from_millis(2), now);
        }
        let truth: HashMap<TenantId, u64> =
            exact(&stream).into_iter().map(|(key, count)| (ids[&key], count)).collect();
        let n = stream.len() as u64;
        let reported = top.top(k, RankBy::Requests, now).unwrap();
        prop_assert!(reported.len() <= k);
        for entry in &reported {
            let true_count = truth[&entry.tenant];
            prop_assert!(entry.requests - entry.overestimate <= true_count);
            prop_assert!(true_count <= entry.requests);
            prop_assert!(entry.errors <= true_count);
        }
        for (tenant, count) in &truth {
            if *count * k as u64 > n {
                prop_assert!(
                    reported.iter().any(|entry| entry.tenant == *tenant),
                    "{tenant} ({count} of {n}) is missing from {reported:?}"
                );
            }
        }
        // Ranked by requests, most first.
        prop_assert!(reported.windows(2).all(|w| w[0].requests >= w[1].requests));
    }
}

#[test]
fn old_bursts_fade_one_half_life_at_a_time() {
    let half_life = Duration::from_secs(60);
    let config = TopTenantsConfig::default()
        .with_k(2)
        .with_shards(1)
        .with_half_life(half_life);
    let top = TopTenants::new(config).unwrap();
    let start = Instant::now();
    let slug = TenantSlug::new("acme").unwrap();
    let (burst, steady) = (TenantId::new(), TenantId::new());
    for _ in 0..1024 {
        top.record(burst, &slug, true, Duration::from_millis(1), start);
    }
    let later = start + half_life * 3;
    for _ in 0..200 {
        top.record(steady, &slug, false, Duration::from_millis(1), later);
    }
    let ranked = top.top(2, RankBy::Requests, later).unwrap();
    assert_eq!(ranked[0].tenant, steady, "{ranked:?}");
    assert_eq!(
        (ranked[1].requests, ranked[1].errors),
        (128, 128),
        "1024 halved 3 times"
    );
    // Eight half-lives on, both have faded to nothing and are dropped; a new request counts.
    let much_later = later + half_life * 8;
    top.record(steady, &slug, false, Duration::from_millis(1), much_later);
    let ranked = top.top(2, RankBy::Requests, much_later).unwrap();
    assert_eq!(ranked.len(), 1, "{ranked:?}");
    assert_eq!((ranked[0].tenant, ranked[0].requests), (steady, 1));
}

#[test]
fn ranking_by_errors_and_latency_and_k_limits() {
    let top = TopTenants::new(TopTenantsConfig::default().with_k(3)).unwrap();
    let now = Instant::now();
    let slug = TenantSlug::new("acme").unwrap();
    let (busy, failing, slow) = (TenantId::new(), TenantId::new(), TenantId::new());
    for _ in 0..30 {
        top.record(busy, &slug, false, Duration::from_millis(1), now);
    }
    for _ in 0..20 {
        top.record(failing, &slug, true, Duration::from_millis(1), now);
    }
    for _ in 0..10 {
        top.record(slow, &slug, false, Duration::from_secs(1), now);
    }
    let first = |by| top.top(1, by, now).unwrap()[0].tenant;
    assert_eq!(first(RankBy::Requests), busy);
    assert_eq!(first(RankBy::Errors), failing);
    assert_eq!(first(RankBy::Latency), slow);
    for k in [0, 4] {
        let error = top.top(k, RankBy::Requests, now).unwrap_err();
        assert_eq!(error.field(), Some("k"), "{error}");
    }
    assert_eq!("bogus".parse::<RankBy>().unwrap_err().field(), Some("by"));
    assert!(TopTenants::new(TopTenantsConfig::default().with_k(0)).is_err());
}
