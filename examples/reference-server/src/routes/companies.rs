//! `GET/POST /api/companies`, `GET/PATCH/DELETE /api/companies/{id}`: the tenant's companies,
//! in its own storage (embedded: in memory; Postgres: its database, schema or shared rows,
//! through a pooled connection scoped to it). The tenant comes from the access token only.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::Deserialize;
use tenant_manager::tower::extract::Tenant;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Body, PathParams, QueryParams};
use crate::companies::{Company, CompanyPage, CompanyPatch, NewCompany};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The `503` of every company route.
const STORAGE_UNAVAILABLE: &str =
    "The tenant's storage is unreachable or its connection pool is exhausted";
/// The `404` of the routes that name a company.
const NO_SUCH_COMPANY: &str = "No such company in the caller's tenant";

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, remove))
}

/// Paging of the list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Start after this company id (the previous page's `next`).
    after: Option<Uuid>,
    /// Page size, 1 to 100 (default 50).
    limit: Option<u32>,
}

/// The caller's companies, oldest first.
#[utoipa::path(get, path = "/api/companies", tag = "tenant", security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "One page of companies", body = CompanyPage),
        (status = 400, description = "Bad paging parameters", body = ErrorBody),
        (status = 401, description = "No valid access token", body = ErrorBody),
        (status = 429, description = "The tenant's request quota is spent", body = ErrorBody),
        (status = 503, description = STORAGE_UNAVAILABLE, body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<CompanyPage>, ApiError> {
    let page = state
        .services
        .companies
        .list(&tenant, params.after, params.limit.unwrap_or(50))
        .await?;
    Ok(Json(page))
}

/// Creates a company.
#[utoipa::path(post, path = "/api/companies", tag = "tenant", security(("bearer" = [])),
    request_body = NewCompany,
    responses(
        (status = 201, description = "Created", body = Company),
        (status = 400, description = "A field is invalid", body = ErrorBody),
        (status = 401, description = "No valid access token", body = ErrorBody),
        (status = 503, description = STORAGE_UNAVAILABLE, body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Body(new): Body<NewCompany>,
) -> Result<(StatusCode, Json<Company>), ApiError> {
    let company = new.into_company(OffsetDateTime::now_utc())?;
    let company = state.services.companies.create(&tenant, company).await?;
    Ok((StatusCode::CREATED, Json(company)))
}

/// One company.
#[utoipa::path(get, path = "/api/companies/{id}", tag = "tenant", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Company id")),
    responses(
        (status = 200, description = "The company", body = Company),
        (status = 404, description = NO_SUCH_COMPANY, body = ErrorBody),
        (status = 503, description = STORAGE_UNAVAILABLE, body = ErrorBody),
    ))]
pub(crate) async fn get_one(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathParams(id): PathParams<Uuid>,
) -> Result<Json<Company>, ApiError> {
    Ok(Json(state.services.companies.get(&tenant, id).await?))
}

/// Changes a company's name or domain.
#[utoipa::path(patch, path = "/api/companies/{id}", tag = "tenant", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Company id")),
    request_body = CompanyPatch,
    responses(
        (status = 200, description = "The updated company", body = Company),
        (status = 400, description = "A field is invalid", body = ErrorBody),
        (status = 404, description = NO_SUCH_COMPANY, body = ErrorBody),
        (status = 503, description = STORAGE_UNAVAILABLE, body = ErrorBody),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathParams(id): PathParams<Uuid>,
    Body(patch): Body<CompanyPatch>,
) -> Result<Json<Company>, ApiError> {
    Ok(Json(
        state.services.companies.update(&tenant, id, patch).await?,
    ))
}

/// Deletes a company.
#[utoipa::path(delete, path = "/api/companies/{id}", tag = "tenant", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Company id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = NO_SUCH_COMPANY, body = ErrorBody),
        (status = 503, description = STORAGE_UNAVAILABLE, body = ErrorBody),
    ))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    PathParams(id): PathParams<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.services.companies.delete(&tenant, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
