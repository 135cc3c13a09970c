//! What the job queue and the event bus, both built on Redis Streams, share: the checks of
//! their names and durations, and the read of a stream's oldest entries.

use std::collections::HashMap;
use std::time::Duration;

use tenant_manager_core::{Error, Result};

use crate::pool::RedisPool;

/// A stream entry: its id and fields.
pub(crate) type Entry = (String, HashMap<String, String>);

/// Checks a stream, queue or group name: 1 to 64 of `[a-z0-9_.-]`.
///
/// # Errors
/// [`Error::InvalidInput`] on `field` otherwise.
pub(crate) fn validate_name(field: &'static str, name: &str) -> Result<()> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(field, "must be 1 to 64 of [a-z0-9_.-]"))
    }
}

/// Checks each duration is between 1 ms and 1 day, in order.
///
/// # Errors
/// [`Error::InvalidInput`] on the first field out of range.
pub(crate) fn validate_durations(fields: &[(&'static str, Duration)]) -> Result<()> {
    for &(field, value) in fields {
        if value < Duration::from_millis(1) || value > Duration::from_secs(86_400) {
            return Err(Error::invalid(field, "must be between 1 ms and 1 day"));
        }
    }
    Ok(())
}

/// Checks a count or length is at least 1.
///
/// # Errors
/// [`Error::InvalidInput`] on `field` when it is 0.
pub(crate) fn validate_at_least_one(field: &'static str, value: u64) -> Result<()> {
    if value == 0 {
        return Err(Error::invalid(field, "must be at least 1"));
    }
    Ok(())
}

/// Up to `limit` entries of stream `key`, oldest first (`XRANGE key - + COUNT limit`); none
/// without asking Redis when `limit` is 0.
///
/// # Errors
/// As [`RedisPool::query`].
pub(crate) async fn oldest_entries(
    pool: &RedisPool,
    key: &str,
    limit: usize,
) -> Result<Vec<Entry>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    pool.query(
        redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(limit),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(r: Result<()>) -> Option<String> {
        r.err().and_then(|e| e.field().map(str::to_owned))
    }

    #[test]
    fn names_are_1_to_64_of_the_allowed_bytes() {
        assert_eq!(field(validate_name("n", "jobs.main-1_x")), None);
        assert_eq!(field(validate_name("n", &"a".repeat(64))), None);
        for bad in ["", "Jobs", "a b", "a:b", &"a".repeat(65)] {
            assert_eq!(
                field(validate_name("n", bad)).as_deref(),
                Some("n"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn durations_are_1_ms_to_1_day_and_the_first_bad_one_is_named() {
        let ok = Duration::from_secs(1);
        assert_eq!(field(validate_durations(&[("a", ok), ("b", ok)])), None);
        let fields = [("a", ok), ("b", Duration::ZERO), ("c", Duration::ZERO)];
        assert_eq!(field(validate_durations(&fields)).as_deref(), Some("b"));
        let fields = [("a", Duration::from_secs(86_401))];
        assert_eq!(field(validate_durations(&fields)).as_deref(), Some("a"));
        assert_eq!(field(validate_at_least_one("n", 0)).as_deref(), Some("n"));
        assert_eq!(field(validate_at_least_one("n", 1)), None);
    }
}
