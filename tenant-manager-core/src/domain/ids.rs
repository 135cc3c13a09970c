//! Identifiers. Tenant, user, job, backup and event ids are UUID v7: unique and ordered by creation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Error;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id (UUID v7, ordered by creation time).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// Parses an id, reporting the given field on failure.
            ///
            /// # Errors
            /// [`Error::InvalidInput`] on `field` when `s` is not a UUID.
            pub fn parse_field(s: &str, field: &'static str) -> Result<Self, Error> {
                Uuid::parse_str(s.trim())
                    .map(Self)
                    .map_err(|_| Error::invalid(field, "must be a UUID"))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::parse_field(s, $field)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

uuid_id!(
    /// Identifies a tenant.
    TenantId,
    "tenant_id"
);
uuid_id!(
    /// Identifies a user.
    UserId,
    "user_id"
);
uuid_id!(
    /// Identifies a queued job.
    JobId,
    "job_id"
);
uuid_id!(
    /// Identifies a backup.
    BackupId,
    "backup_id"
);
uuid_id!(
    /// Identifies a move of a tenant to another database server.
    MoveId,
    "move_id"
);
uuid_id!(
    /// Identifies a tenant life-cycle event: the same id on every delivery of one event, so
    /// receivers drop duplicates by it.
    EventId,
    "event_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_ordered_by_creation_and_parse_back() {
        let a = TenantId::new();
        let b = TenantId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<TenantId>().ok(), Some(a));
        let err = "nope"
            .parse::<TenantId>()
            .err()
            .map(|e| e.field().map(str::to_owned));
        assert_eq!(err, Some(Some("tenant_id".to_owned())));
    }
}

uuid_id!(
    /// Identifies an invitation to join a tenant.
    InvitationId,
    "invitation_id"
);

uuid_id!(
    /// Identifies a refresh token.
    RefreshTokenId,
    "refresh_token_id"
);
