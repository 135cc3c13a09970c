//! `TenantMover`: the storage side of moving a tenant to another database server, and the
//! record of each move's steps.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::{MoveCheck, MoveId, MoveRecord, MoveStep, Placement, Tenant, TenantId};
use crate::error::Result;

/// Records moves and does their storage work. The step machine (pause, drain, switch, resume,
/// events, the delayed drop) is the manager's; it calls these in order and records each step.
///
/// # Contract
/// - At most one move per tenant is `Running` at a time: `begin` refuses a second. Several may
///   be `Switched` (their old storage waiting for its grace period).
/// - A `Cancelled` move records no further step: `record` refuses it.
/// - `fence` makes the tenant's storage at its placement refuse writes of clients that missed
///   the application's pause, where the isolation allows it (see the adapter), capturing first
///   what it takes away; `lift_fence` gives exactly that back. Both are idempotent. `fence`
///   refuses a move that is no longer `Running`, checked so that it never interleaves with a
///   cancel's `lift_fence` or a drop of the partial copy (and `copy` likewise).
/// - Steps are recorded durably before `record` returns; a recorded step is never run again.
/// - `copy` and `drop_storage` are idempotent: running them again after a crash halfway ends
///   in the same state; `copy` replaces whatever a previous attempt left at the destination.
/// - `copy` makes the destination storage with the same roles, grants and row-level security
///   as provisioning.
/// - `drop_storage` never drops a placement the tenant is recorded at in the registry.
///
/// # Errors
/// - `Conflict` (field `tenant`) from `begin` when the tenant has an unfinished move.
/// - `NotFound` (entity `Record`) for an unknown move.
/// - `Conflict` (field `checksum`) from `verify` when the copy differs from the source.
/// - `Conflict` (field `state`) from `record`, `copy` and `fence` when the move was cancelled,
///   from `cancel` when it is switched already.
/// - `Unavailable` when a server or the global database cannot be reached.
#[async_trait]
pub trait TenantMover: std::fmt::Debug + Send + Sync + 'static {
    /// Records a new move of `tenant` (at its current placement) to `to`.
    async fn begin(&self, tenant: &Tenant, to: &Placement) -> Result<MoveRecord>;

    /// The tenant's latest move, if any.
    async fn latest(&self, tenant: TenantId) -> Result<Option<MoveRecord>>;

    /// Records `step` as done (idempotent), clearing the last error; with `drop_after`, also
    /// when the old storage may go.
    async fn record(
        &self,
        id: MoveId,
        step: MoveStep,
        drop_after: Option<OffsetDateTime>,
    ) -> Result<MoveRecord>;

    /// Records why a step failed.
    async fn record_failure(&self, id: MoveId, step: MoveStep, error: &str) -> Result<()>;

    /// Makes the tenant's storage at `to` and copies its data there from its placement.
    async fn copy(&self, tenant: &Tenant, to: &Placement) -> Result<()>;

    /// Compares the tenant's rows at its placement and at `to`, table by table.
    async fn verify(&self, tenant: &Tenant, to: &Placement) -> Result<MoveCheck>;

    /// Drops the tenant's storage at `at` (its old placement).
    async fn drop_storage(&self, tenant: &Tenant, at: &Placement) -> Result<()>;

    /// The tenant's `Switched` moves (old storage kept for its grace period), oldest first.
    async fn pending_drops(&self, tenant: TenantId) -> Result<Vec<MoveRecord>>;

    /// Fences the tenant's storage at its placement (the move's source) against writes, for
    /// move `id`, which must still be `Running`.
    async fn fence(&self, id: MoveId, tenant: &Tenant) -> Result<()>;

    /// Lifts move `id`'s fence from the tenant's storage at its placement.
    async fn lift_fence(&self, id: MoveId, tenant: &Tenant) -> Result<()>;

    /// Marks a `Running` move whose switch is not recorded as `Cancelled` (a `Cancelled` one is
    /// returned as it is, so a cancel interrupted halfway can be run again).
    async fn cancel(&self, id: MoveId) -> Result<MoveRecord>;
}
