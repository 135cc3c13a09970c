//! Configuration from the deployment guide's environment variables (and a `.env` file).
//!
//! Two steps: clap parses every variable into one typed struct ([`env`]), then one
//! validation pass ([`Config::from_lookup`]) applies the rules between variables, the
//! defaults that depend on another variable and the production rules, and builds [`Config`].
//! [`Config::load`] reads `.env` (when present) and the process environment;
//! [`Config::from_lookup`] reads through any function, which is what tests use. Every invalid
//! value stops start-up with a [`ConfigError`] naming the variable (exit code 78). `Debug`
//! never prints a secret, a password or a URL's credentials.

mod app_env;
mod backup_store;
mod database;
mod env;
mod http;
mod maintenance;
mod origins;
mod parse;
mod pg_url;
mod rate_leases;
mod redis;
mod secrets;
mod self_service;
mod servers;
mod webhooks;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tenant_manager::RateLimit;
use tenant_manager::topk::TopTenantsConfig;

pub use self::app_env::{AppEnv, LogFormat};
pub use self::backup_store::BackupStoreConfig;
pub use self::database::DatabaseConfig;
use self::env::EnvVars;
pub use self::http::HttpConfig;
pub use self::maintenance::MaintenanceSettings;
pub use self::origins::AllowedOrigins;
pub(crate) use self::pg_url::PgShown;
pub use self::rate_leases::RedisRateMode;
pub use self::redis::RedisConfig;
pub use self::secrets::{MIN_SECRET_LEN, SecurityConfig, generate_secret};
pub use self::self_service::SelfService;
pub use self::servers::TenantServer;
pub use self::webhooks::{
    MIN_WEBHOOK_SECRET_LEN, WebhookEndpoint, WebhookSettings, is_endpoint_id,
};
pub use crate::startup_error::ConfigError;

/// Feature switches of the guide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Features {
    /// Registration answers 202 and a worker provisions (`ENABLE_ASYNC_PROVISIONING`).
    pub async_provisioning: bool,
    /// `/metrics` is served (`ENABLE_METRICS`).
    pub metrics: bool,
    /// Requests are rate limited per tenant and per client address (`ENABLE_RATE_LIMITING`).
    pub rate_limiting: bool,
    /// Usage quotas (users, storage) are enforced (`ENABLE_QUOTAS`).
    pub quotas: bool,
}

impl Default for Features {
    fn default() -> Self {
        Self {
            async_provisioning: false,
            metrics: true,
            rate_limiting: true,
            quotas: true,
        }
    }
}

/// Connection budget of the pool manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolSettings {
    /// Most connections one tenant holds (`MAX_CONNECTIONS_PER_TENANT`, default 20).
    pub max_per_tenant: u32,
    /// Most connections all tenants hold together (`MAX_TOTAL_CONNECTIONS`, default 80).
    pub max_total: u32,
    /// A tenant pool unused this long is closed (`POOL_IDLE_TIMEOUT`, ms, default 30 min).
    pub idle_timeout: Duration,
    /// How long a request waits for a tenant connection before `503 pool_exhausted`
    /// (`POOL_ACQUIRE_TIMEOUT_MS`, default 10 s).
    pub acquire_timeout: Duration,
    /// How long a returned connection keeps its tenant's scope for that tenant's next request
    /// (`POOL_SCOPE_AFFINITY_MS`, default 5 s; 0 resets every connection on return).
    pub scope_affinity: Duration,
    /// Connections of all instances together to each server that has no `budget=` of its own
    /// in `TENANT_SERVERS` (`CLUSTER_CONNECTION_BUDGET`; `None`: no cluster budget).
    pub cluster_budget: Option<u32>,
    /// Lease time of the cluster budget's slots (`CLUSTER_LEASE_TTL_MS`, default 10 s): a dead
    /// instance's share is free again after it.
    pub cluster_lease_ttl: Duration,
    /// Whether read routes (listing companies) take read-only connections, served by a
    /// streaming replica within the lag bounds (`READS_FROM_REPLICAS`, default false).
    pub reads_from_replicas: bool,
    /// Most bytes of WAL a replica may have left to replay and still serve reads
    /// (`REPLICA_MAX_LAG_BYTES`, default 1 MiB).
    pub replica_max_lag_bytes: u64,
    /// Longest a replica may lag in time while it has WAL left to replay
    /// (`REPLICA_MAX_LAG_MS`; 0, the default: bytes only).
    pub replica_max_lag: Option<Duration>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_per_tenant: 20,
            max_total: 80,
            idle_timeout: Duration::from_secs(1800),
            acquire_timeout: Duration::from_secs(10),
            scope_affinity: Duration::from_secs(5),
            cluster_budget: None,
            cluster_lease_ttl: Duration::from_secs(10),
            reads_from_replicas: false,
            replica_max_lag_bytes: 1024 * 1024,
            replica_max_lag: None,
        }
    }
}

