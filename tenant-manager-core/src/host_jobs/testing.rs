//! Checks of the host job worker that this crate's tests run on the in-memory queue and the
//! adapters' tests on their real queues (feature `testing`). Assertions panic, as tests do;
//! a failing queue, registry or worker is returned as the error.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{HostJobOutcome, HostJobs, HostWorkerConfig, JobContext};
use crate::domain::{Isolation, TenantId, TenantStatus};
use crate::error::{Error, Result};
use crate::memory::InMemoryRegistry;
use crate::testing::support::{sample_tenant, tenant_in};
use crate::traits::{JobQueue, ScheduleStore, TenantRegistry};

/// Jobs tenant A floods the queue with before B and C enqueue theirs.
pub const FLOOD: usize = 1000;
/// Jobs B and C each enqueue after A's flood.
pub const SMALL: usize = 10;

/// Tenant A enqueues [`FLOOD`] jobs, then B and C [`SMALL`] each, on `queue` (empty, of its
/// own). With `T = 3` tenants having work, the fairness bound of the
/// [`JobQueue`](crate::traits::JobQueue) contract says a tenant's `k`-th job starts within
/// `k * T` jobs: all of B's and C's jobs have run within the first `3 * SMALL` jobs the
/// worker handles, whatever A queued before them. Runs exactly that many jobs and asserts it.
///
/// # Errors
/// The queue's, registry's or worker's errors.
///
/// # Panics
/// When the bound does not hold, or the worker fails.
pub async fn a_flood_does_not_starve_other_tenants(queue: Arc<dyn JobQueue>) -> Result<()> {
    let registry: Arc<dyn TenantRegistry> = Arc::new(InMemoryRegistry::new());
    let mut tenants = Vec::new();
    for _ in 0..3 {
        let tenant = tenant_in(
            registry.as_ref(),
            sample_tenant(Isolation::Schema),
            TenantStatus::Active,
        )
        .await;
        tenants.push(tenant.id);
    }
    let [a, b, c] = tenants[..] else {
        return Err(missing("three tenants"));
    };
    let ran: Arc<Mutex<Vec<TenantId>>> = Arc::default();
    let jobs = HostJobs::<()>::builder(queue, registry)
        .register("test.flood", {
            let ran = Arc::clone(&ran);
            move |ctx: JobContext<()>, _payload: serde_json::Value| {
                let ran = Arc::clone(&ran);
                async move {
                    ran.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(ctx.tenant().id);
                    Ok(())
                }
            }
        })?
        .build();
    for n in 0..FLOOD {
        jobs.enqueue(a, "test.flood", serde_json::json!({ "n": n }))
            .await?;
    }
    for n in 0..SMALL {
        for tenant in [b, c] {
            jobs.enqueue(tenant, "test.flood", serde_json::json!({ "n": n }))
                .await?;
        }
    }
    let worker = jobs.worker(HostWorkerConfig::default().with_poll_wait(Duration::from_secs(5)))?;
    let bound = 3 * SMALL;
    let token = CancellationToken::new();
    for _ in 0..bound {
        let report = worker
            .run_once(&token)
            .await?
            .ok_or_else(|| missing("a job"))?;
        assert_eq!(report.outcome, HostJobOutcome::Completed);
    }
    let ran = ran.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let count = |t: TenantId| ran.iter().filter(|x| **x == t).count();
    assert_eq!(
        (count(b), count(c)),
        (SMALL, SMALL),
        "all of B's and C's jobs ran within the first {bound} of {} jobs",
        FLOOD + 2 * SMALL
    );
    let ready = jobs.queue().stats().await?.ready;
    assert_eq!(ready, small(FLOOD - SMALL), "A's jobs wait");
    Ok(())
}

