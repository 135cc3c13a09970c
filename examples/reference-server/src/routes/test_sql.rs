//! `POST /api/test/sql` `{"sql": "..."}`: compiled only with the feature `attack-route`, for
//! the attack suite (`tests/e2e_wall_attacks.rs`), never in a deployment. It runs the body's
//! SQL (simple protocol, several statements allowed) inside the caller's pooled tenant
//! connection, exactly as SQL injected through a bug in a host handler would run, and answers
//! every statement's rows (each column as text, `null` for NULL) or the error's SQLSTATE and
//! message. The tenant comes from the access token, as for `/api/companies`; the route is
//! kept out of the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::TryStreamExt as _;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{Either, PgConnection, Row as _, ValueRef as _};
use tenant_manager::Entity;
use tenant_manager::postgres::map_sqlx;
use tenant_manager::tower::extract::Tenant;
use utoipa_axum::router::OpenApiRouter;

use super::extract::Body;
use crate::error::ApiError;
use crate::state::AppState;

/// The rows of one statement: each column's text, or `None` for NULL.
type Rows = Vec<Vec<Option<String>>>;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().route("/api/test/sql", post(run))
}

/// The SQL to run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqlRequest {
    sql: String,
}

/// `200`: the rows of every statement, in order (an empty list for a statement without rows).
#[derive(Debug, Serialize)]
struct SqlAnswer {
    results: Vec<Rows>,
}

/// `422`: the statement that failed (the statements before it ran).
#[derive(Debug, Serialize)]
struct SqlFailure {
    error: SqlError,
}

#[derive(Debug, Serialize)]
struct SqlError {
    code: &'static str,
    sqlstate: Option<String>,
    message: String,
}

async fn run(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Body(request): Body<SqlRequest>,
) -> Result<Response, ApiError> {
    let Some(pools) = &state.services.sql_pools else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "the SQL test route needs the Postgres adapters",
        ));
    };
    let mut conn = pools.acquire(&tenant).await?;
    let outcome = statements(&mut conn, request.sql).await;
    // Returned (and reset) before answering, as every handler's connection.
    drop(conn);
    match outcome {
        Ok(results) => Ok(Json(SqlAnswer { results }).into_response()),
        Err(sqlx::Error::Database(error)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(SqlFailure {
                error: SqlError {
                    code: "sql_error",
                    sqlstate: error.code().map(|c| c.into_owned()),
                    message: error.message().to_owned(),
                },
            }),
        )
            .into_response()),
        Err(other) => Err(ApiError::from(map_sqlx(Entity::Record, other))),
    }
}

/// Runs `sql` and collects each statement's rows.
async fn statements(conn: &mut PgConnection, sql: String) -> Result<Vec<Rows>, sqlx::Error> {
    let mut results = Vec::new();
    let mut current = Vec::new();
    let mut stream = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_many(&mut *conn);
    while let Some(item) = stream.try_next().await? {
        match item {
            Either::Left(_) => results.push(std::mem::take(&mut current)),
            Either::Right(row) => current.push(texts(&row)?),
        }
    }
    if !current.is_empty() {
        results.push(current);
    }
    Ok(results)
}

/// Every column of `row` as text (the simple protocol answers in text).
fn texts(row: &PgRow) -> Result<Vec<Option<String>>, sqlx::Error> {
    (0..row.len())
        .map(|i| {
            let value = row.try_get_raw(i)?;
            if value.is_null() {
                return Ok(None);
            }
            value
                .as_str()
                .map(|text| Some(text.to_owned()))
                .map_err(sqlx::Error::Decode)
        })
        .collect()
}
