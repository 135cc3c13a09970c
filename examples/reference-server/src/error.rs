//! Every error answer of the API: `{"error":{"code","message","field"?}}` with a fitting status.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use tenant_manager::Error;

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
}

/// An error answer. Built from [`tenant_manager::Error`] or from a request rejection.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    detail: ErrorDetail,
    retry_after: Option<Duration>,
}

impl ApiError {
    /// An answer with an explicit status and code.
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            detail: ErrorDetail {
                code: code.to_owned(),
                message: message.into(),
                field: None,
            },
            retry_after: None,
        }
    }

    /// Names the input field at fault.
    #[must_use]
    pub(crate) fn with_field(mut self, field: impl Into<String>) -> Self {
        self.detail.field = Some(field.into());
        self
    }

    /// The status code of the answer.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }
}

/// The HTTP status for an error of the toolkit.
pub(crate) fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Conflict { .. } | Error::InvalidTransition { .. } => StatusCode::CONFLICT,
        Error::InvalidInput { .. } => StatusCode::BAD_REQUEST,
        Error::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
        Error::Forbidden { .. } | Error::Suspended { .. } => StatusCode::FORBIDDEN,
        Error::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::NotReady { .. } | Error::PoolExhausted { .. } | Error::Unavailable { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let status = status_of(&error);
        let message = if status.is_server_error() && !matches!(error, Error::NotReady { .. }) {
            tracing::error!(error = %error, source = ?std::error::Error::source(&error), "request failed");
            match &error {
                Error::Unavailable { backend, .. } => format!("{backend} unavailable"),
                Error::PoolExhausted { .. } => "no database connection available".to_owned(),
                _ => "internal error".to_owned(),
            }
        } else {
            error.to_string()
        };
        let retry_after = match &error {
            Error::PoolExhausted { .. } | Error::Unavailable { .. } => Some(Duration::from_secs(1)),
            other => other.retry_after(),
        };
        Self {
            status,
            detail: ErrorDetail {
                code: error.code().to_owned(),
                message,
                field: error.field().map(str::to_owned),
            },
            retry_after,
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            "unsupported_media_type"
        } else {
            "invalid_input"
        };
        Self::new(status, code, rejection.body_text()).with_field("body")
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", rejection.body_text()).with_field("path")
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", rejection.body_text()).with_field("query")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorBody { error: self.detail })).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Answer for routes that do not exist.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let (status, json, _) = body_of(Error::invalid("admin_email", "must contain @").into()).await;
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
    }

    #[tokio::test]
    async fn server_errors_do_not_leak_internals() {
        let err = Error::internal_with("constraint xyz in table secret_stuff", std::io::Error::other("boom"));
        let (status, json, _) = body_of(err.into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(json["error"]["message"], "internal error");
        let err = Error::unavailable("postgres", std::io::Error::other("password=hunter2"));
        let (status, json, retry) = body_of(err.into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json["error"]["message"], "postgres unavailable");
        assert_eq!(retry.as_deref(), Some("1"));
    }
}
