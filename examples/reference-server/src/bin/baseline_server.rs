//! `baseline-server`: the peer of the end-to-end bench (`scripts/e2e-bench.sh`). The tenant
//! routes that `tenant-cli loadtest` drives, served as a single-tenant application would serve
//! them: axum and one plain sqlx `PgPool`, the reference server's company statements
//! schema-qualified against one schema (`baseline`), no authentication, no tenancy, no rate
//! limit. Authorization headers are ignored.
//!
//! Routes: `GET /health`, `GET/POST /api/companies`, `GET /api/companies/{id}`, and
//! `GET /api/tenant` (the one tenant, a fixed answer: the reference server answers it from its
//! tenant cache and Redis, without Postgres).
//!
//! ```text
//! baseline-server --database-url postgresql://postgres@127.0.0.1/bench --bind 127.0.0.1:3932
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use http::StatusCode;
use reference_server::app::signalled;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use time::OffsetDateTime;
use uuid::Uuid;

/// The companies table, as the reference server's tenant migration creates it, in one schema.
const SCHEMA: &str = "CREATE SCHEMA IF NOT EXISTS baseline; \
    CREATE TABLE IF NOT EXISTS baseline.companies ( \
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(), \
        name text NOT NULL, \
        domain text, \
        created_at timestamptz NOT NULL DEFAULT now())";
const LIST: &str = "SELECT id, name, domain, created_at FROM baseline.companies \
    WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2";
const INSERT: &str = "INSERT INTO baseline.companies (id, name, domain, created_at) \
    VALUES ($1, $2, $3, $4) RETURNING id, name, domain, created_at";
const GET: &str = "SELECT id, name, domain, created_at FROM baseline.companies WHERE id = $1";

/// Options (each also from the environment).
#[derive(Parser)]
#[command(
    name = "baseline-server",
    about = "Single-tenant peer of the end-to-end bench"
)]
struct Args {
    /// The database holding schema `baseline` (created when missing).
    #[arg(long, env = "BASELINE_DATABASE_URL")]
    database_url: String,
    /// Address to listen on.
    #[arg(long, env = "BASELINE_BIND", default_value = "127.0.0.1:3932")]
    bind: SocketAddr,
    /// Connections of the pool.
    #[arg(long, env = "BASELINE_POOL_SIZE", default_value_t = 20)]
    pool_size: u32,
}

#[derive(Clone)]
struct AppState {
    pool: PgPool,
    tenant: Arc<Value>,
}

type Row = (Uuid, String, Option<String>, OffsetDateTime);

#[derive(Serialize)]
struct Company {
    id: Uuid,
    name: String,
    domain: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl From<Row> for Company {
    fn from((id, name, domain, created_at): Row) -> Self {
        Self {
            id,
            name,
            domain,
            created_at,
        }
    }
}

#[derive(Serialize)]
struct CompanyPage {
    items: Vec<Company>,
    next: Option<Uuid>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    after: Option<Uuid>,
    limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCompany {
    name: String,
    #[serde(default)]
    domain: Option<String>,
}

/// An error answer in the reference server's shape.
struct ApiError(StatusCode, &'static str, Option<String>, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ApiError(status, code, field, message) = self;
        let body = json!({"error": {"code": code, "field": field, "message": message}});
        (status, Json(body)).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            None,
            e.to_string(),
        )
    }
}

impl From<tenant_manager::Error> for ApiError {
    fn from(e: tenant_manager::Error) -> Self {
        ApiError(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            e.field().map(str::to_owned),
            e.to_string(),
        )
    }
}

async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<CompanyPage>, ApiError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            Some("limit".to_owned()),
            "must be 1 to 100".into(),
        ));
    }
    let rows: Vec<Row> = sqlx::query_as(LIST)
        .bind(params.after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&state.pool)
        .await?;
    let fetched: Vec<Company> = rows.into_iter().map(Company::from).collect();
    let (items, next) = reference_server::paging::cut(fetched, limit, |c| c.id);
    Ok(Json(CompanyPage { items, next }))
}

async fn create(
    State(state): State<AppState>,
    Json(new): Json<NewCompany>,
) -> Result<(StatusCode, Json<Company>), ApiError> {
    let name = tenant_manager::validate_name(new.name, "name")?;
    let domain = match new.domain.map(|d| d.trim().to_ascii_lowercase()) {
        Some(d) => {
            tenant_manager::validate_domain(&d)?;
            Some(d)
        }
        None => None,
    };
    let row: Row = sqlx::query_as(INSERT)
        .bind(Uuid::now_v7())
        .bind(name)
        .bind(domain)
        .bind(OffsetDateTime::now_utc())
        .fetch_one(&state.pool)
        .await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<Company>, ApiError> {
    let row: Option<Row> = sqlx::query_as(GET)
        .bind(id)
        .fetch_optional(&state.pool)
        .await?;
    row.map(|r| Json(r.into())).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "not_found",
            None,
            format!("company {id}"),
        )
    })
}

async fn tenant(State(state): State<AppState>) -> Json<Value> {
    Json(Value::clone(&state.tenant))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The answer of `GET /api/tenant`, shaped like the reference server's.
fn the_tenant() -> Value {
    json!({
        "id": Uuid::now_v7(),
        "slug": "baseline",
        "name": "Baseline",
        "status": "active",
        "plan": "free",
        "isolation": "schema",
        "region": null,
        "quota": {"max_requests": 10_000_000, "window_seconds": 900, "max_users": 10,
                  "max_storage_bytes": 1_073_741_824u64, "max_connections": 20},
        "usage": {"users": 1, "storage_bytes": 0},
    })
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let pool = PgPoolOptions::new()
        .max_connections(args.pool_size)
        .connect(&args.database_url)
        .await?;
    sqlx::raw_sql(SCHEMA).execute(&pool).await?;
    let state = AppState {
        pool: pool.clone(),
        tenant: Arc::new(the_tenant()),
    };
    let app = Router::new()
        .route("/health", get(health))
        .route("/api/companies", get(list).post(create))
        .route("/api/companies/{id}", get(get_one))
        .route("/api/tenant", get(tenant))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    eprintln!("baseline-server: serving on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            signalled().await;
        })
        .await?;
    // Closing the connections makes their backends publish their statistics at once.
    pool.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baseline-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
