//! One file per resource. Each exposes `router()`: an `OpenApiRouter` whose handlers carry
//! their OpenAPI description, so the document at `/api/openapi.json` is generated from the
//! routes actually served.

pub(crate) mod docs;
pub(crate) mod health;
pub(crate) mod metrics;
