//! Delivery: enqueue, dequeue, ack and nack, redelivery after the visibility timeout, dead
//! letters, concurrent consumers, waiting, stats.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::{JobQueueCaps, dequeue, enqueue, new_job, stats};
use crate::domain::JobId;
use crate::testing::run_concurrently;
use crate::traits::{JobQueue, NackOutcome, QueueStats};

/// A job comes back as enqueued, on its first attempt; once acked it is gone.
pub async fn enqueue_dequeue_ack(q: &dyn JobQueue, caps: &JobQueueCaps) {
    caps.assert_usable();
    let job = new_job(7);
    let id = q.enqueue(job.clone()).await.expect("enqueue");
    let got = dequeue(q, "c1", caps.long_wait())
        .await
        .expect("a job is ready");
    assert_eq!(got.id, id);
    assert_eq!(
        (&got.kind, got.tenant_id, &got.payload),
        (&job.kind, job.tenant_id, &job.payload)
    );
    assert_eq!(got.attempt, 1);
    assert_eq!(got.last_error, None);
    assert!(!got.receipt.is_empty());
    q.ack(&got).await.expect("ack");
    assert!(dequeue(q, "c1", caps.short_wait()).await.is_none());
    assert_eq!(stats(q).await, QueueStats::new(0, 0, 0));
}

/// A job delivered and not acked is invisible until the visibility timeout, then delivered to
/// another consumer with `attempt + 1` and a new receipt.
pub async fn unacked_job_is_redelivered_after_the_visibility_timeout(
    q: &dyn JobQueue,
    caps: &JobQueueCaps,
) {
    caps.assert_usable();
    let id = enqueue(q, 1).await;
    let first = dequeue(q, "crashed", caps.long_wait()).await.expect("job");
    assert!(
        dequeue(q, "other", caps.short_wait()).await.is_none(),
        "invisible while leased"
    );
    let again = dequeue(q, "other", caps.long_wait())
        .await
        .expect("redelivered after the visibility timeout");
    assert_eq!(again.id, id);
    assert_eq!(again.attempt, first.attempt + 1);
    assert_ne!(again.receipt, first.receipt);
    q.ack(&again).await.expect("ack");
    assert_eq!(stats(q).await, QueueStats::new(0, 0, 0));
}

/// Each nack redelivers the job with the error as `last_error`, until the last attempt's nack
/// dead-letters it with that error.
pub async fn nack_retries_then_dead_letters_with_the_last_error(
    q: &dyn JobQueue,
    caps: &JobQueueCaps,
) {
    caps.assert_usable();
    let id = enqueue(q, 1).await;
    for attempt in 1..=caps.max_attempts {
        let job = dequeue(q, "c1", caps.long_wait()).await.expect("job");
        assert_eq!((job.id, job.attempt), (id, attempt));
        let previous = (attempt > 1).then(|| format!("failure {}", attempt - 1));
        assert_eq!(job.last_error, previous);
        let outcome = q
            .nack(&job, &format!("failure {attempt}"), Duration::ZERO)
            .await
            .expect("nack");
        let expected = if attempt == caps.max_attempts {
            NackOutcome::DeadLettered
        } else {
            NackOutcome::Retried
        };
        assert_eq!(outcome, expected, "attempt {attempt}");
    }
    assert!(dequeue(q, "c1", caps.short_wait()).await.is_none());
    let dead = q.dead_letters(10).await.expect("dead_letters");
    assert_eq!(dead.len(), 1);
    let last = format!("failure {}", caps.max_attempts);
    assert_eq!(dead[0].id, id);
    assert_eq!(dead[0].attempt, caps.max_attempts);
    assert_eq!(dead[0].last_error.as_deref(), Some(last.as_str()));
    assert_eq!(stats(q).await, QueueStats::new(0, 0, 1));
}

/// A nack with a delay keeps the job away until the delay has passed.
pub async fn nack_delay_postpones_the_retry(q: &dyn JobQueue, caps: &JobQueueCaps) {
    caps.assert_usable();
    let id = enqueue(q, 1).await;
    let job = dequeue(q, "c1", caps.long_wait()).await.expect("job");
    let delay = caps.visibility_timeout;
    let outcome = q.nack(&job, "later", delay).await.expect("nack");
    assert_eq!(outcome, NackOutcome::Retried);
    assert_eq!(stats(q).await.ready, 1, "a delayed retry counts as ready");
    assert!(
        dequeue(q, "c1", caps.short_wait()).await.is_none(),
        "not before the delay"
    );
    let retried = dequeue(q, "c1", caps.long_wait())
        .await
        .expect("after the delay");
    assert_eq!((retried.id, retried.attempt), (id, 2));
    assert_eq!(retried.last_error.as_deref(), Some("later"));
    q.ack(&retried).await.expect("ack");
}

/// Once a job was reclaimed, the first consumer's ack and nack do nothing.
pub async fn stale_receipts_are_no_ops(q: &dyn JobQueue, caps: &JobQueueCaps) {
    caps.assert_usable();
    enqueue(q, 1).await;
    let stale = dequeue(q, "slow", caps.long_wait()).await.expect("job");
    let current = dequeue(q, "fast", caps.long_wait())
        .await
        .expect("reclaimed");
    q.ack(&stale).await.expect("stale ack is Ok");
    q.nack(&stale, "stale", Duration::ZERO)
        .await
        .expect("stale nack is Ok");
    assert_eq!(
        stats(q).await,
        QueueStats::new(0, 1, 0),
        "still held by the current consumer"
    );
    assert!(dequeue(q, "slow", caps.short_wait()).await.is_none());
    q.ack(&current).await.expect("ack");
    assert_eq!(stats(q).await, QueueStats::new(0, 0, 0));
}

