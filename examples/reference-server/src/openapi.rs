//! The OpenAPI document's frame: info, tags, security schemes and shared schemas. The paths
//! come from the handlers' `#[utoipa::path]` attributes as the routers are assembled.

use utoipa::openapi::RefOr;
use utoipa::openapi::link::LinkBuilder;
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
        (name = "users", description = "Users of the caller's tenant and their invitations (owners and admins)"),
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

/// Operations that act on the tenant a registration answers (`$response.body#/tenant/id`).
const TENANT_OPERATIONS: [&str; 7] = [
    "get_tenant",
    "delete_tenant",
    "suspend",
    "resume",
    "retry_provisioning",
    "put_quota",
    "create_backup",
];

/// Operations that act on the company a create answers (`$response.body#/id`).
const COMPANY_OPERATIONS: [&str; 3] = ["get_one", "update", "remove"];

/// Adds OpenAPI links from the operations that create a tenant or a company to those that act
/// on it, so clients and stateful testers (schemathesis) can follow them.
pub(crate) fn add_links(doc: &mut utoipa::openapi::OpenApi) {
    let creators: [(&str, &[&str], &str, &[&str]); 3] = [
        (
            "/api/auth/register-organization",
            &["201", "202"],
            "$response.body#/tenant/id",
            &TENANT_OPERATIONS,
        ),
        (
            "/api/admin/tenants",
            &["201", "202"],
            "$response.body#/tenant/id",
            &TENANT_OPERATIONS,
        ),
        (
            "/api/companies",
            &["201"],
            "$response.body#/id",
            &COMPANY_OPERATIONS,
        ),
    ];
    for (path, statuses, id, targets) in creators {
        let Some(operation) = doc.paths.paths.get_mut(path).and_then(|i| i.post.as_mut()) else {
            continue;
        };
        for status in statuses {
            let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) else {
                continue;
            };
            for target in targets {
                let link = LinkBuilder::new()
                    .operation_id(*target)
                    .parameter("id", id)
                    .build();
                response.links.insert((*target).to_owned(), RefOr::T(link));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn creations_link_to_the_operations_on_what_they_created() {
        let doc = serde_json::to_value(crate::router::openapi()).unwrap_or_default();
        let ids: Vec<&str> = doc["paths"]
            .as_object()
            .into_iter()
            .flat_map(|paths| paths.values())
            .filter_map(|item| item.as_object())
            .flat_map(|ops| ops.values())
            .filter_map(|op| op["operationId"].as_str())
            .collect();
        for (path, status, target, expression) in [
            (
                "/api/auth/register-organization",
                "201",
                "create_backup",
                "$response.body#/tenant/id",
            ),
            (
                "/api/admin/tenants",
                "202",
                "get_tenant",
                "$response.body#/tenant/id",
            ),
            ("/api/companies", "201", "remove", "$response.body#/id"),
        ] {
            let link = &doc["paths"][path]["post"]["responses"][status]["links"][target];
            assert_eq!(link["operationId"], target, "{path} {status}");
            assert_eq!(link["parameters"]["id"], expression, "{path} {status}");
            assert!(ids.contains(&target), "{target} is no operation");
        }
    }
}
