//! The events `TenantManager` and the provisioning worker publish for each life-cycle change,
//! and that a bus which refuses them never fails the change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use support::{Failure, FlakyProvisioner, Harness};
use tenant_manager_core::manager::{ManagerConfig, Registration, TenantManager};
use tenant_manager_core::memory::{
    InMemoryProvisioner, InMemoryQuotaEnforcer, InMemoryRegistry, InMemoryTenantData,
};
use tenant_manager_core::worker::WorkerConfig;
use tenant_manager_core::{
    Actor, Error, EventBus, EventKind, EventStream, QuotaPolicy, Result, TenantEvent, TenantStatus,
    async_trait,
};
use tokio_util::sync::CancellationToken;

/// The events waiting on `stream` now (after the calls that published them returned).
fn drain(stream: &mut EventStream) -> Vec<TenantEvent> {
    let mut events = Vec::new();
    while let Some(Some(event)) = stream.next().now_or_never() {
        events.push(event);
    }
    events
}

fn kinds(events: &[TenantEvent]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

#[tokio::test]
async fn every_change_of_the_life_cycle_is_published_once() {
    let h = Harness::new();
    let mut stream = h.events.subscribe().await.unwrap();
    let r = h.register("Acme", "owner@acme.test").await;
    let id = r.tenant.id;
    h.manager.suspend(id, "unpaid invoice").await.unwrap();
    // Repeating a suspension changes nothing and publishes nothing.
    h.manager.suspend(id, "unpaid invoice").await.unwrap();
    h.manager.resume(id).await.unwrap();
    h.manager
        .update_quota(id, Some(QuotaPolicy::default()))
        .await
        .unwrap();
    h.manager.backup_tenant(id).await.unwrap();
    h.manager.delete(id).await.unwrap();
    h.manager.purge(id).await.unwrap();

    let events = drain(&mut stream);
    assert_eq!(
        kinds(&events),
        [
            EventKind::Registered,
            EventKind::Provisioned,
            EventKind::Suspended,
            EventKind::Resumed,
            EventKind::PlanChanged,
            EventKind::BackupCompleted,
            EventKind::Deleted,
            EventKind::Purged,
        ]
    );
    for event in &events {
        assert_eq!((event.tenant_id, &event.tenant_slug), (id, &r.tenant.slug));
    }
    assert_eq!(events[0].actor, Actor::User { id: r.user.id });
    assert_eq!(events[2].details["reason"], "unpaid invoice");
    assert!(events[5].details["backup_id"].is_string());
    let ids: std::collections::HashSet<_> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), events.len(), "distinct ids");
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at));
}

#[tokio::test]
async fn the_worker_publishes_provisioned_and_provisioning_failed() {
    let data = Arc::new(InMemoryTenantData::new());
    let provisioner = Arc::new(FlakyProvisioner::new(
        Arc::new(InMemoryProvisioner::new(Arc::clone(&data))),
        Failure::Permanent,
    ));
    let h = Harness::assemble(
        ManagerConfig::default().with_async_provisioning(true),
        data,
        provisioner,
    );
    let mut stream = h.events.subscribe().await.unwrap();
    let r = h.register("Acme", "owner@acme.test").await;
    let worker = h
        .manager
        .worker(WorkerConfig::default().with_poll_wait(Duration::from_millis(500)))
        .unwrap();
    worker.run_once(&CancellationToken::new()).await.unwrap();
    let events = drain(&mut stream);
    assert_eq!(
        kinds(&events),
        [EventKind::Registered, EventKind::ProvisioningFailed]
    );
    assert_eq!(events[1].actor, Actor::System);
    assert!(
        events[1].details["reason"]
            .as_str()
            .unwrap()
            .contains("template database is corrupt")
    );
    assert_eq!(
        h.manager.get(r.tenant.id).await.unwrap().status,
        TenantStatus::Failed
    );
}

/// A bus that refuses every event, counting the attempts.
#[derive(Debug, Default)]
struct RefusingBus {
    attempts: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl EventBus for RefusingBus {
    async fn publish(&self, _event: &TenantEvent) -> Result<()> {
        self.attempts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(Error::unavailable(
            "test bus",
            std::io::Error::other("refused"),
        ))
    }

    async fn subscribe(&self) -> Result<EventStream> {
        Ok(Box::pin(futures::stream::empty()))
    }
}

#[tokio::test]
async fn a_bus_that_refuses_events_never_fails_the_change() {
    let bus = Arc::new(RefusingBus::default());
    let manager = TenantManager::builder()
        .with_registry(Arc::new(InMemoryRegistry::new()))
        .with_provisioner(Arc::new(InMemoryProvisioner::new(Arc::new(
            InMemoryTenantData::new(),
        ))))
        .with_quota(Arc::new(InMemoryQuotaEnforcer::default()))
        .with_hasher(support::cheap_hasher())
        .with_tokens(support::tokens())
        .with_events(bus.clone())
        .build()
        .unwrap();
    let r = manager
        .register_organization(Registration::new(
            "Acme",
            "owner@acme.test",
            support::PASSWORD,
        ))
        .await
        .unwrap();
    assert_eq!(r.tenant.status, TenantStatus::Active);
    let suspended = manager.suspend(r.tenant.id, "").await.unwrap();
    assert_eq!(suspended.status, TenantStatus::Suspended);
    assert_eq!(
        bus.attempts.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "registered, provisioned, suspended were attempted"
    );
}

#[tokio::test]
async fn a_handle_acting_as_the_admin_names_it_on_every_change_it_makes() {
    let h = Harness::new();
    let mut stream = h.events.subscribe().await.unwrap();
    let r = h.register("Acme", "owner@acme.test").await;
    let id = r.tenant.id;
    let admin = h.manager.acting_as(Actor::Admin);
    assert_eq!(admin.actor(), &Actor::Admin);
    assert_eq!(h.manager.actor(), &Actor::System);
    admin.suspend(id, "unpaid invoice").await.unwrap();
    admin.resume(id).await.unwrap();
    admin
        .update_quota(id, Some(QuotaPolicy::default()))
        .await
        .unwrap();
    admin.backup_tenant(id).await.unwrap();
    admin.delete(id).await.unwrap();
    admin.purge(id).await.unwrap();
    // The manager it came from still acts as the system.
    let other = h.register("Other", "owner@other.test").await;
    h.manager.suspend(other.tenant.id, "").await.unwrap();

    let events = drain(&mut stream);
    let by_admin: Vec<EventKind> = events
        .iter()
        .filter(|e| e.tenant_id == id && e.actor == Actor::Admin)
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        by_admin,
        [
            EventKind::Suspended,
            EventKind::Resumed,
            EventKind::PlanChanged,
            EventKind::BackupCompleted,
            EventKind::Deleted,
            EventKind::Purged,
        ]
    );
    let suspended_other = events
        .iter()
        .find(|e| e.tenant_id == other.tenant.id && e.kind == EventKind::Suspended)
        .map(|e| e.actor.clone());
    assert_eq!(suspended_other, Some(Actor::System));
}
