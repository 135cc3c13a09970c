//! Configuration of [`TenantManager`](super::TenantManager).

use crate::domain::{
    Isolation, Plan, RateLimit, ServerId, StorageNaming, validate_identifier, validate_region,
};
use crate::error::{Error, Result};
use crate::traits::ServerSpec;

/// How the manager places, provisions and names new tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManagerConfig {
    /// Queue provisioning (and deprovisioning) as jobs for a
    /// [`ProvisioningWorker`](crate::lifecycle::worker::ProvisioningWorker) instead of running it inline.
    pub async_provisioning: bool,
    /// Isolation of tenants whose registration does not choose one.
    pub default_isolation: Isolation,
    /// Plan of tenants whose registration does not choose one.
    pub default_plan: Plan,
    /// Database server new tenants are placed on when [`servers`](Self::servers) is empty.
    pub server: ServerId,
    /// The database servers new tenants are placed on by the placement policy, with their
    /// capacities and regions. Empty (the default): every tenant on [`server`](Self::server).
    pub servers: Vec<ServerSpec>,
    /// Database that holds schema- and row-isolated tenants on that server. Default `tm_shared`
    /// (the default naming's [`StorageNaming::shared_database`]).
    pub shared_database: String,
    /// Names of new tenants' databases, schemas and roles (`<prefix>_t_<slug>`); the same
    /// storage prefix as the provisioner's. Default prefix `tm`.
    pub naming: StorageNaming,
    /// Region recorded on new tenants.
    pub region: Option<String>,
    /// How many random suffixes to try when a slug derived from the organisation name is taken.
    pub slug_attempts: u32,
    /// Failed logins allowed per e-mail address: at most `limit` per `window_ms`, counted
    /// through the quota enforcer (so across instances with Redis); `None` turns the limit off.
    /// Default: 10 per 15 minutes.
    pub login_failures: Option<RateLimit>,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            async_provisioning: false,
            default_isolation: Isolation::Schema,
            default_plan: Plan::free(),
            server: ServerId::default_server(),
            servers: Vec::new(),
            shared_database: StorageNaming::default().shared_database(),
            naming: StorageNaming::default(),
            region: None,
            slug_attempts: 3,
            login_failures: Some(Self::DEFAULT_LOGIN_FAILURES),
        }
    }
}

impl ManagerConfig {
    /// The default failed-login limit: 10 per e-mail address per 15 minutes.
    pub const DEFAULT_LOGIN_FAILURES: RateLimit = RateLimit {
        limit: 10,
        window_ms: 15 * 60 * 1000,
    };

    /// Sets (or, with `None`, turns off) the failed-login limit per e-mail address.
    #[must_use]
    pub fn with_login_failures(mut self, limit: Option<RateLimit>) -> Self {
        self.login_failures = limit;
        self
    }

    /// Turns queued provisioning on or off.
    #[must_use]
    pub fn with_async_provisioning(mut self, enabled: bool) -> Self {
        self.async_provisioning = enabled;
        self
    }

    /// Sets the default isolation.
    #[must_use]
    pub fn with_default_isolation(mut self, isolation: Isolation) -> Self {
        self.default_isolation = isolation;
        self
    }

    /// Sets the default plan.
    #[must_use]
    pub fn with_default_plan(mut self, plan: Plan) -> Self {
        self.default_plan = plan;
        self
    }

    /// Sets the server new tenants are placed on.
    #[must_use]
    pub fn with_server(mut self, server: ServerId) -> Self {
        self.server = server;
        self
    }

    /// Sets the server list of the placement policy (ids unique).
    #[must_use]
    pub fn with_servers(mut self, servers: Vec<ServerSpec>) -> Self {
        self.servers = servers;
        self
    }

    /// Sets the shared database name.
    #[must_use]
    pub fn with_shared_database(mut self, database: impl Into<String>) -> Self {
        self.shared_database = database.into();
        self
    }

    /// Sets the naming of new tenants' storage (the deployment's storage prefix).
    #[must_use]
    pub fn with_naming(mut self, naming: StorageNaming) -> Self {
        self.naming = naming;
        self
    }

    /// Sets the region.
    #[must_use]
    pub fn with_region(mut self, region: Option<String>) -> Self {
        self.region = region;
        self
    }

    /// Sets how many suffixed slugs to try after a derived slug conflicts.
    #[must_use]
    pub fn with_slug_attempts(mut self, attempts: u32) -> Self {
        self.slug_attempts = attempts;
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `shared_database`, `servers` (an id twice), `region`, `slug_attempts` or
    /// `login_failures` (1 to 1000 failures per 1 s to 24 h).
    pub fn validate(&self) -> Result<()> {
        validate_identifier(&self.shared_database, "shared_database")?;
        let mut ids: Vec<&ServerId> = self.servers.iter().map(|s| &s.id).collect();
        ids.sort();
        if ids.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(Error::invalid("servers", "names a server twice"));
        }
        if let Some(region) = &self.region {
            validate_region(region)?;
        }
        if self.slug_attempts > 10 {
            return Err(Error::invalid("slug_attempts", "must be at most 10"));
        }
        if let Some(rate) = &self.login_failures
            && !((1..=1000).contains(&rate.limit) && (1000..=86_400_000).contains(&rate.window_ms))
        {
            return Err(Error::invalid(
                "login_failures",
                "must allow 1 to 1000 failures per 1 s to 24 h",
            ));
        }
        Ok(())
    }
}
