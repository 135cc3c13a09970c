//! The host job worker on the in-memory queue: fairness under a flood, held and dropped jobs,
//! schedules fired once per tick; the schedule store suite on `InMemorySchedules`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use tenant_manager_core::host_jobs::testing;
use tenant_manager_core::memory::{InMemoryJobQueue, InMemoryJobQueueConfig, InMemorySchedules};
use tenant_manager_core::testing::Fixture;
use tenant_manager_core::{JobQueue, ScheduleStore};

fn queue() -> Arc<dyn JobQueue> {
    let config = InMemoryJobQueueConfig::default()
        .with_visibility_timeout(Duration::from_secs(5))
        .with_max_attempts(3);
    Arc::new(InMemoryJobQueue::new(config).expect("queue"))
}

#[tokio::test]
async fn a_flood_does_not_starve_other_tenants() {
    testing::a_flood_does_not_starve_other_tenants(queue())
        .await
        .expect("suite");
}

#[tokio::test]
async fn jobs_of_suspended_tenants_are_held_and_of_deleted_ones_dropped() {
    testing::jobs_of_suspended_tenants_are_held_and_of_deleted_ones_dropped(queue())
        .await
        .expect("suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_enqueue_one_job_per_tick() {
    testing::two_instances_enqueue_one_job_per_tick(queue(), Arc::new(InMemorySchedules::new()))
        .await
        .expect("suite");
}

async fn schedules() -> Fixture<dyn ScheduleStore> {
    Fixture::new(Arc::new(InMemorySchedules::new()))
}

mod schedule_suite {
    tenant_manager_core::schedule_conformance!(super::schedules);
}
