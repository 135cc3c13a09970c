//! Conformance suite of [`JobQueue`]: one case per behaviour, and [`job_queue_conformance!`].
//!
//! The factory builds an empty queue and declares its settings with
//! `Fixture::with_caps(JobQueueCaps::new(visibility_timeout, max_attempts))`. Cases wait for
//! the visibility timeout, so suites configure a short one (at most 5 s) and at least 2
//! attempts.
//!
//! [`job_queue_conformance!`]: crate::job_queue_conformance

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::{JobId, TenantId};
use crate::traits::{Job, JobQueue, NackOutcome, NewJob, QueueStats};

use super::run_concurrently;

/// Expands one `#[tokio::test]` per case of [`crate::testing::jobs`] against the empty queue
/// `$factory` (an `async fn() -> Fixture<dyn JobQueue, G, JobQueueCaps>` that declares [`JobQueueCaps`]) builds.
#[macro_export]
macro_rules! job_queue_conformance {
    ($factory:path) => {
        $crate::__conformance_cases_with_caps!($factory; jobs; $crate::testing::jobs::JobQueueCaps;
            enqueue_dequeue_ack,
            unacked_job_is_redelivered_after_the_visibility_timeout,
            nack_retries_then_dead_letters_with_the_last_error,
            nack_delay_postpones_the_retry,
            stale_receipts_are_no_ops,
            concurrent_consumers_never_share_a_job,
            dequeue_on_an_empty_queue_returns_none_after_the_wait,
            dequeue_wakes_up_for_a_job_enqueued_while_waiting,
            stats_count_ready_delayed_and_in_flight,
            invalid_consumers_are_refused,
            an_extended_job_is_not_redelivered_until_extensions_stop,
            extending_a_stale_receipt_is_refused_and_leaves_the_holder_alone,
            extending_a_settled_job_is_refused,
            extensions_outside_1_ms_to_the_visibility_timeout_are_refused,
            a_short_extension_ends_the_lease_early,
        );
    };
}

/// How the queue under test is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobQueueCaps {
    /// How long a delivered job stays invisible to other consumers.
    pub visibility_timeout: Duration,
    /// Deliveries after which a nacked job is dead-lettered.
    pub max_attempts: u32,
}

impl JobQueueCaps {
    /// A queue built with these settings.
    pub fn new(visibility_timeout: Duration, max_attempts: u32) -> Self {
        Self {
            visibility_timeout,
            max_attempts,
        }
    }

    /// Checks the settings suit the suite.
    fn assert_usable(&self) {
        assert!(
            self.visibility_timeout <= Duration::from_secs(5),
            "configure the queue under test with a visibility timeout of at most 5 s"
        );
        assert!(
            self.max_attempts >= 2,
            "configure the queue under test with at least 2 attempts"
        );
    }

    /// Long enough for a reclaim or a delayed retry to happen.
    fn long_wait(&self) -> Duration {
        self.visibility_timeout * 4 + Duration::from_secs(1)
    }

    /// Well inside the visibility timeout.
    fn short_wait(&self) -> Duration {
        (self.visibility_timeout / 5).min(Duration::from_millis(200))
    }
}

fn new_job(n: u64) -> NewJob {
    NewJob::new(
        "conformance.job",
        Some(TenantId::new()),
        serde_json::json!({ "n": n }),
    )
    .expect("valid job")
}

async fn enqueue(q: &dyn JobQueue, n: u64) -> JobId {
    q.enqueue(new_job(n)).await.expect("enqueue")
}

async fn dequeue(q: &dyn JobQueue, consumer: &str, wait: Duration) -> Option<Job> {
    q.dequeue(consumer, wait).await.expect("dequeue")
}

async fn stats(q: &dyn JobQueue) -> QueueStats {
    q.stats().await.expect("stats")
}

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

async fn extend(q: &dyn JobQueue, job: &Job, visibility: Duration) -> bool {
    q.extend(job, visibility).await.expect("extend")
}

/// A holder that keeps extending its lease keeps the job from other consumers for well over
/// the visibility timeout; once it stops, the job is delivered again.
pub async fn an_extended_job_is_not_redelivered_until_extensions_stop(
    q: &dyn JobQueue,
    caps: &JobQueueCaps,
) {
    caps.assert_usable();
    assert_eq!(q.visibility_timeout(), caps.visibility_timeout);
    let id = enqueue(q, 1).await;
    let held = dequeue(q, "holder", caps.long_wait()).await.expect("job");
    // Polls of a quarter of the lease each, extended after every one: three times the
    // visibility timeout in all, while each lease keeps three quarters of it in hand.
    for round in 0..12 {
        assert!(
            dequeue(q, "other", caps.visibility_timeout / 4)
                .await
                .is_none(),
            "delivered again while its lease was extended (round {round})"
        );
        assert!(
            extend(q, &held, caps.visibility_timeout).await,
            "round {round}"
        );
    }
    assert_eq!(stats(q).await, QueueStats::new(0, 1, 0), "still held");
    let again = dequeue(q, "other", caps.long_wait())
        .await
        .expect("delivered again once the extensions stopped");
    assert_eq!((again.id, again.attempt), (id, held.attempt + 1));
    q.ack(&again).await.expect("ack");
    assert_eq!(stats(q).await, QueueStats::new(0, 0, 0));
}

