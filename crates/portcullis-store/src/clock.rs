//! Where "now" comes from.
//!
//! Key expiry, rotation grace and cache freshness ask a [`Clock`], never the system directly, so
//! tests move time with [`ManualClock::advance`] instead of sleeping.
//!
//! Time is [`SystemTime`], wall-clock time: an expiry instant is written by one process (the CLI,
//! an admin API on one gateway) and compared by others, on other machines, which a monotonic
//! `Instant` cannot be. It is std's own type, so the trait costs no dependency and the rest of the
//! workspace (humantime, tokio) already speaks it.
//!
//! Stores keep whole milliseconds since the Unix epoch. Every instant that is stored goes through
//! [`truncate_to_millis`] first, so a record reads back from any backend exactly as it was built.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to, for tests.
///
/// ```
/// use std::time::Duration;
/// use portcullis_store::{Clock, ManualClock};
///
/// let clock = ManualClock::default();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now(), start + Duration::from_secs(90));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    /// 2023-11-14T22:13:20Z: a whole second, far from the epoch, so neither rounding nor
    /// subtraction in a test lands on an edge case by accident.
    pub const DEFAULT_START: Duration = Duration::from_secs(1_700_000_000);

    /// A clock stopped at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        // A test that overflows SystemTime has a bug of its own; stopping at the last instant
        // keeps this from panicking while the caller's assertion reports it.
        *now = now.checked_add(by).unwrap_or(*now);
    }

    /// Sets the clock to `to`, earlier or later.
    pub fn set(&self, to: SystemTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new(UNIX_EPOCH + Self::DEFAULT_START)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Milliseconds since the Unix epoch (negative before it), saturating far outside any real date.
pub(crate) fn to_unix_millis(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// The instant `ms` milliseconds from the Unix epoch, or `None` where `SystemTime` cannot go.
pub(crate) fn from_unix_millis(ms: i64) -> Option<SystemTime> {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
}

/// `at` without its sub-millisecond part: what a store can hold.
pub fn truncate_to_millis(at: SystemTime) -> SystemTime {
    from_unix_millis(to_unix_millis(at)).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip_both_sides_of_the_epoch() {
        for ms in [0, 1, 1_700_000_000_123, -1, -86_400_000] {
            let at = from_unix_millis(ms).unwrap();
            assert_eq!(to_unix_millis(at), ms);
        }
    }

    #[test]
    fn truncation_drops_only_the_sub_millisecond_part() {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(
            truncate_to_millis(at),
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_000_000)
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::default();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), start + Duration::from_millis(1500));
        clock.set(start);
        assert_eq!(clock.now(), start);
    }
}
