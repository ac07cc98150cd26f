//! Sliding windows as sub-buckets: a window is cut into [`BUCKETS`] buckets
//! of equal width (a 1 h window has 1-minute buckets), numbered from the Unix
//! epoch, so every replica with a synchronized clock agrees on the numbers.
//!
//! Precision: a total is the sum of the current bucket and the [`BUCKETS`]
//! before it. It therefore holds everything added in the last `window`, plus
//! whatever was added up to one bucket width (window / 60) before that. It
//! never under-counts and over-counts by at most one bucket's worth, so a
//! limit trips no later than exact counting would.

use super::BudgetError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Buckets one window is cut into.
pub const BUCKETS: u64 = 60;
/// Buckets a total sums and a counter keeps: the window plus the current one.
pub const SLOTS: u64 = BUCKETS + 1;

/// Where `now` falls for one window length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Bucket width in milliseconds (at least 1).
    pub width_ms: u64,
    /// Number of the bucket holding `now`.
    pub current: u64,
}

impl Position {
    /// Cuts `window` into buckets and finds the one holding `now`.
    pub fn new(window: Duration, now: SystemTime) -> Result<Self, BudgetError> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        if window_ms == 0 {
            return Err(BudgetError::ZeroWindow);
        }
        let since = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| BudgetError::ClockBeforeEpoch)?;
        // u64 milliseconds last 584 million years; u128 division would cost more.
        let now_ms = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
        // Rounded up so that BUCKETS buckets cover at least the whole window.
        let width_ms = window_ms.div_ceil(BUCKETS);
        let current = now_ms / width_ms;
        Ok(Self { width_ms, current })
    }

    /// The oldest bucket a total includes.
    pub fn oldest(&self) -> u64 {
        self.current.saturating_sub(SLOTS - 1)
    }

    /// How long a bucket must be kept after its last write: window + one bucket.
    pub fn ttl_ms(&self) -> u64 {
        self.width_ms.saturating_mul(SLOTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn an_hour_has_minute_buckets() {
        let p = Position::new(Duration::from_secs(3600), at(7_260_000)).unwrap();
        assert_eq!(p.width_ms, 60_000);
        assert_eq!(p.current, 121);
        assert_eq!(p.oldest(), 61);
        assert_eq!(p.ttl_ms(), 3_660_000);
    }

    #[test]
    fn odd_windows_round_the_width_up() {
        let p = Position::new(Duration::from_millis(61), at(1000)).unwrap();
        assert_eq!(p.width_ms, 2);
        let p = Position::new(Duration::from_millis(1), at(1000)).unwrap();
        assert_eq!((p.width_ms, p.current), (1, 1000));
    }

    #[test]
    fn zero_window_and_old_clock_are_errors() {
        assert!(matches!(
            Position::new(Duration::ZERO, at(0)),
            Err(BudgetError::ZeroWindow)
        ));
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert!(matches!(
            Position::new(Duration::from_secs(60), before),
            Err(BudgetError::ClockBeforeEpoch)
        ));
    }
}
