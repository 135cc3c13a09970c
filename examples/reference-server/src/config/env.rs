//! Every environment variable of the server and `tenant-cli`, as one struct parsed by clap.
//!
//! [`EnvVars::from_lookup`] reads the variables through a function (the process environment,
//! or a map in tests), trims them (blank is unset), and hands them to clap as `--name=value`;
//! each value parser's message becomes a [`ConfigError`] naming the variable. Rules between
//! variables, and defaults that depend on another variable, are the validation pass's
//! ([`Config::from_vars`](super::Config)).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, CommandFactory as _, FromArgMatches as _, Parser};
use tenant_manager::Secret;

use super::app_env::{AppEnv, LogFormat};
use super::origins::AllowedOrigins;
use super::parse::{
    app_env, fast_hashing, flag, identifier, ip_address, log_format, log_level, nonzero_port,
    origins, port_number, ranged, redis_key_prefix, secret, self_service, storage_prefix, text,
};
use super::self_service::SelfService;
use crate::startup_error::ConfigError;

/// The environment variables, typed. Defaults are those of the configuration table
/// (`docs/operations.md`); `Debug` shows secrets as `Secret(***)`.
#[derive(Debug, Clone, Parser)]
#[command(name = "reference-server", disable_help_flag = true)]
#[allow(clippy::struct_excessive_bools)]
pub(crate) struct EnvVars {
    // --- environment and logs ---
    #[arg(long, env = "APP_ENV", value_parser = app_env)]
    pub(crate) app_env: Option<AppEnv>,
    /// Alias of `APP_ENV`, read only when that is unset.
    #[arg(long, env = "NODE_ENV")]
    pub(crate) node_env: Option<String>,
    #[arg(long, env = "LOG_LEVEL", default_value = "info", value_parser = log_level)]
    pub(crate) log_level: String,
    /// Default: JSON in production, text otherwise.
    #[arg(long, env = "LOG_FORMAT", value_parser = log_format)]
    pub(crate) log_format: Option<LogFormat>,
    #[arg(long, env = "REGION", value_parser = text::<64>)]
    pub(crate) region: Option<String>,
    #[arg(long, env = "ENABLE_MULTI_REGION", action = ArgAction::Set, default_value = "false", value_parser = flag)]
    pub(crate) enable_multi_region: bool,
    #[arg(long, env = "BACKUP_DIR", default_value = "backups")]
    pub(crate) backup_dir: PathBuf,
    #[arg(long, env = "BACKUP_STORE", default_value = "local")]
    pub(crate) backup_store: String,
    #[arg(long, env = "BACKUP_S3_BUCKET", value_parser = text::<63>)]
    pub(crate) backup_s3_bucket: Option<String>,
    #[arg(long, env = "BACKUP_S3_REGION", default_value = "us-east-1", value_parser = text::<64>)]
    pub(crate) backup_s3_region: String,
    #[arg(long, env = "BACKUP_S3_ENDPOINT", value_parser = text::<2048>)]
    pub(crate) backup_s3_endpoint: Option<String>,
    #[arg(long, env = "BACKUP_S3_ACCESS_KEY_ID", value_parser = secret)]
    pub(crate) backup_s3_access_key_id: Option<Secret>,
    #[arg(long, env = "BACKUP_S3_SECRET_ACCESS_KEY", value_parser = secret)]
    pub(crate) backup_s3_secret_access_key: Option<Secret>,

    // --- moving tenants between servers ---
    #[arg(long, env = "MOVE_DRAIN_MS", default_value = "5000", value_parser = ranged::<u64, 0, 600_000>)]
    pub(crate) move_drain_ms: u64,
    #[arg(long, env = "MOVE_GRACE_SECONDS", default_value = "3600", value_parser = ranged::<u64, 0, 31_536_000>)]
    pub(crate) move_grace_seconds: u64,
    #[arg(long, env = "MOVE_RETRY_AFTER_SECONDS", default_value = "5", value_parser = ranged::<u64, 1, 3_600>)]
    pub(crate) move_retry_after_seconds: u64,
    /// Fault injection for tests: a move stalls for good once it has recorded this step.
    #[arg(long, env = "MOVE_FAULT_STALL_AFTER", value_parser = text::<32>)]
    pub(crate) move_fault_stall_after: Option<String>,

