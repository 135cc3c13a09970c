//! Moving a tenant to another database server: checks, the record, and running the move (see
//! the step machine in `lifecycle::moves`).

use super::TenantManager;
use crate::domain::{
    Isolation, MoveRecord, MoveState, Placement, ServerId, TenantId, TenantStatus,
    validate_identifier,
};
use crate::error::{Entity, Error, Result};
use crate::lifecycle::jobs_kinds;

impl TenantManager {
    /// Where a move of tenant `id` to `server` would put it: the same database (database
    /// isolation) or schema (schema isolation) name on `server`; schema and shared tenants in
    /// `database` there, else the deployment's shared database.
    async fn destination(
        &self,
        id: TenantId,
        server: &ServerId,
        database: Option<&str>,
    ) -> Result<(crate::domain::Tenant, Placement)> {
        let tenant = self.inner.ops.registry.get_tenant(id).await?;
        match tenant.status {
            TenantStatus::Active => {}
            TenantStatus::Moving => {
                return Err(Error::conflict(
                    Entity::Tenant,
                    "status",
                    "the tenant is already moving",
                ));
            }
            other => {
                return Err(Error::conflict(
                    Entity::Tenant,
                    "status",
                    format!("only an active tenant can be moved; this one is {other}"),
                ));
            }
        }
        let config = &self.inner.config;
        let known = if config.servers.is_empty() {
            *server == config.server
        } else {
            config.servers.iter().any(|spec| spec.id == *server)
        };
        if !known {
            return Err(Error::invalid(
                "server",
                "is not a database server of this deployment",
            ));
        }
        if *server == tenant.placement.server {
            return Err(Error::invalid(
                "server",
                "the tenant is already on this server",
            ));
        }
        let database = match (tenant.isolation, database) {
            (Isolation::Database, Some(_)) => {
                return Err(Error::invalid(
                    "database",
                    "a database-isolated tenant keeps its database's name",
                ));
            }
            (Isolation::Database, None) => tenant.placement.database.clone(),
            (_, Some(database)) => {
                validate_identifier(database, "database")?;
                database.to_owned()
            }
            (_, None) => config.shared_database.clone(),
        };
        let to = Placement {
            server: server.clone(),
            database,
            schema: tenant.placement.schema.clone(),
        };
        Ok((tenant, to))
    }

    /// Records a move of an active tenant to `server` (for schema and shared tenants, into
    /// `database` there, else the deployment's shared database) without running it; run it
    /// with [`run_move`](Self::run_move).
    ///
    /// # Errors
    /// - `InvalidInput` on `server` (unknown, or the tenant's own) or `database` (given for a
    ///   database-isolated tenant, or not a valid name); on `mover` when none is configured.
    /// - `Conflict` on `status` when the tenant is not active (or already moving), on `tenant`
    ///   when it has a running move, on `server` when the old storage of an earlier move,
    ///   not dropped yet, is where this one would go; `NotFound`; `Unavailable`.
    ///
    /// A tenant whose earlier moves wait only for their old storage's drop may move again:
    /// each drop stays pending and is done after its own grace period.
    pub async fn begin_move(
        &self,
        id: TenantId,
        server: &ServerId,
        database: Option<&str>,
    ) -> Result<MoveRecord> {
        let moves = self.inner.ops.moves()?;
        let (tenant, to) = self.destination(id, server, database).await?;
        let overlaps = moves
            .mover
            .pending_drops(id)
            .await?
            .iter()
            .any(|m| m.from.server == to.server && m.from.database == to.database);
        if overlaps {
            return Err(Error::conflict(
                Entity::Tenant,
                "server",
                "the old storage of an earlier move is still there; move the tenant there once \
                 it is dropped (`--finish` after its grace period)",
            ));
        }
        let record = moves.mover.begin(&tenant, &to).await?;
        tracing::info!(tenant = %id, from = %tenant.placement.server, to = %server, "tenant move recorded");
        Ok(record)
    }

    /// [`begin_move`](Self::begin_move), then queues a `tenant.move` job that runs it (or runs
    /// it here when no job queue is configured).
    ///
    /// # Errors
    /// As [`begin_move`](Self::begin_move); the queue's errors (the move stays recorded:
    /// [`run_move`](Self::run_move) or a new job runs it).
    pub async fn move_tenant(
        &self,
        id: TenantId,
        server: &ServerId,
        database: Option<&str>,
    ) -> Result<MoveRecord> {
        let record = self.begin_move(id, server, database).await?;
        match &self.inner.jobs {
            Some(jobs) => {
                jobs.enqueue(jobs_kinds::move_job(id)?).await?;
                Ok(record)
            }
            None => self.run_move(id).await,
        }
    }

    /// Runs the tenant's unfinished move here, from its first step not recorded up to writes
    /// resumed (the old storage is dropped later by [`finish_move`](Self::finish_move) or the
    /// queued cleanup job).
    ///
    /// # Errors
    /// `NotFound` (entity `Record`) when the tenant never moved; the errors of the failed
    /// step (recorded on the move, which a new call resumes).
    pub async fn run_move(&self, id: TenantId) -> Result<MoveRecord> {
        self.inner.ops.run_move(id, self.inner.jobs.as_ref()).await
    }

    /// Drops the old storage of the tenant's last move if its grace period is over. Returns
    /// the move, if any.
    ///
    /// # Errors
    /// `Conflict` on `placement` when the registry does not place the tenant at the move's
    /// destination; `Unavailable`.
    pub async fn finish_move(&self, id: TenantId) -> Result<Option<MoveRecord>> {
        Ok(self.inner.ops.finish_move(id).await?.0)
    }

    /// Cancels the tenant's move, allowed until its switch is recorded: lifts the write fence
    /// on the source, drops the partial copy at the destination, marks the move cancelled and
    /// makes the tenant active again. Calling it again finishes a cancel interrupted halfway.
    ///
    /// A move still running elsewhere stops at its next step (which finds the move cancelled).
    ///
    /// # Errors
    /// `NotFound` (entity `Record`) when the tenant never moved; `Conflict` on `state` when
    /// its last move is switched or completed; `InvalidInput` on `mover` when none is
    /// configured; `Unavailable`.
    pub async fn cancel_move(&self, id: TenantId) -> Result<MoveRecord> {
        self.inner.ops.cancel_move(id).await
    }

    /// The tenant's latest move, if any.
    ///
    /// # Errors
    /// `InvalidInput` on `mover` when none is configured; `Unavailable`.
    pub async fn move_status(&self, id: TenantId) -> Result<Option<MoveRecord>> {
        self.inner.ops.moves()?.mover.latest(id).await
    }

    /// Whether the tenant has a move that has not resumed its writes yet.
    ///
    /// # Errors
    /// As [`move_status`](Self::move_status).
    pub async fn is_moving(&self, id: TenantId) -> Result<bool> {
        Ok(self
            .move_status(id)
            .await?
            .is_some_and(|m| m.state == MoveState::Running))
    }

    /// The settings of moves (`Retry-After` of refused writes among them), if a mover is
    /// configured.
    pub fn move_config(&self) -> Option<crate::lifecycle::moves::MoveConfig> {
        self.inner.ops.moves.as_ref().map(|m| m.config)
    }
}
