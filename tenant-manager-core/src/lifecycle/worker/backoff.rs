//! Exponential backoff with jitter for job retries.

use std::time::Duration;

/// The delay before retry number `attempt` (1 for the first delivery that failed):
/// `base * 2^(attempt-1)`, capped at `max`, with "equal jitter": half of it fixed, the other
/// half scaled by `jitter` (a number in `[0, 1]`, random in production).
pub(crate) fn backoff_delay(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(31);
    let ceiling = base.saturating_mul(1_u32 << exponent).min(max);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let half = ceiling / 2;
    half + half.mul_f64(jitter)
}

/// [`backoff_delay`] with a random jitter.
pub(crate) fn random_backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    backoff_delay(attempt, base, max, rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(10);

    #[test]
    fn doubles_per_attempt_within_the_jitter_band() {
        for attempt in 1..=6 {
            let ceiling = BASE * 2_u32.pow(attempt - 1);
            assert_eq!(backoff_delay(attempt, BASE, MAX, 0.0), ceiling / 2);
            assert_eq!(backoff_delay(attempt, BASE, MAX, 1.0), ceiling / 2 * 2);
            let random = random_backoff(attempt, BASE, MAX);
            assert!(
                random >= ceiling / 2 && random <= ceiling,
                "{attempt}: {random:?}"
            );
        }
    }

    #[test]
    fn is_capped_and_never_panics() {
        assert_eq!(backoff_delay(1_000, BASE, MAX, 1.0), MAX);
        assert_eq!(backoff_delay(u32::MAX, Duration::MAX, MAX, 1.0), MAX);
        assert_eq!(backoff_delay(0, BASE, MAX, f64::NAN), BASE / 2);
        assert_eq!(backoff_delay(3, BASE, MAX, -5.0), BASE * 2);
    }
}
