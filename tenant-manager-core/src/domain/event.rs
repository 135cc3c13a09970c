//! [`TenantEvent`]: a typed record of one change in a tenant's life cycle, with the tenant,
//! who caused it and when. Its JSON form is stable (a `kind` string, snake case), so
//! consumers in other processes and webhook receivers can read it.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::ids::{EventId, TenantId, UserId};
use super::slug::TenantSlug;
use super::tenant::Tenant;

/// Largest `details` accepted with an event, in bytes of JSON: events travel through Redis
/// and webhooks, so they stay small. Larger details are replaced by a marker.
pub const MAX_EVENT_DETAILS_BYTES: usize = 16 * 1024;

/// What happened to the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The tenant was created (with its owner).
    Registered,
    /// Its storage is ready: the tenant became `Active` after provisioning.
    Provisioned,
    /// Provisioning gave up: the tenant is `Failed` (details: `reason`).
    ProvisioningFailed,
    /// The tenant was suspended (details: `reason`, when one was given).
    Suspended,
    /// A suspended tenant became active again.
    Resumed,
    /// Its storage was dropped: the tenant is `Deleted`.
    Deleted,
    /// Its record was removed for good.
    Purged,
    /// Migrations ran on its storage.
    Migrated,
    /// Its plan or quota override changed.
    PlanChanged,
    /// A backup of its data completed (details: `backup_id`).
    BackupCompleted,
    /// A backup of its data failed (details: `reason`).
    BackupFailed,
    /// It ran into a quota (details: which).
    QuotaExceeded,
    /// Its storage moved to another database server (details: `from`, `to`, `move_id`).
    Moved,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 13] = [
        EventKind::Registered,
        EventKind::Provisioned,
        EventKind::ProvisioningFailed,
        EventKind::Suspended,
        EventKind::Resumed,
        EventKind::Deleted,
        EventKind::Purged,
        EventKind::Migrated,
        EventKind::PlanChanged,
        EventKind::BackupCompleted,
        EventKind::BackupFailed,
        EventKind::QuotaExceeded,
        EventKind::Moved,
    ];

    /// The stable name, as in JSON: `registered`, `provisioning_failed`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Registered => "registered",
            EventKind::Provisioned => "provisioned",
            EventKind::ProvisioningFailed => "provisioning_failed",
            EventKind::Suspended => "suspended",
            EventKind::Resumed => "resumed",
            EventKind::Moved => "moved",
            EventKind::Deleted => "deleted",
            EventKind::Purged => "purged",
            EventKind::Migrated => "migrated",
            EventKind::PlanChanged => "plan_changed",
            EventKind::BackupCompleted => "backup_completed",
            EventKind::BackupFailed => "backup_failed",
            EventKind::QuotaExceeded => "quota_exceeded",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Actor {
    /// tenant-manager itself (the provisioning worker, a retry, a scheduled job).
    System,
    /// An operator through the admin API.
    Admin,
    /// A user of the tenant.
    User {
        /// The user.
        id: UserId,
    },
    /// The host application, under a name of its choosing.
    Host {
        /// The host's name for itself or the component that acted.
        name: String,
    },
}

/// One change in a tenant's life cycle.
///
/// Delivery is at least once wherever events cross a process boundary: receivers drop
/// duplicates by [`id`](TenantEvent::id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TenantEvent {
    /// Identity (UUID v7, ordered by creation), the same on every delivery.
    pub id: EventId,
    /// What happened.
    pub kind: EventKind,
    /// The tenant concerned.
    pub tenant_id: TenantId,
    /// Its slug at the time.
    pub tenant_slug: TenantSlug,
    /// Who caused it.
    pub actor: Actor,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Kind-specific details (an object; `{}` when there are none).
    #[serde(default = "empty_details")]
    pub details: serde_json::Value,
}

fn empty_details() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl TenantEvent {
    /// An event of `kind` about `tenant`, caused by `actor`, now, with no details.
    pub fn new(kind: EventKind, tenant: &Tenant, actor: Actor) -> Self {
        Self::about(kind, tenant.id, tenant.slug.clone(), actor)
    }

    /// An event of `kind` about the tenant `tenant_id` (slug `tenant_slug`), now.
    pub fn about(
        kind: EventKind,
        tenant_id: TenantId,
        tenant_slug: TenantSlug,
        actor: Actor,
    ) -> Self {
        Self {
            id: EventId::new(),
            kind,
            tenant_id,
            tenant_slug,
            actor,
            at: OffsetDateTime::now_utc(),
            details: empty_details(),
        }
    }

    /// Sets the details. Details that are not an object are wrapped as `{"value": ...}`;
    /// details over [`MAX_EVENT_DETAILS_BYTES`] of JSON are replaced by
    /// `{"truncated": true}`.
    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        let details = match details {
            serde_json::Value::Object(_) => details,
            other => serde_json::json!({ "value": other }),
        };
        let size = serde_json::to_vec(&details).map_or(usize::MAX, |v| v.len());
        self.details = if size > MAX_EVENT_DETAILS_BYTES {
            serde_json::json!({ "truncated": true })
        } else {
            details
        };
        self
    }

    /// The event as JSON bytes, its wire form.
    ///
    /// # Errors
    /// [`Error::Internal`](crate::error::Error::Internal) if it does not serialize (it
    /// always does: every field is plain data).
    pub fn to_json(&self) -> crate::error::Result<Vec<u8>> {
        serde_json::to_vec(self)
            .map_err(|e| crate::error::Error::internal_with("event does not serialize", e))
    }

    /// Parses the wire form.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::error::Error::InvalidInput) on field `event` when
    /// `bytes` is not a well-formed event.
    pub fn from_json(bytes: &[u8]) -> crate::error::Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|_| crate::error::Error::invalid("event", "is not a well-formed event"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug() -> TenantSlug {
        TenantSlug::new("acme").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn json_form_is_stable_and_round_trips() {
        let user = UserId::new();
        let event = TenantEvent::about(
            EventKind::ProvisioningFailed,
            TenantId::new(),
            slug(),
            Actor::User { id: user },
        )
        .with_details(serde_json::json!({ "reason": "disk full" }));
        let json: serde_json::Value =
            serde_json::from_slice(&event.to_json().unwrap_or_default()).unwrap_or_default();
        assert_eq!(json["kind"], "provisioning_failed");
        assert_eq!(json["tenant_slug"], "acme");
        assert_eq!(json["actor"]["type"], "user");
        assert_eq!(json["actor"]["id"], user.to_string());
        assert_eq!(json["details"]["reason"], "disk full");
        let back = TenantEvent::from_json(&event.to_json().unwrap_or_default()).ok();
        assert_eq!(back, Some(event));
        for kind in EventKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::Value::from(kind.as_str()))
            );
        }
        assert_eq!(
            TenantEvent::from_json(b"{}")
                .err()
                .as_ref()
                .and_then(|e| e.field()),
            Some("event")
        );
    }

    #[test]
    fn details_are_objects_and_bounded() {
        let event = TenantEvent::about(EventKind::Migrated, TenantId::new(), slug(), Actor::System);
        assert_eq!(event.details, serde_json::json!({}));
        let wrapped = event.clone().with_details(serde_json::json!(3));
        assert_eq!(wrapped.details, serde_json::json!({ "value": 3 }));
        let huge = "x".repeat(MAX_EVENT_DETAILS_BYTES + 1);
        let cut = event.with_details(serde_json::json!({ "big": huge }));
        assert_eq!(cut.details, serde_json::json!({ "truncated": true }));
    }
}
