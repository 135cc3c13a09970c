use std::collections::HashMap;
use std::time::Duration;

use super::*;

/// The guide's `.env` example, with real-looking secrets.
const GUIDE_ENV: &str = "
NODE_ENV=production
PORT=3001
GLOBAL_DATABASE_URL=postgresql://user:pass@db-host:5432/twenty_global
POSTGRES_ADMIN_USER=postgres
POSTGRES_ADMIN_PASSWORD=admin-password-value
POSTGRES_HOST=db-host
POSTGRES_PORT=5432
REDIS_URL=redis://redis-host:6379
REDIS_PASSWORD=redis-password-value
JWT_SECRET=tA4lR0kq8w3Jd7mXbV2yQe9ZsN6uHc1GpF5oKi0LrTg=
SUPER_ADMIN_KEY=Zq1Wx2Ec3Rv4Tb5Yn6Um7Ik8Ol9Pa0Sd1Fg2Hj3Kl4M=
TENANT_DB_SECRET=Mn3Bv4Cx5Zl6Kj7Hg8Fd9Sa0Qw1Er2Ty3Ui4Op5As6D=
ENABLE_ASYNC_PROVISIONING=true
ENABLE_METRICS=true
ENABLE_RATE_LIMITING=true
ENABLE_QUOTAS=true
MAX_CONNECTIONS_PER_TENANT=20
MAX_TOTAL_CONNECTIONS=10000
POOL_IDLE_TIMEOUT=1800000
METRICS_PORT=9090
LOG_LEVEL=info
REGION=us-east-1
ENABLE_MULTI_REGION=false
ALLOWED_ORIGINS=https://your-domain.com
RATE_LIMIT_WINDOW_MS=900000
RATE_LIMIT_MAX_REQUESTS=100
";

fn env_map(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .collect()
}

fn load_with(text: &str, overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut map = env_map(text);
    for (k, v) in overrides {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    Config::from_lookup(move |name| map.get(name).cloned())
}

fn variable_of(result: Result<Config, ConfigError>) -> Option<&'static str> {
    result.err().map(|e| e.variable)
}

#[test]
fn the_guides_env_file_loads() {
    let cfg = load_with(GUIDE_ENV, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.env, AppEnv::Production);
    assert_eq!(cfg.http.port, 3001);
    assert_eq!(cfg.http.metrics_port, Some(9090));
    assert!(!cfg.is_embedded());
    assert!(cfg.redis.url.is_some());
    assert!(cfg.features.async_provisioning && cfg.features.quotas);
    assert_eq!(cfg.pool.max_total, 10_000);
    assert_eq!(cfg.pool.idle_timeout, Duration::from_secs(1800));
    assert_eq!(cfg.pool.acquire_timeout, Duration::from_secs(10));
    assert_eq!(cfg.pool.scope_affinity, Duration::from_secs(5));
    assert_eq!(cfg.rate_limit.limit, 100);
    assert_eq!(cfg.rate_limit.window_ms, 900_000);
    assert_eq!(cfg.region.as_deref(), Some("us-east-1"));
    assert_eq!(cfg.log_format, LogFormat::Json);
    assert_eq!(
        cfg.http.allowed_origins,
        AllowedOrigins::List(vec!["https://your-domain.com".into()])
    );
    assert!(!cfg.security.admin_key_generated);
}

#[test]
fn an_empty_environment_is_a_working_development_setup() {
    let cfg = Config::from_lookup(|_| None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.env, AppEnv::Development);
    assert!(cfg.is_embedded());
    assert!(cfg.security.admin_key_generated && cfg.security.jwt_secret_generated);
    assert!(cfg.security.super_admin_key.len() >= MIN_SECRET_LEN);
    assert_eq!(cfg.http.allowed_origins, AllowedOrigins::Any);
    assert_eq!(cfg.log_format, LogFormat::Text);
    assert!(cfg.features.metrics && !cfg.features.async_provisioning);
}

