//! Conformance suite of [`JobQueue`]: one case per behaviour, and [`job_queue_conformance!`].
//!
//! The factory builds an empty queue and declares its settings with
//! `Fixture::with_caps(JobQueueCaps::new(visibility_timeout, max_attempts))`. Cases wait for
//! the visibility timeout, so suites configure a short one (at most 5 s) and at least 2
//! attempts.
//!
//! [`job_queue_conformance!`]: crate::job_queue_conformance

use std::time::Duration;

use crate::domain::{JobId, TenantId};
use crate::traits::{Job, JobQueue, NewJob, QueueStats};

mod delivery;
mod fairness;
mod leases;

pub use delivery::*;
pub use fairness::*;
pub use leases::*;

/// Expands one `#[tokio::test]` per case of [`crate::testing::jobs`] against the empty queue
/// `$factory` (an `async fn() -> Fixture<dyn JobQueue, G, JobQueueCaps>`, for any guard `G`)
/// builds.
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
            tenants_are_served_in_turn,
            release_hands_a_job_back_without_counting_it,
            a_delayed_job_waits_for_its_delay,
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

async fn extend(q: &dyn JobQueue, job: &Job, visibility: Duration) -> bool {
    q.extend(job, visibility).await.expect("extend")
}
