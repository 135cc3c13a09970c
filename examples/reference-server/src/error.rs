//! Every error answer of the API: `{"error":{"code","message","field"?}}` with a fitting status.
//!
//! Toolkit errors go through `tenant_manager::tower::error_response`, the same mapping the
//! middleware layers use, so a refusal looks the same wherever it is made.

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use tenant_manager::Error;
use tenant_manager::tower::{error_response, json_error};

/// The body of an error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// The error.
    pub(crate) error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable machine-readable code, such as `tenant_not_found` or `quota_exceeded`.
    pub(crate) code: String,
    /// Human-readable explanation.
    pub(crate) message: String,
    /// The input field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) field: Option<String>,
    /// The tenant concerned, on `provisioning_failed` (retry the same registration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tenant_id: Option<uuid::Uuid>,
}

/// `Retry-After` of `503 provisioning_failed`: the storage a provisioning failed on is
/// usually back within seconds (a restart, a connection limit).
pub(crate) const PROVISIONING_RETRY_AFTER_SECS: u64 = 10;

/// An error answer: a toolkit error, or a refusal of the HTTP layer itself.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// An error of the toolkit (validation, not found, conflict, backend down, ...).
    Toolkit(Error),
    /// A refusal with an explicit status and code (a malformed request, a missing route).
    Http {
        status: StatusCode,
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    },
    /// The registration went through but its tenant's provisioning failed: `503
    /// provisioning_failed` with the tenant id and `Retry-After`. Registering again with the
    /// same e-mail and password provisions that tenant again.
    ProvisioningFailed {
        /// The failed tenant.
        tenant_id: uuid::Uuid,
    },
}

impl ApiError {
    /// A refusal with an explicit status and code.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Http {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    fn rejection(status: StatusCode, message: String, field: &'static str) -> Self {
        // A body that parses but does not fit (a wrong type, an unknown field) is invalid
        // input like any other: 400, as everywhere in the API.
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "invalid_input",
        };
        ApiError::Http {
            status,
            code,
            message,
            field: Some(field),
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError::Toolkit(error)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self::rejection(rejection.status(), rejection.body_text(), "body")
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::rejection(StatusCode::BAD_REQUEST, rejection.body_text(), "path")
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::rejection(StatusCode::BAD_REQUEST, rejection.body_text(), "query")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Toolkit(error) => error_response(&error).map(Body::new),
            ApiError::Http {
                status,
                code,
                message,
                field,
            } => json_error(status, code, &message, field).map(Body::new),
            ApiError::ProvisioningFailed { tenant_id } => provisioning_failed(tenant_id),
        }
    }
}

fn provisioning_failed(tenant_id: uuid::Uuid) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: "provisioning_failed".to_owned(),
            message: "the organisation was registered but its storage could not be provisioned; \
                      send the same registration again to retry"
                .to_owned(),
            field: None,
            tenant_id: Some(tenant_id),
        },
    };
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(PROVISIONING_RETRY_AFTER_SECS),
    );
    response
}

/// Answer for routes that do not exist.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use http::header;
    use http_body_util::BodyExt as _;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value, Option<String>) {
        let response = error.into_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let json = serde_json::from_slice(&bytes).unwrap_or_default();
        (status, json, retry)
    }

    #[tokio::test]
    async fn errors_have_the_documented_shape_and_status() {
        let (status, json, _) =
            body_of(Error::invalid("admin_email", "must contain @").into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json["error"]["code"], "invalid_input");
        assert_eq!(json["error"]["field"], "admin_email");

        let quota = Error::QuotaExceeded {
            quota: "requests".into(),
            limit: 100,
            retry_after: Duration::from_millis(1500),
        };
        let (status, json, retry) = body_of(quota.into()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(json["error"]["code"], "quota_exceeded");
        assert!(json["error"].get("field").is_none());
        assert_eq!(retry.as_deref(), Some("2"));

        let (status, json, _) = body_of(ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "no",
        ))
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(json["error"]["code"], "route_not_found");
    }

    #[tokio::test]
    async fn server_errors_do_not_leak_internals() {
        let err = Error::internal_with(
            "constraint xyz in table secret_stuff",
            std::io::Error::other("boom"),
        );
        let (status, json, _) = body_of(err.into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(json["error"]["message"], "internal error");
    }

    #[tokio::test]
    async fn failed_provisioning_is_a_503_naming_the_tenant_with_retry_after() {
        let id = uuid::Uuid::new_v4();
        let (status, json, retry) = body_of(ApiError::ProvisioningFailed { tenant_id: id }).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json["error"]["code"], "provisioning_failed");
        assert_eq!(json["error"]["tenant_id"], id.to_string());
        assert_eq!(retry.as_deref(), Some("10"));
    }
}