/// How plans are refreshed and storage is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsageSettings {
    /// How often the plan catalog is read again from the registry, so plan edits made through
    /// another instance or `tenant-cli` apply here (`PLANS_REFRESH_MS`, default 2 s).
    pub plans_refresh: Duration,
    /// How often every active tenant's storage is measured (`STORAGE_MEASURE_INTERVAL_MS`,
    /// default 5 min; 0 measures only on demand).
    pub storage_interval: Option<Duration>,
}

impl Default for UsageSettings {
    fn default() -> Self {
        Self {
            plans_refresh: Duration::from_secs(2),
            storage_interval: Some(Duration::from_secs(300)),
        }
    }
}

/// The whole configuration of the server and of `tenant-cli`.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Production or development (`APP_ENV` / `NODE_ENV`).
    pub env: AppEnv,
    /// Listener and request handling.
    pub http: HttpConfig,
    /// Postgres; none means embedded, in-memory mode.
    pub database: DatabaseConfig,
    /// Redis; none means in-process quotas, cache and queue.
    pub redis: RedisConfig,
    /// Secrets.
    pub security: SecurityConfig,
    /// Feature switches.
    pub features: Features,
    /// What anonymous registration may ask for (`SELF_SERVICE_ISOLATION`).
    pub self_service: SelfService,
    /// Connection budget.
    pub pool: PoolSettings,
    /// Plan refresh and storage measurement.
    pub usage: UsageSettings,
    /// Default request rate per tenant (`RATE_LIMIT_MAX_REQUESTS` per `RATE_LIMIT_WINDOW_MS`).
    pub rate_limit: RateLimit,
    /// Tracing filter (`LOG_LEVEL`, default `info`; any `EnvFilter` directive).
    pub log_level: String,
    /// Log format (`LOG_FORMAT`: `json` or `text`; default by environment).
    pub log_format: LogFormat,
    /// Region this instance serves (`REGION`).
    pub region: Option<String>,
    /// Whether tenants are pinned to regions (`ENABLE_MULTI_REGION`; needs `REGION`).
    pub multi_region: bool,
    /// Where `POST /api/admin/tenants/{id}/backups` writes (`BACKUP_DIR`, default `./backups`).
    pub backup_dir: PathBuf,
    /// The busiest tenants tracked and exported (`TOP_TENANTS_K`, default 20;
    /// `TOP_TENANTS_HALF_LIFE_SECS`, default 60).
    pub top_tenants: TopTenantsConfig,
    /// Where backup artifacts go (`BACKUP_STORE`: `local`, under `BACKUP_DIR`, or `s3`).
    pub backup_store: BackupStoreConfig,
    /// Scheduled backups, restore tests and drift checks.
    pub maintenance: MaintenanceSettings,
    /// Webhook endpoints of tenant events and their delivery settings (`WEBHOOK_*`).
    pub webhooks: WebhookSettings,
    /// Moving tenants between servers (`MOVE_DRAIN_MS`, `MOVE_GRACE_SECONDS`,
    /// `MOVE_RETRY_AFTER_SECONDS`, `MOVE_FAULT_STALL_AFTER`).
    pub moves: MoveSettings,
    /// Non-fatal remarks found while loading, logged once tracing is up.
    pub warnings: Vec<String>,
}

/// How tenant moves pause, drain and keep old storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MoveSettings {
    /// Drain wait, grace period and `Retry-After` of refused writes.
    pub config: tenant_manager::manager::MoveConfig,
    /// Fault injection for tests: moves stall for good after recording this step.
    pub stall_after: Option<tenant_manager::MoveStep>,
}

