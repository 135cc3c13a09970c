//! `RedisLock` against the real Redis: one holder at a time, owner-only release and extend,
//! expiry.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tenant_manager_redis::RedisLock;
use tenant_manager_test_support::TestRedis;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_holder_at_a_time_under_contention() {
    let redis = TestRedis::create().await;
    let lock = RedisLock::new(&support::pool(&redis).await);
    let inside = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (lock, inside, runs) = (lock.clone(), inside.clone(), runs.clone());
            tokio::spawn(async move {
                for _ in 0..5 {
                    let guard = lock
                        .acquire(
                            "provision:acme",
                            Duration::from_secs(10),
                            Duration::from_secs(30),
                        )
                        .await
                        .expect("acquire")
                        .expect("acquired within the wait");
                    assert_eq!(
                        inside.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two holders at once"
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    runs.fetch_add(1, Ordering::SeqCst);
                    assert!(guard.release().await.expect("release"));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 40);
}

#[tokio::test]
async fn a_lost_lease_is_neither_released_nor_extended_by_its_old_holder() {
    let redis = TestRedis::create().await;
    let lock = RedisLock::new(&support::pool(&redis).await);
    let first = lock
        .try_acquire("job:1", Duration::from_millis(100))
        .await
        .expect("acquire")
        .expect("free");
    assert!(
        lock.try_acquire("job:1", Duration::from_secs(5))
            .await
            .expect("try")
            .is_none()
    );
    assert!(
        first
            .extend(Duration::from_millis(150))
            .await
            .expect("extend")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = lock
        .try_acquire("job:1", Duration::from_secs(5))
        .await
        .expect("acquire")
        .expect("expired lease is free");
    assert!(
        !first.extend(Duration::from_secs(5)).await.expect("extend"),
        "lost"
    );
    assert!(
        !first.release().await.expect("release"),
        "not the owner any more"
    );
    assert!(
        lock.try_acquire("job:1", Duration::from_secs(5))
            .await
            .expect("try")
            .is_none(),
        "the new holder's lease survived"
    );
    assert_eq!(second.resource(), "job:1");
    assert!(second.release().await.expect("release"));
}

#[tokio::test]
async fn dropping_a_guard_releases_the_lease() {
    let redis = TestRedis::create().await;
    let lock = RedisLock::new(&support::pool(&redis).await);
    let guard = lock
        .try_acquire("r", Duration::from_secs(60))
        .await
        .expect("acquire");
    assert!(guard.is_some());
    drop(guard);
    support::eventually(
        Duration::from_secs(2),
        "released in the background",
        || async {
            lock.try_acquire("r", Duration::from_secs(60))
                .await
                .expect("try")
                .is_some()
        },
    )
    .await;
}

#[tokio::test]
async fn bad_resources_and_ttls_are_refused() {
    let redis = TestRedis::create().await;
    let lock = RedisLock::new(&support::pool(&redis).await);
    for bad in ["", "has space", &"x".repeat(201)] {
        let err = lock
            .try_acquire(bad, Duration::from_secs(1))
            .await
            .expect_err("bad");
        assert_eq!(err.field(), Some("resource"), "{bad:?}");
    }
    let err = lock
        .try_acquire("r", Duration::ZERO)
        .await
        .expect_err("zero ttl");
    assert_eq!(err.field(), Some("ttl"));
}
