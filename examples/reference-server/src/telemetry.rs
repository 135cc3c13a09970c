//! Tracing set-up: `LOG_LEVEL` as filter, JSON lines in production, text in development.
//! Colours (ANSI escapes) only when the log stream is a terminal, so files, pipes and log
//! collectors get plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};
pub use crate::startup_error::TelemetryError;

/// Installs the global subscriber. Call once, before [`App::build`](crate::App::build).
///
/// # Errors
/// [`TelemetryError`] when the filter is invalid or a subscriber is already installed.
pub fn init(config: &Config) -> Result<(), TelemetryError> {
    let filter =
        EnvFilter::try_new(&config.log_level).map_err(|e| TelemetryError(e.to_string()))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(std::io::stdout);
    let installed = match config.log_format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init(),
        LogFormat::Text => builder.with_target(true).try_init(),
    };
    installed.map_err(|e| TelemetryError(e.to_string()))
}

/// Installs human-readable logs on stderr for `tenant-cli` (stdout carries its results), at
/// `LOG_LEVEL` when it is set, else `warn`.
///
/// # Errors
/// As [`init`].
pub fn init_cli(config: &Config, log_level_set: bool) -> Result<(), TelemetryError> {
    let level = if log_level_set {
        config.log_level.as_str()
    } else {
        "warn"
    };
    let filter = EnvFilter::try_new(level).map_err(|e| TelemetryError(e.to_string()))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| TelemetryError(e.to_string()))
}
