//! One file per resource. Each exposes `router()`: an `OpenApiRouter` whose handlers carry
//! their OpenAPI description, so the document at `/api/openapi.json` is generated from the
//! routes actually served.

pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod backup_care;
pub(crate) mod backups;
pub(crate) mod companies;
pub(crate) mod docs;
pub(crate) mod health;
pub(crate) mod invitations;
pub(crate) mod jobs;
pub(crate) mod metrics;
pub(crate) mod migrations;
pub(crate) mod move_cancel;
pub(crate) mod moves;
pub(crate) mod plans;
pub(crate) mod sessions;
pub(crate) mod tenant;
#[cfg(feature = "attack-route")]
pub(crate) mod test_sql;
pub(crate) mod top_tenants;
pub(crate) mod users;
pub(crate) mod webhooks;

mod caller;
mod extract;
mod views;
