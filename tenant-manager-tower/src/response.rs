//! The one place that turns a refusal into an HTTP response: status, headers and the JSON body
//! `{"error":{"code":..., "message":..., "field"?: ...}}`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use tenant_manager_core::{Error, TenantStatus};

/// Body of every refusal the layers build.
pub type RefusalBody = Full<Bytes>;

/// `Retry-After` sent with `409 tenant_not_ready` while a tenant is pending or provisioning.
pub const NOT_READY_RETRY_AFTER: Duration = Duration::from_secs(5);

/// `Retry-After` sent with `503` (backend unavailable, pool exhausted).
pub const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The HTTP status of an error.
///
/// | error | status |
/// |---|---|
/// | `InvalidInput` | 400 |
/// | `Unauthenticated` | 401 (with `WWW-Authenticate: Bearer`) |
/// | `Forbidden`, `Suspended` | 403 |
/// | `NotFound` | 404 |
/// | `Conflict`, `InvalidTransition`, `NotReady` | 409 (`NotReady` of a pending or provisioning tenant adds `Retry-After`) |
/// | `QuotaExceeded` with a retry delay | 429 with `Retry-After` |
/// | `QuotaExceeded` without one (only a plan change helps) | 403 |
/// | `PoolExhausted`, `Unavailable` | 503 with `Retry-After` |
/// | `Moving` (writes of a tenant moving to another server) | 503 with `Retry-After` |
/// | `NoCapacity` (every database server full; waiting does not help) | 503 |
/// | `Internal` and anything else | 500 |
pub fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::InvalidInput { .. } => StatusCode::BAD_REQUEST,
        Error::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
        Error::Forbidden { .. } | Error::Suspended { .. } => StatusCode::FORBIDDEN,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Conflict { .. } | Error::InvalidTransition { .. } | Error::NotReady { .. } => {
            StatusCode::CONFLICT
        }
        Error::QuotaExceeded { retry_after, .. } if retry_after.is_zero() => StatusCode::FORBIDDEN,
        Error::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::PoolExhausted { .. }
        | Error::Unavailable { .. }
        | Error::NoCapacity { .. }
        | Error::Moving { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// How long a client should wait before retrying, as sent in `Retry-After`.
fn retry_after_of(error: &Error) -> Option<Duration> {
    match error {
        Error::QuotaExceeded { retry_after, .. } if !retry_after.is_zero() => Some(*retry_after),
        Error::Moving { retry_after, .. } => Some(*retry_after),
        Error::NotReady {
            status: TenantStatus::Pending | TenantStatus::Provisioning,
            ..
        } => Some(NOT_READY_RETRY_AFTER),
        Error::PoolExhausted { .. } | Error::Unavailable { .. } => Some(UNAVAILABLE_RETRY_AFTER),
        _ => None,
    }
}

/// Maps an [`Error`] to its HTTP response: the status of [`status_of`], a JSON body with the
/// error's stable [`code`](Error::code), a message and the offending field, and `Retry-After`
/// where waiting helps.
///
/// Internal errors never show their message or source to the client: they are logged here at
/// error level (with the whole source chain) and answered with `"internal error"`. Other `5xx`
/// (a backend unavailable, a pool exhausted) are logged at warn level.
///
/// ```
/// use tenant_manager_core::Error;
/// let response = tenant_manager_tower::error_response(&Error::invalid("slug", "is reserved"));
/// assert_eq!(response.status(), 400);
/// ```
pub fn error_response(error: &Error) -> http::Response<RefusalBody> {
    let status = status_of(error);
    let message = match status {
        StatusCode::INTERNAL_SERVER_ERROR => {
            tracing::error!(code = error.code(), error = %ErrorChain(error), "request failed");
            "internal error".to_owned()
        }
        status if status.is_server_error() => {
            tracing::warn!(code = error.code(), error = %ErrorChain(error), "request refused");
            error.to_string()
        }
        _ => error.to_string(),
    };
    let mut response = json_error(status, error.code(), &message, error.field());
    let headers = response.headers_mut();
    if let Some(wait) = retry_after_of(error) {
        headers.insert(RETRY_AFTER, seconds_header(wait));
    }
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// Builds a JSON error response `{"error":{"code", "message", "field"?}}` with `status`.
///
/// [`error_response`] uses it for every [`Error`]; use it directly only for refusals that are
/// not an [`Error`] (such as a missing layer).
pub fn json_error(
    status: StatusCode,
    code: &str,
    message: &str,
    field: Option<&str>,
) -> http::Response<RefusalBody> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        error: Body<'a>,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<&'a str>,
    }
    let body = serde_json::to_vec(&Envelope {
        error: Body {
            code,
            message,
            field,
        },
    })
    .unwrap_or_else(|_| br#"{"error":{"code":"internal","message":"internal error"}}"#.to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The `500` answered when a layer or extension a component needs is missing: a deployment
/// mistake, so the message names what to add (`code` is `middleware_missing`).
pub fn missing_layer(message: &str) -> http::Response<RefusalBody> {
    tracing::error!(message, "middleware missing");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "middleware_missing",
        message,
        None,
    )
}

/// A duration as whole seconds, rounded up (so a client never retries too early), at least 1.
pub(crate) fn seconds_header(duration: Duration) -> HeaderValue {
    HeaderValue::from(ceil_seconds(duration).max(1))
}

/// A duration as whole seconds, rounded up.
pub(crate) fn ceil_seconds(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

/// Displays an error and its sources, `a: b: c`.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tenant_manager_core::{Entity, TenantId};

    async fn json(response: http::Response<RefusalBody>) -> serde_json::Value {
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    #[tokio::test]
    async fn every_error_maps_to_status_code_and_json() {
        let tenant = TenantId::new();
        let cases = [
            (Error::invalid("slug", "is reserved"), 400, "invalid_input"),
            (Error::unauthenticated("bad token"), 401, "unauthenticated"),
            (Error::forbidden("no"), 403, "forbidden"),
            (Error::Suspended { tenant }, 403, "tenant_suspended"),
            (
                Error::not_found(Entity::Tenant, "x"),
                404,
                "tenant_not_found",
            ),
            (
                Error::conflict(Entity::User, "email", "taken"),
                409,
                "conflict",
            ),
            (
                Error::NotReady {
                    tenant,
                    status: TenantStatus::Provisioning,
                },
                409,
                "tenant_not_ready",
            ),
            (
                Error::QuotaExceeded {
                    quota: "requests".into(),
                    limit: 5,
                    retry_after: Duration::from_millis(1500),
                },
                429,
                "quota_exceeded",
            ),
            (
                Error::QuotaExceeded {
                    quota: "users".into(),
                    limit: 5,
                    retry_after: Duration::ZERO,
                },
                403,
                "quota_exceeded",
            ),
            (
                Error::PoolExhausted {
                    waited: Duration::from_secs(1),
                },
                503,
                "pool_exhausted",
            ),
            (
                Error::unavailable("redis", std::io::Error::other("refused")),
                503,
                "backend_unavailable",
            ),
            (
                Error::internal_with("secret detail", std::io::Error::other("boom")),
                500,
                "internal",
            ),
        ];
        for (error, status, code) in cases {
            let response = error_response(&error);
            assert_eq!(response.status().as_u16(), status, "{error}");
            assert_eq!(
                response.headers().get(CONTENT_TYPE),
                Some(&HeaderValue::from_static("application/json"))
            );
            let body = json(response).await;
            assert_eq!(body["error"]["code"], code, "{error}");
            assert!(body["error"]["message"].is_string());
        }
    }

    #[tokio::test]
    async fn field_retry_after_and_hidden_internals() {
        let body = json(error_response(&Error::invalid(
            "admin_email",
            "must contain @",
        )))
        .await;
        assert_eq!(body["error"]["field"], "admin_email");

        let response = error_response(&Error::QuotaExceeded {
            quota: "requests".into(),
            limit: 5,
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(
            response.headers().get(RETRY_AFTER),
            Some(&HeaderValue::from(2u64))
        );

        let tenant = TenantId::new();
        let response = error_response(&Error::NotReady {
            tenant,
            status: TenantStatus::Provisioning,
        });
        assert_eq!(
            response.headers().get(RETRY_AFTER),
            Some(&HeaderValue::from(5u64))
        );
        let response = error_response(&Error::NotReady {
            tenant,
            status: TenantStatus::Failed,
        });
        assert_eq!(response.headers().get(RETRY_AFTER), None);

        let response = error_response(&Error::unauthenticated("x"));
        assert_eq!(
            response.headers().get(WWW_AUTHENTICATE),
            Some(&HeaderValue::from_static("Bearer"))
        );

        let body = json(error_response(&Error::internal("password=hunter2"))).await;
        assert_eq!(body["error"]["message"], "internal error");
        assert!(body["error"].get("field").is_none());
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ceil_seconds(Duration::from_secs(2)), 2);
        assert_eq!(ceil_seconds(Duration::ZERO), 0);
        assert_eq!(seconds_header(Duration::ZERO), HeaderValue::from(1u64));
    }
}
