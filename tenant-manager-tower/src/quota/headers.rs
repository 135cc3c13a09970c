//! The `RateLimit-*` response headers.

use http::{HeaderMap, HeaderName, HeaderValue};
use tenant_manager_core::RateDecision;

use crate::response::ceil_seconds;

/// `RateLimit-Limit`: requests allowed per window.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests left in the current window.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until the limit is fully replenished.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Writes the three headers of `decision`.
pub(super) fn apply(decision: &RateDecision, headers: &mut HeaderMap) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(decision.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(
        RATELIMIT_RESET,
        HeaderValue::from(ceil_seconds(decision.reset_after)),
    );
}
