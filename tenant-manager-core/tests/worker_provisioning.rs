//! `ProvisioningWorker` over the in-memory job queue, registry and provisioner.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{Failure, FlakyProvisioner, Harness, PASSWORD};
use tenant_manager_core::jobs_kinds;
use tenant_manager_core::lifecycle::testing::assert_slow_job_keeps_its_lease;
use tenant_manager_core::manager::ManagerConfig;
use tenant_manager_core::memory::{
    InMemoryJobQueue, InMemoryJobQueueConfig, InMemoryProvisioner, InMemoryTenantData,
};
use tenant_manager_core::worker::{JobOutcome, JobReport, ProvisioningWorker, WorkerConfig};
use tenant_manager_core::{JobQueue, NewJob, QueueStats, TenantId, TenantStatus};
use tokio_util::sync::CancellationToken;

fn fast() -> WorkerConfig {
    WorkerConfig::default()
        .with_poll_wait(Duration::from_millis(500))
        .with_retry(Duration::from_millis(5), Duration::from_millis(20))
        .with_shutdown_grace(Duration::from_millis(20))
}

/// A queued harness whose provisioner fails as told, and the flaky provisioner itself.
fn flaky(failure: Failure) -> (Harness, Arc<FlakyProvisioner>) {
    let data = Arc::new(InMemoryTenantData::new());
    let provisioner = Arc::new(FlakyProvisioner::new(
        Arc::new(InMemoryProvisioner::new(Arc::clone(&data))),
        failure,
    ));
    let h = Harness::assemble(
        ManagerConfig::default().with_async_provisioning(true),
        data,
        provisioner.clone(),
    );
    (h, provisioner)
}

/// Enqueues `job`, runs the worker once, and says what it did.
async fn run_job(h: &Harness, worker: &ProvisioningWorker, job: NewJob) -> JobOutcome {
    h.enqueue(job).await;
    let token = CancellationToken::new();
    let report = worker.run_once(&token).await.unwrap();
    report.expect("a job was ready").outcome
}

/// Runs jobs one at a time until one ends in something other than a retry.
async fn run_until_settled(worker: &ProvisioningWorker) -> Vec<JobReport> {
    let token = CancellationToken::new();
    let mut reports = Vec::new();
    for _ in 0..50 {
        if let Some(report) = worker.run_once(&token).await.unwrap() {
            let settled = !matches!(report.outcome, JobOutcome::Retrying { .. });
            reports.push(report);
            if settled {
                return reports;
            }
        }
    }
    panic!("job did not settle: {reports:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_provisioning_through_a_running_worker_reaches_active() {
    let h = Harness::queued();
    let r = h.register("Acme", "owner@acme.test").await;
    assert_eq!(r.tenant.status, TenantStatus::Provisioning);

    let worker = h.manager.worker(fast()).unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { worker.run(shutdown).await }
    });
    let mut status = r.tenant.status;
    for _ in 0..500 {
        status = h.manager.get(r.tenant.id).await.unwrap().status;
        if status == TenantStatus::Active {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, TenantStatus::Active);
    shutdown.cancel();
    running.await.unwrap();

    assert!(h.manager.login("owner@acme.test", PASSWORD).await.is_ok());
    let stats = h.queue_stats().await;
    assert_eq!((stats.ready, stats.in_flight, stats.dead), (0, 0, 0));
}

#[tokio::test]
async fn transient_failures_are_retried_until_the_tenant_is_active() {
    let (h, provisioner) = flaky(Failure::Transient(2));
    let r = h.register("Acme", "owner@acme.test").await;
    let worker = h.manager.worker(fast()).unwrap();

    let reports = run_until_settled(&worker).await;
    let outcomes: Vec<_> = reports.iter().map(|r| r.outcome).collect();
    assert!(
        matches!(
            outcomes[..],
            [
                JobOutcome::Retrying { .. },
                JobOutcome::Retrying { .. },
                JobOutcome::Completed
            ]
        ),
        "{outcomes:?}"
    );
    assert_eq!(
        reports.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(reports.iter().all(|rep| rep.tenant == Some(r.tenant.id)));
    assert_eq!(provisioner.calls(), 3);

    let tenant = h.manager.get(r.tenant.id).await.unwrap();
    assert_eq!(tenant.status, TenantStatus::Active);
    assert_eq!(tenant.status_reason, None);
}

#[tokio::test]
async fn a_job_that_keeps_failing_is_dead_lettered_and_the_tenant_failed_with_the_reason() {
    let (h, provisioner) = flaky(Failure::AlwaysTransient);
    let r = h.register("Acme", "owner@acme.test").await;
    let worker = h.manager.worker(fast()).unwrap();

    let reports = run_until_settled(&worker).await;
    assert_eq!(
        reports.last().map(|r| r.outcome),
        Some(JobOutcome::DeadLettered)
    );
    // The harness queue allows three deliveries.
    assert_eq!(provisioner.calls(), 3);

    let tenant = h.manager.get(r.tenant.id).await.unwrap();
    assert_eq!(tenant.status, TenantStatus::Failed);
    let reason = tenant.status_reason.unwrap_or_default();
    assert!(reason.contains("postgres unavailable"), "{reason}");
    let dead = h.jobs.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].tenant_id, Some(r.tenant.id));
}

