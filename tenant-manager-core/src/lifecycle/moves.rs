//! The step machine of a move to another database server, shared by the manager (which starts
//! moves and may run them inline) and the worker (which runs queued `tenant.move` and
//! `tenant.move_cleanup` jobs). Each step is recorded by the [`TenantMover`](crate::traits::TenantMover) once done, so a
//! run after a crash resumes at the first step not recorded, redoing at most the one in flight.
//!
//! | step | what it does |
//! |---|---|
//! | `paused` | `Active -> Moving` (drops cached copies everywhere): writes answer `503 tenant_moving` |
//! | `drained` | closes the tenant's pool (every instance closes its own on the invalidation), waits [`MoveConfig::drain`] for writes in flight, then fences the source against writes in the database itself ([`TenantMover::fence`](crate::traits::TenantMover::fence)): an instance that missed the pause is refused there; the old storage stays fenced until it is dropped, or until a cancel lifts the fence |
//! | `copied` | the destination storage, made by the provisioning code, receives a copy |
//! | `verified` | per-table counts and checksums agree at both ends (a difference is copied again once) |
//! | `switched` | the registry places the tenant on the destination; caches and pools dropped everywhere |
//! | `resumed` | `Moving -> Active`, the `moved` event, and a `tenant.move_cleanup` job delayed by [`MoveConfig::grace`] |
//! | `old_dropped` | the old storage dropped, never before the switch is recorded nor before the grace |
//!
//! A move is cancelled before `switched` by [`TenantOps::cancel_move`]; a tenant whose moves
//! wait only for their old storage's drop may move again (several drops may be pending).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::{
    Actor, EventKind, MoveRecord, MoveState, MoveStep, Tenant, TenantId, TenantStatus, TenantUpdate,
};
use crate::error::{Entity, Error, Result};
use crate::lifecycle::jobs_kinds;
pub(crate) use crate::lifecycle::move_config::{MoveConfig, Moves};
use crate::lifecycle::ops::TenantOps;
use crate::traits::{JobQueue, MAX_JOB_DELAY};

impl TenantOps {
    /// The mover, or `InvalidInput` on `mover` when none is configured.
    pub(crate) fn moves(&self) -> Result<&Moves> {
        self.moves
            .as_ref()
            .ok_or_else(|| Error::invalid("mover", "moving tenants needs a mover"))
    }

