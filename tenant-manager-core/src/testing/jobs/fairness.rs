//! Fairness and holding: tenants served in turn, jobs handed back without counting, delayed
//! jobs.

use std::collections::HashMap;
use std::time::Duration;

use super::{JobQueueCaps, dequeue, enqueue, stats};
use crate::domain::TenantId;
use crate::traits::{JobQueue, NewJob, QueueStats};

fn tenant_job(tenant: TenantId, n: u64) -> NewJob {
    NewJob::new(
        "conformance.tenant_job",
        Some(tenant),
        serde_json::json!({ "n": n }),
    )
    .expect("valid job")
}

/// Tenant A queues 30 jobs, then B and C 3 each: with 3 lanes holding jobs, each lane is
/// served once every 3 deliveries, so all of B's and C's jobs are delivered within the first
/// 3 * 3 = 9 deliveries, each lane in its own order.
pub async fn tenants_are_served_in_turn(q: &dyn JobQueue, caps: &JobQueueCaps) {
    caps.assert_usable();
    let (a, b, c) = (TenantId::new(), TenantId::new(), TenantId::new());
    for n in 0..30 {
        q.enqueue(tenant_job(a, n)).await.expect("enqueue");
    }
    for n in 0..3 {
        q.enqueue(tenant_job(b, n)).await.expect("enqueue");
        q.enqueue(tenant_job(c, n)).await.expect("enqueue");
    }
    let mut order = Vec::new();
    let mut next_n: HashMap<TenantId, u64> = HashMap::new();
    for _ in 0..36 {
        let job = dequeue(q, "c1", caps.long_wait()).await.expect("job");
        let tenant = job.tenant_id.expect("tenant jobs");
        let expected = next_n.entry(tenant).or_default();
        assert_eq!(job.payload["n"], *expected, "a lane keeps its order");
        *expected += 1;
        order.push(tenant);
        q.ack(&job).await.expect("ack");
    }
    let last_of = |t: TenantId| order.iter().rposition(|x| *x == t).expect("delivered");
    assert!(
        last_of(b) < 9 && last_of(c) < 9,
        "B's and C's jobs were all delivered within 9 deliveries: {:?}",
        order
            .iter()
            .map(|t| if *t == a {
                'A'
            } else if *t == b {
                'B'
            } else {
                'C'
            })
            .collect::<String>()
    );
    assert_eq!(stats(q).await, QueueStats::new(0, 0, 0));
}

/// `release` hands a delivery back without counting it, however often: the job comes back
/// with the same attempt number and never reaches the dead-letter list; a stale receipt is
/// refused; a release with a delay keeps the job away until the delay has passed.
pub async fn release_hands_a_job_back_without_counting_it(q: &dyn JobQueue, caps: &JobQueueCaps) {
    caps.assert_usable();
    let id = enqueue(q, 1).await;
    for _ in 0..=caps.max_attempts {
        let job = dequeue(q, "c1", caps.long_wait()).await.expect("job");
        assert_eq!((job.id, job.attempt), (id, 1));
        assert!(q.release(&job, Duration::ZERO).await.expect("release"));
        assert!(
            !q.release(&job, Duration::ZERO).await.expect("release"),
            "a stale receipt"
        );
    }
    let job = dequeue(q, "c1", caps.long_wait()).await.expect("job");
    assert!(
        q.release(&job, caps.visibility_timeout)
            .await
            .expect("release")
    );
    assert_eq!(
        stats(q).await,
        QueueStats::new(1, 0, 0),
        "held, not in flight"
    );
    assert!(
        dequeue(q, "c1", caps.short_wait()).await.is_none(),
        "held for the delay"
    );
    let job = dequeue(q, "c1", caps.long_wait())
        .await
        .expect("back after the delay");
    assert_eq!((job.id, job.attempt), (id, 1));
    q.ack(&job).await.expect("ack");
    assert!(q.dead_letters(10).await.expect("dead letters").is_empty());
    let too_long = q.release(&job, crate::traits::MAX_JOB_DELAY * 2).await;
    assert_eq!(
        too_long
            .err()
            .and_then(|e| e.field().map(str::to_owned))
            .as_deref(),
        Some("delay")
    );
}

/// A job enqueued with a delay is not delivered before it has passed, then delivered once.
pub async fn a_delayed_job_waits_for_its_delay(q: &dyn JobQueue, caps: &JobQueueCaps) {
    caps.assert_usable();
    let job = tenant_job(TenantId::new(), 1)
        .with_delay(caps.visibility_timeout)
        .expect("delay");
    let id = q.enqueue(job).await.expect("enqueue");
    assert_eq!(stats(q).await, QueueStats::new(1, 0, 0));
    assert!(dequeue(q, "c1", caps.short_wait()).await.is_none());
    let got = dequeue(q, "c1", caps.long_wait()).await.expect("due");
    assert_eq!((got.id, got.attempt), (id, 1));
    q.ack(&got).await.expect("ack");
    assert!(dequeue(q, "c1", caps.short_wait()).await.is_none());
}
