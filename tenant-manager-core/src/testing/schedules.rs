//! Conformance suite of [`ScheduleStore`]: one case per behaviour, and
//! [`schedule_conformance!`].
//!
//! [`schedule_conformance!`]: crate::schedule_conformance

use std::collections::HashSet;
use std::time::Duration;

use crate::domain::TenantId;
use crate::traits::{Schedule, ScheduleStore, ScheduleTick};

/// Expands one `#[tokio::test]` per case of [`crate::testing::schedules`] against the empty
/// store `$factory` (an `async fn() -> Fixture<dyn ScheduleStore, G>`) builds.
#[macro_export]
macro_rules! schedule_conformance {
    ($factory:path) => {
        $crate::__conformance_cases!($factory; schedules;
            put_list_replace_remove,
            concurrent_claimers_get_each_tick_once,
            missed_ticks_are_skipped_not_fired_in_a_burst,
            a_removed_schedule_is_never_claimed,
            bad_schedules_are_refused,
        );
    };
}

const TICK: Duration = Duration::from_millis(100);

fn schedule(tenant: TenantId, name: &str, every: Duration) -> Schedule {
    Schedule::new(
        tenant,
        name,
        "conformance.tick",
        serde_json::json!({ "name": name }),
        every,
    )
    .expect("valid schedule")
}

async fn claim(s: &dyn ScheduleStore) -> Vec<ScheduleTick> {
    s.claim_due(100).await.expect("claim")
}

/// `put` adds or replaces by (tenant, name); `list` shows a tenant's own, by name; `remove`
/// answers whether there was one.
pub async fn put_list_replace_remove(s: &dyn ScheduleStore) {
    let (a, b) = (TenantId::new(), TenantId::new());
    s.put(schedule(a, "nightly", TICK)).await.expect("put");
    s.put(schedule(a, "hourly", TICK)).await.expect("put");
    s.put(schedule(b, "nightly", TICK)).await.expect("put");
    let replaced = schedule(a, "nightly", TICK * 3);
    s.put(replaced.clone()).await.expect("replace");
    let listed = s.list(a).await.expect("list");
    assert_eq!(
        listed.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
        ["hourly", "nightly"]
    );
    assert_eq!(listed[1], replaced);
    assert!(s.remove(a, "nightly").await.expect("remove"));
    assert!(!s.remove(a, "nightly").await.expect("remove again"));
    assert_eq!(s.list(a).await.expect("list").len(), 1);
    assert_eq!(s.list(b).await.expect("list").len(), 1);
}

/// Two claimers polling one schedule side by side: no tick is handed to both, and the ticks
/// they got are whole intervals apart.
pub async fn concurrent_claimers_get_each_tick_once(s: &dyn ScheduleStore) {
    let tenant = TenantId::new();
    s.put(schedule(tenant, "often", TICK)).await.expect("put");
    let poll = |_: u8| async {
        let mut got = Vec::new();
        for _ in 0..40 {
            got.extend(claim(s).await);
            tokio::time::sleep(TICK / 8).await;
        }
        got
    };
    let (first, second) = tokio::join!(poll(1), poll(2));
    let all: Vec<_> = first.iter().chain(&second).map(|t| t.due_at).collect();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a tick was claimed twice: {all:?}");
    assert!(all.len() >= 2, "the schedule ticked: {all:?}");
    let mut sorted = all.clone();
    sorted.sort();
    for pair in sorted.windows(2) {
        let gap = (pair[1] - pair[0]).whole_milliseconds();
        assert!(
            gap >= 100 && gap % 100 == 0,
            "ticks are whole intervals apart: {sorted:?}"
        );
    }
}

/// A schedule nobody claimed for several intervals fires once, then not until its next tick.
pub async fn missed_ticks_are_skipped_not_fired_in_a_burst(s: &dyn ScheduleStore) {
    let tenant = TenantId::new();
    s.put(schedule(tenant, "missed", TICK / 2))
        .await
        .expect("put");
    tokio::time::sleep(TICK * 4).await;
    assert_eq!(claim(s).await.len(), 1, "one tick for all the missed ones");
    assert!(claim(s).await.is_empty(), "the next tick is in the future");
}

/// Once removed, a schedule is never claimed, even when it was due.
pub async fn a_removed_schedule_is_never_claimed(s: &dyn ScheduleStore) {
    let tenant = TenantId::new();
    s.put(schedule(tenant, "gone", TICK / 2))
        .await
        .expect("put");
    tokio::time::sleep(TICK).await;
    assert!(s.remove(tenant, "gone").await.expect("remove"));
    assert!(claim(s).await.is_empty());
}

/// Names, kinds and intervals are validated; `claim_due(0)` claims nothing.
pub async fn bad_schedules_are_refused(s: &dyn ScheduleStore) {
    let tenant = TenantId::new();
    let field =
        |r: crate::error::Result<Schedule>| r.err().and_then(|e| e.field().map(str::to_owned));
    let json = serde_json::json!({});
    assert_eq!(
        field(Schedule::new(tenant, "Bad", "k", json.clone(), TICK)).as_deref(),
        Some("name")
    );
    assert_eq!(
        field(Schedule::new(tenant, "n", "K K", json.clone(), TICK)).as_deref(),
        Some("kind")
    );
    assert_eq!(
        field(Schedule::new(tenant, "n", "k", json, Duration::ZERO)).as_deref(),
        Some("every")
    );
    s.put(schedule(tenant, "zero", TICK / 10))
        .await
        .expect("put");
    tokio::time::sleep(TICK / 2).await;
    assert!(s.claim_due(0).await.expect("claim").is_empty());
    assert_eq!(s.claim_due(10).await.expect("claim").len(), 1);
}
