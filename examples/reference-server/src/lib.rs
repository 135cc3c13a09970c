//! # reference-server
//!
//! The complete multitenant service of the deployment guide, built on tenant-manager: an axum
//! server (`reference-server`), an operator CLI (`tenant-cli`) and the deploy files.
//!
//! - [`config`]: every environment variable of the guide, validated at start-up.
//! - [`app`]: [`App::build`](app::App::build) wires adapters, routes and middleware;
//!   [`App::serve`](app::App::serve) runs until SIGTERM or ctrl-c and shuts down gracefully.
//! - [`cli`]: `tenant-cli`, including the `loadtest` command.
//! - [`http_client`]: the small HTTP/1 client `tenant-cli loadtest` and the end-to-end tests use.

pub mod app;
pub mod cli;
pub mod config;
pub mod http_client;
pub mod paging;
pub mod startup_error;
pub mod telemetry;

pub(crate) mod companies;
pub(crate) mod error;
pub(crate) mod metrics;
pub(crate) mod openapi;
pub(crate) mod readiness;
pub(crate) mod router;
pub(crate) mod routes;
pub(crate) mod services;
pub(crate) mod state;
pub(crate) mod top_tenants;

pub use app::App;
pub use config::Config;
pub use startup_error::{ConfigError, StartupError};
