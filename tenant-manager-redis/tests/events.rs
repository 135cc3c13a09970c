//! `RedisEventBus` against the real Redis: the event bus conformance suite, consumer groups
//! (each event once per group, every group gets every event), redelivery of an unacked event
//! to another consumer, dead letters, and a subscription and a group that carry on after a
//! private `redis-server` restarts.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tenant_manager_core::testing::Fixture;
use tenant_manager_core::testing::events::{next_event, sample_event};
use tenant_manager_core::{EventBus, EventId, EventKind, TenantEvent};
use tenant_manager_redis::{EventStreamConfig, RedisEventBus, RedisEventGroup, RedisPool};
use tenant_manager_test_support::{PrivateRedis, TestRedis};

const VISIBILITY: Duration = Duration::from_millis(500);
const MAX_DELIVERIES: u32 = 3;
/// Long enough for any wait of these tests: a hang detector, not a measurement.
const PATIENCE: Duration = Duration::from_secs(10);

fn config() -> EventStreamConfig {
    EventStreamConfig::default()
        .with_visibility_timeout(VISIBILITY)
        .with_max_deliveries(MAX_DELIVERIES)
        .with_poll_interval(Duration::from_millis(100))
}

async fn fixture() -> Fixture<dyn EventBus, TestRedis> {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let bus: Arc<dyn EventBus> = Arc::new(RedisEventBus::new(&pool, config()).expect("bus"));
    Fixture::with_guard(bus, redis)
}

tenant_manager_core::event_bus_conformance!(fixture);

fn bus(pool: &RedisPool) -> RedisEventBus {
    RedisEventBus::new(pool, config()).expect("bus")
}

async fn publish_n(bus: &RedisEventBus, n: usize) -> Vec<EventId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let event = sample_event(EventKind::Provisioned);
        bus.publish(&event).await.expect("publish");
        ids.push(event.id);
    }
    ids
}

