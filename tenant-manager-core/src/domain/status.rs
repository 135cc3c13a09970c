//! The tenant life cycle and the one function that decides which transitions are legal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Where a tenant is in its life cycle.
///
/// ```text
/// Pending -> Provisioning -> Active <-> Suspended -> Deleting -> Deleted
///            Provisioning -> Failed -> Provisioning (retry)
///                            Active <-> Moving (to another database server)
/// ```
/// `Active`, `Failed` and `Pending` may also go to `Deleting`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Registered; storage not yet requested.
    Pending,
    /// Storage is being created.
    Provisioning,
    /// Serving.
    Active,
    /// Refused at the door; data kept.
    Suspended,
    /// Being moved to another database server: reads are served, writes are refused until
    /// the move switches its placement and brings it back to `Active`.
    Moving,
    /// Provisioning failed; see the tenant's status reason.
    Failed,
    /// Storage is being dropped.
    Deleting,
    /// Gone (soft-deleted record kept until purge).
    Deleted,
}

impl TenantStatus {
    /// All statuses, in life-cycle order.
    pub const ALL: [TenantStatus; 8] = [
        TenantStatus::Pending,
        TenantStatus::Provisioning,
        TenantStatus::Active,
        TenantStatus::Suspended,
        TenantStatus::Moving,
        TenantStatus::Failed,
        TenantStatus::Deleting,
        TenantStatus::Deleted,
    ];

    /// Whether `self -> to` is a legal transition. Every adapter calls this one function.
    pub fn can_transition_to(self, to: TenantStatus) -> bool {
        use TenantStatus::*;
        matches!(
            (self, to),
            (Pending, Provisioning)
                | (Provisioning, Active)
                | (Provisioning, Failed)
                | (Failed, Provisioning)
                | (Active, Suspended)
                | (Suspended, Active)
                | (Active, Moving)
                | (Moving, Active)
                | (Pending | Active | Suspended | Failed, Deleting)
                | (Deleting, Deleted)
        )
    }

    /// Whether requests of this tenant may be served.
    pub fn is_serving(self) -> bool {
        self == TenantStatus::Active
    }

    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Pending => "pending",
            TenantStatus::Provisioning => "provisioning",
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Moving => "moving",
            TenantStatus::Failed => "failed",
            TenantStatus::Deleting => "deleting",
            TenantStatus::Deleted => "deleted",
        }
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TenantStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        TenantStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::invalid("status", "unknown tenant status"))
    }
}

/// Checks the reason recorded with a status change (why a tenant is suspended or failed): at
/// most 1000 characters, no control characters but line breaks; no reason at all passes.
/// Every registry checks it before a transition, so all adapters accept and refuse the same
/// reasons.
///
/// # Errors
/// [`Error::InvalidInput`] on field `reason`.
pub fn validate_status_reason(reason: Option<&str>) -> Result<(), Error> {
    let Some(reason) = reason else {
        return Ok(());
    };
    if reason.chars().count() > 1000 || reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::invalid(
            "reason",
            "must be at most 1000 characters without control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TenantStatus::*;
    use super::*;

    #[test]
    fn legal_transitions_follow_the_life_cycle() {
        assert!(Pending.can_transition_to(Provisioning));
        assert!(Provisioning.can_transition_to(Active));
        assert!(Active.can_transition_to(Suspended));
        assert!(Suspended.can_transition_to(Active));
        assert!(Failed.can_transition_to(Provisioning));
        assert!(Suspended.can_transition_to(Deleting));
        assert!(Deleting.can_transition_to(Deleted));
        assert!(!Deleted.can_transition_to(Active));
        assert!(!Active.can_transition_to(Provisioning));
        assert!(!Pending.can_transition_to(Active));
        assert!(!Deleting.can_transition_to(Active));
        for s in TenantStatus::ALL {
            assert!(!s.can_transition_to(s), "{s} -> {s}");
            assert_eq!(s.as_str().parse::<TenantStatus>().ok(), Some(s));
        }
    }

    #[test]
    fn status_reasons_are_bounded_and_printable_but_for_line_breaks() {
        assert!(validate_status_reason(None).is_ok());
        assert!(validate_status_reason(Some("")).is_ok());
        assert!(validate_status_reason(Some("unpaid\nsince March")).is_ok());
        assert!(validate_status_reason(Some(&"é".repeat(1000))).is_ok());
        for bad in [
            "a\u{0}b".to_owned(),
            "tab\there".to_owned(),
            "x".repeat(1001),
        ] {
            let err = validate_status_reason(Some(&bad)).err();
            assert_eq!(
                err.as_ref().and_then(Error::field),
                Some("reason"),
                "{bad:?}"
            );
        }
    }
}