#[test]
fn app_env_wins_over_node_env() {
    let cfg = load_with("NODE_ENV=production\nAPP_ENV=development\n", &[]);
    assert_eq!(cfg.map(|c| c.env).ok(), Some(AppEnv::Development));
    assert_eq!(
        variable_of(load_with("APP_ENV=staging\n", &[])),
        Some("APP_ENV")
    );
    assert_eq!(
        variable_of(load_with("NODE_ENV=staging\n", &[])),
        Some("NODE_ENV")
    );
}

#[test]
fn every_invalid_value_names_its_variable() {
    let cases: &[(&str, &str)] = &[
        ("PORT", "http"),
        ("PORT", "70000"),
        ("METRICS_PORT", "3001"),
        ("METRICS_PORT", "65536"),
        ("GLOBAL_DATABASE_URL", "not a url"),
        ("POSTGRES_ADMIN_PORT", "-1"),
        ("POSTGRES_PORT", "x"),
        ("REDIS_URL", "localhost:6379"),
        ("JWT_SECRET", "short"),
        ("SUPER_ADMIN_KEY", "short"),
        ("ENABLE_ASYNC_PROVISIONING", "sometimes"),
        ("ENABLE_METRICS", "2"),
        ("ENABLE_RATE_LIMITING", "y"),
        ("ENABLE_QUOTAS", "enabled"),
        ("MAX_CONNECTIONS_PER_TENANT", "0"),
        ("MAX_CONNECTIONS_PER_TENANT", "20000"),
        ("MAX_TOTAL_CONNECTIONS", "0"),
        ("POOL_IDLE_TIMEOUT", "10"),
        ("POOL_ACQUIRE_TIMEOUT_MS", "5"),
        ("POOL_SCOPE_AFFINITY_MS", "600001"),
        ("GLOBAL_POOL_SIZE", "0"),
        ("TENANT_SHARED_DATABASE", "shared-db"),
        ("TENANT_STORAGE_PREFIX", "TM"),
        ("LOG_LEVEL", "loud[=="),
        ("LOG_FORMAT", "xml"),
        ("REGION", "\u{7}"),
        ("ENABLE_MULTI_REGION", "perhaps"),
        ("ALLOWED_ORIGINS", "your-domain.com"),
        ("RATE_LIMIT_WINDOW_MS", "0"),
        ("RATE_LIMIT_MAX_REQUESTS", "-5"),
        ("BIND_ADDRESS", "everywhere"),
        ("REQUEST_TIMEOUT_MS", "1"),
        ("REQUEST_BODY_LIMIT_BYTES", "10"),
        ("ACCESS_TOKEN_TTL_SECONDS", "1"),
        ("PASSWORD_HASHING", "fast"),
        ("TENANT_DB_SECRET", "short"),
        ("PASSWORD_HASHING", "md5"),
    ];
    for (name, value) in cases {
        let got = variable_of(load_with(GUIDE_ENV, &[(name, value)]));
        assert_eq!(got, Some(*name), "{name}={value:?}");
    }
}

#[test]
fn production_with_postgres_needs_a_tenant_db_secret() {
    let got = load_with(GUIDE_ENV, &[("TENANT_DB_SECRET", "")]);
    assert_eq!(variable_of(got), Some("TENANT_DB_SECRET"));
    let dev = load_with(
        GUIDE_ENV,
        &[("TENANT_DB_SECRET", ""), ("NODE_ENV", "development")],
    );
    let dev = dev.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        dev.database
            .tenant_secret
            .is_some_and(|s| s.len() >= MIN_SECRET_LEN)
    );
}

#[test]
fn the_env_example_loads_once_its_secrets_are_filled() {
    let example = include_str!("../../../../.env.example");
    let secrets = [
        ("JWT_SECRET", "tA4lR0kq8w3Jd7mXbV2yQe9ZsN6uHc1GpF5oKi0LrTg="),
        (
            "SUPER_ADMIN_KEY",
            "Zq1Wx2Ec3Rv4Tb5Yn6Um7Ik8Ol9Pa0Sd1Fg2Hj3Kl4M=",
        ),
        (
            "TENANT_DB_SECRET",
            "Mn3Bv4Cx5Zl6Kj7Hg8Fd9Sa0Qw1Er2Ty3Ui4Op5As6D=",
        ),
    ];
    let cfg = load_with(example, &secrets).unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.env.is_production() && !cfg.is_embedded());
    assert!(cfg.redis.url.is_some());
    for (name, _) in secrets {
        let unfilled: Vec<(&str, &str)> = secrets
            .iter()
            .copied()
            .filter(|(n, _)| *n != name)
            .collect();
        assert_eq!(variable_of(load_with(example, &unfilled)), Some(name));
    }
}

