//! The environment the server runs in, and its log format.

use std::str::FromStr;

/// Production or development (`APP_ENV`, or `NODE_ENV` as an alias).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AppEnv {
    /// Secrets are generated when missing; logs are human-readable.
    #[default]
    Development,
    /// Secrets are required; logs are JSON.
    Production,
    /// As development; for test runs.
    Test,
}

impl AppEnv {
    /// Whether production rules apply.
    pub fn is_production(self) -> bool {
        self == AppEnv::Production
    }

    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            AppEnv::Development => "development",
            AppEnv::Production => "production",
            AppEnv::Test => "test",
        }
    }
}

impl FromStr for AppEnv {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "production" | "prod" => Ok(AppEnv::Production),
            "development" | "dev" => Ok(AppEnv::Development),
            "test" => Ok(AppEnv::Test),
            _ => Err(()),
        }
    }
}

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// One JSON object per line (default in production).
    Json,
    /// Human-readable lines (default in development).
    Text,
}
