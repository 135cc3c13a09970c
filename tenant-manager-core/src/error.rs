//! The one error type of tenant-manager.

use std::borrow::Cow;
use std::time::Duration;

use crate::domain::{TenantId, TenantStatus};

/// A boxed error from a backend driver, kept as the `source` of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across tenant-manager.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of thing was not found or conflicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Entity {
    /// A tenant.
    Tenant,
    /// A user of a tenant.
    User,
    /// A backup artifact.
    Backup,
    /// A queued job.
    Job,
    /// A tenant-scoped record of a host application.
    Record,
    /// An invitation to join a tenant.
    Invitation,
}

impl Entity {
    /// Lowercase name, as used in error codes.
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Tenant => "tenant",
            Entity::User => "user",
            Entity::Backup => "backup",
            Entity::Job => "job",
            Entity::Record => "record",
            Entity::Invitation => "invitation",
        }
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every failure tenant-manager reports. Variants say what a caller can do.
///
/// Match on the variant, or use [`Error::code`] for a stable string (for example in an HTTP
/// body) and [`Error::is_retryable`] to decide whether to try again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The entity does not exist.
    #[error("{entity} not found: {key}")]
    NotFound {
        /// What was looked up.
        entity: Entity,
        /// The key it was looked up by (never a secret).
        key: String,
    },
    /// The entity exists already, or a unique field is taken.
    #[error("{entity} conflict on {field}: {message}")]
    Conflict {
        /// What conflicted.
        entity: Entity,
        /// The unique field that is taken (`email`, `slug`, ...).
        field: Cow<'static, str>,
        /// A human readable explanation.
        message: String,
    },
    /// An input failed validation; `field` names it.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field.
        field: Cow<'static, str>,
        /// Why it was refused.
        reason: Cow<'static, str>,
    },
    /// A tenant cannot move from one status to another.
    #[error("tenant {tenant} cannot go from {from} to {to}")]
    InvalidTransition {
        /// The tenant.
        tenant: TenantId,
        /// Its current status.
        from: TenantStatus,
        /// The status that was asked for.
        to: TenantStatus,
    },
    /// Credentials are missing or wrong. The reason is generic on purpose.
    #[error("unauthenticated: {reason}")]
    Unauthenticated {
        /// A short, non-revealing reason.
        reason: Cow<'static, str>,
    },
    /// The caller is known but not allowed to do this.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why.
        reason: Cow<'static, str>,
    },
    /// The tenant is suspended.
    #[error("tenant {tenant} is suspended")]
    Suspended {
        /// The tenant.
        tenant: TenantId,
    },
    /// The tenant is being moved to another database server: its writes are paused.
    #[error("tenant {tenant} is moving; retry after {retry_after:?}")]
    Moving {
        /// The tenant.
        tenant: TenantId,
        /// When trying again may succeed.
        retry_after: Duration,
    },
    /// The tenant exists but is not ready to serve (still provisioning, failed, or deleting).
    #[error("tenant {tenant} is not ready: {status}")]
    NotReady {
        /// The tenant.
        tenant: TenantId,
        /// Its status.
        status: TenantStatus,
    },
    /// A rate limit or usage quota was hit.
    #[error("quota {quota} exceeded (limit {limit}); retry after {retry_after:?}")]
    QuotaExceeded {
        /// Which quota (`requests`, `users`, `storage_bytes`, ...).
        quota: Cow<'static, str>,
        /// The limit that applies.
        limit: u64,
        /// When trying again may succeed ([`Duration::ZERO`] when only a plan change helps).
        retry_after: Duration,
    },
    /// No connection could be had within the acquire timeout.
    #[error("connection pool exhausted after waiting {waited:?}")]
    PoolExhausted {
        /// How long the caller waited.
        waited: Duration,
    },
    /// No database server can take a new tenant: every server that may hold it (of its region,
    /// when it has one) has reached its capacity. More servers, or more capacity, are needed.
    #[error("no database server capacity: {reason}")]
    NoCapacity {
        /// Which servers were full (ids and capacities, never a secret).
        reason: Cow<'static, str>,
    },
    /// A backend (database, Redis, a tool such as pg_dump) could not be reached or failed transiently.
    #[error("{backend} unavailable")]
    Unavailable {
        /// Which backend.
        backend: Cow<'static, str>,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// A bug, a broken invariant, or a backend failure that is not the caller's to act on.
    #[error("internal error: {message}")]
    Internal {
        /// What went wrong (never a secret).
        message: Cow<'static, str>,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// A stable, HTTP-free code for this error, such as `tenant_not_found` or `quota_exceeded`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound { entity, .. } => match entity {
                Entity::Tenant => "tenant_not_found",
                Entity::User => "user_not_found",
                Entity::Backup => "backup_not_found",
                Entity::Job => "job_not_found",
                Entity::Record => "record_not_found",
                Entity::Invitation => "invitation_not_found",
            },
            Error::Conflict { .. } => "conflict",
            Error::InvalidInput { .. } => "invalid_input",
            Error::InvalidTransition { .. } => "invalid_status_transition",
            Error::Unauthenticated { .. } => "unauthenticated",
            Error::Forbidden { .. } => "forbidden",
            Error::Suspended { .. } => "tenant_suspended",
            Error::NotReady { .. } => "tenant_not_ready",
            Error::Moving { .. } => "tenant_moving",
            Error::QuotaExceeded { .. } => "quota_exceeded",
            Error::PoolExhausted { .. } => "pool_exhausted",
            Error::NoCapacity { .. } => "no_server_capacity",
            Error::Unavailable { .. } => "backend_unavailable",
            Error::Internal { .. } => "internal",
        }
    }

    /// The input field this error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidInput { field, .. } | Error::Conflict { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Whether the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. }
                | Error::PoolExhausted { .. }
                | Error::QuotaExceeded { .. }
                | Error::NotReady { .. }
                | Error::Moving { .. }
        )
    }

    /// How long to wait before retrying, where the error says.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::QuotaExceeded { retry_after, .. } | Error::Moving { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// Builds [`Error::InvalidInput`].
    pub fn invalid(
        field: impl Into<Cow<'static, str>>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Builds [`Error::NotFound`].
    pub fn not_found(entity: Entity, key: impl std::fmt::Display) -> Self {
        Error::NotFound {
            entity,
            key: key.to_string(),
        }
    }

    /// Builds [`Error::Conflict`].
    pub fn conflict(
        entity: Entity,
        field: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Error::Conflict {
            entity,
            field: field.into(),
            message: message.into(),
        }
    }

    /// Builds [`Error::Unavailable`] from a backend error.
    pub fn unavailable(backend: impl Into<Cow<'static, str>>, source: impl Into<BoxError>) -> Self {
        Error::Unavailable {
            backend: backend.into(),
            source: source.into(),
        }
    }

    /// Builds [`Error::Internal`] without a source.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Error::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// Builds [`Error::Internal`] with a source.
    pub fn internal_with(
        message: impl Into<Cow<'static, str>>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Internal {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Builds [`Error::Unauthenticated`].
    pub fn unauthenticated(reason: impl Into<Cow<'static, str>>) -> Self {
        Error::Unauthenticated {
            reason: reason.into(),
        }
    }

    /// Builds [`Error::Forbidden`].
    pub fn forbidden(reason: impl Into<Cow<'static, str>>) -> Self {
        Error::Forbidden {
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_fields_are_reported() {
        let e = Error::invalid("admin_email", "must contain @");
        assert_eq!(e.code(), "invalid_input");
        assert_eq!(e.field(), Some("admin_email"));
        assert!(!e.is_retryable());
        let e = Error::not_found(Entity::Tenant, "abc");
        assert_eq!(e.code(), "tenant_not_found");
        let e = Error::PoolExhausted {
            waited: Duration::from_millis(5),
        };
        assert!(e.is_retryable());
        assert_eq!(e.code(), "pool_exhausted");
    }
}
