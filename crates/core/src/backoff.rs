//! Capped exponential backoff, the one retry schedule every queue uses
//! (commands, dead letters, chat pushes, the event outbox, provider polls).

use std::time::Duration;

/// Waits `first`, then twice as long after each further failure, never
/// longer than `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, cap: Duration) -> Backoff {
        Backoff { first, cap }
    }

    /// The wait after `attempts` earlier attempts (0 or less: `first`).
    pub fn after(self, attempts: i64) -> chrono::Duration {
        let doublings = attempts.clamp(0, 31) as u32;
        let wait = self.first.saturating_mul(1 << doublings).min(self.cap);
        chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_first_and_stops_at_the_cap() {
        let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let waits: Vec<i64> = (-1..8).map(|n| backoff.after(n).num_milliseconds()).collect();
        assert_eq!(waits, [500, 500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]);
        assert_eq!(backoff.after(i64::MAX).num_seconds(), 10);
    }

    #[test]
    fn a_cap_in_hours_is_kept() {
        let backoff = Backoff::new(Duration::from_secs(60), Duration::from_secs(6 * 3600));
        assert_eq!(backoff.after(3).num_minutes(), 8);
        assert_eq!(backoff.after(30).num_minutes(), 360);
    }
}
