//! Moving a tenant's storage to another database server: the steps of a move, its record and
//! the check of the copied data.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{MoveId, Placement, TenantId};
use crate::error::Error;

/// One recorded step of a move, in the order they run. A move after a crash resumes at the
/// first step not recorded, redoing at most the one in flight; every step is idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveStep {
    /// The tenant is `Moving`: writes are refused everywhere, reads go on.
    Paused,
    /// Every instance's pool of the tenant was closed, and writes in flight had time to end.
    Drained,
    /// The destination storage exists (made by the provisioning code) and holds a copy.
    Copied,
    /// Source and destination hold the same rows (per-table counts and checksums).
    Verified,
    /// The registry places the tenant on the destination.
    Switched,
    /// The tenant is `Active` again (writes resumed) and the `moved` event is out.
    Resumed,
    /// The old storage was dropped, after the grace period.
    OldDropped,
}

impl MoveStep {
    /// All steps, in order.
    pub const ALL: [MoveStep; 7] = [
        MoveStep::Paused,
        MoveStep::Drained,
        MoveStep::Copied,
        MoveStep::Verified,
        MoveStep::Switched,
        MoveStep::Resumed,
        MoveStep::OldDropped,
    ];

    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            MoveStep::Paused => "paused",
            MoveStep::Drained => "drained",
            MoveStep::Copied => "copied",
            MoveStep::Verified => "verified",
            MoveStep::Switched => "switched",
            MoveStep::Resumed => "resumed",
            MoveStep::OldDropped => "old_dropped",
        }
    }
}

impl fmt::Display for MoveStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MoveStep {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        MoveStep::ALL
            .into_iter()
            .find(|step| step.as_str() == s)
            .ok_or_else(|| Error::invalid("step", "unknown move step"))
    }
}

/// Where a move is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveState {
    /// Steps up to `resumed` are left: the tenant's writes may be paused.
    Running,
    /// The tenant is served from the destination; the old storage waits for its grace period.
    Switched,
    /// The old storage is dropped: nothing is left to do.
    Completed,
    /// Cancelled before the switch: the source is served again, the partial copy dropped.
    Cancelled,
}

impl MoveState {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            MoveState::Running => "running",
            MoveState::Switched => "switched",
            MoveState::Completed => "completed",
            MoveState::Cancelled => "cancelled",
        }
    }

    /// The state once `done` are recorded.
    pub fn after(done: &[MoveStep]) -> Self {
        if done.contains(&MoveStep::OldDropped) {
            MoveState::Completed
        } else if done.contains(&MoveStep::Resumed) {
            MoveState::Switched
        } else {
            MoveState::Running
        }
    }
}

impl FromStr for MoveState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        [
            MoveState::Running,
            MoveState::Switched,
            MoveState::Completed,
            MoveState::Cancelled,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
        .ok_or_else(|| Error::invalid("state", "unknown move state"))
    }
}

/// A move of one tenant from one placement to another, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MoveRecord {
    /// Identity.
    pub id: MoveId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Where it was.
    pub from: Placement,
    /// Where it goes.
    pub to: Placement,
    /// Steps done, in order.
    pub done: Vec<MoveStep>,
    /// Where the move is.
    pub state: MoveState,
    /// The last failure of a step, cleared when a step succeeds.
    pub last_error: Option<String>,
    /// When the old storage may be dropped (set when writes resume).
    #[serde(with = "time::serde::rfc3339::option")]
    pub drop_after: Option<OffsetDateTime>,
    /// When the move was asked for.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl MoveRecord {
    /// A record of a move not started yet.
    pub fn new(tenant_id: TenantId, from: Placement, to: Placement, now: OffsetDateTime) -> Self {
        Self {
            id: MoveId::new(),
            tenant_id,
            from,
            to,
            done: Vec::new(),
            state: MoveState::Running,
            last_error: None,
            drop_after: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether `step` is recorded.
    pub fn is_done(&self, step: MoveStep) -> bool {
        self.done.contains(&step)
    }
}

/// One table's rows on both sides of a move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TableCheck {
    /// Schema-qualified table name.
    pub table: String,
    /// Rows at the source.
    pub source_rows: u64,
    /// Rows at the destination.
    pub destination_rows: u64,
    /// MD5 of the source's rows in primary-key order (row text order without one).
    pub source_md5: String,
    /// MD5 of the destination's rows, computed alike.
    pub destination_md5: String,
}

impl TableCheck {
    /// A table's check.
    pub fn new(
        table: String,
        (source_rows, source_md5): (u64, String),
        (destination_rows, destination_md5): (u64, String),
    ) -> Self {
        Self {
            table,
            source_rows,
            destination_rows,
            source_md5,
            destination_md5,
        }
    }

    /// Whether both sides hold the same rows.
    pub fn matches(&self) -> bool {
        self.source_rows == self.destination_rows && self.source_md5 == self.destination_md5
    }
}

/// The comparison of a tenant's data at the source and the destination of a move.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MoveCheck {
    /// Every table of the tenant, in name order (the union of both sides).
    pub tables: Vec<TableCheck>,
}

impl MoveCheck {
    /// A check of `tables`.
    pub fn new(tables: Vec<TableCheck>) -> Self {
        Self { tables }
    }

    /// Whether every table matches.
    pub fn matches(&self) -> bool {
        self.tables.iter().all(TableCheck::matches)
    }

    /// The tables that differ.
    pub fn mismatches(&self) -> impl Iterator<Item = &TableCheck> {
        self.tables.iter().filter(|t| !t.matches())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_states_round_trip_and_follow_the_steps() {
        for step in MoveStep::ALL {
            assert_eq!(step.as_str().parse::<MoveStep>().ok(), Some(step));
        }
        assert_eq!(MoveState::after(&[MoveStep::Paused]), MoveState::Running);
        assert_eq!(
            MoveState::after(&[MoveStep::Switched, MoveStep::Resumed]),
            MoveState::Switched
        );
        assert_eq!(
            MoveState::after(&[MoveStep::Resumed, MoveStep::OldDropped]),
            MoveState::Completed
        );
    }
}
