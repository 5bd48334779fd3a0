//! Lag samples and the percentiles the dummyrunner reports.

use serde::Serialize;

/// Round-trip times in microseconds, kept exactly (a few million samples
/// fit in a few megabytes).
#[derive(Debug, Default, Clone)]
pub struct Samples {
    micros: Vec<u64>,
}

/// What a set of samples comes to, in milliseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Samples {
    pub fn push(&mut self, micros: u64) {
        self.micros.push(micros);
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// Move every sample of `other` into `self`.
    pub fn absorb(&mut self, other: &mut Samples) {
        self.micros.append(&mut other.micros);
    }

    /// Count, p50, p99, max and mean (all zero when empty).
    pub fn summary(&mut self) -> Summary {
        if self.micros.is_empty() {
            return Summary::default();
        }
        self.micros.sort_unstable();
        let sum: u64 = self.micros.iter().sum();
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            count: self.micros.len(),
            p50_ms: ms(percentile(&self.micros, 50.0)),
            p99_ms: ms(percentile(&self.micros, 99.0)),
            max_ms: ms(self.micros[self.micros.len() - 1]),
            mean_ms: sum as f64 / self.micros.len() as f64 / 1000.0,
        }
    }
}

/// Nearest-rank percentile of sorted, non-empty data: the smallest value
/// with at least `p` percent of the samples at or below it.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let data: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&data, 50.0), 50);
        assert_eq!(percentile(&data, 99.0), 99);
        assert_eq!(percentile(&data, 100.0), 100);
        assert_eq!(percentile(&data, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[1, 2, 3], 50.0), 2);
    }

    #[test]
    fn summary_sorts_and_converts_to_milliseconds() {
        let mut s = Samples::default();
        for us in [3000, 1000, 2000, 10_000] {
            s.push(us);
        }
        let sum = s.summary();
        assert_eq!(sum.count, 4);
        assert_eq!(sum.p50_ms, 2.0);
        assert_eq!(sum.p99_ms, 10.0);
        assert_eq!(sum.max_ms, 10.0);
        assert_eq!(sum.mean_ms, 4.0);
    }

    #[test]
    fn empty_summary_is_zero_and_absorb_moves_samples() {
        let mut a = Samples::default();
        assert_eq!(a.summary(), Summary::default());
        let mut b = Samples::default();
        b.push(5);
        a.absorb(&mut b);
        assert!(b.is_empty());
        assert_eq!(a.len(), 1);
    }
}