    /// Runs the tenant's unfinished move up to `resumed` (queueing the cleanup on `jobs`).
    pub(crate) async fn run_move(
        &self,
        id: TenantId,
        jobs: Option<&Arc<dyn JobQueue>>,
    ) -> Result<MoveRecord> {
        let moves = self.moves()?;
        let mut record = moves
            .mover
            .latest(id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::Record, format!("move of tenant {id}")))?;
        if record.state == MoveState::Cancelled {
            return Err(Error::conflict(
                Entity::Tenant,
                "state",
                "the tenant's last move was cancelled",
            ));
        }
        for step in MoveStep::ALL {
            if step == MoveStep::OldDropped || record.is_done(step) {
                continue;
            }
            let drop_after = match self.move_step(moves, &record, step, jobs).await {
                Ok(drop_after) => drop_after,
                Err(error) => {
                    tracing::warn!(tenant = %id, step = step.as_str(), %error, "move step failed");
                    let text = crate::lifecycle::ops::failure_reason(&error);
                    let _ = moves.mover.record_failure(record.id, step, &text).await;
                    return Err(error);
                }
            };
            record = moves.mover.record(record.id, step, drop_after).await?;
            tracing::info!(tenant = %id, step = step.as_str(), "move step recorded");
        }
        Ok(record)
    }

    /// Runs one step; `resumed` returns when the old storage may be dropped.
    async fn move_step(
        &self,
        moves: &Moves,
        record: &MoveRecord,
        step: MoveStep,
        jobs: Option<&Arc<dyn JobQueue>>,
    ) -> Result<Option<OffsetDateTime>> {
        let id = record.tenant_id;
        match step {
            MoveStep::Paused => {
                self.transition_as(id, TenantStatus::Moving, None, None, Actor::System)
                    .await?;
                self.close_pool(id).await?;
            }
            MoveStep::Drained => {
                self.close_pool(id).await?;
                self.invalidate(id).await?;
                tokio::time::sleep(moves.config.drain).await;
                let tenant = self.at_source(record).await?;
                moves.mover.fence(record.id, &tenant).await?;
                self.close_pool(id).await?;
            }
            MoveStep::Copied => {
                let tenant = self.at_source(record).await?;
                moves.mover.copy(&tenant, &record.to).await?;
            }
            MoveStep::Verified => {
                let tenant = self.at_source(record).await?;
                let mut check = moves.mover.verify(&tenant, &record.to).await?;
                if !check.matches() {
                    tracing::warn!(tenant = %id, "the copy differs from the source; copying again");
                    moves.mover.copy(&tenant, &record.to).await?;
                    check = moves.mover.verify(&tenant, &record.to).await?;
                }
                if let Some(table) = check.mismatches().next() {
                    return Err(Error::conflict(
                        Entity::Tenant,
                        "checksum",
                        format!(
                            "table {} differs after the copy: {} rows ({}) at the source, {} ({}) at the destination",
                            table.table,
                            table.source_rows,
                            table.source_md5,
                            table.destination_rows,
                            table.destination_md5
                        ),
                    ));
                }
            }
            MoveStep::Switched => {
                let tenant = self.registry.get_tenant(id).await?;
                if tenant.placement != record.to {
                    let update = TenantUpdate::default().with_placement(record.to.clone());
                    self.registry.update_tenant(id, update).await?;
                }
                self.invalidate(id).await?;
                self.close_pool(id).await?;
            }
            MoveStep::Resumed => {
                let tenant = self
                    .transition_as(id, TenantStatus::Active, None, None, Actor::System)
                    .await?;
                self.close_pool(id).await?;
                let details = serde_json::json!({
                    "move_id": record.id,
                    "from": record.from,
                    "to": record.to,
                });
                self.emit(EventKind::Moved, &tenant, Actor::System, Some(details))
                    .await;
                let grace = time::Duration::try_from(moves.config.grace)
                    .map_err(|_| Error::invalid("grace", "is too long"))?;
                let drop_after = OffsetDateTime::now_utc() + grace;
                if let Some(jobs) = jobs {
                    let job = jobs_kinds::move_cleanup_job(id)?
                        .with_delay(moves.config.grace.min(MAX_JOB_DELAY))?;
                    jobs.enqueue(job).await?;
                }
                return Ok(Some(drop_after));
            }
            MoveStep::OldDropped => {}
        }
        Ok(None)
    }

    /// The tenant, checked to be still at the move's source (the switch is not recorded yet).
    async fn at_source(&self, record: &MoveRecord) -> Result<Tenant> {
        let tenant = self.registry.get_tenant(record.tenant_id).await?;
        if tenant.placement != record.from {
            return Err(Error::conflict(
                Entity::Tenant,
                "placement",
                "the tenant is no longer where the move started",
            ));
        }
        Ok(tenant)
    }

    /// Drops the old storage of the tenant's switched moves whose grace period is over.
    /// Returns the last move handled and, when a grace is not over yet, how long is left.
    pub(crate) async fn finish_move(
        &self,
        id: TenantId,
    ) -> Result<(Option<MoveRecord>, Option<Duration>)> {
        let moves = self.moves()?;
        let pending = moves.mover.pending_drops(id).await?;
        if pending.is_empty() {
            return Ok((moves.mover.latest(id).await?, None));
        }
        let now = OffsetDateTime::now_utc();
        let mut left: Option<Duration> = None;
        let mut last = None;
        for record in pending {
            if !record.is_done(MoveStep::Switched) {
                continue;
            }
            let Some(drop_after) = record.drop_after else {
                return Err(Error::internal("a switched move without a drop time"));
            };
            if now < drop_after {
                let wait = Duration::try_from(drop_after - now).unwrap_or(Duration::ZERO);
                left = Some(left.map_or(wait, |l| l.min(wait)));
                last = Some(record);
                continue;
            }
            last = Some(self.drop_old(moves, record).await?);
        }
        Ok((last, left))
    }

    /// Drops the old storage of one switched move whose grace is over.
    async fn drop_old(&self, moves: &Moves, record: MoveRecord) -> Result<MoveRecord> {
        let id = record.tenant_id;
        let mut tenant = self.registry.get_tenant(id).await?;
        // Never the placement the registry serves the tenant from, nor one a running move
        // copies to.
        let running_to = moves
            .mover
            .latest(id)
            .await?
            .filter(|m| m.state == MoveState::Running)
            .map(|m| m.to);
        if tenant.placement == record.from || running_to.as_ref() == Some(&record.from) {
            return Err(Error::conflict(
                Entity::Tenant,
                "placement",
                "the tenant is served from, or moving to, the move's old placement",
            ));
        }
        tenant.placement = record.from.clone();
        moves.mover.drop_storage(&tenant, &record.from).await?;
        let record = moves
            .mover
            .record(record.id, MoveStep::OldDropped, None)
            .await?;
        tracing::info!(tenant = %id, "old storage of a moved tenant dropped");
        Ok(record)
    }

    /// Cancels the tenant's move before its switch: the fence on the source lifted, the
    /// partial copy at the destination dropped, the move marked cancelled and the tenant
    /// active again. A cancel interrupted anywhere is finished by calling it again.
    pub(crate) async fn cancel_move(&self, id: TenantId) -> Result<MoveRecord> {
        let moves = self.moves()?;
        let latest = moves
            .mover
            .latest(id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::Record, format!("move of tenant {id}")))?;
        if !matches!(latest.state, MoveState::Running | MoveState::Cancelled) {
            return Err(Error::conflict(
                Entity::Tenant,
                "state",
                "only a move not switched yet can be cancelled",
            ));
        }
        let record = moves.mover.cancel(latest.id).await?;
        // A switch that reached the registry before the cancel (its step not recorded): the
        // tenant's writes were still paused, so the source holds every row.
        let mut tenant = self.registry.get_tenant(id).await?;
        if tenant.placement != record.from {
            let update = TenantUpdate::default().with_placement(record.from.clone());
            tenant = self.registry.update_tenant(id, update).await?;
            self.invalidate(id).await?;
        }
        moves.mover.lift_fence(record.id, &tenant).await?;
        moves.mover.drop_storage(&tenant, &record.to).await?;
        if tenant.status == TenantStatus::Moving {
            self.transition_as(id, TenantStatus::Active, None, None, Actor::System)
                .await?;
        }
        self.close_pool(id).await?;
        self.invalidate(id).await?;
        tracing::info!(tenant = %id, "tenant move cancelled");
        Ok(record)
    }
}
