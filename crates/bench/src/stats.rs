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
}
