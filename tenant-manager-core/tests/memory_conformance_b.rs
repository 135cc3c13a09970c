//! The quota, cache, job queue and event bus conformance suites against the in-memory adapters, each
//! built directly and also erased to `Arc<dyn Trait>` first (the way a host holds them).

#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use tenant_manager_core::memory::{
    InMemoryCacheConfig, InMemoryEventBus, InMemoryJobQueue, InMemoryJobQueueConfig,
    InMemoryQuotaEnforcer, InMemoryTenantCache,
};
use tenant_manager_core::testing::Fixture;
use tenant_manager_core::testing::cache::{CacheCaps, CachePair};
use tenant_manager_core::testing::jobs::JobQueueCaps;
use tenant_manager_core::{EventBus, JobQueue, QuotaEnforcer, TenantCache};

/// The cache TTL the suites run with.
const TTL: Duration = Duration::from_millis(300);

/// The queue settings the suites run with.
const VISIBILITY: Duration = Duration::from_millis(400);
const MAX_ATTEMPTS: u32 = 3;

fn quota() -> InMemoryQuotaEnforcer {
    InMemoryQuotaEnforcer::default()
}

fn cache() -> InMemoryTenantCache {
    InMemoryTenantCache::new(InMemoryCacheConfig::default().with_ttl(TTL)).expect("cache config")
}

fn queue() -> InMemoryJobQueue {
    let config = InMemoryJobQueueConfig::default()
        .with_visibility_timeout(VISIBILITY)
        .with_max_attempts(MAX_ATTEMPTS);
    InMemoryJobQueue::new(config).expect("queue config")
}

/// The five suites, each in its own module, over the factories of the module it is expanded
/// in (`quota_fixture`, `cache_fixture`, `cache_pair_fixture`, `queue_fixture`,
/// `events_fixture`).
macro_rules! suites {
    () => {
        mod quota_suite {
            tenant_manager_core::quota_conformance!(super::quota_fixture);
        }
        mod cache_suite {
            tenant_manager_core::cache_conformance!(super::cache_fixture);
        }
        mod cache_pair_suite {
            tenant_manager_core::cache_pair_conformance!(super::cache_pair_fixture);
        }
        mod queue_suite {
            tenant_manager_core::job_queue_conformance!(super::queue_fixture);
        }
        mod events_suite {
            tenant_manager_core::event_bus_conformance!(super::events_fixture);
        }
    };
}

/// Factories that hand the concrete adapter to the suite.
mod direct {
    use super::*;

    pub(crate) async fn quota_fixture() -> Fixture<dyn QuotaEnforcer> {
        Fixture::new(Arc::new(quota()))
    }

    pub(crate) async fn cache_fixture() -> Fixture<dyn TenantCache, (), CacheCaps> {
        Fixture::<dyn TenantCache>::new(Arc::new(cache())).with_caps(CacheCaps::new(TTL))
    }

    /// Two handles to one cache: the in-memory cache's only way to be shared.
    pub(crate) async fn cache_pair_fixture() -> Fixture<CachePair, (), CacheCaps> {
        let shared = cache();
        let pair = CachePair {
            a: Arc::new(shared.clone()),
            b: Arc::new(shared),
        };
        Fixture::new(Arc::new(pair)).with_caps(CacheCaps::new(TTL))
    }

    pub(crate) async fn queue_fixture() -> Fixture<dyn JobQueue, (), JobQueueCaps> {
        Fixture::<dyn JobQueue>::new(Arc::new(queue()))
            .with_caps(JobQueueCaps::new(VISIBILITY, MAX_ATTEMPTS))
    }

    pub(crate) async fn events_fixture() -> Fixture<dyn EventBus> {
        Fixture::new(Arc::new(InMemoryEventBus::default()))
    }

    suites!();
}

/// Factories that erase the adapter to `Arc<dyn Trait>` first, as a host picking adapters at
/// start-up does, and give the suite a clone of that handle while the host's stays alive.
mod through_dyn {
    use super::*;

    fn shared<T: ?Sized + Send + Sync + 'static>(held: Arc<T>) -> Fixture<T, Arc<T>> {
        Fixture::with_guard(Arc::clone(&held), held)
    }

    pub(crate) async fn quota_fixture() -> Fixture<dyn QuotaEnforcer, Arc<dyn QuotaEnforcer>> {
        let held: Arc<dyn QuotaEnforcer> = Arc::new(quota());
        shared(held)
    }

    pub(crate) async fn cache_fixture() -> Fixture<dyn TenantCache, Arc<dyn TenantCache>, CacheCaps>
    {
        let held: Arc<dyn TenantCache> = Arc::new(cache());
        shared(held).with_caps(CacheCaps::new(TTL))
    }

    /// Both sides are clones of one `Arc<dyn TenantCache>`.
    pub(crate) async fn cache_pair_fixture() -> Fixture<CachePair, (), CacheCaps> {
        let held: Arc<dyn TenantCache> = Arc::new(cache());
        let pair = CachePair {
            a: Arc::clone(&held),
            b: held,
        };
        Fixture::new(Arc::new(pair)).with_caps(CacheCaps::new(TTL))
    }

    pub(crate) async fn queue_fixture() -> Fixture<dyn JobQueue, Arc<dyn JobQueue>, JobQueueCaps> {
        let held: Arc<dyn JobQueue> = Arc::new(queue());
        shared(held).with_caps(JobQueueCaps::new(VISIBILITY, MAX_ATTEMPTS))
    }

    pub(crate) async fn events_fixture() -> Fixture<dyn EventBus, Arc<dyn EventBus>> {
        let held: Arc<dyn EventBus> = Arc::new(InMemoryEventBus::default());
        shared(held)
    }

    suites!();
}
