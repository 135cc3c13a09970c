//! Exit codes scripts can rely on, and the one place errors become them.

use std::process::ExitCode;

use tenant_manager::Error;

use crate::config::ConfigError;

/// Exit codes of `tenant-cli`.
///
/// | code | meaning |
/// |---|---|
/// | 0 | success |
/// | 1 | failure not covered below (internal error, I/O); `wall check` found a problem |
/// | 2 | wrong usage (unknown command or flag, bad argument) |
/// | 3 | not found (tenant, backup) |
/// | 4 | conflict (slug or e-mail taken, illegal status change) |
/// | 5 | invalid input |
/// | 6 | a backend (Postgres, Redis, pg_dump, the server) is unavailable |
/// | 7 | partly done: some tenants failed (fleet migrations, backups) |
/// | 8 | a load test exceeded its error budget |
/// | 78 | invalid configuration (environment or `.env`) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// 0.
    Success,
    /// 1.
    Failure,
    /// 2.
    Usage,
    /// 3.
    NotFound,
    /// 4.
    Conflict,
    /// 5.
    Invalid,
    /// 6.
    Unavailable,
    /// 7.
    Partial,
    /// 8.
    ErrorBudget,
    /// 78.
    Config,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::NotFound => 3,
            Exit::Conflict => 4,
            Exit::Invalid => 5,
            Exit::Unavailable => 6,
            Exit::Partial => 7,
            Exit::ErrorBudget => 8,
            Exit::Config => 78,
        }
    }

    /// The exit code of a toolkit error.
    pub fn of(error: &Error) -> Self {
        match error {
            Error::NotFound { .. } => Exit::NotFound,
            Error::Conflict { .. } | Error::InvalidTransition { .. } => Exit::Conflict,
            Error::InvalidInput { .. } => Exit::Invalid,
            Error::Unavailable { .. }
            | Error::PoolExhausted { .. }
            | Error::NotReady { .. }
            | Error::NoCapacity { .. } => Exit::Unavailable,
            _ => Exit::Failure,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// A command failure: what to print on stderr and how to exit.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// The exit code.
    pub exit: Exit,
    /// The message (one line, no secrets).
    pub message: String,
}

impl CliError {
    /// A failure with an explicit code.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }
}

impl From<Error> for CliError {
    fn from(error: Error) -> Self {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::new(Exit::of(&error), message)
    }
}

impl From<ConfigError> for CliError {
    fn from(error: ConfigError) -> Self {
        Self::new(Exit::Config, format!("invalid configuration: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenant_manager::Entity;

    #[test]
    fn errors_map_to_stable_codes() {
        assert_eq!(Exit::of(&Error::not_found(Entity::Tenant, "x")).code(), 3);
        assert_eq!(
            Exit::of(&Error::conflict(Entity::Tenant, "slug", "taken")).code(),
            4
        );
        assert_eq!(Exit::of(&Error::invalid("slug", "bad")).code(), 5);
        let down = Error::unavailable("postgres", std::io::Error::other("refused"));
        let cli = CliError::from(down);
        assert_eq!(cli.exit.code(), 6);
        assert!(cli.message.contains("refused"));
        assert_eq!(
            CliError::from(ConfigError::new("PORT", "bad")).exit.code(),
            78
        );
    }
}
