//! Percentiles (nearest rank) of samples.

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub mean: f64,
    pub max: f64,
}

/// Nearest-rank percentiles of `samples`, in the samples' unit times
/// `scale` (e.g. 1e-3 for microseconds in, milliseconds out). NaN when
/// there are none.
pub fn summarize_scaled(samples: &[f64], scale: f64) -> Summary {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let rank = |p: f64| {
        if n == 0 {
            return f64::NAN;
        }
        sorted[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1] * scale
    };
    Summary {
        count: n,
        p50: rank(50.0),
        p90: rank(90.0),
        p95: rank(95.0),
        p99: rank(99.0),
        mean: if n == 0 {
            f64::NAN
        } else {
            sorted.iter().sum::<f64>() / n as f64 * scale
        },
        max: sorted.last().map_or(f64::NAN, |v| v * scale),
    }
}

/// Percentiles of microsecond samples, in milliseconds.
pub fn summarize_us(samples: &[f64]) -> Summary {
    summarize_scaled(samples, 1e-3)
}

/// The median of `values` (the mean of the middle two for an even count);
/// NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Spearman's rank correlation of the pairs' two orders: 1 when the second
/// values come in the order of the first, -1 in the reverse order, about 0
/// when unrelated. NaN for fewer than two pairs. Ties get the order they
/// come in (the samples are timestamps, ties are rare).
pub fn rank_correlation(pairs: &[(f64, f64)]) -> f64 {
    let n = pairs.len();
    if n < 2 {
        return f64::NAN;
    }
    let ranks = |key: fn(&(f64, f64)) -> f64| {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| key(&pairs[a]).total_cmp(&key(&pairs[b])));
        let mut rank = vec![0.0; n];
        for (r, i) in order.into_iter().enumerate() {
            rank[i] = r as f64;
        }
        rank
    };
    let (a, b) = (ranks(|p| p.0), ranks(|p| p.1));
    let d2: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum();
    let n = n as f64;
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

/// Rounds to three decimals, for JSON.
pub fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl Summary {
    pub fn to_json(self) -> Value {
        json!({"count": self.count, "p50": r3(self.p50), "p90": r3(self.p90), "p95": r3(self.p95),
               "p99": r3(self.p99), "mean": r3(self.mean), "max": r3(self.max)})
    }

    /// `p50 … p99 … (mean …, max …)` with `unit`.
    pub fn line(&self, unit: &str) -> String {
        format!(
            "p50 {:.3} {unit}, p90 {:.3}, p95 {:.3}, p99 {:.3} (mean {:.3}, max {:.3}, n={})",
            self.p50, self.p90, self.p95, self.p99, self.mean, self.max, self.count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarize_scaled(&samples, 1.0);
        assert_eq!((s.p50, s.p90, s.p99, s.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn rank_correlation_of_orders() {
        let same: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i), f64::from(i * i))).collect();
        assert_eq!(rank_correlation(&same), 1.0);
        let reversed: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i), -f64::from(i))).collect();
        assert_eq!(rank_correlation(&reversed), -1.0);
        // One swap of neighbours among ten: 1 - 6 * 2 / 990.
        let mut swapped = same.clone();
        swapped.swap(3, 4);
        let swapped: Vec<(f64, f64)> = swapped.iter().enumerate().map(|(i, p)| (i as f64, p.1)).collect();
        assert!((rank_correlation(&swapped) - (1.0 - 12.0 / 990.0)).abs() < 1e-12);
        assert!(rank_correlation(&same[..1]).is_nan());
    }
}
