//! `RedisJobQueue` against the real Redis: the job queue conformance suite, reclaim of jobs of a
//! crashed consumer, dead letters, and the provisioning worker running on it unchanged.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use tenant_manager_core::testing::Fixture;
use tenant_manager_core::testing::jobs::JobQueueCaps;
use tenant_manager_core::{JobQueue, NackOutcome, NewJob, QueueStats, TenantId};
use tenant_manager_redis::{JobQueueConfig, RedisJobQueue, RedisPool};
use tenant_manager_test_support::TestRedis;

const VISIBILITY: Duration = Duration::from_secs(1);
const ATTEMPTS: u32 = 3;

fn config() -> JobQueueConfig {
    JobQueueConfig::default()
        .with_visibility_timeout(VISIBILITY)
        .with_max_attempts(ATTEMPTS)
        .with_poll_interval(Duration::from_millis(100))
}

async fn fixture() -> Fixture<dyn JobQueue, TestRedis, JobQueueCaps> {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let queue: Arc<dyn JobQueue> = Arc::new(RedisJobQueue::new(&pool, config()).expect("queue"));
    Fixture::with_guard(queue, redis).with_caps(JobQueueCaps::new(VISIBILITY, ATTEMPTS))
}

tenant_manager_core::job_queue_conformance!(fixture);

fn job(n: u64) -> NewJob {
    NewJob::new(
        "test.job",
        Some(TenantId::new()),
        serde_json::json!({ "n": n }),
    )
    .expect("job")
}

async fn queue(pool: &RedisPool) -> RedisJobQueue {
    RedisJobQueue::new(pool, config()).expect("queue")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_consumer_killed_mid_job_is_reclaimed_and_finished_by_another() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let q = Arc::new(queue(&pool).await);
    let id = q.enqueue(job(1)).await.expect("enqueue");

    // A worker takes the job and is killed before it acks (its task is dropped mid-job).
    let (taken_tx, taken_rx) = tokio::sync::oneshot::channel();
    let doomed = tokio::spawn({
        let q = q.clone();
        async move {
            let job = q
                .dequeue("doomed", Duration::from_secs(5))
                .await
                .expect("dequeue");
            let _ = taken_tx.send(job.map(|j| j.id));
            std::future::pending::<()>().await;
        }
    });
    assert_eq!(taken_rx.await.expect("taken"), Some(id));
    doomed.abort();
    assert!(doomed.await.is_err_and(|e| e.is_cancelled()));

    // Another worker gets it once the visibility timeout has passed, and finishes it.
    let survivor = q
        .dequeue("survivor", VISIBILITY * 5)
        .await
        .expect("dequeue")
        .expect("reclaimed");
    assert_eq!((survivor.id, survivor.attempt), (id, 2));
    q.ack(&survivor).await.expect("ack");
    assert_eq!(q.stats().await.expect("stats"), QueueStats::new(0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclaim_finds_idle_jobs_among_many_busy_ones() {
    let redis = TestRedis::create().await;
    // Long enough that b's reclaimed jobs stay busy while c looks.
    let visibility = Duration::from_secs(3);
    let q = RedisJobQueue::new(
        &support::pool(&redis).await,
        config().with_visibility_timeout(visibility),
    )
    .expect("queue");
    const JOBS: u64 = 130;
    for n in 0..JOBS {
        q.enqueue(job(n)).await.expect("enqueue");
    }
    for _ in 0..JOBS {
        q.dequeue("a", Duration::ZERO)
            .await
            .expect("dequeue")
            .expect("job");
    }
    // All of a's jobs go idle; b reclaims 110 of them, which are busy again.
    tokio::time::sleep(visibility + Duration::from_millis(50)).await;
    for _ in 0..110 {
        let got = q
            .dequeue("b", Duration::ZERO)
            .await
            .expect("dequeue")
            .expect("job");
        assert_eq!(got.attempt, 2);
    }
    // The 20 still idle among them are found at once, not after b's jobs go idle too.
    for _ in 0..20 {
        let got = q
            .dequeue("c", Duration::ZERO)
            .await
            .expect("dequeue")
            .expect("an idle job among the busy ones");
        assert_eq!(got.attempt, 2, "taken from a, not from b");
    }
    assert!(
        q.dequeue("c", Duration::ZERO)
            .await
            .expect("dequeue")
            .is_none()
    );
    assert_eq!(q.stats().await.expect("stats"), QueueStats::new(0, JOBS, 0));
}

#[tokio::test]
async fn a_job_whose_consumers_keep_crashing_is_dead_lettered() {
    let redis = TestRedis::create().await;
    let q = queue(&support::pool(&redis).await).await;
    let id = q.enqueue(job(1)).await.expect("enqueue");
    for attempt in 1..=ATTEMPTS {
        let got = q
            .dequeue(&format!("crash-{attempt}"), VISIBILITY * 5)
            .await
            .expect("dequeue")
            .expect("delivered");
        assert_eq!((got.id, got.attempt), (id, attempt));
        // No ack: the consumer "crashes".
    }
    assert!(
        q.dequeue("late", VISIBILITY * 3)
            .await
            .expect("dequeue")
            .is_none(),
        "not delivered more than max_attempts times"
    );
    let dead = q.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].attempt), (id, ATTEMPTS));
    let reason = dead[0].last_error.as_deref().unwrap_or_default();
    assert!(reason.contains("visibility timeout"), "{reason}");
    assert_eq!(q.stats().await.expect("stats"), QueueStats::new(0, 0, 1));
    // A dead letter's receipt is not a delivery: acking it changes nothing.
    q.ack(&dead[0]).await.expect("ack of a dead letter");
    assert_eq!(q.stats().await.expect("stats").dead, 1);
}

