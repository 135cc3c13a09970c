//! `TenantStorage`: where tenants' data lives and how it is shaped. The provisioner, the fleet
//! migrator and the backups share one, so they agree on every name.

mod config;
mod connect;
mod migrations;
mod target;

use std::fmt;
use std::sync::Arc;

use sqlx::PgPool;
use tenant_manager_core::{Error, Result};

pub(crate) use config::Settings;
pub use config::StorageConfig;
pub use migrations::TenantMigrations;
pub(crate) use target::Target;

use crate::credentials::WallKeys;
use crate::ident::Ident;
use crate::servers::ServerMap;

/// Where tenants' data lives: the global database (registry, steps, catalogue), the server map,
/// the host's tenant migrations and the names of [`StorageConfig`].
#[derive(Clone)]
pub struct TenantStorage {
    pub(crate) global: PgPool,
    pub(crate) servers: ServerMap,
    pub(crate) migrations: TenantMigrations,
    pub(crate) settings: Arc<Settings>,
    pub(crate) wall: Option<WallKeys>,
}

/// What work on a walled database needs: the key proofs are signed with, the app login the
/// wall admits, the wall's owner role.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallContext<'a> {
    /// The signing key.
    pub(crate) keys: &'a WallKeys,
    /// The app login.
    pub(crate) app: &'a Ident,
    /// The wall's owner role.
    pub(crate) owner: &'a Ident,
    /// The role holding what owners of walled tables need of the wall; they are its members.
    pub(crate) reader: &'a Ident,
    /// `SECURITY DEFINER` functions the host's migrations may create.
    pub(crate) definers: &'a [String],
}

impl fmt::Debug for TenantStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantStorage")
            .field("servers", &self.servers)
            .field("migrations", &self.migrations)
            .field("config", &self.settings.config)
            .field("wall", &self.wall)
            .finish_non_exhaustive()
    }
}

impl TenantStorage {
    /// Describes the deployment. `global` is a pool of the global (registry) database, migrated
    /// with [`crate::migrate_global`]; the servers' admin connections must be able to create
    /// roles and databases.
    ///
    /// # Errors
    /// `InvalidInput` naming the first invalid name of `config`.
    pub fn new(
        global: PgPool,
        servers: ServerMap,
        migrations: TenantMigrations,
        config: StorageConfig,
    ) -> Result<Self> {
        Ok(Self {
            global,
            servers,
            migrations,
            settings: Arc::new(Settings::new(config)?),
            wall: None,
        })
    }

    /// The wall's key ([`crate::wall`]): needed whenever the storage has an app login, since
    /// every database of schema and shared tenants then carries the wall, and migrations,
    /// seeds and shared-row backups enter a tenant's verified context with it.
    #[must_use]
    pub fn with_wall(mut self, keys: WallKeys) -> Self {
        self.wall = Some(keys);
        self
    }

    /// The wall's key, if given.
    pub fn wall_keys(&self) -> Option<&WallKeys> {
        self.wall.as_ref()
    }

    /// The wall of this deployment's schema and shared databases: `None` without an app login
    /// (pools on the admin login have no wall).
    ///
    /// # Errors
    /// `InvalidInput` on `wall_key` when there is an app login but no key.
    pub(crate) fn wall(&self) -> Result<Option<WallContext<'_>>> {
        match (&self.settings.app_login, &self.wall) {
            (None, _) => Ok(None),
            (Some(app), Some(keys)) => Ok(Some(WallContext {
                keys,
                app,
                owner: &self.settings.wall_owner,
                reader: &self.settings.wall_reader,
                definers: self.migrations.definer_functions(),
            })),
            (Some(_), None) => Err(Error::invalid(
                "wall_key",
                "a storage with an app login needs the wall's key (TenantStorage::with_wall)",
            )),
        }
    }

    /// The pool of the global database.
    pub fn global_pool(&self) -> &PgPool {
        &self.global
    }

    /// The server map.
    pub fn servers(&self) -> &ServerMap {
        &self.servers
    }

    /// The host's tenant migrations.
    pub fn migrations(&self) -> &TenantMigrations {
        &self.migrations
    }

    /// The configured names.
    pub fn config(&self) -> &StorageConfig {
        &self.settings.config
    }
}
