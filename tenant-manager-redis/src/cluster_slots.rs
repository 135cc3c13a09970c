//! Redis Cluster runs a script (or a transaction) only when every key it touches hashes to one
//! slot. This checks, for every script and multi-key command of the crate, the keys it is
//! passed and the keys it computes from prefixes it is passed (the queue's job hashes and
//! lanes, the cache's records behind an alias, the schedules' tenant hashes), as the callers
//! build them.

use redis::cluster_routing::Slot;
use tenant_manager_core::{RateKey, TenantId, TenantSlug};

use crate::keys::Keys;
use crate::schedules::schedule_keys;

/// Every script (or transaction) of the crate, with the keys it touches.
fn scripts(prefix: &str) -> Vec<(&'static str, Vec<String>)> {
    let keys = Keys::new(prefix);
    let tenant = TenantId::new();
    let slug = TenantSlug::new("acme").map_or_else(|_| String::new(), |s| keys.tenant_slug(&s));
    let rate = keys.rate(&RateKey::tenant(tenant));
    let usage = keys.usage(tenant);
    let q = keys.queue("jobs");
    let job = format!("{}0190e3a0-0000-7000-8000-000000000001", q.job_prefix);
    // Lanes are computed in the scripts: one per tenant, and '' for jobs of no tenant.
    let lane = format!("{}{tenant}", q.lane_prefix);
    let no_tenant_lane = q.lane_prefix.clone();
    let events = keys.events("tenant-events");
    let dead_events = format!("{}webhooks", events.dead_prefix);
    let (due, tenant_schedules) = schedule_keys(prefix, "host-jobs");
    let cache = |k: String| {
        vec![
            k,
            keys.tenant_epoch(),
            keys.tenant(tenant),
            format!("{}{tenant}", keys.tenant_prefix()),
        ]
    };
    vec![
        ("gcra", vec![rate.clone()]),
        ("gcra_lease", vec![rate]),
        ("usage", vec![usage]),
        ("lock_release / lock_extend", vec![keys.lock("provision:x")]),
        ("cache_lookup by id", cache(keys.tenant(tenant))),
        ("cache_lookup by slug", cache(slug.clone())),
        (
            "cache_lookup by domain",
            cache(keys.tenant_domain("acme.example")),
        ),
        (
            "cache_put",
            vec![
                keys.tenant_epoch(),
                keys.tenant(tenant),
                slug,
                keys.tenant_domain("acme.example"),
            ],
        ),
        (
            "cache_invalidate",
            vec![keys.tenant(tenant), keys.tenant_epoch()],
        ),
        (
            "queue_enqueue",
            vec![
                job.clone(),
                q.delayed.clone(),
                q.turns.clone(),
                q.ready_count.clone(),
                q.signal.clone(),
                lane.clone(),
                no_tenant_lane.clone(),
            ],
        ),
        (
            "queue_claim",
            vec![
                q.stream.clone(),
                q.delayed.clone(),
                q.dead.clone(),
                q.reclaim_cursor.clone(),
                q.turns.clone(),
                q.ready_count.clone(),
                q.signal.clone(),
                job.clone(),
                lane.clone(),
                no_tenant_lane,
            ],
        ),
        (
            "queue_ack / queue_extend",
            vec![q.stream.clone(), job.clone()],
        ),
        (
            "queue_nack",
            vec![
                q.stream.clone(),
                job.clone(),
                q.delayed.clone(),
                q.dead.clone(),
                q.turns.clone(),
                q.ready_count.clone(),
                q.signal.clone(),
                lane.clone(),
            ],
        ),
        (
            "queue_release",
            vec![
                q.stream.clone(),
                job,
                q.delayed.clone(),
                q.turns.clone(),
                q.ready_count.clone(),
                q.signal.clone(),
                lane,
            ],
        ),
        (
            "queue_stats",
            vec![q.stream.clone(), q.delayed, q.dead, q.ready_count],
        ),
        ("queue_prune", vec![q.stream]),
        (
            "event group dead letter (MULTI: XADD, XACK)",
            vec![dead_events, events.stream],
        ),
        (
            "schedule_put / schedule_remove / schedule_claim",
            vec![due, format!("{tenant_schedules}{tenant}")],
        ),
    ]
}

/// Whether every key hashes to the slot of the first.
fn one_slot(keys: &[String]) -> bool {
    keys.first().is_none_or(|first| {
        let slot = Slot::for_key(first);
        keys.iter().all(|k| Slot::for_key(k) == slot)
    })
}

#[test]
fn every_script_touches_one_slot() {
    for prefix in ["tm:", "saas:eu-1:", ""] {
        for (script, keys) in scripts(prefix) {
            assert!(!keys.iter().any(String::is_empty), "{script}: {keys:?}");
            let slots: Vec<_> = keys.iter().map(|k| (k, Slot::for_key(k))).collect();
            assert!(one_slot(&keys), "{script} spans slots: {slots:?}");
        }
    }
}

#[test]
fn a_key_without_the_tag_is_caught() {
    let keys = Keys::new("tm:");
    let queue = keys.queue("jobs");
    let untagged = queue.stream.replace(['{', '}'], "");
    assert!(one_slot(&[queue.stream.clone(), queue.delayed.clone()]));
    assert!(!one_slot(&[queue.stream, queue.delayed, untagged]));
}

#[test]
fn tenants_and_queues_spread_over_slots() {
    // One tag per tenant and per queue: a cluster spreads them over its masters.
    let keys = Keys::new("tm:");
    let rates: Vec<String> = (0..8)
        .map(|_| keys.rate(&RateKey::tenant(TenantId::new())))
        .collect();
    assert!(!one_slot(&rates));
    assert!(!one_slot(&[keys.queue("a").stream, keys.queue("b").stream]));
}