#[tokio::test]
async fn queues_and_prefixes_are_independent_and_payloads_round_trip() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let jobs = queue(&pool).await;
    let other = RedisJobQueue::new(&pool, config().with_name("other")).expect("queue");
    let payload = serde_json::json!({
        "big": 12345678901234567890_u64,
        "float": 0.1,
        "empty_list": [],
        "empty_map": {},
        "text": "ünïcødé \"quoted\"",
    });
    let new = NewJob::new("test.payload", None, payload.clone()).expect("job");
    jobs.enqueue(new).await.expect("enqueue");
    assert!(
        other
            .dequeue("c", Duration::ZERO)
            .await
            .expect("dequeue")
            .is_none()
    );
    let got = jobs
        .dequeue("c", Duration::ZERO)
        .await
        .expect("dequeue")
        .expect("job");
    assert_eq!(got.payload, payload);
    assert_eq!(got.tenant_id, None);
    assert!(got.enqueued_at <= time::OffsetDateTime::now_utc());
    jobs.ack(&got).await.expect("ack");
    let nack = jobs
        .nack(&got, "after ack", Duration::ZERO)
        .await
        .expect("nack");
    assert_eq!(
        nack,
        NackOutcome::Retried,
        "a settled receipt is stale: no-op"
    );
    assert_eq!(jobs.stats().await.expect("stats"), QueueStats::new(0, 0, 0));
}

#[tokio::test]
async fn oversized_payloads_and_foreign_receipts_are_refused() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let q = RedisJobQueue::new(&pool, config().with_max_payload_bytes(64)).expect("queue");
    let big = NewJob::new(
        "test.big",
        None,
        serde_json::json!({ "x": "y".repeat(100) }),
    )
    .expect("job");
    assert_eq!(
        q.enqueue(big).await.expect_err("too big").field(),
        Some("payload")
    );
    q.enqueue(job(1)).await.expect("enqueue");
    let mut got = q
        .dequeue("c", Duration::ZERO)
        .await
        .expect("dequeue")
        .expect("job");
    got.receipt = "lease-42".to_owned();
    assert_eq!(
        q.ack(&got).await.expect_err("foreign").field(),
        Some("receipt")
    );
    assert_eq!(
        q.extend(&got, VISIBILITY)
            .await
            .expect_err("foreign")
            .field(),
        Some("receipt")
    );
    let bad = JobQueueConfig::default().with_name("Not Valid");
    assert_eq!(
        RedisJobQueue::new(&pool, bad)
            .expect_err("bad name")
            .field(),
        Some("queue.name")
    );
}

