//! The host job worker on `RedisJobQueue` against the real Redis: one tenant's flood does not
//! starve the others (the lanes' round robin), jobs of suspended tenants are held without
//! using up attempts, jobs of deleted tenants are dropped; schedules fire one job per tick
//! across instances, and `RedisSchedules` passes the schedule store suite.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use tenant_manager_core::host_jobs::testing;
use tenant_manager_core::testing::Fixture;
use tenant_manager_core::{JobQueue, ScheduleStore};
use tenant_manager_redis::{JobQueueConfig, RedisJobQueue, RedisSchedules};
use tenant_manager_test_support::TestRedis;

async fn queue(redis: &TestRedis) -> Arc<dyn JobQueue> {
    let pool = support::pool(redis).await;
    let config = JobQueueConfig::default()
        .with_name("host-jobs")
        .with_visibility_timeout(Duration::from_secs(5))
        .with_max_attempts(3)
        .with_poll_interval(Duration::from_millis(100));
    Arc::new(RedisJobQueue::new(&pool, config).expect("queue"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_does_not_starve_other_tenants() {
    let redis = TestRedis::create().await;
    testing::a_flood_does_not_starve_other_tenants(queue(&redis).await)
        .await
        .expect("suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_suspended_tenants_are_held_and_of_deleted_ones_dropped() {
    let redis = TestRedis::create().await;
    testing::jobs_of_suspended_tenants_are_held_and_of_deleted_ones_dropped(queue(&redis).await)
        .await
        .expect("suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_enqueue_one_job_per_tick() {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let schedules = RedisSchedules::new(&pool, "host").expect("schedules");
    testing::two_instances_enqueue_one_job_per_tick(queue(&redis).await, Arc::new(schedules))
        .await
        .expect("suite");
}

async fn schedules() -> Fixture<dyn ScheduleStore, TestRedis> {
    let redis = TestRedis::create().await;
    let pool = support::pool(&redis).await;
    let store: Arc<dyn ScheduleStore> =
        Arc::new(RedisSchedules::new(&pool, "host").expect("schedules"));
    Fixture::with_guard(store, redis)
}

mod schedule_suite {
    tenant_manager_core::schedule_conformance!(super::schedules);
}