    // --- HTTP ---
    #[arg(long, env = "BIND_ADDRESS", default_value = "0.0.0.0", value_parser = ip_address)]
    pub(crate) bind_address: IpAddr,
    #[arg(long, env = "PORT", default_value = "3001", value_parser = ranged::<u16, 0, 65535>)]
    pub(crate) port: u16,
    #[arg(long, env = "METRICS_PORT", value_parser = ranged::<u16, 0, 65535>)]
    pub(crate) metrics_port: Option<u16>,
    /// Default: `*` in development, none in production.
    #[arg(long, env = "ALLOWED_ORIGINS", value_parser = origins)]
    pub(crate) allowed_origins: Option<AllowedOrigins>,
    #[arg(long, env = "REQUEST_BODY_LIMIT_BYTES", default_value = "1048576", value_parser = ranged::<usize, 1024, 67_108_864>)]
    pub(crate) request_body_limit_bytes: usize,
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value = "30000", value_parser = ranged::<u64, 100, 600_000>)]
    pub(crate) request_timeout_ms: u64,
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS", default_value = "30000", value_parser = ranged::<u64, 0, 600_000>)]
    pub(crate) shutdown_timeout_ms: u64,
    #[arg(long, env = "TRUSTED_PROXY_HOPS", default_value = "0", value_parser = ranged::<usize, 0, 16>)]
    pub(crate) trusted_proxy_hops: usize,

    // --- Postgres ---
    #[arg(long, env = "GLOBAL_DATABASE_URL", value_parser = secret)]
    pub(crate) global_database_url: Option<Secret>,
    #[arg(long, env = "REGISTRY_DATABASE_URL", value_parser = secret)]
    pub(crate) registry_database_url: Option<Secret>,
    #[arg(long, env = "POSTGRES_ADMIN_USER", value_parser = text::<63>)]
    pub(crate) postgres_admin_user: Option<String>,
    #[arg(long, env = "POSTGRES_ADMIN_PASSWORD", value_parser = secret)]
    pub(crate) postgres_admin_password: Option<Secret>,
    #[arg(long, env = "POSTGRES_ADMIN_HOST", value_parser = text::<253>)]
    pub(crate) postgres_admin_host: Option<String>,
    /// The guide's spelling of `POSTGRES_ADMIN_HOST`, read when that is unset.
    #[arg(long, env = "POSTGRES_HOST", value_parser = text::<253>)]
    pub(crate) postgres_host: Option<String>,
    #[arg(long, env = "POSTGRES_ADMIN_PORT", value_parser = nonzero_port)]
    pub(crate) postgres_admin_port: Option<u16>,
    /// The guide's spelling of `POSTGRES_ADMIN_PORT`, read when that is unset.
    #[arg(long, env = "POSTGRES_PORT", value_parser = port_number)]
    pub(crate) postgres_port: Option<u16>,
    #[arg(long, env = "TENANT_DB_SECRET", value_parser = secret)]
    pub(crate) tenant_db_secret: Option<Secret>,
    #[arg(long, env = "GLOBAL_POOL_SIZE", default_value = "10", value_parser = ranged::<u32, 1, 1_000>)]
    pub(crate) global_pool_size: u32,
    #[arg(long, env = "TENANT_STORAGE_PREFIX", default_value = "tm", value_parser = storage_prefix)]
    pub(crate) tenant_storage_prefix: String,
    /// Default: `<TENANT_STORAGE_PREFIX>_shared`.
    #[arg(long, env = "TENANT_SHARED_DATABASE", value_parser = identifier::<63>)]
    pub(crate) tenant_shared_database: Option<String>,
    /// Default: `<TENANT_STORAGE_PREFIX>_app`.
    #[arg(long, env = "TENANT_APP_LOGIN", value_parser = identifier::<63>)]
    pub(crate) tenant_app_login: Option<String>,
    /// More Postgres servers for tenants: `<id>=<url>[;capacity=N][;region=R]`, blank-separated.
    #[arg(long, env = "TENANT_SERVERS", value_parser = secret)]
    pub(crate) tenant_servers: Option<Secret>,
    #[arg(long, env = "WALL_KEY_ID", default_value = "1", value_parser = ranged::<i32, 1, 2_147_483_647>)]
    pub(crate) wall_key_id: i32,

    // --- connection budget ---
    #[arg(long, env = "MAX_TOTAL_CONNECTIONS", default_value = "80", value_parser = ranged::<u32, 1, 100_000>)]
    pub(crate) max_total_connections: u32,
    #[arg(long, env = "MAX_CONNECTIONS_PER_TENANT", default_value = "20", value_parser = ranged::<u32, 1, 10_000>)]
    pub(crate) max_connections_per_tenant: u32,
    #[arg(long, env = "POOL_IDLE_TIMEOUT", default_value = "1800000", value_parser = ranged::<u64, 1_000, 86_400_000>)]
    pub(crate) pool_idle_timeout: u64,
    #[arg(long, env = "POOL_ACQUIRE_TIMEOUT_MS", default_value = "10000", value_parser = ranged::<u64, 100, 600_000>)]
    pub(crate) pool_acquire_timeout_ms: u64,
    #[arg(long, env = "POOL_SCOPE_AFFINITY_MS", default_value = "5000", value_parser = ranged::<u64, 0, 600_000>)]
    pub(crate) pool_scope_affinity_ms: u64,
    /// Connections of all instances together to each server without `budget=` in
    /// `TENANT_SERVERS`; unset: no cluster budget.
    #[arg(long, env = "CLUSTER_CONNECTION_BUDGET", value_parser = ranged::<u32, 1, 100_000>)]
    pub(crate) cluster_connection_budget: Option<u32>,
    #[arg(long, env = "CLUSTER_LEASE_TTL_MS", default_value = "10000", value_parser = ranged::<u64, 300, 600_000>)]
    pub(crate) cluster_lease_ttl_ms: u64,
    #[arg(long, env = "READS_FROM_REPLICAS", action = ArgAction::Set, default_value = "false", value_parser = flag)]
    pub(crate) reads_from_replicas: bool,
    #[arg(long, env = "REPLICA_MAX_LAG_BYTES", default_value = "1048576", value_parser = ranged::<u64, 0, 1_099_511_627_776>)]
    pub(crate) replica_max_lag_bytes: u64,
    #[arg(long, env = "REPLICA_MAX_LAG_MS", default_value = "0", value_parser = ranged::<u64, 0, 3_600_000>)]
    pub(crate) replica_max_lag_ms: u64,

    // --- Plans and usage ---
    #[arg(long, env = "PLANS_REFRESH_MS", default_value = "2000", value_parser = ranged::<u64, 100, 600_000>)]
    pub(crate) plans_refresh_ms: u64,
    #[arg(long, env = "STORAGE_MEASURE_INTERVAL_MS", default_value = "300000", value_parser = ranged::<u64, 0, 86_400_000>)]
    pub(crate) storage_measure_interval_ms: u64,

    // --- Unattended maintenance (0 is off) ---
    #[arg(long, env = "BACKUP_SCHEDULE_INTERVAL_MS", default_value = "0", value_parser = ranged::<u64, 0, 86_400_000>)]
    pub(crate) backup_schedule_interval_ms: u64,
    #[arg(long, env = "BACKUP_VERIFY_INTERVAL_MS", default_value = "0", value_parser = ranged::<u64, 0, 604_800_000>)]
    pub(crate) backup_verify_interval_ms: u64,
    #[arg(long, env = "BACKUP_VERIFY_SAMPLE", default_value = "3", value_parser = ranged::<usize, 1, 1000>)]
    pub(crate) backup_verify_sample: usize,
    #[arg(long, env = "DRIFT_CHECK_INTERVAL_MS", default_value = "0", value_parser = ranged::<u64, 0, 86_400_000>)]
    pub(crate) drift_check_interval_ms: u64,

    // --- Redis ---
    #[arg(long, env = "REDIS_URL", value_parser = secret)]
    pub(crate) redis_url: Option<Secret>,
    #[arg(long, env = "REDIS_CLUSTER", action = ArgAction::Set, default_value = "false", value_parser = flag)]
    pub(crate) redis_cluster: bool,
    #[arg(long, env = "REDIS_PASSWORD", value_parser = secret)]
    pub(crate) redis_password: Option<Secret>,
    #[arg(long, env = "REDIS_KEY_PREFIX", value_parser = redis_key_prefix)]
    pub(crate) redis_key_prefix: Option<String>,
    #[arg(long, env = "RATE_LIMIT_LEASES", action = ArgAction::Set, default_value = "true", value_parser = flag)]
    pub(crate) rate_limit_leases: bool,
    /// Default: the library's (64).
    #[arg(long, env = "RATE_LIMIT_LEASE_MAX_CELLS", value_parser = ranged::<u32, 1, { tenant_manager::redis::RateLeaseConfig::MAX_CELLS as u64 }>)]
    pub(crate) rate_limit_lease_max_cells: Option<u32>,
    /// Default: the library's (100).
    #[arg(long, env = "RATE_LIMIT_LEASE_LIMIT_DIVISOR", value_parser = ranged::<u32, 2, 1_000_000>)]
    pub(crate) rate_limit_lease_limit_divisor: Option<u32>,
    /// Default: the library's (1000).
    #[arg(long, env = "RATE_LIMIT_LEASE_TTL_MS", value_parser = ranged::<u64, 1, 60_000>)]
    pub(crate) rate_limit_lease_ttl_ms: Option<u64>,

    // --- features and limits ---
    #[arg(long, env = "ENABLE_ASYNC_PROVISIONING", action = ArgAction::Set, default_value = "false", value_parser = flag)]
    pub(crate) enable_async_provisioning: bool,
    #[arg(long, env = "ENABLE_METRICS", action = ArgAction::Set, default_value = "true", value_parser = flag)]
    pub(crate) enable_metrics: bool,
    #[arg(long, env = "ENABLE_RATE_LIMITING", action = ArgAction::Set, default_value = "true", value_parser = flag)]
    pub(crate) enable_rate_limiting: bool,
    #[arg(long, env = "ENABLE_QUOTAS", action = ArgAction::Set, default_value = "true", value_parser = flag)]
    pub(crate) enable_quotas: bool,
    #[arg(long, env = "SELF_SERVICE_ISOLATION", default_value = "schema,shared", value_parser = self_service)]
    pub(crate) self_service_isolation: SelfService,
    #[arg(long, env = "RATE_LIMIT_MAX_REQUESTS", default_value = "100", value_parser = ranged::<u64, 1, 10_000_000>)]
    pub(crate) rate_limit_max_requests: u64,
    #[arg(long, env = "RATE_LIMIT_WINDOW_MS", default_value = "900000", value_parser = ranged::<u64, 1, 2_592_000_000>)]
    pub(crate) rate_limit_window_ms: u64,
    /// Tenants tracked and exported by the top-K sketch (`tenant` label values at most).
    #[arg(long, env = "TOP_TENANTS_K", default_value = "20", value_parser = ranged::<usize, 1, 1000>)]
    pub(crate) top_tenants_k: usize,
    #[arg(long, env = "TOP_TENANTS_HALF_LIFE_SECS", default_value = "60", value_parser = ranged::<u64, 1, 86_400>)]
    pub(crate) top_tenants_half_life_secs: u64,

    // --- webhooks ---
    /// Endpoints: `<id>=<url>;secret=<secret>[;events=<kind>,...]`, blank-separated.
    #[arg(long, env = "WEBHOOK_ENDPOINTS", value_parser = secret)]
    pub(crate) webhook_endpoints: Option<Secret>,
    #[arg(long, env = "WEBHOOK_TIMEOUT_MS", default_value = "10000", value_parser = ranged::<u64, 100, 120_000>)]
    pub(crate) webhook_timeout_ms: u64,
    #[arg(long, env = "WEBHOOK_MAX_ATTEMPTS", default_value = "5", value_parser = ranged::<u32, 1, 50>)]
    pub(crate) webhook_max_attempts: u32,
    #[arg(long, env = "WEBHOOK_BACKOFF_BASE_MS", default_value = "1000", value_parser = ranged::<u64, 1, 3_600_000>)]
    pub(crate) webhook_backoff_base_ms: u64,
    #[arg(long, env = "WEBHOOK_BACKOFF_MAX_MS", default_value = "60000", value_parser = ranged::<u64, 1, 3_600_000>)]
    pub(crate) webhook_backoff_max_ms: u64,
    #[arg(long, env = "QUOTA_EVENT_WINDOW_MS", default_value = "60000", value_parser = ranged::<u64, 1, 86_400_000>)]
    pub(crate) quota_event_window_ms: u64,

    // --- secrets and logins ---
    /// Required in production; generated for the run in development.
    #[arg(long, env = "JWT_SECRET", value_parser = secret)]
    pub(crate) jwt_secret: Option<Secret>,
    /// Required in production; generated for the run in development.
    #[arg(long, env = "SUPER_ADMIN_KEY", value_parser = secret)]
    pub(crate) super_admin_key: Option<Secret>,
    #[arg(long, env = "ACCESS_TOKEN_TTL_SECONDS", default_value = "3600", value_parser = ranged::<u64, 60, 604_800>)]
    pub(crate) access_token_ttl_seconds: u64,
    #[arg(long, env = "REFRESH_TOKEN_TTL_SECONDS", default_value = "2592000", value_parser = ranged::<u64, 60, 31_536_000>)]
    pub(crate) refresh_token_ttl_seconds: u64,
    #[arg(long, env = "INVITATION_TTL_SECONDS", default_value = "604800", value_parser = ranged::<u64, 1, 7_776_000>)]
    pub(crate) invitation_ttl_seconds: u64,
    #[arg(long, env = "REFRESH_TOKEN_PRUNE_INTERVAL_MS", default_value = "3600000", value_parser = ranged::<u64, 0, 604_800_000>)]
    pub(crate) refresh_token_prune_interval_ms: u64,
    #[arg(long, env = "PASSWORD_HASHING", action = ArgAction::Set, default_value = "owasp", value_parser = fast_hashing)]
    pub(crate) password_hashing_fast: bool,
    /// 0: half the CPUs, at least 1.
    #[arg(long, env = "PASSWORD_HASH_THREADS", default_value = "0", value_parser = ranged::<usize, 0, 1024>)]
    pub(crate) password_hash_threads: usize,
    #[arg(long, env = "PASSWORD_HASH_QUEUE_MS", default_value = "1000", value_parser = ranged::<u64, 0, 60_000>)]
    pub(crate) password_hash_queue_ms: u64,
    /// 0 turns the limit off.
    #[arg(long, env = "LOGIN_MAX_FAILURES", default_value = "10", value_parser = ranged::<u64, 0, 1000>)]
    pub(crate) login_max_failures: u64,
    #[arg(long, env = "LOGIN_FAILURE_WINDOW_MS", default_value = "900000", value_parser = ranged::<u64, 1000, 86_400_000>)]
    pub(crate) login_failure_window_ms: u64,
}