/// A job of a suspended tenant is held (not run, no attempt used) until the tenant is resumed,
/// then runs once on its first attempt; a job of a tenant being deleted is dropped, never run.
///
/// # Errors
/// The queue's, registry's or worker's errors.
///
/// # Panics
/// When any of that does not hold.
pub async fn jobs_of_suspended_tenants_are_held_and_of_deleted_ones_dropped(
    queue: Arc<dyn JobQueue>,
) -> Result<()> {
    let registry: Arc<dyn TenantRegistry> = Arc::new(InMemoryRegistry::new());
    let held = tenant_in(
        registry.as_ref(),
        sample_tenant(Isolation::Schema),
        TenantStatus::Active,
    )
    .await;
    let gone = tenant_in(
        registry.as_ref(),
        sample_tenant(Isolation::Schema),
        TenantStatus::Active,
    )
    .await;
    let ran: Arc<Mutex<Vec<(TenantId, u32)>>> = Arc::default();
    let jobs = HostJobs::<()>::builder(queue, Arc::clone(&registry))
        .register("test.held", {
            let ran = Arc::clone(&ran);
            move |ctx: JobContext<()>, _payload: serde_json::Value| {
                let ran = Arc::clone(&ran);
                async move {
                    ran.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((ctx.tenant().id, ctx.attempt()));
                    Ok(())
                }
            }
        })?
        .build();
    jobs.enqueue(held.id, "test.held", serde_json::json!({}))
        .await?;
    jobs.enqueue(gone.id, "test.held", serde_json::json!({}))
        .await?;
    registry
        .transition(held.id, TenantStatus::Suspended, None)
        .await?;
    registry
        .transition(gone.id, TenantStatus::Deleting, None)
        .await?;
    let refused = jobs
        .enqueue(held.id, "test.held", serde_json::json!({}))
        .await;
    assert_eq!(refused.err().map(|e| e.code()), Some("tenant_suspended"));

    let worker = jobs.worker(
        HostWorkerConfig::default()
            .with_poll_wait(Duration::from_millis(200))
            .with_hold_delay(Duration::from_millis(50)),
    )?;
    let token = CancellationToken::new();
    let mut outcomes = Vec::new();
    // Held again and again (more often than the queue allows attempts) while suspended.
    for _ in 0..12 {
        if let Some(report) = worker.run_once(&token).await? {
            outcomes.push((report.tenant, report.outcome, report.attempt));
        }
    }
    assert!(
        ran.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty(),
        "nothing ran"
    );
    assert!(outcomes.contains(&(Some(gone.id), HostJobOutcome::Dropped, 1)));
    let holds = outcomes
        .iter()
        .filter(|o| **o == (Some(held.id), HostJobOutcome::Held, 1))
        .count();
    assert!(
        holds >= 6,
        "held on every delivery, attempt 1 each time: {outcomes:?}"
    );
    assert!(jobs.queue().dead_letters(10).await?.is_empty());

    registry
        .transition(held.id, TenantStatus::Active, None)
        .await?;
    let mut report = None;
    for _ in 0..20 {
        report = worker.run_once(&token).await?;
        if report.is_some() {
            break;
        }
    }
    let report = report.ok_or_else(|| missing("the held job comes back"))?;
    assert_eq!(report.outcome, HostJobOutcome::Completed);
    assert_eq!(
        *ran.lock().unwrap_or_else(PoisonError::into_inner),
        vec![(held.id, 1)],
        "ran once, for its tenant, on its first attempt"
    );
    Ok(())
}

/// Two instances (two [`HostJobs`] over the same `queue` and `schedules`, empty) fire one
/// schedule of a 100 ms interval side by side: together they enqueue no more jobs than ticks
/// came due meanwhile (one per 100 ms, plus one), at least two, and the queue holds exactly
/// the jobs they reported.
///
/// # Errors
/// The queue's, registry's or worker's errors.
///
/// # Panics
/// When any of that does not hold.
pub async fn two_instances_enqueue_one_job_per_tick(
    queue: Arc<dyn JobQueue>,
    schedules: Arc<dyn ScheduleStore>,
) -> Result<()> {
    let registry: Arc<dyn TenantRegistry> = Arc::new(InMemoryRegistry::new());
    let tenant = tenant_in(
        registry.as_ref(),
        sample_tenant(Isolation::Schema),
        TenantStatus::Active,
    )
    .await;
    let instance = || {
        HostJobs::<()>::builder(Arc::clone(&queue), Arc::clone(&registry))
            .with_schedules(Arc::clone(&schedules))
            .register(
                "test.tick",
                |_ctx: JobContext<()>, _p: serde_json::Value| async { Ok(()) },
            )
            .map(super::HostJobsBuilder::build)
    };
    let (one, two) = (instance()?, instance()?);
    one.schedule(
        tenant.id,
        "every_tick",
        "test.tick",
        serde_json::json!({}),
        Duration::from_millis(100),
    )
    .await?;
    let fire = |jobs: HostJobs<()>| async move {
        let mut fired = 0;
        for _ in 0..40 {
            fired += jobs.fire_due().await?;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok::<_, Error>(fired)
    };
    let started = tokio::time::Instant::now();
    let (a, b) = tokio::join!(fire(one.clone()), fire(two));
    let (a, b) = (a?, b?);
    let ticks_due = started.elapsed().as_millis() / 100 + 1;
    assert!(a + b >= 2, "the schedule ticked: {a} + {b}");
    assert!(
        u128::from(small(a + b)) <= ticks_due,
        "no tick fired twice: {a} + {b} jobs for at most {ticks_due} ticks"
    );
    let ready = queue.stats().await?.ready;
    assert_eq!(ready, small(a + b), "one job per tick");
    assert_eq!(one.schedules(tenant.id).await?.len(), 1);
    assert!(one.unschedule(tenant.id, "every_tick").await?);
    Ok(())
}

/// A count of this suite as a queue figure.
fn small(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The error of a step that found nothing where the suite expects something.
fn missing(what: &str) -> Error {
    Error::internal(format!("host job suite: no {what}"))
}
