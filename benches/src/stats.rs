//! Latency samples (whole microseconds) and their percentiles.

use std::fmt;
use std::time::Duration;

/// Latencies of completed operations, in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    micros: Vec<u32>,
}

impl Latencies {
    /// An empty sample set with room for `n` samples.
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        Self {
            micros: Vec::with_capacity(n),
        }
    }

    /// Records one latency (saturating at `u32::MAX` µs, about 71 minutes).
    pub fn record(&mut self, d: Duration) {
        self.micros
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    /// Moves every sample of `other` into `self`.
    pub fn merge(&mut self, mut other: Self) {
        self.micros.append(&mut other.micros);
    }

    /// Number of samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// Whether there are no samples.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// Sorts the samples and returns the summary.
    #[must_use]
    pub fn summary(&mut self) -> Summary {
        self.micros.sort_unstable();
        let at = |q: f64| -> Duration {
            if self.micros.is_empty() {
                return Duration::ZERO;
            }
            // Nearest-rank percentile.
            let rank = (q * self.micros.len() as f64).ceil() as usize;
            let i = rank.clamp(1, self.micros.len()) - 1;
            Duration::from_micros(u64::from(self.micros[i]))
        };
        Summary {
            count: self.micros.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: self
                .micros
                .last()
                .map_or(Duration::ZERO, |&m| Duration::from_micros(u64::from(m))),
        }
    }
}

/// Percentiles of a [`Latencies`] set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {} p90 {} p99 {} max {}",
            Ms(self.p50),
            Ms(self.p90),
            Ms(self.p99),
            Ms(self.max)
        )
    }
}

/// A duration shown in milliseconds with three decimals.
#[derive(Debug, Clone, Copy)]
pub struct Ms(pub Duration);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} ms", self.0.as_secs_f64() * 1e3)
    }
}

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
#[must_use]
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        f64::midpoint(v[mid - 1], v[mid])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut l = Latencies::default();
        for i in 1..=100 {
            l.record(Duration::from_micros(i));
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50, Duration::from_micros(50));
        assert_eq!(s.p90, Duration::from_micros(90));
        assert_eq!(s.p99, Duration::from_micros(99));
        assert_eq!(s.max, Duration::from_micros(100));
        assert_eq!(Latencies::default().summary(), Summary::default());
    }

    #[test]
    fn median_of_even_and_odd() {
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
        assert!((median(&[4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < f64::EPSILON);
        assert!(median(&[]).abs() < f64::EPSILON);
    }
}
