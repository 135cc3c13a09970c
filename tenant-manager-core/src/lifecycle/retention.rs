//! Grandfather-father-son retention of backups: keep the newest backup of each of the last
//! `daily` days and of each of the last `weekly` ISO weeks (UTC), prune everything else.

use time::{Date, Duration, OffsetDateTime};

use crate::error::{Error, Result};

/// Most days or weeks a policy keeps (ten years of weeks).
const MAX_SLOTS: u32 = 520;

/// "Keep the newest backup of each of the last `daily` days and of each of the last `weekly`
/// ISO weeks"; a backup that is both is kept once. Days and weeks are UTC calendar days and
/// ISO weeks (Monday to Sunday), counted back from the one holding `now` (included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// Days whose newest backup is kept.
    pub daily: u32,
    /// ISO weeks whose newest backup is kept.
    pub weekly: u32,
}

impl RetentionPolicy {
    /// A policy keeping `daily` days and `weekly` weeks.
    ///
    /// # Errors
    /// `InvalidInput` on `daily` or `weekly` above 520, or on `daily` when both are 0 (a
    /// policy that keeps nothing).
    pub fn new(daily: u32, weekly: u32) -> Result<Self> {
        if daily > MAX_SLOTS {
            return Err(Error::invalid("daily", "must be at most 520"));
        }
        if weekly > MAX_SLOTS {
            return Err(Error::invalid("weekly", "must be at most 520"));
        }
        if daily == 0 && weekly == 0 {
            return Err(Error::invalid("daily", "daily and weekly cannot both be 0"));
        }
        Ok(Self { daily, weekly })
    }

    /// Which of the backups taken at `taken` to keep at `now`, index for index. A backup
    /// stamped after `now` (a clock ahead) is kept. Ties within a day or week keep the
    /// earliest index among the newest.
    pub fn keep(&self, now: OffsetDateTime, taken: &[OffsetDateTime]) -> Vec<bool> {
        let today = now.date();
        let this_monday = monday(today);
        let mut order: Vec<usize> = (0..taken.len()).collect();
        // Newest first; equal stamps in index order.
        order.sort_by(|&a, &b| taken[b].cmp(&taken[a]).then(a.cmp(&b)));
        let mut keep = vec![false; taken.len()];
        let mut days_seen: Vec<Date> = Vec::new();
        let mut weeks_seen: Vec<Date> = Vec::new();
        for i in order {
            let stamp = taken[i];
            if stamp > now {
                keep[i] = true;
                continue;
            }
            let day = stamp.date();
            let days_back = (today - day).whole_days();
            if days_back < i64::from(self.daily) && !days_seen.contains(&day) {
                days_seen.push(day);
                keep[i] = true;
            }
            let week = monday(day);
            let weeks_back = (this_monday - week).whole_days() / 7;
            if weeks_back < i64::from(self.weekly) && !weeks_seen.contains(&week) {
                weeks_seen.push(week);
                keep[i] = true;
            }
        }
        keep
    }
}

/// The Monday of `day`'s ISO week.
fn monday(day: Date) -> Date {
    let back = i64::from(day.weekday().number_days_from_monday());
    day.checked_sub(Duration::days(back)).unwrap_or(day)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;
    use time::Month;

    use super::*;

    fn utc(month: u8, day: u8, hour: u8) -> OffsetDateTime {
        let month = Month::try_from(month).unwrap();
        Date::from_calendar_date(2026, month, day)
            .unwrap()
            .with_hms(hour, 0, 0)
            .unwrap()
            .assume_utc()
    }

    fn at(days_ago: i64, hour: i64, now: OffsetDateTime) -> OffsetDateTime {
        now - Duration::days(days_ago) - Duration::hours(hour)
    }

    #[test]
    fn keeps_the_newest_of_each_recent_day_and_week() {
        // A Wednesday noon; backups every 6 hours for 60 days.
        let now = utc(3, 11, 12);
        let taken: Vec<_> = (0..240).map(|k| now - Duration::hours(6 * k)).collect();
        let policy = RetentionPolicy::new(3, 2).unwrap();
        let keep = policy.keep(now, &taken);
        let kept: Vec<_> = taken
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(
            kept,
            vec![
                utc(3, 11, 12), // today (also this week's newest)
                utc(3, 10, 18), // yesterday
                utc(3, 9, 18),  // the day before (Monday)
                utc(3, 8, 18),  // last week's newest (Sunday)
            ]
        );
    }

    #[test]
    fn a_policy_keeping_nothing_or_too_much_is_refused() {
        assert_eq!(
            RetentionPolicy::new(0, 0).unwrap_err().field(),
            Some("daily")
        );
        assert_eq!(
            RetentionPolicy::new(521, 1).unwrap_err().field(),
            Some("daily")
        );
        assert_eq!(
            RetentionPolicy::new(1, 521).unwrap_err().field(),
            Some("weekly")
        );
    }

    proptest! {
        #[test]
        fn kept_backups_are_exactly_the_newest_of_each_slot(
            daily in 0u32..10,
            weekly in 0u32..6,
            stamps in proptest::collection::vec((0i64..80, 0i64..24), 0..60),
        ) {
            prop_assume!(daily + weekly > 0);
            let now = utc(3, 11, 12);
            let taken: Vec<_> = stamps.iter().map(|&(d, h)| at(d, h, now)).collect();
            let policy = RetentionPolicy::new(daily, weekly).unwrap();
            let keep = policy.keep(now, &taken);
            let newest_of = |slot: &dyn Fn(&OffsetDateTime) -> bool| {
                (0..taken.len())
                    .filter(|&i| slot(&taken[i]))
                    .min_by(|&a, &b| taken[b].cmp(&taken[a]).then(a.cmp(&b)))
            };
            let mut expected = vec![false; taken.len()];
            for d in 0..i64::from(daily) {
                let day = now.date() - Duration::days(d);
                if let Some(i) = newest_of(&|t| t.date() == day) {
                    expected[i] = true;
                }
            }
            for w in 0..i64::from(weekly) {
                let week = monday(now.date()) - Duration::days(7 * w);
                if let Some(i) = newest_of(&|t| monday(t.date()) == week) {
                    expected[i] = true;
                }
            }
            prop_assert_eq!(&keep, &expected);
            prop_assert!(keep.iter().filter(|k| **k).count() <= (daily + weekly) as usize);
            // Applying the policy again to what it kept keeps all of it.
            let kept: Vec<_> = taken.iter().zip(&keep).filter(|(_, k)| **k).map(|(t, _)| *t).collect();
            prop_assert!(policy.keep(now, &kept).iter().all(|k| *k));
        }
    }
}
