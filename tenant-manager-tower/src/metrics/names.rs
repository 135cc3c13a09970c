//! The names of the request metrics, and their descriptions for the recorder.

/// Counter of answered requests, labelled `method`, `route`, `status` (and `tenant` if enabled).
pub const REQUESTS_TOTAL: &str = "api_requests_total";

/// Histogram of response times in seconds, labelled `method`, `route` (and `tenant` if enabled).
pub const RESPONSE_TIME: &str = "api_response_time_seconds";

/// Describes the request metrics to the installed recorder; call once after installing it.
pub fn describe_metrics() {
    ::metrics::describe_counter!(REQUESTS_TOTAL, "HTTP requests answered");
    ::metrics::describe_histogram!(
        RESPONSE_TIME,
        ::metrics::Unit::Seconds,
        "Time from request to response head"
    );
}