/// Idle threshold of the consumer pruning tests: short, so consumers go idle without waiting
/// an hour.
const IDLE: Duration = Duration::from_millis(50);

/// Longer than [`IDLE`], as Redis measures it.
async fn go_idle() {
    tokio::time::sleep(IDLE * 3).await;
}

/// Has `consumer` take a job and ack it: a consumer enters the group when it is first
/// delivered a job, and is left holding nothing.
async fn serve_one(q: &RedisJobQueue, consumer: &str) {
    q.enqueue(job(0)).await.expect("enqueue");
    let got = q
        .dequeue(consumer, Duration::ZERO)
        .await
        .expect("dequeue")
        .expect("job");
    q.ack(&got).await.expect("ack");
}

/// `XINFO CONSUMERS` of queue `name`'s group: (consumer, pending entries), sorted.
async fn consumers(pool: &RedisPool, name: &str) -> Vec<(String, u64)> {
    let stream = format!("{}queue:{{{name}}}:stream", pool.key_prefix());
    let infos: Vec<std::collections::HashMap<String, redis::Value>> = pool
        .query(
            redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(stream)
                .arg(JobQueueConfig::default().group),
        )
        .await
        .expect("xinfo consumers");
    let mut out: Vec<(String, u64)> = infos
        .iter()
        .map(|info| {
            (
                redis::from_redis_value_ref(&info["name"]).expect("name"),
                redis::from_redis_value_ref(&info["pending"]).expect("pending"),
            )
        })
        .collect();
    out.sort();
    out
}

fn owned(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect()
}

#[tokio::test]
async fn pruning_removes_idle_consumers_with_nothing_pending_and_never_one_holding_jobs() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let q = RedisJobQueue::new(&pool, config().with_consumer_prune_interval(None)).expect("queue");
    let id = q.enqueue(job(1)).await.expect("enqueue");
    let held = q
        .dequeue("busy", Duration::ZERO)
        .await
        .expect("dequeue")
        .expect("job");
    serve_one(&q, "ghost").await;
    assert_eq!(
        consumers(&pool, "jobs").await,
        owned(&[("busy", 1), ("ghost", 0)])
    );

    // Both are idle past the threshold: only the one with nothing pending goes.
    go_idle().await;
    assert_eq!(q.prune_consumers(IDLE).await.expect("prune"), 1);
    assert_eq!(consumers(&pool, "jobs").await, owned(&[("busy", 1)]));
    assert_eq!(q.prune_consumers(IDLE).await.expect("prune"), 0);
    assert_eq!(consumers(&pool, "jobs").await, owned(&[("busy", 1)]));
    assert_eq!(q.stats().await.expect("stats"), QueueStats::new(0, 1, 0));

    // Once its job is reclaimed by another consumer, the stalled one goes too; the job stays
    // with the consumer that holds it now.
    let reclaimed = q
        .dequeue("survivor", VISIBILITY * 5)
        .await
        .expect("dequeue")
        .expect("reclaimed");
    assert_eq!((reclaimed.id, reclaimed.attempt), (id, held.attempt + 1));
    go_idle().await;
    assert_eq!(q.prune_consumers(IDLE).await.expect("prune"), 1);
    assert_eq!(consumers(&pool, "jobs").await, owned(&[("survivor", 1)]));
    q.ack(&reclaimed).await.expect("ack");
    assert_eq!(q.stats().await.expect("stats"), QueueStats::new(0, 0, 0));
}

