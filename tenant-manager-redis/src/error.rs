//! The one place where Redis driver errors become tenant-manager errors.

use redis::{ErrorKind, RedisError, RetryMethod, ServerErrorKind};
use tenant_manager_core::Error;

/// The backend name reported in [`Error::Unavailable`].
pub(crate) const BACKEND: &str = "redis";

/// Maps a Redis error to [`Error`].
///
/// Connection failures, timeouts, dropped connections, authentication failures and server
/// states that pass (`LOADING`, `TRYAGAIN`, `MASTERDOWN`, `CLUSTERDOWN`, read-only replica)
/// become [`Error::Unavailable`]: the caller may retry, or fail open or closed. Everything else
/// (a script error, an unexpected reply) is a bug and becomes [`Error::Internal`], with the
/// driver error kept as its source.
pub fn map_redis(err: RedisError) -> Error {
    if is_unavailable(&err) {
        Error::unavailable(BACKEND, err)
    } else {
        Error::internal_with("redis command failed", err)
    }
}

/// [`Error::Unavailable`] for an operation that did not finish within its time bound.
pub(crate) fn timed_out(what: &'static str) -> Error {
    Error::unavailable(
        BACKEND,
        RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, what)),
    )
}

/// Whether an error means the server cannot be used right now (as opposed to a bug).
pub(crate) fn is_unavailable(err: &RedisError) -> bool {
    if err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
    {
        return true;
    }
    match err.kind() {
        ErrorKind::AuthenticationFailed | ErrorKind::Io => true,
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::ReadOnly,
        ) => true,
        _ => matches!(
            err.retry_method(),
            RetryMethod::Reconnect | RetryMethod::ReconnectFromInitialConnections
        ),
    }
}

/// Whether a connection that produced `err` must be thrown away rather than reused.
pub(crate) fn breaks_connection(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_unrecoverable_error()
}

/// Whether `err` means the connection itself went away (closed, reset, broken pipe), as
/// when the server restarts or the network is cut, rather than one slow command.
pub(crate) fn is_dropped(err: &RedisError) -> bool {
    !err.is_timeout() && (err.is_connection_dropped() || err.is_io_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_unavailable_and_script_errors_are_internal() {
        let io = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert!(matches!(map_redis(io), Error::Unavailable { .. }));
        let parse = RedisError::from((ErrorKind::UnexpectedReturnType, "bad reply"));
        let mapped = map_redis(parse);
        assert!(matches!(mapped, Error::Internal { .. }));
        assert!(!mapped.is_retryable());
    }
}
