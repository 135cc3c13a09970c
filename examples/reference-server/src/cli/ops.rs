//! What the operator commands work on: the Postgres adapters, the shared quota, cache and
//! queue, and the tenant manager, built from the same configuration as the server.

use std::path::Path;
use std::sync::Arc;

use tenant_manager::manager::TenantManager;
use tenant_manager::postgres::PgDumpBackup;
use tenant_manager::{Actor, Entity, Error, EventBus, Tenant, TenantId, TenantSlug};

use super::exit::{CliError, Exit};
use crate::config::Config;
use crate::services::postgres_adapters::PostgresAdapters;
use crate::services::shared;

/// The adapters of one command run.
#[derive(Debug)]
pub(crate) struct Ops {
    pub(crate) postgres: PostgresAdapters,
    pub(crate) backup: Arc<PgDumpBackup>,
    /// The manager, its events naming the operator ([`Actor::Admin`]).
    pub(crate) manager: TenantManager,
    /// Where tenant events are published (the Redis event stream, when Redis is configured).
    pub(crate) events: Arc<dyn EventBus>,
    /// The configuration the adapters were built from.
    pub(crate) config: Config,
}

impl Ops {
    /// Connects everything; backups go to (and are read from) `backup_dir`, or `BACKUP_DIR`.
    pub(crate) async fn connect(
        config: Config,
        backup_dir: Option<&Path>,
    ) -> Result<Self, CliError> {
        if config.is_embedded() {
            return Err(CliError::new(
                Exit::Config,
                "GLOBAL_DATABASE_URL is not set: tenant-cli works on the Postgres deployment \
                 (an embedded server keeps its tenants in its own memory)",
            ));
        }
        let postgres = PostgresAdapters::connect(&config).await?;
        let (shared, _) = shared(&config)
            .await
            .map_err(|e| CliError::new(Exit::Unavailable, e.to_string()))?;
        let store = config.backup_store.open(backup_dir)?;
        let backup = postgres.backup(store);
        let plans = postgres.plan_book(&config).await?;
        let manager = postgres
            .manager(&config, &shared, backup.clone(), None, plans)?
            .acting_as(Actor::Admin);
        Ok(Self {
            postgres,
            backup,
            manager,
            events: shared.events,
            config,
        })
    }

    /// A tenant by id or slug.
    pub(crate) async fn tenant(&self, reference: &str) -> Result<Tenant, CliError> {
        if let Ok(id) = reference.parse::<TenantId>() {
            return Ok(self.manager.get(id).await?);
        }
        let slug = TenantSlug::parse_field(reference.trim(), "tenant")?;
        self.manager
            .registry()
            .find_tenant_by_slug(&slug)
            .await?
            .ok_or_else(|| Error::not_found(Entity::Tenant, reference).into())
    }
}

/// Prints a value as pretty JSON on stdout.
pub(crate) fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("tenant-cli: cannot print the answer: {e}"),
    }
}