#[tokio::test]
async fn pruning_a_queue_without_consumers_is_a_no_op_and_thresholds_are_validated() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let q = RedisJobQueue::new(&pool, config().with_consumer_prune_interval(None)).expect("queue");
    // Neither stream nor group exists yet.
    assert_eq!(q.prune_consumers(IDLE).await.expect("prune"), 0);
    // A job waiting in its tenant's lane: still no stream (deliveries create it).
    let first = q.enqueue(job(1)).await.expect("enqueue");
    assert_eq!(q.prune_consumers(IDLE).await.expect("prune"), 0);
    // A group without consumers (as the first dequeue creates it).
    let stream = format!("{}queue:{{jobs}}:stream", pool.key_prefix());
    let _: () = pool
        .query(
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&stream)
                .arg("workers")
                .arg("0")
                .arg("MKSTREAM"),
        )
        .await
        .expect("xgroup create");
    assert!(consumers(&pool, "jobs").await.is_empty());
    assert_eq!(q.prune_consumers(IDLE).await.expect("prune"), 0);
    assert_eq!(q.stats().await.expect("stats"), QueueStats::new(1, 0, 0));
    // A group whose only consumer is pruned, then pruned again: nothing left to do.
    let got = q
        .dequeue("once", Duration::ZERO)
        .await
        .expect("dequeue")
        .expect("job");
    assert_eq!(got.id, first);
    q.ack(&got).await.expect("ack");
    assert_eq!(consumers(&pool, "jobs").await, owned(&[("once", 0)]));
    go_idle().await;
    assert_eq!(q.prune_consumers(IDLE).await.expect("prune"), 1);
    assert!(consumers(&pool, "jobs").await.is_empty());
    assert_eq!(q.prune_consumers(IDLE).await.expect("prune"), 0);
    assert!(consumers(&pool, "jobs").await.is_empty());
    // The group survives its consumers: a new job still reaches a new consumer.
    let id = q.enqueue(job(2)).await.expect("enqueue");
    let next = q
        .dequeue("next", Duration::ZERO)
        .await
        .expect("dequeue")
        .expect("job");
    assert_eq!(next.id, id);

    assert_eq!(
        q.prune_consumers(Duration::ZERO)
            .await
            .expect_err("zero")
            .field(),
        Some("idle_longer_than")
    );
    assert_eq!(
        RedisJobQueue::new(
            &pool,
            config().with_consumer_idle_timeout(Duration::from_secs(400 * 86_400))
        )
        .expect_err("too long")
        .field(),
        Some("queue.consumer_idle_timeout")
    );
}

#[tokio::test]
async fn dequeue_prunes_consumers_that_are_gone_at_most_once_per_interval() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let auto = config()
        .with_consumer_idle_timeout(IDLE)
        .with_consumer_prune_interval(Duration::from_secs(3600));
    let q = RedisJobQueue::new(&pool, auto.clone()).expect("queue");
    serve_one(&q, "ghost").await;
    go_idle().await;
    // This handle ran its pass on its first dequeue (nothing to prune then): not again within
    // the interval.
    q.enqueue(job(1)).await.expect("enqueue");
    q.dequeue("live", Duration::ZERO)
        .await
        .expect("dequeue")
        .expect("job");
    assert_eq!(
        consumers(&pool, "jobs").await,
        owned(&[("ghost", 0), ("live", 1)])
    );
    // A fresh handle (another process) runs its pass on its first dequeue: the consumer that
    // is gone goes, the one holding a job stays.
    let other = RedisJobQueue::new(&pool, auto).expect("queue");
    assert!(
        other
            .dequeue("live", Duration::ZERO)
            .await
            .expect("dequeue")
            .is_none()
    );
    assert_eq!(consumers(&pool, "jobs").await, owned(&[("live", 1)]));
}
