//! Why the server could not start or stopped with an error: the bottom of the crate, which
//! configuration, telemetry, services and the app all return.

use std::net::SocketAddr;

/// A configuration value that stops start-up, with the variable it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault (`PORT`, `JWT_SECRET`, ...).
    pub variable: &'static str,
    /// What is wrong with it (never its value when it is a secret).
    pub reason: String,
}

impl ConfigError {
    /// An error about `variable`.
    pub fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        Self {
            variable,
            reason: reason.into(),
        }
    }
}

/// Tracing could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the log subscriber: {0}")]
pub struct TelemetryError(pub(crate) String);

/// A start-up or serving failure. [`StartupError::exit_code`] gives the process exit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// Logging could not be set up.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A backend could not be set up (database, Redis, migrations, self-test).
    #[error("cannot start {what}: {source}")]
    Backend {
        /// What was being started.
        what: &'static str,
        /// Why.
        #[source]
        source: tenant_manager::Error,
    },
    /// The tenant wall of the deployment's schema and shared databases is not ready for this
    /// instance: not installed (a deployment from before the wall) or the signing key
    /// (`WALL_KEY_ID`) is not valid there.
    #[error(
        "the tenant wall is not ready: {}. Stop the instances of the previous version and run \
         `tenant-cli wall migrate`; when WALL_KEY_ID names a new key, add it first with \
         `tenant-cli wall rotate-key --key-id <WALL_KEY_ID>`",
        problems.join("; ")
    )]
    Wall {
        /// One line per database at fault.
        problems: Vec<String>,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

impl StartupError {
    /// Exit code for the process: 78 (EX_CONFIG) for configuration and for a deployment whose
    /// wall is not ready, 69 (EX_UNAVAILABLE) for an unreachable backend or port, 70
    /// (EX_SOFTWARE) otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Config(_) | StartupError::Wall { .. } => 78,
            StartupError::Bind { .. } | StartupError::Backend { .. } => 69,
            _ => 70,
        }
    }

    /// A backend failure.
    pub fn backend(what: &'static str, source: tenant_manager::Error) -> Self {
        StartupError::Backend { what, source }
    }
}
