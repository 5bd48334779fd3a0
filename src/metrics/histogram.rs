//! A latency histogram with fixed buckets, kept in atomics so the threads
//! that time something (the AMP writer, session workers) never lock.
//!
//! Recording costs two relaxed atomic adds: the bucket the value falls in
//! and the running sum. The count is the sum of the buckets, so a reader's
//! snapshot always has cumulative buckets that agree with its count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (a last one, `+Inf`, catches the
/// rest): from a tenth of a millisecond, a portal on one host, to ten
/// seconds, input held while the game restarts.
pub const BOUNDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Observations per bucket (the last is above every bound) and their sum.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

/// A histogram as read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations in each bucket alone (not cumulative).
    pub buckets: [u64; BOUNDS.len() + 1],
    pub sum_micros: u64,
}

impl Histogram {
    /// Record `n` observations of `value`.
    pub fn observe_n(&self, value: Duration, n: u64) {
        if n == 0 {
            return;
        }
        let secs = value.as_secs_f64();
        let index = BOUNDS.partition_point(|&bound| bound < secs);
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(n, Ordering::Relaxed);
        }
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros
            .fetch_add(micros.saturating_mul(n), Ordering::Relaxed);
    }

    /// Record one observation.
    pub fn observe(&self, value: Duration) {
        self.observe_n(value, 1);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = [0; BOUNDS.len() + 1];
        for (into, bucket) in buckets.iter_mut().zip(&self.buckets) {
            *into = bucket.load(Ordering::Relaxed);
        }
        HistogramSnapshot {
            buckets,
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

impl HistogramSnapshot {
    /// Every observation.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Observations at or below each bound, then the count (`+Inf`).
    pub fn cumulative(&self) -> [u64; BOUNDS.len() + 1] {
        let mut total = 0;
        self.buckets.map(|n| {
            total += n;
            total
        })
    }

    /// The sum of the observations, in seconds.
    pub fn sum_secs(&self) -> f64 {
        self.sum_micros as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_lands_in_the_first_bucket_whose_bound_it_does_not_pass() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100)); // exactly the first bound
        h.observe(Duration::from_millis(3)); // 0.0025 < 0.003 <= 0.005
        h.observe(Duration::from_secs(60)); // past every bound
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[5], 1);
        assert_eq!(s.buckets[BOUNDS.len()], 1);
        assert_eq!(s.count(), 3);
        assert_eq!(s.sum_micros, 100 + 3000 + 60_000_000);
    }

    #[test]
    fn cumulative_buckets_rise_to_the_count() {
        let h = Histogram::default();
        h.observe_n(Duration::from_millis(20), 4);
        h.observe(Duration::from_secs(2));
        let c = h.snapshot().cumulative();
        assert!(c.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(c[6], 0, "nothing at or below 10 ms");
        assert_eq!(c[7], 4, "four at or below 25 ms");
        assert_eq!(c[BOUNDS.len()], 5);
        assert_eq!(h.snapshot().sum_secs(), 2.08);
    }
}