impl Default for Config {
    /// Development defaults: embedded mode, generated secrets.
    fn default() -> Self {
        Self {
            env: AppEnv::Development,
            http: HttpConfig::default(),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            security: SecurityConfig::default(),
            features: Features::default(),
            self_service: SelfService::default(),
            pool: PoolSettings::default(),
            usage: UsageSettings::default(),
            rate_limit: RateLimit {
                limit: 100,
                window_ms: 900_000,
            },
            log_level: "info".to_owned(),
            log_format: LogFormat::Text,
            region: None,
            multi_region: false,
            backup_dir: PathBuf::from("backups"),
            top_tenants: TopTenantsConfig::default(),
            backup_store: BackupStoreConfig::default(),
            maintenance: MaintenanceSettings::default(),
            webhooks: WebhookSettings::default(),
            moves: MoveSettings::default(),
            warnings: Vec::new(),
        }
    }
}

impl Config {
    /// Reads `.env` (if present; real environment variables win) and the environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid variable, or `.env` when it cannot be read.
    pub fn load() -> Result<Self, ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError::new(".env", e.to_string())),
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads every variable through `lookup`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_vars(&EnvVars::from_lookup(lookup)?)
    }

    /// The validation pass: rules between variables, defaults that depend on another
    /// variable, production rules, and the warnings to log once tracing is up.
    fn from_vars(vars: &EnvVars) -> Result<Self, ConfigError> {
        let mut warnings = Vec::new();
        let env = match (vars.app_env, &vars.node_env) {
            (Some(env), _) => env,
            (None, Some(node_env)) => {
                parse::app_env(node_env).map_err(|reason| ConfigError::new("NODE_ENV", reason))?
            }
            (None, None) => AppEnv::default(),
        };
        let http = HttpConfig::from_vars(vars, env)?;
        let database = DatabaseConfig::from_vars(vars, env.is_production(), &mut warnings)?;
        let redis = RedisConfig::from_vars(vars, &mut warnings)?;
        let security = SecurityConfig::from_vars(vars, env)?;
        let pool = pool_settings(vars)?;
        if pool.acquire_timeout >= http.request_timeout {
            warnings.push(
                "POOL_ACQUIRE_TIMEOUT_MS is not below REQUEST_TIMEOUT_MS: requests waiting for a \
                 connection time out before the pool can answer pool_exhausted"
                    .to_owned(),
            );
        }
        if vars.enable_multi_region && vars.region.is_none() {
            return Err(ConfigError::new(
                "REGION",
                "is required when ENABLE_MULTI_REGION is true",
            ));
        }
        if env.is_production() && database.global.is_none() {
            warnings.push(
                "production mode without GLOBAL_DATABASE_URL: tenants live in memory and are \
                 lost on restart"
                    .to_owned(),
            );
        }
        let log_format = match vars.log_format {
            Some(format) => format,
            None if env.is_production() => LogFormat::Json,
            None => LogFormat::Text,
        };
        Ok(Self {
            env,
            http,
            database,
            redis,
            security,
            features: Features {
                async_provisioning: vars.enable_async_provisioning,
                metrics: vars.enable_metrics,
                rate_limiting: vars.enable_rate_limiting,
                quotas: vars.enable_quotas,
            },
            self_service: vars.self_service_isolation.clone(),
            pool,
            usage: UsageSettings {
                plans_refresh: Duration::from_millis(vars.plans_refresh_ms),
                storage_interval: (vars.storage_measure_interval_ms > 0)
                    .then(|| Duration::from_millis(vars.storage_measure_interval_ms)),
            },
            rate_limit: RateLimit {
                limit: vars.rate_limit_max_requests,
                window_ms: vars.rate_limit_window_ms,
            },
            log_level: vars.log_level.clone(),
            log_format,
            region: vars.region.clone(),
            multi_region: vars.enable_multi_region,
            backup_dir: vars.backup_dir.clone(),
            top_tenants: TopTenantsConfig::default()
                .with_k(vars.top_tenants_k)
                .with_half_life(Duration::from_secs(vars.top_tenants_half_life_secs)),
            backup_store: BackupStoreConfig::from_vars(vars)?,
            maintenance: MaintenanceSettings::from_ms(
                vars.backup_schedule_interval_ms,
                vars.backup_verify_interval_ms,
                vars.backup_verify_sample,
                vars.drift_check_interval_ms,
            ),
            webhooks: WebhookSettings::from_vars(vars)?,
            moves: MoveSettings {
                config: tenant_manager::manager::MoveConfig::default()
                    .with_drain(Duration::from_millis(vars.move_drain_ms))
                    .with_grace(Duration::from_secs(vars.move_grace_seconds))
                    .with_retry_after(Duration::from_secs(vars.move_retry_after_seconds)),
                stall_after: vars
                    .move_fault_stall_after
                    .as_deref()
                    .map(str::parse)
                    .transpose()
                    .map_err(|_| {
                        ConfigError::new("MOVE_FAULT_STALL_AFTER", "is not a move step")
                    })?,
            },
            warnings,
        })
    }

    /// Whether the server runs on the in-memory adapters (no `GLOBAL_DATABASE_URL`).
    pub fn is_embedded(&self) -> bool {
        self.database.global.is_none()
    }

    /// Sets the environment.
    #[must_use]
    pub fn with_env(mut self, env: AppEnv) -> Self {
        self.env = env;
        self
    }

    /// Sets the HTTP settings.
    #[must_use]
    pub fn with_http(mut self, http: HttpConfig) -> Self {
        self.http = http;
        self
    }

    /// Sets the Postgres settings.
    #[must_use]
    pub fn with_database(mut self, database: DatabaseConfig) -> Self {
        self.database = database;
        self
    }

    /// Sets the Redis settings.
    #[must_use]
    pub fn with_redis(mut self, redis: RedisConfig) -> Self {
        self.redis = redis;
        self
    }

    /// Sets the secrets.
    #[must_use]
    pub fn with_security(mut self, security: SecurityConfig) -> Self {
        self.security = security;
        self
    }

    /// Sets the feature switches.
    #[must_use]
    pub fn with_features(mut self, features: Features) -> Self {
        self.features = features;
        self
    }

    /// Sets what anonymous registration may ask for.
    #[must_use]
    pub fn with_self_service(mut self, self_service: SelfService) -> Self {
        self.self_service = self_service;
        self
    }

    /// Sets the connection budget.
    #[must_use]
    pub fn with_pool(mut self, pool: PoolSettings) -> Self {
        self.pool = pool;
        self
    }

    /// Sets the default request rate.
    #[must_use]
    pub fn with_rate_limit(mut self, rate_limit: RateLimit) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// Sets the webhook endpoints and delivery settings.
    #[must_use]
    pub fn with_webhooks(mut self, webhooks: WebhookSettings) -> Self {
        self.webhooks = webhooks;
        self
    }

    /// Sets the backup directory.
    #[must_use]
    pub fn with_backup_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.backup_dir = dir.into();
        if let BackupStoreConfig::Local(_) = self.backup_store {
            self.backup_store = BackupStoreConfig::Local(self.backup_dir.clone());
        }
        self
    }
}