/// Once a job was reclaimed by another consumer, the first holder's extension answers `false`
/// and changes nothing: the new holder keeps its delivery, which it can extend and ack.
pub async fn extending_a_stale_receipt_is_refused_and_leaves_the_holder_alone(
    q: &dyn JobQueue,
    caps: &JobQueueCaps,
) {
    caps.assert_usable();
    let id = enqueue(q, 1).await;
    let stale = dequeue(q, "slow", caps.long_wait()).await.expect("job");
    let current = dequeue(q, "fast", caps.long_wait())
        .await
        .expect("reclaimed after the visibility timeout");
    assert_eq!(current.id, id);
    assert!(
        !extend(q, &stale, caps.visibility_timeout).await,
        "the lease was lost"
    );
    assert_eq!(stats(q).await, QueueStats::new(0, 1, 0));
    assert!(
        dequeue(q, "slow", caps.short_wait()).await.is_none(),
        "not handed back to the stale holder"
    );
    assert!(extend(q, &current, caps.visibility_timeout).await);
    q.ack(&current).await.expect("ack");
    assert_eq!(stats(q).await, QueueStats::new(0, 0, 0));
    assert!(dequeue(q, "slow", caps.short_wait()).await.is_none());
}

/// Acked, nacked and dead-lettered deliveries cannot be extended, and trying changes nothing.
pub async fn extending_a_settled_job_is_refused(q: &dyn JobQueue, caps: &JobQueueCaps) {
    caps.assert_usable();
    let visibility = caps.visibility_timeout;
    enqueue(q, 1).await;
    let acked = dequeue(q, "c1", caps.long_wait()).await.expect("job");
    q.ack(&acked).await.expect("ack");
    assert!(!extend(q, &acked, visibility).await, "acked");
    assert_eq!(stats(q).await, QueueStats::new(0, 0, 0));

    let id = enqueue(q, 2).await;
    let mut delivered = dequeue(q, "c1", caps.long_wait()).await.expect("job");
    for attempt in 1..caps.max_attempts {
        let outcome = q.nack(&delivered, "again", Duration::ZERO).await;
        assert_eq!(outcome.expect("nack"), NackOutcome::Retried);
        assert!(!extend(q, &delivered, visibility).await, "nacked");
        let next = dequeue(q, "c1", caps.long_wait()).await.expect("retry");
        assert_eq!((next.id, next.attempt), (id, attempt + 1));
        delivered = next;
    }
    let outcome = q.nack(&delivered, "last", Duration::ZERO).await;
    assert_eq!(outcome.expect("nack"), NackOutcome::DeadLettered);
    assert!(!extend(q, &delivered, visibility).await, "dead-lettered");
    let dead = q.dead_letters(10).await.expect("dead_letters");
    assert_eq!(dead.len(), 1);
    assert!(
        !extend(q, &dead[0], visibility).await,
        "a dead letter is no delivery"
    );
    assert_eq!(stats(q).await, QueueStats::new(0, 0, 1));
}

/// Extensions under 1 ms or over the visibility timeout are `InvalidInput` on `visibility`, and
/// leave the lease as it was.
pub async fn extensions_outside_1_ms_to_the_visibility_timeout_are_refused(
    q: &dyn JobQueue,
    caps: &JobQueueCaps,
) {
    caps.assert_usable();
    enqueue(q, 1).await;
    let held = dequeue(q, "c1", caps.long_wait()).await.expect("job");
    for bad in [
        Duration::ZERO,
        Duration::from_micros(999),
        caps.visibility_timeout + Duration::from_millis(1),
        Duration::MAX,
    ] {
        let err = q.extend(&held, bad).await.expect_err("out of range");
        assert_eq!(err.code(), "invalid_input", "{bad:?}");
        assert_eq!(err.field(), Some("visibility"), "{bad:?}");
    }
    assert!(extend(q, &held, Duration::from_millis(1)).await);
    assert!(extend(q, &held, caps.visibility_timeout).await);
    q.ack(&held).await.expect("ack");
    assert_eq!(stats(q).await, QueueStats::new(0, 0, 0));
}

/// An extension sets the lease to `visibility` from now, even when that is sooner than the
/// current lease would have run out: the job is delivered again well within the visibility
/// timeout.
pub async fn a_short_extension_ends_the_lease_early(q: &dyn JobQueue, caps: &JobQueueCaps) {
    caps.assert_usable();
    let id = enqueue(q, 1).await;
    let held = dequeue(q, "holder", caps.long_wait()).await.expect("job");
    assert!(extend(q, &held, Duration::from_millis(1)).await);
    let again = dequeue(q, "other", caps.visibility_timeout * 3 / 4)
        .await
        .expect("delivered again once the 1 ms lease ran out");
    assert_eq!((again.id, again.attempt), (id, held.attempt + 1));
    assert!(
        !extend(q, &held, caps.visibility_timeout).await,
        "the lease was lost"
    );
    q.ack(&again).await.expect("ack");
    assert_eq!(stats(q).await, QueueStats::new(0, 0, 0));
}