/// Receives and acks until `expected` events came or nothing more comes within a short wait.
async fn drain(group: &RedisEventGroup, consumer: &str) -> Vec<TenantEvent> {
    let mut events = Vec::new();
    while let Some(d) = group
        .receive(consumer, Duration::from_millis(300))
        .await
        .expect("receive")
    {
        group.ack(&d).await.expect("ack");
        events.push(d.event);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumers_of_one_group_share_the_events_and_every_group_gets_all() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let bus = bus(&pool);
    let webhooks = bus.group("webhooks").unwrap();
    let audit = bus.group("audit").unwrap();
    // Both groups exist before the events (a first receive creates them).
    assert!(
        webhooks
            .receive("a", Duration::ZERO)
            .await
            .unwrap()
            .is_none()
    );
    assert!(audit.receive("x", Duration::ZERO).await.unwrap().is_none());
    let ids: HashSet<EventId> = publish_n(&bus, 40).await.into_iter().collect();

    let (a, b) = tokio::join!(drain(&webhooks, "a"), drain(&webhooks, "b"));
    let mut seen = HashSet::new();
    for event in a.iter().chain(&b) {
        assert!(seen.insert(event.id), "an event handled twice in one group");
    }
    assert_eq!(seen, ids, "every event handled in the group");

    let audit_ids: HashSet<EventId> = drain(&audit, "x").await.iter().map(|e| e.id).collect();
    assert_eq!(audit_ids, ids, "the other group got every event too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacked_event_goes_to_another_consumer_after_the_visibility_timeout() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let bus = bus(&pool);
    let group = bus.group("webhooks").unwrap();
    group.receive("init", Duration::ZERO).await.unwrap();
    let id = publish_n(&bus, 1).await[0];
    let first = group.receive("crashed", PATIENCE).await.unwrap().unwrap();
    assert_eq!((first.event.id, first.deliveries), (id, 1));
    // Not handed out again while its delivery is fresh.
    assert!(
        group
            .receive("other", VISIBILITY / 5)
            .await
            .unwrap()
            .is_none()
    );
    let again = group.receive("other", PATIENCE).await.unwrap().unwrap();
    assert_eq!((again.event.id, again.deliveries), (id, 2));
    group.ack(&again).await.unwrap();
    assert!(
        group
            .receive("other", VISIBILITY * 3)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_never_acked_is_dead_lettered_and_can_be_taken_back() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let bus = bus(&pool);
    let group = bus.group("webhooks").unwrap();
    group.receive("init", Duration::ZERO).await.unwrap();
    let ids = publish_n(&bus, 2).await;
    for attempt in 1..=u64::from(MAX_DELIVERIES) {
        let d = group.receive("flaky", PATIENCE).await.unwrap().unwrap();
        assert_eq!((d.event.id, d.deliveries), (ids[0], attempt));
        if attempt == 1 {
            // The second event is rejected outright by its consumer.
            let second = group.receive("flaky", PATIENCE).await.unwrap().unwrap();
            assert_eq!(second.event.id, ids[1]);
            group
                .reject(&second, "HTTP 410 from the receiver")
                .await
                .unwrap();
        }
    }
    // The next reclaim finds it delivered too often: dead, not delivered again.
    assert!(
        group
            .receive("flaky", VISIBILITY * 3)
            .await
            .unwrap()
            .is_none()
    );
    let dead = group.dead_letters(10).await.unwrap();
    let found: Vec<_> = dead.iter().map(|d| (d.event.id, d.deliveries)).collect();
    assert_eq!(found, [(ids[1], 1), (ids[0], u64::from(MAX_DELIVERIES))]);
    assert_eq!(dead[0].error, "HTTP 410 from the receiver");
    assert!(
        dead[1].error.contains("not acknowledged"),
        "{}",
        dead[1].error
    );
    // Other groups are not affected: their dead letters are their own.
    assert!(
        bus.group("audit")
            .unwrap()
            .dead_letters(10)
            .await
            .unwrap()
            .is_empty()
    );

    let taken = group.take_dead_letter(&dead[0].id).await.unwrap().unwrap();
    assert_eq!(taken.event.id, ids[1]);
    assert!(group.take_dead_letter(&dead[0].id).await.unwrap().is_none());
    assert_eq!(group.dead_letters(10).await.unwrap().len(), 1);
    let bad = group.take_dead_letter("1; DEL x").await.unwrap_err();
    assert_eq!(bad.field(), Some("id"));
    assert_eq!(bus.group("Bad Group").unwrap_err().field(), Some("group"));
    assert_eq!(
        group
            .receive("bad consumer", Duration::ZERO)
            .await
            .unwrap_err()
            .field(),
        Some("consumer")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscription_and_a_group_carry_on_after_redis_restarts() {
    let mut server = PrivateRedis::start();
    let pool = RedisPool::connect(support::fast_failing(&server.url()).with_key_prefix("ev:"))
        .await
        .expect("pool");
    let bus = bus(&pool);
    let group = bus.group("webhooks").unwrap();
    let mut stream = bus.subscribe().await.unwrap();
    group.receive("w", Duration::ZERO).await.unwrap();
    let before = publish_n(&bus, 1).await[0];
    assert_eq!(next_event(&mut stream).await.id, before);
    let d = group.receive("w", PATIENCE).await.unwrap().unwrap();
    group.ack(&d).await.unwrap();

    server.restart();
    // Publishing fails until the pool reconnects; then events flow again to both.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let event = sample_event(EventKind::Resumed);
    while bus.publish(&event).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "Redis is back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        next_event(&mut stream).await.id,
        event.id,
        "the subscription resumed"
    );
    let after = support::within(PATIENCE, async {
        loop {
            if let Ok(Some(d)) = group.receive("w", Duration::from_millis(200)).await {
                return d;
            }
        }
    })
    .await;
    assert_eq!(after.event.id, event.id, "the group was created again");
    group.ack(&after).await.unwrap();
}
