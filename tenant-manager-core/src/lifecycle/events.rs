//! Publishing life-cycle events: what happens when the bus cannot take one.
//!
//! An event is published after its change is in the registry. Publishing never fails, undoes
//! or delays the change beyond one bounded call: a failed publish is logged and counted as
//! `tenant_events_publish_failures_total`, and that event is lost for this bus (the registry
//! keeps the tenant's status; a consumer that must not miss a change reconciles from it).

use std::sync::Arc;
use std::time::Duration;

use crate::domain::{Actor, EventKind, Tenant, TenantEvent};
use crate::traits::EventBus;

/// Counter of events the bus refused or did not take in time, labelled `kind`.
pub(crate) const PUBLISH_FAILURES_TOTAL: &str = "tenant_events_publish_failures_total";
/// Counter of events published, labelled `kind`.
pub(crate) const PUBLISHED_TOTAL: &str = "tenant_events_published_total";
/// Longest a publish may hold up a life-cycle step.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes an event of `kind` about `tenant` by `actor`, with `details`, if a bus is
/// configured. Never fails: see the module docs.
pub(crate) async fn publish(
    bus: Option<&Arc<dyn EventBus>>,
    kind: EventKind,
    tenant: &Tenant,
    actor: Actor,
    details: Option<serde_json::Value>,
) {
    let Some(bus) = bus else {
        return;
    };
    let mut event = TenantEvent::new(kind, tenant, actor);
    if let Some(details) = details {
        event = event.with_details(details);
    }
    let outcome = tokio::time::timeout(PUBLISH_TIMEOUT, bus.publish(&event)).await;
    match outcome {
        Ok(Ok(())) => {
            metrics::counter!(PUBLISHED_TOTAL, "kind" => kind.as_str()).increment(1);
        }
        Ok(Err(error)) => {
            tracing::warn!(tenant = %tenant.id, event = %event.id, %kind, %error, "publishing a tenant event failed");
            metrics::counter!(PUBLISH_FAILURES_TOTAL, "kind" => kind.as_str()).increment(1);
        }
        Err(_) => {
            tracing::warn!(tenant = %tenant.id, event = %event.id, %kind, "publishing a tenant event timed out");
            metrics::counter!(PUBLISH_FAILURES_TOTAL, "kind" => kind.as_str()).increment(1);
        }
    }
}

/// The event a change to `status` is, unless the caller says otherwise: becoming `Active` is
/// the end of provisioning (resuming names its own kind).
pub(crate) fn kind_of(status: crate::domain::TenantStatus) -> Option<EventKind> {
    use crate::domain::TenantStatus;
    match status {
        TenantStatus::Active => Some(EventKind::Provisioned),
        TenantStatus::Failed => Some(EventKind::ProvisioningFailed),
        TenantStatus::Suspended => Some(EventKind::Suspended),
        TenantStatus::Deleted => Some(EventKind::Deleted),
        _ => None,
    }
}

/// `{"reason": ...}` when there is one.
pub(crate) fn reason_details(reason: Option<&str>) -> Option<serde_json::Value> {
    reason.map(|r| serde_json::json!({ "reason": r }))
}