#[tokio::test]
async fn a_permanent_failure_fails_the_tenant_at_once() {
    let (h, provisioner) = flaky(Failure::Permanent);
    let r = h.register("Acme", "owner@acme.test").await;
    let worker = h.manager.worker(fast()).unwrap();

    let reports = run_until_settled(&worker).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].outcome, JobOutcome::Failed);
    assert_eq!(provisioner.calls(), 1);
    let tenant = h.manager.get(r.tenant.id).await.unwrap();
    assert_eq!(tenant.status, TenantStatus::Failed);
    assert!(
        tenant
            .status_reason
            .unwrap_or_default()
            .contains("template database is corrupt")
    );
    let stats = h.queue_stats().await;
    assert_eq!((stats.ready, stats.in_flight, stats.dead), (0, 0, 0));

    // An operator retries once the cause is fixed: here, through the same failing provisioner,
    // which fails again and leaves the tenant failed.
    assert_eq!(
        h.manager
            .retry_provisioning(r.tenant.id)
            .await
            .unwrap()
            .status,
        TenantStatus::Provisioning
    );
    let again = run_until_settled(&worker).await;
    assert_eq!(again[0].outcome, JobOutcome::Failed);
}

#[tokio::test]
async fn jobs_are_idempotent_and_stale_ones_are_skipped() {
    let h = Harness::new();
    let r = h.register("Acme", "owner@acme.test").await;
    assert_eq!(r.tenant.status, TenantStatus::Active);
    let worker = h.manager.worker(fast()).unwrap();

    let job = jobs_kinds::provision_job(r.tenant.id).unwrap();
    assert_eq!(run_job(&h, &worker, job).await, JobOutcome::AlreadyDone);

    // A deprovision job for a tenant that is not being deleted never drops its storage.
    let job = jobs_kinds::deprovision_job(r.tenant.id).unwrap();
    assert_eq!(run_job(&h, &worker, job).await, JobOutcome::Skipped);
    assert!(
        tenant_manager_core::Provisioner::is_provisioned(h.provisioner.as_ref(), &r.tenant)
            .await
            .unwrap()
    );

    let job = jobs_kinds::provision_job(TenantId::new()).unwrap();
    assert_eq!(run_job(&h, &worker, job).await, JobOutcome::Skipped);

    let stats = h.queue_stats().await;
    assert_eq!((stats.ready, stats.in_flight), (0, 0));
}

#[tokio::test]
async fn unknown_or_malformed_jobs_are_handed_back_for_the_dead_letter_list() {
    let h = Harness::queued();
    let worker = h.manager.worker(fast()).unwrap();
    let token = CancellationToken::new();
    let unknown_kind = NewJob::new(
        "tenant.rename",
        Some(TenantId::new()),
        serde_json::json!({}),
    )
    .unwrap();
    let no_tenant = NewJob::new(jobs_kinds::PROVISION_TENANT, None, serde_json::json!({})).unwrap();
    h.enqueue(unknown_kind).await;
    h.enqueue(no_tenant).await;
    for _ in 0..2 {
        let report = worker.run_once(&token).await.unwrap().unwrap();
        assert_eq!(report.outcome, JobOutcome::Rejected);
    }
    let stats = h.queue_stats().await;
    assert_eq!((stats.ready, stats.in_flight), (2, 0));
}

#[tokio::test]
async fn on_shutdown_the_current_job_is_returned_and_another_worker_finishes_it() {
    let (h, _) = flaky(Failure::Hang);
    let r = h.register("Acme", "owner@acme.test").await;
    let worker = h.manager.worker(fast()).unwrap();
    let shutdown = CancellationToken::new();
    let cancel = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            shutdown.cancel();
        }
    });
    let report = worker.run_once(&shutdown).await.unwrap().unwrap();
    cancel.await.unwrap();
    assert_eq!(report.outcome, JobOutcome::Returned);
    assert_eq!(
        h.manager.get(r.tenant.id).await.unwrap().status,
        TenantStatus::Provisioning
    );

    // A healthy worker in "another process" (same queue, registry and data) takes it over.
    let healthy = ProvisioningWorker::new(
        h.jobs.clone(),
        h.registry.clone(),
        Arc::new(tenant_manager_core::memory::InMemoryProvisioner::new(
            h.data.clone(),
        )),
        fast(),
    )
    .unwrap()
    .with_cache(h.cache.clone())
    .with_pool_closer(h.pools.clone());
    let report = healthy
        .run_once(&CancellationToken::new())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.outcome, JobOutcome::Completed);
    assert_eq!(report.attempt, 2);
    assert_eq!(
        h.manager.get(r.tenant.id).await.unwrap().status,
        TenantStatus::Active
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_workers_share_the_queue_and_provision_every_tenant() {
    let h = Harness::queued();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            h.register(&format!("Org {i}"), &format!("o{i}@acme.test"))
                .await
                .tenant
                .id,
        );
    }
    let shutdown = CancellationToken::new();
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let worker = h
                .manager
                .worker(fast().with_consumer(format!("worker-{i}")))
                .unwrap();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { worker.run(shutdown).await })
        })
        .collect();
    let mut active = 0;
    for _ in 0..500 {
        active = 0;
        for id in &ids {
            if h.manager.get(*id).await.unwrap().status == TenantStatus::Active {
                active += 1;
            }
        }
        if active == ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(active, ids.len());
    let stats = h.queue_stats().await;
    assert_eq!((stats.ready, stats.in_flight, stats.dead), (0, 0, 0));
}

