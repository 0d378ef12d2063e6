//! Latency histograms (HdrHistogram, microseconds, 3 significant figures) and their summary.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// 1 µs to 10 minutes at 3 significant figures: anything slower is clamped to the top, never lost.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(micros);
}

/// Every figure of one distribution, in microseconds.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Summary {
    pub unit: String,
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    #[serde(rename = "p99.9")]
    pub p99_9: u64,
    pub max: u64,
}

impl Summary {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self { unit: "us".into(), ..Self::default() };
        }
        Self {
            unit: "us".into(),
            count: h.len(),
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    /// One line: `n=50 min 1.2 p50 3.4 p90 … max 9.9 ms`.
    pub fn line(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        format!(
            "n={} min {} p50 {} p90 {} p95 {} p99 {} p99.9 {} max {} ms",
            self.count,
            ms(self.min),
            ms(self.p50),
            ms(self.p90),
            ms(self.p95),
            ms(self.p99),
            ms(self.p99_9),
            ms(self.max)
        )
    }
}

/// Microseconds as milliseconds with one decimal.
pub fn ms(micros: u64) -> String {
    format!("{:.1}", micros as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let mut h = histogram();
        for ms in 1..=100u64 {
            record(&mut h, Duration::from_millis(ms));
        }
        let s = Summary::of(&h);
        assert_eq!(s.count, 100);
        assert_eq!(s.min, 1000);
        assert!((49_900..=50_100).contains(&s.p50), "{s:?}");
        assert!((94_900..=95_100).contains(&s.p95), "{s:?}");
        assert!((99_900..=100_100).contains(&s.max), "{s:?}");
    }

    #[test]
    fn an_absurdly_slow_answer_is_clamped_not_lost() {
        let mut h = histogram();
        record(&mut h, Duration::from_secs(7200));
        assert_eq!(Summary::of(&h).count, 1);
    }
}