/// 100 jobs and 8 parallel consumers: every job is acked, and a job is delivered again only
/// after its visibility timeout (never to two consumers at once).
pub async fn concurrent_consumers_never_share_a_job(q: &dyn JobQueue, caps: &JobQueueCaps) {
    caps.assert_usable();
    const JOBS: usize = 100;
    for n in 0..JOBS {
        enqueue(q, n as u64).await;
    }
    let deliveries: Mutex<HashMap<JobId, Vec<Instant>>> = Mutex::new(HashMap::new());
    let done = AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    run_concurrently(8, |c| {
        let (deliveries, done) = (&deliveries, &done);
        async move {
            let consumer = format!("consumer-{c}");
            while done.load(Ordering::SeqCst) < JOBS {
                assert!(
                    Instant::now() < deadline,
                    "consumers did not drain the queue"
                );
                let Some(job) = dequeue(q, &consumer, caps.short_wait()).await else {
                    continue;
                };
                let first = {
                    let mut map = deliveries.lock().unwrap_or_else(|e| e.into_inner());
                    let times = map.entry(job.id).or_default();
                    times.push(Instant::now());
                    times.len() == 1
                };
                q.ack(&job).await.expect("ack");
                if first {
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    let deliveries = deliveries.into_inner().unwrap_or_else(|e| e.into_inner());
    assert_eq!(deliveries.len(), JOBS, "every job was delivered");
    for (id, times) in &deliveries {
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap + Duration::from_millis(50) >= caps.visibility_timeout,
                "job {id} was delivered twice within {gap:?}"
            );
        }
    }
    assert_eq!(stats(q).await, QueueStats::new(0, 0, 0));
}

/// With nothing to deliver, `dequeue` waits the whole `wait`, then returns `None`.
pub async fn dequeue_on_an_empty_queue_returns_none_after_the_wait(
    q: &dyn JobQueue,
    caps: &JobQueueCaps,
) {
    caps.assert_usable();
    let wait = Duration::from_millis(300);
    let start = Instant::now();
    assert!(dequeue(q, "c1", wait).await.is_none());
    let waited = start.elapsed();
    assert!(
        waited + Duration::from_millis(10) >= wait,
        "returned after {waited:?} of {wait:?}"
    );
}

/// A consumer waiting on an empty queue receives a job enqueued while it waits, without
/// waiting out its whole `wait`.
pub async fn dequeue_wakes_up_for_a_job_enqueued_while_waiting(
    q: &dyn JobQueue,
    caps: &JobQueueCaps,
) {
    caps.assert_usable();
    let wait = Duration::from_secs(30);
    let start = Instant::now();
    let (got, id) = tokio::join!(dequeue(q, "waiting", wait), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        enqueue(q, 1).await
    });
    let got = got.expect("the job enqueued while waiting");
    assert_eq!(got.id, id);
    assert!(start.elapsed() < wait, "woken by the enqueue");
    q.ack(&got).await.expect("ack");
}

/// Stats count ready jobs (including delayed retries) and in-flight ones (dead ones are
/// counted in `nack_retries_then_dead_letters_with_the_last_error`).
pub async fn stats_count_ready_delayed_and_in_flight(q: &dyn JobQueue, caps: &JobQueueCaps) {
    caps.assert_usable();
    assert_eq!(stats(q).await, QueueStats::new(0, 0, 0));
    for n in 0..3 {
        enqueue(q, n).await;
    }
    assert_eq!(stats(q).await, QueueStats::new(3, 0, 0));
    let done = dequeue(q, "c1", caps.long_wait()).await.expect("job");
    assert_eq!(stats(q).await, QueueStats::new(2, 1, 0));
    q.ack(&done).await.expect("ack");
    assert_eq!(stats(q).await, QueueStats::new(2, 0, 0));
    let delayed = dequeue(q, "c1", caps.long_wait()).await.expect("job");
    assert_eq!(stats(q).await, QueueStats::new(1, 1, 0));
    q.nack(&delayed, "later", caps.long_wait())
        .await
        .expect("nack");
    assert_eq!(stats(q).await, QueueStats::new(2, 0, 0));
    let last = dequeue(q, "c1", caps.long_wait()).await.expect("job");
    assert_ne!(last.id, delayed.id, "the delayed job waits");
    assert_eq!(stats(q).await, QueueStats::new(1, 1, 0));
    q.ack(&last).await.expect("ack");
    assert_eq!(stats(q).await, QueueStats::new(1, 0, 0));
}

/// Consumer names outside 1 to 64 of `[A-Za-z0-9_.:-]` are `InvalidInput` on `consumer`.
pub async fn invalid_consumers_are_refused(q: &dyn JobQueue, caps: &JobQueueCaps) {
    caps.assert_usable();
    for bad in ["", "has space", "semi;colon", &"x".repeat(65)] {
        let err = q
            .dequeue(bad, Duration::ZERO)
            .await
            .expect_err("invalid consumer");
        assert_eq!(err.code(), "invalid_input", "{bad:?}");
        assert_eq!(err.field(), Some("consumer"), "{bad:?}");
    }
}
