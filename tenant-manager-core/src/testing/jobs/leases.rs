//! Leases: extending a delivery's visibility, and what an extension may not do.

use std::time::Duration;

use super::{JobQueueCaps, dequeue, enqueue, extend, stats};
use crate::traits::{JobQueue, NackOutcome, QueueStats};

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
