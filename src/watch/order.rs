//! Which of two dbt runs is the newer: the rule a skewed clock cannot poison.
//!
//! A run is placed in time by run_results.json's `metadata.generated_at` (when dbt finished),
//! read as a time, not compared as text (`…:00.5Z` is after `…:00Z`; `+00:00` and `Z` are the
//! same instant), and by when the watcher first read it. Two clocks can lie: the one of the
//! machine that ran dbt, and the watcher's own. So:
//!
//! - Runs are ordered by their `generated_at`: dbt's own clock orders dbt's own runs, whatever
//!   its offset from the watcher's.
//! - A run whose `generated_at` is more than [`AHEAD`] ahead of the moment the watcher read it
//!   is **ahead**: its clock lies (a clock set to 2099, a dbt machine whose clock is minutes
//!   fast), or the clock was stepped back between the run's end and the read. A fresh run is never
//!   ordered against an ahead one by `generated_at`, so a run from 2099 cannot make every later
//!   run look older: after an ahead run, the order is the order in which the watcher read them.
//!   (So a cache restore of an older run right after an ahead one is taken as newer: when a
//!   clock is known to lie, the watcher trusts its own.) More than [`SKEW_WARNING`] ahead is
//!   worth a warning.
//! - A run is "older" than the newest one only while the watcher's clock has not gone back
//!   since that one was read; after a step backwards, a fresh run is taken as newer (and the
//!   step is said in a warning).
//!
//! What is left: a clock stepped back by less than [`AHEAD`] between a run's end and the read,
//! followed by a run that ends within that step, makes the second look older (the model tests
//! step the clock by 90 s and 2 h).
//!
//! Pure functions over plain values; the clock is the caller's.

use std::time::{Duration, SystemTime};

/// A `generated_at` further than this ahead of the moment it was read is not trusted to order:
/// more than clocks kept by NTP ever differ, less than any real skew.
pub const AHEAD: Duration = Duration::from_secs(60);

/// A `generated_at` further than this ahead of the watcher's clock is worth a warning.
pub const SKEW_WARNING: Duration = Duration::from_secs(5 * 60);

/// Where a run falls in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// run_results.json's `generated_at`, when it reads as a time.
    pub generated: Option<SystemTime>,
    /// When the watcher first read the run.
    pub seen: SystemTime,
}

/// Parses an RFC 3339 time as dbt writes it (`2026-11-28T07:10:58.440612Z`, or with an offset).
pub fn parse_time(text: &str) -> Option<SystemTime> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text.trim()).ok()?;
    let utc = parsed.with_timezone(&chrono::Utc);
    let seconds = utc.timestamp();
    let nanos = Duration::from_nanos(u64::from(utc.timestamp_subsec_nanos()));
    if seconds >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds.unsigned_abs()) + nanos)
    } else {
        SystemTime::UNIX_EPOCH
            .checked_sub(Duration::from_secs(seconds.unsigned_abs()))?
            .checked_add(nanos)
    }
}

/// A time as RFC 3339 text in UTC, to the nanosecond (how the state file keeps times).
pub fn format_time(time: SystemTime) -> String {
    let utc: chrono::DateTime<chrono::Utc> = time.into();
    utc.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

impl Placed {
    pub fn new(generated_at: Option<&str>, seen: SystemTime) -> Placed {
        Placed {
            generated: generated_at.and_then(parse_time),
            seen,
        }
    }

    /// How far `generated_at` is ahead of the moment it was read, when that is more than
    /// [`AHEAD`].
    pub fn ahead(&self) -> Option<Duration> {
        let ahead = self.generated?.duration_since(self.seen).ok()?;
        (ahead > AHEAD).then_some(ahead)
    }

    /// How far `generated_at` is ahead, when that is worth a warning.
    pub fn skew(&self) -> Option<Duration> {
        self.ahead().filter(|d| *d > SKEW_WARNING)
    }

    /// The earlier of `generated_at` and when it was read: for a run with no readable
    /// `generated_at`, the moment it was read.
    fn clamped(&self) -> SystemTime {
        self.generated.map_or(self.seen, |g| g.min(self.seen))
    }
}

/// The last processed run, as the state file keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub invocation_id: String,
    pub placed: Placed,
    /// The watcher's clock when it was processed.
    pub at: SystemTime,
}

/// How a fresh run compares with the newest one processed or on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Newer,
    Older,
    /// The watcher's clock is behind the moment the newest run was read: time cannot order
    /// the two, and the fresh run is taken as newer.
    ClockWentBack {
        by: Duration,
    },
}