#[tokio::test]
async fn queued_deletion_is_finished_by_the_worker() {
    let h = Harness::queued();
    let r = h.register("Acme", "owner@acme.test").await;
    let worker = h.manager.worker(fast()).unwrap();
    let token = CancellationToken::new();
    assert_eq!(
        worker.run_once(&token).await.unwrap().unwrap().outcome,
        JobOutcome::Completed
    );

    let deleting = h.manager.delete(r.tenant.id).await.unwrap();
    assert_eq!(deleting.status, TenantStatus::Deleting);
    assert_eq!(h.pools.closed(), vec![r.tenant.id]);
    let report = worker.run_once(&token).await.unwrap().unwrap();
    assert_eq!(report.kind, jobs_kinds::DEPROVISION_TENANT);
    assert_eq!(report.outcome, JobOutcome::Completed);
    let tenant = h.manager.get(r.tenant.id).await.unwrap();
    assert_eq!(tenant.status, TenantStatus::Deleted);
    assert!(
        !tenant_manager_core::Provisioner::is_provisioned(h.provisioner.as_ref(), &tenant)
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_longer_than_the_visibility_timeout_keeps_its_lease_and_runs_once() {
    let visibility = Duration::from_millis(500);
    let h = Harness::queued();
    let r = h.register("Acme", "owner@acme.test").await;
    let jobs = Arc::new(
        InMemoryJobQueue::new(
            InMemoryJobQueueConfig::default()
                .with_visibility_timeout(visibility)
                .with_max_attempts(3),
        )
        .unwrap(),
    );
    jobs.enqueue(jobs_kinds::provision_job(r.tenant.id).unwrap())
        .await
        .unwrap();
    let slow = Arc::new(FlakyProvisioner::new(
        Arc::new(InMemoryProvisioner::new(h.data.clone())),
        Failure::Slow(visibility * 4),
    ));
    let worker = |consumer: &str| {
        ProvisioningWorker::new(
            jobs.clone(),
            h.registry.clone(),
            slow.clone(),
            fast().with_consumer(consumer),
        )
        .unwrap()
    };
    let (holder, other) = (worker("holder"), worker("other"));

    // "holder" runs the job for four visibility timeouts while "other" keeps polling.
    assert_slow_job_keeps_its_lease(&holder, &other, &slow).await;
    assert_eq!(
        h.manager.get(r.tenant.id).await.unwrap().status,
        TenantStatus::Active
    );
    assert_eq!(jobs.stats().await.unwrap(), QueueStats::new(0, 0, 0));
}

#[test]
fn provisioning_outcomes_are_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (h, _) = flaky(Failure::Transient(1));
            h.register("Acme", "owner@acme.test").await;
            let worker = h.manager.worker(fast()).unwrap();
            run_until_settled(&worker).await;
        });
    });
    // A snapshot drains the counters: take one and look everything up in it.
    let snapshot = snapshotter.snapshot().into_vec();
    let counted = |result: &str| {
        snapshot.iter().find_map(|(key, _, _, value)| {
            let key = key.key();
            let matches = key.name() == "tenant_provisioning_total"
                && key
                    .labels()
                    .any(|l| l.key() == "result" && l.value() == result);
            match (matches, value) {
                (true, DebugValue::Counter(n)) => Some(*n),
                _ => None,
            }
        })
    };
    assert_eq!(counted("retry"), Some(1));
    assert_eq!(counted("success"), Some(1));
}

#[test]
fn worker_config_is_validated() {
    for (config, field) in [
        (fast().with_consumer(""), "consumer"),
        (fast().with_consumer("bad consumer!"), "consumer"),
        (fast().with_poll_wait(Duration::ZERO), "poll_wait"),
        (
            fast().with_retry(Duration::ZERO, Duration::from_secs(1)),
            "retry_base",
        ),
        (
            fast().with_retry(Duration::from_secs(2), Duration::from_secs(1)),
            "retry_base",
        ),
        (
            fast().with_shutdown_grace(Duration::from_secs(3600)),
            "shutdown_grace",
        ),
    ] {
        assert_eq!(config.validate().unwrap_err().field(), Some(field));
    }
    assert!(WorkerConfig::default().validate().is_ok());
}