impl EnvVars {
    /// Reads every variable through `lookup`: trimmed, blank as unset, and nothing from the
    /// process environment that `lookup` does not return.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable whose value its parser refused.
    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        // clap reads the process environment when an argument is built: forget it.
        let command = Self::command().mut_args(|arg| arg.env(None::<&'static str>));
        let mut argv = vec!["reference-server".to_owned()];
        for (long, variable) in variables() {
            let value = lookup(variable).map(|v| v.trim().to_owned());
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                argv.push(format!("--{long}={value}"));
            }
        }
        let matches = command
            .try_get_matches_from(argv)
            .map_err(|e| config_error(&e))?;
        Self::from_arg_matches(&matches).map_err(|e| config_error(&e))
    }
}

/// Every argument's long name and variable, read once from the command.
///
/// The names are leaked once per process so that [`ConfigError::variable`] stays
/// `&'static str`; there are about sixty of them.
fn variables() -> &'static [(&'static str, &'static str)] {
    static VARIABLES: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    VARIABLES.get_or_init(|| {
        let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
        EnvVars::command()
            .get_arguments()
            .filter_map(|arg| Some((arg.get_long()?, arg.get_env()?.to_str()?)))
            .map(|(long, env)| (leak(long), leak(env)))
            .collect()
    })
}