/// Compares `candidate` with `newest`, `now` being the watcher's clock.
pub fn compare(candidate: &Placed, newest: &Placed, now: SystemTime) -> Verdict {
    if let Ok(by) = newest.seen.duration_since(now)
        && by > Duration::ZERO
    {
        return Verdict::ClockWentBack { by };
    }
    let older = match (candidate.generated, newest.generated) {
        _ if newest.ahead().is_some() => candidate.seen < newest.seen,
        (Some(c), Some(n)) => c < n,
        _ => candidate.clamped() < newest.clamped(),
    };
    if older {
        Verdict::Older
    } else {
        Verdict::Newer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        parse_time(text).unwrap()
    }

    fn placed(generated: &str, seen: &str) -> Placed {
        Placed::new(Some(generated), at(seen))
    }

    #[test]
    fn times_are_compared_as_times_not_text() {
        assert!(at("2026-11-28T07:10:00.5Z") > at("2026-11-28T07:10:00Z"));
        assert_eq!(
            at("2026-11-28T07:10:58.440612+00:00"),
            at("2026-11-28T07:10:58.440612Z")
        );
        assert_eq!(at("2026-11-28T08:10:58+01:00"), at("2026-11-28T07:10:58Z"));
        assert!(at("1969-12-31T23:59:59.5Z") < SystemTime::UNIX_EPOCH);
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time(""), None);
        let t = at("2026-11-28T07:10:58.440612Z");
        assert_eq!(format_time(t), "2026-11-28T07:10:58.440612Z");
        assert_eq!(parse_time(&format_time(t)), Some(t));
    }

    #[test]
    fn a_run_from_2099_does_not_make_later_real_runs_older() {
        let skewed = placed("2099-01-01T00:00:00Z", "2026-12-04T10:00:00Z");
        assert!(
            skewed
                .skew()
                .is_some_and(|d| d > Duration::from_secs(86400 * 365 * 70))
        );
        let now = at("2026-12-04T10:05:00Z");
        let real = placed("2026-12-04T10:04:59Z", "2026-12-04T10:05:00Z");
        assert_eq!(compare(&real, &skewed, now), Verdict::Newer);
        // A restore is read later than the skewed run: the watcher's clock orders them.
        let restored = placed("2026-11-01T00:00:00Z", "2026-12-04T10:05:00Z");
        assert_eq!(compare(&restored, &skewed, now), Verdict::Newer);
        let read_before = placed("2026-11-01T00:00:00Z", "2026-12-04T09:59:00Z");
        assert_eq!(compare(&read_before, &skewed, now), Verdict::Older);
        // Two runs of one skewed clock are ordered by when they were read.
        let next = placed("2099-01-01T00:00:07Z", "2026-12-04T10:05:00Z");
        assert_eq!(compare(&next, &skewed, now), Verdict::Newer);
        let before = placed("2099-01-01T00:00:07Z", "2026-12-04T09:00:00Z");
        assert_eq!(compare(&before, &skewed, now), Verdict::Older);
    }

    #[test]
    fn a_clock_behind_still_orders_its_own_runs() {
        // dbt's clock an hour behind the watcher's, or a few seconds ahead.
        let nine = placed("2026-12-04T09:00:09Z", "2026-12-04T10:00:09.4Z");
        let restored_seven = placed("2026-12-04T09:00:07Z", "2026-12-04T10:00:12Z");
        let ten = placed("2026-12-04T09:00:10Z", "2026-12-04T10:00:12Z");
        let now = at("2026-12-04T10:00:12Z");
        assert_eq!(compare(&restored_seven, &nine, now), Verdict::Older);
        assert_eq!(compare(&ten, &nine, now), Verdict::Newer);
        assert_eq!(nine.ahead(), None);
        let fast_nine = placed("2026-12-04T10:00:11Z", "2026-12-04T10:00:09.4Z");
        let fast_seven = placed("2026-12-04T10:00:09.45Z", "2026-12-04T10:00:12Z");
        assert_eq!(fast_nine.ahead(), None);
        assert_eq!(compare(&fast_seven, &fast_nine, now), Verdict::Older);
    }

    #[test]
    fn after_the_clock_went_back_a_fresh_run_is_newer() {
        let newest = placed("2026-12-04T10:59:59Z", "2026-12-04T11:00:00Z");
        // The clock was stepped back an hour; dbt's generated_at went back with it.
        let now = at("2026-12-04T10:01:00Z");
        let fresh = placed("2026-12-04T10:00:59Z", "2026-12-04T10:01:00Z");
        assert_eq!(
            compare(&fresh, &newest, now),
            Verdict::ClockWentBack {
                by: Duration::from_secs(59 * 60)
            }
        );
        let later = at("2026-12-04T11:00:01Z");
        assert_eq!(compare(&fresh, &newest, later), Verdict::Older);
    }

    #[test]
    fn runs_without_a_generated_at_are_ordered_by_when_they_were_read() {
        let now = at("2026-12-04T10:00:00Z");
        let a = Placed::new(None, at("2026-12-04T09:00:00Z"));
        let b = Placed::new(Some("garbage"), at("2026-12-04T09:30:00Z"));
        assert_eq!(compare(&b, &a, now), Verdict::Newer);
        assert_eq!(compare(&a, &b, now), Verdict::Older);
    }
}
