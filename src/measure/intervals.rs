//! Interval distributions in fixed memory: an hdrhistogram of milliseconds (2 significant
//! digits: values within 1 %), created at the first interval, clamped to 7 days. Shared by
//! every per-pair timing report (phone-home contacts, keepalives).

use hdrhistogram::Histogram;

/// Longest interval recorded (7 days, in ms); longer ones are clamped.
const MAX_INTERVAL_MS: u64 = 7 * 24 * 3600 * 1000;
/// Significant digits: about 12 KiB per histogram.
const SIGFIG: u8 = 2;

#[derive(Clone, Debug, Default)]
pub struct Intervals {
    hist: Option<Histogram<u32>>,
}

impl Intervals {
    /// Records one interval of `ns` nanoseconds (negative counts as 0).
    pub fn record_ns(&mut self, ns: i64) {
        if self.hist.is_none() {
            self.hist = Histogram::new_with_bounds(1, MAX_INTERVAL_MS, SIGFIG).ok();
        }
        if let Some(h) = self.hist.as_mut() {
            let ms = u64::try_from(ns / 1_000_000).unwrap_or(0);
            let _ = h.record(ms.clamp(1, MAX_INTERVAL_MS));
        }
    }

    pub fn count(&self) -> u64 {
        self.hist.as_ref().map_or(0, Histogram::len)
    }

    fn secs(&self, f: impl Fn(&Histogram<u32>) -> u64) -> Option<f64> {
        self.hist
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| f(h) as f64 / 1000.0)
    }

    /// Seconds; `None` before the first interval.
    pub fn min_s(&self) -> Option<f64> {
        self.secs(Histogram::min)
    }

    pub fn max_s(&self) -> Option<f64> {
        self.secs(Histogram::max)
    }

    /// The `q` quantile (0 to 1) in seconds.
    pub fn quantile_s(&self, q: f64) -> Option<f64> {
        self.secs(|h| h.value_at_quantile(q))
    }
}

/// A seconds column: 3 decimals, empty when unknown.
pub fn secs_field(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.3}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_one_percent() {
        let mut i = Intervals::default();
        assert_eq!((i.count(), i.min_s(), i.quantile_s(0.5)), (0, None, None));
        for s in 1..=100 {
            i.record_ns(s * 60 * 1_000_000_000);
        }
        assert_eq!(i.count(), 100);
        let near = |v: Option<f64>, want: f64| (v.unwrap() - want).abs() <= want * 0.01;
        assert!(near(i.min_s(), 60.0));
        assert!(near(i.quantile_s(0.5), 3000.0));
        assert!(near(i.quantile_s(0.9), 5400.0));
        assert!(near(i.max_s(), 6000.0));
        i.record_ns(-5);
        i.record_ns(i64::MAX);
        assert_eq!(i.count(), 102);
        assert_eq!(secs_field(None), "");
        assert_eq!(secs_field(Some(1.5)), "1.500");
    }
}