/// The variable of a clap error, and its parser's message (never clap's own text, which
/// may quote a secret value).
fn config_error(error: &clap::Error) -> ConfigError {
    let long = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg
            .trim_start_matches('-')
            .split([' ', '='])
            .next()
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    };
    let variable = variables()
        .iter()
        .find(|(l, _)| *l == long)
        .map_or("environment", |(_, v)| v);
    let reason = match (error.kind(), std::error::Error::source(error)) {
        (ErrorKind::ValueValidation, Some(source)) => source.to_string(),
        (kind, _) => format!("cannot be read ({kind})"),
    };
    ConfigError::new(variable, reason)
}

/// Whether `name` is one of the variables.
#[cfg(test)]
pub(crate) fn is_variable(name: &str) -> bool {
    variables().iter().any(|(_, v)| *v == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &'static [(&'static str, &'static str)]) -> Result<EnvVars, ConfigError> {
        EnvVars::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_command_is_consistent() {
        EnvVars::command().debug_assert();
        assert!(is_variable("GLOBAL_DATABASE_URL") && !is_variable("DATABASE_URL"));
    }

    #[test]
    fn every_variable_is_in_the_configuration_table() {
        let docs = include_str!("../../../../docs/operations.md");
        let table = docs
            .split("| variable | default | meaning |")
            .nth(1)
            .unwrap_or_default();
        for (_, variable) in variables() {
            assert!(
                table.contains(&format!("`{variable}`")),
                "{variable} is missing from the configuration table of docs/operations.md"
            );
        }
    }

    #[test]
    fn switches_take_values() {
        let vars = parse(&[("PASSWORD_HASHING", "fast"), ("ENABLE_METRICS", "off")]);
        let vars = vars.unwrap_or_else(|e| panic!("{e}"));
        assert!(vars.password_hashing_fast && !vars.enable_metrics);
        let vars = parse(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!vars.password_hashing_fast && vars.enable_metrics);
    }

    #[test]
    fn blank_is_unset_and_values_are_trimmed() {
        let vars = parse(&[("PORT", "  "), ("REGION", " eu-west-1 ")]);
        let vars = vars.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(vars.port, 3001);
        assert_eq!(vars.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn a_refused_value_names_its_variable_and_says_why() {
        let err = parse(&[("PORT", "70000")]).err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("PORT: must be an integer from 0 to 65535 (got \"70000\")")
        );
        let err = parse(&[("ENABLE_QUOTAS", "-1")]).err();
        assert_eq!(err.map(|e| e.variable), Some("ENABLE_QUOTAS"));
    }
}
