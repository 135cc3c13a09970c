//! The OpenAPI document's frame: info, tags, security schemes and shared schemas. The paths
//! come from the handlers' `#[utoipa::path]` attributes as the routers are assembled.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};

/// Name of the bearer-token security scheme (the handlers' `security(("bearer" = []))`).
const BEARER: &str = "bearer";
/// Name of the admin-key security scheme (the handlers' `security(("admin_key" = []))`).
const ADMIN_KEY: &str = "admin_key";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tenant-manager reference server",
        description = "Multitenant SaaS backend: organisation registration, login, tenant-scoped \
                       data and an admin API. Every error is `{\"error\":{\"code\",\"message\",\"field\"?}}`."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Registration and login"),
        (name = "tenant", description = "The caller's tenant and its data"),
        (name = "admin", description = "Operator API (header X-Admin-Key)"),
        (name = "health", description = "Liveness, readiness, metrics and this document"),
    )
)]
pub(crate) struct ApiDoc;

#[derive(Debug)]
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            ADMIN_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Admin-Key"))),
        );
    }
}
