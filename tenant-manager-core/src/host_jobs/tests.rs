use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::domain::{Isolation, NewTenant, TenantSlug, TenantStatus};
use crate::error::{Error, Result};
use crate::memory::{InMemoryJobQueue, InMemoryJobQueueConfig, InMemoryRegistry};
use crate::traits::{JobQueue, TenantRegistry};

async fn active(registry: &InMemoryRegistry, slug: &str) -> crate::domain::Tenant {
    let new = NewTenant::new(
        TenantSlug::new(slug).unwrap_or_else(|e| panic!("{e}")),
        slug,
        Isolation::Schema,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tenant = registry
        .create_tenant(new)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for status in [TenantStatus::Provisioning, TenantStatus::Active] {
        registry
            .transition(tenant.id, status, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    registry
        .get_tenant(tenant.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn queue(max_attempts: u32) -> Arc<InMemoryJobQueue> {
    let config = InMemoryJobQueueConfig::default().with_max_attempts(max_attempts);
    Arc::new(InMemoryJobQueue::new(config).unwrap_or_else(|e| panic!("{e}")))
}

async fn noop(_ctx: JobContext<()>, _payload: serde_json::Value) -> Result<()> {
    Ok(())
}

fn field<T>(result: Result<T>) -> Option<String> {
    result.err().and_then(|e| e.field().map(str::to_owned))
}

#[tokio::test]
async fn kinds_are_validated_and_only_registered_kinds_of_active_tenants_are_enqueued() {
    let registry = Arc::new(InMemoryRegistry::new());
    let builder = || HostJobs::<()>::builder(queue(3), registry.clone());
    assert_eq!(
        field(builder().register("Bad Kind", noop)).as_deref(),
        Some("kind")
    );
    assert_eq!(
        field(builder().register("tenant.provision", noop)).as_deref(),
        Some("kind")
    );
    let twice = builder()
        .register("a.b", noop)
        .and_then(|b| b.register("a.b", noop));
    assert_eq!(field(twice).as_deref(), Some("kind"));

    let jobs = builder()
        .register("reports.build", noop)
        .unwrap_or_else(|e| panic!("{e}"))
        .build();
    assert_eq!(jobs.kinds().collect::<Vec<_>>(), ["reports.build"]);
    let acme = active(&registry, "acme").await;
    let unknown = jobs
        .enqueue(acme.id, "reports.other", serde_json::json!({}))
        .await;
    assert_eq!(field(unknown).as_deref(), Some("kind"));
    let nobody = jobs
        .enqueue(
            crate::domain::TenantId::new(),
            "reports.build",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(nobody.err().map(|e| e.code()), Some("tenant_not_found"));
    let late = jobs
        .enqueue_in(
            acme.id,
            "reports.build",
            serde_json::json!({}),
            Duration::MAX,
        )
        .await;
    assert_eq!(field(late).as_deref(), Some("delay"));
    assert!(
        jobs.enqueue(acme.id, "reports.build", serde_json::json!({}))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_handler_gets_the_jobs_tenant_and_payload_and_failures_retry_then_dead_letter() {
    let registry = Arc::new(InMemoryRegistry::new());
    let acme = active(&registry, "acme").await;
    let calls = Arc::new(AtomicU32::new(0));
    let jobs = HostJobs::<()>::builder(queue(2), registry.clone())
        .register("mail.send", {
            let calls = Arc::clone(&calls);
            move |ctx: JobContext<()>, payload: serde_json::Value| {
                let calls = Arc::clone(&calls);
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(ctx.kind(), "mail.send");
                    assert_eq!(payload["to"], ctx.tenant().slug.as_str());
                    Err(Error::internal("smtp down"))
                }
            }
        })
        .and_then(|b| {
            b.register(
                "mail.panic",
                |_ctx: JobContext<()>, _p: serde_json::Value| async { panic!("handler bug") },
            )
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .build();
    jobs.enqueue(acme.id, "mail.send", serde_json::json!({ "to": "acme" }))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let worker = jobs
        .worker(
            HostWorkerConfig::default()
                .with_retry(Duration::from_millis(1), Duration::from_millis(2)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let token = CancellationToken::new();
    let first = worker
        .run_once(&token)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        first.map(|r| r.outcome),
        Some(HostJobOutcome::Retrying { .. })
    ));
    let second = worker
        .run_once(&token)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        second.map(|r| r.outcome),
        Some(HostJobOutcome::DeadLettered)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let dead = jobs
        .queue()
        .dead_letters(5)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dead.first().and_then(|j| j.tenant_id), Some(acme.id));

    jobs.enqueue(acme.id, "mail.panic", serde_json::json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let panicked = worker
        .run_once(&token)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(
            panicked.map(|r| r.outcome),
            Some(HostJobOutcome::Retrying { .. })
        ),
        "a panicking handler fails the job, not the worker"
    );
}

#[tokio::test]
async fn a_context_without_pools_says_so_and_unknown_kinds_are_rejected() {
    let registry = Arc::new(InMemoryRegistry::new());
    let acme = active(&registry, "acme").await;
    let q = queue(3);
    let jobs = HostJobs::<()>::builder(q.clone(), registry.clone())
        .register(
            "db.touch",
            |mut ctx: JobContext<()>, _p: serde_json::Value| async move {
                let err = ctx.conn().await.err();
                assert_eq!(err.map(|e| e.code()), Some("internal"));
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .build();
    jobs.enqueue(acme.id, "db.touch", serde_json::json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let new = crate::traits::NewJob::new("not.mine", Some(acme.id), serde_json::json!({}))
        .unwrap_or_else(|e| panic!("{e}"));
    q.enqueue(new).await.unwrap_or_else(|e| panic!("{e}"));
    let worker = jobs
        .worker(HostWorkerConfig::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let token = CancellationToken::new();
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let report = worker
            .run_once(&token)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        outcomes.extend(report.map(|r| r.outcome));
    }
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        [HostJobOutcome::Completed, HostJobOutcome::Rejected]
    );
}

#[test]
fn worker_config_is_validated() {
    let field = |c: HostWorkerConfig| {
        c.validate()
            .err()
            .and_then(|e| e.field().map(str::to_owned))
    };
    assert_eq!(field(HostWorkerConfig::default()), None);
    assert_eq!(
        field(HostWorkerConfig::default().with_hold_delay(Duration::ZERO)).as_deref(),
        Some("hold_delay")
    );
    assert_eq!(
        field(HostWorkerConfig::default().with_consumer("bad name")).as_deref(),
        Some("consumer")
    );
}
