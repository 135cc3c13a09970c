use super::*;

fn queue(config: InMemoryJobQueueConfig) -> InMemoryJobQueue {
    InMemoryJobQueue::new(config).unwrap_or_else(|e| panic!("{e}"))
}

fn new_job() -> NewJob {
    NewJob::new("test.job", None, serde_json::json!({})).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn config_is_validated() {
    let field = |c: InMemoryJobQueueConfig| {
        InMemoryJobQueue::new(c)
            .err()
            .and_then(|e| e.field().map(str::to_owned))
    };
    let d = InMemoryJobQueueConfig::default;
    assert_eq!(
        field(d().with_visibility_timeout(Duration::ZERO)).as_deref(),
        Some("visibility_timeout")
    );
    assert_eq!(
        field(d().with_max_attempts(0)).as_deref(),
        Some("max_attempts")
    );
    assert_eq!(field(d().with_max_jobs(0)).as_deref(), Some("max_jobs"));
    assert_eq!(
        field(d().with_max_dead_letters(0)).as_deref(),
        Some("max_dead_letters")
    );
    assert_eq!(field(d()), None);
}

#[tokio::test]
async fn a_full_queue_refuses_with_a_retryable_error_until_drained() {
    let q = queue(InMemoryJobQueueConfig::default().with_max_jobs(2));
    for _ in 0..2 {
        q.enqueue(new_job()).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let err = q.enqueue(new_job()).await.err();
    assert!(err.as_ref().is_some_and(Error::is_retryable), "{err:?}");
    assert_eq!(err.map(|e| e.code()), Some("backend_unavailable"));
    let job = q
        .dequeue("c", Duration::ZERO)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let job = job.unwrap_or_else(|| panic!("a job is ready"));
    q.ack(&job).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(q.enqueue(new_job()).await.is_ok());
}

#[tokio::test]
async fn an_expired_last_lease_is_dead_lettered_and_dead_letters_are_capped() {
    let q = queue(
        InMemoryJobQueueConfig::default()
            .with_visibility_timeout(Duration::from_millis(20))
            .with_max_attempts(1)
            .with_max_dead_letters(2),
    );
    for _ in 0..3 {
        q.enqueue(new_job()).await.unwrap_or_else(|e| panic!("{e}"));
    }
    for _ in 0..3 {
        let job = q.dequeue("c", Duration::ZERO).await;
        assert!(job.is_ok_and(|j| j.is_some()));
    }
    let none = q
        .dequeue("c", Duration::from_millis(60))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        none.is_none(),
        "expired last deliveries are not redelivered"
    );
    let dead = q.dead_letters(10).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dead.len(), 2, "the oldest dead letter was dropped");
    assert!(
        dead.iter()
            .all(|j| j.last_error.as_deref() == Some("visibility timeout expired"))
    );
    let stats = q.stats().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats, QueueStats::new(0, 0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shortening_a_lease_wakes_a_consumer_waiting_for_it() {
    let q = queue(InMemoryJobQueueConfig::default());
    q.enqueue(new_job()).await.unwrap_or_else(|e| panic!("{e}"));
    let held = q
        .dequeue("holder", Duration::ZERO)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("a job is ready"));
    // "other" sleeps towards the 30 s lease expiry until the lease is cut to 1 ms.
    let (again, extended) = tokio::join!(q.dequeue("other", Duration::from_secs(10)), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        q.extend(&held, Duration::from_millis(1)).await
    });
    assert!(extended.is_ok_and(|e| e));
    let again = again.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.map(|j| (j.id, j.attempt)), Some((held.id, 2)));
}

#[tokio::test]
async fn long_errors_are_cut_at_a_char_boundary_and_huge_delays_refused() {
    let q = queue(InMemoryJobQueueConfig::default().with_max_attempts(1));
    q.enqueue(new_job()).await.unwrap_or_else(|e| panic!("{e}"));
    let job = q
        .dequeue("c", Duration::ZERO)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("a job is ready"));
    let err = q.nack(&job, "x", Duration::MAX).await.err();
    assert_eq!(
        err.and_then(|e| e.field().map(str::to_owned)).as_deref(),
        Some("delay")
    );
    let long = "é".repeat(MAX_JOB_ERROR_LEN);
    let outcome = q.nack(&job, &long, Duration::ZERO).await;
    assert!(outcome.is_ok_and(|o| o == NackOutcome::DeadLettered));
    let dead = q.dead_letters(1).await.unwrap_or_else(|e| panic!("{e}"));
    let kept = dead
        .first()
        .and_then(|j| j.last_error.clone())
        .unwrap_or_default();
    assert!(kept.len() <= MAX_JOB_ERROR_LEN && kept.len() >= MAX_JOB_ERROR_LEN - 1);
    assert!(kept.chars().all(|c| c == 'é'));
}