#[test]
fn multi_region_needs_a_region() {
    let got = load_with(
        GUIDE_ENV,
        &[("ENABLE_MULTI_REGION", "true"), ("REGION", "")],
    );
    assert_eq!(variable_of(got), Some("REGION"));
}

#[test]
fn production_refuses_missing_secrets_and_development_generates_them() {
    let prod = load_with(GUIDE_ENV, &[("JWT_SECRET", "")]);
    assert_eq!(variable_of(prod), Some("JWT_SECRET"));
    let dev = load_with(
        GUIDE_ENV,
        &[("NODE_ENV", "development"), ("SUPER_ADMIN_KEY", "")],
    );
    assert!(dev.is_ok_and(|c| c.security.admin_key_generated));
}

#[test]
fn debug_prints_no_secret() {
    let cfg = load_with(GUIDE_ENV, &[]).unwrap_or_else(|e| panic!("{e}"));
    let shown = format!("{cfg:?}");
    for secret in [
        "pass@",
        "admin-password-value",
        "redis-password-value",
        "tA4lR0kq8w3Jd7mXbV2yQe9ZsN6uHc1GpF5oKi0LrTg",
        "Zq1Wx2Ec3Rv4Tb5Yn6Um7Ik8Ol9Pa0Sd1Fg2Hj3Kl4M",
        "Mn3Bv4Cx5Zl6Kj7Hg8Fd9Sa0Qw1Er2Ty3Ui4Op5As6D",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("db-host") && shown.contains("redis-host"));
}

#[test]
fn error_messages_never_echo_secret_values() {
    let err = load_with(GUIDE_ENV, &[("JWT_SECRET", "hunter2-short")]).err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.starts_with("JWT_SECRET: "), "{text}");
    assert!(!text.contains("hunter2"));
}

#[test]
fn an_s3_backup_store_needs_its_bucket_and_keys_and_hides_them() {
    let s3 = [
        ("BACKUP_STORE", "s3"),
        ("BACKUP_S3_BUCKET", "tm-backups"),
        ("BACKUP_S3_ENDPOINT", "http://127.0.0.1:9000"),
        ("BACKUP_S3_ACCESS_KEY_ID", "AKIDEXAMPLEID"),
        ("BACKUP_S3_SECRET_ACCESS_KEY", "s3-secret-access-key-value"),
    ];
    let config = load_with(GUIDE_ENV, &s3).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(config.backup_store, BackupStoreConfig::S3(_)));
    let shown = format!("{config:?}");
    assert!(shown.contains("tm-backups"), "{shown}");
    for secret in ["AKIDEXAMPLEID", "s3-secret-access-key-value"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    for missing in [
        "BACKUP_S3_BUCKET",
        "BACKUP_S3_ACCESS_KEY_ID",
        "BACKUP_S3_SECRET_ACCESS_KEY",
    ] {
        let without: Vec<_> = s3.iter().copied().filter(|(k, _)| *k != missing).collect();
        let mut map = env_map(GUIDE_ENV);
        for (k, v) in without {
            map.insert(k.to_owned(), v.to_owned());
        }
        let result = Config::from_lookup(move |name| map.get(name).cloned());
        assert_eq!(variable_of(result), Some(missing));
    }
    let result = load_with(GUIDE_ENV, &[("BACKUP_STORE", "ftp")]);
    assert_eq!(variable_of(result), Some("BACKUP_STORE"));
    let local =
        load_with(GUIDE_ENV, &[("BACKUP_DIR", "/var/backups")]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&local.backup_store, BackupStoreConfig::Local(dir) if dir.as_path() == std::path::Path::new("/var/backups"))
    );
}