/// The connection budget: one tenant's share within the total.
fn pool_settings(vars: &EnvVars) -> Result<PoolSettings, ConfigError> {
    let (max_total, max_per_tenant) = (vars.max_total_connections, vars.max_connections_per_tenant);
    if max_per_tenant > max_total {
        return Err(ConfigError::new(
            "MAX_CONNECTIONS_PER_TENANT",
            format!("must not exceed MAX_TOTAL_CONNECTIONS ({max_total})"),
        ));
    }
    Ok(PoolSettings {
        max_per_tenant,
        max_total,
        idle_timeout: Duration::from_millis(vars.pool_idle_timeout),
        acquire_timeout: Duration::from_millis(vars.pool_acquire_timeout_ms),
        scope_affinity: Duration::from_millis(vars.pool_scope_affinity_ms),
        cluster_budget: vars.cluster_connection_budget,
        cluster_lease_ttl: Duration::from_millis(vars.cluster_lease_ttl_ms),
        reads_from_replicas: vars.reads_from_replicas,
        replica_max_lag_bytes: vars.replica_max_lag_bytes,
        replica_max_lag: (vars.replica_max_lag_ms > 0)
            .then(|| Duration::from_millis(vars.replica_max_lag_ms)),
    })
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("env", &self.env)
            .field("http", &self.http)
            .field("database", &self.database)
            .field("redis", &self.redis)
            .field("security", &self.security)
            .field("features", &self.features)
            .field("self_service", &self.self_service)
            .field("pool", &self.pool)
            .field("usage", &self.usage)
            .field("rate_limit", &self.rate_limit)
            .field("log_level", &self.log_level)
            .field("log_format", &self.log_format)
            .field("region", &self.region)
            .field("multi_region", &self.multi_region)
            .field("backup_dir", &self.backup_dir)
            .field("top_tenants", &self.top_tenants)
            .field("backup_store", &self.backup_store)
            .field("maintenance", &self.maintenance)
            .field("webhooks", &self.webhooks)
            .field("moves", &self.moves)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
